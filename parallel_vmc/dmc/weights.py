"""Reweighting, the trial energy and the comb (Umrigar, Nightingale and Runge, J. Chem.
Phys. 99, 2865 (1993); the cutoff of Zen et al., Phys. Rev. B 93, 241118 (2016)).

A walker's weight after a step from R to R' is multiplied by
``exp(tau_eff (S(R) + S(R')) / 2)``, with the branching rate

    S = E_T - E_est + sgn(E_est - E_L) min(alpha sqrt(P / tau), |E_est - E_L|),

the size-consistent cutoff alpha sqrt(P / tau) (alpha = 0.2) taming the rare local
energies near a node without a bias that grows with the particle number P. The trial
energy ``E_T = E_est - ln(W / W_target) / (g tau_eff)`` steers the total weight W back
to its target within about g steps (g = 1: at once), and is computed from the global
totals, so it is the same on every rank.
"""

from __future__ import annotations

import math

import numpy as np

CUTOFF_ALPHA = 0.2  # Zen et al.'s alpha


def branching_rates(e_l, e_t: float, e_est: float, particles: int, tau: float) -> np.ndarray:
    """S(R) for local energies e_l (any shape): see the module's docstring."""
    cut = CUTOFF_ALPHA * math.sqrt(particles / tau)
    d = e_est - np.asarray(e_l, dtype=np.float64)
    return (e_t - e_est) + np.sign(d) * np.minimum(cut, np.abs(d))


def step_log_weights(e_prev, e_steps, e_t, e_est, particles, tau, tau_eff) -> np.ndarray:
    """ln of every walker's weight factor after each of k steps.

    e_prev: (W,) local energies before the first step; e_steps: (W, k) after each;
    returns (W, k), cumulative: column t is the ln factor of steps 0..t.
    """
    s = branching_rates(np.column_stack([e_prev, e_steps]), e_t, e_est, particles, tau)
    return np.cumsum(0.5 * tau_eff * (s[:, :-1] + s[:, 1:]), axis=1)


def trial_energy(e_est: float, total_weight: float, target: float, tau_eff: float, g: float):
    """E_T that brings the total weight back to target in about g steps."""
    return e_est - math.log(total_weight / target) / (g * tau_eff)


def comb(weights: np.ndarray, start: float, end: float, u: float) -> np.ndarray:
    """Copies of each walker (int64 (W,)) in a comb of teeth at u, u + 1, u + 2, ...
    (0 <= u < 1) over the global population's weights laid end to end: this rank's
    walkers occupy [start, end) (start: the weight of the ranks before it, end: start
    plus its own, both from the global totals, so that neighbouring ranks agree on their
    common end to the bit). Walker i gets as many copies as teeth fall in its interval,
    on average exactly its weight; with the same u on every rank the new population is
    the number of teeth in [0, total), each copy of weight 1.
    """
    ends = start + np.cumsum(weights)
    if ends.size:
        ends[-1] = end
    starts = np.concatenate([[start], ends[:-1]])
    return (np.ceil(ends - u) - np.ceil(starts - u)).astype(np.int64)
