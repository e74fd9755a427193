"""Checks made before any work: can the output be written, and do the memory of each
rank and the disk space of the run file exist? Every message gives the numbers; where
one size key of the config alone asks for more than the machine has, the message names
that key, its value, what it amounts to and the largest value that fits.

That rule (:func:`resources_problem`, :class:`Machine`) is the one home of the check for
every command that writes a file: it works on an accounting object, :class:`Sizes` for
a VMC run here, ``generative.sizes.TrainSizes`` for ``pvmc train``, which gives the
bytes (``file_bytes``, ``largest_file_bytes``, ``memory_per_rank``, ``node_memory``),
its size keys (``KEYS``, ``lowest``), the words of the messages and ``of(cfg)``: the
same accounting for another value of a key.

The sizes follow from the config and the rank count alone. The estimates count every
array that grows with a size in the config (parameters, walkers, production blocks,
the observables, the P x P pair tables, SR's stored O rows, each rank's own chains for
the summary and rank 0's column block of them) plus a fixed allowance for the
interpreter and the compiled kernels; they are upper bounds within a small factor, not
measurements.
"""

from __future__ import annotations

import dataclasses
import os
import resource
import shutil
import tempfile

from ..runfile import checkpoint as ckpt
from ..stats.chains import MOMENTS

BASE_BYTES = 400 * 2**20  # interpreter, numpy, numba and its kernels, h5py, MPI
TEMP_PREFIX = ".{}.new-0000000"  # the run file's temporary name while it is created
DISK_MARGIN = 1.05  # HDF5 metadata, chunk indices, checksums
SUMMARY_VECTORS = 25  # n-double vectors of a rank's summary: one chain's FFT
# (up to 4 n doubles each way), the reductions, y blocked, one winsorised chain
BOOTSTRAP_BYTES = 2 * 8 * 2**22  # rank 0: the bootstrap's index array and its gather
# The config keys the sizes grow with, each with what its value amounts to: a size
# beyond the machine is reported under the key the user set, not only as a total.
SIZE_KEYS = {
    "sampler.walkers_per_rank": lambda s: f"{s.n_chains} chains",
    "wavefunction.hidden": lambda s: f"{s.n_params} parameters",
    "system.particles": lambda s: f"{s.M} coordinates, {s.n_params} parameters",
    "production.samples": lambda s: f"{s.n_samples} samples per chain",
    "optimizer.iterations": lambda s: f"{s.iterations} iterations of {s.n_params} parameters",
    "optimizer.samples_per_iteration": lambda s: f"{s.sweeps} sweeps per walker and iteration",
}


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

    KEYS = SIZE_KEYS
    FILE = "the run file {path!r}"
    FILE_AND_COPIES = "the run file {path!r} and its checkpoints"

    def __init__(self, cfg, n_ranks: int):
        from ..sampling.estimators import iteration_size
        from ..sampling.obs_layout import Layout as ObsLayout
        from ..sizes import O_ROWS_BUDGET, per_walker, production_chunk, walkers_per_call
        from ..wavefunction import Layout

        sy, wf, sa = cfg.system, cfg.wavefunction, cfg.sampler
        self.n_ranks = n_ranks
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
        self.sweeps = per_walker(cfg.optimizer.samples_per_iteration, self.n_chains)
        self.o_rows = 0
        if cfg.optimizer.method == "sr":  # one kernel call's O rows, and O^T O
            group = walkers_per_call(self.W, self.sweeps, self.n_params, O_ROWS_BUDGET)
            self.o_rows = 8 * self.n_params * (group * self.sweeps + self.n_params)
        # The (P, P) Padé cusps and pair kinds (float64 + int64) for the run file.
        self.pair_tables = 16 * self.P * self.P if wf.jastrow == "pade" else 0
        self.obs = 0
        if cfg.production.observables:
            layout = ObsLayout.from_config(cfg.production, sy, self.n_samples)
            self.obs = 8 * layout.n_batches * layout.width

    def of(self, cfg) -> "Sizes":
        """The sizes of cfg (another value of a size key) on the same ranks."""
        return Sizes(cfg, self.n_ranks)

    @staticmethod
    def lowest(key: str) -> int:
        """The smallest allowed value of the size key ``section.name`` (its SPEC minimum)."""
        from ..config.vmc import SPEC

        section, name = key.split(".")
        return int(SPEC[section][name].minimum)

    def detail(self) -> str:
        """What the file's size is made of, for the messages."""
        return (
            f"{self.n_chains} chains x {self.n_samples} samples x {self.series} series, "
            f"{self.iterations} iterations x {self.n_params} parameters"
        )

    def memory_per_rank(self) -> tuple[int, int]:
        """(bytes of rank 0, bytes of every other rank)."""
        params = 8 * self.n_params * 12 + 3 * self.sums  # theta, optimizer, copies
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
        scatters (all chains x one unit's columns; twice: HDF5's read and the array),
        the bootstrap of the chain-averaged series and the chains' moments gathered
        for the verdict on them."""
        moments = 8 * len(MOMENTS) * self.n_chains
        return 2 * 8 * self.n_chains * self.chunk + BOOTSTRAP_BYTES + moments

    def node_memory(self, ranks_on_node: int) -> int:
        """Bytes of the ranks_on_node ranks of rank 0's node."""
        rank0, other = self.memory_per_rank()
        return rank0 + (ranks_on_node - 1) * other

    def checkpoint_bytes(self) -> int:
        return 8 * (self.n_chains * (2 * self.M + 8) + 6 * self.n_params) + self.obs

    def file_bytes(self) -> int:
        """The run file when complete, plus its live and previous checkpoints and the
        temporary of the next one."""
        series = 8 * self.n_chains * self.n_samples * self.series
        history = self.iterations * (8 * self.n_params + 64 + 8 * 8)
        run_file = series + history + 4 * self.obs + self.checkpoint_bytes() + 2**20
        return int(DISK_MARGIN * (run_file + 3 * self.checkpoint_bytes()))

    def largest_file_bytes(self) -> int:
        """The run file alone (what ``ulimit -f`` bounds)."""
        return self.file_bytes() - 3 * self.checkpoint_bytes()


