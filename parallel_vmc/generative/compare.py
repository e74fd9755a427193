"""Our RBM training against scikit-learn's ``BernoulliRBM`` on the binarised 8x8 digits.

Both sides get the same data split, hidden size, mini-batch size, learning rate and number
of epochs, and do the same algorithm: PCD-1 with as many persistent chains as rows in a
mini-batch, plain SGD (no momentum, no weight decay), weights started at Normal(0, 0.01^2),
hidden biases at 0. Our visible biases start at the training rows' log-odds
(``--visible-bias data``, the default; ``zero`` is scikit-learn's start). (Differences that
remain: scikit-learn visits the rows in one fixed order every epoch and keeps a last partial
mini-batch; ours draws a new order per epoch and drops the partial batch; their chains start
from all-zero hidden states, ours from data rows.) The score is the exact mean
log-likelihood of the held-out rows (log Z by enumerating the 2^n_hidden hidden states),
averaged over ``repeats`` seeds, and the training time of each, measured in the same process
with BLAS limited to one thread, alternating the two sides and taking the medians.

    python -m parallel_vmc.generative.compare [--hidden 16] [--epochs 20] [--json] ...

Needs scikit-learn (``pip install 'parallel_vmc[data]'``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

from ..parallel import SerialComm
from ..rng import params_generator
from . import config as gconfig
from . import datasets, evaluate
from .model import RBM, visible_bias_from_mean
from .train import train

MAX_EXACT_HIDDEN = 20  # exact log Z over 2^20 states x 64 visibles: a few seconds


def from_sklearn(model) -> RBM:
    """Our binary RBM with a fitted BernoulliRBM's parameters: W = components_^T
    (n_v, n_h), a = intercept_visible_, b = intercept_hidden_ (the same energy)."""
    return RBM(
        "binary",
        np.array(model.intercept_visible_, dtype=np.float64),
        np.array(model.intercept_hidden_, dtype=np.float64),
        np.ascontiguousarray(np.asarray(model.components_, dtype=np.float64).T),
    )


def _training_section(hidden, batch_size, learning_rate, epochs, chains, momentum):
    """The training section of a train config doing PCD-1 with SGD."""
    raw = {
        "data": {"name": "digits"},
        "model": {"kind": "binary", "hidden": hidden},
        "training": {
            "method": "pcd",
            "k": 1,
            "chains": chains or batch_size,
            "batch_size": batch_size,
            "epochs": epochs,
            "optimizer": "sgd",
            "learning_rate": learning_rate,
            "momentum": momentum,
            "weight_decay": 0.0,
            "schedule": "constant",
        },
    }
    return gconfig.from_dict(raw).training


def train_ours(
    data,
    hidden,
    batch_size,
    learning_rate,
    epochs,
    seed,
    chains=None,
    momentum=0.0,
    visible_bias="data",
) -> tuple[RBM, float]:
    """Our PCD-1 training on one rank: (trained RBM, seconds); chains None: as many
    persistent chains as rows in a mini-batch (scikit-learn's choice); visible_bias
    "data": start the visible biases at the rows' log-odds, "zero": at 0."""
    tr = _training_section(hidden, batch_size, learning_rate, epochs, chains, momentum)
    rbm = RBM.init("binary", data.shape[1], hidden, params_generator(seed), 0.01)
    if visible_bias == "data":
        rbm.a[:] = visible_bias_from_mean("binary", data.mean(axis=0))
    start = time.perf_counter()
    state = train(rbm, tr, data, seed, SerialComm())
    seconds = time.perf_counter() - start
    return RBM.from_theta("binary", state.theta, data.shape[1], hidden), seconds


def train_sklearn(data, hidden, batch_size, learning_rate, epochs, seed) -> tuple[RBM, float]:
    """scikit-learn's BernoulliRBM fit: (trained RBM in our form, seconds)."""
    from sklearn.neural_network import BernoulliRBM

    model = BernoulliRBM(
        n_components=hidden,
        learning_rate=learning_rate,
        batch_size=batch_size,
        n_iter=epochs,
        random_state=seed,
        verbose=0,
    )
    start = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - start
    return from_sklearn(model), seconds


def _scores(rbm: RBM, train_rows, held_rows) -> dict:
    log_z = evaluate.log_z_exact(rbm)
    return {
        "log_z": log_z,
        "train_log_likelihood": evaluate.log_likelihood(rbm, train_rows, log_z),
        "held_out_log_likelihood": evaluate.log_likelihood(rbm, held_rows, log_z),
    }


def _summary(runs: list) -> dict:
    """Per-repeat scores and times -> lists, means, the standard error of the held-out
    log-likelihood over the seeds, and the median time."""
    out = {k: [r[k] for r in runs] for k in runs[0]}
    held = np.array(out["held_out_log_likelihood"])
    out["held_out_mean"] = float(held.mean())
    out["held_out_error"] = (
        float(held.std(ddof=1) / np.sqrt(len(held))) if len(held) > 1 else float("nan")
    )
    out["median_seconds"] = statistics.median(out["seconds"])
    return out


def compare(
    hidden=16,
    batch_size=10,
    learning_rate=0.05,
    epochs=20,
    repeats=3,
    held_out=0.2,
    threshold=0.5,
    seed=2026,
    chains=None,
    momentum=0.0,
    visible_bias="data",
) -> dict:
    """Train both sides ``repeats`` times, alternating, repeat r with seed + r on both
    sides (initial weights and chains), after one untimed warm-up epoch each (imports,
    numba's cache); the data split is the same throughout (``seed``). Returns the
    settings, each side's per-repeat scores and times with the mean held-out
    log-likelihood, its standard error over the seeds and the median time, and the
    ratio of the median times sklearn / ours. ``chains``, ``momentum`` and
    ``visible_bias`` change our side only (not among the settings the comparison keeps
    equal): None, 0 and "zero" run the same algorithm as scikit-learn."""
    if hidden > MAX_EXACT_HIDDEN:
        raise ValueError(
            f"hidden = {hidden}: the exact log-likelihood needs <= {MAX_EXACT_HIDDEN} hidden units"
        )
    data, _ = datasets.digits(threshold)
    train_rows, held_rows = datasets.split(data, held_out, seed)
    args = (hidden, batch_size, learning_rate)
    sides = {
        "ours": lambda *a: train_ours(
            *a, chains=chains, momentum=momentum, visible_bias=visible_bias
        ),
        "sklearn": train_sklearn,
    }
    runs = {name: [] for name in sides}
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # one core: no multithreaded BLAS
        for fit in sides.values():
            fit(train_rows, *args, 1, seed)
        for r in range(repeats):
            for name, fit in sides.items():
                rbm, seconds = fit(train_rows, *args, epochs, seed + r)
                runs[name].append({**_scores(rbm, train_rows, held_rows), "seconds": seconds})
    result = {
        "settings": {
            "hidden": hidden,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "epochs": epochs,
            "repeats": repeats,
            "held_out": held_out,
            "threshold": threshold,
            "seed": seed,
            "ours_chains": chains or batch_size,
            "ours_momentum": momentum,
            "ours_visible_bias": visible_bias,
            "train_rows": len(train_rows),
            "held_out_rows": len(held_rows),
        }
    }
    for name in sides:
        result[name] = _summary(runs[name])
    result["time_ratio_sklearn_over_ours"] = (
        result["sklearn"]["median_seconds"] / result["ours"]["median_seconds"]
    )
    return result


def environment() -> str:
    """Versions and machine of a comparison, for its printout."""
    import platform
    from importlib.metadata import version

    import numba
    import sklearn

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"python {platform.python_version()}, numpy {np.__version__}, numba "
        f"{numba.__version__}, scikit-learn {sklearn.__version__}, parallel_vmc "
        f"{version('parallel_vmc')}; {cpu}, {os.cpu_count()} cores"
    )


