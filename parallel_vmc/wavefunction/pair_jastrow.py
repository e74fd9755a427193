"""The pair parts of psi, ``prod_{p<q} f(r_pq) = exp(sum_{p<q} u(r_pq))``: one skeleton
(below "the contract": the sums over pairs, O(P) per single-particle move) and two pair
laws ``u(r)``, chosen by the type of the part's parameter tuple at compile time.

**Padé-Jastrow** (``wavefunction.jastrow: pade``, ``PadeParams``):
``u(r) = A r / (1 + beta r)``,

* ``u'(r) = A / (1 + beta r)^2``, ``u''(r) = -2 A beta / (1 + beta r)^3``;
* ``d u / d beta_k = - A r^2 / (1 + beta_k r)^2`` (pairs of kind k).

The cusp ``A`` is fixed so that the kinetic energy cancels the ``1/r_pq`` of the
Coulomb repulsion at coalescence: ``A = 1/(D-1)`` for antiparallel spins and
``1/(D+1)`` for parallel ones (2D: 1 and 1/3; 3D: 1/2 and 1/4). Spins are those of a
closed-shell state: particles ``0 .. ceil(P/2)-1`` up, the rest down. ``beta`` is
variational, one value per kind of pair: the block ``[beta_antiparallel,
beta_parallel]`` of theta.

**Hard spheres** (``wavefunction.jastrow: hard_sphere``, ``HardSphereParams``):
``f(r) = 1 - a/r`` for ``r > a``, 0 otherwise, so ``u = ln f = ln(r - a) - ln r``,

* ``u'(r) = a / (r (r - a))``, ``u''(r) = -a (2r - a) / (r^2 (r - a)^2)``;
* no parameters (``a`` is ``system.hard_sphere_radius``). A move into an overlap has
  the ratio 0 (a factor, never a logarithm of ``f <= 0``).

For either law (one home each, in the skeleton):

* ``nabla_p ln psi = sum_{q != p} u'(r_pq) (x_p - x_q) / r_pq``;
* ``nabla_p^2 ln psi = sum_{q != p} [ u''(r_pq) + (D-1) u'(r_pq) / r_pq ]``.

The part keeps the table of pair distances and of u'(r)/r per walker (below "the
contract"): a move is O(P), a refresh O(P^2). The law's functions
(``pair_log``, ``pair_ratio``, ``pair_slopes``, ``n_kinds``, ``pair_dparam``) are
numba overloads on the parameter tuple's type: each kernel is compiled with one law
inlined, and no jitted function is passed as an argument.

The operations follow the part contract of ``compose.py``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core.errors import NumbaIRAssumptionWarning
from numba.extending import overload

from ..hamiltonian.geometry import distance, pair_distance
from ..jit.inline import inlined
from ..jit.unsigned import u
from .layout import N_PAIR_KINDS  # antiparallel, parallel

# Inlining the pair laws' overloads makes numba's SSA pass print a "pedantic" internal
# warning per compiled kernel (variables of the inlined overloads "not in scope"); the
# compiled code is right (the parts' tests check it against ln psi), and a user
# compiling a kernel should not see pages of it.
warnings.filterwarnings("ignore", category=NumbaIRAssumptionWarning)


class PadeParams(NamedTuple):
    """Where the betas sit in theta, and the fixed numbers (scalars only: see
    ``compose.py``)."""

    offset: int  # beta_kind = theta[offset + kind]
    n_particles: int  # P
    n_up: int  # particles 0 .. n_up-1 have spin up
    cusp_anti: float  # A of antiparallel pairs
    cusp_para: float  # A of parallel pairs


class HardSphereParams(NamedTuple):
    """The hard-sphere pair factor's fixed numbers (it has no parameters)."""

    offset: int  # where its (empty) block would sit in theta
    n_particles: int  # P
    radius: float  # a: f = 1 - a/r for r > a, else 0


def hard_sphere_params(offset: int, P: int, radius: float) -> HardSphereParams:
    if not radius > 0.0:
        raise ValueError(f"the hard-sphere radius must be > 0, got {radius}")
    return HardSphereParams(offset, P, float(radius))


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


def pade_kernel_params(wf, offset: int) -> PadeParams:
    """The Padé-Jastrow tuple for a ``WaveFunction`` whose block starts at offset."""
    return params(offset, wf.particles, wf.dimensions)


