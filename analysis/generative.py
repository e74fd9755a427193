"""``python -m analysis TRAIN.h5 [--plots DIR] [--json]`` on a ``pvmc train`` file.

A training file is recognised by its ``/model`` group (a, b, W; attrs kind, sigma; see
``parallel_vmc/generative/gio.py``). The report prints the model, the last history row
and the file's ``/evaluation``, with log Z recomputed by enumeration when the model is
small enough (a mismatch with the file is flagged). ``--plots DIR`` writes, each name
prefixed by the file's stem:

    <stem>_learning.png         reconstruction error, pseudo-likelihood and exact
                                log-likelihood per epoch (one line per layer)
    <stem>_filters.png          the columns of W as images (a heat map of W when the
                                visibles are no image)
    <stem>_samples.png          Gibbs samples of the model as images
    <stem>_reconstructions.png  data rows and their reconstructions (image data, when
                                the data can be loaded from the file's config)
    <stem>_density.png          2 Gaussian visibles (and <= 20 hidden): the exact
                                marginal p(v) with MALA and Gibbs samples overlaid

The image shape is the ``/model`` attribute ``image_shape`` if present, else the data
set's (bars-and-stripes n x n, digits 8 x 8), else a square side when n_visible is one.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import h5py
import numpy as np
import yaml

from analysis.runfile import RunFileError

HISTORY_CURVES = (
    ("reconstruction_error", "reconstruction error"),
    ("pseudo_likelihood", "pseudo-log-likelihood / row"),
    ("log_likelihood", "exact log-likelihood / row (nats)"),
)
EXACT_RECHECK = 20  # recompute log Z when 2^this states or fewer
LOG_Z_RTOL = 1e-9  # file vs recomputed log Z: round-off only
N_SHOWN = 16  # filters, samples, reconstructions drawn
N_JUDGED = 1000  # Gibbs samples checked against the bars-and-stripes patterns


@dataclass
class TrainingRun:
    """What the analysis reads from a training file."""

    path: str
    name: str
    rbm: object  # parallel_vmc.generative.model.RBM
    attrs: dict
    config: dict
    history: dict = field(default_factory=dict)  # name -> (n_rows,) array
    evaluation: dict = field(default_factory=dict)
    image_shape: tuple | None = None
    layers: list = field(default_factory=list)  # a DBN's RBMs, bottom (= rbm) first


def is_training_file(path: str) -> bool:
    """A regular HDF5 file with a /model group holding a, b and W. (Only regular files
    are opened: opening a FIFO would block; everything else is left to the run-file
    reader, which reports it.)"""
    try:
        if not os.path.isfile(path) or not h5py.is_hdf5(path):
            return False
        with h5py.File(path, "r", locking=False) as h5:
            return isinstance(h5.get("model"), h5py.Group) and all(
                k in h5["model"] for k in ("a", "b", "W")
            )
    except Exception:  # noqa: BLE001 - missing, not HDF5, damaged: not a training file
        return False


def _plain(value):
    """h5py attribute -> str / float / int / list."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _image_shape(model_attrs: dict, config: dict, n_visible: int) -> tuple | None:
    shape = model_attrs.get("image_shape")
    if shape is not None and int(np.prod(shape)) == n_visible:
        return tuple(int(s) for s in shape)
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    if data.get("name") == "bars_stripes" and data.get("size", 3) ** 2 == n_visible:
        return (data.get("size", 3),) * 2
    side = math.isqrt(n_visible)
    return (side, side) if side * side == n_visible and n_visible > 2 else None


def read_training(path: str) -> TrainingRun:
    """Read a training file (RunFileError naming what is missing or damaged)."""
    from parallel_vmc.generative.gio import read_rbm

    try:
        with h5py.File(path, "r", locking=False) as h5:
            model_attrs = {k: _plain(v) for k, v in h5["model"].attrs.items()}
            layers = [read_rbm(h5["model"])]
            while f"dbn/layer_{len(layers)}" in h5:
                layers.append(read_rbm(h5[f"dbn/layer_{len(layers)}"]))
            rbm = layers[0]
            attrs = {k: _plain(v) for k, v in h5.attrs.items()}
            history = (
                {k: np.asarray(v[()], dtype=float) for k, v in h5["history"].items()}
                if "history" in h5
                else {}
            )
            evaluation = (
                {k: _plain(v) for k, v in h5["evaluation"].attrs.items()}
                if "evaluation" in h5
                else {}
            )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise RunFileError(path, f"not a readable training file ({exc})") from None
    try:
        config = yaml.safe_load(attrs.get("config") or "") or {}
    except yaml.YAMLError:
        config = {}
    config = config if isinstance(config, dict) else {}
    name = os.path.splitext(os.path.basename(path))[0]
    return TrainingRun(
        path,
        name,
        rbm,
        attrs,
        config,
        history,
        evaluation,
        _image_shape(model_attrs, config, rbm.n_visible),
        layers,
    )


