"""The collective failure protocol: how all ranks of a run agree after every unit of
work, so that no rank ever stops, rewinds or fails alone.

A unit of work (a thermalisation chunk, an optimization iteration, a production chunk)
runs guarded on every rank: an exception becomes a flag, not a crash. Then every rank
joins *one* reduction: the unit's local sums with the flags of :mod:`control` appended
(for an iteration, the same single Allreduce that carries the energy and gradient
sums). The reduced flags give the same :class:`control.Decision` on every rank, which
:meth:`Collective.after_unit` carries out: fail, warn about stuck walkers, checkpoint,
stop cleanly. This module also owns the cross-rank checks of the parameters.
"""

from __future__ import annotations

import sys
import traceback
from typing import Callable

import numpy as np

from ..sampling.samplers import STUCK_SWEEPS, Walkers

CHECKSUM_EVERY = 10  # iterations between cross-rank parameter checks


class RunFailed(RuntimeError):
    """The run cannot continue (non-finite numbers, ranks disagreeing, ...)."""


class RunInterrupted(Exception):
    """The run stopped cleanly (signal or wall time) after writing a checkpoint."""


class Collective:
    """The protocol of one run on one communicator.

    comm: ``parallel`` communicator; control: ``control.Control`` of this rank;
    where() -> str: how far the run is (for messages); say(text): print on rank 0;
    checkpoint(): write a checkpoint (collective).
    """

    def __init__(
        self,
        comm,
        control,
        where: Callable[[], str],
        say: Callable[[str], None],
        checkpoint: Callable[[], None],
    ):
        self.comm = comm
        self.control = control
        self.where = where
        self.say = say
        self.checkpoint = checkpoint

    def guarded(self, work: Callable, fallback):
        """(work(), False), or (fallback, True) after printing the exception of this
        rank to stderr: it becomes a flag of the next reduction, so every rank stops
        together and rank 0 can record why."""
        try:
            return work(), False
        except Exception:  # noqa: BLE001 - reported here, decided collectively
            print(f"pvmc: rank {self.comm.rank}: exception in {self.where()}:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            return fallback, True

    def reduce(
        self, local: np.ndarray, failed: bool = False, stuck: int = 0, bad_theta: bool = False
    ):
        """The one reduction of a unit: local sums (n,) with the control flags
        appended. Returns (global sums (n,), Decision)."""
        n = local.shape[0]
        flags = self.control.flags(failed, stuck, bad_theta)
        total = self.comm.allreduce_sum(np.concatenate([local, flags]))
        return total[:n], self.control.decide(total[n:])

    def unit(self, walkers: Walkers, sweeps: int, work: Callable, size: int, skip: bool = False):
        """One unit of work of ``sweeps`` sweeps of this rank's walkers and its one
        reduction.

        work() -> (local sums (size,), out). skip: this rank's parameters are not finite,
        so it does no work, contributes zeros and says so in the flags (every rank then
        rewinds together). Returns (global sums (size,), Decision, out); raises
        RunFailed on every rank if work raised on any.
        """
        self.control.begin_unit()
        before = walkers.accepted.copy()
        if skip:
            (local, out), failed = (np.zeros(size), None), False
        else:
            (local, out), failed = self.guarded(work, (np.full(size, np.nan), None))
        total, decision = self.reduce(local, failed, walkers.count_stuck(before, sweeps), skip)
        if decision.failed_ranks:
            raise RunFailed(
                f"an exception on {decision.failed_ranks} in {self.where()} "
                "(traceback on that rank's stderr)"
            )
        return total, decision, out

    def after_unit(self, decision, state) -> None:
        """Carry out the rest of a unit's decision, once the unit is accounted for in
        ``state`` (a ``runstate.State``; its stuck_total counts the stuck walkers)."""
        if decision.stuck:
            state.stuck_total += decision.stuck
            self.say(
                f"warning: {decision.stuck} walker(s) had no accepted move in "
                f"{STUCK_SWEEPS} sweeps ({self.where()}); "
                f"{state.stuck_total} so far"
            )
        if decision.checkpoint:
            self.checkpoint()
        if decision.stop:
            raise RunInterrupted(f"stopped by {decision.stop} at {self.where()}")

    def parameters_finite(self, theta: np.ndarray) -> bool:
        """Are the parameters finite on every rank (one small reduction)?"""
        flag = np.array([0.0 if np.all(np.isfinite(theta)) else 1.0])
        return self.comm.allreduce_sum(flag)[0] == 0.0

    def check_identical(self, theta: np.ndarray, iteration: int) -> None:
        """RunFailed naming the ranks whose parameters differ from rank 0's after the
        given iteration (collective)."""
        bad = self.comm.ranks_differing(theta)
        if bad:
            raise RunFailed(
                f"parameters on rank(s) {', '.join(map(str, bad))} differ from "
                f"rank 0 after iteration {iteration}"
            )
