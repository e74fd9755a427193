"""Who writes the production samples into the run file: the choice, and the parallel
writer.

Two writers, chosen once per launch by :func:`production_writer` (the one place):

* ``GATHER``: each unit's (W, k) blocks are gathered to rank 0, which writes the
  (n_chains, k) block through its serial handle. Any h5py; the files are those of
  every release before the choice existed, bit for bit.
* ``MPIO``: h5py built with MPI (``h5py.get_config().mpi``) and more than one rank.
  For the production phase every rank opens the file with ``driver='mpio'`` and writes
  its own rows ``rank*W .. rank*W+W-1`` of each unit collectively; the series' chunks
  are then ``(W, unit)``, so every Fletcher32 chunk has one writer (HDF5 writes
  filtered datasets in parallel only collectively).

The run file records the writer(s) in the attribute ``/production/writer`` (format 6 on;
a file without it was written by the gather: :func:`recorded_writers`).
"""

from __future__ import annotations

import h5py
import numpy as np

from . import schema as S
from .hdf5io import exclusive

GATHER = "gather"
MPIO = "mpio"


def h5py_has_mpi() -> bool:
    """Whether this h5py is built with MPI (PyPI's wheels are not)."""
    return bool(h5py.get_config().mpi)


def production_writer(mpi_size: int) -> str:
    """The writer of a launch on mpi_size ranks: MPIO where h5py has MPI and there is
    more than one rank, else GATHER."""
    return MPIO if mpi_size > 1 and h5py_has_mpi() else GATHER


def chunk_rows(writer: str, n_chains: int, walkers_per_rank: int) -> int:
    """Rows of a production chunk: one rank's walkers for MPIO (one writer per chunk),
    all chains for GATHER (one chunk per unit, as ever)."""
    return walkers_per_rank if writer == MPIO else n_chains


def recorded_writers(recorded: str | None) -> str:
    """The writers a /production/writer attribute names (None: the file has none). A
    file without it (format 5 and older) was written by the gather, the only writer
    before there was a choice."""
    return recorded or GATHER


def writers_used(recorded: str | None, writer: str, samples_written: int) -> str:
    """The /production/writer attribute once ``writer`` writes on: the writers in the
    order they wrote ("gather,mpio" when a resumed run changed writer); the recorded
    one is dropped when no sample of it is left."""
    if samples_written == 0:
        return writer
    recorded = recorded_writers(recorded)
    used = recorded.split(",")
    return recorded if used[-1] == writer else ",".join(used + [writer])


class ParallelSeries:
    """The run file opened on every rank through MPI-IO for the production phase
    (collective: every rank constructs, writes, flushes and closes it together).

    path: the run file (no serial handle may be open on it); comm: ``parallel.MPIComm``;
    names: the series to write; rows: this rank's rows (a slice of n_chains).
    Rank 0 holds an exclusive lock on the file meanwhile (HDF5's own is off for the
    MPI-IO handle), so a second run still finds the file in use.
    """

    def __init__(self, path: str, comm, names, rows: slice):
        self.rank = comm.rank
        self.rows = rows
        self._lock = exclusive(path) if comm.rank == 0 else None
        if self._lock is not None:
            self._lock.__enter__()
        try:
            self.h5 = h5py.File(path, "r+", driver="mpio", comm=comm.comm, locking=False)
        except BaseException:
            self._unlock()
            raise
        prod = self.h5[S.PRODUCTION]
        self.series = {name: prod[name] for name in names}
        self.counter = prod[S.SAMPLES_WRITTEN]

    def write(self, start: int, blocks: dict) -> None:
        """This rank's (W, k) block of each named series at columns start..start+k-1,
        collectively; then rank 0 alone moves the counter of filled columns (a raw
        write into storage allocated at creation: no metadata changes)."""
        k = 0
        for name, block in blocks.items():
            k = block.shape[1]
            ds = self.series[name]
            with ds.collective:
                ds[self.rows, start : start + k] = np.ascontiguousarray(block)
        if self.rank == 0:
            self.counter[0] = start + k

    def flush(self) -> None:
        """Everything written so far on disk (collective: MPI_File_sync)."""
        self.h5.flush()

    def close(self) -> None:
        """Close on every rank (collective), then release rank 0's lock."""
        try:
            self.h5.close()
        finally:
            self._unlock()

    def _unlock(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None
