"""The DMC energy of one time step, with the population-control bias removed, and its
extrapolation to zero time step.

Each step t leaves the walkers' weighted mean local energy Ebar(t), their total weight
W(t) and the trial energy E_T(t) that step used. E_T(t) rises and falls with the
population, and the factors exp(tau_eff E_T) it multiplied into the weights correlate
with the energy: a bias of order 1 / population. Reweighting every step by the product
of the last T_p of those factors undone (Umrigar, Nightingale and Runge 1993, eq. 29),

    Pi(t) = prod_{k=0}^{T_p-1} exp(-tau_eff(t - k) E_T(t - k)),
    E = sum_t Pi(t) W(t) Ebar(t) / sum_t Pi(t) W(t),

removes it when T_p is much longer than the energy's correlation time (tau_eff(t): the
effective time step step t reweighted with). The error of
this ratio is that of the mean of its linearisation b(t) (Ebar(t) - E) / mean(b),
b = Pi W, by blocking (``stats.blocking``).
"""

from __future__ import annotations

import math

import numpy as np

from ..stats.blocking import blocking


def undo_factors(e_trial: np.ndarray, tau_eff, window: int, first: int) -> np.ndarray:
    """ln Pi(t) for t = first .. len(e_trial)-1: minus the sum of tau_eff (E_T - E_ref)
    over the last ``window`` steps up to t (fewer at the start of the series).
    e_trial: (T,) every step's E_T, warm-up included; tau_eff: (T,) each step's (or
    one number).

    E_ref, the mean E_T of the counted steps, cancels in the energy's ratio wherever
    the window is whole; where it is not (t < window, when the warm-up is shorter than
    the window) the factors of the absolute E_T would differ by exp(tau E_T) per
    missing step and hand the first steps nearly all the weight."""
    e_trial = np.asarray(e_trial, dtype=np.float64)
    excess = e_trial - e_trial[first:].mean()
    c = np.concatenate([[0.0], np.cumsum(np.asarray(tau_eff) * excess)])
    t = np.arange(first, e_trial.size)
    lo = np.maximum(t + 1 - window, 0)
    return -(c[t + 1] - c[lo])


def corrected_energy(e_mean, weight, e_trial, tau_eff, window: int, first: int):
    """(energy, error) of the steps first.. of a time step.

    e_mean, weight, e_trial, tau_eff: (T,) per-step Ebar, W, E_T and tau_eff of the
    whole time step (warm-up first; tau_eff may be one number); window: T_p steps (0:
    no correction); first: the first step counted (the warm-up's end).
    """
    e_mean = np.asarray(e_mean, dtype=np.float64)[first:]
    weight = np.asarray(weight, dtype=np.float64)[first:]
    log_pi = np.zeros(e_mean.size)
    if window > 0:
        log_pi = undo_factors(np.asarray(e_trial, dtype=np.float64), tau_eff, window, first)
    b = weight * np.exp(log_pi - log_pi.max())
    energy = float(np.sum(b * e_mean) / np.sum(b))
    z = b * (e_mean - energy) / b.mean()
    return energy, float(blocking(z).error)


def fit_line(taus, energies, errors) -> tuple[np.ndarray, np.ndarray]:
    """(coef, cov) of the weighted least-squares line E(tau) = coef[0] + coef[1] tau
    through two or more time steps: coef (2,) = [E_0, slope], cov (2, 2) their
    covariance (from the errors alone, not rescaled by the fit's chi-squared).

    taus, energies, errors: (n,) with n >= 2 and errors > 0.
    """
    taus, energies, errors = (np.asarray(v, dtype=np.float64) for v in (taus, energies, errors))
    a = np.column_stack([np.ones_like(taus), taus]) / errors[:, None]
    coef, *_ = np.linalg.lstsq(a, energies / errors, rcond=None)
    return coef, np.linalg.inv(a.T @ a)


def extrapolate(taus, energies, errors) -> tuple[float, float]:
    """(E_0, its error): the weighted least-squares line E(tau) = E_0 + a tau through
    the time steps' energies (``fit_line``; one time step: its own energy and error;
    two: the line through both)."""
    taus, energies, errors = (np.asarray(v, dtype=np.float64) for v in (taus, energies, errors))
    if taus.size == 1:
        return float(energies[0]), float(errors[0])
    coef, cov = fit_line(taus, energies, errors)
    return float(coef[0]), math.sqrt(cov[0, 0])