# --------------------------------------------------------------------------- the report
def training_report(run: TrainingRun) -> dict:
    """The model, the last history row, the file's evaluation and the recheck."""
    from parallel_vmc.generative import evaluate

    rbm = run.rbm
    report = {
        "file": run.path,
        "kind": rbm.kind,
        "n_visible": rbm.n_visible,
        "n_hidden": rbm.n_hidden,
        "sigma": rbm.sigma,
        "status": run.attrs.get("status"),
        "layers": [r.n_hidden for r in run.layers],
        "data": (run.config.get("data") or {}).get("name"),
        "epochs_recorded": int(len(run.history.get("epoch", []))),
        "last": {k: float(v[-1]) for k, v in run.history.items() if len(v)},
        "evaluation": run.evaluation,
    }
    optimum = optimum_log_likelihood(run.config)
    if optimum is not None:
        report["optimum_log_likelihood"] = optimum
    side = rbm.n_hidden if rbm.kind == "gaussian" else min(rbm.n_visible, rbm.n_hidden)
    if side <= EXACT_RECHECK:
        log_z = evaluate.log_z_exact(rbm)
        stored = run.evaluation.get("log_z")
        report["log_z_recomputed"] = log_z
        if (
            run.evaluation.get("method") == "exact"
            and isinstance(stored, float)
            and abs(stored - log_z) > LOG_Z_RTOL * max(1.0, abs(log_z))
        ):
            report["log_z_mismatch"] = (
                f"the file's exact log Z {stored:.10g} differs from "
                f"the recomputed {log_z:.10g}: /model or "
                "/evaluation changed after the run"
            )
    return report


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else str(v)


EVALUATION_ORDER = (
    "method",
    "log_z",
    "log_z_error",
    "log_likelihood",
    "held_out_log_likelihood",
    "kl",
    "train_seconds",
)
LAST_ORDER = (
    "reconstruction_error",
    "pseudo_likelihood",
    "log_likelihood",
    "learning_rate",
    "wall_time",
)


def _rows(values: dict, order: tuple) -> list:
    """(key, text) in the given order, then any other keys; NaN shown as n/a."""
    keys = [k for k in order if k in values] + sorted(set(values) - set(order))
    return [
        (k, "n/a" if isinstance(values[k], float) and math.isnan(values[k]) else _fmt(values[k]))
        for k in keys
    ]


def format_training_report(r: dict) -> str:
    lines = [
        f"training file {r['file']}  (status {r['status']})",
        f"  model       {r['kind']} RBM, {r['n_visible']} visible x {r['n_hidden']} "
        f"hidden" + (f", sigma {r['sigma']:g}" if r["kind"] == "gaussian" else ""),
        f"  data        {r['data']}   history rows: {r['epochs_recorded']}",
    ]
    if len(r["layers"]) > 1:
        lines.insert(
            2,
            "  deep belief net, hidden sizes bottom up: "
            + " -> ".join(str(n) for n in [r["n_visible"]] + r["layers"]),
        )
    last = dict(r["last"])
    layer = last.pop("layer", 0)
    if "epoch" in last:
        where = f"layer {int(layer)}, " if layer else ""
        lines.append(f"  last history row ({where}epoch {int(last.pop('epoch'))}):")
    lines += [f"    {k:<26s} {v}" for k, v in _rows(last, LAST_ORDER)]
    if r["evaluation"]:
        lines.append("  evaluation (/evaluation):")
        lines += [f"    {k:<26s} {v}" for k, v in _rows(r["evaluation"], EVALUATION_ORDER)]
    if "optimum_log_likelihood" in r:
        lines.append(f"    {'optimum (-ln patterns)':<26s} {r['optimum_log_likelihood']:.6g}")
    if "log_z_recomputed" in r:
        lines.append(f"    {'log_z recomputed (exact)':<26s} {r['log_z_recomputed']:.10g}")
    if "log_z_mismatch" in r:
        lines.append(f"  LOG Z MISMATCH: {r['log_z_mismatch']}")
    return "\n".join(lines)


