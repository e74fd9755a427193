"""Per-walker random streams that live inside jitted code and can be saved.

Every walker owns a xoshiro256** generator: its whole state is one row of four uint64
in an array of shape ``(n_walkers, 4)``, so checkpoints store plain integers and a
resumed run continues the very same streams. Seeds come from one root seed through
``numpy.random.SeedSequence``: chain ``k`` (``k = rank*W + walker``) uses the spawned
child ``k + 1`` and the initial parameters use child 0, so a chain's stream depends on
its global index only, not on how chains are spread over ranks. Every spawn key of the
program (these and the training's) is in one table below.

Re-seeding. A run resumed on a different number of ranks has a different number of
chains, so the saved streams cannot simply continue. Its chains then get fresh streams:
after the r-th such change (r = 1, 2, ...) chain ``k`` uses the SeedSequence with
spawn key ``(k + 1, r)``, which never coincides with a stream used before.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# ------------------------------------------------------------------ seed spawn keys
# Every random stream of a run (``pvmc run``, ``pvmc train``) is ``SeedSequence(seed,
# spawn_key=key)`` of its root seed (see :func:`seed_sequence`) for one key of this
# table: a fixed key, or a prefix followed by the indices its comment names. Streams
# with equal keys are the same stream, so no two entries may produce equal keys
# (tests/test_rng_keys.py checks it). Changing a value changes that stream and every
# result drawn from it: add new entries, never renumber old ones. (The empty key,
# ``default_rng(seed)``, belongs to tools that take a seed of their own: the samplers
# of a trained model, the bootstrap.)
PARAMS_KEY = (0,)  # the initial parameters: VMC's theta, an RBM layer's weights
CHAIN_KEY_BASE = 1  # chain k: (k + 1,); after the r-th reseed (k + 1, r), r >= 1
SHUFFLE_KEY = (0, 1)  # + (epoch,): the order of each batch position's rows in an epoch
CHAIN_START_KEY = (0, 2)  # the rows the persistent (PCD) chains start from
LAYER_SEED_KEY = (0, 3)  # + (layer,): the root seed of a deep belief net's layer >= 1
DATA_SAMPLE_KEY = (0, 4)  # the drawn data set (bars_stripes rows, mixture2d points)
HELD_OUT_KEY = (0, 5)  # the split of the data into training and held-out rows
PSEUDO_LIKELIHOOD_KEY = (0, 6)  # + (epoch, rank): the bits the stochastic PL flips
AIS_KEY = (0, 7)  # the AIS runs of the final evaluation (log Z)
# (0, 8): never used
DEAL_KEY = (0, 9)  # the deal of the training rows to the mini-batch positions
DMC_COPY_KEY = (0, 10)  # the root of the streams of the copies DMC's branching makes


def seed_sequence(seed: int, key: tuple, *indices: int) -> np.random.SeedSequence:
    """The SeedSequence of the stream ``key`` (an entry of the table above) of the
    root seed; indices: those the key's entry names (epoch, layer, ...)."""
    return np.random.SeedSequence(seed, spawn_key=tuple(key) + indices)


def chain_key(chain: int, reseed: int = 0) -> tuple:
    """The spawn key of global chain ``chain`` (reseed > 0: after the reseed-th change
    of the chain count)."""
    first = chain + CHAIN_KEY_BASE
    return (first,) if reseed == 0 else (first, reseed)


def chain_states(seed: int, first_chain: int, n_chains: int, reseed: int = 0) -> np.ndarray:
    """Initial xoshiro256** states for chains first_chain .. first_chain+n_chains-1
    (reseed > 0: the streams after the reseed-th change of the chain count).

    Returns uint64 array of shape (n_chains, 4).
    """
    states = np.empty((n_chains, 4), dtype=np.uint64)
    for k in range(n_chains):
        child = seed_sequence(seed, chain_key(first_chain + k, reseed))
        states[k] = child.generate_state(4, dtype=np.uint64)
    return states


def params_generator(seed: int) -> np.random.Generator:
    """numpy Generator for the random initial parameters (identical on every rank)."""
    return np.random.default_rng(seed_sequence(seed, PARAMS_KEY))


@njit(cache=True, inline="always")
def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


