"""One time step of fixed-node DMC: the walkers diffuse, are reweighted and combed,
step after step, with one Allreduce of a packed buffer per step.

The buffer (float64): [sum w, sum w E_L, sum w E_L^2, walkers, accepted, proposed,
sum |chi|^2, sum p |chi|^2] followed by every rank's total weight (its own slot filled,
the others 0): after the Allreduce every rank knows where its walkers lie in the global
population, which the comb needs, and computes the same E_T, E_est and tau_eff.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..sampling.samplers import Sampler, Walkers
from . import streams
from .weights import comb, step_log_weights, trial_energy

W_SUM, WE_SUM, WE2_SUM, COUNT, ACC, PROP, CHI2, CHI2_ACC = range(8)
HEADER = 8
POPULATION_BOUNDS = (0.5, 2.0)  # x the target: outside, the time step stops


class DiffusionUnstable(RuntimeError):
    """The population left its bounds or a local energy is not finite."""


@dataclass
class Series:
    """Per-step records of a time step (lists of floats): Ebar, W, E_T used, population
    after the comb, and tau_eff after the step."""

    e_mean: list = field(default_factory=list)
    weight: list = field(default_factory=list)
    e_trial: list = field(default_factory=list)
    population: list = field(default_factory=list)
    tau_eff: list = field(default_factory=list)


class Diffusion:
    """The walkers of this rank during one time step ``tau``.

    sampler: an importance ``Sampler`` whose step is tau; walkers: this rank's
    ``Walkers`` (replaced after every comb); target: the total population aimed at;
    e_start: the first E_est and E_T (the VMC energy); key: ``streams.root_key`` of the
    run; feedback: g of ``weights.trial_energy``.
    """

    def __init__(
        self,
        sampler: Sampler,
        theta,
        walkers: Walkers,
        comm,
        target: int,
        e_start: float,
        key,
        feedback: float = 1.0,
        stream_base: int = 0,
    ):
        if comm.size > 1:
            raise NotImplementedError("DMC across ranks needs the walker transfers")
        self.sampler, self.theta, self.walkers, self.comm = sampler, theta, walkers, comm
        self.tau = sampler.step
        self.target = target
        self.e_est = self.e_trial = float(e_start)
        self.key, self.feedback, self.stream_base = key, feedback, stream_base
        self.particles = sampler.system.particles
        self.e_prev = None  # (W,) E_L of every walker at its current position
        self.chi2 = np.zeros(2)  # [sum |chi|^2, sum p |chi|^2] of this time step
        self.moves = np.zeros(2)  # [accepted, proposed]
        self.series = Series()

    @property
    def tau_eff(self) -> float:
        return self.tau * self.chi2[1] / self.chi2[0] if self.chi2[0] > 0 else self.tau

    def run(self, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step()

    def step(self) -> None:
        """Diffuse, reweight, reduce, comb: one step of every walker."""
        e, moves = self.sampler.diffuse(self.theta, self.walkers, 1)
        if self.e_prev is None:  # the first step: E_L before it is that after it
            self.e_prev = e[:, 0].copy()
        log_w = step_log_weights(
            self.e_prev, e, self.e_trial, self.e_est, self.particles, self.tau, self.tau_eff
        )[:, 0]
        w = np.exp(log_w)
        g = self.comm.allreduce_sum(self._packed(w, e[:, 0], moves))
        self._check(g, e)
        self.moves += g[[ACC, PROP]]
        self.chi2 += g[[CHI2, CHI2_ACC]]
        total = g[W_SUM]
        e_mean = g[WE_SUM] / total
        s = self.series
        s.e_mean.append(e_mean)
        s.weight.append(total)
        s.e_trial.append(self.e_trial)
        s.tau_eff.append(self.tau_eff)
        self.e_est = float(np.mean(s.e_mean))  # the running estimate
        self.e_trial = trial_energy(self.e_est, total, self.target, self.tau_eff, self.feedback)
        self._comb(w, e[:, 0], g)
        s.population.append(self.global_count)

    def _packed(self, w, e, moves) -> np.ndarray:
        buf = np.zeros(HEADER + self.comm.size)
        buf[W_SUM], buf[WE_SUM], buf[WE2_SUM] = w.sum(), (w * e).sum(), (w * e * e).sum()
        buf[COUNT] = w.size
        buf[ACC:HEADER] = moves
        buf[HEADER + self.comm.rank] = w.sum()
        return buf

    def _check(self, g, e) -> None:
        if not np.all(np.isfinite(e)):
            raise DiffusionUnstable(f"a local energy is not finite at tau = {self.tau}")
        lo, hi = (b * self.target for b in POPULATION_BOUNDS)
        if not lo <= g[COUNT] <= hi:
            raise DiffusionUnstable(
                f"the population {int(g[COUNT])} left [{lo:g}, {hi:g}] "
                f"(0.5 to 2 x dmc.walkers = {self.target}) at tau = {self.tau}: E_T "
                f"did not hold it; more walkers or a smaller time step"
            )

    def _comb(self, w, e, g) -> None:
        """Replace the walkers by the comb's copies, each of weight 1; every copy but
        the first of a walker gets a fresh stream."""
        weights = g[HEADER:]
        start = float(weights[: self.comm.rank].sum())
        end = start + float(weights[self.comm.rank])
        step = self.stream_base + len(self.series.e_mean)
        u = streams.comb_offset(self.key, step)
        copies = comb(w, start, end, u)
        keep = np.repeat(np.arange(w.size), copies)
        first_slot = math.ceil(start - u)
        fresh = np.ones(keep.size, dtype=bool)
        fresh[np.cumsum(copies)[copies > 0] - copies[copies > 0]] = False  # first copies
        old = self.walkers
        rng = old.rng[keep]
        slots = first_slot + np.flatnonzero(fresh)
        new_states = np.empty((slots.size, 4), dtype=np.uint64)
        streams.fill_copy_states(new_states, self.key, np.int64(step), slots.astype(np.int64))
        rng[fresh] = new_states
        self.walkers = Walkers(old.positions[keep], rng, old.accepted[keep], old.stuck[keep])
        self.e_prev = e[keep]
        self.global_count = int(math.ceil(g[W_SUM] - u))  # teeth in [0, total)

    def energy_summary(self, first: int, window: int) -> tuple[float, float]:
        """(energy, error) of the steps from ``first`` on (``estimate.corrected_energy``
        with T_p = window)."""
        from .estimate import corrected_energy

        s = self.series
        return corrected_energy(s.e_mean, s.weight, s.e_trial, self.tau_eff, window, first)
