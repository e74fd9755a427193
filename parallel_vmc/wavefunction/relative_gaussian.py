"""The relative Gaussian, a part of the generic slot (``wavefunction.extra_factor:
relative_gaussian``): ``exp(-g sum_{p<q} |x_p - x_q|^2)`` with one variational g.

It sets the width of the relative motion apart from that of the centre of mass: with
S = sum_q x_q, ``sum_{p<q} |x_p - x_q|^2 = P sum_p |x_p|^2 - |S|^2`` is the quadratic
form of the P - 1 relative modes (per axis) and leaves the centre of mass alone. So on
a Gaussian one-body factor of frequency omega it turns the relative modes' frequency
into ``omega + 2 g P``: g < 0 spreads a repelling pair, g > 0 squeezes it.

* ``ln psi_g = -g (P sum_p |x_p|^2 - |S|^2)``;
* ``nabla_p ln psi_g = -2 g (P x_p - S)``; every ``d_i^2 ln psi_g = -2 g (P - 1)``;
* particle p moved by dx: ``Delta ln psi_g = -g [(P - 1) |dx|^2 + 2 dx . (P x_p - S)]``;
* ``d ln psi_g / d g = -(P sum_p |x_p|^2 - |S|^2)``.

The cache is S (D,): a move and its gradients are O(D), a refresh O(P D).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from . import generic


class RelativeGaussianParams(NamedTuple):
    """Where g sits in theta, and P (scalars only: see ``compose.py``)."""

    offset: int  # g = theta[offset]
    n_particles: int  # P


def kernel_params(wf, offset: int) -> RelativeGaussianParams:
    """The part's tuple for a ``WaveFunction`` whose block starts at offset."""
    return RelativeGaussianParams(offset, wf.particles)


@njit(cache=True, inline="always")
def _squares(prm, x, D):
    """(sum_p |x_p|^2, |S|^2) from x alone: for ln psi and d ln psi / d g."""
    total = 0.0
    s2 = 0.0
    for d in range(D):
        s = 0.0
        for p in range(prm.n_particles):
            v = x[p * D + d]
            s += v
            total += v * v
        s2 += s * s
    return total, s2


def _log_psi(theta, prm, x, D):
    total, s2 = _squares(prm, x, D)
    return -theta[prm.offset] * (prm.n_particles * total - s2)


def _new_cache(prm, D):
    return np.empty(D)


def _refresh(theta, prm, cache, x):
    D = cache.shape[0]
    for d in range(D):
        s = 0.0
        for p in range(prm.n_particles):
            s += x[p * D + d]
        cache[d] = s


def _move_ratio(theta, prm, cache, x, p, dx, D):
    P = prm.n_particles
    dx2 = 0.0
    cross = 0.0
    for d in range(D):
        dx2 += dx[d] * dx[d]
        cross += dx[d] * (P * x[p * D + d] - cache[d])
    # |psi(x')/psi(x)|^2 = exp(2 Delta ln psi_g)
    return -2.0 * theta[prm.offset] * ((P - 1) * dx2 + 2.0 * cross), 1.0


def _add_gradient(theta, prm, cache, x, p, D, out):
    g2 = 2.0 * theta[prm.offset]
    for d in range(D):
        out[d] -= g2 * (prm.n_particles * x[p * D + d] - cache[d])


def _add_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    g2 = 2.0 * theta[prm.offset]
    for d in range(D):
        out[d] -= g2 * ((prm.n_particles - 1) * dx[d] + prm.n_particles * x[p * D + d] - cache[d])


def _commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    for d in range(D):
        cache[d] += dx[d]


def _add_grad_lap(theta, prm, cache, x, D, grad, lap):
    g2 = 2.0 * theta[prm.offset]
    P = prm.n_particles
    for p in range(P):
        for d in range(D):
            grad[p * D + d] -= g2 * (P * x[p * D + d] - cache[d])
    return -g2 * (P - 1) * P * D


def _parameter_derivatives(theta, prm, cache, x, D, out):
    total, s2 = _squares(prm, x, D)
    out[prm.offset] = -(prm.n_particles * total - s2)


generic.implement(
    RelativeGaussianParams,
    log_psi=_log_psi,
    new_cache=_new_cache,
    refresh=_refresh,
    move_ratio=_move_ratio,
    add_gradient=_add_gradient,
    add_proposed_gradient=_add_proposed_gradient,
    commit=_commit,
    add_grad_lap=_add_grad_lap,
    parameter_derivatives=_parameter_derivatives,
)