def hard_sphere_kernel_params(wf, offset: int) -> HardSphereParams:
    """The hard-sphere tuple for a ``WaveFunction`` (offset: where its empty block sits)."""
    return hard_sphere_params(offset, wf.particles, wf.hard_sphere_radius)


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
    kind = np.array([[pair_kind(prm, p, q) for q in range(P)] for p in range(P)], dtype=np.int64)
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
    return cusp(prm, k), theta[np.uint64(prm.offset + k)], k  # unsigned: see rbm.weight


@njit(cache=True, inline="always")
def hard_sphere_f_ratio(r_new, r_old, a):
    """f(r_new) / f(r_old) = (r_new - a) r_old / (r_new (r_old - a)) (one division), 0
    for r_new <= a; r_old > a."""
    if r_new <= a:
        return 0.0
    return (r_new - a) * r_old / (r_new * (r_old - a))


@njit(cache=True, inline="always")
def hard_sphere_u(r, a):
    """u(r) = ln f(r) = ln(1 - a/r); -inf inside the core (r <= a)."""
    return np.log1p(-a / r) if r > a else -np.inf


@njit(cache=True, inline="always")
def hard_sphere_slopes(r, a):
    """(u'(r) / r, u''(r)) of u = ln(1 - a/r), r > a: u' = a / (r (r - a)),
    u'' = -a (2r - a) / (r^2 (r - a)^2)."""
    t = r - a
    return a / (r * r * t), -a * (2.0 * r - a) / (r * r * t * t)


# --------------------------------------------------------------------------- the laws
# Stubs for the pair laws; numba compiles the overload matching the parameter tuple.


def pair_log(theta, prm, p, q, r):
    """u(r) of the pair (p, q)."""
    raise NotImplementedError("jitted only")


def pair_ratio(theta, prm, p, q, r_new, r_old):
    """(u(r_new) - u(r_old) in log form, f(r_new) / f(r_old) as a factor): a law puts
    its change in one of the two and 0.0 / 1.0 in the other."""
    raise NotImplementedError("jitted only")


def pair_slopes(theta, prm, p, q, r):
    """(u'(r) / r, u''(r)) of the pair (p, q)."""
    raise NotImplementedError("jitted only")


def n_kinds(prm):
    """Parameters of the law (one per kind of pair)."""
    raise NotImplementedError("jitted only")


def pair_dparam(theta, prm, p, q, r):
    """(kind k, d u / d theta_k) of the pair (p, q)."""
    raise NotImplementedError("jitted only")


def _law(prm):
    """'pade' or 'hard_sphere' for the numba type of a parameter tuple."""
    cls = getattr(prm, "instance_class", None)
    return {PadeParams: "pade", HardSphereParams: "hard_sphere"}.get(cls)


# The laws' implementations (plain functions, compiled where the overload is used).
def _pade_log(theta, prm, p, q, r):
    A, beta, _ = pair_constants(theta, prm, p, q)
    return pade_u(r, A, beta)


def _pade_ratio(theta, prm, p, q, r_new, r_old):
    A, beta, _ = pair_constants(theta, prm, p, q)
    return pade_u_difference(r_new, r_old, A, beta), 1.0


def _pade_slopes(theta, prm, p, q, r):
    A, beta, _ = pair_constants(theta, prm, p, q)
    return pade_slopes(r, A, beta)


def _pade_dparam(theta, prm, p, q, r):
    A, beta, k = pair_constants(theta, prm, p, q)
    return k, pade_u_dbeta(r, A, beta)


def _hard_sphere_ratio(theta, prm, p, q, r_new, r_old):
    return 0.0, hard_sphere_f_ratio(r_new, r_old, prm.radius)


def _hard_sphere_log(theta, prm, p, q, r):
    return hard_sphere_u(r, prm.radius)


def _hard_sphere_slopes(theta, prm, p, q, r):
    return hard_sphere_slopes(r, prm.radius)