def _key_value(cfg, key: str) -> int:
    """The value of the key ``section.name`` in cfg."""
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _with_value(cfg, key: str, value: int):
    """cfg with the key ``section.name`` set to value (no other check: sizes only)."""
    section, name = key.split(".")
    return dataclasses.replace(
        cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})}
    )


def largest_fitting(cfg, s, key: str, fits) -> int:
    """The largest value of key with which ``fits(sizes)`` holds, the rest of cfg kept,
    given that its smallest allowed value fits and the value in cfg does not: by
    bisection (s: the accounting of cfg, e.g. :class:`Sizes`, arithmetic only, ~50 us;
    63 steps at most)."""
    low, high = s.lowest(key), _key_value(cfg, key)
    while high - low > 1:  # fits at low, not at high
        mid = (low + high) // 2
        if fits(s.of(_with_value(cfg, key, mid))):
            low = mid
        else:
            high = mid
    return low


def culprit(cfg, s, fits, need) -> tuple[str, int] | None:
    """(key, largest value that fits) of the size key (of ``s.KEYS``) that alone keeps
    cfg from fitting (``fits(sizes)`` false; s: the accounting of cfg): of the keys
    whose smallest allowed value would make it fit, the one that lowers
    ``need(sizes)`` (the short resource) most there; None if no one key would."""
    best = None
    for key in s.KEYS:
        if _key_value(cfg, key) <= s.lowest(key):
            continue
        t = s.of(_with_value(cfg, key, s.lowest(key)))
        if fits(t) and (best is None or need(t) < best[0]):
            best = (need(t), key)
    if best is None:
        return None
    return best[1], largest_fitting(cfg, s, best[1], fits)


