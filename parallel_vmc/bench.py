"""`pvmc bench`: speed of the Monte Carlo kernel and of the per-iteration Allreduce.

The default problem is the one of ``shared/bench/rbm_vmc_ref.c``: P=2, D=2, H=4,
brute-force Metropolis with a fixed step of 1.0, ``psi = sqrt(F)``, ``sigma^2 =
1/(2 omega)``, ``a = b = 0``, ``W ~ U(-0.005, 0.005)``, Coulomb on, the local energy once
per sweep, no optimisation. With ``--reference FILE.c`` the C program is compiled
(gcc -O3 -march=native -ffast-math) and run alternately with ours on the same number of
moves; the medians and the median of the per-pair ratios are printed.
"""
from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import kernels as K
from . import estimators, observables


def add_arguments(p) -> None:
    p.add_argument("config", nargs="?", help="take system/wave function/sampler from this "
                   "config (default: the C reference's problem)")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override a config key")
    p.add_argument("-P", "--particles", type=int, help="particles (default 2)")
    p.add_argument("-D", "--dimensions", type=int, help="dimensions (default 2)")
    p.add_argument("-H", "--hidden", type=int, help="hidden units (default 4)")
    p.add_argument("--sampler", choices=("metropolis", "importance", "gibbs"),
                   help="sampler (default metropolis)")
    p.add_argument("--jastrow", choices=("none", "pade"),
                   help="correlation factor (default: the config's, else none)")
    p.add_argument("--walkers", type=int, default=16, help="walkers per rank (default 16)")
    p.add_argument("--moves", type=float, default=4e6,
                   help="Monte Carlo moves per timed run and rank (default 4e6)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    p.add_argument("--reference", metavar="FILE.c",
                   help="compile this C reference and compare alternately")


class BenchInputError(Exception):
    """Bad bench input (options, the C reference); exit code 2 with this message."""


# Bench options that set a config key: (argument, flag, section, key).
_OPTION_KEYS = (("particles", "-P", "system", "particles"),
                ("dimensions", "-D", "system", "dimensions"),
                ("hidden", "-H", "wavefunction", "hidden"),
                ("sampler", "--sampler", "sampler", "method"),
                ("jastrow", "--jastrow", "wavefunction", "jastrow"))


def _check_options(args) -> None:
    """Options the config cannot check, before any work."""
    if args.overrides and not args.config:
        raise BenchInputError("--set needs a CONFIG to override (pvmc bench CONFIG --set "
                              "section.key=value); without one the C reference's problem "
                              "is used, set with -P, -D, -H, --sampler, --jastrow")
    for flag, value in (("--walkers", args.walkers), ("--repeats", args.repeats)):
        if value < 1:
            raise BenchInputError(f"{flag} {value}: allowed: an integer >= 1")
    if not 1 <= args.moves < 1e15:
        raise BenchInputError(f"--moves {args.moves:g}: allowed: a number >= 1, < 1e15")
    if args.reference:
        path = args.reference
        if not os.path.isfile(path):
            raise BenchInputError(f"--reference {path!r}: file not found")
        if not path.endswith(".c"):
            raise BenchInputError(f"--reference {path!r}: allowed: a C source file "
                                  "(FILE.c), such as rbm_vmc_ref.c")


def _problem(args):
    """(Config, System, WaveFunction, theta) for the benchmark."""
    from .config import ConfigError, load_config, from_dict
    from .system import System
    from .wavefunction import WaveFunction
    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        cfg = from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 1.0},
                         "sampler": {"method": "metropolis", "step": 1.0}})
    raw = cfg.to_dict()
    given = {}
    for name, flag, section, key in _OPTION_KEYS:
        value = getattr(args, name)
        if value is not None:
            raw[section][key] = value
            given[f"{section}.{key}"] = f"{flag} {value}"
    try:
        cfg = from_dict(raw)
    except ConfigError as exc:   # name the option that set the key
        flags = [flag for key, flag in given.items() if str(exc).startswith(key + ":")]
        raise ConfigError(f"{flags[0]}: {exc}" if flags else str(exc)) from None
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    rng = np.random.default_rng(cfg.seed)
    M, N = wf.layout.n_visible, wf.layout.n_hidden
    theta = wf.layout.initial(0.0, rng, cfg.wavefunction.jastrow_beta)
    wf.layout.block(theta, "W")[:] = 0.01 * (rng.random((M, N)) - 0.5)
    return cfg, system, wf, theta


