"""Training an RBM on data by CD-k or PCD, data-parallel over MPI ranks.

Log-likelihood gradient (mean over the data, ascent direction), with ``ph = p(h | v)``
(the hidden units summed out exactly in both phases) and ``s2 = sigma^2`` (1 for binary):

    d/dW = (<v ph^T>_data - <v ph^T>_model) / s2
    d/da = (<v>_data - <v>_model) / s2,        d/db = <ph>_data - <ph>_model

The model averages come from block Gibbs chains (``gibbs.py``): CD-k restarts one chain
at each row of the mini-batch and runs k sweeps; PCD keeps ``chains`` persistent chains
and advances them k sweeps per mini-batch. The optimisers of ``optimizers.py`` minimise
the loss ``-log-likelihood + weight_decay/2 |W|^2``.

Parallel layout (chosen so that R ranks reproduce one rank up to round-off):

* every epoch's order of the rows is one permutation from the root seed (the same on
  every rank); mini-batch t is rows ``order[t B : (t+1) B]`` (the last partial batch is
  dropped), and rank r takes the contiguous slice ``r B/R .. (r+1) B/R`` of it;
* a chain has a global index (CD: its position in the batch; PCD: its number) and always
  draws from the random stream of that index; rank r runs the slice
  ``r n/R .. (r+1) n/R`` of the chains;
* per mini-batch each rank packs its positive and negative sums into one buffer and
  joins one Allreduce; every rank then makes the same update.

Only the order of the floating-point additions depends on R (each rank sums its rows,
then the Allreduce adds the ranks), so R ranks agree with one rank to round-off.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import optimizers
from ..config import ConfigError
from ..rng import chain_states
from .gibbs import sweeps
from .model import RBM, p_hidden

SHUFFLE_KEY = (0, 1)      # SeedSequence spawn key prefix of the epochs' row orders
CHAIN_START_KEY = (0, 2)  # ... of the rows the persistent chains start from


class TrainError(ConfigError):
    """The training set-up does not fit (batch or chains vs ranks, batch vs data); a
    ConfigError, so ``pvmc train`` exits with code 2 naming the key."""


@dataclass
class TrainState:
    """Everything that evolves during training (what a checkpoint holds).

    theta (n_params,); opt: optimiser state; epoch: epochs done; streams (n_local, 4):
    this rank's chain streams; chains (n_local, n_v): this rank's persistent chains
    (PCD; None for CD); batch: mini-batches done of the current epoch."""

    theta: np.ndarray
    opt: dict
    epoch: int
    streams: np.ndarray
    chains: np.ndarray | None
    batch: int = 0


class Interrupted(Exception):
    """Every rank agreed to stop (a signal, the wall-time limit) after a mini-batch;
    ``state`` is consistent there and can be checkpointed."""

    def __init__(self, reason: str, state: TrainState | None = None):
        super().__init__(reason)
        self.state = state


def local_slice(n: int, rank: int, size: int) -> slice:
    """Rank's contiguous share of n items (n a multiple of size)."""
    per = n // size
    return slice(rank * per, (rank + 1) * per)


def check_layout(tr, n_rows: int, size: int) -> None:
    """TrainError naming the key unless the batch and chain counts fit the data and the
    rank count (tr: the training section)."""
    if tr.batch_size > n_rows:
        raise TrainError(f"training.batch_size: {tr.batch_size} is larger than the "
                         f"{n_rows} training rows; allowed: 1 .. {n_rows}")
    if tr.batch_size % size:
        raise TrainError(f"training.batch_size: {tr.batch_size} is not a multiple of the "
                         f"{size} ranks; allowed: a multiple of {size}")
    if tr.method == "pcd" and tr.chains % size:
        raise TrainError(f"training.chains: {tr.chains} is not a multiple of the {size} "
                         f"ranks; allowed: a multiple of {size}")


def n_streams(tr) -> int:
    """Global chain count: one per batch position (CD) or per persistent chain (PCD)."""
    return tr.batch_size if tr.method == "cd" else tr.chains


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The row order of epoch (0-based): a permutation of n, the same on every rank."""
    ss = np.random.SeedSequence(seed, spawn_key=SHUFFLE_KEY + (epoch,))
    return np.random.default_rng(ss).permutation(n)


def initial_state(rbm: RBM, tr, data: np.ndarray, seed: int, rank: int,
                  size: int) -> TrainState:
    """Fresh state: the RBM's theta, a new optimiser, this rank's streams and (PCD) its
    persistent chains, started at data rows chosen from the seed."""
    n = n_streams(tr)
    part = local_slice(n, rank, size)
    streams = chain_states(seed, part.start, part.stop - part.start)
    chains = None
    if tr.method == "pcd":
        ss = np.random.SeedSequence(seed, spawn_key=CHAIN_START_KEY)
        rows = np.random.default_rng(ss).integers(0, len(data), size=n)
        chains = np.ascontiguousarray(data[rows[part]], dtype=np.float64)
    theta = rbm.theta()
    return TrainState(theta, optimizers.initial_state(tr.optimizer, theta.size), 0,
                      streams, chains)


# ------------------------------------------------------------------ the gradient

def phase_sums(rbm: RBM, V: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sums over the rows of V (n, n_v), each with its weight (default 1), of
    [v (n_v), p(h|v) (n_h), v p(h|v)^T (n_v n_h), 1]: one phase's statistics."""
    P = p_hidden(rbm, V)
    w = np.ones(V.shape[0]) if weights is None else weights
    Vw = V * w[:, None]
    return np.concatenate([Vw.sum(axis=0), w @ P, (Vw.T @ P).ravel(), [w.sum()]])


