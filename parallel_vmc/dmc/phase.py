"""The DMC phase of a run (``dmc.time_steps``): after VMC, one fixed-node DMC run per
time step on the optimised trial function, each starting from the population the one
before left (the first from snapshots of the VMC walkers), then the line E(tau) to
tau -> 0.

Checkpoints. The phase leaves the run's VMC walkers and parameters as they were, so the
checkpoint written when it begins is its start: a stop during DMC (signal, wall time)
ends the run at the next block of steps as interrupted, and ``pvmc resume`` runs the
phase again from that start, bit for bit on the same number of ranks. (Checkpoints of
the DMC population itself, so that a resume continues the time step, are not built
yet.)
"""

from __future__ import annotations

import math

import numpy as np

from ..runfile import schema as S
from ..sampling.samplers import Sampler, Walkers
from . import balance, streams
from .estimate import extrapolate
from .walk import Diffusion, DiffusionUnstable

BLOCK = 100  # steps between the checks of stop signals and wall time
SNAPSHOT_SWEEPS = 10  # VMC sweeps between two snapshots of a walker
INITIAL_STEP = 2**62  # the "step" of the first population's streams (never a real one)


class PhaseStopped(Exception):
    """A stop signal or the wall time arrived during the phase (reason in the text)."""


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


def run_phase(
    cfg, system, wf, theta, population: Walkers, comm, e_start: float, check_stop, say
) -> dict:
    """Every time step of cfg.dmc in turn; returns the results (the same on every rank):
    {"table": {field: list}, "series": [per-step dict], "attrs": dict}.

    check_stop() -> str | None: a reason to stop (collective; called every BLOCK steps):
    PhaseStopped then. say(text): a line on rank 0. DiffusionUnstable propagates.
    """
    dmc = cfg.dmc
    key = streams.root_key(cfg.seed)
    table = {name: [] for name in S.DMC_FIELDS}
    series, e_prev = [], None
    for k, tau in enumerate(dmc.time_steps):
        sampler = Sampler("importance", tau, system, wf, drift_limit=dmc.drift_limit)
        walk = Diffusion(
            sampler,
            theta,
            population,
            comm,
            dmc.walkers,
            e_start,
            key,
            dmc.feedback,
            k << 40,
            e_prev,
        )
        done, total = 0, dmc.warmup_steps + dmc.steps
        while done < total:
            n = min(BLOCK, total - done)
            walk.run(n)
            done += n
            reason = check_stop()
            if reason:
                raise PhaseStopped(f"{reason} at DMC time step {tau}, step {done}/{total}")
        window = bias_window(dmc.bias_window, tau)
        energy, error = walk.energy_summary(dmc.warmup_steps, window)
        s = walk.series
        row = (
            tau,
            energy,
            error,
            walk.moves[0] / walk.moves[1],
            walk.tau_eff,
            float(np.mean(s.population[dmc.warmup_steps :])),
        )
        for name, value in zip(S.DMC_FIELDS, row, strict=True):
            table[name].append(value)
        per_step = (s.e_mean, s.weight, s.population, s.e_trial)
        series.append(dict(zip(S.DMC_SERIES, per_step, strict=True)))
        say(
            f"dmc tau {tau:g}: E = {energy:.6f} +- {error:.6f}, tau_eff {walk.tau_eff:.6g}, "
            f"acceptance {table['acceptance'][-1]:.4f}"
        )
        population, e_start, e_prev = walk.walkers, energy, walk.e_prev
    e0, err0 = extrapolate(table["time_step"], table["energy"], table["error"])
    attrs = {
        "energy_extrapolated": e0,
        "error_extrapolated": err0,
        "warmup_steps": dmc.warmup_steps,
        "bias_window": bias_window(dmc.bias_window, dmc.time_steps[-1]),
    }
    return {"table": table, "series": series, "attrs": attrs}


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


__all__ = ["DiffusionUnstable", "PhaseStopped", "initial_population", "run_phase", "table_text"]
