"""The walkers of one rank and the sampler around the kernels: step tuning and the
three kinds of calls the driver makes (thermalise, accumulate an iteration, produce).

Every public method is one (or a few, while tuning) jitted call for all walkers of the
rank; Python runs only between calls.
"""
from __future__ import annotations

import math

import numpy as np

from . import kernels as K
from .rng import chain_states

DEFAULT_TARGET = {"metropolis": 0.5, "importance": 0.93, "gibbs": 1.0}
TUNE_CHUNK = 20          # sweeps between step-size updates while tuning
TUNE_GAIN = 3.0          # ln(step) changes by gain_k * (acceptance - target) per chunk,
TUNE_DECAY = 0.6         # gain_k = TUNE_GAIN / (1 + k)^TUNE_DECAY (Robbins-Monro), so the
                         # step settles instead of following the noise of the last chunk


class Walkers:
    """Positions and random streams of this rank's walkers.

    positions: (W, M) float64; rng: (W, 4) uint64 xoshiro256** states;
    accepted: (W,) int64 accepted moves since the start of the run;
    stuck: (W,) int64 sweeps since a walker last had a move accepted (counted per unit
    of work, see the driver).
    """

    def __init__(self, positions: np.ndarray, rng: np.ndarray, accepted=None, stuck=None):
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.rng = np.ascontiguousarray(rng, dtype=np.uint64)
        n = self.positions.shape[0]
        self.accepted = (np.zeros(n, dtype=np.int64) if accepted is None
                         else np.array(accepted, dtype=np.int64))
        self.stuck = (np.zeros(n, dtype=np.int64) if stuck is None
                      else np.array(stuck, dtype=np.int64))

    @classmethod
    def start(cls, seed: int, first_chain: int, n_walkers: int, n_coords: int,
              width: float) -> "Walkers":
        """Fresh walkers for chains first_chain.., positions ~ Normal(0, width^2)."""
        rng = chain_states(seed, first_chain, n_walkers)
        positions = np.empty((n_walkers, n_coords))
        K.init_positions(positions, rng, width)
        return cls(positions, rng)

    @property
    def count(self) -> int:
        return self.positions.shape[0]


