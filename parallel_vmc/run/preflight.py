"""Checks made before any work: can the output be written, and do the memory of each
rank and the disk space of the run file exist? Every message gives the numbers.

The sizes follow from the config and the rank count alone. The estimates count every
array that grows with a size in the config (parameters, walkers, production blocks,
the observables, the P x P pair tables, SR's stored O rows, each rank's own chains for
the summary and rank 0's column block of them) plus a fixed allowance for the
interpreter and the compiled kernels; they are upper bounds within a small factor, not
measurements.
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile

from ..runfile import checkpoint as ckpt

BASE_BYTES = 400 * 2**20  # interpreter, numpy, numba and its kernels, h5py, MPI
TEMP_PREFIX = ".{}.new-0000000"  # the run file's temporary name while it is created
DISK_MARGIN = 1.05  # HDF5 metadata, chunk indices, checksums
SUMMARY_VECTORS = 24  # n-double vectors of a rank's summary: one chain's FFT
# (up to 4 n doubles each way), the reductions, y blocked
BOOTSTRAP_BYTES = 2 * 8 * 2**22  # rank 0: the bootstrap's index array and its gather


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.3g} {unit}"
        n /= 1000.0
    return f"{n:.3g} PB"


def _nearest_existing(path: str) -> str:
    probe = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    return probe


def output_problem(path: str, overwrite: bool) -> str | None:
    """Why the run file cannot be created at ``path`` (None if it can). Probes the
    directory by creating and removing a file; never touches an existing file."""
    from ..runfile.hdf5io import in_use

    if not path.strip():
        return "output.path is empty; give a file name"
    if os.path.isdir(path):
        return f"output.path {path!r} is a directory; give a file name"
    if os.path.exists(path):
        if not overwrite:
            return (
                f"output file {path!r} exists; choose another output.path (-o PATH) "
                "or pass --overwrite to replace it"
            )
        if in_use(path):
            return (
                f"output file {path!r} is in use by another process (a run that is "
                "still going holds it); --overwrite never replaces a live run's file"
            )
    probe = _nearest_existing(path)
    if not os.path.isdir(probe):
        return f"output.path {path!r}: {probe!r} is not a directory"
    longest = max(
        len(ckpt.path_for(path) + ckpt.PREVIOUS), len(TEMP_PREFIX.format(os.path.basename(path)))
    )
    name_max = _name_max(probe)
    if longest - len(os.path.dirname(path) + os.sep) > name_max:
        return (
            f"output.path {path!r}: the file name is too long; its checkpoint "
            f"{os.path.basename(ckpt.path_for(path) + ckpt.PREVIOUS)!r} must fit in "
            f"{name_max} characters, so allowed: names up to "
            f"{name_max - len(ckpt.SUFFIX + ckpt.PREVIOUS)} characters"
        )
    try:
        fd, name = tempfile.mkstemp(dir=probe, prefix=".pvmc-probe-")
        os.close(fd)
        os.remove(name)
    except OSError as exc:
        return f"output.path {path!r}: cannot create files in {probe!r} ({exc.strerror or exc})"
    return None


def _name_max(directory: str) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def samples_problem(cfg, n_ranks: int) -> str | None:
    """Production needs at least 4 samples per chain (blocking, R-hat)."""
    from ..sizes import per_walker

    n_chains = n_ranks * cfg.sampler.walkers_per_rank
    if per_walker(cfg.production.samples, n_chains) < 4:
        return (
            f"production.samples: {cfg.production.samples} gives fewer than 4 "
            f"samples per chain for {n_chains} chains; allowed: >= {4 * n_chains}"
        )
    return None


class Sizes:
    """The sizes a run of ``cfg`` on ``n_ranks`` ranks works with."""

    def __init__(self, cfg, n_ranks: int):
        from ..sampling.estimators import iteration_size
        from ..sampling.obs_layout import Layout as ObsLayout
        from ..sizes import O_ROWS_BUDGET, per_walker, production_chunk, walkers_per_call
        from ..wavefunction import Layout

        sy, wf, sa = cfg.system, cfg.wavefunction, cfg.sampler
        self.P = sy.particles
        self.M = sy.particles * sy.dimensions
        self.N = wf.hidden
        self.n_params = Layout.from_config(sy, wf).n_params
        self.W = sa.walkers_per_rank
        self.n_chains = n_ranks * self.W
        self.n_samples = per_walker(cfg.production.samples, self.n_chains)
        self.chunk = production_chunk(self.n_samples, self.n_chains)
        self.series = 4 if cfg.production.store_components else 1
        self.iterations = cfg.optimizer.iterations
        self.sums = 8 * iteration_size(self.n_params, cfg.optimizer.method == "sr")
        self.o_rows = 0
        if cfg.optimizer.method == "sr":  # one kernel call's O rows, and O^T O
            sweeps = per_walker(cfg.optimizer.samples_per_iteration, self.n_chains)
            group = walkers_per_call(self.W, sweeps, self.n_params, O_ROWS_BUDGET)
            self.o_rows = 8 * self.n_params * (group * sweeps + self.n_params)
        # The (P, P) Padé cusps and pair kinds (float64 + int64) for the run file.
        self.pair_tables = 16 * self.P * self.P if wf.jastrow == "pade" else 0
        self.obs = 0
        if cfg.production.observables:
            layout = ObsLayout.from_config(cfg.production, sy, self.n_samples)
            self.obs = 8 * layout.n_batches * layout.width

    def memory_per_rank(self) -> tuple[int, int]:
        """(bytes of rank 0, bytes of every other rank)."""
        params = 8 * self.n_params * 12 + 3 * self.sums  # theta, optimiser, copies
        walkers = 8 * self.W * (self.M + self.N + 8) * 4  # positions, streams, caches
        block = 8 * self.W * self.chunk * 2 * (4 if self.series > 1 else 1)
        rank = (
            BASE_BYTES
            + params
            + walkers
            + block
            + 5 * self.obs
            + self.pair_tables
            + self.o_rows
            + self.summary_rank_bytes()
        )
        return rank + self.gathered_bytes() + self.summary_bytes(), rank

    def gathered_bytes(self) -> int:
        """Rank 0's gathered production unit (every series, all chains; twice: the
        receive buffer and the write) and the gathered walkers of a checkpoint."""
        return 8 * self.n_chains * (self.chunk * self.series * 2 + 2 * self.M + 8)

    def summary_rank_bytes(self) -> int:
        """Every rank's part of the summary (``summary``): its own chains (W, n) and a
        few vectors of n doubles; independent of the number of chains."""
        return 8 * self.n_samples * (self.W + SUMMARY_VECTORS)

    def summary_bytes(self) -> int:
        """Rank 0's extra for the summary: the column block of the series it reads and
        scatters (all chains x one unit's columns; twice: HDF5's read and the array)
        and the bootstrap of the chain-averaged series."""
        return 2 * 8 * self.n_chains * self.chunk + BOOTSTRAP_BYTES

    def checkpoint_bytes(self) -> int:
        return 8 * (self.n_chains * (2 * self.M + 8) + 6 * self.n_params) + self.obs

    def file_bytes(self) -> int:
        """The run file when complete, plus its live and previous checkpoints and the
        temporary of the next one."""
        series = 8 * self.n_chains * self.n_samples * self.series
        history = self.iterations * (8 * self.n_params + 64 + 8 * 8)
        run_file = series + history + 4 * self.obs + self.checkpoint_bytes() + 2**20
        return int(DISK_MARGIN * (run_file + 3 * self.checkpoint_bytes()))


def memory_available() -> tuple[int, str]:
    """(bytes, where the number comes from): MemAvailable, or a smaller cgroup limit
    (a SLURM job's or a container's)."""
    avail, source = None, "/proc/meminfo MemAvailable"
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
        source = "free physical pages"
    limit = _cgroup_limit()
    if limit is not None and limit < avail:
        return limit, "the cgroup memory limit (memory.max)"
    return avail, source


def _cgroup_limit() -> int | None:
    try:
        with open("/proc/self/cgroup") as fh:
            rel = next(
                (line.split(":", 2)[2].strip() for line in fh if line.startswith("0::")), None
            )
        if rel is None:
            return None
        with open(os.path.join("/sys/fs/cgroup", rel.lstrip("/"), "memory.max")) as fh:
            text = fh.read().strip()
    except (OSError, StopIteration, IndexError):
        return None
    return None if text == "max" else int(text)


def resources_problem(
    cfg, n_ranks: int, ranks_on_node: int = 1, new_file: bool = True
) -> str | None:
    """Is there memory for the ranks on this node and (new_file) disk space for the run
    file? A resumed run's file is allocated already."""
    s = Sizes(cfg, n_ranks)
    problem = disk_problem(cfg.output.path, s) if new_file else None
    if problem:
        return problem
    rank0, other = s.memory_per_rank()
    need = rank0 + (ranks_on_node - 1) * other
    have, source = memory_available()
    if need > have:
        return (
            f"memory: this run needs about {_human(need)} on this node ({ranks_on_node} "
            f"rank(s): {_human(rank0)} for rank 0, {_human(other)} for each other "
            f"rank, each holding its {s.W} chains x {s.n_samples} samples of "
            f"production for the summary), but {source} is {_human(have)}; "
            "reduce production.samples, sampler.walkers_per_rank, "
            "system.particles or wavefunction.hidden, or use more nodes"
        )
    return None


