"""The Slater part of psi for fermions: ``det D_up * det D_down * G``.

``D_up[k, j] = phi_j(r_k)`` over the first ``n = P/2`` particles (spin up), ``D_down``
over the rest; orbitals are the ``n`` lowest harmonic-oscillator states, filled shell
by shell, without their Gaussian (the RBM carries ``exp(-omega |x|^2 / 2)``):

    phi_j(r) = prod_d H_{n_jd}(s r_d),   s = sqrt(alpha omega)

with physicists' Hermite polynomials (``H_0 = 1``, ``H_1 = 2t``, ``H_{m+1} = 2t H_m -
2m H_{m-1}``, ``H_m' = 2m H_{m-1}``). ``alpha`` is the variational orbital scale, the
block ``[orbital_scale]`` of theta (start 1). The factor ``G = exp(-(alpha - 1) omega
sum_p |r_p|^2 / 2)`` turns the RBM's Gaussian into the one of width ``alpha omega``, so
a change of alpha rescales whole orbitals (the classic one-parameter Slater-Jastrow
form; at alpha = 1 and a = b = W = 0 psi is the exact non-interacting ground state).
This holds with the RBM at its exact width (``wavefunction.sigma: null``); with another
sigma the RBM's Gaussian is not exp(-omega r^2/2), and alpha then scales the Hermite
polynomials and adds a Gaussian factor, still a valid variational family.

Formulas (one home each, below), with ``Dinv`` the inverse of the particle's spin
matrix and ``k`` the particle's row in it:

* ratio of a move of particle p to r': ``R = sum_j phi_j(r') Dinv[j, k]`` (O(n));
* accepted move: Sherman-Morrison, ``Dinv'[:, k] = Dinv[:, k] / R`` and
  ``Dinv'[:, q] = Dinv[:, q] - (sum_j phi_j(r') Dinv[j, q]) Dinv'[:, k]`` (O(n^2));
* ``nabla_p ln|det| = sum_j nabla phi_j(r_p) Dinv[j, k]``,
  ``nabla_p^2 ln|det| = sum_j nabla^2 phi_j(r_p) Dinv[j, k] - |nabla_p ln|det||^2``;
* ``d ln|det| / d alpha = sum_p r_p . nabla_p ln|det| / (2 alpha)`` (the orbitals are
  functions of ``s r``), ``d ln G / d alpha = -omega sum_p |r_p|^2 / 2``.

The ratio can be negative (a move across the nodal surface): the part returns ``R^2``
as its factor and keeps ``R`` in its cache (``signed_log_psi`` gives the sign of psi,
for tests and tools; sampling needs only |psi|^2). The inverses
are rebuilt from scratch every ``refresh_every`` sweeps (``refresh_checked`` reports
how far the updated ones had drifted).

Cache (one flat array per walker, ``new_cache``; offsets from ``slots``): both
inverses transposed, ``T[k*n + j] = Dinv[j, k]``, so that row k holds what a move of
the k-th particle of a spin needs; the orbitals at the proposal; Hermite tables; the
orbitals' quantum numbers; the proposed position; scalars (R, s, alpha); work
space for a rebuild.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .. import shells
from ..jit.unsigned import u
from ..runfile.schema import orbitals_text

R_SLOT, S_SLOT, ALPHA_SLOT = range(3)  # scalars at slots()[SCALARS]
N_SCALARS = 3
(INV, PHI, SM, HERM, QN, Y, SCALARS, WORK, SIZE) = range(9)  # names of slots()


class SlaterParams(NamedTuple):
    """Where alpha sits in theta, and the fixed numbers (scalars only: see
    ``compose.py``)."""

    offset: int  # alpha = theta[offset]
    n_particles: int  # P; particles 0 .. n-1 spin up, n .. P-1 down
    n_orbitals: int  # n = P / 2 per spin
    n_table: int  # Hermite polynomials kept per dimension: H_0 .. H_{n_table-1}
    omega: float
    refresh_every: int  # sweeps between rebuilds of the inverses


# --------------------------------------------------------------------------- shells

# The oscillator shells (shells.py) are numba-free, for config checks; the kernel's
# cache builds its orbitals with the same function compiled.
quantum_numbers = njit(cache=True)(shells.quantum_numbers)


def shell_filling(P: int, D: int) -> str:
    """The occupied orbitals of one spin, for the summary, ``pvmc info`` and the run
    file: e.g. '3 per spin: (0,0) (1,0) (0,1)'."""
    return orbitals_text(quantum_numbers(P // 2, D))


def kernel_params(wf, offset: int) -> SlaterParams:
    """The determinants' tuple for a ``WaveFunction`` whose block starts at offset."""
    return params(offset, wf.particles, wf.dimensions, wf.omega, wf.determinant_refresh)