class Sampler:
    """One Markov-chain method with its (tuned, then frozen) step.

    system: ``system.System``; wf: ``wavefunction.WaveFunction``.
    """

    def __init__(self, method: str, step: float, system, wf, target: float | None = None):
        self.method = method
        self.code = K.SAMPLER_CODES[method]
        self.step = float(step)
        self.target = DEFAULT_TARGET[method] if target is None else float(target)
        self.system = system
        self.wf = wf
        P = system.particles
        pade = wf.layout.n_jastrow > 0
        self._cusp = wf.cusp if pade else np.zeros((P, P))
        self._kind = wf.pair_kind if pade else np.zeros((P, P), dtype=np.int64)

    def _call(self, mode, n_sweeps, theta, walkers, sums, e_out=None, parts_out=None,
              obs=None, obs_spec=None, t0=0, n_total=1):
        a, b, W = self.wf.layout.split(theta)
        beta = (np.ascontiguousarray(self.wf.layout.betas(theta))
                if self.wf.layout.n_jastrow else None)
        n = walkers.count
        s = self.system
        K.run_walkers(self.code, mode, n_sweeps, self.step, a, b, np.ascontiguousarray(W),
                      beta, self._cusp, self._kind, self.wf.inv_s2, self.wf.c, s.particles,
                      s.dimensions, s.omega, s.coulomb, walkers.positions, walkers.rng, sums,
                      np.empty((n, 0)) if e_out is None else e_out,
                      np.empty((3, n, 0)) if parts_out is None else parts_out,
                      np.empty((0, 0)) if obs is None else obs,
                      np.empty(0) if obs_spec is None else obs_spec, t0, n_total,
                      walkers.accepted)

    def load_kernel(self, theta, walkers: Walkers) -> None:
        """Compile (first run) or load from the cache the kernel this run calls, by a
        call of zero sweeps on a copy of one walker: nothing of the run changes, and
        the time is not booked as sampling."""
        one = Walkers(walkers.positions[:1].copy(), walkers.rng[:1].copy())
        self._call(K.THERMALIZE, 0, theta, one, np.zeros(K.sums_size(self.wf.layout.n_params)))

    @staticmethod
    def thermalization_chunk(n_sweeps: int, done: int) -> tuple[int, bool]:
        """The next chunk after ``done`` of ``n_sweeps`` thermalisation sweeps:
        (sweeps, tuning). The first half is tuned in chunks of TUNE_CHUNK, the second
        half runs in chunks of the same size with the step frozen. The schedule is
        fixed by n_sweeps alone, so an interrupted and resumed run makes the same calls.
        """
        n_tune = n_sweeps // 2
        if done < n_tune:
            return min(TUNE_CHUNK, n_tune - done), True
        return min(TUNE_CHUNK, n_sweeps - done), False

    def sweep(self, theta, walkers: Walkers, n_sweeps: int) -> np.ndarray:
        """n_sweeps moves of every walker, nothing measured; returns this rank's
        [accepted, proposed] moves."""
        sums = np.zeros(K.sums_size(self.wf.layout.n_params))
        self._call(K.THERMALIZE, n_sweeps, theta, walkers, sums)
        return sums[[K.S_ACC, K.S_PROP]]

    def tune(self, acceptance: float, k: int) -> None:
        """Robbins-Monro update of ln(step) after tuning chunk k (0-based) with the
        given global acceptance; the change per chunk is capped to a factor 2. Gibbs
        sampling has no step (every draw is accepted): nothing to tune."""
        if self.method == "gibbs":
            return
        gain = TUNE_GAIN / (1.0 + k) ** TUNE_DECAY
        self.step *= min(2.0, max(0.5, math.exp(gain * (acceptance - self.target))))

    def thermalize(self, theta, walkers: Walkers, n_sweeps: int, comm) -> float:
        """Thermalise in one go (tests and benchmarks; the driver runs the same schedule
        chunk by chunk so that it can checkpoint and stop in between).

        Returns the acceptance of the frozen second half.
        """
        done = k = 0
        frozen = np.zeros(2)
        while done < n_sweeps:
            chunk, tuning = self.thermalization_chunk(n_sweeps, done)
            total = comm.allreduce_sum(self.sweep(theta, walkers, chunk))
            if tuning:
                self.tune(total[0] / max(total[1], 1.0), k)
                k += 1
            else:
                frozen += total
            done += chunk
        return frozen[0] / max(frozen[1], 1.0)

    def accumulate(self, theta, walkers: Walkers, n_sweeps: int,
                   with_s: bool = False) -> np.ndarray:
        """One optimisation iteration's local packed sums (``kernels`` layout; with_s:
        also sum O O^T for stochastic reconfiguration)."""
        sums = np.zeros(K.sums_size(self.wf.layout.n_params, with_s))
        self._call(K.OPTIMIZE, n_sweeps, theta, walkers, sums)
        return sums

    def produce(self, theta, walkers: Walkers, n_sweeps: int, components: bool,
                obs=None, obs_spec=None, t0: int = 0, n_total: int = 1):
        """Record n_sweeps samples per walker.

        Returns (local_energy, parts, accepted, proposed): local_energy (W, n_sweeps);
        parts (3, W, n_sweeps) its kinetic, trap and interaction energy if components,
        else None. obs: an ``observables`` accumulator (n_batches, width) to add the
        samples to, with its spec; t0, n_total: where these sweeps lie in the production
        of n_total sweeps per chain (this fixes their batches).
        """
        e = np.empty((walkers.count, n_sweeps))
        parts = np.empty((3,) + e.shape) if components else None
        sums = np.zeros(K.sums_size(self.wf.layout.n_params))
        self._call(K.PRODUCE, n_sweeps, theta, walkers, sums, e, parts, obs, obs_spec,
                   t0, n_total)
        return e, parts, sums[K.S_ACC], sums[K.S_PROP]
