"""Checkpoint files: the whole state needed to continue a run, written atomically.

A run ``RUN.h5`` keeps its live checkpoint in the sibling ``RUN.h5.ckpt`` (the run
file's root attribute ``checkpoint_file`` names it). Each checkpoint is a complete,
small HDF5 file of plain datasets and attributes (no pickle):

    attrs     kind = "pvmc checkpoint", format_version, written (ISO time), and the
              scalar state of the run (phase, counters, step, learning-rate scale, ...)
    datasets  theta, optimizer/<name>, positions (n_chains, M), rng_states
              (n_chains, 4) uint64, ... (whatever the driver hands over)

It is first written to ``RUN.h5.ckpt.tmp``, fsynced, then moved over the previous one
with ``os.replace`` (atomic on POSIX), and the directory is fsynced. A SIGKILL at any
instant therefore leaves either the previous or the new checkpoint, never a torn one.
"""
from __future__ import annotations

import os

import h5py
import numpy as np

KIND = "pvmc checkpoint"
FORMAT_VERSION = 2     # 2: with the observable accumulators (obs_totals)
SUFFIX = ".ckpt"


class CheckpointError(Exception):
    """A checkpoint file that is missing or cannot be read."""


def path_for(run_path: str) -> str:
    """The sibling checkpoint file of a run file."""
    return os.fspath(run_path) + SUFFIX


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:       # some file systems do not support fsync on directories
        pass
    finally:
        os.close(fd)


def write(path: str, attrs: dict, arrays: dict) -> None:
    """Atomically replace the checkpoint at path.

    attrs: name -> scalar or str; arrays: name -> numpy array ('a/b' names make groups).
    """
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as h5:
        h5.attrs["kind"] = KIND
        h5.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            h5.attrs[key] = value
        for key, value in arrays.items():
            h5.create_dataset(key, data=np.asarray(value))
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path)


def read(path: str) -> tuple[dict, dict]:
    """(attrs, arrays) of a checkpoint; arrays keyed by their full path ('a/b')."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    arrays: dict = {}
    try:
        with h5py.File(path, "r", locking=False) as h5:
            if h5.attrs.get("kind") != KIND:
                raise CheckpointError(f"{path!r} is not a pvmc checkpoint")
            attrs = {k: _plain(v) for k, v in h5.attrs.items()}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = obj[()]
            h5.visititems(visit)
    except (OSError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path!r} cannot be read ({exc})") from None
    return attrs, arrays


def remove(path: str) -> None:
    """Delete a checkpoint (and a stale temporary) once the run file holds the final state."""
    for name in (path, path + ".tmp"):
        try:
            os.remove(name)
        except FileNotFoundError:
            pass


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