def optimum_log_likelihood(config: dict) -> float | None:
    """-ln K for bars-and-stripes with each of its K patterns once (the data's own mean
    log-probability, the best any model can reach); None otherwise."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    n = bars_stripes_size(config)
    if n is None or data.get("samples") is not None:
        return None
    return -math.log(2 ** (n + 1) - 2 if n > 1 else 2)


# ------------------------------------------------------------------------------- plots
def _image_grid(rows_of_images: list, shape, titles: list, path: str, weights: bool = False) -> str:
    """One figure, one titled row of tiles per list of images (rows of length
    prod(shape)): grey on [0, 1], or (weights) red-blue on one scale symmetric about 0
    for all tiles, with its colour bar (one scale: the tiles' strengths compare)."""
    from analysis.plots import figure, save

    n = max(len(r) for r in rows_of_images)
    fig = figure(0.9 * n + (1.4 if weights else 0.4), 1.2 * len(rows_of_images) + 0.2)
    subfigs = np.atleast_1d(fig.subfigures(len(rows_of_images), 1))
    top = 1.0
    if weights:
        top = max(max(float(np.abs(np.asarray(r, float)).max()) for r in rows_of_images), 1e-12)
    for sub, images, title in zip(subfigs, rows_of_images, titles):
        sub.suptitle(title, x=0.01, ha="left", fontsize=9)
        axes = np.atleast_1d(sub.subplots(1, n))
        for ax, img in zip(axes, list(images) + [None] * n):
            if img is not None:
                shown = ax.imshow(
                    np.asarray(img, dtype=float).reshape(shape),
                    cmap="RdBu_r" if weights else "gray_r",
                    vmin=-top if weights else 0.0,
                    vmax=top,
                    interpolation="nearest",
                )
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.set_axis_off()
        if weights:
            sub.colorbar(shown, ax=list(axes), label="W_ij", fraction=0.05, pad=0.02)
    return save(fig, path)


def plot_learning(history: dict, path: str, title: str = "", optimum: float | None = None) -> str:
    """The history's curves against the epoch, one line per layer; ``optimum``: the
    best reachable log-likelihood, drawn as a dashed line."""
    from analysis.plots import figure, save

    curves = [
        (k, label)
        for k, label in HISTORY_CURVES
        if k in history and np.any(np.isfinite(history[k]))
    ]
    fig = figure(6.4, 2.0 + 1.6 * max(len(curves), 1))
    axes = np.atleast_1d(fig.subplots(max(len(curves), 1), 1, sharex=True))
    epoch = history.get("epoch", np.arange(len(next(iter(history.values()), []))))
    layer = history.get("layer", np.zeros_like(epoch))
    for ax, (key, label) in zip(axes, curves):
        for L in np.unique(layer):
            sel = layer == L
            ax.plot(
                epoch[sel],
                history[key][sel],
                "o-",
                ms=2.5,
                lw=1,
                label=f"layer {int(L)}" if len(np.unique(layer)) > 1 else None,
            )
        ax.set_ylabel(label, fontsize=8)
        if key == "log_likelihood" and optimum is not None:
            ax.axhline(optimum, color="C3", ls="--", lw=1, label=f"optimum {optimum:.3f}")
            ax.legend(fontsize=7)
        elif len(np.unique(layer)) > 1:
            ax.legend(fontsize=7)
    axes[0].set_title(title or "learning curves")
    axes[-1].set_xlabel("epoch")
    return save(fig, path)


def plot_filters(rbm, shape, path: str) -> str:
    """The columns of W as images; a heat map of W when there is no image shape."""
    if shape is not None:
        cols = rbm.W.T[:N_SHOWN]
        return _image_grid(
            [cols],
            shape,
            [f"filters: columns of W (first {len(cols)}; red > 0 > blue, one scale)"],
            path,
            weights=True,
        )
    from analysis.plots import figure, save

    fig = figure()
    ax = fig.subplots()
    im = ax.imshow(rbm.W, cmap="RdBu_r", aspect="auto", interpolation="nearest")
    fig.colorbar(im, ax=ax, label="W_ij")
    ax.set_xlabel("hidden unit j")
    ax.set_ylabel("visible unit i")
    ax.set_title("weights W_ij")
    return save(fig, path)


def plot_density(rbm, path: str, seed: int = 0) -> str:
    """2 Gaussian visibles: the exact marginal p(v) = exp(-F(v))/Z as an image, with
    MALA and Gibbs samples of the model overlaid."""
    from analysis.plots import figure, save
    from parallel_vmc.generative import evaluate, sampling

    gibbs = sampling.gibbs_chains(rbm, 200, 5, thin=20, burn_in=100, seed=seed)
    mala = sampling.mala(rbm, 200, 5, step=0.8 * rbm.sigma, thin=20, burn_in=100, seed=seed)
    both = np.concatenate([gibbs.reshape(-1, 2), mala.samples.reshape(-1, 2)])
    lo, hi = both.min(axis=0) - rbm.sigma, both.max(axis=0) + rbm.sigma
    x, y = np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200)
    X, Y = np.meshgrid(x, y)
    p = np.exp(evaluate.log_prob(rbm, np.stack([X.ravel(), Y.ravel()], 1))).reshape(X.shape)
    fig = figure(6.0, 5.0)
    ax = fig.subplots()
    im = ax.pcolormesh(X, Y, p, shading="auto", cmap="viridis")
    fig.colorbar(im, ax=ax, label="exact p(v)")
    ax.plot(*gibbs.reshape(-1, 2).T, ".", ms=2, color="w", alpha=0.6, label="Gibbs")
    ax.plot(
        *mala.samples.reshape(-1, 2).T,
        ".",
        ms=2,
        color="C3",
        alpha=0.6,
        label=f"MALA (acceptance {mala.acceptance:.2f})",
    )
    ax.set_xlabel("v_1")
    ax.set_ylabel("v_2")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title("model marginal and samples")
    return save(fig, path)


