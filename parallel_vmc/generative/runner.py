"""One ``pvmc train`` run: data, the layers' training, history, checkpoints, evaluation.

Every rank loads the data (the data sets are generated or read from one file), keeps
its shard of the training rows (``train.make_shard``: the rows of its mini-batch
positions) and its part of the held-out rows (every R-th) and drops the rest. The
evaluation is collective: every rank evaluates its rows and one Allreduce per history
row (and per final evaluation) makes the means over all rows; rank 0 prints the
progress lines and writes the file (``gio.py``). A deep belief net trains its layers
one after the other, each on the hidden probabilities p(h | v) of the layer below for
the training rows (each rank for its shard).
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from functools import partial

import numpy as np

from ..control import Control, announce_ready
from ..rng import (
    AIS_KEY,
    DATA_SAMPLE_KEY,
    HELD_OUT_KEY,
    LAYER_SEED_KEY,
    PSEUDO_LIKELIHOOD_KEY,
    params_generator,
    seed_sequence,
)
from ..runfile.hdf5io import one_line
from . import datasets, evaluate, gio
from .dbn import propagate_up
from .model import RBM, p_hidden, visible_bias_from_mean
from .train import Interrupted, Shard, TrainState, check_layout, local_slice, make_shard, train


class StopRequested(Exception):
    """The launch stops cleanly (--stop-after used up, a stop signal, the wall time);
    the checkpoint is written."""


class WriteFailed(Exception):
    """Rank 0 could not write the training file (a full disk, an I/O error, the file
    size limit); raised on every rank together. The file is as it was before that
    write (the atomic writer); ``kept``: where its checkpoint is, or None if there is
    no file yet."""

    def __init__(self, reason: str, kept: str | None):
        super().__init__(reason)
        self.kept = kept


# ------------------------------------------------------------------ data and layers


def load_data(cfg) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, held-out rows or None) as (n, n_v) float64; DataError (exit 2)
    naming what is wrong."""
    d = cfg.data
    if d.name == "bars_stripes":
        patterns, probs = datasets.bars_and_stripes(d.size)
        data = (
            patterns
            if d.samples is None
            else datasets.sample_patterns(
                patterns, probs, d.samples, seed_sequence(cfg.seed, DATA_SAMPLE_KEY)
            )
        )
    elif d.name == "digits":
        data, _ = datasets.digits(d.threshold)
    elif d.name == "mixture2d":
        data = datasets.gaussian_mixture(
            d.samples or 2000, seed_sequence(cfg.seed, DATA_SAMPLE_KEY)
        )
    else:
        data, _ = datasets.read_mnist(d.path, None, d.threshold)
        data = data[: d.limit] if d.limit else data
    data = datasets.check_data(data, binary=cfg.model.kind == "binary", name=f"data {d.name}")
    if d.held_out > 0:
        return datasets.split(data, d.held_out, seed_sequence(cfg.seed, HELD_OUT_KEY))
    return data, None


def layer_sizes(cfg) -> list:
    return [cfg.model.hidden] + list(cfg.dbn_layers)


def layer_seed(seed: int, layer: int) -> int:
    """The root seed of layer `layer` (the run's seed for the bottom one)."""
    if layer == 0:
        return seed
    state = seed_sequence(seed, LAYER_SEED_KEY, layer)
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def new_layer(cfg, layer: int, n_v: int) -> RBM:
    """The initial RBM of a layer (binary above the bottom one), visible biases 0."""
    kind = cfg.model.kind if layer == 0 else "binary"
    return RBM.init(
        kind,
        n_v,
        layer_sizes(cfg)[layer],
        params_generator(layer_seed(cfg.seed, layer)),
        cfg.model.init_scale,
        cfg.model.sigma,
    )


def rows_mean(rows: np.ndarray, comm) -> np.ndarray:
    """The mean (n_v,) of all ranks' rows, rows (n, n_v) being this rank's (one
    Allreduce of the column sums and row counts; at the start of a layer or in the
    final evaluation, not per mini-batch)."""
    n_v = rows.shape[1]
    total = comm.allreduce_sum(np.concatenate([rows.sum(axis=0), [len(rows)]]))
    return total[:n_v] / total[n_v]


