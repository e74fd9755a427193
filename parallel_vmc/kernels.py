"""The Monte Carlo hot loops (numba). One call advances all walkers of a rank.

:func:`run_walkers` runs ``n_sweeps`` sweeps (one proposed single-particle move per
particle) of every walker, with no Python per step, and, depending on ``mode``:

* ``THERMALIZE``: only moves (and acceptance counts);
* ``OPTIMIZE``: accumulates the packed estimator sums of an optimisation iteration
  (layout below), ready for a single Allreduce;
* ``PRODUCE``: stores the local energy of every sweep of every walker (and optionally
  its kinetic, trap and interaction parts) for offline blocking, and adds every sample
  to the observable accumulators (``observables.py``).

Single-particle moves update the hidden pre-activations ``u`` incrementally, O(D*N) per
move; ``exp(u)`` is cached so that the acceptance ratio of the hidden part,
``prod_j (1 + exp(u'_j)) / (1 + exp(u_j))``, costs one exponential per hidden unit.
All formulas of psi come from ``wavefunction.py`` and of the potential from ``system.py``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .observables import accumulate, batch_of
from .rng import normal, uniform
from .system import coulomb_potential, trap_potential
from .wavefunction import (hidden_preactivations, jastrow_beta_derivatives,
                           jastrow_move_delta, jastrow_particle_gradient, kinetic_energy,
                           kinetic_energy_jastrow, parameter_derivatives, particle_gradient,
                           sigmoid_from_exp, visible_mean_given_hidden)

METROPOLIS, IMPORTANCE, GIBBS = 0, 1, 2
SAMPLER_CODES = {"metropolis": METROPOLIS, "importance": IMPORTANCE, "gibbs": GIBBS}
THERMALIZE, OPTIMIZE, PRODUCE = 0, 1, 2

# Packed estimator sums of one optimisation iteration (float64 vector, Allreduced whole):
# [count, sum E, sum E^2, walkers, sum of walker means, sum of squared walker means,
#  accepted moves, proposed moves, sum O_k (n_params), sum E*O_k (n_params)], and for
# stochastic reconfiguration sum O_k O_l (n_params^2, row-major) after them.
S_COUNT, S_E, S_E2, S_WALKERS, S_WMEAN, S_WMEAN2, S_ACC, S_PROP = range(8)
S_HEADER = 8


def sums_size(n_params: int, with_s: bool = False) -> int:
    """Length of the packed sums vector (with_s: also sum O O^T for SR)."""
    return S_HEADER + 2 * n_params + (n_params * n_params if with_s else 0)


@njit(cache=True)
def init_positions(X, rng, width):
    """Start every walker at Normal(0, width^2) coordinates drawn from its own stream.

    X: (W, M) output; rng: (W, 4) uint64 states.
    """
    for w in range(X.shape[0]):
        for i in range(X.shape[1]):
            X[w, i] = width * normal(rng[w])


@njit(cache=True, inline="always")
def _hidden_ratio(x_row, dx, p, D, u, eu, un, eun, W, inv_s2):
    """New pre-activations un, exp(un) for moving particle p by dx; returns
    prod_j (1 + exp(un_j)) / (1 + exp(u_j)), i.e. F'/F of the hidden part."""
    N = u.shape[0]
    ratio = 1.0
    for j in range(N):
        du = 0.0
        for d in range(D):
            du += dx[d] * W[p * D + d, j]
        un[j] = u[j] + du * inv_s2
        eun[j] = np.exp(un[j])
        ratio *= (1.0 + eun[j]) / (1.0 + eu[j])
    return ratio


@njit(cache=True, inline="always")
def _accept(x, dx, p, D, u, eu, s, un, eun, sn_ready, sn):
    """Commit the move of particle p: positions, u, exp(u) and sigmoids."""
    for d in range(D):
        x[p * D + d] += dx[d]
    for j in range(u.shape[0]):
        u[j] = un[j]
        eu[j] = eun[j]
        s[j] = sn[j] if sn_ready else sigmoid_from_exp(eun[j])


@njit(cache=True, inline="always")
def _gibbs_sweep(x, a, b, W, inv_s2, u, eu, s, h, st):
    """One Gibbs update of all units: h_j | x ~ Bernoulli(s_j), then x | h ~
    Normal(a + W h, sigma^2) (``visible_mean_given_hidden``); u, exp(u) and the
    sigmoids s are rebuilt for the new x. Exact for |psi|^2 = F (psi: sqrt, no Jastrow
    factor), so there is nothing to accept or reject."""
    for j in range(u.shape[0]):
        h[j] = 1.0 if uniform(st) < s[j] else 0.0
    visible_mean_given_hidden(a, W, h, x)
    sigma = 1.0 / np.sqrt(inv_s2)
    for i in range(x.shape[0]):
        x[i] += sigma * normal(st)
    hidden_preactivations(x, b, W, inv_s2, u)
    for j in range(u.shape[0]):
        eu[j] = np.exp(u[j])
        s[j] = sigmoid_from_exp(eu[j])


