"""The HDF5 run file (docs/runfile.md), written by rank 0 only (but for the production
samples with the MPI-IO writer, see ``writer``).

Layout (format_version 6; the names live in ``schema``)::

    /                root attrs: format_version, package_version, created, config,
                     mpi_size, walkers_per_rank, seed, numba/numpy/mpi4py versions,
                     hostname, mpi_library, status (fixed-length text), checkpoint_file,
                     run_id (shared with the run's checkpoints)
    /optimization/   iteration, energy, energy_error, variance, acceptance, grad_norm,
                     learning_rate, wall_time: (iterations,); params: (iterations,
                     n_params); rows_written: (1,) -- rows 0..rows_written-1 are valid
    /production/     local_energy (+ kinetic, trap, interaction): (n_chains, n_samples);
                     samples_written: (1,) -- columns filled so far; attr writer
                     ("gather" | "mpio", see ``writer``); attrs (at the end)
                     samples_per_chain, acceptance, step, sampler, energy_allreduced,
                     variance_allreduced, stuck_walkers
      observables/   (at the end) local_energy, kinetic, trap, interaction, r12: batch
                     means (n_batches,) with attrs mean, error; density/,
                     density_image/ (D = 2), pair_distance/ (P > 1): edges, counts,
                     density, error (see ``observables.summarize``)
    /wavefunction/   a (M,), b (N,), W (M, N), sigma (); with the Padé-Jastrow factor
                     jastrow_beta (2,) [antiparallel, parallel], jastrow_cusp (P, P);
                     with Slater determinants orbitals (P/2, D) int64 (quantum numbers
                     of each spin's orbitals), orbital_scale () and attr inverse_drift;
                     attrs kind, psi, jastrow, statistics
    /checkpoint/     the final state (the live one is the sibling RUN.h5.ckpt)
    /segments/       one row per launch: mpi_size, first_iteration, last_iteration,
                     hostname, start_time, end_time, ended, progress, reseeded,
                     seconds (wall time of the process at the segment's end)
    /summary/        attrs energy, error, variance, tau_int, n_samples, ...

Crash safety. Every dataset that grows while the run works is allocated in full when
the file is created (allocated early), and how much of it is valid lives in the
one-element counters ``rows_written`` / ``samples_written``. So during thermalisation,
optimization and production rank 0 only overwrites bytes inside already allocated
storage and never changes the file's structure (its metadata): a SIGKILL at any
instant leaves a file that opens. The structure changes only when a segment starts or
ends and when the final results are written, each followed by one flush. Resuming sets
the counters back to the checkpoint's, which truncates whatever was written after it.
(The file keeps HDF5's default format: the 1.10 format marks a file open for writing
in its superblock, and a killed run's file would then refuse to open.)

Checksums. The production series and the parameters are chunked with Fletcher32
checksums (``hdf5io``). A production unit of work writes exactly one chunk (all chains
x the unit's sweeps; with the MPI-IO writer one chunk per rank, its walkers x the
unit's sweeps) and an iteration one row-chunk of parameters, so no write reads a chunk
back and a write torn by a kill only hits data after the last checkpoint.

Ownership. While a segment runs, rank 0 holds the file open for writing, and HDF5
holds an exclusive lock on it; ``--overwrite`` replaces a file only while holding that
lock itself (``hdf5io.exclusive``), so a live run's file is never touched.
"""

from __future__ import annotations

import os
import socket
import time

import h5py
import numpy as np

from . import schema as S
from .hdf5io import (
    FileInUse,
    exclusive,
    now_iso,
    one_line,
    preallocated,
    provenance,
    write_array,
)
from .schema import FORMAT_VERSION, OPT_FIELDS, PRODUCTION_SERIES, SEGMENT_FIELDS

TEXT_DTYPE = "S512"  # fixed-length text: no HDF5 global heap, which a kill mid-flush
# can leave pointing at objects that never reached the disk
FLUSH_INTERVAL = 5.0  # seconds between flushes of the open file


