"""The DMC phase of a run (``dmc.time_steps``): after VMC, one fixed-node DMC run per
time step on the optimized trial function, each starting from the population the one
before left (the first from snapshots of the VMC walkers), then the line E(tau) to
tau -> 0.

The phase advances in blocks of BLOCK steps. After each block the driver's callback
decides, with all ranks, whether to write a checkpoint (``saved.py`` puts the whole
phase into it: the finished time steps, the live one's walkers, streams, sums and
series) and whether to stop; ``pvmc resume`` continues from that block, bit for bit on
the same number of ranks. The phase leaves the run's VMC walkers and parameters as
they were.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..runfile import schema as S
from ..sampling.samplers import Sampler, Walkers
from . import balance, streams
from .estimate import extrapolate
from .walk import BLOCK, Diffusion, DiffusionFailed, DiffusionUnstable, unguarded

# BLOCK (walk.py): steps between the checks of stop signals, wall time and checkpoints
SNAPSHOT_SWEEPS = 10  # VMC sweeps between two snapshots of a walker
INITIAL_STEP = 2**62  # the "step" of the first population's streams (never a real one)


def bias_window(cfg_window, tau: float) -> int:
    """T_p of the config, or its default ceil(2 / tau)."""
    return math.ceil(2.0 / tau) if cfg_window is None else int(cfg_window)


def initial_population(sampler: Sampler, theta, walkers: Walkers, comm, target: int, seed: int):
    """This rank's share of ``target`` walkers (``balance.even_counts``): positions of
    copies of the VMC walkers every SNAPSHOT_SWEEPS sweeps, each with a fresh stream
    by its slot in the global population (``streams.root_key`` of the seed). The VMC
    walkers themselves do not move."""
    key = streams.root_key(seed)
    counts = balance.even_counts(target, comm.size)
    n, first = int(counts[comm.rank]), int(counts[: comm.rank].sum())
    copy = Walkers(walkers.positions.copy(), walkers.rng.copy())
    snaps, have = [], 0
    while have < n:
        sampler.sweep(theta, copy, SNAPSHOT_SWEEPS)
        snaps.append(copy.positions.copy())
        have += copy.count
    rng = np.empty((n, 4), dtype=np.uint64)
    for i in range(n):
        streams.fill_copy_state(rng[i], key, INITIAL_STEP, first + i)
    return Walkers(np.concatenate(snaps)[:n], rng)


class Phase:
    """The progress of the DMC phase on this rank: time step ``k`` of
    cfg.dmc.time_steps is live in ``walk`` (None once all are done); ``table``
    {field of schema.DMC_FIELDS: list} and ``series`` [{name of schema.DMC_SERIES:
    list}] hold the finished ones. Everything but the walkers is the same on every
    rank. guard: as ``walk.Diffusion``'s."""

    def __init__(self, cfg, system, wf, theta, comm, guard=unguarded):
        self.cfg, self.system, self.wf, self.theta, self.comm = cfg, system, wf, theta, comm
        self.guard = guard
        self.key = streams.root_key(cfg.seed)
        self.k = 0
        self.table = {name: [] for name in S.DMC_FIELDS}
        self.series: list = []
        self.walk: Diffusion | None = None

    @property
    def tau(self) -> float:
        return self.cfg.dmc.time_steps[self.k]

    @property
    def total_steps(self) -> int:
        return self.cfg.dmc.warmup_steps + self.cfg.dmc.steps

    def begin(self, population: Walkers, e_start: float, e_prev=None) -> None:
        """Make time step k live from this rank's population (e_prev: (W,) their local
        energies, None for the VMC snapshots)."""
        dmc = self.cfg.dmc
        sampler = Sampler("importance", self.tau, self.system, self.wf, drift_limit=dmc.drift_limit)
        self.walk = Diffusion(
            sampler,
            self.theta,
            population,
            self.comm,
            dmc.walkers,
            e_start,
            self.key,
            dmc.feedback,
            self.k << 40,
            e_prev,
            self.guard,
            dmc.warmup_steps,
            dmc.cutoff,
        )

    def run(self, after_block: Callable[["Phase"], None], say: Callable[[str], None]) -> dict:
        """Every remaining step of every remaining time step; after_block(self) after
        each block (collective: it may checkpoint or raise to stop). Returns
        :meth:`result`. DiffusionUnstable and DiffusionFailed propagate."""
        while self.walk is not None:
            walk = self.walk
            walk.run(min(BLOCK, self.total_steps - walk.steps_done))
            if walk.steps_done == self.total_steps:
                self._close(say)
            after_block(self)
        return self.result()

    def _close(self, say) -> None:
        """Time step k into the table; the next one begins where it left."""
        dmc, walk = self.cfg.dmc, self.walk
        window = bias_window(dmc.bias_window, self.tau)
        energy, error = walk.energy_summary(dmc.warmup_steps, window)
        s = walk.series
        row = (
            self.tau,
            energy,
            error,
            walk.moves[0] / walk.moves[1],
            walk.tau_eff,
            float(np.mean(s.population[dmc.warmup_steps :])),
            window,
        )
        for name, value in zip(S.DMC_FIELDS, row, strict=True):
            self.table[name].append(value)
        per_step = (s.e_mean, s.weight, s.population, s.e_trial, s.tau_eff)
        self.series.append(dict(zip(S.DMC_SERIES, per_step, strict=True)))
        say(
            f"dmc tau {self.tau:g}: E = {energy:.6f} +- {error:.6f}, tau_eff "
            f"{walk.tau_eff:.6g}, acceptance {self.table['acceptance'][-1]:.4f}"
        )
        self.k, self.walk = self.k + 1, None
        if self.k < len(dmc.time_steps):
            self.begin(walk.walkers, energy, walk.e_prev)

    def where(self) -> str:
        """How far the phase is, for the progress line and ``pvmc info``."""
        n = len(self.cfg.dmc.time_steps)
        if self.walk is None:
            return f"dmc: {self.k}/{n} time steps done"
        return (
            f"dmc time step {self.k + 1}/{n} (tau {self.tau:g}), "
            f"step {self.walk.steps_done}/{self.total_steps}"
        )

    def result(self) -> dict:
        """{"table", "series", "attrs"} of the finished time steps (the same on every
        rank), with the line to tau -> 0."""
        t = self.table
        e0, err0 = extrapolate(t["time_step"], t["energy"], t["error"])
        attrs = {
            "energy_extrapolated": e0,
            "error_extrapolated": err0,
            "warmup_steps": self.cfg.dmc.warmup_steps,
        }
        return {"table": t, "series": self.series, "attrs": attrs}


def table_text(result: dict) -> str:
    """The summary's DMC table and the extrapolated energy."""
    t = result["table"]
    lines = ["dmc           time step   tau_eff    accept.   energy          error     population"]
    for i in range(len(t["time_step"])):
        lines.append(
            f"              {t['time_step'][i]:<11.5g} {t['tau_eff'][i]:<10.5g} "
            f"{t['acceptance'][i]:<9.4f} {t['energy'][i]:<15.6f} {t['error'][i]:<9.6f} "
            f"{t['population'][i]:.0f}"
        )
    a = result["attrs"]
    lines.append(
        f"dmc energy    {a['energy_extrapolated']:.6f} +- {a['error_extrapolated']:.6f}"
        f" (tau -> 0, a line through {len(t['time_step'])} time step(s))"
    )
    return "\n".join(lines)


__all__ = [
    "DiffusionFailed",
    "DiffusionUnstable",
    "Phase",
    "initial_population",
    "table_text",
]
