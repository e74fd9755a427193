"""The estimators' packed sums: what a unit of work adds up on each rank and reduces
in one Allreduce, their layout and their decoding. The kernels write the iteration
sums (all but SR's ``sum O_k O_l``, which :func:`add_o_products` adds from the O rows a
kernel stores) and the driver reduces and decodes both kinds; this is the one home of
the layout.

Iteration sums (float64, ``iteration_size``): a header

    [count, sum E, sum E^2, walkers, sum of walker means, sum of squared walker means,
     accepted moves, proposed moves, sum |chi|^2, sum p |chi|^2]

then ``sum O_k`` (n_params), ``sum E O_k`` (n_params) and, for stochastic
reconfiguration, ``sum O_k O_l`` (n_params^2, row-major). ``O_k = d ln psi / d theta_k``.
The last two header slots are filled in diffusion mode only:
chi is the Gaussian part of a proposed move (its displacement less the drift) and p its
acceptance probability (0 for a move across a node), whence the effective time step
``tau_eff = tau sum p |chi|^2 / sum |chi|^2`` (``dmc/``).

Production sums (float64, ``PRODUCTION_SIZE``): ``[count, sum E, sum E^2, accepted,
proposed]`` of the production samples so far.
"""

from __future__ import annotations

import math

import numpy as np

# Iteration sums: header slots (the kernels index them; numba freezes these globals).
S_COUNT, S_E, S_E2, S_WALKERS, S_WMEAN, S_WMEAN2, S_ACC, S_PROP, S_CHI2, S_CHI2_ACC = range(10)
S_HEADER = 10

# Production sums.
P_COUNT, P_E, P_E2, P_ACC, P_PROP = range(5)
PRODUCTION_SIZE = 5


def iteration_size(n_params: int, with_s: bool = False) -> int:
    """Length of the iteration sums (with_s: also sum O O^T for SR)."""
    return S_HEADER + 2 * n_params + (n_params * n_params if with_s else 0)


def has_s(sums: np.ndarray, n_params: int) -> bool:
    """Whether an iteration-sums vector carries sum O O^T (its length says so)."""
    return sums.shape[0] > S_HEADER + 2 * n_params


def add_o_products(sums: np.ndarray, o_rows: np.ndarray, n_params: int) -> None:
    """Add sum_rows O O^T into the SR region of the iteration sums ``sums`` (in place).

    sums: (iteration_size(n_params, True),); o_rows: (rows, n_params), one sample's
    O = d ln psi / d theta per row. numpy's matmul of a matrix's transpose with itself
    is one BLAS symmetric rank-k update (syrk): rows * n_params^2 flops, half a
    general product's, and an exactly symmetric result.
    """
    oo = sums[S_HEADER + 2 * n_params :].reshape(n_params, n_params)  # a view
    oo += o_rows.T @ o_rows


def acceptance(accepted: float, proposed: float) -> float:
    """Accepted over proposed moves (0 when nothing was proposed)."""
    return accepted / max(proposed, 1.0)


def iteration_estimates(g: np.ndarray, n_params: int) -> dict:
    """Energy, error, variance, acceptance, gradient (n_params,) and the SR matrix
    S (n_params, n_params) or None, from globally summed iteration sums ``g``.

    The error is the spread of the per-walker means: chains are independent, and each
    walker mean already averages over its own autocorrelation, so
    ``std(walker means) / sqrt(n_walkers)`` is an honest standard error.
    Non-finite sums give non-finite estimates (the driver's guards decide).
    """
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        n = g[S_COUNT]
        energy = g[S_E] / n
        variance = max(g[S_E2] / n - energy * energy, 0.0)
        n_w = g[S_WALKERS]
        wmean = g[S_WMEAN] / n_w
        spread = max(g[S_WMEAN2] - n_w * wmean * wmean, 0.0) / max(n_w - 1.0, 1.0)
        o_mean = g[S_HEADER : S_HEADER + n_params] / n
        eo_mean = g[S_HEADER + n_params : S_HEADER + 2 * n_params] / n
        grad = 2.0 * (eo_mean - energy * o_mean)
        s_matrix = None
        if has_s(g, n_params):  # SR: S = <O O^T> - <O><O>^T
            oo = g[S_HEADER + 2 * n_params :].reshape(n_params, n_params) / n
            s_matrix = oo - np.outer(o_mean, o_mean)
    error = math.sqrt(spread / n_w) if n_w >= 2 else float("nan")  # one walker: unknown
    return {
        "energy": energy,
        "energy_error": error,
        "variance": variance,
        "acceptance": acceptance(g[S_ACC], g[S_PROP]),
        "gradient": grad,
        "s_matrix": s_matrix,
    }


def production_sums(e: np.ndarray, accepted: float, proposed: float) -> np.ndarray:
    """This rank's production sums of the local energies e (any shape)."""
    return np.array([e.size, e.sum(), np.square(e).sum(), accepted, proposed])


def production_estimates(g: np.ndarray) -> dict:
    """Energy, variance and acceptance from globally summed production sums."""
    energy = g[P_E] / g[P_COUNT]
    return {
        "energy": energy,
        "variance": max(g[P_E2] / g[P_COUNT] - energy * energy, 0.0),
        "acceptance": acceptance(g[P_ACC], g[P_PROP]),
    }