def params(offset: int, P: int, D: int, omega: float, refresh_every: int) -> SlaterParams:
    n = P // 2
    top = int(quantum_numbers(n, D).sum(axis=1).max())
    return SlaterParams(offset, P, n, max(top + 1, 2), float(omega), int(refresh_every))


# --------------------------------------------------------------------------- cache layout
# The small helpers are inlined by numba (inline="always"): as calls they made a
# fermion move 10-20 % slower (P = 6: 375 vs 305 ns). The operations done once per
# sweep or per rebuild are calls: inlined everywhere, they took the first compile of
# the importance-sampling kernel from 55 s to 106 s of CPU. The per-move operations
# stay with numba's inlining, not jit/inline.py's: compiled each on its own and inlined
# by LLVM, the N = 6 production move was ~8 % slower (pvmc bench, alternating runs).


@njit(cache=True, inline="always")
def slots(prm, D):
    """Offsets of the cache's regions (indexed by INV .. WORK) and its SIZE."""
    n, nt = prm.n_orbitals, prm.n_table
    inv = 0  # T_up, T_down: 2 n^2
    phi = inv + 2 * n * n  # orbitals at the proposal: n
    sm = phi + n  # Sherman-Morrison scratch: n
    herm = sm + n  # H, H', H'' per dimension: 3 D nt
    qn = herm + 3 * D * nt  # quantum numbers: n D
    y = qn + n * D  # proposed position: D
    sc = y + D  # scalars
    work = sc + N_SCALARS  # a rebuild's matrix and inverse: 2 n^2
    return inv, phi, sm, herm, qn, y, sc, work, work + 2 * n * n


@njit(cache=True, inline="always")
def orbital_scale(theta, prm):
    return theta[np.uint64(prm.offset)]  # unsigned: see rbm.weight


# --------------------------------------------------------------------------- orbitals


@njit(cache=True, inline="always")
def fill_hermite(prm, cache, y, i, D, derivatives):
    """H_m(s y_d) for the point y[i:i+D] into the cache's Hermite table, and (if
    derivatives) their first and second derivatives in y_d: s 2m H_{m-1} and
    s^2 4m(m-1) H_{m-2}."""
    sl = slots(prm, D)
    nt = prm.n_table
    s = cache[u(sl[SCALARS] + S_SLOT)]
    for d in range(D):
        h = sl[HERM] + d * nt
        t = s * y[i + d]
        cache[u(h)] = 1.0
        cache[u(h + 1)] = 2.0 * t
        for m in range(1, nt - 1):
            cache[u(h + m + 1)] = 2.0 * t * cache[u(h + m)] - 2.0 * m * cache[u(h + m - 1)]
        if derivatives:
            h1 = h + D * nt
            h2 = h1 + D * nt
            cache[u(h1)] = 0.0
            cache[u(h2)] = 0.0
            cache[u(h2 + 1)] = 0.0
            for m in range(1, nt):
                cache[u(h1 + m)] = 2.0 * m * s * cache[u(h + m - 1)]
            for m in range(2, nt):
                cache[u(h2 + m)] = 4.0 * m * (m - 1) * s * s * cache[u(h + m - 2)]


