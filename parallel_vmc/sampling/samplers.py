"""The walkers of one rank and the sampler around the kernels: step tuning, the
thermalisation schedule, and the three kinds of calls the driver makes (thermalise,
accumulate an iteration, produce).

Every public method is one (or a few, while tuning) jitted call for all walkers of the
rank; Python runs only between calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..rng import chain_states
from ..runfile import schema
from ..sizes import O_ROWS_BUDGET, walkers_per_call
from ..system import SystemParams
from ..wavefunction import compose
from . import estimators, obs_layout
from . import kernels as K
from .packing import placement_failure

NO_STORE = np.empty((0, 0))  # the kernels' store of kept caches when none is passed

DEFAULT_TARGET = {"metropolis": 0.5, "importance": 0.93, "gibbs": 1.0}
TUNE_CHUNK = 20  # sweeps between step-size updates while tuning
TUNE_GAIN = 3.0  # ln(step) changes by gain_k * (acceptance - target) per chunk,
TUNE_DECAY = 0.6  # gain_k = TUNE_GAIN / (1 + k)^TUNE_DECAY (Robbins-Monro), so the
# step settles instead of following the noise of the last chunk
STUCK_SWEEPS = 1000  # a walker without an accepted move this long is stuck


class Walkers:
    """Positions and random streams of this rank's walkers.

    positions: (W, M) float64; rng: (W, 4) uint64 xoshiro256** states;
    accepted: (W,) int64 accepted moves since the start of the run;
    stuck: (W,) int64 sweeps since a walker last had a move accepted (counted per unit
    of work by :meth:`count_stuck`); inverse_drift: (W,) the largest max |D Dinv - I| of
    an updated Slater inverse seen at a rebuild since this process started
    (``schema.NOT_MEASURED`` before the first checked rebuild, and without
    determinants; not checkpointed); caches (S, C) float64, slots (W,) int64 and
    cached (W,) bool: a store of the parts' caches kept between kernel calls, each
    walker's row in it and whether the row is filled (``kernels.WalkerArrays``); (0,
    0), -1 and False unless a caller keeps them (DMC: :meth:`keep_caches`).
    """

    def __init__(self, positions: np.ndarray, rng: np.ndarray, accepted=None, stuck=None):
        self.positions = np.ascontiguousarray(positions, dtype=np.float64)
        self.rng = np.ascontiguousarray(rng, dtype=np.uint64)
        n = self.positions.shape[0]
        self.accepted = (
            np.zeros(n, dtype=np.int64) if accepted is None else np.array(accepted, dtype=np.int64)
        )
        self.stuck = (
            np.zeros(n, dtype=np.int64) if stuck is None else np.array(stuck, dtype=np.int64)
        )
        self.inverse_drift = np.full(n, schema.NOT_MEASURED)
        self.caches = np.empty((0, 0))
        self.slots = np.full(n, -1, dtype=np.int64)
        self.cached = np.zeros(n, dtype=np.bool_)
        self.cache_owner = None  # what the kept caches were made for (its theta)

    def keep_caches(self, size: int, owner) -> None:
        """Give every walker without one a free row of ``size`` doubles in the store of
        kept caches (it grows by a quarter at least when full). owner: what they are
        made for (``Sampler.diffusion``'s step function, which holds theta): a new
        store for another owner or another size. A walker's row is kept by whoever
        keeps the walker (the DMC comb and balancing, :meth:`inherit_caches`)."""
        if size == 0:  # nothing to keep (a generic part): every call rebuilds
            return
        if self.cache_owner is not owner or self.caches.shape[1] != size:
            self.caches, self.cache_owner = np.empty((0, size)), owner
            self.slots[:] = -1
        missing = np.flatnonzero(self.slots < 0)
        if missing.size == 0:
            return
        used = np.zeros(self.caches.shape[0], dtype=np.bool_)
        used[self.slots[self.slots >= 0]] = True
        free = np.flatnonzero(~used)
        if free.size < missing.size:
            extra = max(missing.size - free.size, self.caches.shape[0] // 4)
            grown = np.empty((self.caches.shape[0] + extra, size))
            grown[: self.caches.shape[0]] = self.caches
            free = np.concatenate([free, np.arange(self.caches.shape[0], grown.shape[0])])
            self.caches = grown
        self.slots[missing] = free[: missing.size]
        self.cached[missing] = False

    def inherit_caches(self, other: "Walkers", slots: np.ndarray, cached: np.ndarray) -> None:
        """Take over the store of kept caches of ``other`` (a population these walkers
        were made from), with each walker's row (slots (W,), -1: none) and whether it
        is filled (cached (W,))."""
        self.caches, self.cache_owner = other.caches, other.cache_owner
        self.slots, self.cached = slots, cached

    @classmethod
    def start(
        cls,
        seed: int,
        first_chain: int,
        n_walkers: int,
        n_coords: int,
        width: float,
        dimensions: int = 1,
        hard_core: float = 0.0,
    ) -> "Walkers":
        """Fresh walkers (:meth:`placed`); ConfigError naming system.hard_sphere_radius
        if some cannot be placed."""
        from ..config.fields import ConfigError

        walkers, failed = cls.placed(
            seed, first_chain, n_walkers, n_coords, width, dimensions, hard_core
        )
        if failed:
            raise ConfigError(
                placement_failure(
                    n_coords // dimensions, dimensions, hard_core, width, failed, n_walkers
                )
            )
        return walkers

    @classmethod
    def placed(
        cls,
        seed: int,
        first_chain: int,
        n_walkers: int,
        n_coords: int,
        width: float,
        dimensions: int = 1,
        hard_core: float = 0.0,
    ) -> tuple["Walkers", int]:
        """(fresh walkers for chains first_chain.., the number of them whose particles
        could not all be placed): positions ~ Normal(0, width^2), with no two particles
        (of ``dimensions`` coordinates) within hard_core (> 0) of each other
        (``kernels.init_positions``; a walker that failed is not usable)."""
        rng = chain_states(seed, first_chain, n_walkers)
        positions = np.empty((n_walkers, n_coords))
        failed = K.init_positions(positions, rng, width, dimensions, hard_core)
        return cls(positions, rng), int(failed)

    @property
    def count(self) -> int:
        return self.positions.shape[0]

    def kernel_arrays(self, lo: int = 0, hi: int | None = None, kept: bool = False):
        """Walkers lo..hi-1 as the kernels take them (``K.WalkerArrays``): views,
        updated in place; kept: with the store of kept caches (DMC), else without it,
        so that a VMC call rebuilds every walker's caches whatever a DMC call left."""
        part = slice(lo, hi)
        return K.WalkerArrays(
            self.positions[part],
            self.rng[part],
            self.accepted[part],
            self.inverse_drift[part],
            self.caches if kept else NO_STORE,
            self.slots[part],
            self.cached[part],
        )

    def count_stuck(self, accepted_before: np.ndarray, sweeps: int) -> int:
        """Update the sweeps-without-acceptance counters after a unit of ``sweeps``
        sweeps (accepted_before: (W,) ``accepted`` before it); the number of walkers
        that just passed STUCK_SWEEPS."""
        moved = self.accepted > accepted_before
        before = self.stuck.copy()
        self.stuck = np.where(moved, 0, self.stuck + sweeps)
        return int(np.count_nonzero((before < STUCK_SWEEPS) & (self.stuck >= STUCK_SWEEPS)))


@dataclass
class Thermalization:
    """The thermalisation schedule of ``n_sweeps`` sweeps and how far it got.

    The first half runs in chunks of TUNE_CHUNK sweeps, the step tuned after each; the
    second half in chunks of the same size with the step frozen, whose acceptance is
    recorded. The chunks are fixed by n_sweeps alone, so an interrupted and resumed run
    makes the same calls.

    done: sweeps done; tuned: tuning chunks done; frozen: (2,) global [accepted,
    proposed] moves of the frozen half.
    """

    n_sweeps: int
    done: int = 0
    tuned: int = 0
    frozen: np.ndarray = field(default_factory=lambda: np.zeros(2))

    @property
    def finished(self) -> bool:
        return self.done >= self.n_sweeps

    def next_chunk(self) -> tuple[int, bool]:
        """(sweeps, tuning) of the next chunk."""
        n_tune = self.n_sweeps // 2
        if self.done < n_tune:
            return min(TUNE_CHUNK, n_tune - self.done), True
        return min(TUNE_CHUNK, self.n_sweeps - self.done), False

    def record(self, sampler: "Sampler", chunk: int, tuning: bool, total: np.ndarray) -> None:
        """Account for a chunk with global [accepted, proposed] moves ``total``: tune
        the sampler's step after a tuning chunk, else add to the frozen acceptance."""
        if tuning:
            sampler.tune(estimators.acceptance(total[0], total[1]), self.tuned)
            self.tuned += 1
        else:
            self.frozen += total
        self.done += chunk

    def acceptance(self) -> float:
        """Acceptance of the frozen half so far."""
        return estimators.acceptance(self.frozen[0], self.frozen[1])


class Sampler:
    """One Markov-chain method with its (tuned, then frozen) step.

    system: ``system.System``; wf: ``wavefunction.WaveFunction``; drift_limit: Umrigar's
    a of importance sampling (``kernels.limit_drift``; None: what the parts need,
    ``Layout.drift_limit``: 1 at the nodes of determinants or a hard-sphere factor's
    zeros, else 0, off).
    """

    def __init__(
        self,
        method: str,
        step: float,
        system,
        wf,
        target: float | None = None,
        drift_limit: float | None = None,
    ):
        if drift_limit is None:
            # the drift diverges at a node of the determinants and at a hard core (an
            # unlimited drift there throws the proposal far off: a pair near its core
            # was seen locked for a whole production, N = 100): the parts say
            drift_limit = wf.layout.drift_limit()
        self.drift_limit = float(drift_limit)
        self.method = method
        self.code = K.SAMPLER_CODES[method]
        self.step = float(step)
        self.target = DEFAULT_TARGET[method] if target is None else float(target)
        self.system = system
        self.wf = wf

    def hamiltonian(self) -> "SystemParams":
        """The system as the kernel takes it. Where the hard-sphere pair factor has the
        interaction's radius, psi = 0 in every core, and the kernel rejects a proposal
        of zero ratio before any gradient: the kernel's own overlap test (the same
        distances again) is then left out (hard_core 0)."""
        sy = self.system.kernel_params()
        if sy.hard_core > 0.0 and self.wf.hard_sphere_radius == sy.hard_core:
            sy = sy._replace(hard_core=0.0)
        return sy

    def _call(
        self,
        mode,
        n_sweeps,
        theta,
        arrays,
        sums,
        e_out=None,
        parts_out=None,
        obs=None,
        obs_spec=None,
        t0=0,
        n_total=1,
        o_rows=None,
    ):
        """One kernel call (``kernels.run_walkers``) for the walkers ``arrays``
        (``Walkers.kernel_arrays``); the outputs left None are passed as empty arrays
        (not stored)."""
        n = arrays.positions.shape[0]
        sweeps = K.Sweeps(
            self.code,
            mode,
            n_sweeps,
            self.step,
            self.wf.layout.n_params,
            t0,
            n_total,
            self.drift_limit,
        )
        outputs = K.Outputs(
            sums,
            np.empty((n, 0)) if e_out is None else e_out,
            np.empty((3, n, 0)) if parts_out is None else parts_out,
            np.empty((0, 0)) if obs is None else obs,
            obs_layout.NO_HISTOGRAMS if obs_spec is None else obs_spec,
            np.empty((0, 0)) if o_rows is None else o_rows,
        )
        K.run_walkers(
            sweeps,
            np.ascontiguousarray(theta, dtype=np.float64),
            self.wf.kernel_parts(),
            self.hamiltonian(),
            arrays,
            outputs,
        )

    def load_kernel(self, theta, walkers: Walkers) -> None:
        """Compile (first run) or load from the cache the kernel this run calls, by a
        call of zero sweeps on a copy of one walker: nothing of the run changes, and
        the time is not booked as sampling."""
        one = Walkers(walkers.positions[:1].copy(), walkers.rng[:1].copy())
        self._call(
            K.THERMALIZE,
            0,
            theta,
            one.kernel_arrays(),
            np.zeros(estimators.iteration_size(self.wf.layout.n_params)),
        )

    def sweep(self, theta, walkers: Walkers, n_sweeps: int) -> np.ndarray:
        """n_sweeps moves of every walker, nothing measured; returns this rank's
        [accepted, proposed] moves."""
        local = np.zeros(estimators.iteration_size(self.wf.layout.n_params))
        self._call(K.THERMALIZE, n_sweeps, theta, walkers.kernel_arrays(), local)
        return local[[estimators.S_ACC, estimators.S_PROP]]

    def tune(self, acceptance: float, k: int) -> None:
        """Robbins-Monro update of ln(step) after tuning chunk k (0-based) with the
        given global acceptance; the change per chunk is capped to a factor 2. Gibbs
        sampling has no step (every draw is accepted): nothing to tune."""
        if self.method == "gibbs":
            return
        gain = TUNE_GAIN / (1.0 + k) ** TUNE_DECAY
        self.step *= min(2.0, max(0.5, math.exp(gain * (acceptance - self.target))))

    def thermalize(self, theta, walkers: Walkers, n_sweeps: int, comm) -> float:
        """Thermalise in one go (tests and benchmarks; the driver runs the same
        :class:`Thermalization` one unit of work per chunk, so that it can checkpoint
        and stop in between). comm: anything with ``allreduce_sum``.

        Returns the acceptance of the frozen second half.
        """
        schedule = Thermalization(n_sweeps)
        while not schedule.finished:
            chunk, tuning = schedule.next_chunk()
            total = comm.allreduce_sum(self.sweep(theta, walkers, chunk))
            schedule.record(self, chunk, tuning, total)
        return schedule.acceptance()

    def accumulate(
        self,
        theta,
        walkers: Walkers,
        n_sweeps: int,
        with_s: bool = False,
        budget: int | None = None,
    ) -> np.ndarray:
        """One optimization iteration's local iteration sums (``estimators`` layout).

        with_s (stochastic reconfiguration): also sum O O^T. The kernel stores every
        sample's O = d ln psi / d theta as a row, and BLAS forms O^T O from the rows
        (``estimators.add_o_products``), instead of n_params^2 scalar updates a sample.
        The rows take at most ``budget`` bytes (None: O_ROWS_BUDGET): the walkers run in
        groups (:func:`walkers_per_call`), one kernel call each, every walker's whole
        iteration in one call. The kernel treats the walkers one after the other, so
        the groups make the same moves, the same sums and the same per-walker means
        (one per walker and iteration, for the error bar) as one call, bit for bit;
        only O^T O is summed per group (round-off). A walker is never split: the rows
        exceed the budget only when one walker's alone, n_sweeps * n_params * 8 bytes,
        does (preflight counts them).
        """
        n_params = self.wf.layout.n_params
        local = np.zeros(estimators.iteration_size(n_params, with_s))
        if not with_s:
            self._call(K.OPTIMIZE, n_sweeps, theta, walkers.kernel_arrays(), local)
            return local
        group = walkers_per_call(
            walkers.count, n_sweeps, n_params, O_ROWS_BUDGET if budget is None else budget
        )
        rows = np.empty((group * n_sweeps, n_params))
        for lo in range(0, walkers.count, group):
            arrays = walkers.kernel_arrays(lo, lo + group)
            used = rows[: arrays.positions.shape[0] * n_sweeps]  # the last may be short
            self._call(K.OPTIMIZE, n_sweeps, theta, arrays, local, o_rows=used)
            estimators.add_o_products(local, used, n_params)
        return local

    def produce(
        self,
        theta,
        walkers: Walkers,
        n_sweeps: int,
        components: bool,
        obs=None,
        obs_spec=None,
        t0: int = 0,
        n_total: int = 1,
    ):
        """Record n_sweeps samples per walker.

        Returns (local_energy, parts, accepted, proposed): local_energy (W, n_sweeps);
        parts (3, W, n_sweeps) its kinetic, trap and interaction energy if components,
        else None. obs: an ``observables`` accumulator (n_batches, width) to add the
        samples to, with its spec; t0, n_total: where these sweeps lie in the production
        of n_total sweeps per chain (this fixes their batches).
        """
        e = np.empty((walkers.count, n_sweeps))
        parts = np.empty((3,) + e.shape) if components else None
        local = np.zeros(estimators.iteration_size(self.wf.layout.n_params))
        self._call(
            K.PRODUCE,
            n_sweeps,
            theta,
            walkers.kernel_arrays(),
            local,
            e,
            parts,
            obs,
            obs_spec,
            t0,
            n_total,
        )
        return e, parts, local[estimators.S_ACC], local[estimators.S_PROP]

    def diffusion(self, theta, n_sweeps: int = 1):
        """A function (walkers, t0=0) -> (local_energy (W, n_sweeps), the rank's
        [accepted, proposed, sum |chi|^2, sum p |chi|^2] (4,)) that makes n_sweeps
        fixed-node diffusion steps of every walker (``kernels.DIFFUSE``: importance
        sampling with this sampler's step as the time step, moves across a node
        rejected); t0: the steps made before in the time step. The kernel's fixed
        arguments are built once: DMC calls it every step. The walkers keep their caches
        between calls (``Walkers.keep_caches``): a walker whose ``cached`` is False is
        rebuilt."""
        if self.method != "importance":  # the drift and chi come from its proposal
            raise ValueError(f"diffusion needs the importance sampler, not {self.method}")
        n_params = self.wf.layout.n_params
        sweeps = K.Sweeps(
            self.code, K.DIFFUSE, n_sweeps, self.step, n_params, 0, 1, self.drift_limit
        )
        theta = np.array(theta, dtype=np.float64)  # a copy: the kept caches are for it
        parts, system = self.wf.kernel_parts(), self.hamiltonian()
        size = estimators.iteration_size(n_params)
        none2, none3 = np.empty((0, 0)), np.empty((3, 0, 0))
        slots = [estimators.S_ACC, estimators.S_PROP, estimators.S_CHI2, estimators.S_CHI2_ACC]

        kept = compose.kept_cache_size(
            parts.rbm, parts.pair, parts.antisymmetric, parts.generic, self.system.dimensions
        )

        def step(walkers: Walkers, t0: int = 0):
            e, sums = np.empty((walkers.count, n_sweeps)), np.zeros(size)
            out = K.Outputs(sums, e, none3, none2, obs_layout.NO_HISTOGRAMS, none2)
            walkers.keep_caches(kept, step)  # rebuilding them every call cost +40 % at P = 6
            arrays = walkers.kernel_arrays(kept=True)
            K.run_walkers(sweeps._replace(t0=t0), theta, parts, system, arrays, out)
            return e, sums[slots]

        return step

    def diffuse(self, theta, walkers: Walkers, n_sweeps: int):
        """n_sweeps diffusion steps of every walker at once (see :meth:`diffusion`)."""
        return self.diffusion(theta, n_sweeps)(walkers)
