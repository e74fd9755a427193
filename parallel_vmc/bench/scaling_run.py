"""The parallel figures of `pvmc bench`, all measured when the command runs (nothing
measured is stored; the interconnect constants are :mod:`scaling`'s published ones):

* ``--allreduce N1,N2``: the Allreduce of buffers of those lengths on the running ranks;
* ``CONFIG --scaling``: the config's driver iteration on one rank, split into the
  sampling (divides over ranks) and the rest, and the weak and strong efficiency the
  model of :mod:`scaling` gives on 100 to 10,000 ranks;
* ``CONFIG --weak-scaling R``: alternating real runs on 1 and R ranks;
* ``CONFIG --production-at R``: the production ns/move here, and what production on R
  ranks asks of rank 0 (memory, file, write rate).
"""

from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

from ..control import N_FLAGS
from ..sampling import estimators
from . import scaling_model as scaling

MAX_DOUBLES = 2**27  # 1 GiB per buffer; the Allreduce holds two
ALLREDUCE_ALLOWED = (
    f"allowed: comma-separated buffer lengths in doubles, each 1 .. {MAX_DOUBLES}, e.g. 63,2835870"
)


def parse_sizes(text: str) -> list:
    """The buffer lengths of ``--allreduce`` (doubles), in the order given; ValueError
    with the allowed form unless every one is an integer in 1 .. MAX_DOUBLES."""
    try:
        sizes = [int(value) for value in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or not all(1 <= n <= MAX_DOUBLES for n in sizes):
        raise ValueError(f"--allreduce {text!r}: {ALLREDUCE_ALLOWED}")
    return sizes


def spread(values) -> str:
    """'median [min, max]' of values (seconds) in microseconds."""
    us = [1e6 * v for v in values]
    return f"{statistics.median(us):10.1f} [{min(us):.1f}, {max(us):.1f}]"


def time_allreduce(comm, n: int, repeats: int) -> list:
    """Seconds of `repeats` Allreduces of n doubles, each the slowest rank's time
    (the collective ends for all when the last rank has its result)."""
    buf = np.ones(n)
    comm.allreduce_sum(buf)  # first touch, connection set-up
    times = []
    for _ in range(repeats):
        comm.barrier()
        t = time.perf_counter()
        comm.allreduce_sum(buf)
        times.append(time.perf_counter() - t)
    return [comm.allreduce_max(t) for t in times]


def oversubscription(comm) -> str:
    """How this rank's node is loaded: ranks on it against its CPUs (collective)."""
    on_node, cpus = comm.ranks_on_node(), os.cpu_count() or 1
    state = "oversubscribed" if on_node > cpus else "not oversubscribed"
    return f"{on_node} rank(s) on a node of {cpus} CPU(s): {state}"


def cmd_allreduce(args, comm, say) -> int:
    """Time the Allreduce of each buffer length in args.allreduce on the running
    ranks; median, min, max per length."""
    sizes = parse_sizes(args.allreduce)
    where = oversubscription(comm)
    say(
        f"Allreduce (MPI_SUM, float64) on {comm.size} rank(s) ({comm.library}), {where}; "
        f"{args.allreduce_repeats} timed calls per size, each the slowest rank's"
    )
    say(f"{'doubles':>10} {'bytes':>12}  {'median [min, max] us':>28}")
    for n in sizes:
        times = time_allreduce(comm, n, args.allreduce_repeats)
        say(f"{n:>10} {8 * n:>12}  {spread(times):>28}")
    return 0


def measure_gamma(n: int, repeats: int = 20) -> float:
    """Seconds per byte of the local reduction (adding one received buffer of n doubles
    into another), this machine: the model's gamma. At least 2^20 doubles, so that
    numpy's call overhead does not pass for a cost per byte."""
    n = max(n, 2**20)
    a, b = np.ones(n), np.ones(n)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.add(a, b, out=a)
        times.append(time.perf_counter() - t)
    return statistics.median(times) / (8 * n)


def time_driver_iterations(cfg, comm, walkers_per_rank: int, repeats: int):
    """Seconds of `repeats` whole optimization iterations of the driver on one rank
    (after its thermalisation), and of the sampling inside each (incl. O^T O for SR):
    (whole, sampling), lists of repeats. whole - sampling is what every rank repeats
    however many ranks there are: decoding, the update (SR solve), the record written
    to the run file, the Python in between."""
    import dataclasses
    import shutil
    import tempfile

    from ..run.driver import Run
    from ..run.report import Progress

    workdir = tempfile.mkdtemp(prefix="pvmc-bench-")
    try:
        out = dataclasses.replace(cfg.output, path=os.path.join(workdir, "bench.h5"))
        sampler = dataclasses.replace(cfg.sampler, walkers_per_rank=walkers_per_rank)
        optimizer = dataclasses.replace(
            cfg.optimizer, iterations=max(repeats + 1, cfg.optimizer.iterations)
        )
        run = Run(
            cfg.replace(output=out, sampler=sampler, optimizer=optimizer), comm, progress=False
        )
        run.open_file()
        run.sampler.load_kernel(run.state.theta, run.walkers)
        run.thermalize()
        progress = Progress(optimizer.iterations, "optimize", 1e9, enabled=False)
        run._iteration(progress)  # warm up: first write, caches
        sampling = []
        accumulate = run.sampler.accumulate

        def timed(*a, **kw):  # the sampling, inside the driver
            t = time.perf_counter()
            out = accumulate(*a, **kw)
            sampling.append(time.perf_counter() - t)
            return out

        run.sampler.accumulate = timed
        whole = []
        for _ in range(repeats):
            t = time.perf_counter()
            run._iteration(progress)
            whole.append(time.perf_counter() - t)
        run.segment.file.close()
        return whole, sampling
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _ms(values) -> str:
    return (
        f"{1e3 * statistics.median(values):8.3f} ms [{1e3 * min(values):.3f}, "
        f"{1e3 * max(values):.3f}]"
    )


def cmd_scaling(args, comm, cfg, say) -> int:
    """Measure this config's driver iteration on one rank and print the model's weak
    and strong parallel efficiency at scaling.RANK_COUNTS."""
    from ..system import System
    from ..wavefunction import WaveFunction

    opt, W = cfg.optimizer, args.walkers
    total = opt.samples_per_iteration
    sweeps = scaling.sweeps_per_walker(total, 1, W)
    whole, sampling = time_driver_iterations(cfg, comm, W, args.repeats)
    rest = [w - s for w, s in zip(whole, sampling)]
    t_sweeps, t_serial = statistics.median(sampling), statistics.median(rest)
    n_params = WaveFunction.from_config(
        cfg.wavefunction, System.from_config(cfg.system)
    ).layout.n_params
    n_buf = estimators.iteration_size(n_params, opt.method == "sr") + N_FLAGS
    gamma = measure_gamma(n_buf)
    say(
        f"optimization iteration: {opt.method}, {n_params} parameters, {total} samples on "
        f"1 rank x {W} walkers ({sweeps} sweeps each); {args.repeats} iterations, median "
        f"[min, max]:"
    )
    say(f"  whole iteration (driver)       {_ms(whole)}")
    say(
        f"  sampling{' + O^T O' if opt.method == 'sr' else '        '} (divides)     "
        f"{_ms(sampling)}"
    )
    say(f"  the rest (every rank, whole)   {_ms(rest)}")
    say(
        f"Allreduce buffer {n_buf} doubles ({8 * n_buf / 1e6:.3f} MB, {N_FLAGS} control "
        f"flags included); model: {_model_text(8 * n_buf)}; alpha "
        f"{1e6 * scaling.HDR_LATENCY:.1f} us, {scaling.HDR_BANDWIDTH / 1e9:.0f} GB/s "
        f"(InfiniBand HDR, sources in scaling.py), gamma {1e9 * gamma:.3f} ns/byte "
        f"(measured here)"
    )
    say(
        f"{'ranks':>6} {'t_allreduce':>12} {'weak E':>7} {'strong: sweeps':>15} "
        f"{'samples':>9} {'t_iter':>10} {'E':>7}"
    )
    for R in scaling.RANK_COUNTS:
        say(_row(R, 8 * n_buf, gamma, t_sweeps / sweeps, t_serial, total, W))
    return 0


def _model_text(n_bytes: float) -> str:
    if n_bytes <= scaling.SHORT_MESSAGE_BYTES:
        return "recursive doubling, ceil(log2 R) (alpha + n beta + n gamma)"
    return "Rabenseifner, 2 ceil(log2 R) alpha + 2 (R-1)/R n beta + (R-1)/R n gamma"


def _row(R, n_bytes, gamma, t_sweep, t_serial, total, W) -> str:
    """One line of the table for R ranks (t_sweep: one sweep of one rank's walkers)."""
    t_ar = scaling.allreduce_seconds(n_bytes, R, gamma=gamma)
    weak = scaling.weak_efficiency(t_sweep * scaling.sweeps_per_walker(total, 1, W), t_serial, t_ar)
    k = scaling.sweeps_per_walker(total, R, W)
    strong = scaling.strong_efficiency(t_sweep, t_serial, t_ar, total, R, W)
    t_iter = t_sweep * k + t_serial + t_ar
    return (
        f"{R:>6} {1e6 * t_ar:>9.1f} us {100 * weak:>6.1f}% {k:>15} {k * R * W:>9} "
        f"{1e3 * t_iter:>7.3f} ms {100 * strong:>6.3g}%"
    )


def _launcher() -> str:
    """The mpiexec of this Python's environment (the MPI mpi4py uses), else PATH's."""
    import shutil

    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.path.exists(beside) else (shutil.which("mpiexec") or "mpiexec")


def _child_env() -> dict:
    """This environment without the variables of an enclosing launcher (a child would
    try to join its MPI job) and with one BLAS thread per rank."""
    from ..parallel import LAUNCHER_RANKS, LAUNCHER_SIZES

    drop = {name for name, _ in LAUNCHER_SIZES} | set(LAUNCHER_RANKS)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("PMI_", "PMIX_", "HYDRA_", "MPIR_"))
    }
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    return env


