"""The Monte Carlo hot loop (numba). One call advances all walkers of a rank.

:func:`run_walkers` runs ``n_sweeps`` sweeps (one proposed single-particle move per
particle) of every walker, with no Python per step, and, depending on ``mode``:

* ``THERMALIZE``: only moves (and acceptance counts);
* ``OPTIMIZE``: accumulates the packed iteration sums (``estimators.py``), ready for a single
  Allreduce; for stochastic reconfiguration it also stores every sample's
  d ln psi / d theta, whose products the caller forms with BLAS (``samplers.py``);
* ``PRODUCE``: stores the local energy of every sweep of every walker (and optionally
  its kinetic, trap and interaction parts) for offline blocking, and adds every sample
  to the observable accumulators (``observables.py``);
* ``DIFFUSE`` (fixed-node diffusion Monte Carlo, importance sampling only): the moves of
  ``IMPORTANCE`` with a move across a node of psi rejected, the local energy of every
  sweep stored as in ``PRODUCE``, and the squared Gaussian displacements proposed and
  accepted (weighted by the acceptance probability) summed for the effective time step.
  The walkers' weights and branching are the caller's (``dmc/``).

The wave function enters only through ``wavefunction/compose.py`` (its parts are
composed at compile time), the Hamiltonian through ``system.py``, the packed sums
through ``estimators.py``. Arguments come grouped in named tuples so that two arrays of the
same type cannot be swapped silently.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..hamiltonian.compose import external_energy
from ..hamiltonian.coulomb import coulomb_from_table, coulomb_potential
from ..hamiltonian.hard_core import overlaps
from ..jit.borrow import borrowed, release
from ..jit.inline import kernel
from ..jit.literal import length, plain
from ..jit.prefetch import LINE, prefetch
from ..jit.vector_width import prefer_wide_vectors
from ..rng import normal, uniform
from ..wavefunction import compose
from . import estimators as S
from .observables import accumulate, batch_of, batch_start
from .placement import MAX_PLACEMENTS  # numba-free: the config's packing check reads it

METROPOLIS, IMPORTANCE, GIBBS = 0, 1, 2
SAMPLER_CODES = {"metropolis": METROPOLIS, "importance": IMPORTANCE, "gibbs": GIBBS}
THERMALIZE, OPTIMIZE, PRODUCE, DIFFUSE = 0, 1, 2, 3


class Sweeps(NamedTuple):
    """What one call does: method, mode, n_sweeps, the step (box side or Langevin time
    step), n_params (the length of d ln psi / d theta), where the sweeps lie in the
    production of n_total sweeps per chain (t0: the first; this fixes their batches;
    ``DIFFUSE``: the steps made in the time step, which time the inverses' rebuilds),
    and the drift limit a of importance sampling (0: the drift is not limited; see
    ``limit_drift``)."""

    method: int
    mode: int
    n_sweeps: int
    step: float
    n_params: int
    t0: int
    n_total: int
    drift_limit: float


class WalkerArrays(NamedTuple):
    """This rank's walkers: positions (W, M), updated in place; rng (W, 4) uint64
    xoshiro256** states; accepted (W,) int64, accepted moves added; inverse_drift (W,)
    float64, raised to the largest max |D Dinv - I| of an updated Slater inverse seen
    when it was rebuilt (only with the Slater part); caches (S, C) float64, a store of
    the parts' caches kept with their walkers between calls (``compose.kept_views``; C
    = ``compose.kept_cache_size``), or (0, 0): rebuilt at every call; slots (W,) int64,
    each walker's row in it (-1: none, rebuilt and not kept); cached (W,) bool, whether
    that row holds the walker's caches (set by the call; the caller clears it after a
    jump or a parameter change)."""

    positions: np.ndarray
    rng: np.ndarray
    accepted: np.ndarray
    inverse_drift: np.ndarray
    caches: np.ndarray
    slots: np.ndarray
    cached: np.ndarray


class Outputs(NamedTuple):
    """Where a call's results go.

    sums: packed iteration sums (``estimators.iteration_size``), added to in OPTIMIZE mode
    but for the SR region (and accepted/proposed moves in every mode); energies:
    (W, n_sweeps) local energies in PRODUCE mode; parts: (3, W, n_sweeps) its kinetic,
    trap and interaction parts, or (3, W, 0): not stored; obs: the observable
    accumulator (``observables.Layout``: (n_batches, width), or 0 rows: none) with
    obs_spec its geometry (``obs_layout.HistogramSpec``, ``NO_HISTOGRAMS`` for none);
    o_rows: (W * n_sweeps, n_params) in OPTIMIZE mode for SR, row w * n_sweeps + sweep
    set to that sample's O = d ln psi / d theta; any other shape ((0, 0)): not stored.
    """

    sums: np.ndarray
    energies: np.ndarray
    parts: np.ndarray
    obs: np.ndarray
    obs_spec: object  # obs_layout.HistogramSpec
    o_rows: np.ndarray


@njit(cache=True)
def init_positions(X, rng, width, D=1, hard_core=0.0):
    """Start every walker at Normal(0, width^2) coordinates drawn from its own stream,
    particle by particle; with a hard core (radius > 0) a particle within hard_core of
    one placed before it is drawn again (at most ``MAX_PLACEMENTS`` times).

    X: (W, M) output, M = P*D; rng: (W, 4) uint64 states. Returns the number of walkers
    whose particles could not all be placed (0: all started; without a hard core the
    draws are those of coordinate after coordinate, as before hard cores existed).
    """
    failed = 0
    P = X.shape[1] // D
    for w in range(X.shape[0]):
        x = X[w]
        for p in range(P):
            placed = False
            for _ in range(MAX_PLACEMENTS):
                for d in range(D):
                    x[p * D + d] = width * normal(rng[w])
                if hard_core <= 0.0 or not overlaps(x, p * D, x, p, hard_core, p, D):
                    placed = True
                    break
            if not placed:
                failed += 1
                break
    return failed


@njit(cache=True, inline="always")
def langevin_log_green(log_q, dx, g_old, g_new, step, D):
    """log_q plus ln G(x|x')/G(x'|x) of the Langevin proposal x' = x + dx with
    G(x'|x) ~ exp(-|x' - x - step grad ln psi(x)|^2 / (2 step)); g_old, g_new: the
    gradients at x and x' (D,). The sum is scaled once, not divided per coordinate:
    divisions on the path to the acceptance test cost ~10 ns each (pvmc bench)."""
    t = 0.0
    for d in range(D):
        fwd = dx[d] - step * g_old[d]
        bwd = dx[d] + step * g_new[d]
        t += fwd * fwd - bwd * bwd
    return log_q + t * (0.5 / step)


@njit(cache=True, inline="always")
def limit_drift(g, step, a, D):
    """Scale the drift velocity g (D,) of a Langevin proposal of time step ``step`` to
    ``g (sqrt(1 + 2 a |g|^2 step) - 1) / (a |g|^2 step)`` (Umrigar, Nightingale and
    Runge, J. Chem. Phys. 99, 2865 (1993)): unchanged where |g|^2 step << 1, at most
    sqrt(2 / (a step)) in length near a node of psi, where |g| diverges. The limited
    drift enters the proposal and both directions of the Green's function, so the
    Metropolis-Hastings test keeps detailed balance exactly."""
    g2 = 0.0
    for d in range(D):
        g2 += g[d] * g[d]
    # the same factor as 2 / (1 + sqrt(1 + 2t)), t = a |g|^2 step: no cancellation at
    # small t, and it falls smoothly to 0 as t grows
    f = 2.0 / (1.0 + np.sqrt(1.0 + 2.0 * a * g2 * step))
    for d in range(D):
        g[d] *= f


@njit(cache=True, inline="always")  # calls with many arrays cost ~100 ns each
def local_energy(theta, r, rc, j, jc, s, sc, e, ec, x, sy, grad, lap):
    """(kinetic, trap, interaction) energy of one configuration; E_L is their sum."""
    D = length(sy.axis_omegas)  # a constant (see SystemParams, jit/literal.py)
    kin = compose.kinetic_energy(theta, r, rc, j, jc, s, sc, e, ec, x, D, grad, lap)
    # The terms are compiled for any D (plain): their own fastmath flags (the Coulomb
    # sums reassociate) would order the sums otherwise for a literal D, in the last bit.
    trap = external_energy(sy.external, x, plain(D))
    inter = 0.0
    if sy.coulomb:
        if j is not None:  # the pair part keeps every r_pq: no square roots here
            inter = coulomb_from_table(jc, compose.pair_distances(j, D), sy.particles)
        else:
            inter = coulomb_potential(x, sy.particles, plain(D))
    return kin, trap, inter


# The kernel's flags (jit/inline.py, with their reasons): no Python exceptions
# (error_model="numpy"; a non-finite E_L in production stops the run, see the driver)
# and fused multiply-adds (fastmath={"contract"}). The parts' operations it reaches
# through compose.py are compiled with the same flags and inlined by LLVM.
@njit(cache=True)
def run_walkers(sw, theta, parts, sy, walkers, out):
    """Advance every walker by sw.n_sweeps sweeps; accumulate or record estimators.

    sw: ``Sweeps``; theta: (n_params,) the variational parameters; parts: the wave
    function's ``compose.Parts`` (one bundle, a slot per role); sy:
    ``system.SystemParams``; walkers: ``WalkerArrays``; out: ``Outputs``. The roles are
    handed on as arguments: numba prunes the branches of an absent (None) part only
    where it is a function's argument.
    """
    sweep_walkers(
        sw, theta, parts.rbm, parts.pair, parts.antisymmetric, parts.generic, sy, walkers, out
    )


@kernel
def sweep_walkers(sw, theta, r, j, s, e, sy, walkers, out):
    """:func:`run_walkers` with the parts by role: r the RBM's parameters
    (``rbm.RBMParams``), j the correlation part's (or None), s the antisymmetric
    part's (or None), e the generic part's (or None); numba compiles a version per
    combination with the branches of absent parts pruned. The arrays are taken out of
    the tuples once, here: each array taken out of a tuple is reference-counted (see
    ``compose.py``).
    """
    prefer_wide_vectors(r.widest)
    X, rng, accepted, inverse_drift = (
        walkers.positions,
        walkers.rng,
        walkers.accepted,
        walkers.inverse_drift,
    )
    caches, slots, cached = walkers.caches, walkers.slots, walkers.cached
    sums, energies, parts, obs, obs_spec = out.sums, out.energies, out.parts, out.obs, out.obs_spec
    o_rows = out.o_rows
    P, D = sy.particles, length(sy.axis_omegas)  # D a constant: see jit/literal.py
    method, mode, step, n_params = sw.method, sw.mode, sw.step, sw.n_params
    # The shape check keeps a mis-sized buffer from being written out of bounds.
    store_o = (
        o_rows.shape[0] == X.shape[0] * sw.n_sweeps
        and o_rows.shape[0] > 0
        and o_rows.shape[1] == n_params
    )
    # The per-move code uses borrowed views (see borrow.py): no atomic reference
    # counts however the inlined parts branch. The owners are released at the end.
    rc0, jc0, sc0, ec0 = compose.empty_caches(r, j, s, e, D)
    owners = (
        rc0,
        jc0,
        sc0,
        ec0,
        np.empty(4 * D),
        np.empty(2 * X.shape[1]),
        np.empty(r.n_hidden),
        np.empty(n_params),
    )
    n_kept = compose.kept_size(rc0, jc0, sc0, e)
    keep = n_kept > 0 and caches.shape[1] == n_kept
    ec, work = borrowed(owners[3]), borrowed(owners[4])
    g_old, g_new, dx, trial = work[:D], work[D : 2 * D], work[2 * D : 3 * D], work[3 * D :]
    work_g, work_l = borrowed(owners[5][: X.shape[1]]), borrowed(owners[5][X.shape[1] :])
    h, O = borrowed(owners[6]), borrowed(owners[7])
    theta = borrowed(theta)
    sqrt_dt = np.sqrt(step)
    store_parts = parts.shape[2] == sw.n_sweeps
    n_batches = obs.shape[0]
    for w in range(X.shape[0]):
        x = borrowed(X[w])
        st = borrowed(rng[w])
        slot = slots[w] if keep else -1
        if keep and w + 1 < X.shape[0] and slots[w + 1] >= 0:  # while this one moves
            for k in range(0, n_kept, LINE):
                prefetch(caches, slots[w + 1], k)
        if slot >= 0:  # the walker's own caches, in place (DMC: one call per step)
            kr, kj, ks = compose.kept_views(borrowed(caches[slot]), rc0, jc0, sc0)
            rc, jc, sc = borrowed(kr), borrowed(kj), borrowed(ks)
            rebuild = not cached[w]
            if rebuild:  # a new row: the templates' constants first
                compose.copy_caches(rc0, jc0, sc0, rc, jc, sc)
        else:  # rebuilt at every call: the parameters may have changed
            rc, jc, sc = borrowed(owners[0]), borrowed(owners[1]), borrowed(owners[2])
            rebuild = True
        if rebuild:  # one call site: the inlined rebuild is compiled once
            compose.refresh(theta, r, rc, j, jc, s, sc, e, ec, x)
        n_acc = 0  # since the last call
        e_sum = 0.0
        chi2_sum, chi2_acc = 0.0, 0.0  # DIFFUSE: proposed and accepted sum |chi|^2
        b, next_b, wait = 0, 0, 0
        if n_batches > 0:  # the batch of sweep t0, the sweep that opens the next one,
            b = batch_of(sw.t0, n_batches, sw.n_total)  # and the sweeps until the
            next_b = batch_start(b + 1, n_batches, sw.n_total)  # next observed one
            wait = (obs_spec.every - sw.t0 % obs_spec.every) % obs_spec.every
        for sweep in range(sw.n_sweeps):
            if method == GIBBS:
                compose.gibbs_sweep(theta, r, rc, x, h, st)
                n_acc += P
            else:
                for p in range(P):
                    # The proposal is written out here, not in a function: inlined
                    # there, its stream argument was reference-counted per move (+60 %).
                    if method == METROPOLIS:  # uniform in a box of side step
                        for d in range(D):
                            dx[d] = step * (uniform(st) - 0.5)
                    else:  # Langevin step along the drift
                        compose.gradient(theta, r, rc, j, jc, s, sc, e, ec, x, p, D, g_old)
                        if sw.drift_limit > 0.0:
                            limit_drift(g_old, step, sw.drift_limit, D)
                        for d in range(D):
                            dx[d] = step * g_old[d] + sqrt_dt * normal(st)
                    chi2 = 0.0
                    if mode == DIFFUSE:  # chi: the move less its drift
                        for d in range(D):
                            chi = dx[d] - step * g_old[d]
                            chi2 += chi * chi
                        chi2_sum += chi2
                    if sy.hard_core > 0.0:  # V = inf in an overlap: rejected
                        for d in range(D):  # before psi is even evaluated
                            trial[d] = x[p * D + d] + dx[d]
                        if overlaps(trial, 0, x, p, sy.hard_core, P, D):
                            continue
                    log_q, factor = compose.move_ratio(
                        theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D
                    )
                    if factor == 0.0:  # psi(x') = 0 (a pair factor's core): rejected
                        continue  # here, no gradient at x' (it diverges there)
                    if mode == DIFFUSE and compose.crosses_node(s, sc, D):
                        continue  # fixed node: psi's sign is kept
                    if method == IMPORTANCE:
                        compose.proposed_gradient(
                            theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D, g_new
                        )
                        if sw.drift_limit > 0.0:
                            limit_drift(g_new, step, sw.drift_limit, D)
                        log_q = langevin_log_green(log_q, dx, g_old, g_new, step, D)
                    ratio = np.exp(log_q) * factor
                    if mode == DIFFUSE:
                        chi2_acc += min(1.0, ratio) * chi2
                    if uniform(st) < ratio:
                        compose.commit(
                            theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D, method == IMPORTANCE
                        )
                        n_acc += 1
            # DMC counts a walker's sweeps from the time step's start (sw.t0), one per call
            done = sweep + 1 if mode != DIFFUSE else sw.t0 + sweep + 1
            if s is not None and done % s.refresh_every == 0:
                inverse_drift[w] = max(
                    inverse_drift[w], compose.refresh_inverses(theta, s, sc, x, D)
                )
            if mode == THERMALIZE:
                continue
            kin, trap, inter = local_energy(
                theta, r, rc, j, jc, s, sc, e, ec, x, sy, work_g, work_l
            )
            e_l = kin + (trap + inter)  # E_L
            if mode != OPTIMIZE:  # PRODUCE or DIFFUSE
                energies[w, sweep] = e_l
                if store_parts:
                    parts[0, w, sweep] = kin
                    parts[1, w, sweep] = trap
                    parts[2, w, sweep] = inter
                if n_batches > 0:
                    while sw.t0 + sweep >= next_b:
                        b += 1
                        next_b = batch_start(b + 1, n_batches, sw.n_total)
                    if wait == 0:
                        accumulate(obs, b, x, P, D, e_l, kin, trap, inter, obs_spec)
                        wait = obs_spec.every
                    wait -= 1
            else:
                e_sum += e_l
                compose.parameter_derivatives(theta, r, rc, j, jc, s, sc, e, ec, x, D, O)
                # Written out here: as an inlined function it cost one reference
                # count per sweep (the arrays' arguments, see compose.py).
                sums[S.S_E2] += e_l * e_l
                for k in range(n_params):
                    sums[S.S_HEADER + k] += O[k]
                    sums[S.S_HEADER + n_params + k] += e_l * O[k]
                if store_o:  # SR: sum O_k O_l is formed by the caller
                    row = w * sw.n_sweeps + sweep
                    for k in range(n_params):
                        o_rows[row, k] = O[k]
        if slot >= 0:
            cached[w] = True
        accepted[w] += n_acc
        sums[S.S_ACC] += n_acc
        sums[S.S_PROP] += sw.n_sweeps * P
        sums[S.S_CHI2] += chi2_sum
        sums[S.S_CHI2_ACC] += chi2_acc
        if mode == OPTIMIZE and sw.n_sweeps > 0:
            add_walker_mean(sums, e_sum, sw.n_sweeps)
    release(owners)


@njit(cache=True, inline="always")
def add_walker_mean(sums, e_sum, n_sweeps):
    """Add one walker's iteration (n_sweeps samples summing to e_sum) to the header."""
    mean = e_sum / n_sweeps
    sums[S.S_COUNT] += n_sweeps
    sums[S.S_E] += e_sum
    sums[S.S_WALKERS] += 1.0
    sums[S.S_WMEAN] += mean
    sums[S.S_WMEAN2] += mean * mean
