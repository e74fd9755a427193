"""`pvmc bench --efficiency`: what each sampler buys per second of production.

A user pays for statistical error per core-hour. For every sampler the config allows,
production runs at fixed parameters (the benchmark's, ``problem.theta_for``) with the step
tuned as a run tunes it (``sampler.thermalization`` sweeps towards the target
acceptance), ``--repeats`` times, each of ``--samples`` samples in total over all
ranks, with the config's observables. Each repeat gives

* ``T``: the wall time of the production kernel (the slowest rank's);
* ``tau_int``: the integrated autocorrelation time of the local energy, in the
  project's convention ``tau = 1 + 2 sum_t rho(t)`` (``analysis.autocorr``; Sokal's
  ``1/2 + sum_t rho(t)`` is half of it), from all chains;
* ``err``: the blocking error of the mean local energy (``analysis.summarize_chains``);
* ``kappa = 1 / (err^2 T)``, the efficiency, and the effective samples per second
  ``N / (tau T)`` (the same as ``N / (2 tau_Sokal T)``), the less noisy of the two
  where the local energy has a heavy tail (2D without a Jastrow factor).

Printed per sampler: the mean of each figure over the repeats with its standard error
(spread over the repeats / sqrt(repeats)), the mean energy (the samplers must agree),
and the production kernel's ns per move without and with the observables, from
alternating runs of ``--moves`` moves (medians), with the importance / Metropolis
ratio of the cost of a move.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import NamedTuple

import numpy as np

from ..sampling import observables
from .problem import fermion_setup, setup, time_kernel

MIN_SWEEPS = 256  # per chain and repeat: fewer give no meaningful tau_int


class Repeat(NamedTuple):
    """The figures of one timed production (see the module docstring)."""

    seconds: float
    energy: float
    ns_per_move: float
    tau: float
    error: float
    kappa: float
    ess_rate: float


def sampler_configs(cfg, names) -> tuple:
    """([(name, config with sampler.method = name)], [(name, why not)]): the samplers
    this config allows (e.g. no Gibbs with a Jastrow factor or determinants)."""
    from ..config.fields import ConfigError
    from ..config.vmc import from_dict

    usable, refused = [], []
    for name in names:
        raw = cfg.to_dict()
        raw["sampler"]["method"] = name
        try:
            usable.append((name, from_dict(raw)))
        except ConfigError as exc:
            refused.append((name, str(exc)))
    return usable, refused


def sweeps_per_chain(samples: int, n_chains: int) -> int:
    """Sweeps of every chain so that all chains together give at least ``samples``."""
    return max(MIN_SWEEPS, -(-samples // n_chains))


def _one_repeat(comm, sampler, theta, walkers, n_sweeps, layout, every) -> Repeat | None:
    """Time one production of n_sweeps sweeps of every walker (with the observables of
    layout, every ``every``-th sweep; None: without); the figures on rank 0, None on
    the other ranks."""
    from ..stats.autocorr import integrated_time
    from ..stats.blocking import blocking

    obs = spec = None
    if layout is not None:
        obs, spec = layout.zeros(), layout.spec(every)
    comm.barrier()
    start = time.perf_counter()
    energies, _, _, _ = sampler.produce(theta, walkers, n_sweeps, False, obs, spec, 0, n_sweeps)
    seconds = comm.allreduce_max(time.perf_counter() - start)
    chains = comm.gather_rows(energies)
    if chains is None:
        return None
    tau = integrated_time(chains).tau
    error = blocking(chains.mean(axis=0)).error  # the chains' mean is the estimate
    n = chains.size
    return Repeat(
        seconds,
        float(chains.mean()),
        1e9 * seconds * comm.size / (n * sampler.system.particles),
        tau,
        error,
        1.0 / (error**2 * seconds),
        n / (tau * seconds),
    )


class Setup(NamedTuple):
    """One sampler ready to produce: its name, config, parameters, Sampler, Walkers, the
    sweeps per chain of a repeat, the observables' layout (None: off) and the
    acceptance of its thermalisation."""

    name: str
    cfg: object
    theta: np.ndarray
    sampler: object
    walkers: object
    n_sweeps: int
    layout: object
    acceptance: float


def prepare(args, comm, cfg, say) -> list:
    """A thermalised, step-tuned :class:`Setup` for every sampler of ``args.samplers``
    that cfg allows (the others are named with the reason)."""
    usable, refused = sampler_configs(cfg, args.samplers)
    for name, why in refused:
        say(f"{name}: not measured ({why})")
    setups = []
    for name, c in usable:
        fermion = fermion_setup(c, False, False)
        theta, sampler, walkers = setup(args, comm, c, fermion)
        n_sweeps = sweeps_per_chain(args.samples, comm.size * args.walkers)
        layout = observables.Layout.from_config(c.production, sampler.system, n_sweeps)
        sampler.produce(
            theta, walkers, 2, False, layout.zeros(), layout.spec(), 0, n_sweeps
        )  # compile, warm up
        acceptance = sampler.thermalize(theta, walkers, c.sampler.thermalization, comm)
        setups.append(
            Setup(
                name,
                c,
                theta,
                sampler,
                walkers,
                n_sweeps,
                layout if c.production.observables else None,
                acceptance,
            )
        )
    return setups


def run_once(comm, u):
    """One timed production run (a Repeat) of the prepared sampler u."""
    return _one_repeat(
        comm,
        u.sampler,
        u.theta,
        u.walkers,
        u.n_sweeps,
        u.layout,
        u.cfg.production.observables_every,
    )


def measure(args, comm, setups) -> list:
    """[(sampler name, step, acceptance, [Repeat, ...])] of the prepared samplers."""
    return [
        (u.name, u.sampler.step, u.acceptance, [run_once(comm, u) for _ in range(args.repeats)])
        for u in setups
    ]


def kernel_costs(args, comm, setups) -> dict:
    """{name: (ns/move without observables, with them)}: medians of --repeats runs of
    --moves moves per rank, the samplers and both variants alternating, so that a slow
    spell of the machine hits all of them alike."""
    from ..sampling import kernels as K

    times = {u.name: ([], []) for u in setups}
    for _ in range(args.repeats):
        for u in setups:
            P = u.sampler.system.particles
            sweeps = max(1, int(args.moves / (P * args.walkers)))
            layout = observables.Layout.from_config(u.cfg.production, u.sampler.system, sweeps)
            for k, lay in enumerate((None, layout)):
                comm.barrier()
                seconds = time_kernel(u.sampler, u.theta, u.walkers, sweeps, K.PRODUCE, lay)
                times[u.name][k].append(1e9 * seconds / (sweeps * P * args.walkers))
    return {name: (statistics.median(a), statistics.median(b)) for name, (a, b) in times.items()}


def cost_lines(costs: dict) -> list:
    """The printed lines of :func:`kernel_costs` (rank 0)."""
    lines = ["production kernel, ns per move (median of alternating runs of --moves):"]
    for name, (bare, with_obs) in costs.items():
        lines.append(
            f"  {name:<11} {bare:8.1f}   with observables {with_obs:8.1f} "
            f"({100 * (with_obs / bare - 1):+.1f} %)"
        )
    if "metropolis" in costs and "importance" in costs:
        lines.append(
            f"  importance / metropolis move: {costs['importance'][0] / costs['metropolis'][0]:.2f}"
        )
    return lines


def _mean_error(values) -> str:
    """'mean +- standard error' of the repeats' values, 3 significant digits."""
    mean = statistics.fmean(values)
    err = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return f"{mean:.3g} +- {err:.2g}"