def iteration_seconds(path: str) -> list:
    """Seconds of each optimization iteration of a run file but the first (differences
    of /optimization/wall_time, rank 0's clock from the start of an iteration's
    sampling to its update)."""
    import h5py

    from ..runfile import schema as S

    with h5py.File(path, "r") as h5:
        opt = h5[S.OPTIMIZATION]
        rows = int(opt[S.ROWS_WRITTEN][0])
        wall = np.asarray(opt["wall_time"][:rows])
    return list(np.diff(wall))


def weak_run(args, ranks: int, workdir: str):
    """One run of args.config on `ranks` ranks with the config's samples_per_iteration
    on every rank (so ranks times the total): (its per-iteration seconds, the CPU time
    of its processes over ranks x its wall time, in %: well below 100 means the ranks
    did not each have a core, as MPICH's ranks poll while they wait)."""
    import resource
    import subprocess

    from ..config.vmc import load_config

    cfg = load_config(args.config, args.overrides)
    path = os.path.join(workdir, f"weak{ranks}.h5")
    total = ranks * cfg.optimizer.samples_per_iteration
    command = [
        sys.executable,
        "-m",
        "parallel_vmc",
        "run",
        args.config,
        "--quiet",
        "--overwrite",
        "-o",
        path,
    ]
    for item in [
        *args.overrides,
        f"optimizer.samples_per_iteration={total}",
        f"production.samples={ranks * cfg.sampler.walkers_per_rank * 16}",
    ]:
        command += ["--set", item]
    if ranks > 1:
        command = [_launcher(), "-n", str(ranks), *command]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    res = subprocess.run(
        command, capture_output=True, text=True, env=_child_env(), stdin=subprocess.DEVNULL
    )
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        tail = " ".join(res.stderr.strip().splitlines()[-3:])[:400]
        raise RuntimeError(f"`{' '.join(command)}` exited with {res.returncode}: {tail}")
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return iteration_seconds(path), 100 * cpu / (ranks * wall)