@njit(cache=True, inline="always")
def quantum_number(cache, sl, j, d, D):
    """n_jd, the quantum number of orbital j along dimension d (0 for d >= D)."""
    if d >= D:
        return 0
    return np.int64(cache[u(sl[QN] + j * D + d)])


@njit(cache=True, inline="always")
def table(prm, cache, sl, kind, d, m, D):
    """H_m (kind 0), H_m' (1) or H_m'' (2) of dimension d from the Hermite table; 1, 0,
    0 for d >= D (so that the formulas below serve D = 1, 2, 3 alike)."""
    if d >= D:
        return 1.0 if kind == 0 else 0.0
    return cache[u(sl[HERM] + (kind * D + d) * prm.n_table + m)]


@njit(cache=True, inline="always")
def orbital_value(prm, cache, sl, j, D):
    """phi_j at the point of the last ``fill_hermite``."""
    return (
        table(prm, cache, sl, 0, 0, quantum_number(cache, sl, j, 0, D), D)
        * table(prm, cache, sl, 0, 1, quantum_number(cache, sl, j, 1, D), D)
        * table(prm, cache, sl, 0, 2, quantum_number(cache, sl, j, 2, D), D)
    )


@njit(cache=True, inline="always")
def orbital_derivatives(prm, cache, sl, j, D):
    """(d_x phi_j, d_y phi_j, d_z phi_j, nabla^2 phi_j) at the point of the last
    ``fill_hermite(..., derivatives=True)`` (components beyond D are 0). Written out
    for three dimensions with scalars, not loops over D: the loops and a scratch
    array made E_L five times slower."""
    n0 = quantum_number(cache, sl, j, 0, D)
    n1 = quantum_number(cache, sl, j, 1, D)
    n2 = quantum_number(cache, sl, j, 2, D)
    h0, h1, h2 = (
        table(prm, cache, sl, 0, 0, n0, D),
        table(prm, cache, sl, 0, 1, n1, D),
        table(prm, cache, sl, 0, 2, n2, D),
    )
    d0, d1, d2 = (
        table(prm, cache, sl, 1, 0, n0, D),
        table(prm, cache, sl, 1, 1, n1, D),
        table(prm, cache, sl, 1, 2, n2, D),
    )
    lap = (
        table(prm, cache, sl, 2, 0, n0, D) * h1 * h2
        + h0 * table(prm, cache, sl, 2, 1, n1, D) * h2
        + h0 * h1 * table(prm, cache, sl, 2, 2, n2, D)
    )
    return d0 * h1 * h2, h0 * d1 * h2, h0 * h1 * d2, lap


# --------------------------------------------------------------------------- inverses


@njit(cache=True)
def invert(c, a, b, n):
    """c[b : b + n^2] = inverse of the n x n row-major matrix at c[a : a + n^2] (which
    is destroyed): Gauss-Jordan elimination with partial pivoting. Returns
    (ln|det A|, sign of det A); (-inf, 0.0) for a singular matrix."""
    for i in range(n * n):
        c[b + i] = 0.0
    for i in range(n):
        c[b + i * n + i] = 1.0
    log_det, sign = 0.0, 1.0
    for col in range(n):
        piv = col
        for r in range(col + 1, n):
            if abs(c[a + r * n + col]) > abs(c[a + piv * n + col]):
                piv = r
        if piv != col:
            sign = -sign
            for i in range(n):
                c[a + col * n + i], c[a + piv * n + i] = c[a + piv * n + i], c[a + col * n + i]
                c[b + col * n + i], c[b + piv * n + i] = c[b + piv * n + i], c[b + col * n + i]
        pivot = c[a + col * n + col]
        if pivot == 0.0:
            return -np.inf, 0.0
        log_det += np.log(abs(pivot))
        if pivot < 0.0:
            sign = -sign
        inv_pivot = 1.0 / pivot
        for i in range(n):
            c[a + col * n + i] *= inv_pivot
            c[b + col * n + i] *= inv_pivot
        for r in range(n):
            f = c[a + r * n + col]
            if r == col or f == 0.0:
                continue
            for i in range(n):
                c[a + r * n + i] -= f * c[a + col * n + i]
                c[b + r * n + i] -= f * c[b + col * n + i]
    return log_det, sign


