"""One run: thermalise, optimise (one Allreduce per iteration), produce, summarise.

Every rank executes the same code on its own walkers; rank 0 alone writes the file and
prints. Sample counts in the config are totals over all ranks and walkers, so each
walker does ``ceil(total / n_chains)`` sweeps.

A run is a sequence of *units of work* whose boundaries depend only on the config:
thermalisation chunks, optimisation iterations, production chunks. After each unit
every rank joins one reduction (for an iteration, the same single Allreduce that
carries the energy and gradient sums) with the flags of :mod:`control` appended, so
all ranks decide together whether to checkpoint, stop or fail. The complete state
(:class:`State` plus every walker) can be checkpointed at any unit boundary, and
because checkpoints never change which jitted calls are made, a resumed run repeats
the uninterrupted one bit for bit on the same number of ranks.
"""
from __future__ import annotations

import math
import os
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field

import numpy as np

from . import checkpoint as ckpt
from . import kernels as K
from . import observables, optimizers
from .control import Control
from .hdf5io import FileInUse
from .output import RunFile, now_iso
from .rng import chain_states, params_generator
from .samplers import Sampler, Walkers
from .system import System
from .wavefunction import WaveFunction

CHECKSUM_EVERY = 10            # iterations between cross-rank parameter checks
PRODUCTION_GATHER_BYTES = 32 * 2**20   # bound on one gathered production block
PRODUCTION_CHUNK_SWEEPS = 4096         # bound on one production unit of work
UNITS = "hbar = m = e = 1: E in hbar*w0, lengths in sqrt(hbar/(m*w0)), omega in w0"
STUCK_SWEEPS = 1000                    # a walker without an accepted move this long is stuck


class RunFailed(RuntimeError):
    """The run cannot continue (non-finite numbers, ranks disagreeing, ...)."""


class RunInterrupted(Exception):
    """The run stopped cleanly (signal or wall time) after writing a checkpoint."""


class RunRefused(Exception):
    """The run could not take its file (held by a live run, or it appeared meanwhile);
    nothing was started or modified."""