def _subject(cfg, s, key: str, memory: bool) -> str:
    """'key: value (what it amounts to[, its memory per rank])': a message's subject."""
    amounts = s.KEYS[key](s)
    if memory:
        amounts += f", up to {_human(s.memory_per_rank()[0])} of memory per rank"
    return f"{key}: {_key_value(cfg, key)} ({amounts})"


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


@dataclasses.dataclass(frozen=True)
class Machine:
    """What this node offers a run: the memory available (and where that number comes
    from) to its ranks_on_node ranks; for a new run file the free disk where it goes
    and this shell's file size limit (None: not checked, or no limit)."""

    memory: int
    memory_source: str
    ranks_on_node: int
    disk: int | None = None
    disk_where: str = ""
    file_limit: int | None = None

    @classmethod
    def here(cls, path: str, ranks_on_node: int, new_file: bool) -> "Machine":
        """This node, for a run file at path (new_file: it is still to be created)."""
        memory, source = memory_available()
        if not new_file:
            return cls(memory, source, ranks_on_node)
        where = _nearest_existing(path)
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = None if soft == resource.RLIM_INFINITY else soft
        return cls(memory, source, ranks_on_node, shutil.disk_usage(where).free, where, limit)

    def disk_short(self, s: Sizes) -> bool:
        """The run file and its checkpoints need more than the free disk."""
        return self.disk is not None and s.file_bytes() > self.disk

    def file_too_large(self, s: Sizes) -> bool:
        """The run file would exceed the file size limit (``ulimit -f``)."""
        return self.file_limit is not None and s.largest_file_bytes() > self.file_limit

    def memory_short(self, s: Sizes) -> bool:
        """The ranks on this node need more memory than it has available."""
        return s.node_memory(self.ranks_on_node) > self.memory

    def short_need(self, s: Sizes):
        """The need (a function of the accounting) of the first short resource of s:
        the disk, the file size limit, the memory (the order of the messages)."""
        if self.disk_short(s):
            return lambda t: t.file_bytes()
        if self.file_too_large(s):
            return lambda t: t.largest_file_bytes()
        return lambda t: t.node_memory(self.ranks_on_node)

    def fits(self, s: Sizes) -> bool:
        """Nothing is short."""
        return not (self.disk_short(s) or self.file_too_large(s) or self.memory_short(s))


def resources_problem(
    cfg, n_ranks: int, ranks_on_node: int = 1, new_file: bool = True, sizes=None
) -> str | None:
    """Is there memory for the ranks on this node and (new_file) disk space for the
    output file? A resumed run's file is allocated already. Where one size key alone is
    the cause, the message is about that key, with the largest value that fits all.
    sizes: the accounting of cfg (default: a VMC run's, :class:`Sizes`)."""
    s = Sizes(cfg, n_ranks) if sizes is None else sizes
    machine = Machine.here(cfg.output.path, ranks_on_node, new_file)
    if machine.fits(s):
        return None
    named = culprit(cfg, s, machine.fits, machine.short_need(s))
    if named is None:
        shares = _shares(cfg, s, machine.short_need(s))
        return _unnamed_problem(cfg, s, machine, shares)
    key, value = named
    disk = machine.disk_short(s) or machine.file_too_large(s)
    other = ", or another output.path" if machine.disk_short(s) else ""
    if not disk and machine.ranks_on_node > 1:
        other = ", or fewer ranks per node"
    return (
        f"{_subject(cfg, s, key, memory=disk)} makes "
        f"{_shortfall(cfg.output.path, s, machine)}; allowed: up to {value} with the rest "
        f"of this config{other}"
    )