def preflight(cfg, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Load and check the data and the batch / chain layout for `size` ranks before
    any work; ConfigError (DataError, TrainError) naming the problem."""
    data, held = load_data(cfg)
    check_layout(cfg.training, len(data), size)
    return data, held


# ------------------------------------------------------------------ evaluation


def _exact_ll_possible(rbm: RBM, limit: int) -> bool:
    """Is log Z enumerable within 2^limit terms (binary: the smaller side; gaussian:
    the hidden side)?"""
    side = rbm.n_hidden if rbm.kind == "gaussian" else min(rbm.n_visible, rbm.n_hidden)
    return side <= limit


def history_row(
    rbm: RBM, V: np.ndarray, cfg, layer: int, epoch: int, lr: float, wall: float, comm
) -> dict:
    """One history row of an RBM on all ranks' training rows, V (n, n_v) being this
    rank's shard of them (collective: one Allreduce of the shards' sums, so every rank
    gets the means over all rows). The stochastic pseudo-likelihood (n_v > 100) draws
    its bits per rank (seed, epoch, rank)."""
    n = V.shape[0]
    ll = math.nan
    if _exact_ll_possible(rbm, cfg.evaluation.exact_limit):
        ll = float(np.sum(evaluate.log_prob(rbm, V, evaluate.log_z_exact(rbm))))
    pl = math.nan
    if rbm.kind == "binary":
        rng = (
            None
            if V.shape[1] <= 100
            else np.random.default_rng(
                seed_sequence(cfg.seed, PSEUDO_LIKELIHOOD_KEY, epoch, comm.rank)
            )
        )
        pl = n * evaluate.pseudo_likelihood(rbm, V, rng)
    rec = n * evaluate.reconstruction_error(rbm, V)
    total = comm.allreduce_sum(np.array([rec, pl, ll, n], dtype=np.float64))
    rec, pl, ll = total[:3] / total[3]
    return {
        "layer": layer,
        "epoch": epoch,
        "reconstruction_error": float(rec),
        "pseudo_likelihood": float(pl),
        "log_likelihood": float(ll),
        "learning_rate": lr,
        "wall_time": wall,
    }


def final_evaluation(
    rbm: RBM, cfg, rows: np.ndarray, held: np.ndarray | None, seconds: float, comm
) -> dict:
    """The /evaluation attributes of the bottom RBM (collective): exact log Z when
    enumerable, else AIS (the same runs on every rank, its base rate from the mean of
    all training rows) with its error; the mean log-likelihoods of all training rows
    and all held-out rows from this rank's parts, rows (n, n_v) and held (m, n_v) or
    None, in one Allreduce; KL(data || model) for bars-and-stripes."""
    if _exact_ll_possible(rbm, cfg.evaluation.exact_limit):
        method, log_z, err = "exact", evaluate.log_z_exact(rbm), 0.0
    else:
        res = evaluate.ais_log_z(
            rbm,
            cfg.evaluation.ais_runs,
            cfg.evaluation.ais_steps,
            data_mean=rows_mean(rows, comm),
            seed=seed_sequence(cfg.seed, AIS_KEY),
        )
        method, log_z, err = "ais", res.log_z, res.error
    sums = [
        np.sum(evaluate.log_prob(rbm, X, log_z)) if X is not None and len(X) else 0.0
        for X in (rows, held)
    ]
    total = comm.allreduce_sum(
        np.array([sums[0], len(rows), sums[1], 0 if held is None else len(held)], dtype=float)
    )
    out = {
        "method": method,
        "log_z": log_z,
        "log_z_error": err,
        "log_likelihood": float(total[0] / total[1]),
        "held_out_log_likelihood": (math.nan if held is None else float(total[2] / total[3])),
        "kl": math.nan,
        "train_seconds": seconds,
    }
    if cfg.data.name == "bars_stripes":
        patterns, probs = datasets.bars_and_stripes(cfg.data.size)
        out["kl"] = evaluate.kl_divergence(rbm, patterns, probs, log_z)
    return out


def progress_line(row: dict, epochs: int, n_layers: int) -> str:
    layer = f"layer {int(row['layer'])} " if n_layers > 1 else ""
    ll = row["log_likelihood"]
    return (
        f"train: {layer}epoch {int(row['epoch'])}/{epochs}  recon "
        f"{row['reconstruction_error']:.4f}  pseudo-LL {row['pseudo_likelihood']:.4f}"
        + ("" if math.isnan(ll) else f"  LL {ll:.4f}")
        + f"  lr {row['learning_rate']:.3g}  {row['wall_time']:.1f} s"
    )


# ------------------------------------------------------------------ the run


class Session:
    """A training run on one communicator, new or resumed (resume: the payload of
    ``gio.read_resumable``). stop_after: epochs this launch may train before it stops,
    checkpointed (None: no limit); max_walltime: seconds this launch may run. A stop
    signal (SIGTERM, SIGUSR1, SIGINT) or the wall time stops every rank after the same
    mini-batch, checkpointed, and output.checkpoint_every seconds after the last
    checkpoint every rank checkpoints after the same mini-batch, as a VMC run does
    after a unit of work (``control.Control`` flags in the mini-batch's one Allreduce);
    output.checkpoint_epochs checkpoints at the end of every so many epochs."""

    def __init__(
        self, cfg, comm, data, held, progress=True, stop_after=None, resume=None, max_walltime=None
    ):
        self.cfg, self.comm = cfg, comm
        self.shard = make_shard(data, cfg.training.batch_size, cfg.seed, comm.rank, comm.size)
        # the evaluation is collective too: each rank keeps its part of the held-out rows
        self.held = None if held is None else np.ascontiguousarray(held[comm.rank :: comm.size])
        every = cfg.output.checkpoint_every  # seconds; None: no checkpoints by time
        self.control = Control(comm.rank, math.inf if every is None else every, max_walltime)
        self.progress = progress and comm.rank == 0
        self.stop_after, self.trained = stop_after, 0
        self.n_layers = len(layer_sizes(cfg))
        self.history = {name: [] for name in gio.HISTORY_FIELDS}
        self.attrs = gio.root_attrs(cfg, comm.size)
        self.layers, self.seconds, self.resume = [], 0.0, resume
        self.kept = None  # where the file on disk stands (for a failed write's message)
        if resume is not None:
            self.attrs.update(created=resume["attrs"]["created"])
            self.history = {k: list(v) for k, v in resume["history"].items()}
            self.seconds = float(resume["checkpoint"]["attrs"]["train_seconds"])
            self.kept = _where(resume["checkpoint"]["attrs"])
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return self.seconds + time.perf_counter() - self.t0

    def _resumed_state(self):
        """(start layer, TrainState of it or None) from the resume payload."""
        if self.resume is None:
            return 0, None
        ck = self.resume["checkpoint"]
        layer, tr = int(ck["attrs"]["layer"]), self.cfg.training
        self.layers = self.resume["layers"][:layer]
        from .train import n_streams

        mine = local_slice(n_streams(tr), self.comm.rank, self.comm.size)
        opt = {k[4:]: ck[k] for k in ck if k.startswith("opt_")}
        opt["step"] = int(ck["attrs"]["opt_step"])
        chains = np.ascontiguousarray(ck["chains"][mine]) if tr.method == "pcd" else None
        state = TrainState(
            np.array(ck["theta"], dtype=np.float64),
            opt,
            int(ck["attrs"]["epoch"]),
            np.ascontiguousarray(ck["streams"][mine]),
            chains,
            int(ck["attrs"]["batch"]),
        )
        return layer, state

    def execute(self) -> dict:
        """The whole launch on every rank (collective): train every layer, then the
        final evaluation, which writes the completed file; returns the evaluation.
        Raises StopRequested as :meth:`run` does. The stop signals are caught from
        the start to the end, so one that comes during the final evaluation only
        sets a flag (the evaluation finishes), and the file PVMC_READY_FILE names is
        created once every rank catches them (``control.announce_ready``); after the
        launch the `pvmc` process ignores them (``control.ignore_signals_after_runs``)."""
        self.control.install()
        try:
            announce_ready(self.comm)
            return self.finish(self._train())
        finally:
            self.control.uninstall(run_over=True)

    def run(self) -> list:
        """Train every layer, the stop signals caught meanwhile; returns the RBMs
        (bottom first). Raises StopRequested when the launch's epoch budget, a stop
        signal or the wall time ends it first."""
        self.control.install()
        try:
            return self._train()
        finally:
            self.control.uninstall()

    def _train(self) -> list:
        """Train every layer from where the resume payload (if any) left off."""
        start, state = self._resumed_state()
        shard = replace(self.shard, rows=propagate_up(self.layers, self.shard.rows, start))
        return self._layers(start, state, shard)

    def _layers(self, start, state, shard: Shard) -> list:
        """Train layers start.. on this rank's shard (its rows propagated up)."""
        for layer in range(start, self.n_layers):
            rbm = new_layer(self.cfg, layer, shard.rows.shape[1])
            if state is not None:
                rbm = RBM.from_theta(rbm.kind, state.theta, rbm.n_visible, rbm.n_hidden, rbm.sigma)
            elif self.cfg.model.visible_bias == "data":
                rbm.a[:] = visible_bias_from_mean(rbm.kind, rows_mean(shard.rows, self.comm))
            try:
                state = train(
                    rbm,
                    self.cfg.training,
                    shard,
                    layer_seed(self.cfg.seed, layer),
                    self.comm,
                    state,
                    self._after_epoch(rbm, layer, shard.rows),
                    self.control,
                    partial(self.checkpoint, rbm, layer),  # by the clock
                )
            except Interrupted as exc:
                self.checkpoint(rbm, layer, exc.state, gio.INTERRUPTED)
                raise StopRequested(
                    f"{exc} at layer {layer}, epoch {exc.state.epoch}, mini-batch {exc.state.batch}"
                ) from None
            self.layers.append(self._rbm(rbm, state.theta))
            if layer + 1 < self.n_layers:
                shard = replace(shard, rows=p_hidden(self.layers[layer], shard.rows))
                state = None
        return self.layers

    @staticmethod
    def _rbm(like: RBM, theta) -> RBM:
        return RBM.from_theta(like.kind, theta, like.n_visible, like.n_hidden, like.sigma)

    def _after_epoch(self, like: RBM, layer: int, V: np.ndarray):
        cfg, epochs = self.cfg, self.cfg.training.epochs

        def after(state: TrainState, lr: float) -> None:
            self.trained += 1
            last = state.epoch == epochs
            if state.epoch % cfg.evaluation.every == 0 or last:  # collective
                row = history_row(
                    self._rbm(like, state.theta),
                    V,
                    cfg,
                    layer,
                    state.epoch,
                    lr,
                    self.elapsed(),
                    self.comm,
                )
                for k, v in row.items():
                    self.history[k].append(v)
                if self.progress:
                    print(progress_line(row, epochs, self.n_layers), flush=True)
            every = cfg.output.checkpoint_epochs
            stop = (
                self.stop_after is not None
                and self.trained >= self.stop_after
                and not (last and layer + 1 == self.n_layers)
            )
            if last or stop or (every and state.epoch % every == 0):
                self.checkpoint(like, layer, state, gio.INTERRUPTED if stop else None)
            if stop:
                raise StopRequested(
                    f"stopped after {self.trained} epoch(s) of this "
                    f"launch at layer {layer}, epoch {state.epoch}"
                )

        return after

    def checkpoint(self, like: RBM, layer: int, state: TrainState, status=None) -> None:
        """Gather the state to rank 0 and write the file (collective; WriteFailed on
        every rank if the write fails)."""
        begin = time.perf_counter()
        streams = self.comm.gather_rows(state.streams)
        chains = None if state.chains is None else self.comm.gather_rows(state.chains)
        ck = layers = None
        if self.comm.rank == 0:
            ck = {
                "theta": state.theta,
                "streams": streams,
                "attrs": {
                    "layer": layer,
                    "epoch": state.epoch,
                    "batch": state.batch,
                    "train_seconds": self.elapsed(),
                    "opt_step": int(state.opt["step"]),
                },
            }
            ck.update({f"opt_{k}": v for k, v in state.opt.items() if k != "step"})
            if chains is not None:
                ck["chains"] = chains
            layers = self.layers[:layer] + [self._rbm(like, state.theta)]
        self.write(layers, None, ck, status)
        self.control.checkpoint_written(time.perf_counter() - begin)

    def write(self, layers, evaluation, checkpoint, status=None) -> None:
        """Rank 0 writes the whole file, atomically (the arguments matter on rank 0
        only). Collective: a write that fails (``OSError``: a full disk, an I/O error,
        the file size limit) raises WriteFailed on every rank, the file left as it
        was; nothing else touches HDF5 after it (the file is built in memory)."""
        error = None
        if self.comm.rank == 0:
            attrs = dict(self.attrs, status=status or gio.RUNNING, mpi_size=self.comm.size)
            try:
                gio.write(self.cfg.output.path, attrs, layers, self.history, evaluation, checkpoint)
            except OSError as exc:
                error = one_line(exc)
            else:
                self.kept = gio.COMPLETED if checkpoint is None else _where(checkpoint["attrs"])
        error = self.comm.bcast(error)
        if error is not None:
            raise WriteFailed(error, self.comm.bcast(self.kept))

    def finish(self, layers) -> dict:
        """Every rank: the final evaluation of the bottom RBM (collective); rank 0
        writes the completed file."""
        evaluation = final_evaluation(
            layers[0], self.cfg, self.shard.rows, self.held, self.elapsed(), self.comm
        )
        self.write(layers, evaluation, None, gio.COMPLETED)  # collective
        return evaluation


def _where(attrs: dict) -> str:
    """How far a checkpoint (its attributes) is: 'layer L, epoch E, mini-batch B'."""
    return f"layer {attrs['layer']}, epoch {attrs['epoch']}, mini-batch {attrs['batch']}"


def summary_lines(evaluation: dict) -> list:
    """The end-of-run lines of an evaluation."""
    e = evaluation
    lines = [
        f"train: log Z {e['log_z']:.4f}"
        + (f" +- {e['log_z_error']:.4f} (AIS)" if e["method"] == "ais" else " (exact)"),
        f"train: mean log-likelihood {e['log_likelihood']:.4f} (training rows)",
    ]
    if not math.isnan(e["held_out_log_likelihood"]):
        lines.append(
            f"train: mean log-likelihood {e['held_out_log_likelihood']:.4f} (held-out rows)"
        )
    if not math.isnan(e["kl"]):
        lines.append(f"train: KL(data || model) {e['kl']:.4f} nats")
    lines.append(f"train: training time {e['train_seconds']:.1f} s")
    return lines