def format_result(r: dict) -> str:
    s = r["settings"]
    lines = [
        environment(),
        f"binarised 8x8 digits: {s['train_rows']} training, {s['held_out_rows']} "
        f"held-out rows; {s['hidden']} hidden, batch {s['batch_size']}, lr "
        f"{s['learning_rate']}, {s['epochs']} epochs, PCD-1 + SGD; one BLAS thread; "
        f"{s['repeats']} seeds",
        f"ours: {s['ours_chains']} persistent chains, momentum {s['ours_momentum']}, "
        f"visible biases start {s['ours_visible_bias']}; sklearn: {s['batch_size']} "
        "chains, no momentum, visible biases start zero",
        f"{'':8s} {'held-out LL (mean +- se)':>25s} {'per seed':>30s} {'median s':>9s}",
    ]
    for name in ("ours", "sklearn"):
        x = r[name]
        per = " ".join(f"{v:.3f}" for v in x["held_out_log_likelihood"])
        lines.append(
            f"{name:8s} {x['held_out_mean']:14.4f} +- {x['held_out_error']:6.4f} "
            f"{per:>30s} {x['median_seconds']:9.3f}"
        )
    lines.append(
        f"time ratio sklearn / ours: {r['time_ratio_sklearn_over_ours']:.2f} "
        "(median times of the alternating repeats)"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m parallel_vmc.generative.compare",
        description="Our RBM vs scikit-learn's BernoulliRBM on the binarised 8x8 digits.",
    )
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--held-out", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--chains",
        type=int,
        default=None,
        help="our persistent chains (default: the batch size, as sklearn)",
    )
    p.add_argument("--momentum", type=float, default=0.0, help="our SGD momentum (0)")
    p.add_argument(
        "--visible-bias",
        choices=("data", "zero"),
        default="data",
        help="our initial visible biases: the data's log-odds (default) or 0",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    a = p.parse_args(argv)
    try:
        r = compare(
            a.hidden,
            a.batch_size,
            a.learning_rate,
            a.epochs,
            a.repeats,
            a.held_out,
            seed=a.seed,
            chains=a.chains,
            momentum=a.momentum,
            visible_bias=a.visible_bias,
        )
    except (datasets.DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(r, indent=2) if a.json else format_result(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