@njit(cache=True, inline="always")
def slater_matrix_transposed(prm, cache, x, spin, D, out):
    """cache[out + j*n + k] = phi_j(r of the k-th particle of the spin)."""
    sl = slots(prm, D)
    n = prm.n_orbitals
    for k in range(n):
        fill_hermite(prm, cache, x, (spin * n + k) * D, D, False)
        for j in range(n):
            cache[out + j * n + k] = orbital_value(prm, cache, sl, j, D)


@njit(cache=True)
def rebuild_spin(prm, cache, x, spin, D, check):
    """Replace the stored inverse of one spin by a fresh one (T = inverse of the
    transposed Slater matrix). Returns (ln|det|, sign, drift): drift = max |D Dinv - I|
    of the inverse it replaced (0.0 unless check)."""
    sl = slots(prm, D)
    n = prm.n_orbitals
    a = sl[WORK]
    t = sl[INV] + spin * n * n
    slater_matrix_transposed(prm, cache, x, spin, D, a)
    drift = 0.0
    if check:
        for k in range(n):
            for q in range(n):
                e = -1.0 if k == q else 0.0
                for j in range(n):
                    e += cache[a + j * n + k] * cache[t + q * n + j]
                drift = max(drift, abs(e))
    fresh = a + n * n
    log_det, sign = invert(cache, a, fresh, n)
    # A singular matrix (a walker exactly on a node) leaves NaN: E_L is then not finite
    # and the driver's guards act, where a half-eliminated inverse would be used silently.
    for i in range(n * n):
        cache[t + i] = cache[fresh + i] if sign != 0.0 else np.nan
    return log_det, sign, drift


@njit(cache=True, inline="always")
def set_scale(theta, prm, cache, D):
    """alpha and s = sqrt(alpha omega) into the cache's scalars."""
    sc = slots(prm, D)[SCALARS]
    alpha = orbital_scale(theta, prm)
    cache[sc + ALPHA_SLOT] = alpha
    cache[sc + S_SLOT] = np.sqrt(alpha * prm.omega)


@njit(cache=True, error_model="numpy")
def rebuild(theta, prm, cache, x, D, check):
    """Both inverses from scratch for x (P*D,), alpha from theta. Returns (ln|det_up
    det_down|, its sign, drift): drift = max |D Dinv - I| of the replaced inverses if
    check (the cache must then hold inverses for this x), else 0."""
    set_scale(theta, prm, cache, D)
    lu, su, eu = rebuild_spin(prm, cache, x, 0, D, check)
    ld, sd, ed = rebuild_spin(prm, cache, x, 1, D, check)
    return lu + ld, su * sd, max(eu, ed)


@njit(cache=True, error_model="numpy")
def refresh_checked(theta, prm, cache, x, D):
    """Rebuild both inverses for x (P*D,); returns how far the replaced ones had
    drifted, max |D Dinv - I|."""
    return rebuild(theta, prm, cache, x, D, True)[2]


@njit(cache=True, inline="always")
def gaussian_coefficient(prm, cache, D):
    """c = (alpha - 1) omega of ln G = -c sum_p |r_p|^2 / 2."""
    return (cache[u(slots(prm, D)[SCALARS] + ALPHA_SLOT)] - 1.0) * prm.omega


@njit(cache=True, inline="always")
def spin_row(prm, p, D):
    """(spin, cache offset of row k of the spin's T) for particle p."""
    n = prm.n_orbitals
    spin = 1 if p >= n else 0
    return spin, slots(prm, D)[INV] + spin * n * n + (p - spin * n) * n


