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

* the n training rows are dealt once (a permutation from the root seed) to the B
  positions of a mini-batch, position p getting every B-th row; rank r holds only the
  rows of its positions ``r B/R .. (r+1) B/R`` (its ``Shard``);
* every epoch visits each position's rows in the order of one random key per row (from
  the seed and the epoch, the same for any R); mini-batch t takes the t-th row of every
  position (n // B mini-batches; a position's extra row sits the epoch out);
* a chain has a global index (CD: its position in the batch; PCD: its number) and always
  draws from the random stream of that index; rank r runs the slice
  ``r n_c/R .. (r+1) n_c/R`` of the chains; PCD chain c starts at a row of position
  ``c B / n_c`` (held by the rank that runs it);
* per mini-batch each rank makes one jitted call (``_minibatch``: its rows, the Gibbs
  sweeps, both phases' sums into one buffer, the stop flags of ``control.Control``
  appended), joins one Allreduce, and makes the same update (one jitted call,
  ``_update``: the loss gradient, then ``optimizers.sgd_step`` or ``adam_step`` in
  place).

Only the order of the floating-point additions depends on R (each rank sums its rows,
then the Allreduce adds the ranks), so R ranks agree with one rank to round-off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .. import optimizers
from ..config.fields import ConfigError
from ..rng import CHAIN_START_KEY, DEAL_KEY, SHUFFLE_KEY, chain_states, seed_sequence
from ..wavefunction.rbm import weight_index
from .gibbs import sweep_kernel
from .model import RBM, sigmoid_scalar


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


class Diverged(RuntimeError):
    """The statistics or the parameters stopped being finite (decided from the
    Allreduced numbers, so on every rank at once)."""


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
        raise TrainError(
            f"training.batch_size: {tr.batch_size} is larger than the "
            f"{n_rows} training rows; allowed: 1 .. {n_rows}"
        )
    if tr.batch_size % size:
        raise TrainError(
            f"training.batch_size: {tr.batch_size} is not a multiple of the "
            f"{size} ranks; allowed: a multiple of {size}"
        )
    if tr.method == "pcd" and tr.chains % size:
        raise TrainError(
            f"training.chains: {tr.chains} is not a multiple of the {size} "
            f"ranks; allowed: a multiple of {size}"
        )


def n_streams(tr) -> int:
    """Global chain count: one per batch position (CD) or per persistent chain (PCD)."""
    return tr.batch_size if tr.method == "cd" else tr.chains


@dataclass
class Shard:
    """The training rows one rank holds: those of its mini-batch positions.

    The n training rows are dealt once (a permutation from the seed) to the B =
    batch_size positions of a mini-batch, position p getting rows ``deal[p::B]``
    (n // B or n // B + 1 of them); rank r holds the positions ``local_slice(B, r,
    R)``. rows (n_local, n_v): their rows, position after position; start
    (B_local + 1,): where each local position's rows begin in ``rows``; index
    (n_local,): their global row numbers; positions: the local positions; n_total: n.
    """

    rows: np.ndarray
    start: np.ndarray
    index: np.ndarray
    positions: slice
    n_total: int


def make_shard(data: np.ndarray, batch_size: int, seed: int, rank: int, size: int) -> Shard:
    """Rank's shard of all training rows data (n, n_v) (a copy: the caller may drop
    data). The deal depends on the seed, n and batch_size only, not on the ranks."""
    n = len(data)
    deal = np.random.default_rng(seed_sequence(seed, DEAL_KEY)).permutation(n)
    positions = local_slice(batch_size, rank, size)
    parts = [deal[p::batch_size] for p in range(positions.start, positions.stop)]
    index = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    start = np.concatenate([[0], np.cumsum([len(q) for q in parts])]).astype(np.int64)
    return Shard(np.ascontiguousarray(data[index], dtype=np.float64), start, index, positions, n)


def epoch_rows(shard: Shard, seed: int, epoch: int, batch_size: int) -> np.ndarray:
    """This rank's rows of every mini-batch of the epoch (0-based): (n // B, B_local)
    indices into shard.rows. Every position's rows are visited in the order of one
    random key per global row (drawn from the seed and the epoch, the same on every
    rank); a position's row beyond n // B sits the epoch out."""
    per_epoch = shard.n_total // batch_size
    keys = np.random.default_rng(seed_sequence(seed, SHUFFLE_KEY, epoch)).random(shard.n_total)[
        shard.index
    ]
    out = np.empty((per_epoch, len(shard.start) - 1), dtype=np.int64)
    for j in range(out.shape[1]):
        lo, hi = shard.start[j], shard.start[j + 1]
        out[:, j] = lo + np.argsort(keys[lo:hi], kind="stable")[:per_epoch]
    return out


def initial_state(rbm: RBM, tr, shard: Shard, seed: int, rank: int, size: int) -> TrainState:
    """Fresh state: the RBM's theta, a new optimiser, this rank's streams and (PCD) its
    persistent chains. Chain c (of C) starts at a row of position c B // C (so on the
    rank that holds that position), chosen within it from the seed."""
    n = n_streams(tr)
    part = local_slice(n, rank, size)
    streams = chain_states(seed, part.start, part.stop - part.start)
    chains = None
    if tr.method == "pcd":
        ss = seed_sequence(seed, CHAIN_START_KEY)
        u = np.random.default_rng(ss).random(n)[part]
        pos = np.arange(part.start, part.stop) * tr.batch_size // n - shard.positions.start
        sizes = shard.start[pos + 1] - shard.start[pos]
        rows = shard.start[pos] + (u * sizes).astype(np.int64)
        chains = np.ascontiguousarray(shard.rows[rows], dtype=np.float64)
    theta = rbm.theta()
    return TrainState(theta, optimizers.initial_state(tr.optimizer, theta.size), 0, streams, chains)


# ------------------------------------------------------------------ the gradient


@njit(cache=True)
def _add_phase(V, w, b, W, inv_s2, out):
    """out (n_v + n_h + n_v n_h + 1,) += the w-weighted sums over the rows of V (n, n_v)
    of [v, p(h|v), v p(h|v)^T (row-major), 1]; p(h|v) from b (n_h,), W (n_v, n_h).
    Two BLAS products: V W, and V^T (w p(h|v)) for the n_v n_h block."""
    n, n_v = V.shape
    n_h = W.shape[1]
    P = V @ W  # BLAS; becomes w p(h|v) in place
    for r in range(n):
        wr = w[r]
        out[n_v + n_h + n_v * n_h] += wr
        for j in range(n_h):
            p = sigmoid_scalar(b[j] + P[r, j] * inv_s2)
            out[n_v + j] += wr * p
            P[r, j] = wr * p
        for i in range(n_v):
            out[i] += wr * V[r, i]
    G = V.T @ P  # BLAS: sum_r V[r, i] w_r p(h_j | v_r)
    for i in range(n_v):
        for j in range(n_h):
            out[weight_index(0, n_v, n_h, i, j)] += G[i, j]


def phase_sums(rbm: RBM, V: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Sums over the rows of V (n, n_v), each with its weight (default 1), of
    [v (n_v), p(h|v) (n_h), v p(h|v)^T (n_v n_h), 1]: one phase's statistics."""
    V = np.ascontiguousarray(V, dtype=np.float64)
    w = np.ones(V.shape[0]) if weights is None else np.ascontiguousarray(weights, float)
    out = np.zeros(rbm.n_visible + rbm.n_hidden + rbm.n_visible * rbm.n_hidden + 1)
    _add_phase(V, w, rbm.b, np.ascontiguousarray(rbm.W), rbm.inv_s2, out)
    return out


@njit(cache=True)
def _minibatch(data, rows, V, restart, a, b, W, inv_s2, sigma, binary, k, states, out):
    """One mini-batch's local work in one call. The batch is the rows ``rows`` (n_b,)
    of data (n, n_v); restart (CD): the chains V (n_b, n_v) start at the batch, else
    (PCD) V (n_c, n_v) are the persistent chains. k Gibbs sweeps of V in place (chain r
    draws from states[r]); then out[:m] = the positive sums of the batch and
    out[m:2m] = the negative sums of V (``_add_phase``; m = n_v + n_h + n_v n_h + 1);
    out[2m:] is left alone."""
    n_b, n_v = rows.shape[0], data.shape[1]
    m = n_v + W.shape[1] + n_v * W.shape[1] + 1
    batch = np.empty((n_b, n_v))
    for r in range(n_b):
        for i in range(n_v):
            batch[r, i] = data[rows[r], i]
    if restart:
        V[:, :] = batch
    out[: 2 * m] = 0.0
    if k > 0 and V.shape[0] > 0:
        H = np.zeros((V.shape[0], W.shape[1]))
        sweep_kernel(
            V,
            W,
            W.T,
            a,
            b,
            inv_s2,
            sigma,
            binary,
            k,  # W.T: F-order, no copy
            states,
            H,
        )
    _add_phase(batch, np.ones(n_b), b, W, inv_s2, out[:m])
    _add_phase(V, np.ones(V.shape[0]), b, W, inv_s2, out[m : 2 * m])


@njit(cache=True)
def _gradient(positive, negative, n_v, n_h, inv_s2, out):
    """out (n_params,) = data averages - model averages from the phases' sums, the
    a and W entries over s2."""
    wp, wn = 1.0 / positive[-1], 1.0 / negative[-1]  # the phases' total weights
    for q in range(out.shape[0]):
        out[q] = positive[q] * wp - negative[q] * wn
    if inv_s2 != 1.0:
        for q in range(n_v):
            out[q] *= inv_s2
        for q in range(n_v + n_h, out.shape[0]):
            out[q] *= inv_s2


def loglik_gradient(rbm: RBM, positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """d mean log-likelihood / d theta (n_params,) from the two phases' sums
    (``phase_sums``): the data averages minus the model averages, over s2 (a, W)."""
    out = np.empty(positive.shape[0] - 1)
    _gradient(positive, negative, rbm.n_visible, rbm.n_hidden, rbm.inv_s2, out)
    return out


@njit(cache=True)
def _loss_gradient(total, n_v, n_h, inv_s2, weight_decay, W, out):
    """out (n_params,) = the minimised loss's gradient from the Allreduced sums total
    [positive, negative] (2m,): -(data - model averages) + weight_decay W on the W
    entries (W (n_v, n_h))."""
    half = total.shape[0] // 2
    _gradient(total[:half], total[half:], n_v, n_h, inv_s2, out)
    for q in range(out.shape[0]):
        out[q] = -out[q]
    if weight_decay != 0.0:
        for i in range(n_v):
            for j in range(n_h):
                out[weight_index(0, n_v, n_h, i, j)] += weight_decay * W[i, j]


def loss_gradient(rbm: RBM, total: np.ndarray, weight_decay: float) -> np.ndarray:
    """The minimised loss's gradient (n_params,) from the Allreduced buffer [positive,
    negative] (2m,): -d loglik / d theta + weight_decay W."""
    out = np.empty(total.shape[0] // 2 - 1)
    _loss_gradient(
        np.ascontiguousarray(total, dtype=np.float64),
        rbm.n_visible,
        rbm.n_hidden,
        rbm.inv_s2,
        float(weight_decay),
        np.ascontiguousarray(rbm.W),
        out,
    )
    return out


@njit(cache=True)
def _update(
    total, theta, W, n_v, n_h, inv_s2, weight_decay, adam, lr, momentum, c1, c2, s1, s2, grad
):
    """One mini-batch's parameter update, in place: grad (n_params,) = the loss
    gradient of the Allreduced sums total (2m,) (``_loss_gradient``; W (n_v, n_h) a
    view of theta), then ``optimizers.adam_step`` (s1, s2 = m, v; c1, c2 its bias
    corrections) or ``optimizers.sgd_step`` (s1 = velocity) on theta (n_params,).
    Returns whether the sums and the new theta are all finite."""
    finite = True
    for q in range(total.shape[0]):
        if not np.isfinite(total[q]):
            finite = False
    _loss_gradient(total, n_v, n_h, inv_s2, weight_decay, W, grad)
    if adam:
        optimizers.adam_step(theta, grad, s1, s2, lr, c1, c2)
    else:
        optimizers.sgd_step(theta, grad, s1, lr, momentum)
    for q in range(theta.shape[0]):
        if not np.isfinite(theta[q]):
            finite = False
    return finite


# ------------------------------------------------------------------ the loop


def _optimizer_arrays(tr, state: TrainState) -> tuple:
    """The optimiser's arrays, made C-contiguous float64 in state.opt (the jitted
    update changes them in place): (velocity, velocity) for sgd, (m, v) for adam."""
    keys = ("m", "v") if tr.optimizer == "adam" else ("velocity", "velocity")
    for key in set(keys):
        state.opt[key] = np.ascontiguousarray(state.opt[key], dtype=np.float64)
    return state.opt[keys[0]], state.opt[keys[1]]


def train_epoch(
    rbm_of,
    tr,
    state: TrainState,
    shard: Shard,
    seed: int,
    comm,
    n_steps_total: int,
    control=None,
    checkpoint=None,
) -> float:
    """The rest of the current epoch's mini-batches (from state.batch); updates state in
    place (theta and the optimiser's arrays in place too). rbm_of(theta) -> RBM whose
    arrays are views of theta. control: a ``control.Control`` whose flags ride in the
    mini-batch's one Allreduce; Interrupted when every rank agrees to stop, and
    checkpoint(state) (collective) when its clock says a checkpoint is due. Returns
    the learning rate of the epoch's last mini-batch.

    Per mini-batch: one jitted call (``_minibatch``: the rows, the Gibbs sweeps, both
    phases' sums into the buffer), the one Allreduce, one jitted call (``_update``)."""
    per_epoch = shard.n_total // tr.batch_size
    rows = epoch_rows(shard, seed, state.epoch, tr.batch_size)
    data = shard.rows
    state.theta = np.ascontiguousarray(state.theta, dtype=np.float64)
    rbm = rbm_of(state.theta)
    restart = tr.method == "cd"
    V = np.empty((rows.shape[1], data.shape[1])) if restart else state.chains
    s1, s2 = _optimizer_arrays(tr, state)
    adam, binary, wd = tr.optimizer == "adam", rbm.kind == "binary", float(tr.weight_decay)
    n_v, n_h, inv_s2, sigma, k = rbm.n_visible, rbm.n_hidden, rbm.inv_s2, rbm.sigma, tr.k
    a, b, W, streams, momentum = rbm.a, rbm.b, rbm.W, state.streams, float(tr.momentum)
    m = n_v + n_h + n_v * n_h + 1
    n_flags = control.flags().shape[0] if control is not None else 0
    local, grad = np.zeros(2 * m + n_flags), np.empty(m - 1)
    first_step = state.epoch * per_epoch
    c1 = c2 = 1.0
    while state.batch < per_epoch:  # as little Python as possible in here
        t = state.batch
        if control is not None:
            control.begin_unit()
            local[2 * m :] = control.flags()
        _minibatch(data, rows[t], V, restart, a, b, W, inv_s2, sigma, binary, k, streams, local)
        total = comm.allreduce_sum(local)
        lr = _rate(tr, first_step + t, n_steps_total)
        if adam:
            c1, c2 = optimizers.adam_corrections(state.opt["step"] + 1)
        finite = _update(
            total[: 2 * m] if n_flags else total,
            state.theta,
            W,
            n_v,
            n_h,
            inv_s2,
            wd,
            adam,
            lr,
            momentum,
            c1,
            c2,
            s1,
            s2,
            grad,
        )
        state.opt["step"] += 1
        if not finite:
            raise Diverged(
                f"non-finite statistics or parameters at epoch {state.epoch + 1}"
                f", mini-batch {t + 1} (learning rate too large?)"
            )
        state.batch += 1
        if control is not None:
            decision = control.decide(total[2 * m :])
            if decision.stop:
                raise Interrupted(f"stopped by {decision.stop}")
            if decision.checkpoint and checkpoint is not None:  # same on every rank
                checkpoint(state)
    state.epoch, state.batch = state.epoch + 1, 0
    return _rate(tr, state.epoch * per_epoch - 1, n_steps_total)


def _rate(tr, step: int, n_steps_total: int) -> float:
    """The scheduled learning rate of mini-batch `step` (0-based) of the whole run."""
    return optimizers.scheduled_rate(
        tr.schedule, tr.learning_rate, step, n_steps_total, tr.lr_final_fraction
    )


def train(
    rbm: RBM,
    tr,
    data,
    seed: int,
    comm,
    state: TrainState | None = None,
    after_epoch=None,
    control=None,
    checkpoint=None,
) -> TrainState:
    """Train rbm's parameters (kind, shape, sigma from rbm) on data for tr.epochs
    epochs from state (None: a fresh start). data: this rank's ``Shard``, or all
    training rows (n, n_v), of which the rank then takes its shard (``make_shard``
    with this seed). after_epoch(state, lr) is called after every epoch (history,
    checkpoints, progress); it may raise to stop. control, checkpoint: see
    ``train_epoch`` (checkpoints by the clock); its Interrupted carries the state."""
    shard = data if isinstance(data, Shard) else None
    check_layout(tr, shard.n_total if shard else len(data), comm.size)
    if shard is None:
        shard = make_shard(data, tr.batch_size, seed, comm.rank, comm.size)
    if state is None:
        state = initial_state(rbm, tr, shard, seed, comm.rank, comm.size)
    n_v, n_h = rbm.n_visible, rbm.n_hidden

    def rbm_of(theta):  # views of theta (the jitted update changes it in place)
        return RBM(
            rbm.kind,
            theta[:n_v],
            theta[n_v : n_v + n_h],
            theta[n_v + n_h :].reshape(n_v, n_h),
            rbm.sigma,
        )

    total_steps = tr.epochs * (shard.n_total // tr.batch_size)
    while state.epoch < tr.epochs:
        try:
            lr = train_epoch(rbm_of, tr, state, shard, seed, comm, total_steps, control, checkpoint)
        except Interrupted as exc:
            exc.state = state
            raise
        if after_epoch is not None:
            after_epoch(state, lr)
    return state
