"""One run: thermalise, optimize (one Allreduce per iteration), produce, summarise.

Every rank executes the same code on its own walkers; rank 0 alone writes the file and
prints. Sample counts in the config are totals over all ranks and walkers, so each
walker does ``ceil(total / n_chains)`` sweeps.

A run is a sequence of *units of work* whose boundaries depend only on the config:
thermalisation chunks, optimization iterations, production chunks. After each unit all
ranks decide together whether to checkpoint, stop or fail (:mod:`collective`). The
complete state (:mod:`runstate` plus every walker) can be checkpointed at any unit
boundary, and because checkpoints never change which jitted calls are made, a resumed
run repeats the uninterrupted one bit for bit on the same number of ranks.

This module owns the phases and :meth:`Run.execute`; the run state and its
checkpoints are in :mod:`runstate`, the run file's life through a segment in
:mod:`segment`, the rewind and plateau policy in :mod:`recovery`, the agreement
protocol in :mod:`collective`, the decoding of the reduced sums in :mod:`estimators`,
the production summary from per-rank reductions in :mod:`summary` and what is printed
in :mod:`report`.
"""

from __future__ import annotations

import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field

import numpy as np

from .. import optimizers
from ..control import Control, announce_ready
from ..dmc import phase as dmc_phase
from ..dmc import saved as dmc_saved
from ..runfile import checkpoint as ckpt
from ..runfile import schema as S
from ..runfile.hdf5io import now_iso
from ..sampling import estimators, observables
from ..sampling.packing import placement_failure, start_width
from ..sampling.samplers import Sampler
from ..sizes import per_walker, production_chunk
from ..system import System
from ..wavefunction import WaveFunction
from . import recovery, report
from . import state as runstate
from .collective import CHECKSUM_EVERY, Collective, RunFailed, RunInterrupted
from .segment import RunRefused, Segment
from .summary import summarize as production_summary

__all__ = ["Run", "RunResult", "RunFailed", "RunInterrupted", "RunRefused"]

NEXT_PHASE = {
    "thermalize": "optimize",
    "optimize": "produce",
    "produce": "finish",
    "finish": "dmc",  # or "done" without dmc.time_steps
    "dmc": "done",
}


@dataclass
class RunResult:
    """What a finished run reports (rank 0 has the summary; other ranks None)."""

    path: str
    status: str
    theta: np.ndarray
    summary: dict | None = None
    timings: dict = field(default_factory=dict)