@njit(cache=True, inline="always")
def det_gradient(prm, cache, y, i, t, D):
    """(g_x, g_y, g_z, L) at the point y[i:i+D] for the row T at cache[t:]:
    g = sum_j nabla phi_j T_j (nabla ln|det| when T is the particle's column of the
    inverse; components beyond D are 0) and L = sum_j nabla^2 phi_j T_j."""
    sl = slots(prm, D)
    fill_hermite(prm, cache, y, i, D, True)
    g0, g1, g2, lap = 0.0, 0.0, 0.0, 0.0
    for j in range(prm.n_orbitals):
        w = cache[u(t + j)]
        e0, e1, e2, el = orbital_derivatives(prm, cache, sl, j, D)
        g0 += w * e0
        g1 += w * e1
        g2 += w * e2
        lap += w * el
    return g0, g1, g2, lap


@njit(cache=True, inline="always")
def component(g0, g1, g2, d):
    """The d-th of three components."""
    return g0 if d == 0 else (g1 if d == 1 else g2)


# --------------------------------------------------------------------------- the contract


@njit(cache=True, error_model="numpy")
def signed_log_psi(theta, prm, x, D):
    """(ln|part|, sign of the part) at one configuration x (P*D,)."""
    cache = new_cache(prm, D)
    log_det, sign, _ = rebuild(theta, prm, cache, x, D, False)
    r2 = 0.0
    for i in range(x.shape[0]):
        r2 += x[i] * x[i]
    return log_det - 0.5 * gaussian_coefficient(prm, cache, D) * r2, sign


@njit(cache=True, error_model="numpy")
def log_psi(theta, prm, x, D):
    """ln|part| at one configuration x (P*D,)."""
    return signed_log_psi(theta, prm, x, D)[0]


@njit(cache=True, inline="always")
def new_cache(prm, D):
    """Per-walker cache (slots(prm, D)[SIZE],) with the quantum numbers filled in; an
    empty array when the part is absent (prm None)."""
    if prm is None:
        return np.empty(0)
    else:
        sl = slots(prm, D)
        cache = np.zeros(sl[SIZE])
        q = quantum_numbers(prm.n_orbitals, D)
        for j in range(prm.n_orbitals):
            for d in range(D):
                cache[sl[QN] + j * D + d] = q[j, d]
        return cache


