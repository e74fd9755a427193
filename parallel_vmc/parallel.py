"""The communicator: rank/size, Allreduce of packed buffers (and the max of one number),
gathers, agreement checks.

With mpi4py importable and more than one process, :func:`world` wraps
``MPI.COMM_WORLD``; otherwise a serial stand-in with the same methods runs the program
as one rank. Numerics never depend on the number of ranks except through the number
of chains.
"""

from __future__ import annotations

import sys
import zlib

import numpy as np


class SerialComm:
    """One-rank stand-in with the interface of :class:`MPIComm`."""

    rank = 0
    size = 1
    allreduce_calls = 0  # counted so tests can check 'one Allreduce per iteration'

    def allreduce_sum(self, buf: np.ndarray) -> np.ndarray:
        self.allreduce_calls += 1
        return buf.copy()

    def allreduce_max(self, value: float) -> float:
        """The largest of every rank's value, on every rank. Not counted in
        allreduce_calls: it is no part of an iteration (the end of a run uses it)."""
        return float(value)

    def gather_rows(self, block: np.ndarray):
        """Stack (rows, cols) blocks of all ranks on rank 0 (None elsewhere)."""
        return block.copy()

    def scatter_rows(self, block, counts, cols: int):
        """Rank 0's (sum(counts), cols) block cut into consecutive rows: counts[r] rows
        to rank r (the serial stand-in: the block itself)."""
        return block

    def gather_uneven_rows(self, block: np.ndarray):
        """Stack (rows_r, cols) float64 blocks of all ranks, rows_r any number (0
        too), on rank 0 in rank order (None elsewhere)."""
        return np.array(block, dtype=np.float64)

    def exchange(self, outgoing: dict, incoming: dict) -> dict:
        """Point-to-point float64 messages: outgoing {rank: array} sent, incoming
        {rank: number of elements} received; returns {rank: array}. One rank has no
        one to exchange with."""
        if outgoing or incoming:
            raise ValueError("a single rank exchanges nothing")
        return {}

    def bcast(self, obj):
        return obj

    def barrier(self) -> None:
        pass

    def ranks_differing(self, array: np.ndarray) -> list:
        """Ranks whose copy of array differs from rank 0's (by CRC32); same list on
        every rank."""
        return []

    def ranks_on_node(self) -> int:
        """How many ranks share this rank's node (collective)."""
        return 1

    @property
    def library(self) -> str:
        return "serial (no MPI)"

    def abort(self, code: int) -> None:
        raise SystemExit(code)


