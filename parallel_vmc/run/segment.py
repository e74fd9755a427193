"""The run file through one segment of a run (one launch, one row of /segments).

Rank 0 alone holds the file: :meth:`Segment.open` creates it, or reopens it and cuts it
back to the checkpoint (with new, empty production series when the chain count
changed), and begins the segment's row; then the run's records go in (iterations,
production samples, the cut of a rewind), the results at the end, and
:meth:`Segment.close` ends the row and sets the status. On the other ranks there is no
file: the records and the close do nothing there, so the driver calls them on every rank
alike; the results are written where :attr:`Segment.held` is true.

During production with the MPI-IO writer (``writer``) every rank holds the file
instead (:meth:`Segment.production`). At the end each rank gets its own chains' rows
for the summary (:meth:`Segment.local_series`).

How the file is laid out and written is ``output.RunFile``'s; its names are
``schema``'s; when each record is due is the driver's.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from ..parallel import row_counts
from ..runfile import checkpoint as ckpt
from ..runfile import schema as S
from ..runfile.hdf5io import FileInUse
from ..runfile.output import RunFile
from ..runfile.writer import (
    MPIO,
    ParallelSeries,
    chunk_rows,
    production_writer,
    recorded_writers,
    writers_used,
)
from ..sizes import production_chunk
from .collective import RunFailed

SERIES = S.path(S.PRODUCTION, S.LOCAL_ENERGY)


PRODUCTION_DONE = ("finish", "dmc")  # phases after a complete production series


class RunRefused(Exception):
    """The run could not take its file (held by a live run, or it appeared meanwhile),
    or its walkers could not start; nothing was started or modified."""


class Segment:
    """Rank 0's hold on the run file for one launch (``file`` is None elsewhere).

    ckpt_path: the run's live checkpoint; n_params, n_chains: of this launch.
    """

    def __init__(self, cfg, comm, ckpt_path: str, run_id: str, n_params: int, n_chains: int):
        self.cfg = cfg
        self.comm = comm
        self.path = cfg.output.path
        self.ckpt_path = ckpt_path
        self.run_id = run_id
        self.n_params = n_params
        self.n_chains = n_chains
        self.file: RunFile | None = None
        self.writer = production_writer(comm.size)
        self.parallel: ParallelSeries | None = None  # MPIO, during production

    @property
    def held(self) -> bool:
        return self.file is not None

    # ------------------------------------------------------------------ open
    def open(
        self, state, n_samples: int, resumed: bool, overwrite: bool, progress: str, reseeded: bool
    ) -> int:
        """Open the file on rank 0 (create it, or reopen it and cut it back to the
        checkpoint of ``state``) and begin this segment. Collective: every rank learns
        whether that worked, so a file that another process holds stops all ranks
        (RunRefused). Returns the samples per chain: n_samples, but on rank 0 the
        length of the file's series once production is complete."""
        problem = None
        try:
            if self.comm.rank == 0:
                if resumed:
                    n_samples = self._reopen(state, n_samples)
                else:
                    self._create(n_samples, overwrite)
                self.file.begin_segment(self.comm.size, state.iteration, progress, reseeded)
        except (FileInUse, FileExistsError) as exc:
            problem = str(exc)
        problem = self.comm.bcast(problem)
        if problem:
            raise RunRefused(problem)
        return n_samples

    def _create(self, n_samples: int, overwrite: bool) -> None:
        # Another run's leftover checkpoints go, but only once the file is held.
        self.file = RunFile.create(
            self.path,
            self.cfg,
            self.comm.size,
            self.comm.library,
            self.n_params,
            self.n_chains,
            n_samples,
            production_chunk(n_samples, self.n_chains),
            overwrite,
            os.path.basename(self.ckpt_path),
            self.run_id,
            stale=ckpt.siblings(self.ckpt_path),
            chunk_rows=self._chunk_rows(),
            writer=self.writer,
        )

    def _chunk_rows(self) -> int:
        return chunk_rows(self.writer, self.n_chains, self.cfg.sampler.walkers_per_rank)

    def _reopen(self, state, n_samples: int) -> int:
        """The file of a resumed run, cut back to the checkpoint; the samples per
        chain (see :meth:`open`)."""
        self.file = RunFile.open(self.path)
        self.file.upgrade_format()
        self.file.close_dangling_segment()
        self.file.truncate(state.iteration, state.prod_done, flush=False)
        shape = self.file.h5[SERIES].shape
        if state.phase in PRODUCTION_DONE:
            n_samples = shape[1]  # complete series of whichever chains
        elif shape[0] != self.n_chains:
            # Another chain count before production is complete: new, empty series
            # (the restore dropped any samples of the old chains).
            if state.prod_done:
                raise RunFailed("internal: production samples of another chain count")
            self.file.replace_production(
                self.n_chains,
                n_samples,
                production_chunk(n_samples, self.n_chains),
                self.cfg.production.store_components,
                self._chunk_rows(),
            )
        prod = self.file.h5[S.PRODUCTION]
        recorded = prod.attrs.get(S.WRITER)
        if state.phase not in PRODUCTION_DONE:
            prod.attrs[S.WRITER] = writers_used(recorded, self.writer, state.prod_done)
        elif recorded is None:  # an older format's complete series: now it says who
            prod.attrs[S.WRITER] = recorded_writers(recorded)
        self.file.set_status(S.RUNNING, flush=False)
        return n_samples

    # ------------------------------------------------------------------ records
    def sync(self) -> None:
        """Everything written so far on disk (before a checkpoint that counts it).
        Collective: every rank calls it (during production with MPIO all flush)."""
        if self.parallel is not None:
            self.parallel.flush()
        elif self.file is not None:
            self.file.sync()

    def truncate(self, rows: int, samples: int) -> None:
        """Only the first rows of /optimization (and samples columns) are valid."""
        if self.file is not None:
            self.file.truncate(rows, samples)

    def write_iteration(
        self, it: int, est: dict, lr: float, wall_time: float, theta: np.ndarray
    ) -> None:
        """Row it of /optimization: the estimates est (``estimators.
        iteration_estimates``) with the learning rate, and the parameters theta."""
        if self.file is None:
            return
        with np.errstate(over="ignore"):  # a huge gradient: inf is fine
            grad_norm = float(np.linalg.norm(est["gradient"]))
        record = {k: v for k, v in est.items() if k not in ("gradient", "s_matrix")}
        self.file.write_iteration(
            it, dict(record, grad_norm=grad_norm, learning_rate=lr, wall_time=wall_time), theta
        )

    def write_samples(self, start: int, e: np.ndarray, parts) -> None:
        """Write a unit's (W, k) local energies (and parts (3, W, k)) of every rank at
        column start (collective): each rank its rows with MPIO, else gathered to rank
        0, which writes them."""
        blocks = {S.LOCAL_ENERGY: e}
        if self.cfg.production.store_components:
            blocks.update(zip(S.COMPONENTS, parts))
        if self.parallel is not None:
            self.parallel.write(start, blocks)
            return
        gathered = {name: self.comm.gather_rows(b) for name, b in blocks.items()}
        if self.file is not None:
            self.file.write_production(start, gathered)

    @contextlib.contextmanager
    def production(self):
        """The production phase's hold on the file (collective). With MPIO rank 0 puts
        its serial handle down (flushed) and every rank opens the file through MPI-IO
        for the phase's writes and flushes; on the way out, however it ends, all close
        it and rank 0 takes its serial handle up again. With GATHER nothing changes."""
        if self.writer != MPIO:
            yield
            return
        if self.file is not None:
            self.file.close()
            self.file = None
        self.comm.barrier()
        W = self.cfg.sampler.walkers_per_rank
        rows = slice(self.comm.rank * W, (self.comm.rank + 1) * W)
        try:
            names = S.stored_series(self.cfg.production.store_components)
            self.parallel = ParallelSeries(self.path, self.comm, names, rows)
            yield
        finally:
            if self.parallel is not None:
                self.parallel.close()
                self.parallel = None
            if self.comm.rank == 0:
                self.file = RunFile.open(self.path)

    def write_wavefunction(self, wf, theta: np.ndarray, statistics: str) -> None:
        """The parameters theta (n_params,) into /wavefunction (after a failure: the
        inverse drift, a collective, is not known there)."""
        if self.file is not None:
            self.file.write_wavefunction(wf, theta, statistics)

    # ------------------------------------------------------------------ results
    def write_results(
        self, state, est: dict, payload, sampler, n_samples: int, inverse_drift: float
    ) -> None:
        """Rank 0: production attributes (est: ``estimators.production_estimates``), the
        final parameters and state (payload: the checkpoint's), how the optimization
        ended; inverse_drift: the largest over all ranks (``Walkers.inverse_drift``)."""
        f = self.file
        f.set_attrs(
            S.PRODUCTION,
            {
                "samples_per_chain": n_samples,
                "step": sampler.step,
                "sampler": sampler.method,
                "energy_allreduced": est["energy"],
                "variance_allreduced": est["variance"],
                "acceptance": est["acceptance"],
                "stuck_walkers": state.stuck_total,
            },
        )
        f.write_wavefunction(sampler.wf, state.theta, sampler.system.statistics, inverse_drift)
        attrs, arrays = payload
        f.write_checkpoint(dict(attrs, phase="completed"), arrays)
        if state.rewind_log:
            f.set_attrs(S.OPTIMIZATION, {"rewinds": state.rewinds, "rewind_log": state.rewind_log})
        if state.converged:
            f.set_attrs(S.OPTIMIZATION, {"stopped_on_plateau": state.iteration})

    def local_series(self, n_samples: int) -> np.ndarray:
        """This rank's rows (r, n) of the local-energy series, r of ``row_counts`` over
        the file's chains (rank*W .. rank*W+W-1 when they are this launch's), n:
        rank 0's n_samples (collective). Rank 0 reads the series in column blocks of
        one chunk width (every chain x at most the columns of one unit of work) and
        scatters each rank its rows: its memory holds one block, however many chains."""
        shape = None
        if self.file is not None:
            ds = self.file.h5[SERIES]
            shape = (ds.shape[0], n_samples, ds.chunks[1] if ds.chunks else n_samples)
        n_rows, n, width = self.comm.bcast(shape)
        counts = row_counts(n_rows, self.comm.size)
        rows = np.empty((counts[self.comm.rank], n))
        for start in range(0, n, width):
            stop = min(n, start + width)
            block = ds[:, start:stop] if self.file is not None else None
            rows[:, start:stop] = self.comm.scatter_rows(block, counts, stop - start)
        return rows

    def write_summary(self, summary: dict) -> None:
        self.file.set_attrs(S.SUMMARY, summary)

    def write_observables(self, obs: dict) -> None:
        self.file.write_observables(obs)

    def write_dmc(self, result: dict) -> None:
        """/dmc from ``dmc.phase.Phase.result()``."""
        self.file.write_dmc(result["table"], result["series"], result["attrs"])

    # ------------------------------------------------------------------ close
    def close(self, status: str, last_iteration: int, progress: str, seconds: float) -> None:
        """Rank 0: end the segment's row and close the file with its status; a
        completed run's checkpoint goes."""
        if self.file is None:
            return
        # The segment row first and the status last: a file whose status says
        # completed has everything else in place.
        self.file.end_segment(last_iteration, status.split(":")[0], progress, seconds)
        self.file.set_status(status)
        self.file.close()
        if status == S.COMPLETED:
            ckpt.remove(self.ckpt_path)