@njit(cache=True, error_model="numpy")
def refresh(theta, prm, cache, x):
    """Both inverses from scratch for position x (P*D,)."""
    rebuild(theta, prm, cache, x, x.shape[0] // prm.n_particles, False)


@njit(cache=True, inline="always")
def move_ratio(theta, prm, cache, x, p, dx, D):
    """(ln G'^2/G^2, R^2) for particle p moved by dx (D,); keeps the proposal, its
    orbital values and R in the cache."""
    sl = slots(prm, D)
    _, t = spin_row(prm, p, D)
    r2_old, r2_new = 0.0, 0.0
    for d in range(D):
        xo = x[p * D + d]
        yn = xo + dx[d]
        cache[u(sl[Y] + d)] = yn
        r2_old += xo * xo
        r2_new += yn * yn
    fill_hermite(prm, cache, cache, sl[Y], D, False)
    R = 0.0
    for j in range(prm.n_orbitals):
        v = orbital_value(prm, cache, sl, j, D)
        cache[u(sl[PHI] + j)] = v
        R += v * cache[u(t + j)]
    cache[u(sl[SCALARS] + R_SLOT)] = R
    return -gaussian_coefficient(prm, cache, D) * (r2_new - r2_old), R * R


@njit(cache=True, inline="always")
def proposal_sign(prm, cache, D):
    """The sign of the determinants' ratio R of the last ``move_ratio`` (+1.0 or -1.0;
    R = 0, a proposal on a node, counts as a crossing)."""
    return 1.0 if cache[u(slots(prm, D)[SCALARS] + R_SLOT)] > 0.0 else -1.0


@njit(cache=True, inline="always")
def add_gradient(theta, prm, cache, x, p, D, out):
    """Add nabla_p ln|part| at the current position to out (D,)."""
    _, t = spin_row(prm, p, D)
    g0, g1, g2, _ = det_gradient(prm, cache, x, p * D, t, D)
    c = gaussian_coefficient(prm, cache, D)
    for d in range(D):
        out[d] += component(g0, g1, g2, d) - c * x[p * D + d]


@njit(cache=True, inline="always")
def add_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    """Add nabla_p ln|part| at the proposal of ``move_ratio`` to out (D,): the new
    inverse's column is the old one over R."""
    sl = slots(prm, D)
    _, t = spin_row(prm, p, D)
    g0, g1, g2, _ = det_gradient(prm, cache, cache, sl[Y], t, D)
    inv_r = 1.0 / cache[u(sl[SCALARS] + R_SLOT)]
    c = gaussian_coefficient(prm, cache, D)
    for d in range(D):
        out[d] += component(g0, g1, g2, d) * inv_r - c * cache[u(sl[Y] + d)]


@njit(cache=True, inline="always")
def commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    """Sherman-Morrison update of the moved particle's inverse (O(n^2)) with the
    orbitals at the proposal and R kept by ``move_ratio``; x (P*D,) is moved by the
    caller afterwards."""
    sl = slots(prm, D)
    n = prm.n_orbitals
    spin, t = spin_row(prm, p, D)
    base = sl[INV] + spin * n * n
    k = p - spin * n
    phi, sm = sl[PHI], sl[SM]
    for q in range(n):
        v = 0.0
        for j in range(n):
            v += cache[u(phi + j)] * cache[u(base + q * n + j)]
        cache[u(sm + q)] = v
    R = cache[u(sl[SCALARS] + R_SLOT)]
    inv_r = 1.0 / R
    for j in range(n):
        cache[u(t + j)] *= inv_r
    for q in range(n):
        if q != k:
            f = cache[u(sm + q)]
            for j in range(n):
                cache[u(base + q * n + j)] -= f * cache[u(t + j)]


@njit(cache=True, error_model="numpy", fastmath={"contract"})  # as the kernel
def add_grad_lap(theta, prm, cache, x, D, grad, lap):
    """Add nabla ln|part| to grad (P*D,); return sum_p nabla_p^2 ln|part| (lap is left
    alone)."""
    # The kernel passes D as a literal (jit/literal.py), so this is compiled for its D.
    # Branches on D == 2, 3 here were all compiled for every signature: numba does not
    # prune them for a literal argument (34 s of a Slater kernel's 99 s compile).
    return _add_grad_lap(prm, cache, x, D, grad)


@njit(cache=True, inline="always")
def _add_grad_lap(prm, cache, x, D, grad):
    """``add_grad_lap`` for one dimension D."""
    c = gaussian_coefficient(prm, cache, D)
    total = 0.0
    for p in range(prm.n_particles):
        _, t = spin_row(prm, p, D)
        g0, g1, g2, lap_det = det_gradient(prm, cache, x, p * D, t, D)
        for d in range(D):
            grad[p * D + d] += component(g0, g1, g2, d) - c * x[p * D + d]
        total += lap_det - (g0 * g0 + g1 * g1 + g2 * g2) - c * D
    return total


@njit(cache=True, error_model="numpy")
def parameter_derivatives(theta, prm, cache, x, D, out):
    """d ln|part| / d alpha into out[offset]."""
    x_dot_g, r2 = 0.0, 0.0
    for p in range(prm.n_particles):
        _, t = spin_row(prm, p, D)
        g0, g1, g2, _ = det_gradient(prm, cache, x, p * D, t, D)
        for d in range(D):
            xi = x[p * D + d]
            x_dot_g += xi * component(g0, g1, g2, d)
            r2 += xi * xi
    alpha = cache[slots(prm, D)[SCALARS] + ALPHA_SLOT]
    out[prm.offset] = x_dot_g / (2.0 * alpha) - 0.5 * prm.omega * r2
