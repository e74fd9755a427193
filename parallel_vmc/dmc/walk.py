"""One time step of fixed-node DMC: the walkers diffuse, are reweighted and combed,
step after step, with one Allreduce of a packed buffer per step.

The buffer (float64): [sum w, sum w E_L, sum w E_L^2, walkers, accepted, proposed,
sum |chi|^2, sum p |chi|^2, non-finite local energies, ranks whose step raised, 1 +
the first such rank] followed by every rank's total
weight (its own slot filled, the others 0): after the Allreduce every rank knows where
its walkers lie in the global population, which the comb needs, how many each rank
holds after it (the balancing's plan), and computes the same E_T, E_est and tau_eff.
An exception in one rank's moves is caught (``guard``) and counted in the buffer, so
every rank raises DiffusionFailed after the same Allreduce instead of the others
waiting for ever in it.

Optional timings (``Diffusion.timings``, for ``pvmc bench --dmc``): a dict that each
step adds its seconds per section to (``SECTIONS``); None, the default, costs one test
per step and changes no result.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from ..sampling.samplers import Sampler, Walkers
from . import balance, streams
from .weights import CUTOFF_ALPHA, comb, cutoff, replicate, trial_energy, weigh

W_SUM, WE_SUM, WE2_SUM, COUNT, ACC, PROP, CHI2, CHI2_ACC, BAD, FAILED, FAIL_RANK = range(11)
HEADER = 11
POPULATION_BOUNDS = (0.5, 2.0)  # x the target: outside, the time step stops
# Steps between two rebuilds of every walker's caches (kept between steps otherwise,
# ``Walkers.keep_caches``). The phase checkpoints only after a multiple of it, so that a
# resumed run, whose caches are rebuilt, has the bits of an uninterrupted one.
BLOCK = 100
# A step's parts as timed: the kernel's moves, the weights and the packed sums, the
# Allreduce, the comb and the copies, the transfers between ranks, the rest.
SECTIONS = ("moves", "reweight", "allreduce", "branch", "balance", "other")


class DiffusionUnstable(RuntimeError):
    """The population left its bounds or a local energy is not finite."""


class DiffusionFailed(RuntimeError):
    """A step raised on some rank (its traceback is on that rank's stderr)."""


def unguarded(work, fallback):  # noqa: ARG001 - the signature of Collective.guarded
    """(work(), False): exceptions propagate (one process, nothing to wait for)."""
    return work(), False


def _no_lap(section: str) -> None:
    """The stopwatch of a step without timings: nothing."""


def stopwatch(timings: dict):
    """lap(section): adds the seconds since the previous lap (the first: since this
    call) to timings[section]."""
    last = time.perf_counter()

    def lap(section: str) -> None:
        nonlocal last
        now = time.perf_counter()
        timings[section] = timings.get(section, 0.0) + (now - last)
        last = now

    return lap


def pack(walkers: Walkers, e: np.ndarray) -> np.ndarray:
    """(W, M + 5) float64 rows, one walker each: its coordinates (M), its E_L and its
    stream's four words' bits, as a walker travels between ranks or into a
    checkpoint."""
    rng = np.ascontiguousarray(walkers.rng).view(np.float64)
    return np.concatenate([walkers.positions, e[:, None], rng], axis=1)


def unpack(rows: np.ndarray) -> tuple[Walkers, np.ndarray]:
    """(Walkers, E_L (W,)) of :func:`pack`'s rows (W, M + 5)."""
    m = rows.shape[1] - 5
    rng = np.ascontiguousarray(rows[:, m + 1 :]).view(np.uint64)
    return Walkers(np.ascontiguousarray(rows[:, :m]), rng), rows[:, m].copy()


@dataclass
class Series:
    """Per-step records of a time step (lists of floats): Ebar, W, the E_T and the
    tau_eff the step reweighted with, and the global population after the comb."""

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
    run; feedback: g of ``weights.trial_energy``; stream_base: added to the step in the
    copies' streams and the comb's offsets (distinct per time step); e_prev: (W,) the
    walkers' local energies where a time step before left them (None: the first step's
    own are taken); guard(work, fallback) -> (result, failed): runs a rank's local work
    (``Collective.guarded`` in a run), ``unguarded`` by default; warmup: the steps
    after which E_est (the running mean of Ebar, which centres the branching and
    steers E_T) starts again from the recorded steps alone, so that the projection
    from the trial function does not linger in it; alpha: of ``weights.cutoff``. timings: None, or a
    dict {section of SECTIONS: seconds} that every step adds to.
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
        e_prev=None,
        guard=unguarded,
        warmup: int = 0,
        alpha: float | None = CUTOFF_ALPHA,
    ):
        self.move = sampler.diffusion(theta)
        self.walkers, self.comm = walkers, comm
        self.tau = sampler.step
        self.cut = cutoff(sampler.system.particles, self.tau, alpha)
        self.target = target
        self.e_est = self.e_trial = float(e_start)
        self.key, self.feedback, self.stream_base = key, feedback, stream_base
        self.e_prev = e_prev  # (W,) E_L of every walker at its current position
        self.chi2 = np.zeros(2)  # [sum |chi|^2, sum p |chi|^2] of this time step
        self.moves = np.zeros(2)  # [accepted, proposed]
        self.warmup = warmup  # steps before E_est counts only the recorded ones
        self.e_sum = 0.0  # of the steps' Ebar: E_est is their running mean
        self.series = Series()
        self.guard = guard
        self.timings: dict | None = None
        self._lap = _no_lap  # this step's stopwatch

    @property
    def tau_eff(self) -> float:
        return self.tau * self.chi2[1] / self.chi2[0] if self.chi2[0] > 0 else self.tau

    @property
    def steps_done(self) -> int:
        return len(self.series.e_mean)

    def run(self, n_steps: int) -> None:
        for _ in range(n_steps):
            self.step()

    def step(self) -> None:
        """Diffuse, reweight, reduce, comb, balance: one step of every walker."""
        lap = self._lap = _no_lap if self.timings is None else stopwatch(self.timings)
        tau_eff = self.tau_eff  # the estimate before this step's moves
        (buf, w, e), failed = self.guard(lambda: self._local(tau_eff), (None, None, None))
        if failed:
            buf = np.zeros(HEADER + self.comm.size)
            buf[FAILED], buf[FAIL_RANK] = 1.0, self.comm.rank + 1
        g = self.comm.allreduce_sum(buf)
        lap("allreduce")
        self._check(g)
        self.moves += g[[ACC, PROP]]
        self.chi2 += g[[CHI2, CHI2_ACC]]
        s = self.series
        s.e_mean.append(g[WE_SUM] / g[W_SUM])
        s.weight.append(g[W_SUM])
        s.e_trial.append(self.e_trial)
        s.tau_eff.append(tau_eff)
        n = len(s.e_mean)
        if n == self.warmup + 1:  # the first recorded step: E_est forgets the warm-up
            self.e_sum = 0.0
        self.e_sum += s.e_mean[-1]
        self.e_est = self.e_sum / (n - self.warmup if n > self.warmup else n)
        self.e_trial = trial_energy(self.e_est, g[W_SUM], self.target, self.tau_eff, self.feedback)
        lap("other")
        self._branch(w, e, g)
        lap("other")

    def _local(self, tau_eff: float):
        """(this rank's buffer, weights (W,), E_L (W,)) after its walkers' moves."""
        if self.steps_done % BLOCK == 0:
            self.walkers.cached[:] = False
        e, moves = self.move(self.walkers, self.steps_done)
        self._lap("moves")
        e = e[:, 0]
        if self.e_prev is None:  # the first step: E_L before it is that after it
            self.e_prev = e
        w = np.ones(e.size)
        buf = np.zeros(HEADER + self.comm.size)
        # a non-finite E_L or weight is counted (BAD): every rank learns it from the
        # sums, and all stop together
        sums = weigh(self.e_prev, e, self.e_trial, self.e_est, self.cut, tau_eff, w)
        buf[W_SUM], buf[WE_SUM], buf[WE2_SUM], buf[BAD] = sums
        buf[COUNT] = w.size
        buf[ACC : CHI2_ACC + 1] = moves
        buf[HEADER + self.comm.rank] = buf[W_SUM]
        self._lap("reweight")
        return buf, w, e

    def _check(self, g) -> None:
        """DiffusionFailed or DiffusionUnstable on every rank alike (it reads only the
        reduced sums)."""
        if g[FAILED] > 0:
            n = int(g[FAILED])
            who = f"rank {int(g[FAIL_RANK]) - 1}" if n == 1 else f"{n} ranks"
            raise DiffusionFailed(
                f"an exception on {who} at tau = {self.tau}, step {self.steps_done + 1} "
                "(traceback on that rank's stderr)"
            )
        if g[BAD] > 0:
            raise DiffusionUnstable(
                f"{int(g[BAD])} walkers' local energies or weights are not finite at "
                f"tau = {self.tau}"
            )
        self._check_count(g[COUNT])

    def _check_count(self, count: float) -> None:
        """DiffusionUnstable (on every rank: count is global) outside the bounds."""
        lo, hi = (b * self.target for b in POPULATION_BOUNDS)
        if not lo <= count <= hi:
            raise DiffusionUnstable(
                f"the population {count:g} left [{lo:g}, {hi:g}] "
                f"(0.5 to 2 x dmc.walkers = {self.target}) at tau = {self.tau}: E_T "
                f"did not hold it; more walkers or a smaller time step"
            )

    def _branch(self, w, e, g) -> None:
        """Replace the walkers by the comb's copies (each of weight 1, fresh streams
        for all but a walker's first copy), then even out the ranks' counts."""
        totals = g[HEADER:]
        ends = np.cumsum(totals)  # exact sums of one nonzero each: the same everywhere
        starts = np.concatenate([[0.0], ends[:-1]])
        step = self.stream_base + len(self.series.e_mean)
        u = streams.comb_offset(self.key, step)
        counts = np.ceil(ends - u) - np.ceil(starts - u)  # every rank's, on every rank
        self._check_count(counts.sum())  # before any rank allocates the copies
        r = self.comm.rank
        copies = comb(w, starts[r], ends[r], u)
        old = self.walkers
        x, rng, e_new, rows = replicate(
            copies, old.positions, old.rng, e, old.slots, self.key, step, math.ceil(starts[r] - u)
        )
        self.series.population.append(int(counts.sum()))
        walkers = Walkers(x, rng)  # a row >= 0 was filled by this step's moves (if kept)
        walkers.inherit_caches(old, rows, rows >= 0)
        self._lap("branch")
        if self.comm.size > 1:
            walkers, e_new = self._balanced(counts, walkers, e_new)
            self._lap("balance")
        self.walkers = walkers
        self.e_prev = e_new

    def _balanced(self, counts, walkers: Walkers, e):
        """(walkers, e) after ``balance.rebalance``: a walker travels as one
        :func:`pack` row; those that stay keep their caches, those that arrive are
        rebuilt at the next step."""
        counts = counts.astype(np.int64)
        if balance.untouched(counts, self.comm.rank):
            return walkers, e
        new, e = unpack(balance.rebalance(self.comm, counts, pack(walkers, e)))
        a, b, at = balance.kept(counts, self.comm.rank)
        slots, cached = new.slots, new.cached
        slots[at : at + b - a], cached[at : at + b - a] = walkers.slots[a:b], walkers.cached[a:b]
        new.inherit_caches(walkers, slots, cached)
        return new, e

    def energy_summary(self, first: int, window: int) -> tuple[float, float]:
        """(energy, error) of the steps from ``first`` on (``estimate.corrected_energy``
        with T_p = window)."""
        from .estimate import corrected_energy

        s = self.series
        return corrected_energy(s.e_mean, s.weight, s.e_trial, s.tau_eff, window, first)