# stub -> {law: implementation}; each stub's overload picks by the tuple's type
_IMPLEMENTATIONS = {
    pair_log: {"pade": _pade_log, "hard_sphere": _hard_sphere_log},
    pair_ratio: {"pade": _pade_ratio, "hard_sphere": _hard_sphere_ratio},
    pair_slopes: {"pade": _pade_slopes, "hard_sphere": _hard_sphere_slopes},
    n_kinds: {"pade": lambda prm: N_PAIR_KINDS, "hard_sphere": lambda prm: 0},
    pair_dparam: {"pade": _pade_dparam, "hard_sphere": lambda theta, prm, p, q, r: (0, 0.0)},
}


def _implementation(stub, prm):
    """The implementation of stub for the numba type prm of a parameter tuple."""
    return _IMPLEMENTATIONS[stub].get(_law(prm))


overload(pair_log, inline="always")(lambda theta, prm, p, q, r: _implementation(pair_log, prm))
overload(pair_ratio, inline="always")(
    lambda theta, prm, p, q, r_new, r_old: _implementation(pair_ratio, prm)
)
overload(pair_slopes, inline="always")(
    lambda theta, prm, p, q, r: _implementation(pair_slopes, prm)
)
overload(n_kinds, inline="always")(lambda prm: _implementation(n_kinds, prm))
overload(pair_dparam, inline="always")(
    lambda theta, prm, p, q, r: _implementation(pair_dparam, prm)
)


# --------------------------------------------------------------------------- the contract


@njit(cache=True)
def log_psi(theta, prm, x, D):
    """sum_{p<q} u(r_pq) for one configuration x (P*D,) (-inf with a hard-core overlap)."""
    J = 0.0
    for p in range(prm.n_particles):
        for q in range(p + 1, prm.n_particles):
            J += pair_log(theta, prm, p, q, pair_distance(x, p, q, D))
    return J


# The per-walker cache, one flat array (see ``compose.py``): the proposed position of
# the moving particle (D), the distance table r_pq (P*P), the proposal's distances
# r'_pq from the moving particle (P), the table of u'(r_pq)/r_pq (P*P) and the
# proposal's u'(r'_pq)/r'_pq (P). A move then computes P-1 distances instead of
# 2(P-1), and the drift at x costs no square root and no division. A cached distance
# is the very number a fresh computation gives (same operands, same order), so the
# table changes no result. A commit without the proposal's slopes (Metropolis) computes
# them after the acceptance, off the move's critical path. (Marking the table stale
# instead cost importance sampling more: the branch that rebuilt it kept numba's
# reference counts on every move, +35 ns for P = 2.)


@njit(cache=True, inline="always")
def _table(prm, D):
    """Offset of the distance table in the cache."""
    return D


@njit(cache=True, inline="always")
def distance_table(prm, D):
    """Offset of the table of current pair distances in the cache: r_pq at
    ``distance_table(prm, D) + p P + q`` (kept up to date by ``commit``)."""
    return _table(prm, D)


@njit(cache=True, inline="always")
def _proposed(prm, D):
    """Offset of the proposal's distances."""
    return D + prm.n_particles * prm.n_particles


@njit(cache=True, inline="always")
def _slope_table(prm, D):
    """Offset of the u'(r)/r table."""
    return D + prm.n_particles * prm.n_particles + prm.n_particles


@njit(cache=True, inline="always")
def _proposed_slopes(prm, D):
    """Offset of the proposal's u'(r')/r'."""
    return D + 2 * prm.n_particles * prm.n_particles + prm.n_particles


@njit(cache=True, inline="always")
def new_cache(prm, D):
    """Per-walker cache (D + 2 P^2 + 2 P,): see above; empty without the part (prm
    None: the kernel still allocates every part's cache)."""
    if prm is None:
        return np.empty(0)
    return np.empty(D + 2 * prm.n_particles * (prm.n_particles + 1))


@njit(cache=True, inline="always")
def _rebuild_slopes(theta, prm, cache, D):
    """The u'(r)/r table from the distance table."""
    P = prm.n_particles
    rt, ft = _table(prm, D), _slope_table(prm, D)
    for p in range(P):
        for q in range(p + 1, P):
            fr, _ = pair_slopes(theta, prm, p, q, cache[u(rt + p * P + q)])
            cache[u(ft + p * P + q)] = cache[u(ft + q * P + p)] = fr