class Run:
    """A whole run for one config on one communicator, fresh or from a checkpoint.

    resume: (attrs, arrays) of a checkpoint (``checkpoint.read``), the same on every
    rank, or None for a fresh run.
    """

    def __init__(
        self,
        cfg,
        comm,
        overwrite: bool = False,
        stream=None,
        progress=True,
        resume=None,
        start_time: float | None = None,
    ):
        self.cfg = cfg
        self.comm = comm
        self.overwrite = overwrite
        self.stream = stream or sys.stdout
        self.progress = progress and comm.rank == 0
        self.system = System.from_config(cfg.system)
        self.wf = WaveFunction.from_config(cfg.wavefunction, self.system)
        self.n_params = self.wf.layout.n_params
        self.chains = runstate.Chains.of(comm, cfg.sampler.walkers_per_rank)
        self.n_samples = per_walker(cfg.production.samples, self.n_chains)
        self.sampler = Sampler(
            cfg.sampler.method,
            cfg.sampler.step,
            self.system,
            self.wf,
            cfg.sampler.target_acceptance,
            cfg.sampler.drift_limit,
        )
        self.obs_layout = (
            observables.Layout.from_config(cfg.production, self.system, self.n_samples)
            if cfg.production.observables
            else None
        )
        self.control = self._control(start_time)
        self.collective = Collective(comm, self.control, self.where, self._say, self.checkpoint)
        self.path = cfg.output.path
        self.ckpt_path = ckpt.path_for(self.path)
        self.timings: dict = {}
        self.n_checkpoints = 0
        self.resumed = resume is not None
        self.reseeded = False  # this segment gave the chains new streams
        self.production_reset = False  # ... and production, begun, starts again
        self.dmc = None  # the DMC phase (dmc_phase.Phase) once it has begun
        if resume is None:
            self.run_id = uuid.uuid4().hex
            self.state, self.walkers, failed = runstate.fresh(
                cfg, self.system, self.wf, self.chains, self.obs_layout
            )
            self._placed(failed)
        else:
            self.run_id = str(resume[0]["run_id"])
            restored = runstate.restore(*resume, cfg, self.chains, self.sampler, self.obs_layout)
            self.state, self.walkers = restored.state, restored.walkers
            self.reseeded = restored.reseeded
            self.production_reset = restored.production_reset
            if dmc_saved.holds_phase(resume[0]):  # a checkpoint written during DMC
                self.dmc = self._dmc_phase()
                dmc_saved.restore(self.dmc, *resume)
        self.segment = Segment(cfg, comm, self.ckpt_path, self.run_id, self.n_params, self.n_chains)

    def _placed(self, failed: int) -> None:
        """RunRefused on every rank (nothing written yet) when any rank's walkers could
        not all be placed: a hard-core density the config check let through
        (collective)."""
        failed = int(self.comm.allreduce_sum(np.array([float(failed)]))[0])
        if failed:
            sy = self.system
            raise RunRefused(
                placement_failure(
                    sy.particles,
                    sy.dimensions,
                    sy.hard_sphere_radius,
                    start_width(self.wf),
                    failed,
                    self.n_chains,
                )
            )

    def _control(self, start_time: float | None) -> Control:
        from ..config.fields import walltime_seconds

        limit = self.cfg.output.max_walltime
        kwargs = {} if start_time is None else {"start": start_time}
        return Control(
            self.comm.rank,
            self.cfg.output.checkpoint_every,
            None if limit is None else walltime_seconds(limit),
            **kwargs,
        )

    @property
    def n_chains(self) -> int:
        return self.chains.n_chains

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint_payload(self):
        """(attrs, arrays) of a checkpoint on rank 0, None elsewhere; during DMC with
        the phase's state (``dmc/saved.py``). Collective: every rank must call it."""
        gathered = runstate.gather_walkers(self.state, self.walkers, self.comm)
        in_dmc = self.state.phase == "dmc" and self.dmc is not None
        dmc = dmc_saved.snapshot(self.dmc, self.comm) if in_dmc else None
        if self.comm.rank != 0:
            return None
        run_attrs = dict(
            mpi_size=self.comm.size,
            n_params=self.n_params,
            seed=self.cfg.seed,
            config=self.cfg.to_yaml(),
            run_file=os.path.basename(self.path),
            run_id=self.run_id,
            written=now_iso(),
            progress=self.where(),
        )
        attrs, arrays = runstate.payload(
            self.state, gathered, self.sampler.step, self.chains, run_attrs
        )
        if dmc is not None:
            attrs.update(dmc[0])
            arrays.update(dmc[1])
        return attrs, arrays

    def checkpoint(self) -> None:
        """Write a checkpoint (collective). The run file is synced first, so that all it
        counts is on disk before the checkpoint that counts it exists."""
        t = time.monotonic()
        payload = self._checkpoint_payload()
        self.segment.sync()
        if self.comm.rank == 0:
            ckpt.write(self.ckpt_path, *payload)
        seconds = time.monotonic() - t
        self.control.checkpoint_written(seconds)
        self.timings["checkpoint"] = self.timings.get("checkpoint", 0.0) + seconds
        self.n_checkpoints += 1

    def where(self) -> str:
        """Human description of how far the run is."""
        st, cfg = self.state, self.cfg
        if st.phase == "thermalize":
            return f"thermalize {st.therm.done}/{cfg.sampler.thermalization} sweeps"
        if st.phase == "optimize":
            return f"optimize {st.iteration}/{cfg.optimizer.iterations} iterations"
        if st.phase == "produce":
            return f"produce {st.prod_done}/{self.n_samples} samples per chain"
        if st.phase == "dmc" and self.dmc is not None:
            return self.dmc.where()
        return {
            "finish": "writing the results",
            "dmc": "diffusion Monte Carlo (dmc.time_steps)",
            "done": "completed",
        }[st.phase]

    def _say(self, text: str) -> None:
        if self.comm.rank == 0:
            print(text, file=self.stream, flush=True)

    # ------------------------------------------------------------------ phases
    def thermalize(self) -> None:
        """The thermalisation schedule (``samplers.Thermalization``), one unit of work
        per chunk."""
        st, schedule = self.state, self.state.therm
        while not schedule.finished:
            chunk, tuning = schedule.next_chunk()
            total, decision, _ = self.collective.unit(
                self.walkers,
                chunk,
                lambda: (self.sampler.sweep(st.theta, self.walkers, chunk), None),
                2,
            )
            schedule.record(self.sampler, chunk, tuning, total)
            self.collective.after_unit(decision, st)
        self._say(
            report.thermalized_line(self.cfg, self.n_chains, self.sampler, schedule.acceptance())
        )

    def optimize(self) -> None:
        """Iterations until the configured number or a plateau; a last update that
        left non-finite parameters on any rank is rewound first."""
        st, cfg = self.state, self.cfg.optimizer
        progress = report.Progress(
            cfg.iterations, "optimize", self.cfg.output.progress_every, self.stream, self.progress
        )
        if st.iteration:
            progress.update(st.iteration, "resumed")
        # The finiteness check is a reduction of its own, made only when the loop
        # would otherwise end.
        while (
            st.iteration < cfg.iterations
            and not st.converged
            or not self.collective.parameters_finite(st.theta)
        ):
            if st.iteration == cfg.iterations or st.converged:
                st.converged = False
                self._rewind("non-finite parameters after the update", st.iteration - 1)
                continue
            self._iteration(progress)
        progress.close()

    def _iteration(self, progress) -> None:
        """One optimization iteration: a unit of work whose one reduction carries the
        energy, gradient (and SR) sums; then an update, or a rewind."""
        st, cfg = self.state, self.cfg.optimizer
        it = st.iteration
        sweeps = per_walker(cfg.samples_per_iteration, self.n_chains)
        sr = cfg.method == "sr"
        t0 = time.monotonic()
        start_positions = self.walkers.positions.copy()
        # Parameters are checked where they are used, and the verdict is reduced
        # with everything else, so no rank ever rewinds or fails alone.
        bad_theta = not np.all(np.isfinite(st.theta))
        total, decision, _ = self.collective.unit(
            self.walkers,
            sweeps,
            lambda: (self.sampler.accumulate(st.theta, self.walkers, sweeps, sr), None),
            estimators.iteration_size(self.n_params, sr),
            skip=bad_theta,
        )
        est = estimators.iteration_estimates(total, self.n_params)
        if decision.bad_theta:
            self._rewind("non-finite parameters after the update", it - 1)
        elif not (math.isfinite(est["energy"]) and np.all(np.isfinite(est["gradient"]))):
            self._rewind("non-finite energy or gradient", it)
        else:
            self._update(est, start_positions, t0)
            progress.update(st.iteration, report.iteration_text(est))
        self.collective.after_unit(decision, st)

    def _update(self, est: dict, start_positions: np.ndarray, t0: float) -> None:
        """Record iteration st.iteration (estimates est) and step the parameters."""
        st, cfg = self.state, self.cfg.optimizer
        it = st.iteration
        lr = st.lr_scale * optimizers.scheduled_rate(
            cfg.schedule, cfg.learning_rate, it, cfg.iterations, cfg.lr_final_fraction
        )
        theta, opt_state = optimizers.update(
            cfg.method,
            st.theta,
            est["gradient"],
            st.opt_state,
            lr,
            cfg.momentum,
            s_matrix=est["s_matrix"],
            shift=cfg.sr_shift,
            shift_relative=cfg.sr_shift_relative,
        )
        recovery.mark_good(st, it, start_positions)
        st.opt_seconds += time.monotonic() - t0
        self.segment.write_iteration(it, est, lr, st.opt_seconds, st.theta)
        st.theta, st.opt_state = theta, opt_state
        st.iteration += 1
        if recovery.plateau_reached(st, est["energy"], est["energy_error"], cfg.plateau_window):
            st.converged = True
            self._say(
                f"energy plateau over the last {cfg.plateau_window} iterations: "
                f"optimization stops after iteration {st.iteration - 1}"
            )
        if st.iteration % CHECKSUM_EVERY == 0:
            self.collective.check_identical(st.theta, st.iteration - 1)

    def _rewind(self, problem: str, it: int) -> None:
        """Back to the last good parameters with a smaller learning rate, or fail."""
        try:
            line = recovery.rewind(self.state, self.walkers, self.cfg.optimizer, problem, it)
        except recovery.OutOfRewinds:
            # the good row stays valid
            self.segment.truncate(self.state.iteration + 1, self.state.prod_done)
            raise
        self.segment.truncate(self.state.iteration, self.state.prod_done)
        self._say(line)

    def produce(self) -> None:
        """The production series, one unit of work per chunk of sweeps."""
        st, n = self.state, self.n_samples
        chunk = production_chunk(n, self.n_chains)
        progress = report.Progress(
            n, "produce", self.cfg.output.progress_every, self.stream, self.progress
        )
        spec = (
            None
            if self.obs_layout is None
            else self.obs_layout.spec(self.cfg.production.observables_every)
        )
        with self.segment.production():
            while st.prod_done < n:
                self._production_unit(min(chunk, n - st.prod_done), spec, progress)
        progress.close()

    def _production_unit(self, k: int, spec, progress) -> None:
        """k production sweeps: the samples to the file, their sums (and those of the
        observables) into the state."""
        st, layout, n = self.state, self.obs_layout, self.n_samples
        # The observables of the batches this chunk touches ride along in the chunk's
        # one reduction; their totals are then the same on every rank.
        rows, width = slice(0, 0), 0
        if layout is not None:
            rows = slice(
                observables.batch_of(st.prod_done, layout.n_batches, n),
                observables.batch_of(st.prod_done + k - 1, layout.n_batches, n) + 1,
            )
            width = layout.width

        def work():
            obs = None if layout is None else layout.zeros()
            e, parts, acc, prop = self._produce_chunk(k, obs, spec)
            local = estimators.production_sums(e, acc, prop)
            if layout is not None:
                local = np.concatenate([local, obs[rows].ravel()])
            return local, (e, parts)

        size = estimators.PRODUCTION_SIZE + (rows.stop - rows.start) * width
        total, decision, (e, parts) = self.collective.unit(self.walkers, k, work, size)
        self.segment.write_samples(st.prod_done, e, parts)
        st.prod_totals += total[: estimators.PRODUCTION_SIZE]
        if layout is not None:
            st.obs_totals[rows] += total[estimators.PRODUCTION_SIZE :].reshape(-1, width)
        st.prod_done += k
        progress.update(st.prod_done, f"E(last block, rank 0) = {e.mean():.5f}")
        self.collective.after_unit(decision, st)

    def _produce_chunk(self, k, obs, spec):
        """This rank's k production sweeps; a non-finite local energy (a division by
        zero in the kernel gives inf, not an exception) stops the run on every rank
        instead of entering the series."""
        st = self.state
        out = self.sampler.produce(
            st.theta,
            self.walkers,
            k,
            self.cfg.production.store_components,
            obs,
            spec,
            st.prod_done,
            self.n_samples,
        )
        bad = ~np.isfinite(out[0])
        if bad.any():
            w, t = np.argwhere(bad)[0]
            raise FloatingPointError(
                f"non-finite local energy {out[0][w, t]} of chain "
                f"{self.chains.first + w} at production sample "
                f"{st.prod_done + t}"
            )
        return out

    def _finish(self) -> dict | None:
        """The results into the file and the summary printed; the summary on rank 0,
        None elsewhere. Collective: every rank reduces its own chains' samples."""
        st = self.state
        payload = self._checkpoint_payload()  # collective: before ranks part
        drift = self.comm.allreduce_max(self.walkers.inverse_drift.max(initial=S.NOT_MEASURED))
        est = estimators.production_estimates(st.prod_totals)
        if self.segment.held:
            self.segment.write_results(st, est, payload, self.sampler, self.n_samples, drift)
        t = time.monotonic()
        rows = self.segment.local_series(self.n_samples)  # collective
        summary = production_summary(self.comm, rows, est["acceptance"], self.cfg.to_dict())
        if not self.segment.held:
            return None
        self.segment.write_summary(summary)
        if self.obs_layout is not None:
            obs = report.observables_summary(st.obs_totals, self.obs_layout, summary["error"])
            self.segment.write_observables(obs)
            summary["observables"] = obs
        self.timings["analyse"] = time.monotonic() - t
        self._say(
            report.summary_text(
                summary,
                self.sampler,
                self.timings,
                self.comm.size,
                self.cfg.output.path,
                st.theta,
                drift,
            )
        )
        return summary

    def _dmc_phase(self) -> dmc_phase.Phase:
        return dmc_phase.Phase(
            self.cfg, self.system, self.wf, self.state.theta, self.comm, self.collective.guarded
        )

    def diffuse(self) -> dict:
        """The DMC phase (``dmc/phase.py``) from the VMC walkers and parameters, or
        from where a checkpoint left it; its results into /dmc and the summary's
        table. After every block of steps the ranks decide together to checkpoint
        (the whole phase) or stop; an unstable population, a non-finite local energy
        or an exception on a rank fails the run with the reason."""
        st = self.state
        if self.dmc is None:
            self.dmc = self._dmc_phase()
            population = dmc_phase.initial_population(
                self.sampler, st.theta, self.walkers, self.comm, self.cfg.dmc.walkers, self.cfg.seed
            )
            e_start = estimators.production_estimates(st.prod_totals)["energy"]
            self.dmc.begin(population, e_start)

        def after_block(phase) -> None:
            _, decision = self.collective.reduce(np.zeros(0))
            if decision.checkpoint:
                self.checkpoint()
            if decision.stop:
                raise RunInterrupted(f"stopped by {decision.stop} at {phase.where()}")
            self.control.begin_unit()  # the next block is the unit the wall time counts

        self.control.begin_unit()
        try:
            result = self.dmc.run(after_block, self._say)
        except (dmc_phase.DiffusionUnstable, dmc_phase.DiffusionFailed) as exc:
            raise RunFailed(f"DMC: {exc}") from None
        if self.segment.held:
            self.segment.write_dmc(result)
        self._say(dmc_phase.table_text(result))
        return result

    # ------------------------------------------------------------------ the run
    def open_file(self) -> None:
        """Open the run file and begin this segment (collective; RunRefused on every
        rank if rank 0 cannot take the file)."""
        self.n_samples = self.segment.open(
            self.state, self.n_samples, self.resumed, self.overwrite, self.where(), self.reseeded
        )

    def execute(self) -> RunResult:
        """Run (or continue) to the end. Raises RunInterrupted after a clean stop,
        RunFailed (or the original exception) on failure; the file records either."""
        self.control.install()  # a signal from now on stops at the first unit
        try:
            self.open_file()
        except BaseException:
            self.control.uninstall(run_over=True)
            raise
        announce_ready(self.comm, self.stream)
        status = f"{S.FAILED}: unknown"
        try:
            summary = self._phases()
            status = S.COMPLETED
            return RunResult(self.path, status, self.state.theta, summary, self.timings)
        except RunInterrupted as exc:
            status = S.INTERRUPTED
            self._say(f"pvmc: {exc}; checkpoint written, resume with: pvmc resume {self.path}")
            raise
        except RunFailed as exc:
            status = f"{S.FAILED}: {exc}"
            # the last good parameters (after a rewind)
            self.segment.write_wavefunction(self.wf, self.state.theta, self.system.statistics)
            raise
        except BaseException as exc:
            status = f"{S.FAILED}: {type(exc).__name__}: {exc}"
            raise
        finally:  # closed while still catching: a signal now only sets a flag
            self.segment.close(status, self.state.iteration, self.where(), self.control.elapsed())
            self.control.uninstall(run_over=True)

    def _phases(self) -> dict | None:
        """The phases from where the state is to the end; the summary (rank 0)."""
        st = self.state
        if self.resumed:
            self._say(
                report.resume_line(
                    self.path, self.where(), self.comm.size, self.reseeded, self.production_reset
                )
            )
        if not self.resumed or self.reseeded:
            # From here on the run can always be resumed, and a re-seeded resume
            # never falls back to a checkpoint of the old chains.
            self.checkpoint()
        if st.phase != "finish":
            t = time.monotonic()
            with self.control.compiling():  # a stop now is noted at once, acted on after
                self.sampler.load_kernel(st.theta, self.walkers)
            self.timings["compile"] = time.monotonic() - t
        summary = None
        while st.phase != "done":
            t, phase = time.monotonic(), st.phase
            if phase == "finish":
                summary = self._finish()
            elif phase == "dmc":
                result = self.diffuse()
                if summary is not None:
                    summary["dmc"] = result
            else:
                {"thermalize": self.thermalize, "optimize": self.optimize, "produce": self.produce}[
                    phase
                ]()
            st.phase = NEXT_PHASE[phase]
            if st.phase == "dmc" and self.cfg.dmc.time_steps is None:
                st.phase = "done"
            self.timings[phase] = self.timings.get(phase, 0.0) + time.monotonic() - t
            if st.phase != "done":
                self.checkpoint()
        return summary
