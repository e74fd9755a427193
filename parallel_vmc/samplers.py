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

DEFAULT_TARGET = {"metropolis": 0.5, "importance": 0.93}
TUNE_CHUNK = 20          # sweeps between step-size updates while tuning
TUNE_GAIN = 3.0          # ln(step) changes by gain_k * (acceptance - target) per chunk,
TUNE_DECAY = 0.6         # gain_k = TUNE_GAIN / (1 + k)^TUNE_DECAY (Robbins-Monro), so the
                         # step settles instead of following the noise of the last chunk


class Walkers:
    """Positions and random streams of this rank's walkers.

    positions: (W, M) float64; rng: (W, 4) uint64 xoshiro256** states;
    accepted: (W,) int64 accepted moves since the start of the run.
    """

    def __init__(self, positions: np.ndarray, rng: np.ndarray):
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.rng = np.ascontiguousarray(rng, dtype=np.uint64)
        self.accepted = np.zeros(self.positions.shape[0], dtype=np.int64)

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

    def _call(self, mode, n_sweeps, theta, walkers, sums, e_out=None, kin_out=None,
              pot_out=None):
        a, b, W = self.wf.layout.split(theta)
        empty = np.empty((walkers.count, 0))
        s = self.system
        K.run_walkers(self.code, mode, n_sweeps, self.step, a, b, np.ascontiguousarray(W),
                      self.wf.inv_s2, self.wf.c, s.particles, s.dimensions, s.omega,
                      s.coulomb, walkers.positions, walkers.rng, sums,
                      empty if e_out is None else e_out,
                      empty if kin_out is None else kin_out,
                      empty if pot_out is None else pot_out, walkers.accepted)

    def thermalize(self, theta, walkers: Walkers, n_sweeps: int, comm) -> float:
        """Run n_sweeps sweeps; during the first half tune the step toward the target
        acceptance (globally, so every rank keeps the same step), then freeze it.

        Returns the acceptance of the frozen second half.
        """
        n_tune = n_sweeps // 2
        done = k = 0
        while done < n_tune:
            chunk = min(TUNE_CHUNK, n_tune - done)
            sums = np.zeros(K.sums_size(self.wf.layout.n_params))
            self._call(K.THERMALIZE, chunk, theta, walkers, sums)
            total = comm.allreduce_sum(sums[[K.S_ACC, K.S_PROP]])
            acceptance = total[0] / max(total[1], 1.0)
            gain = TUNE_GAIN / (1.0 + k) ** TUNE_DECAY
            self.step *= min(2.0, max(0.5, math.exp(gain * (acceptance - self.target))))
            done += chunk
            k += 1
        sums = np.zeros(K.sums_size(self.wf.layout.n_params))
        self._call(K.THERMALIZE, n_sweeps - n_tune, theta, walkers, sums)
        total = comm.allreduce_sum(sums[[K.S_ACC, K.S_PROP]])
        return total[0] / max(total[1], 1.0)

    def accumulate(self, theta, walkers: Walkers, n_sweeps: int) -> np.ndarray:
        """One optimisation iteration's local packed sums (``kernels`` layout)."""
        sums = np.zeros(K.sums_size(self.wf.layout.n_params))
        self._call(K.OPTIMIZE, n_sweeps, theta, walkers, sums)
        return sums

    def produce(self, theta, walkers: Walkers, n_sweeps: int, components: bool):
        """Record n_sweeps samples per walker.

        Returns (local_energy, kinetic, potential, accepted, proposed); the energies
        have shape (W, n_sweeps), kinetic/potential are None unless components.
        """
        e = np.empty((walkers.count, n_sweeps))
        kin = np.empty_like(e) if components else None
        pot = np.empty_like(e) if components else None
        sums = np.zeros(K.sums_size(self.wf.layout.n_params))
        self._call(K.PRODUCE, n_sweeps, theta, walkers, sums, e, kin, pot)
        return e, kin, pot, sums[K.S_ACC], sums[K.S_PROP]