def production_chunk(n: int, n_chains: int) -> int:
    """Sweeps per production unit: bounded in time and in gathered bytes; fixed by the
    config and the chain count alone."""
    return max(16, min(n, PRODUCTION_CHUNK_SWEEPS, PRODUCTION_GATHER_BYTES // (8 * n_chains)))


def per_walker(total: int, n_chains: int) -> int:
    """Sweeps per walker so that all chains together give at least ``total``."""
    return max(1, math.ceil(total / n_chains))


def iteration_estimates(g: np.ndarray, n_params: int) -> dict:
    """Energy, error, variance, acceptance and gradient from globally summed buffers.

    The error is the spread of the per-walker means: chains are independent, and each
    walker mean already averages over its own autocorrelation, so
    ``std(walker means) / sqrt(n_walkers)`` is an honest standard error.
    """
    with np.errstate(invalid="ignore", over="ignore"):   # non-finite sums: guarded later
        return _estimates(g, n_params)


def _estimates(g: np.ndarray, n_params: int) -> dict:
    n = g[K.S_COUNT]
    energy = g[K.S_E] / n
    variance = max(g[K.S_E2] / n - energy * energy, 0.0)
    n_w = g[K.S_WALKERS]
    wmean = g[K.S_WMEAN] / n_w
    spread = max(g[K.S_WMEAN2] - n_w * wmean * wmean, 0.0) / max(n_w - 1.0, 1.0)
    o_mean = g[K.S_HEADER:K.S_HEADER + n_params] / n
    eo_mean = g[K.S_HEADER + n_params:K.S_HEADER + 2 * n_params] / n
    grad = 2.0 * (eo_mean - energy * o_mean)
    s_matrix = None
    if g.shape[0] > K.S_HEADER + 2 * n_params:    # SR: S = <O O^T> - <O><O>^T
        oo = g[K.S_HEADER + 2 * n_params:].reshape(n_params, n_params) / n
        s_matrix = oo - np.outer(o_mean, o_mean)
    error = math.sqrt(spread / n_w) if n_w >= 2 else float("nan")   # one walker: unknown
    return {"energy": energy, "energy_error": error, "variance": variance,
            "acceptance": g[K.S_ACC] / max(g[K.S_PROP], 1.0), "gradient": grad,
            "s_matrix": s_matrix}


class Progress:
    """Rank-0 progress: a tqdm bar on a terminal, plain periodic lines otherwise."""

    def __init__(self, total: int, label: str, every: float, stream=None, enabled=True):
        self.stream = stream or sys.stdout
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self.every = every
        self.start = time.monotonic()
        self.last = -math.inf
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=label, file=self.stream, dynamic_ncols=True,
                            smoothing=0.1)

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else float("nan")
        print(f"{self.label} {done}/{self.total}  {text}  elapsed {_hms(elapsed)}"
              f"  eta {_hms(eta)}", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _hms(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "--:--:--"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


@dataclass
class RunResult:
    """What a finished run reports (rank 0 has the summary; other ranks None)."""

    path: str
    status: str
    theta: np.ndarray
    summary: dict | None = None
    timings: dict = field(default_factory=dict)


@dataclass
class State:
    """Everything besides the walkers that a run needs to continue; identical on all
    ranks (it only changes through reduced quantities).

    phase: "thermalize" | "optimize" | "produce" | "finish" (the phase to do next).
    good: the last iteration whose energy and gradient were finite, as
    {"iteration", "theta", "opt_state", "positions" (this rank's (W, M))}; None before.
    """

    theta: np.ndarray
    opt_state: dict
    step: float
    phase: str = "thermalize"
    therm_done: int = 0              # thermalisation sweeps done
    tune_k: int = 0                  # step-tuning chunks done
    therm_acc: np.ndarray = field(default_factory=lambda: np.zeros(2))
    iteration: int = 0               # optimisation iterations done
    opt_seconds: float = 0.0         # wall time spent optimising, all segments
    lr_scale: float = 1.0            # product of the rewind factors applied so far
    rewinds: int = 0
    rewind_log: str = ""
    good: dict | None = None
    prod_done: int = 0               # production samples per chain written
    prod_totals: np.ndarray = field(default_factory=lambda: np.zeros(5))
    obs_totals: np.ndarray | None = None   # (n_batches, width) observable sums, all ranks
    reseeds: int = 0                 # times the chain count changed on resume
    stuck_total: int = 0             # walkers that passed the stuck limit, all ranks
    converged: bool = False          # optimisation stopped on a plateau
    recent: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (k, 2) last
                                     # energies and errors, for the plateau test

    SCALARS = ("phase", "therm_done", "tune_k", "step", "iteration", "opt_seconds",
               "lr_scale", "rewinds", "rewind_log", "prod_done", "reseeds", "stuck_total",
               "converged")


def _opt_arrays(prefix: str, state: dict) -> dict:
    return {f"{prefix}/{k}": np.asarray(v) for k, v in state.items()}


def _opt_state(arrays: dict, prefix: str) -> dict:
    """Optimiser state back from checkpoint arrays (0-d arrays -> Python numbers, so
    the resumed arithmetic is the uninterrupted one)."""
    out = {}
    for key, value in arrays.items():
        if key.startswith(prefix + "/"):
            value = np.asarray(value)
            out[key[len(prefix) + 1:]] = value.item() if value.ndim == 0 else value.copy()
    return out


class Run:
    """A whole run for one config on one communicator, fresh or from a checkpoint.

    resume: (attrs, arrays) of a checkpoint (``checkpoint.read``), the same on every
    rank, or None for a fresh run.
    """

    def __init__(self, cfg, comm, overwrite: bool = False, stream=None, progress=True,
                 resume=None, start_time: float | None = None):
        from .config import walltime_seconds
        self.cfg = cfg
        self.comm = comm
        self.overwrite = overwrite
        self.stream = stream or sys.stdout
        self.progress = progress and comm.rank == 0
        self.system = System.from_config(cfg.system)
        self.wf = WaveFunction.from_config(cfg.wavefunction, self.system)
        self.n_params = self.wf.layout.n_params
        self.walkers_per_rank = cfg.sampler.walkers_per_rank
        self.n_chains = comm.size * self.walkers_per_rank
        self.first_chain = comm.rank * self.walkers_per_rank
        self.n_samples = per_walker(cfg.production.samples, self.n_chains)
        self.sampler = Sampler(cfg.sampler.method, cfg.sampler.step, self.system, self.wf,
                               cfg.sampler.target_acceptance)
        self.obs_layout = (observables.Layout.from_config(cfg.production, self.system,
                                                          self.n_samples)
                           if cfg.production.observables else None)
        limit = cfg.output.max_walltime
        kwargs = {} if start_time is None else {"start": start_time}
        self.control = Control(comm.rank, cfg.output.checkpoint_every,
                               None if limit is None else walltime_seconds(limit), **kwargs)
        self.path = cfg.output.path
        self.ckpt_path = ckpt.path_for(self.path)
        self.file: RunFile | None = None
        self.timings: dict = {}
        self.n_checkpoints = 0
        self.production_reset = False
        self.reseeded = False         # this segment gave the chains new streams
        if resume is None:
            self.resumed = False
            self.run_id = uuid.uuid4().hex
            self.state, self.walkers = self._fresh_state()
        else:
            self.resumed = True
            self.run_id = str(resume[0]["run_id"])
            self.state, self.walkers = self._restored_state(*resume)
        self.sampler.step = self.state.step

    # ------------------------------------------------------------------ state
    def _fresh_state(self):
        theta = self.wf.layout.initial(self.cfg.wavefunction.init_scale,
                                       params_generator(self.cfg.seed),
                                       self.cfg.wavefunction.jastrow_beta)
        # Start where |psi|^2 of the Gaussian part lives: std = sigma / sqrt(2c).
        width = self.wf.sigma / math.sqrt(2.0 * self.wf.c)
        walkers = Walkers.start(self.cfg.seed, self.first_chain, self.walkers_per_rank,
                                self.system.n_coords, width)
        opt = optimizers.initial_state(self.cfg.optimizer.method, self.n_params)
        return State(theta=theta, opt_state=opt, step=self.cfg.sampler.step,
                     obs_totals=self._no_observables()), walkers

    def _no_observables(self):
        return None if self.obs_layout is None else self.obs_layout.zeros()

    def _restored_state(self, attrs: dict, arrays: dict):
        st = State(theta=np.array(arrays["theta"]),
                   opt_state=_opt_state(arrays, "optimizer"), step=float(attrs["step"]),
                   therm_acc=np.array(arrays["therm_acc"]),
                   prod_totals=np.array(arrays["prod_totals"]),
                   obs_totals=(np.array(arrays["obs_totals"]) if "obs_totals" in arrays
                               else self._no_observables()),
                   recent=np.array(arrays.get("recent", np.zeros((0, 2)))).reshape(-1, 2))
        for name in State.SCALARS:
            setattr(st, name, type(getattr(st, name))(attrs[name]))
        if st.phase in ("thermalize", "optimize"):
            # Nothing accumulated yet: take the shape of this run's layout (another
            # chain count can give another number of batches).
            st.obs_totals = self._no_observables()
        n_old = int(attrs["n_chains"])
        W = self.walkers_per_rank
        if n_old == self.n_chains:
            rows = slice(self.first_chain, self.first_chain + W)
            walkers = Walkers(arrays["positions"][rows], arrays["rng_states"][rows],
                              arrays["accepted"][rows, 0], arrays["stuck"][rows, 0])
        else:
            # Another rank count: new chains with fresh streams (rng.py), starting from
            # the saved configurations, chain k from old chain k mod n_old.
            st.reseeds += 1
            self.reseeded = True
            rows = (self.first_chain + np.arange(W)) % n_old
            walkers = Walkers(arrays["positions"][rows],
                              chain_states(self.cfg.seed, self.first_chain, W, st.reseeds))
            if st.phase == "produce":
                # Production series are per chain: the old chains' samples cannot be
                # continued by other chains, so production starts again.
                st.phase, st.prod_done = "produce", 0
                st.prod_totals = np.zeros(5)
                st.obs_totals = self._no_observables()
                self.production_reset = True
        if "good/theta" in arrays:
            st.good = {"iteration": int(attrs["good_iteration"]),
                       "theta": np.array(arrays["good/theta"]),
                       "opt_state": _opt_state(arrays, "good/optimizer"),
                       "positions": np.array(arrays["good/positions"][rows])}
        return st, walkers

    def _checkpoint_payload(self):
        """Gather the state of every walker; (attrs, arrays) on rank 0, None elsewhere.
        Collective: every rank must call it."""
        st, w = self.state, self.walkers
        per_rank = {"positions": w.positions, "rng_states": w.rng,
                    "accepted": w.accepted[:, None], "stuck": w.stuck[:, None]}
        if st.good is not None:
            per_rank["good/positions"] = st.good["positions"]
        gathered = {k: self.comm.gather_rows(v) for k, v in per_rank.items()}
        if self.comm.rank != 0:
            return None
        st.step = self.sampler.step
        attrs = {name: getattr(st, name) for name in State.SCALARS}
        attrs.update(mpi_size=self.comm.size, walkers_per_rank=self.walkers_per_rank,
                     n_chains=self.n_chains, n_params=self.n_params, seed=self.cfg.seed,
                     config=self.cfg.to_yaml(), run_file=os.path.basename(self.path),
                     run_id=self.run_id,
                     written=now_iso(), progress=self.where())
        arrays = dict(gathered, theta=st.theta, therm_acc=st.therm_acc, recent=st.recent,
                      prod_totals=st.prod_totals, **_opt_arrays("optimizer", st.opt_state))
        if st.obs_totals is not None:
            arrays["obs_totals"] = st.obs_totals
        if st.good is not None:
            attrs["good_iteration"] = st.good["iteration"]
            arrays["good/theta"] = st.good["theta"]
            arrays.update(_opt_arrays("good/optimizer", st.good["opt_state"]))
        return attrs, arrays

    def checkpoint(self) -> None:
        """Write a checkpoint (collective). The run file is synced first, so that all it
        counts is on disk before the checkpoint that counts it exists."""
        t = time.monotonic()
        payload = self._checkpoint_payload()
        if self.comm.rank == 0:
            self.file.sync()
            ckpt.write(self.ckpt_path, *payload)
        seconds = time.monotonic() - t
        self.control.checkpoint_written(seconds)
        self.timings["checkpoint"] = self.timings.get("checkpoint", 0.0) + seconds
        self.n_checkpoints += 1

    def where(self) -> str:
        """Human description of how far the run is."""
        st, cfg = self.state, self.cfg
        if st.phase == "thermalize":
            return f"thermalize {st.therm_done}/{cfg.sampler.thermalization} sweeps"
        if st.phase == "optimize":
            return f"optimize {st.iteration}/{cfg.optimizer.iterations} iterations"
        if st.phase == "produce":
            return f"produce {st.prod_done}/{self.n_samples} samples per chain"
        return {"finish": "writing the results", "done": "completed"}[st.phase]

    # ------------------------------------------------------------------ helpers
    def _say(self, text: str) -> None:
        if self.comm.rank == 0:
            print(text, file=self.stream, flush=True)

    def _guarded(self, work, fallback):
        """Run this rank's part of a unit; an exception becomes a flag for the next
        reduction (so every rank stops together and rank 0 can record why)."""
        try:
            return work(), False
        except Exception:  # noqa: BLE001 - reported here, decided collectively
            print(f"pvmc: rank {self.comm.rank}: exception in {self.where()}:",
                  file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            return fallback, True

    def _newly_stuck(self, accepted_before: np.ndarray, sweeps: int) -> int:
        """Update the per-walker sweeps-without-acceptance counters after a unit; the
        number of walkers that just passed STUCK_SWEEPS."""
        w = self.walkers
        moved = w.accepted > accepted_before
        before = w.stuck.copy()
        w.stuck = np.where(moved, 0, w.stuck + sweeps)
        return int(np.count_nonzero((before < STUCK_SWEEPS) & (w.stuck >= STUCK_SWEEPS)))

    def _after_unit(self, decision) -> None:
        if decision.failed_ranks:
            raise RunFailed(f"an exception on {decision.failed_ranks} in {self.where()} "
                            "(traceback on that rank's stderr)")
        if decision.stuck:
            self.state.stuck_total += decision.stuck
            self._say(f"warning: {decision.stuck} walker(s) had no accepted move in "
                      f"{STUCK_SWEEPS} sweeps ({self.where()}); "
                      f"{self.state.stuck_total} so far")
        if decision.checkpoint:
            self.checkpoint()
        if decision.stop:
            raise RunInterrupted(f"stopped by {decision.stop} at {self.where()}")

    def _reduce(self, local: np.ndarray, failed: bool, stuck: int, bad_theta=False):
        """The one reduction of a unit: local sums with the control flags appended."""
        n = local.shape[0]
        flags = self.control.flags(failed, stuck, bad_theta)
        total = self.comm.allreduce_sum(np.concatenate([local, flags]))
        return total[:n], self.control.decide(total[n:])

    # ------------------------------------------------------------------ phases
    def thermalize(self) -> None:
        st, n = self.state, self.cfg.sampler.thermalization
        while st.therm_done < n:
            chunk, tuning = self.sampler.thermalization_chunk(n, st.therm_done)
            self.control.begin_unit()
            before = self.walkers.accepted.copy()
            local, failed = self._guarded(
                lambda: self.sampler.sweep(st.theta, self.walkers, chunk), np.zeros(2))
            total, decision = self._reduce(local, failed, self._newly_stuck(before, chunk))
            if not decision.failed_ranks:
                if tuning:
                    self.sampler.tune(total[0] / max(total[1], 1.0), st.tune_k)
                    st.tune_k += 1
                else:
                    st.therm_acc += total
                st.therm_done += chunk
            self._after_unit(decision)

    def optimize(self) -> None:
        st, cfg = self.state, self.cfg.optimizer
        sweeps = per_walker(cfg.samples_per_iteration, self.n_chains)
        sr = cfg.method == "sr"
        n_sums = K.sums_size(self.n_params, sr)
        progress = Progress(cfg.iterations, "optimise", self.cfg.output.progress_every,
                            self.stream, self.progress)
        if st.iteration:
            progress.update(st.iteration, "resumed")
        while (st.iteration < cfg.iterations and not st.converged
               or not self._parameters_finite()):
            it = st.iteration
            if it == cfg.iterations or st.converged:     # the last update was not finite
                st.converged = False
                self._rewind("non-finite parameters after the update", it - 1)
                continue
            self.control.begin_unit()
            t0 = time.monotonic()
            start_positions = self.walkers.positions.copy()
            before = self.walkers.accepted.copy()
            # Parameters are checked where they are used, and the verdict is reduced
            # with everything else, so no rank ever rewinds or fails alone.
            bad_theta = not np.all(np.isfinite(st.theta))
            local, failed = (np.zeros(n_sums), False) if bad_theta else self._guarded(
                lambda: self.sampler.accumulate(st.theta, self.walkers, sweeps, sr),
                np.zeros(n_sums))
            sums, decision = self._reduce(local, failed, self._newly_stuck(before, sweeps),
                                          bad_theta)
            if decision.failed_ranks:
                self._after_unit(decision)
            est = iteration_estimates(sums, self.n_params)
            grad = est.pop("gradient")
            s_matrix = est.pop("s_matrix")
            lr = st.lr_scale * optimizers.scheduled_rate(
                cfg.schedule, cfg.learning_rate, it, cfg.iterations, cfg.lr_final_fraction)
            problem = None
            if decision.bad_theta:
                problem, it = "non-finite parameters after the update", it - 1
            elif not (math.isfinite(est["energy"]) and np.all(np.isfinite(grad))):
                problem = "non-finite energy or gradient"
            if problem:
                self._rewind(problem, it)
            else:
                theta, opt_state = optimizers.update(
                    cfg.method, st.theta, grad, st.opt_state, lr, cfg.momentum,
                    s_matrix=s_matrix, shift=cfg.sr_shift, shift_relative=cfg.sr_shift_relative)
                st.good = {"iteration": it, "theta": st.theta, "opt_state": st.opt_state,
                           "positions": start_positions}
                st.opt_seconds += time.monotonic() - t0
                with np.errstate(over="ignore"):      # a huge gradient: inf is fine
                    grad_norm = float(np.linalg.norm(grad))
                record = dict(est, grad_norm=grad_norm,
                              learning_rate=lr, wall_time=st.opt_seconds)
                if self.file is not None:
                    self.file.write_iteration(it, record, st.theta)
                st.theta, st.opt_state = theta, opt_state
                st.iteration += 1
                if cfg.plateau_window:
                    row = [est["energy"], est["energy_error"]]
                    st.recent = np.vstack([st.recent, row])[-cfg.plateau_window:]
                    if (st.recent.shape[0] == cfg.plateau_window
                            and optimizers.plateaued(st.recent[:, 0], st.recent[:, 1])):
                        st.converged = True
                        self._say(f"energy plateau over the last {cfg.plateau_window} "
                                  f"iterations: optimisation stops after iteration "
                                  f"{st.iteration - 1}")
                if st.iteration % CHECKSUM_EVERY == 0:
                    self._check_identical(st.theta)
                progress.update(st.iteration,
                                f"E = {est['energy']:.5f} +- {est['energy_error']:.5f}"
                                f"  var = {est['variance']:.4f}"
                                f"  acc = {est['acceptance']:.3f}")
            self._after_unit(decision)
        progress.close()

    def _parameters_finite(self) -> bool:
        """Are the parameters finite on every rank (one small reduction)?"""
        flag = np.array([0.0 if np.all(np.isfinite(self.state.theta)) else 1.0])
        return self.comm.allreduce_sum(flag)[0] == 0.0

    def _check_identical(self, theta) -> None:
        bad = self.comm.ranks_differing(theta)
        if bad:
            raise RunFailed(f"parameters on rank(s) {', '.join(map(str, bad))} differ from "
                            f"rank 0 after iteration {self.state.iteration - 1}")

    def _rewind(self, problem: str, it: int) -> None:
        """Return to the last good parameters with a smaller learning rate, or fail."""
        st, cfg = self.state, self.cfg.optimizer
        where = f"{problem} at iteration {it}"
        if st.good is None:
            raise RunFailed(f"{where} (no earlier good parameters to return to)")
        if st.rewinds >= cfg.max_rewinds:
            self._restore_good()
            if self.file is not None:     # the good iteration's own row stays valid
                self.file.truncate(st.iteration + 1, st.prod_done)
            raise RunFailed(f"{where} after {st.rewinds} rewind(s); the parameters of "
                            f"iteration {st.good['iteration']} are kept")
        self._restore_good()
        st.rewinds += 1
        st.lr_scale *= cfg.rewind_factor
        st.recent = np.zeros((0, 2))     # the plateau test starts again
        line = (f"rewind {st.rewinds}/{cfg.max_rewinds}: {where}; back to iteration "
                f"{st.iteration}, learning rate {cfg.learning_rate * st.lr_scale:.4g}")
        st.rewind_log += line + "\n"
        self._say(line)

    def _restore_good(self) -> None:
        st = self.state
        g = st.good
        st.iteration, st.theta, st.opt_state = g["iteration"], g["theta"], g["opt_state"]
        self.walkers.positions[:] = g["positions"]
        if self.file is not None:
            self.file.truncate(st.iteration, st.prod_done)

    def produce(self) -> None:
        st, cfg = self.state, self.cfg.production
        n = self.n_samples
        chunk = production_chunk(n, self.n_chains)
        progress = Progress(n, "produce", self.cfg.output.progress_every, self.stream,
                            self.progress)
        W = self.walkers_per_rank
        layout = self.obs_layout
        spec = None if layout is None else layout.spec()
        while st.prod_done < n:
            k = min(chunk, n - st.prod_done)
            self.control.begin_unit()
            before = self.walkers.accepted.copy()
            obs = None if layout is None else layout.zeros()
            nan = np.full((W, k), np.nan)
            (e, parts, acc, prop), failed = self._guarded(
                lambda: self._produce_chunk(k, obs, spec),
                (nan, np.full((3, W, k), np.nan), 0.0, 0.0))
            # The observables of the batches this chunk touched ride along in the
            # chunk's one reduction; their totals are then the same on every rank.
            rows = slice(0, 0)
            if layout is not None:
                rows = slice(observables.batch_of(st.prod_done, layout.n_batches, n),
                             observables.batch_of(st.prod_done + k - 1, layout.n_batches, n) + 1)
            local = np.array([e.size, e.sum(), np.square(e).sum(), acc, prop])
            if layout is not None:
                local = np.concatenate([local, obs[rows].ravel()])
            total, decision = self._reduce(local, failed, self._newly_stuck(before, k))
            if decision.failed_ranks:
                self._after_unit(decision)
            blocks = {"local_energy": e}
            if cfg.store_components:
                blocks.update(kinetic=parts[0], trap=parts[1], interaction=parts[2])
            gathered = {name: self.comm.gather_rows(b) for name, b in blocks.items()}
            if self.file is not None:
                self.file.write_production(st.prod_done, gathered)
            st.prod_totals += total[:5]
            if layout is not None:
                st.obs_totals[rows] += total[5:].reshape(-1, layout.width)
            st.prod_done += k
            progress.update(st.prod_done, f"E(last block, rank 0) = {e.mean():.5f}")
            self._after_unit(decision)
        progress.close()

    def _produce_chunk(self, k, obs, spec):
        """This rank's k production sweeps; a non-finite local energy (a division by
        zero in the kernel gives inf, not an exception) stops the run on every rank
        instead of entering the series."""
        st = self.state
        out = self.sampler.produce(st.theta, self.walkers, k,
                                   self.cfg.production.store_components, obs, spec,
                                   st.prod_done, self.n_samples)
        bad = ~np.isfinite(out[0])
        if bad.any():
            w, t = np.argwhere(bad)[0]
            raise FloatingPointError(f"non-finite local energy {out[0][w, t]} of chain "
                                     f"{self.first_chain + w} at production sample "
                                     f"{st.prod_done + t}")
        return out

    # ------------------------------------------------------------------ the run
    def _open_file(self) -> None:
        """Rank 0: create the run file, or reopen it and cut it back to the checkpoint."""
        if self.comm.rank != 0:
            return
        st = self.state
        if self.resumed:
            self.file = RunFile.open(self.path)
            self.file.close_dangling_segment()
            self.file.truncate(st.iteration, st.prod_done, flush=False)
            shape = self.file.h5["production/local_energy"].shape
            if st.phase == "finish":
                self.n_samples = shape[1]     # complete series of whichever chains
            elif shape[0] != self.n_chains:
                # Another chain count before production is complete: new, empty series
                # (_restored_state dropped any samples of the old chains).
                if st.prod_done:
                    raise RunFailed("internal: production samples of another chain count")
                self.file.replace_production(self.n_chains, self.n_samples,
                                             self._sample_chunk(),
                                             self.cfg.production.store_components)
            self.file.set_status("running", flush=False)
        else:
            # Another run's leftover checkpoints go, but only once the file is held.
            self.file = RunFile.create(self.path, self.cfg, self.comm.size,
                                       self.comm.library, self.n_params, self.n_chains,
                                       self.n_samples, self._sample_chunk(),
                                       self.overwrite, os.path.basename(self.ckpt_path),
                                       self.run_id, stale=ckpt.siblings(self.ckpt_path))
        self.file.begin_segment(self.comm.size, st.iteration, self.where(), self.reseeded)

    def _sample_chunk(self) -> int:
        """Columns of one production unit: one checksummed chunk of the series."""
        return production_chunk(self.n_samples, self.n_chains)

    def _open_file_everywhere(self) -> None:
        """Open the file on rank 0; every rank learns whether that worked (collective),
        so a file that another process holds stops all ranks as bad input."""
        problem = None
        try:
            self._open_file()
        except (FileInUse, FileExistsError) as exc:
            problem = str(exc)
        problem = self.comm.bcast(problem)
        if problem:
            raise RunRefused(problem)

    def execute(self) -> RunResult:
        """Run (or continue) to the end. Raises RunInterrupted after a clean stop,
        RunFailed (or the original exception) on failure; the file records either."""
        st = self.state
        self.control.install()        # a signal from now on stops at the first unit
        try:
            self._open_file_everywhere()
        except BaseException:
            self.control.uninstall()
            raise
        status = "failed: unknown"
        if self._mean_is_infinite():
            self._say("warning: in 1D the bare Coulomb 1/|x_p - x_q| has a non-integrable "
                      "singularity, and the RBM trial function has no node at contact, so "
                      "<E> is infinite; use interaction: none or D >= 2")
        if self.resumed:
            self._say(f"resuming {self.path} at {self.where()} on {self.comm.size} rank(s)"
                      + ("; the chain count changed, so the chains get new streams"
                         + (" and production starts again" if self.production_reset else "")
                         if self.reseeded else ""))
        summary = None
        try:
            if not self.resumed or self.reseeded:
                # From here on the run can always be resumed, and a re-seeded resume
                # never falls back to a checkpoint of the old chains.
                self.checkpoint()
            if st.phase != "finish":
                t = time.monotonic()
                self.sampler.load_kernel(st.theta, self.walkers)
                self.timings["compile"] = time.monotonic() - t
            while st.phase != "done":
                t = time.monotonic()
                phase = st.phase
                if phase == "thermalize":
                    self.thermalize()
                    a = st.therm_acc
                    step = ("no step" if self.sampler.method == "gibbs"
                            else f"step {self.sampler.step:.4g}")
                    self._say(f"thermalised {self.cfg.sampler.thermalization} sweeps x "
                              f"{self.n_chains} chains: {self.cfg.sampler.method} {step}, "
                              f"acceptance {a[0] / max(a[1], 1.0):.3f}")
                    st.phase = "optimize"
                elif phase == "optimize":
                    self.optimize()
                    st.phase = "produce"
                elif phase == "produce":
                    self.produce()
                    st.phase = "finish"
                else:
                    summary = self._finish()
                    st.phase = "done"
                self.timings[phase] = self.timings.get(phase, 0.0) + time.monotonic() - t
                if st.phase in ("optimize", "produce", "finish"):
                    self.checkpoint()
            status = "completed"
            return RunResult(self.path, status, st.theta, summary, self.timings)
        except RunInterrupted as exc:
            status = "interrupted"
            self._say(f"pvmc: {exc}; checkpoint written, resume with: "
                      f"pvmc resume {self.path}")
            raise
        except RunFailed as exc:
            status = f"failed: {exc}"
            if self.file is not None:      # the last good parameters (after a rewind)
                self.file.write_wavefunction(self.wf, st.theta)
            raise
        except BaseException as exc:
            status = f"failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            self.control.uninstall()
            if self.file is not None:
                # The segment row first and the status last: a file whose status says
                # completed has everything else in place.
                self.file.end_segment(st.iteration, status.split(":")[0], self.where(),
                                      self.control.elapsed())
                self.file.set_status(status)
                self.file.close()
                if status == "completed":
                    ckpt.remove(self.ckpt_path)

    def _finish(self) -> dict | None:
        st = self.state
        payload = self._checkpoint_payload()
        if self.file is None:
            return None
        f = self.file
        g = st.prod_totals
        energy = g[1] / g[0]
        f.set_attrs("production", {
            "samples_per_chain": self.n_samples, "step": self.sampler.step,
            "sampler": self.sampler.method, "energy_allreduced": energy,
            "variance_allreduced": max(g[2] / g[0] - energy * energy, 0.0),
            "acceptance": g[3] / max(g[4], 1.0), "stuck_walkers": st.stuck_total})
        f.write_wavefunction(self.wf, st.theta)
        attrs, arrays = payload
        f.write_checkpoint(dict(attrs, phase="completed"), arrays)
        if st.rewind_log:
            f.set_attrs("optimization", {"rewinds": st.rewinds, "rewind_log": st.rewind_log})
        if st.converged:
            f.set_attrs("optimization", {"stopped_on_plateau": st.iteration})
        from analysis import summarize_chains
        t = time.monotonic()
        series = f.h5["production/local_energy"]
        s = summarize_chains(series[:, :self.n_samples])
        summary = {"energy": s.mean, "error": s.error, "error_bootstrap": s.error_bootstrap,
                   "variance": s.variance, "tau_int": s.tau_int, "n_eff": s.n_eff,
                   "n_samples": s.n_samples, "rhat": s.rhat,
                   "blocking_level": s.blocking.level, "n_chains": series.shape[0],
                   "acceptance": g[3] / max(g[4], 1.0)}
        f.set_attrs("summary", summary)
        if self.obs_layout is not None:
            obs = observables.summarize(st.obs_totals, self.obs_layout)
            batch_error = obs["scalars"]["local_energy"]["error"]
            obs["attrs"].update(energy_error_batch_means=batch_error,
                                energy_error_blocking=s.error)
            f.write_observables(obs)
            summary["observables"] = obs
        self.timings["analyse"] = time.monotonic() - t
        self._print_summary(summary)
        return summary

    def _observable_lines(self, obs: dict | None) -> list:
        """Summary lines of the observables (batch-means errors), with a warning when
        the batches are too short to be independent."""
        if obs is None:
            return []
        sc = obs["scalars"]
        names = [("kinetic", "kinetic"), ("trap", "trap"), ("interaction", "interaction"),
                 ("r12", "<r12>")]
        lines = [f"{label:<14}{sc[name]['mean']:.6f} +- {sc[name]['error']:.6f}"
                 + ("   (batch means)" if name == "kinetic" else "")
                 for name, label in names if name in sc]
        a = obs["attrs"]
        if a["energy_error_batch_means"] < 0.7 * a["energy_error_blocking"]:
            lines.append(f"warning       the batch-means error of E ("
                         f"{a['energy_error_batch_means']:.3g}) is below the blocking "
                         f"error ({a['energy_error_blocking']:.3g}): the batches are too "
                         f"short, the observables' errors are underestimated; use fewer "
                         f"production.batches or more samples")
        return lines

    def _mean_is_infinite(self) -> bool:
        """1D Coulomb without a node at contact: <1/|x_p - x_q|> diverges."""
        sy = self.system
        return sy.dimensions == 1 and sy.coulomb and sy.particles > 1

    def _energy_line(self, s: dict) -> str:
        text = (f"{s['energy']:.6f} +- {s['error']:.6f} (blocking)"
                f"   +- {s['error_bootstrap']:.6f} (bootstrap)")
        if self._mean_is_infinite():
            return (f"infinite: the 1D Coulomb mean diverges (sample mean {s['energy']:.6g} "
                    "is not an estimate, and has no error bar)")
        return text

    def _sampler_line(self, s: dict) -> str:
        if self.sampler.method == "gibbs":
            return f"gibbs (exact conditional draws, no step), acceptance {s['acceptance']:.3f}"
        return (f"{self.sampler.method}, step {self.sampler.step:.4g} (tuned), acceptance "
                f"{s['acceptance']:.3f}")

    def _print_summary(self, s: dict) -> None:
        sy, wf, cfg = self.system, self.wf, self.cfg
        total = sum(self.timings.values())
        lines = [
            "",
            "==================== parallel_vmc summary ====================",
            f"system        P={sy.particles} D={sy.dimensions} omega={sy.omega:g} "
            f"{'coulomb' if sy.coulomb else 'no interaction'}",
            f"wavefunction  RBM, {wf.layout.n_hidden} hidden"
            f"{' x Pade-Jastrow' if wf.layout.n_jastrow else ''}, psi={wf.psi}, "
            f"sigma={wf.sigma:.6g}, {self.n_params} parameters",
            f"sampler       {self._sampler_line(s)}",
            f"energy        {self._energy_line(s)}",
            f"variance      {s['variance']:.6g}",
            f"tau_int       {s['tau_int']:.3g} samples   R-hat {s['rhat']:.4f}",
            *self._observable_lines(s.get("observables")),
            f"samples       {s['n_samples']} ({s['n_chains']} chains x "
            f"{s['n_samples'] // s['n_chains']}), {self.comm.size} rank(s)",
            "time          " + ", ".join(f"{k} {v:.1f} s" for k, v in
                                         sorted(self.timings.items(),
                                                key=lambda kv: kv[0] == "checkpoint"))
            + f"; total {total:.1f} s (this segment)",
            f"units         {UNITS}",
            f"output        {cfg.output.path}",
            "==============================================================",
        ]
        self._say("\n".join(lines))
