"""Reweighting, the trial energy and the comb (Umrigar, Nightingale and Runge, J. Chem.
Phys. 99, 2865 (1993); the cutoff of Zen et al., Phys. Rev. B 93, 241118 (2016)).

A walker's weight after a step from R to R' is multiplied by
``exp(tau_eff (S(R) + S(R')) / 2)``, with the branching rate

    S = E_T - E_est + sgn(E_est - E_L) min(alpha sqrt(P / tau), |E_est - E_L|),

the size-consistent cutoff alpha sqrt(P / tau) (Zen et al.'s alpha = 0.2; the config's
``dmc.cutoff``) taming the rare local energies near a node without a bias that grows
with the particle number P. The trial
energy ``E_T = E_est - ln(W / W_target) / (g tau_eff)`` steers the total weight W back
to its target within about g steps (g = 1: at once), and is computed from the global
totals, so it is the same on every rank.

The per-walker work of a step is jitted (one call each, no Python per walker): it runs
every step on every walker, and in numpy its dozen temporary arrays cost as much as the
moves of a small system.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .streams import fill_copy_state

CUTOFF_ALPHA = 0.2  # Zen et al.'s alpha (the run's comes from dmc.cutoff)


@njit(cache=True)
def branching_rate(e_l, e_t, e_est, cut):
    """S(R) of one local energy e_l, cut = alpha sqrt(P / tau) (the module's docstring)."""
    d = e_est - e_l
    return (e_t - e_est) + np.sign(d) * min(cut, abs(d))


def cutoff(particles: int, tau: float, alpha: float | None = CUTOFF_ALPHA) -> float:
    """The size-consistent cutoff alpha sqrt(P / tau) (alpha None: none, inf)."""
    return math.inf if alpha is None else alpha * math.sqrt(particles / tau)


@njit(cache=True)
def reweight(e_prev, e_new, e_t, e_est, cut, tau_eff, w):
    """Multiply the weights w (W,) by the factors of one step from local energies
    e_prev (W,) to e_new (W,)."""
    for i in range(w.shape[0]):
        s = branching_rate(e_prev[i], e_t, e_est, cut) + branching_rate(e_new[i], e_t, e_est, cut)
        w[i] *= np.exp(0.5 * tau_eff * s)


@njit(cache=True)
def weigh(e_prev, e_new, e_t, e_est, cut, tau_eff, w):
    """:func:`reweight`, then (sum w, sum w E_L, sum w E_L^2, non-finite) over the
    walkers (E_L = e_new), a walker whose weight or E_L is not finite counted in the
    last and left out of the sums (a weight overflows without a cutoff)."""
    reweight(e_prev, e_new, e_t, e_est, cut, tau_eff, w)
    s0, s1, s2, bad = 0.0, 0.0, 0.0, 0
    for i in range(w.shape[0]):
        if not (np.isfinite(w[i]) and np.isfinite(e_new[i])):
            bad += 1
            continue
        we = w[i] * e_new[i]
        s0 += w[i]
        s1 += we
        s2 += we * e_new[i]
    return s0, s1, s2, bad


def trial_energy(e_est: float, total_weight: float, target: float, tau_eff: float, g: float):
    """E_T that brings the total weight back to target in about g steps."""
    return e_est - math.log(total_weight / target) / (g * tau_eff)


@njit(cache=True)
def comb(weights, start, end, u):
    """Copies of each walker (int64 (W,)) in a comb of teeth at u, u + 1, u + 2, ...
    (0 <= u < 1) over the global population's weights laid end to end: this rank's
    walkers occupy [start, end) (start: the weight of the ranks before it, end: start
    plus its own, both from the global totals, so that neighbouring ranks agree on their
    common end to the bit). Walker i gets as many copies as teeth fall in its interval,
    on average exactly its weight; with the same u on every rank the new population is
    the number of teeth in [0, total), each copy of weight 1.
    """
    n = weights.shape[0]
    copies = np.empty(n, dtype=np.int64)
    lo = start
    for i in range(n):
        hi = end if i == n - 1 else lo + weights[i]
        # never negative, even where the rounding of lo passed end
        copies[i] = max(np.int64(0), np.int64(math.ceil(hi - u) - math.ceil(lo - u)))
        lo = hi
    return copies


@njit(cache=True)
def replicate(copies, positions, rng, e, rows, key, step, first_slot):
    """The population after a comb: (positions (n, M), rng (n, 4), e (n,), rows (n,)),
    walker i repeated copies[i] times in order. A copy keeps its parent's stream only
    the first time; the others get fresh streams (``streams.fill_copy_state``) by their
    slot in the new global population (first_slot: this rank's first). rows (W,) int64:
    each walker's row of kept caches (``Walkers.slots``), which its first copy keeps;
    the others get -1 (few, about as many as the walkers the comb removed: they are
    rebuilt)."""
    n = 0
    for i in range(copies.shape[0]):
        n += copies[i]
    new_x = np.empty((n, positions.shape[1]))
    new_rng = np.empty((n, 4), dtype=np.uint64)
    new_e = np.empty(n)
    new_rows = np.empty(n, dtype=np.int64)
    j = 0
    for i in range(copies.shape[0]):
        for c in range(copies[i]):
            new_x[j] = positions[i]
            new_e[j] = e[i]
            if c == 0:
                new_rng[j] = rng[i]
                new_rows[j] = rows[i]
            else:
                fill_copy_state(new_rng[j], key, step, first_slot + j)
                new_rows[j] = -1
            j += 1
    return new_x, new_rng, new_e, new_rows