def _time_kernel(sampler, theta, walkers, sweeps, mode, obs_layout=None) -> float:
    """Seconds for one call of `sweeps` sweeps of all walkers in the given mode (with
    obs_layout: production that also accumulates the observables, as a run does)."""
    if mode == K.PRODUCE:
        obs = spec = None
        if obs_layout is not None:
            obs, spec = obs_layout.zeros(), obs_layout.spec()
        t = time.perf_counter()
        sampler.produce(theta, walkers, sweeps, False, obs, spec, 0, sweeps)
        return time.perf_counter() - t
    t = time.perf_counter()
    sampler.accumulate(theta, walkers, sweeps)
    return time.perf_counter() - t


def _compile_reference(source: str, workdir: str, P: int, D: int, H: int) -> str:
    """Compile the C reference and check with a short run that it reports ns/move;
    BenchInputError (with the compiler's first error) if not."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchInputError("--reference: no C compiler (gcc or cc) on PATH")
    exe = os.path.join(workdir, "rbm_vmc_ref")
    res = subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-x", "c", "-o", exe,
                          source, "-lm"], capture_output=True, text=True,
                         stdin=subprocess.DEVNULL)
    if res.returncode != 0:
        lines = [line.strip() for line in res.stderr.splitlines() if line.strip()]
        first = next((line for line in lines if "error" in line), lines[0] if lines else
                     f"exit code {res.returncode}")
        raise BenchInputError(f"--reference {source!r}: does not compile: {first}")
    _run_reference(exe, P, D, H, 100, timeout=60)
    return exe


def _run_reference(exe, P, D, H, sweeps, timeout=None) -> float:
    """ns per move printed by the C reference; BenchInputError if it fails or does not
    print ``ns/move=<number>``."""
    run = f"the compiled --reference, run as `{P} {D} {H} {sweeps}`,"
    try:
        res = subprocess.run([exe, str(P), str(D), str(H), str(sweeps)], text=True,
                             capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchInputError(f"{run} did not finish within {timeout} s") from None
    found = re.search(r"ns/move=([0-9]+(\.[0-9]*)?)", res.stdout)
    if res.returncode != 0 or found is None or float(found.group(1)) <= 0:
        raise BenchInputError(f"{run} exited with code {res.returncode} without printing "
                              "ns/move=<positive number>; allowed: a program like "
                              "rbm_vmc_ref.c")
    return float(found.group(1))


def _setup(args, comm):
    """(cfg, wf, theta, sampler, walkers) of the benchmark; BenchInputError if they do
    not fit in memory."""
    from .samplers import Sampler, Walkers
    try:
        cfg, system, wf, theta = _problem(args)
        sampler = Sampler(cfg.sampler.method, cfg.sampler.step, system, wf,
                          drift_limit=cfg.sampler.drift_limit)
        walkers = Walkers.start(cfg.seed, comm.rank * args.walkers, args.walkers,
                                system.n_coords, wf.sigma)
    except MemoryError as exc:
        raise BenchInputError(f"the problem (particles, hidden units, --walkers "
                              f"{args.walkers}) is too large for this machine ({exc})") from None
    return cfg, wf, theta, sampler, walkers


def cmd_bench(args) -> int:
    from .cli import bad_input
    from .config import ConfigError
    from .parallel import world
    comm = world()
    try:
        _check_options(args)
        cfg, wf, theta, sampler, walkers = _setup(args, comm)
    except (BenchInputError, ConfigError) as exc:
        return bad_input(str(exc), comm.rank)
    system = sampler.system
    P, D, H = system.particles, system.dimensions, wf.layout.n_hidden
    with tempfile.TemporaryDirectory(prefix="pvmc-bench-") as workdir:
        problem = ref_exe = None
        if args.reference and comm.rank == 0:       # before any work
            try:
                ref_exe = _compile_reference(args.reference, workdir, P, D, H)
            except BenchInputError as exc:
                problem = str(exc)
        if comm.bcast(problem):
            return bad_input(problem, comm.rank)
        sweeps = max(1, int(args.moves / (P * args.walkers)))
        say = (lambda text: print(text, flush=True)) if comm.rank == 0 else (lambda text: None)
        say(f"problem: P={P} D={D} H={H} {sampler.method} step={sampler.step:g} psi={wf.psi} "
            f"jastrow={wf.jastrow} {'coulomb' if system.coulomb else 'no interaction'}; "
            f"{comm.size} rank(s) x {args.walkers} walkers, {sweeps} sweeps per walker per "
            "timed run")
        sampler.produce(theta, walkers, 2, components=False)        # compile + warm up
        _time_kernel(sampler, theta, walkers, 2, K.PRODUCE,
                     observables.Layout.from_config(cfg.production, system, 2))
        sampler.accumulate(theta, walkers, 2)
        sampler.thermalize(theta, walkers, 200 if args.config else 0, comm)
        try:
            return _measure(args, comm, cfg, wf, sampler, theta, walkers, sweeps, ref_exe,
                            say)
        except BenchInputError as exc:   # the reference failed on rank 0 after its check
            bad_input(str(exc))
            if comm.size > 1:
                comm.abort(2)
            return 2


def _measure(args, comm, cfg, wf, sampler, theta, walkers, sweeps, ref_exe, say) -> int:
    """Alternate timed runs of our kernel and the C reference; print the figures."""
    P = sampler.system.particles
    moves = sweeps * P * args.walkers
    H = wf.layout.n_hidden
    D = sampler.system.dimensions
    ours, ref, opt = [], [], []
    for _ in range(args.repeats):
        comm.barrier()
        ours.append(1e9 * _time_kernel(sampler, theta, walkers, sweeps, K.PRODUCE) / moves)
        if ref_exe:
            ref.append(_run_reference(ref_exe, P, D, H, sweeps * args.walkers))
    obs_layout = observables.Layout.from_config(cfg.production, sampler.system, sweeps)
    with_obs = []
    for _ in range(max(1, args.repeats // 2)):
        opt.append(1e9 * _time_kernel(sampler, theta, walkers, sweeps, K.OPTIMIZE) / moves)
        with_obs.append(1e9 * _time_kernel(sampler, theta, walkers, sweeps, K.PRODUCE,
                                           obs_layout) / moves)
    med = statistics.median(ours)
    say(f"kernel, production (E_L per sweep):   {med:8.1f} ns/move  "
        f"(runs: {', '.join(f'{v:.1f}' for v in ours)})")
    say(f"kernel, production + observables:     {statistics.median(with_obs):8.1f} ns/move  "
        f"(energy parts, densities, pair histogram)")
    say(f"kernel, optimisation (E_L, O, E*O):   {statistics.median(opt):8.1f} ns/move")
    say(f"samples (sweeps) per second:          {1e9 / (med * P):10.3e} per rank, "
        f"{comm.size * 1e9 / (med * P):10.3e} total")

    # The Allreduce of one packed buffer, as made once per optimisation iteration.
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
    say(f"Allreduce of {buf.size} doubles:       {1e6 * t_red:8.1f} us per iteration "
        f"({100 * t_red / (t_iter + t_red):.3f} % of an iteration of "
        f"{cfg.optimizer.samples_per_iteration} samples)")
    _measure_checkpoint(cfg, comm, args.walkers, say)
    if ref:
        ratios = [o / r for o, r in zip(ours, ref)]
        say(f"C reference ({os.path.basename(args.reference)}): {statistics.median(ref):8.1f} "
            f"ns/move (runs: {', '.join(f'{v:.1f}' for v in ref)})")
        say(f"ratio ours / C: median of pairs {statistics.median(ratios):.3f}, "
            f"ratio of medians {med / statistics.median(ref):.3f}")
    return 0


def _measure_checkpoint(cfg, comm, walkers_per_rank, say, repeats=20) -> None:
    """Time the real checkpoint (gather every walker, sync the run file, write the
    sibling checkpoint atomically) for this problem, against the default interval."""
    import dataclasses
    import shutil

    from .driver import Run
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