@inlined
def refresh(theta, prm, cache, x):
    """Rebuild both tables for position x (P*D,): O(P^2)."""
    P = prm.n_particles
    D = x.shape[0] // P
    rt, ft = _table(prm, D), _slope_table(prm, D)
    for p in range(P):
        cache[u(rt + p * P + p)] = 0.0
        cache[u(ft + p * P + p)] = 0.0
        for q in range(p + 1, P):
            cache[u(rt + p * P + q)] = cache[u(rt + q * P + p)] = pair_distance(x, p, q, D)
    _rebuild_slopes(theta, prm, cache, D)


@inlined
def move_ratio(theta, prm, cache, x, p, dx, D):
    """(2 [J(x') - J(x)], prod_q (f(r'_pq) / f(r_pq))^2) for particle p moved by dx (D,):
    O(P), the old distances from the table. Each law puts its change in one of the two
    (the other stays 0 / 1)."""
    P = prm.n_particles
    rt, rn = _table(prm, D), _proposed(prm, D)
    for d in range(D):
        cache[d] = x[p * D + d] + dx[d]
    dJ = 0.0
    factor = 1.0
    for q in range(P):
        if q == p:
            continue
        r_new = distance(cache, 0, x, q, D)
        cache[u(rn + q)] = r_new
        lj, fj = pair_ratio(theta, prm, p, q, r_new, cache[u(rt + p * P + q)])
        dJ += lj
        factor *= fj
    return 2.0 * dJ, factor * factor


@inlined
def add_gradient(theta, prm, cache, x, p, D, out):
    """Add nabla_p J at the current position to out (D,), from the slope table (so this
    may come before or after ``move_ratio``)."""
    P = prm.n_particles
    ft = _slope_table(prm, D) + p * P
    for q in range(P):
        if q == p:
            continue
        fr = cache[u(ft + q)]
        for d in range(D):
            out[d] += fr * (x[p * D + d] - x[q * D + d])


@inlined
def add_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    """Add nabla_p J at the proposed position (kept by ``move_ratio``) to out (D,); keeps
    the proposal's u'/r for ``commit``."""
    P = prm.n_particles
    rn, fn = _proposed(prm, D), _proposed_slopes(prm, D)
    for q in range(P):
        if q == p:
            continue
        fr, _ = pair_slopes(theta, prm, p, q, cache[u(rn + q)])
        cache[u(fn + q)] = fr
        for d in range(D):
            out[d] += fr * (cache[d] - x[q * D + d])


@inlined
def commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    """Take the proposal's distances and slopes into the tables (row and column p);
    the slopes are computed here unless ``add_proposed_gradient`` did."""
    P = prm.n_particles
    rt, rn = _table(prm, D), _proposed(prm, D)
    ft, fn = _slope_table(prm, D), _proposed_slopes(prm, D)
    for q in range(P):
        if q == p:
            continue
        r = cache[u(rn + q)]
        if proposed_gradient_done:
            fr = cache[u(fn + q)]
        else:
            fr, _ = pair_slopes(theta, prm, p, q, r)
        cache[u(rt + p * P + q)] = cache[u(rt + q * P + p)] = r
        cache[u(ft + p * P + q)] = cache[u(ft + q * P + p)] = fr


@inlined
def add_grad_lap(theta, prm, cache, x, D, grad, lap):
    """Add nabla J to grad (P*D,); return sum_p nabla_p^2 J (lap is left alone)."""
    total = 0.0
    P = prm.n_particles
    rt = _table(prm, D)
    for p in range(P):
        for q in range(p + 1, P):
            fr, f2 = pair_slopes(theta, prm, p, q, cache[u(rt + p * P + q)])
            for d in range(D):
                g = fr * (x[p * D + d] - x[q * D + d])
                grad[p * D + d] += g
                grad[q * D + d] -= g
            total += 2.0 * (f2 + (D - 1) * fr)  # the pair enters nabla_p^2 and nabla_q^2
    return total


@inlined
def parameter_derivatives(theta, prm, cache, x, D, out):
    """d J / d theta_k into out[offset + k] for every kind k of pair (nothing for a law
    without parameters)."""
    if n_kinds(prm) == 0:
        return
    for k in range(n_kinds(prm)):
        out[prm.offset + k] = 0.0
    P = prm.n_particles
    rt = _table(prm, D)
    for p in range(P):
        for q in range(p + 1, P):
            k, value = pair_dparam(theta, prm, p, q, cache[u(rt + p * P + q)])
            out[prm.offset + k] += value
