"""The optimization's recovery policy: what is remembered of the last good iteration,
the rewind to it with a smaller learning rate when an iteration goes wrong (or giving
up), and the energy-plateau test that stops the optimization early.

These are decisions on the run state (``runstate.State``) and the walkers alone; the
driver applies them to the run file and the log.
"""

from __future__ import annotations

import numpy as np

from .. import optimizers
from .collective import RunFailed


class OutOfRewinds(RunFailed):
    """The rewinds are used up; the state is back at the last good iteration, whose
    own row in the run file stays valid."""


def mark_good(state, iteration: int, positions: np.ndarray) -> None:
    """Remember iteration ``iteration`` as good: its parameters and optimizer state
    (those it started from) and this rank's walker positions (W, M) at its start."""
    state.good = {
        "iteration": iteration,
        "theta": state.theta,
        "opt_state": state.opt_state,
        "positions": positions,
    }


def rewind(state, walkers, opt_cfg, problem: str, iteration: int) -> str:
    """Go back to the last good iteration (parameters, optimizer state, walker
    positions) with the learning rate scaled by ``opt_cfg.rewind_factor``; the line
    to log.

    Raises RunFailed without a good iteration to return to, and OutOfRewinds (after
    going back) when ``opt_cfg.max_rewinds`` are used up.
    """
    where = f"{problem} at iteration {iteration}"
    if state.good is None:
        raise RunFailed(f"{where} (no earlier good parameters to return to)")
    _back_to_good(state, walkers)
    if state.rewinds >= opt_cfg.max_rewinds:
        raise OutOfRewinds(
            f"{where} after {state.rewinds} rewind(s); the parameters of "
            f"iteration {state.good['iteration']} are kept"
        )
    state.rewinds += 1
    state.lr_scale *= opt_cfg.rewind_factor
    state.recent = np.zeros((0, 2))  # the plateau test starts again
    line = (
        f"rewind {state.rewinds}/{opt_cfg.max_rewinds}: {where}; back to iteration "
        f"{state.iteration}, learning rate "
        f"{opt_cfg.learning_rate * state.lr_scale:.4g}"
    )
    state.rewind_log += line + "\n"
    return line


def _back_to_good(state, walkers) -> None:
    g = state.good
    state.iteration, state.theta, state.opt_state = g["iteration"], g["theta"], g["opt_state"]
    walkers.positions[:] = g["positions"]


def plateau_reached(state, energy: float, error: float, window: int) -> bool:
    """Add an iteration's energy and error to the last ``window`` ones kept in
    ``state.recent`` (k, 2); True when the window is full and the energy no longer
    goes down (``optimizers.plateaued``). window 0: no plateau test."""
    if not window:
        return False
    state.recent = np.vstack([state.recent, [energy, error]])[-window:]
    return state.recent.shape[0] == window and optimizers.plateaued(
        state.recent[:, 0], state.recent[:, 1]
    )