def cmd_weak(args, comm, say) -> int:
    """Alternate runs of the config on 1 and on args.weak_scaling ranks at fixed
    samples per rank; the efficiency t(1) / t(R) of the median iteration, per pair and
    the median of the pairs."""
    import shutil
    import tempfile

    R = args.weak_scaling
    workdir = tempfile.mkdtemp(prefix="pvmc-weak-")
    say(
        f"weak scaling 1 -> {R} ranks: {args.config}, samples_per_iteration per rank as "
        f"configured, {args.repeats} alternating pairs of runs; {oversubscription(comm)} "
        f"(this process); per-iteration times from /optimization/wall_time; cpu: the "
        f"runs' CPU time over ranks x wall time"
    )
    say(
        f"{'pair':>4} {'t(1) ms':>9} {'t(' + str(R) + ') ms':>9} {'E':>7} "
        f"{'cpu(1)':>7} {'cpu(' + str(R) + ')':>7}"
    )
    ratios = []
    try:
        for k in range(args.repeats):
            times1, cpu1 = weak_run(args, 1, workdir)
            times_r, cpu_r = weak_run(args, R, workdir)
            t1, tr = statistics.median(times1), statistics.median(times_r)
            ratios.append(t1 / tr)
            say(
                f"{k + 1:>4} {1e3 * t1:>9.3f} {1e3 * tr:>9.3f} {100 * t1 / tr:>6.1f}% "
                f"{cpu1:>6.0f}% {cpu_r:>6.0f}%"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    say(
        f"weak-scaling efficiency 1 -> {R} ranks: median of pairs "
        f"{100 * statistics.median(ratios):.1f}% [min {100 * min(ratios):.1f}%, max "
        f"{100 * max(ratios):.1f}%]"
    )
    return 0


def cmd_production_at(args, cfg, ns_per_move: list, say) -> int:
    """What production of cfg on args.production_at ranks asks of rank 0: its memory
    (preflight's accounting), the run file, and the write rate it must sustain, from
    this machine's production ns/move (ns_per_move, one per timed run, with the
    observables if the config accumulates them)."""
    from ..run.preflight import Sizes

    R = args.production_at
    s = Sizes(cfg, R)
    t_move = 1e-9 * statistics.median(ns_per_move)
    per_rank = 8 * s.series / (s.P * t_move)  # bytes/s: one sample a P moves
    rank0, other = s.memory_per_rank()
    say(
        f"production kernel here: {statistics.median(ns_per_move):.1f} ns/move "
        f"[{min(ns_per_move):.1f}, {max(ns_per_move):.1f}] (observables "
        f"{'on' if cfg.production.observables else 'off'}), P = {s.P}"
    )
    say(
        f"on {R} ranks x {s.W} walkers = {s.n_chains} chains: production.samples "
        f"{cfg.production.samples} (a total) gives {s.n_samples} samples per chain, "
        f"{s.series} series, units of {s.chunk} sweeps"
    )
    say(
        f"rank 0 memory (preflight): {rank0 / 1e9:.3f} GB, of which the gathered unit "
        f"{s.gathered_bytes() / 1e9:.3f} GB, the summary's own chains "
        f"{s.summary_rank_bytes() / 1e9:.3f} GB (every rank) and its column block "
        f"{s.summary_bytes() / 1e9:.3f} GB; other ranks {other / 1e6:.1f} MB"
    )
    say(f"run file and checkpoints: {s.file_bytes() / 1e9:.3f} GB")
    say(
        f"write rate rank 0 must take in and write: {per_rank / 1e6:.2f} MB/s per rank, "
        f"{R * per_rank / 1e9:.3f} GB/s from {R} ranks (one InfiniBand HDR port: "
        f"{scaling.HDR_BANDWIDTH / 1e9:.0f} GB/s)"
    )
    return 0