def table(rows, samples_per_repeat: int) -> list:
    """The printed lines of the measured rows (rank 0)."""
    lines = [
        f"{'sampler':<11} {'step':>7} {'acc.':>5} {'ns/move':>16} {'tau_int':>16} "
        f"{'kappa = 1/(err^2 T)':>22} {'eff. samples/s':>20}"
    ]
    for name, step, acceptance, repeats in rows:
        col = lambda field: _mean_error([getattr(r, field) for r in repeats])  # noqa: E731
        step_text = "-" if name == "gibbs" else f"{step:.3f}"  # gibbs has no step
        lines.append(
            f"{name:<11} {step_text:>7} {acceptance:5.2f} {col('ns_per_move'):>16} "
            f"{col('tau'):>16} {col('kappa'):>22} {col('ess_rate'):>20}"
        )
    for name, _, _, repeats in rows:  # every sampler samples the same |psi|^2
        energy = statistics.fmean(r.energy for r in repeats)
        error = math.sqrt(sum(r.error**2 for r in repeats)) / len(repeats)
        lines.append(f"{name:<11} E = {energy:.6f} +- {error:.6f} (all repeats)")
    lines.append(
        f"(mean +- standard error over {len(rows[0][3]) if rows else 0} repeats of "
        f"{samples_per_repeat} samples; tau_int = 1 + 2 sum rho; eff. samples/s "
        f"= N / (tau_int T))"
    )
    return lines


def run(args, comm, cfg, say) -> int:
    """`pvmc bench CONFIG --efficiency`: measure and print the table; exit code 0."""
    n_chains = comm.size * args.walkers
    samples = sweeps_per_chain(args.samples, n_chains) * n_chains
    say(
        f"efficiency at fixed parameters: P={cfg.system.particles} "
        f"D={cfg.system.dimensions} H={cfg.wavefunction.hidden}, {comm.size} rank(s) x "
        f"{args.walkers} walkers, {samples} samples per repeat, observables "
        f"{'on' if cfg.production.observables else 'off'}"
    )
    setups = prepare(args, comm, cfg, say)
    rows = measure(args, comm, setups)
    costs = kernel_costs(args, comm, setups)
    if comm.rank == 0:
        for line in table(rows, samples) + cost_lines(costs):
            say(line)
    return 0