def loglik_gradient(rbm: RBM, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """d mean log-likelihood / d theta (n_params,) from the two phases' sums
    (``phase_sums``): the data averages minus the model averages, over s2."""
    mean_pos = positive[:-1] / positive[-1]
    mean_neg = negative[:-1] / negative[-1]
    g = mean_pos - mean_neg
    n_v, n_h = rbm.n_visible, rbm.n_hidden
    g[:n_v] *= rbm.inv_s2
    g[n_v + n_h:] *= rbm.inv_s2
    return g


def loss_gradient(rbm: RBM, total: np.ndarray, weight_decay: float) -> np.ndarray:
    """The minimised loss's gradient from the Allreduced buffer [positive, negative]."""
    half = total.shape[0] // 2
    g = -loglik_gradient(rbm, total[:half], total[half:])
    if weight_decay:
        g[rbm.n_visible + rbm.n_hidden:] += weight_decay * rbm.W.ravel()
    return g


# ------------------------------------------------------------------ the loop

def negative_chains(rbm: RBM, tr, state: TrainState, batch: np.ndarray) -> np.ndarray:
    """This rank's negative-phase chains after k sweeps: CD restarts them at its rows
    of the batch, PCD advances its persistent chains (both in place of the state's
    streams)."""
    V = (np.array(batch, dtype=np.float64, order="C") if tr.method == "cd"
         else state.chains)
    sweeps(rbm, V, tr.k, state.streams)
    return V


def train_epoch(rbm_of, tr, state: TrainState, data: np.ndarray, seed: int, comm,
                n_steps_total: int, control=None) -> float:
    """The rest of the current epoch's mini-batches (from state.batch); updates state in
    place. rbm_of(theta) -> RBM. control: a ``control.Control`` whose flags ride in the
    mini-batch's one Allreduce; Interrupted when every rank agrees to stop. Returns the
    learning rate of the epoch's last mini-batch."""
    order = epoch_order(seed, state.epoch, len(data))
    per_epoch = len(data) // tr.batch_size
    mine = local_slice(tr.batch_size, comm.rank, comm.size)
    while state.batch < per_epoch:
        t = state.batch
        if control is not None:
            control.begin_unit()
        rbm = rbm_of(state.theta)
        batch = data[order[t * tr.batch_size:(t + 1) * tr.batch_size][mine]]
        V = negative_chains(rbm, tr, state, batch)
        local = np.concatenate([phase_sums(rbm, batch), phase_sums(rbm, V)])
        n = local.shape[0]
        if control is not None:
            local = np.concatenate([local, control.flags()])
        total = comm.allreduce_sum(local)
        state.theta, state.opt = optimizers.update(
            tr.optimizer, state.theta, loss_gradient(rbm, total[:n], tr.weight_decay),
            state.opt, _rate(tr, state.epoch * per_epoch + t, n_steps_total),
            momentum=tr.momentum)
        state.batch += 1
        if control is not None:
            decision = control.decide(total[n:])
            if decision.stop:
                raise Interrupted(f"stopped by {decision.stop}")
    state.epoch, state.batch = state.epoch + 1, 0
    return _rate(tr, state.epoch * per_epoch - 1, n_steps_total)


def _rate(tr, step: int, n_steps_total: int) -> float:
    """The scheduled learning rate of mini-batch `step` (0-based) of the whole run."""
    return optimizers.scheduled_rate(tr.schedule, tr.learning_rate, step, n_steps_total,
                                     tr.lr_final_fraction)


def train(rbm: RBM, tr, data: np.ndarray, seed: int, comm, state: TrainState | None = None,
          after_epoch=None, control=None) -> TrainState:
    """Train rbm's parameters (kind, shape, sigma from rbm) on data (n, n_v) for
    tr.epochs epochs from state (None: a fresh start). after_epoch(state, lr) is called
    after every epoch (history, checkpoints, progress); it may raise to stop. control:
    see ``train_epoch``; its Interrupted carries the state."""
    check_layout(tr, len(data), comm.size)
    if state is None:
        state = initial_state(rbm, tr, data, seed, comm.rank, comm.size)
    n_v, n_h = rbm.n_visible, rbm.n_hidden

    def rbm_of(theta):
        return RBM.from_theta(rbm.kind, theta, n_v, n_h, rbm.sigma)

    total_steps = tr.epochs * (len(data) // tr.batch_size)
    while state.epoch < tr.epochs:
        try:
            lr = train_epoch(rbm_of, tr, state, data, seed, comm, total_steps, control)
        except Interrupted as exc:
            exc.state = state
            raise
        if after_epoch is not None:
            after_epoch(state, lr)
    return state
