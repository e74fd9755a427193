"""`pvmc bench`: speed of the Monte Carlo kernel and of the per-iteration Allreduce.

The default problem is the one of the project's C reference ``rbm``
(``bench/reference/rbm_vmc_ref.c``): P=2, D=2, H=4, brute-force Metropolis with a fixed
step of 1.0, ``psi = sqrt(F)``, ``sigma^2 = 1/(2 omega)``, ``a = b = 0``, ``W ~ U(-0.005,
0.005)``, Coulomb on, the local energy once per sweep, no optimization. With
``--reference rbm``, ``--reference slater`` (the packaged references, see
:mod:`.reference`) or ``--reference FILE.c`` the C program is compiled (gcc -O3
-march=native -ffast-math) and run alternately with ours on the same number of moves;
the medians and the median of the per-pair ratios are printed.

Fermions are set up as the reference ``slater`` (``bench/reference/slater_vmc_ref.c``)
runs them when the problem has Slater determinants (P > 2), in a ``--scan-particles``
scan, or when the reference is a fermion one: RBM parameters ~ N(0, 0.01^2),
Padé-Jastrow betas 0.5, Metropolis with the step tuned towards 50 % acceptance in 2000
untimed sweeps (``Sampler.thermalize``). The reference gets ``P D H SWEEPS omega
jastrow(0|1)``; both acceptances and steps are printed. A reference is a fermion one
when its check run prints its tuned ``step=``.

``--scan-particles 2,6,12,20`` times the production kernel for each particle count
(H = P*D unless -H), alternating with the reference per count, and fits the growth
exponent of ns/move with P.

``--allreduce N1,N2``, ``--scaling`` and ``--weak-scaling R`` measure the parallel
figures instead (:mod:`bench_scaling`): Allreduces of the given lengths on the running
ranks; the config's optimization iteration on one rank with the modelled efficiency at
100 to 10,000 ranks (:mod:`scaling`); alternating runs on 1 and R ranks.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import tempfile
import time
from typing import NamedTuple

import numpy as np

from ..sampling import estimators, observables
from ..sampling import kernels as K
from . import dmc_run, efficiency
from . import scaling_run as bench_scaling
from .options import OPTION_KEYS, BenchInputError, check_options, dmc_population, scan_counts
from .problem import (
    FERMION_THERMALIZATION,
    fermion_setup,
    setup,
    target_acceptance,
    thermalize,
    time_kernel,
)
from .reference import compile_source


def _config(args, scan_count: int | None = None):
    """The benchmark's Config: the config file's (else the C reference's problem) with
    the options applied; scan_count: one particle count of a scan (hidden units P*D
    unless -H). A ConfigError names the option that set the faulty key."""
    from ..config.fields import ConfigError
    from ..config.vmc import from_dict, load_config

    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        cfg = from_dict(
            {
                "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
                "sampler": {"method": "metropolis", "step": 1.0},
            }
        )
    raw = cfg.to_dict()
    given = {}
    for name, flag, section, key in OPTION_KEYS:
        value = getattr(args, name)
        if value is not None:
            raw[section][key] = value
            given[f"{section}.{key}"] = f"{flag} {value}"
    if scan_count is not None:
        raw["system"]["particles"] = scan_count
        given["system.particles"] = f"--scan-particles {scan_count}"
        if args.hidden is None:
            raw["wavefunction"]["hidden"] = scan_count * raw["system"]["dimensions"]
            given["wavefunction.hidden"] = f"--scan-particles {scan_count} (H = P*D)"
    try:
        return from_dict(raw)
    except ConfigError as exc:  # name the option that set the key
        flags = [flag for key, flag in given.items() if str(exc).startswith(key + ":")]
        raise ConfigError(f"{flags[0]}: {exc}" if flags else str(exc)) from None


class RefRun(NamedTuple):
    """What one run of the C reference printed: ns per move; acceptance, tuned step and
    CPU over wall time in % (None where it printed none)."""

    ns: float
    acc: float | None
    step: float | None
    cpu: float | None


class Reference:
    """The compiled C reference (rank 0). fermions: it tunes and prints its step, like
    slater_vmc_ref.c, and is run as ``P D H SWEEPS omega jastrow``; otherwise as
    ``P D H SWEEPS`` (rbm_vmc_ref.c)."""

    def __init__(self, source: str, exe: str, fermions: bool):
        self.source, self.exe, self.fermions = source, exe, fermions

    @property
    def name(self) -> str:
        return os.path.basename(self.source)

    def run(self, sampler, sweeps: int, timeout=None) -> RefRun:
        """The reference on our problem (sampler's system and wave function)."""
        sy, wf = sampler.system, sampler.wf
        argv = [sy.particles, sy.dimensions, wf.layout.n_hidden, sweeps]
        if self.fermions:
            argv += [repr(sy.omega), int(wf.jastrow == "pade")]
        return _run_reference(self.exe, argv, timeout)


def _compile_reference(source: str, workdir: str, cfg) -> Reference:
    """Compile the C reference (source: a file, names resolved by check_options) and
    check with a short run of the problem of cfg that it reports ns/move;
    BenchInputError (no compiler, the compiler's first error, no ns/move) if not."""
    exe = os.path.join(workdir, "vmc_ref")
    compile_source(source, exe)
    sy = cfg.system
    check = _run_reference(
        exe, [sy.particles, sy.dimensions, cfg.wavefunction.hidden, 100], timeout=60
    )
    return Reference(source, exe, check.step is not None)


def _run_reference(exe, argv, timeout=None) -> RefRun:
    """What the C reference run with the arguments argv printed; BenchInputError if it
    fails or does not print ``ns/move=<number>``."""
    run = f"the compiled --reference, run as `{' '.join(map(str, argv))}`,"
    try:
        res = subprocess.run(
            [exe, *map(str, argv)],
            text=True,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise BenchInputError(f"{run} did not finish within {timeout} s") from None
    found = {
        key: re.search(rf"\b{re.escape(key)}=([0-9]+(\.[0-9]*)?)", res.stdout)
        for key in ("ns/move", "acc", "step", "cpu")
    }
    if res.returncode != 0 or found["ns/move"] is None or float(found["ns/move"].group(1)) <= 0:
        said = next((line.strip() for line in res.stderr.splitlines() if line.strip()), "")
        raise BenchInputError(
            f"{run} exited with code {res.returncode} without printing "
            "ns/move=<positive number>"
            + (f" ({said[:200]})" if said else "")
            + "; allowed: a program like rbm_vmc_ref.c"
        )
    value = {key: None if m is None else float(m.group(1)) for key, m in found.items()}
    return RefRun(value["ns/move"], value["acc"], value["step"], value["cpu"])


def _check_reference_fits(cfg, ref: Reference, fermion: bool) -> None:
    """BenchInputError if the C reference runs another problem than ours."""
    name = f"--reference {ref.name!r}"
    if fermion and not ref.fermions:
        raise BenchInputError(
            f"{name} has no Slater determinants (it prints no tuned step=), the problem "
            f"has {cfg.system.particles} fermions; allowed: a fermion reference such as "
            f"slater_vmc_ref.c (--reference slater), or --statistics bosons"
        )
    if ref.fermions and not fermion:
        raise BenchInputError(
            f"{name} is a fermion reference (it prints its tuned step=), "
            f"the problem is bosons; allowed: --statistics fermions, or a "
            f"reference such as rbm_vmc_ref.c (--reference rbm)"
        )
    wf = cfg.wavefunction
    differs = [
        f"{key} {value}"
        for key, value, same in (
            ("sampler.method", cfg.sampler.method, "metropolis"),
            ("wavefunction.psi", wf.psi, "sqrt"),
            ("wavefunction.sigma", wf.sigma, None),
            ("system.interaction", cfg.system.interaction, "coulomb"),
        )
        if value != same
    ]
    if fermion and differs:
        raise BenchInputError(
            f"{name} runs Metropolis, psi = sqrt(F), sigma^2 = 1/(2 "
            f"omega), Coulomb; this problem has {', '.join(differs)}; "
            f"allowed: the reference's problem (--sampler metropolis; in the "
            f"config psi sqrt, sigma null, interaction coulomb)"
        )


def _problem_text(cfg, fermion: bool) -> str:
    """What is timed, but the particle and hidden unit counts."""
    sy, wf, sa = cfg.system, cfg.wavefunction, cfg.sampler
    step = (
        f"step tuned to acceptance {target_acceptance(cfg, fermion):g} in "
        f"{FERMION_THERMALIZATION} sweeps"
        if fermion
        else f"step={sa.step:g}"
    )
    interaction = {
        "coulomb": "coulomb",
        "none": "no interaction",
        "hard_sphere": f"hard spheres a={sy.hard_sphere_radius}",
    }[sy.interaction]
    trap = f"omega={sy.omega:g}" + (
        f" omega_z={sy.omega_z:g}" if sy.omega_z is not None and sy.omega_z != sy.omega else ""
    )
    return (
        f"{sy.statistics} {sa.method} {step} psi={wf.psi} jastrow={wf.jastrow} {interaction} {trap}"
    )


def run_bench(args, comm) -> int:
    """`pvmc bench`: one problem, or a scan over particle counts; exit code 0. Bad input
    raises ConfigError or BenchInputError (one line naming the option); its
    ``one_rank`` is True where only this rank found it after the work began."""
    check_options(args)
    scan = args.scan_particles is not None
    counts = scan_counts(args.scan_particles) if scan else [None]
    configs = [_config(args, count) for count in counts]  # all checked before work
    if args.dmc:
        dmc_population(args, configs[0], comm.size)
    if (args.scaling or args.weak_scaling) and comm.size > 1:
        flag = "--scaling" if args.scaling else "--weak-scaling"
        raise BenchInputError(
            f"{flag} on {comm.size} ranks: allowed: one rank (it "
            "models or launches the ranks itself)"
        )
    say = (lambda text: print(text, flush=True)) if comm.rank == 0 else (lambda text: None)
    if args.allreduce is not None:
        return bench_scaling.cmd_allreduce(args, comm, say)
    if args.weak_scaling is not None:
        return bench_scaling.cmd_weak(args, comm, say)
    with tempfile.TemporaryDirectory(prefix="pvmc-bench-") as workdir:
        problem = ref = None
        if args.reference and comm.rank == 0:  # before any work
            try:
                ref = _compile_reference(args.reference, workdir, configs[0])
                for cfg in configs:
                    _check_reference_fits(cfg, ref, fermion_setup(cfg, scan, ref.fermions))
            except BenchInputError as exc:
                problem = str(exc)
        problem, ref_fermions = comm.bcast((problem, ref is not None and ref.fermions))
        if problem:
            raise BenchInputError(problem)
        fermion = [fermion_setup(cfg, scan, ref_fermions) for cfg in configs]
        try:
            if args.efficiency:
                return efficiency.run(args, comm, configs[0], say)
            if args.dmc:
                return dmc_run.cmd_dmc(args, comm, configs[0], say)
            if scan:
                return _scan(args, comm, configs, fermion, ref, say)
            if args.scaling:
                bench_scaling.cmd_scaling(args, comm, configs[0], say)
                if configs[0].dmc.time_steps is not None:  # and a DMC step's model
                    dmc_run.print_model(args, comm, configs[0], say)
                return 0
            if args.production_at is not None:
                return bench_scaling.cmd_production_at(
                    args, configs[0], _production_ns(args, comm, configs[0], fermion[0]), say
                )
            return _single(args, comm, configs[0], fermion[0], ref, say)
        except BenchInputError as exc:  # setup, or the reference failed after its check
            exc.one_rank = True
            raise


def _production_ns(args, comm, cfg, fermion: bool) -> list:
    """ns/move of the config's production (with its observables, as a run does), one
    per timed run."""
    theta, sampler, walkers = setup(args, comm, cfg, fermion)
    P = sampler.system.particles
    sweeps = max(1, int(args.moves / (P * args.walkers)))
    layout = (
        observables.Layout.from_config(cfg.production, sampler.system, sweeps)
        if cfg.production.observables
        else None
    )
    time_kernel(sampler, theta, walkers, 2, K.PRODUCE, layout)  # compile, warm up
    thermalize(args, comm, sampler, theta, walkers, fermion)
    return [
        1e9
        * time_kernel(sampler, theta, walkers, sweeps, K.PRODUCE, layout)
        / (sweeps * P * args.walkers)
        for _ in range(args.repeats)
    ]


def _single(args, comm, cfg, fermion, ref, say) -> int:
    """The benchmark of one problem: every figure of the module docstring."""
    theta, sampler, walkers = setup(args, comm, cfg, fermion)
    P = sampler.system.particles
    sweeps = max(1, int(args.moves / (P * args.walkers)))
    say(
        f"problem: P={P} D={cfg.system.dimensions} H={sampler.wf.layout.n_hidden} "
        f"{_problem_text(cfg, fermion)}; {comm.size} rank(s) x {args.walkers} walkers, "
        f"{sweeps} sweeps per walker per timed run"
    )
    sampler.produce(theta, walkers, 2, components=False)  # compile + warm up
    time_kernel(
        sampler,
        theta,
        walkers,
        2,
        K.PRODUCE,
        observables.Layout.from_config(cfg.production, sampler.system, 2),
    )
    sampler.accumulate(theta, walkers, 2)
    thermalize(args, comm, sampler, theta, walkers, fermion)
    return _measure(args, comm, cfg, sampler, theta, walkers, sweeps, ref, say)


class Timed(NamedTuple):
    """Alternating timed runs: ours (ns/move per run), refs (RefRun per run; empty
    without reference or off rank 0), our global acceptance, and our CPU time over wall
    time in % (this rank: well below 100 means crowded out)."""

    ours: list
    refs: list
    acceptance: float
    cpu: float


def _alternate(args, comm, sampler, theta, walkers, sweeps, ref) -> Timed:
    """args.repeats timed production runs of ours, each followed by one of the C
    reference (rank 0) on as many moves."""
    moves = sweeps * sampler.system.particles * args.walkers
    before = walkers.accepted.sum()
    ours, refs, cpu, wall = [], [], 0.0, 0.0
    for _ in range(args.repeats):
        comm.barrier()
        start = time.process_time()
        seconds = time_kernel(sampler, theta, walkers, sweeps, K.PRODUCE)
        cpu, wall = cpu + time.process_time() - start, wall + seconds
        ours.append(1e9 * seconds / moves)
        if ref is not None:
            refs.append(ref.run(sampler, sweeps * args.walkers))
    counts = comm.allreduce_sum(
        np.array([walkers.accepted.sum() - before, args.repeats * moves], dtype=np.float64)
    )
    return Timed(ours, refs, estimators.acceptance(counts[0], counts[1]), 100 * cpu / wall)


def _measure(args, comm, cfg, sampler, theta, walkers, sweeps, ref, say) -> int:
    """Alternate timed runs of our kernel and the C reference; print the figures."""
    P, wf = sampler.system.particles, sampler.wf
    moves = sweeps * P * args.walkers
    timed = _alternate(args, comm, sampler, theta, walkers, sweeps, ref)
    ours, refs = timed.ours, timed.refs
    obs_layout = observables.Layout.from_config(cfg.production, sampler.system, sweeps)
    opt, with_obs = [], []
    for _ in range(max(1, args.repeats // 2)):
        opt.append(1e9 * time_kernel(sampler, theta, walkers, sweeps, K.OPTIMIZE) / moves)
        with_obs.append(
            1e9 * time_kernel(sampler, theta, walkers, sweeps, K.PRODUCE, obs_layout) / moves
        )
    med = statistics.median(ours)
    say(
        f"kernel, production (E_L per sweep):   {med:8.1f} ns/move  "
        f"(runs: {', '.join(f'{v:.1f}' for v in ours)}; cpu {timed.cpu:.0f}%)"
    )
    say(
        f"kernel, production + observables:     {statistics.median(with_obs):8.1f} ns/move  "
        f"(energy parts, densities, pair histogram)"
    )
    say(f"kernel, optimization (E_L, O, E*O):   {statistics.median(opt):8.1f} ns/move")
    say(
        f"samples (sweeps) per second:          {1e9 / (med * P):10.3e} per rank, "
        f"{comm.size * 1e9 / (med * P):10.3e} total"
    )

    # The Allreduce of one packed buffer, as made once per optimization iteration.
    buf = np.zeros(estimators.iteration_size(wf.layout.n_params))
    times = []
    for _ in range(200):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_sum(buf)
        times.append(time.perf_counter() - t)
    t_red = statistics.median(times)
    it_sweeps = -(-cfg.optimizer.samples_per_iteration // (comm.size * args.walkers))
    t_iter = statistics.median(opt) * 1e-9 * it_sweeps * P * args.walkers
    say(
        f"Allreduce of {buf.size} doubles:       {1e6 * t_red:8.1f} us per iteration "
        f"({100 * t_red / (t_iter + t_red):.3f} % of an iteration of "
        f"{cfg.optimizer.samples_per_iteration} samples)"
    )
    _measure_checkpoint(cfg, comm, args.walkers, say)
    if refs:
        _report_reference(ref, ours, refs, say)
    if ref is not None and ref.fermions:
        say(
            f"acceptance: ours {timed.acceptance:.3f} (step {sampler.step:.3f}), C "
            f"{_median(refs, 'acc'):.3f} (step {_median(refs, 'step'):.3f})"
        )
    return 0


def _median(refs, field: str) -> float:
    """Median of one printed figure over the reference runs (nan if never printed)."""
    values = [getattr(run, field) for run in refs if getattr(run, field) is not None]
    return statistics.median(values) if values else float("nan")


def _report_reference(ref, ours, refs, say) -> None:
    """The C reference's ns/move (and CPU share) and the ratios to ours."""
    ns = [run.ns for run in refs]
    ratios = [o / r for o, r in zip(ours, ns)]
    cpu = _median(refs, "cpu")
    cpu_text = "" if cpu != cpu else f"; cpu {cpu:.0f}%"  # nan: not printed
    say(
        f"C reference ({ref.name}): {statistics.median(ns):8.1f} "
        f"ns/move (runs: {', '.join(f'{v:.1f}' for v in ns)}{cpu_text})"
    )
    say(
        f"ratio ours / C: median of pairs {statistics.median(ratios):.3f}, "
        f"ratio of medians {statistics.median(ours) / statistics.median(ns):.3f}"
    )


def _scan(args, comm, configs, fermion, ref, say) -> int:
    """The production kernel timed for each particle count (alternating with the
    reference), a table row per count, then the growth exponents of ns/move with P."""
    hidden = "P*D" if args.hidden is None else args.hidden
    say(
        f"scan: D={configs[0].system.dimensions} H={hidden} "
        f"{_problem_text(configs[0], fermion[0])}; {comm.size} rank(s) x {args.walkers} "
        f"walkers, {int(args.moves)} moves per timed run and rank, {args.repeats} run(s) "
        f"per count" + (f" alternating with {ref.name}" if ref is not None else "")
    )
    say(_scan_header(ref is not None))
    rows = []
    for cfg, is_fermion in zip(configs, fermion):
        rows.append(_scan_count(args, comm, cfg, is_fermion, ref))
        say(_scan_row(rows[-1]))
    counts = [row["P"] for row in rows]
    text = f"ours {_growth_exponent(counts, [row['ours'] for row in rows]):.2f}"
    if ref is not None:
        text += f", C {_growth_exponent(counts, [row['C'] for row in rows]):.2f}"
    say(
        f"growth exponent of ns/move with P (least-squares slope of ln(ns/move) vs ln P, "
        f"P = {', '.join(map(str, counts))}): {text}"
    )
    return 0


def _scan_count(args, comm, cfg, fermion, ref) -> dict:
    """One count of the scan: set up, compile, thermalise, alternate; its table row."""
    theta, sampler, walkers = setup(args, comm, cfg, fermion)
    P = sampler.system.particles
    sweeps = max(1, int(args.moves / (P * args.walkers)))
    sampler.produce(theta, walkers, 2, components=False)  # compile + warm up
    thermalize(args, comm, sampler, theta, walkers, fermion)
    timed = _alternate(args, comm, sampler, theta, walkers, sweeps, ref)
    row = {
        "P": P,
        "H": sampler.wf.layout.n_hidden,
        "ours": statistics.median(timed.ours),
        "cpu": timed.cpu,
        "acc": timed.acceptance,
        "step": sampler.step,
    }
    if timed.refs:
        ns = [run.ns for run in timed.refs]
        row.update(
            C=statistics.median(ns),
            ratio=statistics.median([o / r for o, r in zip(timed.ours, ns)]),
            acc_C=_median(timed.refs, "acc"),
            step_C=_median(timed.refs, "step"),
            cpu_C=_median(timed.refs, "cpu"),
        )
    return row


def _scan_header(with_ref: bool) -> str:
    text = f"{'P':>4} {'H':>4} {'ours ns/move':>13} {'cpu':>5} {'acc':>6} {'step':>6}"
    if with_ref:
        text += f" {'C ns/move':>10} {'acc C':>6} {'step C':>7} {'C cpu':>6} {'ours/C':>7}"
    return text


def _scan_row(row: dict) -> str:
    """One table row (the C columns when the row has them); cf. _scan_header."""
    text = (
        f"{row['P']:>4} {row['H']:>4} {row['ours']:>13.1f} {row['cpu']:>4.0f}% "
        f"{row['acc']:>6.3f} {row['step']:>6.3f}"
    )
    if "C" in row:  # acceptance, step and cpu: '-' where the reference prints none
        acc, step, cpu = (
            ("-" if v != v else form.format(v))
            for v, form in (
                (row["acc_C"], "{:.3f}"),
                (row["step_C"], "{:.3f}"),
                (row["cpu_C"], "{:.0f}%"),
            )
        )
        text += f" {row['C']:>10.1f} {acc:>6} {step:>7} {cpu:>6} {row['ratio']:>7.3f}"
    return text


def _growth_exponent(counts, ns_per_move) -> float:
    """Least-squares slope of ln(ns/move) against ln P: ns/move ~ P^slope."""
    return float(np.polyfit(np.log(counts), np.log(ns_per_move), 1)[0])


def _measure_checkpoint(cfg, comm, walkers_per_rank, say, repeats=20) -> None:
    """Time the real checkpoint (gather every walker, sync the run file, write the
    sibling checkpoint atomically) for this problem, against the default interval."""
    import dataclasses
    import shutil

    from ..run.driver import Run

    workdir = comm.bcast(tempfile.mkdtemp(prefix="pvmc-bench-") if comm.rank == 0 else None)
    try:
        out = dataclasses.replace(cfg.output, path=os.path.join(workdir, "bench.h5"))
        sampler = dataclasses.replace(cfg.sampler, walkers_per_rank=walkers_per_rank)
        run = Run(cfg.replace(output=out, sampler=sampler), comm, progress=False)
        run.open_file()
        times = []
        for _ in range(repeats):
            comm.barrier()
            t = time.perf_counter()
            run.checkpoint()
            times.append(time.perf_counter() - t)
        if run.segment.held:
            run.segment.file.close()
        t_ckpt = statistics.median(times)
        every = cfg.output.checkpoint_every
        share = f"{100 * t_ckpt / every:.4f} % of the {every:g} s interval" if every else ""
        say(f"checkpoint ({run.n_chains} chains):         {1e3 * t_ckpt:8.2f} ms  {share}")
    finally:
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(workdir, ignore_errors=True)
