"""Block Gibbs chains of an RBM: k sweeps of many chains in one jitted call.

One sweep draws every hidden unit given v (``p(h_j = 1 | v) = sigmoid(u_j)``), then every
visible unit given h (binary: Bernoulli(sigmoid(a + W h)); gaussian: Normal(a + W h,
sigma^2)); the conditionals are those of ``model.py``. The matrix products over all
chains are BLAS calls (numba's ``@``); the draws are per chain from that chain's own
xoshiro256** stream (``rng.py``): row c of ``states`` belongs to chain c and nothing else,
so a chain's trajectory does not depend on which rank runs it or on how many chains
run beside it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import normal, uniform
from .model import RBM, sigmoid_scalar


@njit(cache=True)
def sweep_kernel(V, W, WT, a, b, inv_s2, sigma, binary, k, states, H):
    """k block Gibbs sweeps of the chains V (n, n_v), in place; H (n, n_h) ends as the
    last hidden draw. W (n_v, n_h), WT its transpose (C or F order); states (n, 4)."""
    n, n_v = V.shape
    n_h = W.shape[1]
    for _ in range(k):
        U = V @ W
        for r in range(n):
            st = states[r]
            for j in range(n_h):
                p = sigmoid_scalar(b[j] + U[r, j] * inv_s2)
                H[r, j] = 1.0 if uniform(st) < p else 0.0
        M = H @ WT
        for r in range(n):
            st = states[r]
            for i in range(n_v):
                m = a[i] + M[r, i]
                if binary:
                    V[r, i] = 1.0 if uniform(st) < sigmoid_scalar(m) else 0.0
                else:
                    V[r, i] = m + sigma * normal(st)


def sweeps(rbm: RBM, V: np.ndarray, k: int, states: np.ndarray) -> np.ndarray:
    """Advance the chains V (n, n_v) by k block Gibbs sweeps, in place (V must be a
    C-contiguous float64 array); states (n, 4) uint64, one stream per chain, advanced.
    Returns the last hidden draws H (n, n_h) (all zeros when k = 0)."""
    if V.shape[0] != states.shape[0]:
        raise ValueError(f"{V.shape[0]} chains but {states.shape[0]} random streams")
    H = np.zeros((V.shape[0], rbm.n_hidden))
    if V.shape[0] and k > 0:
        W = np.ascontiguousarray(rbm.W)
        sweep_kernel(
            V,
            W,
            np.ascontiguousarray(W.T),
            rbm.a,
            rbm.b,
            rbm.inv_s2,
            rbm.sigma,
            rbm.kind == "binary",
            int(k),
            states,
            H,
        )
    return H


@njit(cache=True)
def _bernoulli(P, states, out):
    for r in range(P.shape[0]):
        st = states[r]
        for c in range(P.shape[1]):
            out[r, c] = 1.0 if uniform(st) < P[r, c] else 0.0


def bernoulli_rows(P: np.ndarray, states: np.ndarray) -> np.ndarray:
    """0/1 draws with probabilities P (n, m), row r from stream states[r]: (n, m)."""
    P = np.ascontiguousarray(P, dtype=np.float64)
    out = np.empty_like(P)
    _bernoulli(P, states, out)
    return out
