"""The communicator: rank/size, Allreduce of packed buffers (and the max of one number),
gathers, agreement checks.

With mpi4py importable and more than one process, :func:`world` wraps
``MPI.COMM_WORLD``; otherwise a serial stand-in with the same methods runs the program
as one rank. Numerics never depend on the number of ranks except through the number
of chains.
"""
from __future__ import annotations

import zlib

import numpy as np


class SerialComm:
    """One-rank stand-in with the interface of :class:`MPIComm`."""

    rank = 0
    size = 1
    allreduce_calls = 0   # counted so tests can check 'one Allreduce per iteration'

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
        out = (np.empty((self.size * block.shape[0], block.shape[1]), dtype=block.dtype)
               if self.rank == 0 else None)
        self.comm.Gather(block, out, root=0)
        return out

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
        from mpi4py import MPI
        return MPI.Get_library_version().splitlines()[0].strip()

    def abort(self, code: int) -> None:
        self.comm.Abort(code)


def world() -> SerialComm:
    """The world communicator, or the serial stand-in without MPI / with one process."""
    try:
        from mpi4py import MPI
    except ImportError:
        return SerialComm()
    comm = MPI.COMM_WORLD
    if comm.Get_size() == 1:
        return SerialComm()
    return MPIComm(comm)


def mpi4py_version() -> str:
    try:
        import mpi4py
        return mpi4py.__version__
    except ImportError:
        return "not installed"