def _shortfall(path: str, s: Sizes, m: Machine) -> str:
    """What is short, with the numbers: the disk, the file size limit or the memory (the
    first of them that is)."""
    detail = s.detail()
    if m.disk_short(s):
        return (
            f"{s.FILE_AND_COPIES.format(path=path)} need about "
            f"{_human(s.file_bytes())} of disk ({detail}), but {m.disk_where!r} has "
            f"{_human(m.disk)} free"
        )
    if m.file_too_large(s):
        return (
            f"{s.FILE.format(path=path)} about {_human(s.largest_file_bytes())} ({detail}), "
            f"above the file size limit of this shell (ulimit -f: {_human(m.file_limit)})"
        )
    return f"this run need {_memory_detail(s, m)}"


def _memory_detail(s: Sizes, m: Machine) -> str:
    """The memory the ranks on this node need, and what the node has."""
    rank0, other = s.memory_per_rank()
    return (
        f"about {_human(s.node_memory(m.ranks_on_node))} of memory on this node "
        f"({m.ranks_on_node} rank(s): {_human(rank0)} for rank 0, {_human(other)} for "
        f"each other rank), but {m.memory_source} is {_human(m.memory)}"
    )


def _shares(cfg, s, need) -> list:
    """[(key, bytes)]: how much of ``need(Sizes)`` (the short resource) each size key's
    value accounts for (what setting it alone to its smallest value saves), largest
    first; keys that account for nothing are left out."""
    now = need(s)
    shares = []
    for key in s.KEYS:
        if _key_value(cfg, key) > s.lowest(key):
            saved = now - need(s.of(_with_value(cfg, key, s.lowest(key))))
            if saved > 0:
                shares.append((key, saved))
    return sorted(shares, key=lambda share: -share[1])


def _unnamed_problem(cfg, s: Sizes, m: Machine, shares: list) -> str:
    """The problem when no one key is the cause: the total, and the two keys that
    account for most of it (``_shares``), with their values and what they amount to."""
    path = cfg.output.path
    causes = "; ".join(
        f"{key}: {_key_value(cfg, key)} ({s.KEYS[key](s)}: {_human(saved)} of it)"
        for key, saved in shares[:2]
    )
    reduce = f"no one key alone makes it fit; most of it comes from {causes}; reduce " + (
        " and ".join(key for key, _ in shares[:2]) if shares else "the sizes"
    )
    if m.disk_short(s):
        return f"disk: {_shortfall(path, s, m)}; {reduce}, or choose another output.path"
    if m.file_too_large(s):
        return f"disk: this run makes {_shortfall(path, s, m)}; {reduce}"
    return f"memory: this run needs {_memory_detail(s, m)}; {reduce}, or use more nodes"


def dmc_problem(cfg, n_ranks: int) -> str | None:
    """DMC spreads its population over the ranks: at least one walker each."""
    if cfg.dmc.time_steps is not None and cfg.dmc.walkers < n_ranks:
        return (
            f"dmc.walkers: {cfg.dmc.walkers} walkers cannot be spread over {n_ranks} "
            f"ranks; allowed: >= {n_ranks} (the number of ranks)"
        )
    return None


def all_problems(cfg, n_ranks: int, overwrite: bool, ranks_on_node: int = 1) -> str | None:
    """The first reason a new run of cfg cannot start, or None. Sizes beyond the
    machine come first: they name the key the user set, which the too few samples per
    chain of an absurd walker count would not."""
    return (
        resources_problem(cfg, n_ranks, ranks_on_node)
        or samples_problem(cfg, n_ranks)
        or dmc_problem(cfg, n_ranks)
        or output_problem(cfg.output.path, overwrite)
    )


def resume_problems(cfg, n_ranks: int, ranks_on_node: int = 1) -> str | None:
    """The first reason a resumed run of cfg cannot go on, or None: as for a new run
    (``all_problems``), but its file exists and is allocated already."""
    return (
        resources_problem(cfg, n_ranks, ranks_on_node, new_file=False)
        or samples_problem(cfg, n_ranks)
        or dmc_problem(cfg, n_ranks)
    )
