"""psi as a product of parts, composed at compile time.

``psi = RBM x [correlation] x [Slater] x [generic]``: the RBM part is always there; an
optional part is passed as its parameter tuple or as ``None``, and numba compiles one version of
every function below per combination with the branches of absent parts pruned (so the
RBM-only kernel pays nothing for the other parts' code). Jitted functions are never passed
as arguments: that would defeat numba's on-disk cache.

The part contract. Each part module (``rbm.py``, ``pair_jastrow.py``, ``slater.py``, and
the generic slot's parts through ``generic.py``) provides these jitted operations on the
flat parameter vector ``theta`` (the part reads its own block), its parameter tuple
``prm``, its per-walker ``cache`` (one array) and a flat position vector ``x`` (P*D,).
Parameter tuples hold scalars only (offsets, sizes, fixed numbers) and caches are single
arrays: numba reference-counts every array taken out of a tuple, and in the move loop
those atomic counts cost more than the move itself (measured 2.4x). Arrays passed to
inlined functions are counted too, and LLVM removes those counts only around simple
code, so the kernel passes borrowed views (``borrow.py``) of its arrays.

How they are compiled: the functions below are inlined into the kernel by numba
(``inline="always"``), and they only call the parts' per-move operations. The RBM's
and the pair part's are compiled each on its own with the kernel's flags and inlined by
LLVM (``jit/inline.py``, the decorator ``inlined``): numba's inlining of whole parts
through this layer was most of a kernel's compile. A new part marks its per-move
operations so, unless its benchmark says otherwise (the Slater part's, see there). The
generic slot's operations are numba overloads (``generic.py``), inlined by numba.

* ``log_psi(theta, prm, x, D)``: ln |part| at x (for tests and tools);
* ``new_cache(prm, D)``, ``refresh(theta, prm, cache, x)``: the cache for a walker;
* ``move_ratio(theta, prm, cache, x, p, dx, D) -> (log_q, factor)``: the part's
  ``|psi(x')/psi(x)|^2 = exp(log_q) * factor`` for particle p moved by dx (D,), the
  proposal kept in the cache; a part whose ratio can change sign returns its square as
  the factor and keeps the sign in its cache (only the antisymmetric role may: the
  nodes of psi are its nodes);
* ``proposal_sign(prm, cache, D)`` (the antisymmetric role only): the sign (+1.0 or
  -1.0) of psi(x')/psi(x) of the last ``move_ratio``; -1 is a move across a node, which
  fixed-node diffusion rejects;
* ``add_gradient(theta, prm, cache, x, p, D, out)``: add nabla_p ln psi at x to out (D,);
* ``add_proposed_gradient(theta, prm, cache, x, p, dx, D, out)``: the same at the proposal;
* ``commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done)``: accept the proposal
  (before the caller moves x);
* ``add_grad_lap(theta, prm, cache, x, D, grad, lap) -> float``: add d_i ln psi to grad (M,)
  and either d_i^2 ln psi to lap (M,) or return the part's Laplacian sum;
* ``parameter_derivatives(theta, prm, cache, x, D, out)``: d ln psi / d theta of the part's
  block into out[prm.offset : prm.offset + block size].

The parts enter every sum in a fixed order (RBM, correlation, Slater, generic). The RBM, always
present and first, writes the outputs (``set_gradient``, ``set_proposed_gradient``,
``set_grad_lap``) and every other part adds to them: zeroing the outputs first gave
LLVM a branch to duplicate the reference counts of the arguments into, which numba
then could not prune (3 atomic pairs per move, +30 % for importance sampling with the
Jastrow factor).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from . import generic, pair_jastrow, rbm, slater


class Parts(NamedTuple):
    """The parts of psi as the kernels take them: one bundle, a slot per role.

    rbm: the one-body RBM's ``rbm.RBMParams`` (always); pair: the correlation part's
    parameters, ``pair_jastrow.PadeParams`` or ``HardSphereParams`` (the implementation
    of the role is chosen by the type), or None; antisymmetric: the determinants'
    ``slater.SlaterParams``, or None; generic: the parameters of a part that coexists
    with all of these (``generic.py``; its implementation too is chosen by the type), or
    None. Each holds scalars only (see above).
    """

    rbm: object
    pair: object = None
    antisymmetric: object = None
    generic: object = None


@njit(cache=True)
def log_psi(theta, r, j, s, e, x, D):
    """ln |psi(x)| for x (P*D,); r, j, s, e: the slots of ``Parts``."""
    value = rbm.log_psi(theta, r, x, D)
    if j is not None:
        value += pair_jastrow.log_psi(theta, j, x, D)
    if s is not None:
        value += slater.log_psi(theta, s, x, D)
    if e is not None:
        value += generic.log_psi(theta, e, x, D)
    return value


@njit(cache=True, inline="always")
def refresh(theta, r, rc, j, jc, s, sc, e, ec, x):
    """Rebuild every part's cache for position x."""
    rbm.refresh(theta, r, rc, x)
    if j is not None:
        pair_jastrow.refresh(theta, j, jc, x)
    if s is not None:
        slater.refresh(theta, s, sc, x)
    if e is not None:
        generic.refresh(theta, e, ec, x)


