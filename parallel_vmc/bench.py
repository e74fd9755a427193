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
from . import observables


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


def _problem(args):
    """(System, WaveFunction, theta, sampler name, step) for the benchmark."""
    from .config import load_config, from_dict
    from .system import System
    from .wavefunction import WaveFunction
    if args.config:
        cfg = load_config(args.config, args.overrides)
    else:
        cfg = from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 1.0},
                         "sampler": {"method": "metropolis", "step": 1.0}})
    raw = cfg.to_dict()
    for key, value in (("particles", args.particles), ("dimensions", args.dimensions)):
        if value is not None:
            raw["system"][key] = value
    if args.hidden is not None:
        raw["wavefunction"]["hidden"] = args.hidden
    if args.sampler is not None:
        raw["sampler"]["method"] = args.sampler
    if args.jastrow is not None:
        raw["wavefunction"]["jastrow"] = args.jastrow
    cfg = from_dict(raw)
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    rng = np.random.default_rng(cfg.seed)
    M, N = wf.layout.n_visible, wf.layout.n_hidden
    theta = wf.layout.join(np.zeros(M), np.zeros(N), 0.01 * (rng.random((M, N)) - 0.5),
                           np.full(wf.layout.n_jastrow, cfg.wavefunction.jastrow_beta))
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


def _compile_reference(source: str, workdir: str) -> str:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise RuntimeError("no C compiler (gcc/cc) on PATH for --reference")
    exe = os.path.join(workdir, "rbm_vmc_ref")
    subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-o", exe, source, "-lm"],
                   check=True)
    return exe


def _run_reference(exe, P, D, H, sweeps) -> float:
    out = subprocess.run([exe, str(P), str(D), str(H), str(sweeps)], check=True,
                         capture_output=True, text=True).stdout
    return float(re.search(r"ns/move=([0-9.]+)", out).group(1))


def cmd_bench(args) -> int:
    from .config import ConfigError
    from .parallel import world
    from .samplers import Sampler, Walkers
    try:
        cfg, system, wf, theta = _problem(args)
    except ConfigError as exc:
        print(f"pvmc: error: {exc}", file=sys.stderr)
        return 2
    if args.reference and not os.path.isfile(args.reference):
        print(f"pvmc: error: --reference {args.reference!r}: file not found", file=sys.stderr)
        return 2
    if args.walkers < 1 or args.repeats < 1 or not 1 <= args.moves < 1e15:
        print("pvmc: error: --walkers, --repeats must be >= 1 and --moves a finite number "
              ">= 1", file=sys.stderr)
        return 2
    comm = world()
    P, D, H = system.particles, system.dimensions, wf.layout.n_hidden
    sampler = Sampler(cfg.sampler.method, cfg.sampler.step, system, wf)
    walkers = Walkers.start(cfg.seed, comm.rank * args.walkers, args.walkers,
                            system.n_coords, wf.sigma)
    sweeps = max(1, int(args.moves / (P * args.walkers)))
    say = (lambda text: print(text, flush=True)) if comm.rank == 0 else (lambda text: None)
    say(f"problem: P={P} D={D} H={H} {sampler.method} step={sampler.step:g} psi={wf.psi} jastrow={wf.jastrow} "
        f"{'coulomb' if system.coulomb else 'no interaction'}; {comm.size} rank(s) x "
        f"{args.walkers} walkers, {sweeps} sweeps per walker per timed run")
    sampler.produce(theta, walkers, 2, components=False)        # compile + warm up
    _time_kernel(sampler, theta, walkers, 2, K.PRODUCE,
                 observables.Layout.from_config(cfg.production, system, 2))
    sampler.accumulate(theta, walkers, 2)
    sampler.thermalize(theta, walkers, 200 if args.config else 0, comm)

    with tempfile.TemporaryDirectory(prefix="pvmc-bench-") as workdir:
        ref_exe = (_compile_reference(args.reference, workdir)
                   if args.reference and comm.rank == 0 else None)
        return _measure(args, comm, cfg, wf, sampler, theta, walkers, sweeps, ref_exe, say)


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
    buf = np.zeros(K.sums_size(wf.layout.n_params))
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
        run._open_file()
        times = []
        for _ in range(repeats):
            comm.barrier()
            t = time.perf_counter()
            run.checkpoint()
            times.append(time.perf_counter() - t)
        if run.file is not None:
            run.file.close()
        t_ckpt = statistics.median(times)
        every = cfg.output.checkpoint_every
        share = f"{100 * t_ckpt / every:.4f} % of the {every:g} s interval" if every else ""
        say(f"checkpoint ({run.n_chains} chains):         {1e3 * t_ckpt:8.2f} ms  {share}")
    finally:
        comm.barrier()
        if comm.rank == 0:
            shutil.rmtree(workdir, ignore_errors=True)