def _fixed(text: str) -> np.ndarray:
    """text as a fixed-length TEXT_DTYPE value (cut to fit)."""
    return np.array(text.encode()[: int(TEXT_DTYPE[1:]) - 1], dtype=TEXT_DTYPE)


def _allocated(group, name: str, shape: tuple, dtype, fill=None):
    """A contiguous dataset whose whole storage is allocated now, so that writing into
    it later never changes the file's metadata. Without a fill value the storage is not
    written (sparse on disk) until data arrives."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    if fill is None:
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return group.create_dataset(name, shape=shape, dtype=dtype, dcpl=dcpl, fillvalue=fill)


class RunFile:
    """Writer of one run's HDF5 file (open for the whole segment on rank 0)."""

    def __init__(self, path: str, h5: h5py.File):
        self.path = path
        self.h5 = h5
        self._last_flush = time.monotonic()
        self._records = None  # /optimization's datasets, opened once (see _record)

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        path: str,
        cfg,
        mpi_size: int,
        mpi_library: str,
        n_params: int,
        n_chains: int,
        samples_per_chain: int,
        sample_chunk: int,
        overwrite: bool = False,
        checkpoint_file: str = "",
        run_id: str = "",
        stale=(),
        chunk_rows: int | None = None,
        writer: str = "gather",
    ) -> "RunFile":
        """Create the file with its root attributes and every growing dataset allocated.

        The file is built under a temporary name beside ``path`` and moved into place
        only while holding the lock of any file already there: an existing file is
        replaced only with ``overwrite`` (FileExistsError otherwise), a file that a live
        run holds never (FileInUse), and nothing is deleted before that. ``stale``:
        files (old checkpoints) to delete at that moment, under the lock.
        sample_chunk: the columns of one production unit of work (one chunk);
        chunk_rows: the rows of one chunk (all chains when None); writer: the
        production writer (``writer.production_writer``), recorded in /production.
        """
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        tmp = os.path.join(parent, f".{os.path.basename(path)}.new-{os.getpid()}")
        h5 = h5py.File(tmp, "w")
        try:
            cls._populate(
                h5,
                cfg,
                mpi_size,
                mpi_library,
                n_params,
                n_chains,
                samples_per_chain,
                sample_chunk,
                checkpoint_file,
                run_id,
                chunk_rows or n_chains,
                writer,
            )
            h5.flush()
            with exclusive(path):
                if os.path.exists(path) and not overwrite:
                    raise FileExistsError(f"output file {path!r} exists")
                for name in stale:
                    if os.path.exists(name):
                        os.remove(name)
                os.replace(tmp, path)
        except BaseException:
            h5.close()
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return cls(path, h5)

    @staticmethod
    def _populate(
        h5,
        cfg,
        mpi_size,
        mpi_library,
        n_params,
        n_chains,
        samples_per_chain,
        sample_chunk,
        checkpoint_file,
        run_id,
        chunk_rows,
        writer,
    ) -> None:
        attrs = h5.attrs
        attrs[S.FORMAT] = FORMAT_VERSION
        for key, value in provenance().items():  # created, hostname, versions
            attrs[key] = value
        attrs[S.CONFIG] = cfg.to_yaml()
        attrs["mpi_size"] = mpi_size
        attrs["walkers_per_rank"] = cfg.sampler.walkers_per_rank
        attrs["seed"] = cfg.seed
        attrs["mpi_library"] = mpi_library
        attrs.create(S.STATUS, _fixed(S.RUNNING), dtype=TEXT_DTYPE)
        attrs[S.CHECKPOINT_FILE] = checkpoint_file
        attrs[S.RUN_ID] = run_id
        n_iter = cfg.optimizer.iterations
        opt = h5.create_group(S.OPTIMIZATION)
        _allocated(opt, S.ITERATION, (n_iter,), "i8", fill=-1)
        for name in OPT_FIELDS:
            _allocated(opt, name, (n_iter,), "f8", fill=np.nan)
        preallocated(opt, S.PARAMS, (n_iter, n_params), "f8", chunks=(1, n_params))
        _allocated(opt, S.ROWS_WRITTEN, (1,), "i8", fill=0)
        prod = h5.create_group(S.PRODUCTION)
        _allocated(prod, S.SAMPLES_WRITTEN, (1,), "i8", fill=0)
        prod.attrs[S.WRITER] = writer
        RunFile._production_datasets(
            prod,
            n_chains,
            samples_per_chain,
            sample_chunk,
            cfg.production.store_components,
            chunk_rows,
        )
        seg = h5.create_group(S.SEGMENTS)
        for name, dtype in SEGMENT_FIELDS.items():
            dt = TEXT_DTYPE if dtype == "str" else dtype
            seg.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(16,))

    @staticmethod
    def _production_datasets(prod, n_chains, n_samples, chunk, components, rows) -> None:
        """The (n_chains, n_samples) series in chunks of (rows, chunk)."""
        for name in S.stored_series(components):
            preallocated(prod, name, (n_chains, n_samples), "f8", chunks=(rows, chunk))

    @classmethod
    def open(cls, path: str) -> "RunFile":
        """Reopen an existing run file for a resumed segment (FileInUse if a live run
        holds it)."""
        try:  # HDF5 takes the writer's lock; held elsewhere, it fails at once
            return cls(path, h5py.File(path, "r+"))
        except BlockingIOError:
            raise FileInUse(f"{path} is in use by another process") from None

    # ------------------------------------------------------------------ helpers
    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_flush > FLUSH_INTERVAL:
            self.h5.flush()
            self._last_flush = time.monotonic()

    def sync(self) -> None:
        """Flush and fsync: everything written so far is on disk (before a checkpoint
        that counts it is committed)."""
        self.h5.flush()
        self._last_flush = time.monotonic()
        try:
            os.fsync(self.h5.id.get_vfd_handle())
        except (OSError, TypeError, ValueError):
            pass  # drivers without a plain file descriptor

    def upgrade_format(self) -> None:
        """A resumed file of an older format (``schema.RESUMABLE_FORMATS``) is written
        on as this format: its root attribute says so from now on."""
        self.h5.attrs.modify(S.FORMAT, FORMAT_VERSION)

    def set_status(self, status: str, flush: bool = True) -> None:
        """Overwrite the status in place (same fixed-length type: no new metadata); one
        line, whatever the reason's text (HDF5 error stacks span many)."""
        self.h5.attrs.modify(S.STATUS, _fixed(one_line(status, int(TEXT_DTYPE[1:]) - 1)))
        if flush:
            self.flush(force=True)

    @staticmethod
    def _append(ds, value) -> None:
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = value

    # ------------------------------------------------------------------ records
    @property
    def rows_written(self) -> int:
        return int(self.h5[S.path(S.OPTIMIZATION, S.ROWS_WRITTEN)][0])

    def _record(self) -> dict:
        """/optimization's datasets by name. Looking a dataset up by name costs more
        than writing one number into it, and they never change while the file is open,
        so they are looked up once: the per-iteration record is then a fraction of a
        millisecond instead of milliseconds (rank 0 writes it while the others wait)."""
        if self._records is None:
            opt = self.h5[S.OPTIMIZATION]
            self._records = {
                name: opt[name] for name in (S.ITERATION, *OPT_FIELDS, S.PARAMS, S.ROWS_WRITTEN)
            }
        return self._records

    def write_iteration(self, iteration: int, record: dict, theta: np.ndarray) -> None:
        """Row ``iteration`` of /optimization (record holds every OPT_FIELDS entry); the
        rows after it are no longer valid (a rewind writes an earlier row again)."""
        opt = self._record()
        opt[S.ITERATION][iteration] = iteration
        for name in OPT_FIELDS:
            opt[name][iteration] = record[name]
        opt[S.PARAMS][iteration] = theta
        opt[S.ROWS_WRITTEN][0] = iteration + 1
        self.flush()

    def truncate(self, rows: int, samples: int, flush: bool = True) -> None:
        """Declare only the first rows / sample columns valid (resume, rewind)."""
        self.h5[S.path(S.OPTIMIZATION, S.ROWS_WRITTEN)][0] = rows
        self.h5[S.path(S.PRODUCTION, S.SAMPLES_WRITTEN)][0] = samples
        if flush:
            self.flush(force=True)

    def replace_production(
        self, n_chains: int, n_samples: int, chunk: int, components: bool, rows: int
    ) -> None:
        """New empty production datasets for another chain count (resume on a different
        number of ranks; the old chains' samples cannot continue), in chunks of (rows,
        chunk)."""
        prod = self.h5[S.PRODUCTION]
        for name in PRODUCTION_SERIES:
            if name in prod:
                del prod[name]
        self._production_datasets(prod, n_chains, n_samples, chunk, components, rows)
        prod[S.SAMPLES_WRITTEN][0] = 0
        self.flush(force=True)

    def write_production(self, start: int, blocks: dict) -> None:
        """Write columns start.. of each named (n_chains, k) block."""
        prod = self.h5[S.PRODUCTION]
        for name, block in blocks.items():
            prod[name][:, start : start + block.shape[1]] = block
        prod[S.SAMPLES_WRITTEN][0] = start + blocks[S.LOCAL_ENERGY].shape[1]
        self.flush()

    def begin_segment(
        self, mpi_size: int, first_iteration: int, progress: str, reseeded: bool
    ) -> None:
        seg = self.h5[S.SEGMENTS]
        row = {
            "mpi_size": mpi_size,
            "first_iteration": first_iteration,
            "last_iteration": first_iteration,
            "hostname": socket.gethostname(),
            "start_time": now_iso(),
            "end_time": "",
            "ended": S.RUNNING,
            "progress": progress,
            "reseeded": int(reseeded),
            "seconds": np.nan,
        }
        for name, value in row.items():
            self._append(seg[name], value.encode() if isinstance(value, str) else value)
        self.flush(force=True)

    def close_dangling_segment(self) -> None:
        """Mark a segment that never ended (its job was killed) as 'killed'."""
        seg = self.h5[S.SEGMENTS]
        k = seg["ended"].shape[0] - 1
        if k >= 0 and seg["ended"].asstr()[k] == S.RUNNING:
            seg["ended"][k] = b"killed"

    def end_segment(self, last_iteration: int, ended: str, progress: str, seconds: float) -> None:
        """Close the current segment; seconds: the process's wall time at its end."""
        seg = self.h5[S.SEGMENTS]
        k = seg["ended"].shape[0] - 1
        seg["seconds"][k] = seconds
        seg["last_iteration"][k] = last_iteration
        seg["end_time"][k] = now_iso().encode()
        seg["ended"][k] = ended.encode()
        seg["progress"][k] = progress.encode()
        self.flush(force=True)

    def set_attrs(self, group: str, values: dict) -> None:
        grp = self.h5.require_group(group)
        for key, value in values.items():
            grp.attrs[key] = value
        self.flush(force=True)

    def write_wavefunction(
        self, wf, theta: np.ndarray, statistics: str, inverse_drift: float | None = None
    ) -> None:
        """/wavefunction: what each part stores (``Part.stored``: its parameters in theta
        (n_params,) and what is fixed) and, with determinants and when known (not after
        a failure), the largest inverse drift over all ranks."""
        grp = self.h5.require_group(S.WAVEFUNCTION)
        items = [item for part in wf.layout.present() for item in part.stored(wf, theta)]
        for name, value in items:
            if name in grp:
                del grp[name]
            grp[name] = value
        grp.attrs.update(zip(S.WAVEFUNCTION_ATTRS, ("rbm", wf.psi, wf.jastrow, statistics)))
        if wf.sigma_z is not None:
            grp.attrs[S.SIGMA_Z] = wf.sigma_z
        if wf.has_determinants and inverse_drift is not None:
            grp.attrs[S.INVERSE_DRIFT] = inverse_drift
        self.flush(force=True)

    def write_observables(self, summary: dict) -> None:
        """/production/observables from ``observables.summarize`` (replaced whole, so
        that a finish interrupted and run again leaves one consistent group)."""
        prod = self.h5[S.PRODUCTION]
        if S.OBSERVABLES in prod:
            del prod[S.OBSERVABLES]
        grp = prod.create_group(S.OBSERVABLES)
        grp.attrs.update(summary["attrs"])
        for name, est in summary["scalars"].items():
            ds = grp.create_dataset(name, data=est["batch_means"])
            ds.attrs[S.MEAN] = est["mean"]
            ds.attrs[S.ERROR] = est["error"]
        for name in S.HISTOGRAMS:
            if name not in summary:
                continue
            sub = grp.create_group(name)
            for key, value in summary[name].items():
                if key == "attrs":
                    sub.attrs.update(value)
                else:
                    sub.create_dataset(key, data=np.asarray(value))
        self.flush(force=True)

    def write_dmc(self, table: dict, series: list, attrs: dict) -> None:
        """/dmc: table {field: (n_steps,)} of ``schema.DMC_FIELDS``, series [{name:
        (steps,)} of ``schema.DMC_SERIES``] per time step, attrs ``schema.DMC_ATTRS``
        (replaced whole: a DMC phase run again leaves one consistent group)."""
        if S.DMC in self.h5:
            del self.h5[S.DMC]
        grp = self.h5.create_group(S.DMC)
        grp.attrs.update(attrs)
        for name in S.DMC_FIELDS:
            write_array(grp, name, np.asarray(table[name], dtype=np.float64))
        for k, per_step in enumerate(series):
            sub = grp.create_group(S.STEP_GROUP % k)
            for name in S.DMC_SERIES:
                write_array(sub, name, np.asarray(per_step[name], dtype=np.float64))
        self.flush(force=True)

    def write_checkpoint(self, attrs: dict, arrays: dict) -> None:
        """Copy the final state into /checkpoint (plain arrays and attributes)."""
        if S.CHECKPOINT in self.h5:
            del self.h5[S.CHECKPOINT]
        grp = self.h5.create_group(S.CHECKPOINT)
        for key, value in attrs.items():
            grp.attrs[key] = value
        for key, value in arrays.items():
            write_array(grp, key, value)
        self.flush(force=True)

    def close(self) -> None:
        try:
            self.h5.flush()
        finally:
            self.h5.close()


def damaged_dataset(path: str, rows: int, samples: int) -> str | None:
    """Read the valid part (``rows`` iterations, ``samples`` columns) of every
    checksummed dataset of a run file once; the first that fails, with why, or None.

    A resumed run would otherwise meet the damage only when it reads the series for
    its summary, after all its work."""
    names = [S.path(S.OPTIMIZATION, S.PARAMS)] + [
        S.path(S.PRODUCTION, s) for s in PRODUCTION_SERIES
    ]
    with h5py.File(path, "r", locking=False) as h5:
        for name in names:
            if name not in h5:
                continue
            ds = h5[name]
            opt = name.startswith(S.OPTIMIZATION)
            n = rows if opt else samples
            step = ds.chunks[1] if not opt and ds.chunks else 4096
            try:
                for start in range(0, n, step):
                    if opt:
                        ds[start : min(n, start + step)]
                    else:
                        ds[:, start : min(n, start + step)]
            except Exception as exc:  # noqa: BLE001 - any read failure is damage
                return f"/{name}: {one_line(exc, 200)}"
    return None