@njit(cache=True, inline="always")
def move_ratio(theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D):
    """(log_q, factor): |psi(x')/psi(x)|^2 = exp(log_q) * factor for particle p moved
    by dx (D,)."""
    log_q, factor = rbm.move_ratio(theta, r, rc, x, p, dx, D)
    if j is not None:
        lj, fj = pair_jastrow.move_ratio(theta, j, jc, x, p, dx, D)
        log_q += lj
        factor *= fj
    if s is not None:
        ls, fs = slater.move_ratio(theta, s, sc, x, p, dx, D)
        log_q += ls
        factor *= fs
    if e is not None:
        le, fe = generic.move_ratio(theta, e, ec, x, p, dx, D)
        log_q += le
        factor *= fe
    return log_q, factor


@njit(cache=True, inline="always")
def crosses_node(s, sc, D):
    """Whether the proposal of the last ``move_ratio`` changes the sign of psi: only
    the antisymmetric part's can (the others are positive)."""
    if s is not None:
        return slater.proposal_sign(s, sc, D) < 0.0
    return False


@njit(cache=True, inline="always")
def gradient(theta, r, rc, j, jc, s, sc, e, ec, x, p, D, out):
    """nabla_p ln psi at x into out (D,): the drift of importance sampling."""
    rbm.set_gradient(theta, r, rc, x, p, D, out)
    if j is not None:
        pair_jastrow.add_gradient(theta, j, jc, x, p, D, out)
    if s is not None:
        slater.add_gradient(theta, s, sc, x, p, D, out)
    if e is not None:
        generic.add_gradient(theta, e, ec, x, p, D, out)


@njit(cache=True, inline="always")
def proposed_gradient(theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D, out):
    """nabla_p ln psi at the proposal of the last ``move_ratio`` into out (D,)."""
    rbm.set_proposed_gradient(theta, r, rc, x, p, dx, D, out)
    if j is not None:
        pair_jastrow.add_proposed_gradient(theta, j, jc, x, p, dx, D, out)
    if s is not None:
        slater.add_proposed_gradient(theta, s, sc, x, p, dx, D, out)
    if e is not None:
        generic.add_proposed_gradient(theta, e, ec, x, p, dx, D, out)


@njit(cache=True, inline="always")
def commit(theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D, proposed_gradient_done):
    """Accept the last proposal: every part's cache, then x itself."""
    rbm.commit(theta, r, rc, x, p, dx, D, proposed_gradient_done)
    if j is not None:
        pair_jastrow.commit(theta, j, jc, x, p, dx, D, proposed_gradient_done)
    if s is not None:
        slater.commit(theta, s, sc, x, p, dx, D, proposed_gradient_done)
    if e is not None:
        generic.commit(theta, e, ec, x, p, dx, D, proposed_gradient_done)
    for d in range(D):
        x[p * D + d] += dx[d]


@njit(cache=True, inline="always")
def kinetic_energy(theta, r, rc, j, jc, s, sc, e, ec, x, D, grad, lap):
    """-1/2 (nabla^2 psi)/psi = -1/2 sum_i [ d_i^2 ln psi + (d_i ln psi)^2 ];
    grad, lap: (M,) work arrays (left holding d_i ln psi and the parts' d_i^2 ln psi)."""
    t = rbm.set_grad_lap(theta, r, rc, x, D, grad, lap)
    if j is not None:
        t += pair_jastrow.add_grad_lap(theta, j, jc, x, D, grad, lap)
    if s is not None:
        t += slater.add_grad_lap(theta, s, sc, x, D, grad, lap)
    if e is not None:
        t += generic.add_grad_lap(theta, e, ec, x, D, grad, lap)
    for i in range(x.shape[0]):
        t += lap[i] + grad[i] * grad[i]
    return -0.5 * t


