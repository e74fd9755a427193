"""Per-walker random streams that live inside jitted code and can be saved.

Every walker owns a xoshiro256** generator: its whole state is one row of four uint64
in an array of shape ``(n_walkers, 4)``, so checkpoints store plain integers and a
resumed run continues the very same streams. Seeds come from one root seed through
``numpy.random.SeedSequence``: chain ``k`` (``k = rank*W + walker``) uses the spawned
child ``k + 1`` and the initial parameters use child 0, so a chain's stream depends on
its global index only, not on how chains are spread over ranks.

Re-seeding. A run resumed on a different number of ranks has a different number of
chains, so the saved streams cannot simply continue. Its chains then get fresh streams:
after the r-th such change (r = 1, 2, ...) chain ``k`` uses the SeedSequence with
spawn key ``(k + 1, r)``, which never coincides with a stream used before.
"""
from __future__ import annotations

import numpy as np
from numba import njit

PARAMS_STREAM = 0  # SeedSequence child used for the initial parameters


def chain_states(seed: int, first_chain: int, n_chains: int, reseed: int = 0) -> np.ndarray:
    """Initial xoshiro256** states for chains first_chain .. first_chain+n_chains-1
    (reseed > 0: the streams after the reseed-th change of the chain count).

    Returns uint64 array of shape (n_chains, 4).
    """
    states = np.empty((n_chains, 4), dtype=np.uint64)
    for k in range(n_chains):
        key = (first_chain + k + 1,) if reseed == 0 else (first_chain + k + 1, reseed)
        child = np.random.SeedSequence(seed, spawn_key=key)
        states[k] = child.generate_state(4, dtype=np.uint64)
    return states


def params_generator(seed: int) -> np.random.Generator:
    """numpy Generator for the random initial parameters (identical on every rank)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(PARAMS_STREAM,)))


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


@njit(cache=True, inline="always")
def normal(s):
    """Standard normal deviate (Box-Muller; the second deviate is not kept, so the
    stream state stays four integers)."""
    r = np.sqrt(-2.0 * np.log(1.0 - uniform(s)))
    return r * np.cos(2.0 * np.pi * uniform(s))


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