@njit(cache=True, inline="always")   # calls with many arrays cost ~100 ns each
def local_energy(x, a, W, s, inv_s2, c, P, D, omega, coulomb, beta, A, kind, grad, lap):
    """(kinetic, trap, interaction) energy of one configuration; E_L is their sum.
    beta: Jastrow betas (None: no Jastrow factor), A, kind: (P, P) cusps and pair kinds;
    grad, lap: (M,) work arrays."""
    if beta is not None:
        kin = kinetic_energy_jastrow(x, a, W, s, inv_s2, c, P, D, beta, A, kind, grad, lap)
    else:
        kin = kinetic_energy(x, a, W, s, inv_s2, c)
    trap = trap_potential(x, omega)
    inter = 0.0
    if coulomb:
        inter = coulomb_potential(x, P, D)
    return kin, trap, inter


# error_model="numpy": a division by zero gives inf/nan (which the driver's guards catch)
# instead of a Python exception. The exception checks blocked LLVM's optimisation of
# the inlined Jastrow and kinetic-energy code: this made the Padé-Jastrow local energy
# ~3x cheaper (pvmc bench). A non-finite E_L in production stops the run (driver).
@njit(cache=True, error_model="numpy")
def run_walkers(method, mode, n_sweeps, step, a, b, W, beta, A, kind, inv_s2, c, P, D,
                omega, coulomb, X, rng, sums, e_out, parts_out, obs, obs_spec, t0, n_total,
                accepted):
    """Advance every walker by n_sweeps sweeps and accumulate or record estimators.

    method: METROPOLIS (uniform box of side ``step``), IMPORTANCE (Langevin time step
    ``step``) or GIBBS (``step`` unused; every particle moves every sweep);
    mode: THERMALIZE | OPTIMIZE | PRODUCE.
    a: (M,), b: (N,), W: (M, N) parameters; inv_s2 = 1/sigma^2; c = 1/2 or 1 (psi = F^c).
    beta: (2,) Padé-Jastrow betas, or None without the factor (numba then compiles a
    version with every Jastrow branch pruned, so the RBM-only loop pays nothing for it);
    A: (P, P) cusps, kind: (P, P) int64 pair kinds (ignored without the factor).
    X: (W_r, M) walker positions, updated in place; rng: (W_r, 4) uint64 states.
    sums: packed sums (``sums_size``), added to in OPTIMIZE mode.
    e_out: (W_r, n_sweeps) local energies in PRODUCE mode; parts_out: (3, W_r, n_sweeps)
    its kinetic, trap and interaction parts (or (3, W_r, 0): not stored). obs: the
    observable accumulator (``observables.Layout``: (n_batches, width), or 0 rows: none),
    filled in PRODUCE mode; obs_spec its geometry (``Layout.spec``); t0: the production
    sweep (per chain) this call starts at, of n_total, which fixes each sweep's batch.
    accepted: (W_r,) int64, accepted moves added.
    """
    n_walkers, M = X.shape
    N = b.shape[0]
    n_rbm = M + N + M * N
    n_jas = 0
    if beta is not None:
        n_jas = beta.shape[0]
    n_params = n_rbm + n_jas
    with_s = sums.shape[0] > S_HEADER + 2 * n_params     # SR: the sum of O O^T too
    xp_new = np.empty(D)
    xp_cur = np.empty(D)
    g_jas = np.empty(D)
    work_g = np.empty(M)
    work_l = np.empty(M)
    u = np.empty(N)
    eu = np.empty(N)
    s = np.empty(N)
    un = np.empty(N)
    eun = np.empty(N)
    sn = np.empty(N)
    h = np.empty(N)
    dx = np.empty(D)
    g_old = np.empty(D)
    O = np.empty(n_params)
    sqrt_dt = np.sqrt(step)
    store_parts = parts_out.shape[2] == n_sweeps
    with_obs = obs.shape[0] > 0
    n_batches = obs.shape[0]
    for w in range(n_walkers):
        x = X[w]
        st = rng[w]
        # Parameters may have changed since the last call: rebuild the caches.
        hidden_preactivations(x, b, W, inv_s2, u)
        for j in range(N):
            eu[j] = np.exp(u[j])
            s[j] = sigmoid_from_exp(eu[j])
        n_acc = 0
        e_sum = 0.0
        for sweep in range(n_sweeps):
            if method == GIBBS:
                _gibbs_sweep(x, a, b, W, inv_s2, u, eu, s, h, st)
                n_acc += P
            else:
                for p in range(P):
                    # ---- propose
                    log_q = 0.0      # ln of |psi'|^2/|psi|^2 (Gaussian part) + ln Green ratio
                    if method == METROPOLIS:
                        for d in range(D):
                            dx[d] = step * (uniform(st) - 0.5)
                    else:
                        particle_gradient(x, a, W, s, inv_s2, c, p, D, g_old)
                        if beta is not None:
                            for d in range(D):
                                xp_cur[d] = x[p * D + d]
                            jastrow_particle_gradient(x, p, xp_cur, P, D, beta, A, kind, g_old)
                        for d in range(D):
                            dx[d] = step * g_old[d] + sqrt_dt * normal(st)
                    for d in range(D):
                        i = p * D + d
                        xo = x[i] - a[i]
                        xn = xo + dx[d]
                        log_q -= c * inv_s2 * (xn * xn - xo * xo)
                    ratio = _hidden_ratio(x, dx, p, D, u, eu, un, eun, W, inv_s2)
                    if c != 0.5:
                        ratio = ratio ** (2.0 * c)
                    if beta is not None:      # |exp(J')|^2 / |exp(J)|^2, O(P)
                        for d in range(D):
                            xp_new[d] = x[p * D + d] + dx[d]
                        log_q += 2.0 * jastrow_move_delta(x, p, xp_new, P, D, beta, A, kind)
                    if method == IMPORTANCE:
                        # Drift at the proposed point, then the Green's-function ratio
                        # G(x|y)/G(y|x) with G(y|x) ~ exp(-(y - x - dt grad ln psi(x))^2 / 2dt).
                        for j in range(N):
                            sn[j] = sigmoid_from_exp(eun[j])
                        for d in range(D):
                            g_jas[d] = 0.0
                        if beta is not None:
                            jastrow_particle_gradient(x, p, xp_new, P, D, beta, A, kind, g_jas)
                        for d in range(D):
                            i = p * D + d
                            g = -(x[i] + dx[d] - a[i])
                            for j in range(N):
                                g += W[i, j] * sn[j]
                            g_new = c * g * inv_s2 + g_jas[d]
                            fwd = dx[d] - step * g_old[d]
                            bwd = dx[d] + step * g_new
                            log_q += (fwd * fwd - bwd * bwd) / (2.0 * step)
                    # ---- accept / reject
                    if uniform(st) < np.exp(log_q) * ratio:
                        _accept(x, dx, p, D, u, eu, s, un, eun, method == IMPORTANCE, sn)
                        n_acc += 1
            if mode == THERMALIZE:
                continue
            kin, trap, inter = local_energy(x, a, W, s, inv_s2, c, P, D, omega, coulomb,
                                            beta, A, kind, work_g, work_l)
            e = kin + (trap + inter)
            if mode == PRODUCE:
                e_out[w, sweep] = e
                if store_parts:
                    parts_out[0, w, sweep] = kin
                    parts_out[1, w, sweep] = trap
                    parts_out[2, w, sweep] = inter
                if with_obs:
                    accumulate(obs, batch_of(t0 + sweep, n_batches, n_total), x, P, D, e,
                               kin, trap, inter, obs_spec)
            else:
                e_sum += e
                sums[S_E2] += e * e
                parameter_derivatives(x, a, s, inv_s2, c, O)
                if beta is not None:
                    jastrow_beta_derivatives(x, P, D, beta, A, kind, O[n_rbm:])
                for k in range(n_params):
                    sums[S_HEADER + k] += O[k]
                    sums[S_HEADER + n_params + k] += e * O[k]
                if with_s:
                    base = S_HEADER + 2 * n_params
                    for k in range(n_params):
                        ok = O[k]
                        row = base + k * n_params
                        for l in range(n_params):
                            sums[row + l] += ok * O[l]
        accepted[w] += n_acc
        sums[S_ACC] += n_acc
        sums[S_PROP] += n_sweeps * P
        if mode == OPTIMIZE and n_sweeps > 0:
            mean = e_sum / n_sweeps
            sums[S_COUNT] += n_sweeps
            sums[S_E] += e_sum
            sums[S_WALKERS] += 1.0
            sums[S_WMEAN] += mean
            sums[S_WMEAN2] += mean * mean
