"""The timed DMC steps and VMC sweeps of ``pvmc bench --dmc`` and of the DMC model of
``--scaling``.

The problem is set up as the other bench modes set it up: the benchmark's parameters
(``problem.theta_for``), walkers started from the config's seed and thermalized with
the config's ``sampler.thermalization`` importance-sampling sweeps at its
``sampler.step``, the first half tuning the step to the config's target acceptance as
a run's thermalization does (so that VMC is timed at the step its production would
use: more moves accepted, each costlier, than at an untuned step). The DMC population is
made from them as a run makes it (``dmc.phase.initial_population``) and diffuses at
``dmc.time_steps[0]``.

A move is one proposed single-particle move, the unit of every bench figure: a VMC
sweep of W walkers makes P W, a DMC step of the n walkers a rank holds P n (n changes
from step to step after the comb; it is counted).
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..dmc import balance, streams
from ..dmc.phase import initial_population
from ..dmc.walk import SECTIONS, Diffusion
from ..dmc.weights import reweight
from ..sampling import kernels as K
from ..sampling.samplers import Sampler, Walkers
from .options import BenchInputError
from .problem import fermion_setup, target_acceptance, theta_for, time_kernel

DMC_WARMUP = 20  # untimed steps: the kernel compiled or loaded, E_T settled a little
ENERGY_SWEEPS = 20  # VMC sweeps whose mean local energy starts E_T


class CountingComm:
    """A rank's comm passed through, counting the walker rows (``walk.pack``, of
    ``row`` doubles) this rank sends and receives in ``exchange``."""

    def __init__(self, comm, row: int):
        self._comm, self.row = comm, row
        self.sent = self.received = 0

    def __getattr__(self, name):
        return getattr(self._comm, name)

    def exchange(self, outgoing: dict, incoming: dict) -> dict:
        self.sent += sum(len(rows) for rows in outgoing.values())
        self.received += sum(incoming.values()) // self.row
        return self._comm.exchange(outgoing, incoming)


class Problem(NamedTuple):
    """theta (n_params,); vmc: the importance Sampler at the config's step; walkers:
    this rank's VMC Walkers; walk: the Diffusion of this rank's population (its comm a
    CountingComm); target: the population over all ranks; particles: P."""

    theta: np.ndarray
    vmc: Sampler
    walkers: Walkers
    walk: Diffusion
    target: int
    particles: int


def prepare(comm, cfg, target: int) -> Problem:
    """The thermalized problem of cfg with a DMC population of ``target`` walkers over
    the ranks (``balance.even_counts``; as many VMC walkers on each rank), after
    DMC_WARMUP untimed steps. BenchInputError if it does not fit in memory."""
    from ..system import System
    from ..wavefunction import WaveFunction

    counts = balance.even_counts(target, comm.size)
    n, first = int(counts[comm.rank]), int(counts[: comm.rank].sum())
    try:
        system = System.from_config(cfg.system)
        wf = WaveFunction.from_config(cfg.wavefunction, system)
        theta = theta_for(cfg, wf, fermion_setup(cfg, False, False))
        vmc = Sampler(
            "importance",
            cfg.sampler.step,
            system,
            wf,
            target=target_acceptance(cfg, False),
            drift_limit=cfg.sampler.drift_limit,
        )
        walkers = Walkers.start(
            cfg.seed,
            first,
            n,
            system.n_coords,
            wf.sigma,
            system.dimensions,
            system.kernel_params().hard_core,
        )
        vmc.thermalize(theta, walkers, cfg.sampler.thermalization, comm)
        e, *_ = vmc.produce(theta, walkers, ENERGY_SWEEPS, False)
        sums = comm.allreduce_sum(np.array([e.sum(), e.size], dtype=np.float64))
        population = initial_population(vmc, theta, walkers, comm, target, cfg.seed)
    except (MemoryError, ValueError) as exc:  # ValueError: numpy's 'array is too big'
        raise BenchInputError(
            f"the problem (particles, hidden units, {target} walkers) is too large for "
            f"this machine ({exc})"
        ) from None
    dmc = Sampler("importance", cfg.dmc.time_steps[0], system, wf, drift_limit=cfg.dmc.drift_limit)
    walk = Diffusion(
        dmc,
        theta,
        population,
        CountingComm(comm, system.n_coords + 5),
        target,
        sums[0] / sums[1],
        streams.root_key(cfg.seed),
        cfg.dmc.feedback,
        warmup=cfg.dmc.warmup_steps,
        alpha=cfg.dmc.cutoff,  # the run's cutoff: the weights' spread feeds the model
    )
    walk.run(DMC_WARMUP)
    return Problem(theta, vmc, walkers, walk, target, system.particles)


def time_steps(walk: Diffusion, steps: int) -> tuple[float, int]:
    """(seconds, walkers moved) of ``steps`` DMC steps on this rank."""
    moved = 0
    t = time.perf_counter()
    for _ in range(steps):
        moved += walk.walkers.count
        walk.step()
    return time.perf_counter() - t, moved


def weight_spread(walk: Diffusion, comm) -> float:
    """sigma_w = std(w) / mean(w) over all ranks of the weights one more step would
    give the walkers (``Diffusion._local``'s), on copies: the walk is not moved."""
    copy = Walkers(walk.walkers.positions.copy(), walk.walkers.rng.copy())
    e, _ = walk.move(copy)
    w = np.ones(copy.count)
    reweight(walk.e_prev, e[:, 0], walk.e_trial, walk.e_est, walk.cut, walk.tau_eff, w)
    n, s1, s2 = comm.allreduce_sum(np.array([w.size, w.sum(), (w * w).sum()], dtype=np.float64))
    mean = s1 / n
    return float(np.sqrt(max(s2 / n - mean * mean, 0.0)) / mean)


class Timed(NamedTuple):
    """Alternating runs: vmc, dmc (ns per move per run: the slowest rank's time over a
    rank's mean moves); their global acceptances; sections {SECTIONS: seconds per
    step, mean over ranks}; moved: walkers moved per step, all ranks; traffic: walkers
    the busiest rank sent plus received per step; cpu: this rank's CPU time over wall
    time in % (well below 100: crowded out)."""

    vmc: list
    dmc: list
    vmc_acceptance: float
    dmc_acceptance: float
    sections: dict
    moved: float
    traffic: float
    cpu: float


def _total(comm, *values) -> np.ndarray:
    """The values summed over the ranks (float64)."""
    return comm.allreduce_sum(np.array(values, dtype=np.float64))


def _vmc_run(comm, prob: Problem, sweeps: int) -> float:
    """ns per move of one timed VMC production run."""
    seconds = time_kernel(prob.vmc, prob.theta, prob.walkers, sweeps, K.PRODUCE)
    moves = _total(comm, sweeps * prob.particles * prob.walkers.count)[0]
    return 1e9 * comm.allreduce_max(seconds) * comm.size / moves


def _dmc_run(comm, prob: Problem, steps: int) -> tuple[float, float]:
    """(ns per move, walkers moved on all ranks) of one timed run of DMC steps."""
    seconds, moved = time_steps(prob.walk, steps)
    moved = _total(comm, moved)[0]
    return 1e9 * comm.allreduce_max(seconds) * comm.size / (prob.particles * moved), moved


def alternate(comm, prob: Problem, sweeps: int, repeats: int) -> Timed:
    """``repeats`` timed runs of ``sweeps`` VMC production sweeps (``kernels.PRODUCE``,
    as production runs them), each followed by as many DMC steps."""
    walk, walkers, counter = prob.walk, prob.walkers, prob.walk.comm
    walk.timings = dict.fromkeys(SECTIONS, 0.0)
    accepted, dmc_moves = walkers.accepted.sum(), walk.moves.copy()
    rows = counter.sent + counter.received
    vmc, dmc, moved = [], [], 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeats):
        comm.barrier()
        vmc.append(_vmc_run(comm, prob, sweeps))
        comm.barrier()
        ns, n = _dmc_run(comm, prob, sweeps)
        dmc.append(ns)
        moved += n
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    steps = repeats * sweeps
    proposed = steps * prob.particles * walkers.count
    vmc_acc = _total(comm, walkers.accepted.sum() - accepted, proposed)
    dmc_acc = walk.moves - dmc_moves
    own = np.array([walk.timings[name] for name in SECTIONS]) / steps
    walk.timings = None
    return Timed(
        vmc,
        dmc,
        vmc_acc[0] / vmc_acc[1],
        dmc_acc[0] / dmc_acc[1],
        dict(zip(SECTIONS, comm.allreduce_sum(own) / comm.size)),
        moved / steps,
        comm.allreduce_max((counter.sent + counter.received - rows) / steps),
        100 * cpu / wall,
    )