@njit(cache=True, inline="always")
def parameter_derivatives(theta, r, rc, j, jc, s, sc, e, ec, x, D, out):
    """O_k = d ln psi / d theta_k of every block into out (n_params,)."""
    rbm.parameter_derivatives(theta, r, rc, x, D, out)
    if j is not None:
        pair_jastrow.parameter_derivatives(theta, j, jc, x, D, out)
    if s is not None:
        slater.parameter_derivatives(theta, s, sc, x, D, out)
    if e is not None:
        generic.parameter_derivatives(theta, e, ec, x, D, out)


# ------------------------------------------------------ what the kernel asks of one part
# The kernel reaches every part through this module; these are the operations that only
# one role has.


@njit(cache=True, inline="always")
def empty_caches(r, j, s, e, D):
    """The parts' caches (rc, jc, sc, ec), allocated, not yet filled (see ``refresh``);
    an absent part's is empty (the generic part's: None, see below)."""
    return (
        rbm.new_cache(r, D),
        pair_jastrow.new_cache(j, D),
        slater.new_cache(s, D),
        # None without a generic part: an array, even an empty borrowed one, passed
        # through every inlined operation kept a call to numba's reference count per
        # operation in the fermion kernel (12-16 % more time per move at P = 6)
        generic.new_cache(e, D),
    )


@njit(cache=True, inline="always")
def kept_size(rc, jc, sc, e):
    """Length of one walker's row in a store of kept caches (``kept_views``): the RBM's,
    the correlation part's and the Slater part's caches, flat; 0 with a generic part,
    whose cache is rebuilt on every call."""
    if e is not None:
        return 0
    return rc.size + jc.size + sc.size


@njit(cache=True)
def kept_cache_size(r, j, s, e, D):
    """:func:`kept_size` of the parts (a store's row length, asked once from Python)."""
    rc, jc, sc, ec = empty_caches(r, j, s, e, D)
    return kept_size(rc, jc, sc, e)


@njit(cache=True, inline="always")
def kept_views(row, rc, jc, sc):
    """Views (rc, jc, sc) of a walker's row of kept caches, shaped as the caches rc,
    jc, sc: the kernel works on them in place, so that they stay with their walker
    between calls (a cache as ``refresh`` or ``commit`` leave it equals, to rounding, a
    refresh at theta and the position, plus constants of ``new_cache`` that
    ``copy_caches`` carries into a new row; its scratch is kept along, unused)."""
    a, b = rc.size, rc.size + jc.size
    return row[:a].reshape(rc.shape), row[a:b], row[b : b + sc.size]


@njit(cache=True, inline="always")
def copy_caches(rc, jc, sc, to_rc, to_jc, to_sc):
    """Copy the caches into others of the same shapes (a template's constants, such as
    the Slater part's quantum numbers, into a new row before its rebuild)."""
    for a in range(rc.shape[0]):
        for b in range(rc.shape[1]):
            to_rc[a, b] = rc[a, b]
    for i in range(jc.size):
        to_jc[i] = jc[i]
    for i in range(sc.size):
        to_sc[i] = sc[i]


@njit(cache=True, inline="always")
def gibbs_sweep(theta, r, rc, x, h, st):
    """One Gibbs sweep of the RBM alone (see ``rbm.gibbs_sweep``)."""
    rbm.gibbs_sweep(theta, r, rc, x, h, st)


@njit(cache=True, inline="always")
def refresh_inverses(theta, s, sc, x, D):
    """Fresh inverses of the determinants; how far the updated ones had drifted."""
    return slater.refresh_checked(theta, s, sc, x, D)


@njit(cache=True, inline="always")
def pair_distances(j, D):
    """Offset of the correlation part's table of current pair distances in its cache."""
    return pair_jastrow.distance_table(j, D)


# ------------------------------------------------------------- the entry points of tests
# One compiled entry point per part signature, ``probe``: every kernel signature costs
# seconds of LLVM with an empty cache, and four overlapping entry points per signature
# were most of the test suite's time. The Python functions below pick from its result.