class MPIComm(SerialComm):
    """Thin wrapper over an mpi4py communicator."""

    def __init__(self, comm):
        self.comm = comm
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()

    def allreduce_sum(self, buf: np.ndarray) -> np.ndarray:
        from mpi4py import MPI

        self.allreduce_calls += 1
        out = np.empty_like(buf)
        self.comm.Allreduce(np.ascontiguousarray(buf), out, op=MPI.SUM)
        return out

    def allreduce_max(self, value: float) -> float:
        from mpi4py import MPI

        out = np.empty(1)
        self.comm.Allreduce(np.array([value], dtype=np.float64), out, op=MPI.MAX)
        return float(out[0])

    def gather_rows(self, block: np.ndarray):
        """Gather equally shaped (rows, cols) blocks to rank 0 in rank order."""
        block = np.ascontiguousarray(block)
        out = (
            np.empty((self.size * block.shape[0], block.shape[1]), dtype=block.dtype)
            if self.rank == 0
            else None
        )
        self.comm.Gather(block, out, root=0)
        return out

    def gather_uneven_rows(self, block: np.ndarray):
        """Stack (rows_r, cols) float64 blocks of all ranks, rows_r any number (0
        too), on rank 0 in rank order (None elsewhere)."""
        from mpi4py import MPI

        block = np.ascontiguousarray(block, dtype=np.float64)
        sizes = np.array(self.comm.allgather(block.size))
        out = recv = None
        if self.rank == 0:
            out = np.empty((int(sizes.sum()) // max(block.shape[1], 1), block.shape[1]))
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            recv = [out, sizes, offsets, MPI.DOUBLE]
        self.comm.Gatherv(block, recv, root=0)
        return out

    def scatter_rows(self, block, counts, cols: int):
        """Rank 0's (sum(counts), cols) float64 block cut into consecutive rows: counts[r]
        rows to rank r, who gets them as (counts[r], cols); block is None elsewhere."""
        from mpi4py import MPI

        out = np.empty((counts[self.rank], cols))
        send = None
        if self.rank == 0:
            sizes = np.asarray(counts) * cols
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            send = [np.ascontiguousarray(block, dtype=np.float64), sizes, offsets, MPI.DOUBLE]
        self.comm.Scatterv(send, out, root=0)
        return out

    def exchange(self, outgoing: dict, incoming: dict) -> dict:
        """Point-to-point float64 messages, non-blocking, all posted before any
        wait: outgoing {rank: array} sent, incoming {rank: number of elements}
        received; returns {rank: array}."""
        from mpi4py import MPI

        received = {src: np.empty(n) for src, n in incoming.items()}
        requests = [self.comm.Irecv(buf, source=src, tag=7) for src, buf in received.items()]
        outgoing = {dst: np.ascontiguousarray(a, dtype=np.float64) for dst, a in outgoing.items()}
        requests += [self.comm.Isend(a, dest=dst, tag=7) for dst, a in outgoing.items()]
        MPI.Request.Waitall(requests)
        return received

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def barrier(self) -> None:
        self.comm.Barrier()

    def ranks_differing(self, array: np.ndarray) -> list:
        """Ranks whose copy of array differs from rank 0's, by a CRC32 of its bytes
        (one small allgather); the same list on every rank."""
        crcs = self.comm.allgather(zlib.crc32(np.ascontiguousarray(array).tobytes()))
        return [r for r, c in enumerate(crcs) if c != crcs[0]]

    def ranks_on_node(self) -> int:
        from mpi4py import MPI

        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_size()
        finally:
            node.Free()

    @property
    def library(self) -> str:
        return library_name()

    def abort(self, code: int) -> None:
        self.comm.Abort(code)


# Task counts that launchers put in each process's environment: (variable, launcher).
# Any of them above 1 while MPI says one process means the launcher started N
# unconnected copies (e.g. plain srun with MpiDefault=none, or mpirun of another MPI).
LAUNCHER_SIZES = (
    ("SLURM_STEP_NUM_TASKS", "srun"),
    ("PMI_SIZE", "a PMI launcher"),
    ("OMPI_COMM_WORLD_SIZE", "Open MPI's mpirun"),
    ("MV2_COMM_WORLD_SIZE", "MVAPICH's launcher"),
)
LAUNCHER_RANKS = ("SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")


INDEPENDENT_TASKS_VARIABLE = "PVMC_INDEPENDENT_TASKS"  # "1": a task farm, allowed


def launch_problem(size: int, env) -> str | None:
    """Why this process must not run, if the launcher asked for more tasks than the
    `size` processes MPI connected (else None). env: a mapping like os.environ.
    PVMC_INDEPENDENT_TASKS=1 allows it, for task farms (each task its own run)."""
    if size != 1 or env.get(INDEPENDENT_TASKS_VARIABLE) == "1":
        return None
    for name, launcher in LAUNCHER_SIZES:
        value = env.get(name, "")
        if value.isascii() and value.isdigit() and int(value) > 1:
            option = srun_mpi_option() or "--mpi=<the plugin of the cluster's MPI>"
            return (
                f"{launcher} started this process as one of {value} tasks "
                f"({name}={value}), but MPI connected only 1 process: each task "
                f"would run alone as rank 0 of 1 on the same files. Start the ranks "
                f"through the MPI that mpi4py uses ({library_name()}): "
                f"'srun {option}', or its 'mpiexec -n {value}' (the job templates "
                f"in jobs/ choose by themselves). Independent runs, each on its own "
                f"files: set {INDEPENDENT_TASKS_VARIABLE}=1"
            )
    return None


def launch_leader(env) -> bool:
    """Whether this process is task 0 of its launcher (or was not launched as a task):
    the one that reports a launch problem, so N copies print one message."""
    return all(env.get(name, "0") in ("", "0") for name in LAUNCHER_RANKS)


def library_name(initialize: bool = True) -> str:
    """The MPI library's first version line, or 'no MPI'. initialize=False: without
    initialising MPI (MPI_Get_library_version may be called before MPI_Init), only
    for a process that does nothing else with MPI, such as `pvmc mpi`: MPI stays
    uninitialised in it."""
    try:
        import mpi4py

        if not initialize and "mpi4py.MPI" not in sys.modules:
            mpi4py.rc.initialize = False
        from mpi4py import MPI
    except ImportError:
        return "no MPI"
    # Open MPI's version text ends in a NUL, which HDF5's text attributes refuse
    text = MPI.Get_library_version().replace("\x00", "")
    return " ".join(text.strip().splitlines()[0].split())


# srun's PMI plugin for each MPI family (first match in the library's version line):
# MPICH and its derivatives speak PMI-2, Open MPI PMIx.
SRUN_MPI = (("open mpi", "pmix"), ("mpich", "pmi2"), ("intel(r) mpi", "pmi2"), ("mvapich", "pmi2"))


def srun_mpi_option(initialize: bool = True) -> str:
    """srun's --mpi option for the library mpi4py uses ('' when unknown);
    initialize: as for library_name."""
    library = library_name(initialize).lower()
    for family, plugin in SRUN_MPI:
        if family in library:
            return f"--mpi={plugin}"
    return ""


def row_counts(n_rows: int, size: int) -> list:
    """Consecutive rows of n_rows per rank, as even as can be: rank r has rows
    r*n_rows//size .. (r+1)*n_rows//size - 1 (so rank*W .. rank*W+W-1 when n_rows is
    size*W)."""
    return [(r + 1) * n_rows // size - r * n_rows // size for r in range(size)]


def world() -> SerialComm:
    """The world communicator, or the serial stand-in without MPI / with one process."""
    try:
        from mpi4py import MPI
    except ImportError:
        return SerialComm()
    if not MPI.Is_initialized():  # imported uninitialised by library_name(False)
        _initialize(MPI)
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return SerialComm()
    return MPIComm(comm)


def _initialize(MPI) -> None:
    """Initialise MPI as mpi4py's import would have (its thread level), and finalise it
    at exit: in one process, `pvmc info` or `pvmc mpi` (which import mpi4py without
    initialising MPI) followed by a run, as in-process callers of ``cli.main`` do. Any
    MPI call before it aborted the process (MPICH: "before initializing")."""
    import atexit

    import mpi4py

    level = getattr(MPI, "THREAD_" + str(mpi4py.rc.thread_level).upper(), MPI.THREAD_MULTIPLE)
    MPI.Init_thread(level)

    def finalize() -> None:
        if not MPI.Is_finalized():
            MPI.Finalize()

    atexit.register(finalize)


def mpi4py_version() -> str:
    try:
        import mpi4py

        return mpi4py.__version__
    except ImportError:
        return "not installed"
