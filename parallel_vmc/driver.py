"""One run: thermalise, optimise (one Allreduce per iteration), produce, summarise.

Every rank executes the same code on its own walkers; rank 0 alone writes the file and
prints. Sample counts in the config are totals over all ranks and walkers, so each
walker does ``ceil(total / n_chains)`` sweeps.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from . import kernels as K
from . import optimizers
from .output import RunFile
from .rng import params_generator
from .samplers import Sampler, Walkers
from .system import System
from .wavefunction import WaveFunction

CHECKSUM_EVERY = 10            # iterations between cross-rank parameter checks
PRODUCTION_GATHER_BYTES = 32 * 2**20   # bound on one gathered production block


class RunFailed(RuntimeError):
    """The run cannot continue (non-finite numbers, ranks disagreeing, ...)."""


def per_walker(total: int, n_chains: int) -> int:
    """Sweeps per walker so that all chains together give at least ``total``."""
    return max(1, math.ceil(total / n_chains))


def iteration_estimates(g: np.ndarray, n_params: int) -> dict:
    """Energy, error, variance, acceptance and gradient from globally summed buffers.

    The error is the spread of the per-walker means: chains are independent, and each
    walker mean already averages over its own autocorrelation, so
    ``std(walker means) / sqrt(n_walkers)`` is an honest standard error.
    """
    n = g[K.S_COUNT]
    energy = g[K.S_E] / n
    variance = max(g[K.S_E2] / n - energy * energy, 0.0)
    n_w = g[K.S_WALKERS]
    wmean = g[K.S_WMEAN] / n_w
    spread = max(g[K.S_WMEAN2] - n_w * wmean * wmean, 0.0) / max(n_w - 1.0, 1.0)
    o_mean = g[K.S_HEADER:K.S_HEADER + n_params] / n
    eo_mean = g[K.S_HEADER + n_params:K.S_HEADER + 2 * n_params] / n
    grad = 2.0 * (eo_mean - energy * o_mean)
    error = math.sqrt(spread / n_w) if n_w >= 2 else float("nan")   # one walker: unknown
    return {"energy": energy, "energy_error": error, "variance": variance,
            "acceptance": g[K.S_ACC] / max(g[K.S_PROP], 1.0), "gradient": grad}


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


class Run:
    """A whole run for one config on one communicator."""

    def __init__(self, cfg, comm, overwrite: bool = False, stream=None, progress=True):
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
        self.sampler = Sampler(cfg.sampler.method, cfg.sampler.step, self.system, self.wf,
                               cfg.sampler.target_acceptance)
        self.file: RunFile | None = None
        self.timings: dict = {}

    # ------------------------------------------------------------------ output
    def _say(self, text: str) -> None:
        if self.comm.rank == 0:
            print(text, file=self.stream, flush=True)

    def _initial_state(self):
        theta = self.wf.layout.initial(self.cfg.wavefunction.init_scale,
                                       params_generator(self.cfg.seed))
        # Start where |psi|^2 of the Gaussian part lives: std = sigma / sqrt(2c).
        width = self.wf.sigma / math.sqrt(2.0 * self.wf.c)
        walkers = Walkers.start(self.cfg.seed, self.comm.rank * self.walkers_per_rank,
                                self.walkers_per_rank, self.system.n_coords, width)
        return theta, walkers

    # ------------------------------------------------------------------ phases
    def optimize(self, theta, walkers):
        cfg = self.cfg.optimizer
        state = optimizers.initial_state(cfg.method, self.n_params)
        sweeps = per_walker(cfg.samples_per_iteration, self.n_chains)
        progress = Progress(cfg.iterations, "optimise", self.cfg.output.progress_every,
                            self.stream, self.progress)
        t0 = time.monotonic()
        for it in range(cfg.iterations):
            local = self.sampler.accumulate(theta, walkers, sweeps)
            est = iteration_estimates(self.comm.allreduce_sum(local), self.n_params)
            grad = est.pop("gradient")
            if not (math.isfinite(est["energy"]) and np.all(np.isfinite(grad))):
                raise RunFailed(f"non-finite energy or gradient at iteration {it}")
            record = dict(est, grad_norm=float(np.linalg.norm(grad)),
                          learning_rate=cfg.learning_rate, wall_time=time.monotonic() - t0)
            if self.file is not None:
                self.file.append_iteration(it, record, theta)
            theta, state = optimizers.update(cfg.method, theta, grad, state,
                                             cfg.learning_rate, cfg.momentum)
            if (it + 1) % CHECKSUM_EVERY == 0 and not self.comm.checksums_equal(theta):
                raise RunFailed(f"parameters differ between ranks at iteration {it}")
            progress.update(it + 1, f"E = {est['energy']:.5f} +- {est['energy_error']:.5f}"
                                    f"  var = {est['variance']:.4f}"
                                    f"  acc = {est['acceptance']:.3f}")
        progress.close()
        return theta, state

    def produce(self, theta, walkers):
        cfg = self.cfg.production
        n = per_walker(cfg.samples, self.n_chains)
        chunk = max(16, min(n, PRODUCTION_GATHER_BYTES // (8 * self.n_chains)))
        if self.file is not None:
            self.file.create_production(self.n_chains, n, cfg.store_components, chunk)
        progress = Progress(n, "produce", self.cfg.output.progress_every, self.stream,
                            self.progress)
        totals = np.zeros(5)     # count, sum E, sum E^2, accepted, proposed (this rank)
        done = 0
        while done < n:
            k = min(chunk, n - done)
            e, kin, pot, acc, prop = self.sampler.produce(theta, walkers, k,
                                                          cfg.store_components)
            totals += (e.size, e.sum(), np.square(e).sum(), acc, prop)
            blocks = {"local_energy": e}
            if cfg.store_components:
                blocks.update(kinetic=kin, potential=pot)
            gathered = {name: self.comm.gather_rows(block) for name, block in blocks.items()}
            if self.file is not None:
                self.file.write_production(done, gathered)
            done += k
            progress.update(done, f"E(last block, rank 0) = {e.mean():.5f}")
        progress.close()
        g = self.comm.allreduce_sum(totals)
        energy = g[1] / g[0]
        return {"energy_allreduced": energy,
                "variance_allreduced": max(g[2] / g[0] - energy * energy, 0.0),
                "acceptance": g[3] / max(g[4], 1.0), "samples_per_chain": n}

    # ------------------------------------------------------------------ the run
    def execute(self) -> RunResult:
        cfg = self.cfg
        if self.comm.rank == 0:
            self.file = RunFile.create(cfg.output.path, cfg, self.comm.size,
                                       self.comm.library, self.n_params, self.overwrite)
            self.file.begin_segment(self.comm.size, 0)
        status = "failed: unknown"
        if self.system.dimensions == 1 and self.system.coulomb and self.system.particles > 1:
            self._say("warning: in 1D the bare Coulomb 1/|x_p - x_q| has a non-integrable "
                      "singularity, and the RBM trial function has no node at contact, so "
                      "<E> is infinite; use interaction: none or D >= 2")
        try:
            theta, walkers = self._initial_state()
            t = time.monotonic()
            acc = self.sampler.thermalize(theta, walkers, cfg.sampler.thermalization,
                                          self.comm)
            self.timings["thermalise"] = time.monotonic() - t
            self._say(f"thermalised {cfg.sampler.thermalization} sweeps x {self.n_chains} "
                      f"chains: {cfg.sampler.method} step {self.sampler.step:.4g}, "
                      f"acceptance {acc:.3f}")
            t = time.monotonic()
            theta, opt_state = self.optimize(theta, walkers)
            self.timings["optimise"] = time.monotonic() - t
            t = time.monotonic()
            prod = self.produce(theta, walkers)
            self.timings["produce"] = time.monotonic() - t
            summary = self._finish(theta, opt_state, walkers, prod)
            status = "completed"
            return RunResult(cfg.output.path, status, theta, summary, self.timings)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException as exc:
            status = f"failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            if self.file is not None:
                self.file.set_status(status)
                self.file.end_segment(cfg.optimizer.iterations if status == "completed"
                                      else -1, status.split(":")[0])
                self.file.close()

    def _finish(self, theta, opt_state, walkers, prod) -> dict | None:
        positions = self.comm.gather_rows(walkers.positions)
        rng_states = self.comm.gather_rows(walkers.rng)
        if self.file is None:
            return None
        f = self.file
        f.set_attrs("production", dict(prod, step=self.sampler.step,
                                       sampler=self.sampler.method))
        f.write_wavefunction(self.wf, theta)
        f.write_checkpoint({"theta": theta, "optimizer": opt_state,
                            "iteration": self.cfg.optimizer.iterations,
                            "step": self.sampler.step, "positions": positions,
                            "rng_states": rng_states, "phase": "completed"})
        from analysis import summarize_chains
        t = time.monotonic()
        s = summarize_chains(f.h5["production/local_energy"][:, :prod["samples_per_chain"]])
        summary = {"energy": s.mean, "error": s.error, "error_bootstrap": s.error_bootstrap,
                   "variance": s.variance, "tau_int": s.tau_int, "n_eff": s.n_eff,
                   "n_samples": s.n_samples, "rhat": s.rhat,
                   "blocking_level": s.blocking.level, "acceptance": prod["acceptance"]}
        f.set_attrs("summary", summary)
        self.timings["analyse"] = time.monotonic() - t
        self._print_summary(summary)
        return summary

    def _print_summary(self, s: dict) -> None:
        sy, wf, cfg = self.system, self.wf, self.cfg
        total = sum(self.timings.values())
        lines = [
            "",
            "==================== parallel_vmc summary ====================",
            f"system        P={sy.particles} D={sy.dimensions} omega={sy.omega:g} "
            f"{'coulomb' if sy.coulomb else 'no interaction'}",
            f"wavefunction  RBM, {wf.layout.n_hidden} hidden, psi={wf.psi}, "
            f"sigma={wf.sigma:.6g}, {self.n_params} parameters",
            f"sampler       {self.sampler.method}, step {self.sampler.step:.4g}, "
            f"acceptance {s['acceptance']:.3f}",
            f"energy        {s['energy']:.6f} +- {s['error']:.6f} (blocking)"
            f"   +- {s['error_bootstrap']:.6f} (bootstrap)",
            f"variance      {s['variance']:.6g}",
            f"tau_int       {s['tau_int']:.3g} samples   R-hat {s['rhat']:.4f}",
            f"samples       {s['n_samples']} ({self.n_chains} chains x "
            f"{s['n_samples'] // self.n_chains}), {self.comm.size} rank(s)",
            "time          " + ", ".join(f"{k} {v:.1f} s" for k, v in self.timings.items())
            + f"; total {total:.1f} s",
            f"output        {cfg.output.path}",
            "==============================================================",
        ]
        self._say("\n".join(lines))