def disk_problem(path: str, s: Sizes) -> str | None:
    need = s.file_bytes()
    where = _nearest_existing(path)
    free = shutil.disk_usage(where).free
    detail = (
        f"{s.n_chains} chains x {s.n_samples} samples x {s.series} series, "
        f"{s.iterations} iterations x {s.n_params} parameters"
    )
    if need > free:
        return (
            f"disk: the run file {path!r} and its checkpoints need about "
            f"{_human(need)} ({detail}), but {where!r} has {_human(free)} free; "
            "reduce production.samples or optimizer.iterations, or choose another "
            "output.path"
        )
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    largest = need - 3 * s.checkpoint_bytes()
    if soft != resource.RLIM_INFINITY and largest > soft:
        return (
            f"disk: the run file {path!r} would be about {_human(largest)} "
            f"({detail}), above the file size limit of this shell (ulimit -f: "
            f"{_human(soft)}); reduce production.samples or optimizer.iterations"
        )
    return None


def all_problems(cfg, n_ranks: int, overwrite: bool, ranks_on_node: int = 1) -> str | None:
    """The first reason a new run of cfg cannot start, or None."""
    return (
        samples_problem(cfg, n_ranks)
        or output_problem(cfg.output.path, overwrite)
        or resources_problem(cfg, n_ranks, ranks_on_node)
    )