@njit(cache=True, inline="always")
def next_u64(s):
    """Advance state s (uint64[4]) and return the next 64-bit output (xoshiro256**)."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


@njit(cache=True, inline="always")
def uniform(s):
    """Uniform double in [0, 1) from the top 53 bits."""
    return np.float64(next_u64(s) >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# ------------------------------------------------------------------ normal deviates
# The ziggurat method (Marsaglia and Tsang, J. Stat. Softw. 5(8), 2000): the upper half
# of f(x) = exp(-x^2/2) is covered by ZIGGURAT_LAYERS horizontal layers of equal area v,
# layer 0 being the base strip [0, r] x [0, f(r)] together with the tail beyond r. A
# deviate is one 64-bit draw (low 8 bits: the layer; top 53: a signed abscissa) and is
# accepted at once unless it falls outside the part of its layer that lies under f
# (about 1 % of draws). Box-Muller's log, sqrt and cos cost 8x more (pvmc bench).
ZIGGURAT_LAYERS = 256


def ziggurat_tables(n: int = ZIGGURAT_LAYERS) -> tuple:
    """(r, v, X (n+1,), fX (n+1,)) of the n-layer ziggurat of f(x) = exp(-x^2/2).

    Layer i (0 < i < n) is the rectangle [0, X[i]] x [f(X[i]), f(X[i+1])] of area v;
    X[0] = v / f(r) is the width that gives the base strip plus tail (area v) as a
    rectangle of height f(r); X[1] = r and X[n] = 0. r is found by bisection so that
    the top layer's roof is f(0) = 1 exactly (r = 3.65415288536101 for n = 256).
    """
    f = lambda x: math.exp(-0.5 * x * x)
    area = lambda r: r * f(r) + math.sqrt(math.pi / 2) * math.erfc(r / math.sqrt(2))

    def roof(r):  # f at the top of layer n-1 for a base abscissa r (>= 1: r too small)
        v, x = area(r), r
        for _ in range(n - 2):
            y = v / x + f(x)
            if y >= 1.0:
                return y
            x = math.sqrt(-2.0 * math.log(y))
        return v / x + f(x)

    lo, hi = 1.0, 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if roof(mid) >= 1.0 else (lo, mid)
    r = 0.5 * (lo + hi)
    v = area(r)
    X = np.empty(n + 1)
    X[0], X[1], X[n] = v / f(r), r, 0.0
    for i in range(1, n - 1):
        X[i + 1] = math.sqrt(-2.0 * math.log(v / X[i] + f(X[i])))
    return r, v, X, np.exp(-0.5 * X * X)


# Module constants: numba freezes them into the compiled code.
ZIG_R, _, ZIG_X, ZIG_F = ziggurat_tables()
ZIG_INNER = ZIG_X[1:] / ZIG_X[:-1]  # |u| below this: inside layer i's sure part


@njit(cache=True, inline="always")
def normal(s):
    """Standard normal deviate by the ziggurat method (see ``ziggurat_tables``)."""
    while True:
        b = next_u64(s)
        i = np.intp(b & np.uint64(ZIGGURAT_LAYERS - 1))
        u = np.float64(b >> np.uint64(11)) * (2.0 / 9007199254740992.0) - 1.0
        x = u * ZIG_X[i]
        if abs(u) < ZIG_INNER[i]:
            return x
        # the rare branches, written out (as a function call they kept numba's
        # reference counts on the stream in the move loop: +13 ns per Langevin move)
        if i == 0:  # the tail beyond r: Marsaglia's exponential method
            while True:
                t = -np.log(1.0 - uniform(s)) / ZIG_R
                y = -np.log(1.0 - uniform(s))
                if 2.0 * y > t * t:
                    return ZIG_R + t if u > 0.0 else -ZIG_R - t
        # the wedge of layer i between X[i+1] and X[i]: under f, or draw again
        if ZIG_F[i + 1] + uniform(s) * (ZIG_F[i] - ZIG_F[i + 1]) < np.exp(-0.5 * x * x):
            return x


@njit(cache=True)
def fill_uniform(s, out):
    """Fill out with uniforms from state s (for tests)."""
    for k in range(out.shape[0]):
        out[k] = uniform(s)


@njit(cache=True)
def fill_normal(s, out):
    """Fill out with standard normals from state s (for tests)."""
    for k in range(out.shape[0]):
        out[k] = normal(s)