def bars_stripes_size(config: dict) -> int | None:
    """n of a bars-and-stripes training config (its patterns are n x n); None for
    other data."""
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    if data.get("name") != "bars_stripes":
        return None
    return int(data.get("size", 3))


def valid_patterns(samples, size: int) -> int:
    """How many rows of samples (binary visibles, (n, size^2)) are size x size
    bars-and-stripes patterns."""
    from parallel_vmc.generative.datasets import bars_and_stripes

    patterns = {tuple(p) for p in bars_and_stripes(size)[0].astype(np.int8)}
    rows = np.rint(np.asarray(samples)).astype(np.int8)
    return sum(tuple(r) in patterns for r in rows)


def _data_rows(run: TrainingRun):
    """The training rows, from the file's config (None when they cannot be loaded:
    scikit-learn missing, the IDX file moved, a config from another version)."""
    try:
        from parallel_vmc.generative import config as gconfig
        from parallel_vmc.generative import runner

        data, _ = runner.load_data(gconfig.from_dict(gconfig.upgrade_stored(run.config)))
        return data
    except Exception:  # noqa: BLE001 - reconstructions are optional
        return None


def training_plots(run: TrainingRun, directory: str, seed: int = 0) -> list:
    """The standard figures of a training file into directory; returns their paths."""
    from parallel_vmc.generative import sampling

    stem = os.path.join(directory, run.name)
    rbm, shape, paths = run.rbm, run.image_shape, []
    if run.history and len(run.history.get("epoch", [])):
        paths.append(
            plot_learning(
                run.history, f"{stem}_learning.png", run.name, optimum_log_likelihood(run.config)
            )
        )
    paths.append(plot_filters(rbm, shape, f"{stem}_filters.png"))
    if rbm.kind == "gaussian" and rbm.n_visible == 2 and rbm.n_hidden <= EXACT_RECHECK:
        paths.append(plot_density(rbm, f"{stem}_density.png", seed))  # needs exact log Z
    if shape is None:
        return paths
    size = bars_stripes_size(run.config)
    n_drawn = N_JUDGED if size is not None and rbm.kind == "binary" else N_SHOWN
    drawn = sampling.gibbs_chains(rbm, n_drawn, 1, thin=1, burn_in=1000, seed=seed)[:, 0]
    rows = [drawn[:N_SHOWN]]
    titles = ["Gibbs samples of the bottom RBM (1000 sweeps)"]
    if n_drawn == N_JUDGED:
        valid = valid_patterns(drawn, size)
        titles[0] += (
            f": {valid} of {n_drawn} samples ({100.0 * valid / n_drawn:.3g} %) are "
            f"{size}x{size} bars-and-stripes patterns; the first {N_SHOWN} shown"
        )
    if len(run.layers) > 1:
        from parallel_vmc.generative import dbn
        from parallel_vmc.rng import chain_states

        rows.append(dbn.sample(run.layers, chain_states(seed, 0, N_SHOWN), 1000)[1])
        titles.append("deep belief net, top-down: p(v = 1 | h) (1000 top sweeps)")
    paths.append(_image_grid(rows, shape, titles, f"{stem}_samples.png"))
    data = _data_rows(run)
    if data is not None and data.shape[1] == rbm.n_visible:
        shown = data[:N_SHOWN]
        paths.append(
            _image_grid(
                [shown, sampling.reconstructions(rbm, shown, seed)],
                shape,
                ["data", "reconstructions (one Gibbs sweep)"],
                f"{stem}_reconstructions.png",
            )
        )
    return paths