@njit(cache=True, inline="always")
def new_caches(theta, r, j, s, e, x, D):
    """Fresh caches (rc, jc, sc, ec) of the parts for position x."""
    rc, jc, sc, ec = empty_caches(r, j, s, e, D)
    refresh(theta, r, rc, j, jc, s, sc, e, ec, x)
    return rc, jc, sc, ec


@njit(cache=True)
def probe(theta, r, j, s, e, x, p, dx, D, with_drift):
    """psi at x and after particle p moved by dx (D,), as the kernel computes them.

    Stage 0 builds fresh caches at x and takes the local terms there; stage 1 builds
    fresh caches again and makes one accepted move as the kernel does: importance
    sampling (with_drift: the gradient at x and at the proposal, then the commit that
    reuses the proposal's sigmoids) or Metropolis (no gradients; the commit computes
    them), then takes the local terms from the caches after the commit.

    Returns (ratio |psi(x')/psi(x)|^2, kin (2,), grad (2, M) d_i ln psi, O (2, n_params)
    d ln psi / d theta (n_params = len(theta)), g (2, D) nabla_p ln psi at x and at the
    proposal (NaN without the drift), y (M,) the moved x); row 0 of kin, grad, O is at x,
    row 1 after the commit. Where psi(x') = 0 (a pair factor's core) the probe stops
    after the ratio, as the kernel rejects such a move first: row 1 stays NaN, y = x.
    """
    M = x.shape[0]
    kin = np.full(2, np.nan)
    grad = np.full((2, M), np.nan)
    lap = np.empty(M)
    O = np.full((2, theta.shape[0]), np.nan)
    g = np.full((2, D), np.nan)
    y = x.copy()
    ratio = 0.0
    for stage in range(2):  # one inlined copy of each operation
        rc, jc, sc, ec = new_caches(theta, r, j, s, e, x, D)
        if stage == 1:
            if with_drift:
                gradient(theta, r, rc, j, jc, s, sc, e, ec, y, p, D, g[0])
            log_q, factor = move_ratio(theta, r, rc, j, jc, s, sc, e, ec, y, p, dx, D)
            ratio = np.exp(log_q) * factor
            if factor == 0.0:  # psi(x') = 0: the kernel rejects it here, and so stops
                break  # the probe (row 1 stays NaN, y stays x)
            if with_drift:
                proposed_gradient(theta, r, rc, j, jc, s, sc, e, ec, y, p, dx, D, g[1])
            commit(theta, r, rc, j, jc, s, sc, e, ec, y, p, dx, D, with_drift)
        kin[stage] = kinetic_energy(theta, r, rc, j, jc, s, sc, e, ec, y, D, grad[stage], lap)
        parameter_derivatives(theta, r, rc, j, jc, s, sc, e, ec, y, D, O[stage])
    return ratio, kin, grad, O, g, y


def log_psi_at(theta, parts, x, D):
    """ln |psi(x)| for x (P*D,); parts: ``Parts``."""
    return log_psi(theta, *parts, x, D)


def move_ratio_at(theta, parts, x, p, dx, D):
    """|psi(x')/psi(x)|^2 for particle p moved by dx, as the kernel computes it."""
    return probe(theta, *parts, x, p, np.asarray(dx, dtype=np.float64), D, False)[0]


def move_and_commit_at(theta, parts, x, p, dx, D, with_drift):
    """One accepted move as the kernel makes it (see :func:`probe`). Returns
    (nabla_p ln psi at x, at the proposal (both (D,), NaN without the drift), the moved
    x (M,), the kinetic energy and d ln psi / d theta (n_params,) from the caches after
    the commit); n_params = len(theta)."""
    dx = np.asarray(dx, dtype=np.float64)
    _, kin, _, O, g, y = probe(theta, *parts, x, p, dx, D, with_drift)
    return g[0], g[1], y, kin[1], O[1]


def local_terms_at(theta, parts, x, D):
    """(kinetic energy, gradient (M,), parameter derivatives (n_params,)) at x;
    n_params = len(theta)."""
    _, kin, grad, O, _, _ = probe(theta, *parts, x, 0, np.zeros(D), D, False)
    return kin[0], grad[0], O[0]
