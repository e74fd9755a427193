"""The HDF5 file of ``pvmc train``: model, history, evaluation and checkpoint.

Layout (names below are the contract with ``analysis``)::

    /               attrs: run_type "train", format_version, config (resolved YAML),
                    mpi_size, seed, status ("running" | "interrupted" | "completed" |
                    "failed: ..."), and the provenance every file of the program
                    has (``hdf5io.provenance``): created, hostname, package_version,
                    numba/numpy/mpi4py versions
    /model          a (n_v,), b (n_h,), W (n_v, n_h); attrs kind, sigma  (the RBM on
                    the data: the bottom layer of a deep belief net)
    /dbn/layer_L    a, b, W; attrs kind, sigma (L = 1, 2, ...: the stacked layers)
    /history        one row per evaluation: layer, epoch, reconstruction_error,
                    pseudo_likelihood, log_likelihood (NaN unless enumerable),
                    learning_rate, wall_time
    /evaluation     attrs: method ("exact" | "ais" | "none"), log_z, log_z_error,
                    log_likelihood (training rows), held_out_log_likelihood, kl
                    (bars_stripes: KL(data || model)), train_seconds
    /checkpoint     the training state after a mini-batch: theta, optimizer arrays
                    (opt_velocity | opt_m, opt_v), streams, chains (all ranks, in chain
                    order); attrs layer, epoch, batch (mini-batches done of that
                    epoch), opt_step, train_seconds

The file is small, so rank 0 writes it whole each time (model, history, checkpoint)
with the checkpoints' atomic writer (``hdf5io.write_atomically``: built in memory,
written to ``PATH.tmp``, renamed over the old file): a kill at any moment leaves either
the previous complete file or the new one, never a half-written one, and a failed write
leaves the previous file as it was. Files written before that (HDF5's default format,
no mpi4py_version; the same layout and format_version) read the same.
"""

from __future__ import annotations

import h5py
import numpy as np

from ..runfile.hdf5io import (
    edited_image,
    image,
    provenance,
    read_array,
    write_array,
    write_atomically,
)

RUN_TYPE = "train"
FORMAT_VERSION = 1
HISTORY_FIELDS = (
    "layer",
    "epoch",
    "reconstruction_error",
    "pseudo_likelihood",
    "log_likelihood",
    "learning_rate",
    "wall_time",
)
EVALUATION_ATTRS = (
    "method",
    "log_z",
    "log_z_error",
    "log_likelihood",
    "held_out_log_likelihood",
    "kl",
    "train_seconds",
)
RUNNING, COMPLETED, INTERRUPTED = "running", "completed", "interrupted"


class TrainFileError(ValueError):
    """A training file that cannot be resumed (message says why)."""


def is_training_file(path: str) -> bool:
    """Is path an HDF5 file written by ``pvmc train``?"""
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return str(h5.attrs.get("run_type", "")) == RUN_TYPE
    except Exception:  # noqa: BLE001 - not HDF5, missing, damaged: not ours
        return False


def _write_rbm(group, rbm) -> None:
    for name in ("a", "b", "W"):
        write_array(group, name, getattr(rbm, name))
    group.attrs["kind"] = rbm.kind
    group.attrs["sigma"] = float(rbm.sigma)


def read_rbm(group):
    """The RBM stored in a /model or /dbn/layer_L group."""
    from .model import RBM

    return RBM(
        str(group.attrs["kind"]),
        read_array(group["a"]),
        read_array(group["b"]),
        read_array(group["W"]),
        float(group.attrs["sigma"]),
    )


def root_attrs(cfg, mpi_size: int) -> dict:
    """The root attributes of a new training file (with the run file's provenance)."""
    return {
        "run_type": RUN_TYPE,
        "format_version": FORMAT_VERSION,
        **provenance(),
        "config": cfg.to_yaml(),
        "mpi_size": mpi_size,
        "seed": cfg.seed,
        "status": RUNNING,
    }


def write(
    path: str,
    attrs: dict,
    layers: list,
    history: dict,
    evaluation: dict | None,
    checkpoint: dict | None,
) -> None:
    """Write the whole file atomically (``hdf5io.write_atomically``). layers: the RBMs
    done or in training, bottom first; history: field -> list; checkpoint: arrays and
    attrs (``attrs`` key) of the state, or None."""

    def fill(h5) -> None:
        h5.attrs.update(attrs)
        for k, rbm in enumerate(layers):
            _write_rbm(h5.create_group("model" if k == 0 else f"dbn/layer_{k}"), rbm)
        hist = h5.create_group("history")
        for name in HISTORY_FIELDS:
            hist.create_dataset(name, data=np.asarray(history.get(name, []), dtype=np.float64))
        if evaluation is not None:
            h5.create_group("evaluation").attrs.update(evaluation)
        if checkpoint is not None:
            group = h5.create_group("checkpoint")
            group.attrs.update(checkpoint["attrs"])
            for name, value in checkpoint.items():
                if name != "attrs":
                    write_array(group, name, value)

    write_atomically(path, image(fill))


def mark_failed(path: str, reason: str) -> None:
    """Record a failure in the status of an existing training file, atomically like
    every write of it (best effort: the run is failing already)."""

    def edit(h5) -> None:
        h5.attrs["status"] = f"failed: {' '.join(reason.split())[:300]}"

    try:
        write_atomically(path, edited_image(path, edit))
    except Exception:  # noqa: BLE001 - nothing more can be done
        pass


def read_root(path: str) -> dict:
    """The root attributes of the training file at path; TrainFileError naming what is
    wrong when it is not one (not HDF5, damaged, another kind of file)."""
    try:
        with h5py.File(path, "r", locking=False) as h5:
            attrs = dict(h5.attrs)
    except Exception as exc:  # noqa: BLE001 - any damage: one message
        raise TrainFileError(
            f"{path}: not a readable HDF5 file ({' '.join(str(exc).split())[:200]})"
        ) from None
    if str(attrs.get("run_type", "")) != RUN_TYPE or "config" not in attrs:
        raise TrainFileError(f"{path} exists and is not a training file of pvmc train")
    return attrs


def read_resumable(path: str) -> dict | str:
    """What ``pvmc resume`` needs from a training file: {config (text), attrs, layers
    (finished RBMs), history, checkpoint}, or COMPLETED for a completed training;
    TrainFileError naming what is wrong."""
    try:
        with h5py.File(path, "r", locking=False) as h5:
            attrs = dict(h5.attrs)
            status = str(attrs.get("status", ""))
            if status == COMPLETED:
                return COMPLETED
            if "checkpoint" not in h5:
                raise TrainFileError(
                    f"{path}: no checkpoint in the file (stopped before "
                    "its first one); start it again with pvmc train "
                    "CONFIG --overwrite"
                )
            layers = [read_rbm(h5["model"])] + [
                read_rbm(h5[f"dbn/layer_{k}"]) for k in range(1, 1 + len(h5.get("dbn", {})))
            ]
            history = {name: list(h5["history"][name][()]) for name in HISTORY_FIELDS}
            group = h5["checkpoint"]
            checkpoint = {name: read_array(group[name]) for name in group}
            checkpoint["attrs"] = dict(group.attrs)
    except TrainFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage: one message
        raise TrainFileError(
            f"{path}: not a readable training file ({' '.join(str(exc).split())[:200]})"
        ) from None
    return {
        "config": str(attrs["config"]),
        "attrs": attrs,
        "layers": layers,
        "history": history,
        "checkpoint": checkpoint,
    }
