"""The Padé-Jastrow pair part of psi: ``exp(J)``, ``J = sum_{p<q} u(r_pq)``,
``u(r) = A r / (1 + beta r)``.

Derivatives (one home each, below):

* ``u'(r) = A / (1 + beta r)^2``, ``u''(r) = -2 A beta / (1 + beta r)^3``;
* ``nabla_p J = sum_{q != p} u'(r_pq) (x_p - x_q) / r_pq``;
* ``nabla_p^2 J = sum_{q != p} [ u''(r_pq) + (D-1) u'(r_pq) / r_pq ]``;
* ``d J / d beta_k = - sum_{pairs of kind k} A r^2 / (1 + beta_k r)^2``.

The cusp ``A`` is fixed so that the kinetic energy cancels the ``1/r_pq`` of the
Coulomb repulsion at coalescence: ``A = 1/(D-1)`` for antiparallel spins and
``1/(D+1)`` for parallel ones (2D: 1 and 1/3; 3D: 1/2 and 1/4). Spins are those of a
closed-shell state: particles ``0 .. ceil(P/2)-1`` up, the rest down. ``beta`` is
variational, one value per kind of pair: the block ``[beta_antiparallel,
beta_parallel]`` of theta. The part keeps no state between moves (every operation is
O(P) from the positions); its cache is a (D,) scratch for the proposed position.

The operations follow the part contract of ``compose.py``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..system import distance, pair_distance

N_PAIR_KINDS = 2       # antiparallel, parallel


class PadeParams(NamedTuple):
    """Where the betas sit in theta, and the fixed numbers (scalars only: see
    ``compose.py``)."""

    offset: int          # beta_kind = theta[offset + kind]
    n_particles: int     # P
    n_up: int            # particles 0 .. n_up-1 have spin up
    cusp_anti: float     # A of antiparallel pairs
    cusp_para: float     # A of parallel pairs


def blocks() -> tuple:
    """The named sub-blocks of the parameter block: ((name, shape), ...)."""
    return (("jastrow_beta", (N_PAIR_KINDS,)),)


def n_up(P: int) -> int:
    """Closed-shell spins: the first ceil(P/2) particles up, the rest down."""
    return (P + 1) // 2


def cusps(D: int) -> tuple:
    """(A antiparallel, A parallel) = (1/(D-1), 1/(D+1))."""
    if D < 2:
        raise ValueError("the Padé-Jastrow cusp 1/(D-1) needs D >= 2")
    return 1.0 / (D - 1), 1.0 / (D + 1)


def params(offset: int, P: int, D: int) -> PadeParams:
    return PadeParams(offset, P, n_up(P), *cusps(D))


@njit(cache=True, inline="always")
def pair_kind(prm, p, q):
    """0 for an antiparallel pair, 1 for a parallel one."""
    return 1 if (p < prm.n_up) == (q < prm.n_up) else 0


@njit(cache=True, inline="always")
def cusp(prm, kind):
    return prm.cusp_para if kind == 1 else prm.cusp_anti


def pade_cusps(P: int, D: int):
    """(A, kind): cusp A_pq of every pair (0 on the diagonal) and its kind (0 for
    antiparallel, 1 for parallel spins), both (P, P); for the run file and tools."""
    prm = params(0, P, D)
    kind = np.array([[pair_kind(prm, p, q) for q in range(P)] for p in range(P)],
                    dtype=np.int64)
    A = np.where(kind == 1, prm.cusp_para, prm.cusp_anti)
    np.fill_diagonal(A, 0.0)
    return A, kind


# --------------------------------------------------------------------------- u(r)

@njit(cache=True, inline="always")
def pade_u(r, A, beta):
    """u(r) = A r / (1 + beta r)."""
    return A * r / (1.0 + beta * r)


@njit(cache=True, inline="always")
def pade_u_difference(r_new, r_old, A, beta):
    """u(r_new) - u(r_old) over one common denominator (one division, not two)."""
    return A * (r_new - r_old) / ((1.0 + beta * r_new) * (1.0 + beta * r_old))


@njit(cache=True, inline="always")
def pade_slopes(r, A, beta):
    """(u'(r) / r, u''(r)); the compiler drops u'' where only the first is used."""
    t = 1.0 + beta * r
    return A / (t * t * r), -2.0 * A * beta / (t * t * t)


@njit(cache=True, inline="always")
def pade_u_dbeta(r, A, beta):
    """d u / d beta = -A r^2 / (1 + beta r)^2."""
    t = 1.0 + beta * r
    return -A * r * r / (t * t)


@njit(cache=True, inline="always")
def pair_constants(theta, prm, p, q):
    """(A, beta, kind) of the pair (p, q)."""
    k = pair_kind(prm, p, q)
    return cusp(prm, k), theta[np.uint64(prm.offset + k)], k   # unsigned: see rbm.weight


# --------------------------------------------------------------------------- the contract

@njit(cache=True)
def log_psi(theta, prm, x, D):
    """J for one configuration x (P*D,)."""
    J = 0.0
    for p in range(prm.n_particles):
        for q in range(p + 1, prm.n_particles):
            A, beta, _ = pair_constants(theta, prm, p, q)
            J += pade_u(pair_distance(x, p, q, D), A, beta)
    return J


@njit(cache=True, inline="always")
def new_cache(prm, D):
    """Per-walker scratch: the proposed position of the moving particle, (D,)."""
    return np.empty(D)


@njit(cache=True, inline="always")
def refresh(theta, prm, cache, x):
    """Nothing kept between moves."""


@njit(cache=True, inline="always")
def move_ratio(theta, prm, cache, x, p, dx, D):
    """(2 [J(x') - J(x)], 1.0) for particle p moved by dx (D,): O(P)."""
    for d in range(D):
        cache[d] = x[p * D + d] + dx[d]
    dJ = 0.0
    for q in range(prm.n_particles):
        if q == p:
            continue
        A, beta, _ = pair_constants(theta, prm, p, q)
        dJ += pade_u_difference(distance(cache, 0, x, q, D), pair_distance(x, p, q, D),
                                A, beta)
    return 2.0 * dJ, 1.0


@njit(cache=True, inline="always")
def add_particle_gradient(theta, prm, y, i, x, p, D, out):
    """Add nabla_p J with particle p at y[i:i+D] to out (D,)."""
    for q in range(prm.n_particles):
        if q == p:
            continue
        A, beta, _ = pair_constants(theta, prm, p, q)
        fr, _ = pade_slopes(distance(y, i, x, q, D), A, beta)
        for d in range(D):
            out[d] += fr * (y[i + d] - x[q * D + d])


@njit(cache=True, inline="always")
def add_gradient(theta, prm, cache, x, p, D, out):
    """Add nabla_p J at the current position to out (D,) (the cache is not used, so
    this may come before or after ``move_ratio``)."""
    add_particle_gradient(theta, prm, x, p * D, x, p, D, out)


@njit(cache=True, inline="always")
def add_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    """Add nabla_p J at the proposed position (kept by ``move_ratio``) to out (D,)."""
    add_particle_gradient(theta, prm, cache, 0, x, p, D, out)


@njit(cache=True, inline="always")
def commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    """Nothing kept between moves."""


@njit(cache=True, inline="always")
def add_grad_lap(theta, prm, cache, x, D, grad, lap):
    """Add nabla J to grad (P*D,); return sum_p nabla_p^2 J (lap is left alone)."""
    total = 0.0
    for p in range(prm.n_particles):
        for q in range(p + 1, prm.n_particles):
            A, beta, _ = pair_constants(theta, prm, p, q)
            fr, f2 = pade_slopes(pair_distance(x, p, q, D), A, beta)
            for d in range(D):
                g = fr * (x[p * D + d] - x[q * D + d])
                grad[p * D + d] += g
                grad[q * D + d] -= g
            total += 2.0 * (f2 + (D - 1) * fr)     # the pair enters nabla_p^2 and nabla_q^2
    return total


@njit(cache=True, inline="always")
def parameter_derivatives(theta, prm, cache, x, D, out):
    """d J / d beta_k into out[offset + k] for every kind k of pair."""
    for k in range(N_PAIR_KINDS):
        out[prm.offset + k] = 0.0
    for p in range(prm.n_particles):
        for q in range(p + 1, prm.n_particles):
            A, beta, k = pair_constants(theta, prm, p, q)
            out[prm.offset + k] += pade_u_dbeta(pair_distance(x, p, q, D), A, beta)
