"""Checkpoint files: the whole state needed to continue a run, written atomically.

A run ``RUN.h5`` keeps its live checkpoint in the sibling ``RUN.h5.ckpt`` (the run
file's root attribute ``checkpoint_file`` names it). Each checkpoint is a complete,
small HDF5 file of plain datasets and attributes (no pickle):

    attrs     kind = "pvmc checkpoint", format_version, written (ISO time), and the
              scalar state of the run (phase, counters, step, learning-rate scale, ...)
    datasets  theta, optimizer/<name>, positions (n_chains, M), rng_states
              (n_chains, 4) uint64, ... (whatever the driver hands over)

It is written by the one atomic writer of ``hdf5io`` (``RUN.h5.ckpt.tmp``, fsynced);
the previous checkpoint then becomes ``RUN.h5.ckpt.prev`` (a hard link) and the new one
takes its place (each an ``os.replace``, atomic on POSIX), and the directory is
fsynced. A SIGKILL at any instant therefore leaves a complete checkpoint, never only a
torn one.

Every dataset carries a Fletcher32 checksum and the file is written in the HDF5 1.10
format, whose object headers (the attributes) carry checksums too, so a damaged
checkpoint is reported (:class:`CheckpointError` naming the dataset), never resumed
from. :func:`read_latest` then falls back to the previous checkpoint.
"""

from __future__ import annotations

import os

import h5py
import numpy as np

from .hdf5io import (
    TMP_SUFFIX,
    image,
    one_line,
    read_array,
    remove_quietly,
    write_array,
    write_atomically,
)

KIND = "pvmc checkpoint"
FORMAT_VERSION = 3  # 2: with the observable accumulators (obs_totals); 3: checksums
READS = (2, 3)  # format 2 reads the same (no checksums, 0-d arrays as they are)
SUFFIX = ".ckpt"
PREVIOUS = ".prev"  # the checkpoint before the live one


class CheckpointError(Exception):
    """A checkpoint file that is missing or cannot be read."""


def path_for(run_path: str) -> str:
    """The sibling checkpoint file of a run file."""
    return os.fspath(run_path) + SUFFIX


def write(path: str, attrs: dict, arrays: dict) -> None:
    """Atomically replace the checkpoint at path.

    attrs: name -> scalar or str; arrays: name -> numpy array ('a/b' names make groups).
    The file is built in memory and written by ``hdf5io.write_atomically`` (a full
    disk is an ordinary OSError, the torn temporary is removed); the replaced one
    becomes the previous checkpoint.
    """

    def fill(h5) -> None:
        h5.attrs["kind"] = KIND
        h5.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            h5.attrs[key] = value
        for key, value in arrays.items():
            write_array(h5, key, value)

    write_atomically(path, image(fill), previous=path + PREVIOUS)


def read(path: str) -> tuple[dict, dict]:
    """(attrs, arrays) of a checkpoint; arrays keyed by their full path ('a/b').

    Raises CheckpointError naming the file and, for a failed checksum, the dataset."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    arrays: dict = {}
    where = "the file's header"
    try:
        with h5py.File(path, "r", locking=False) as h5:
            where = "its attributes"
            if h5.attrs.get("kind") != KIND:
                raise CheckpointError(f"{path!r} is not a pvmc checkpoint")
            attrs = {k: plain(v) for k, v in h5.attrs.items()}
            for name in dataset_names(h5):
                where = f"dataset {name}"
                arrays[name] = read_array(h5[name])
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds on damaged files
        raise CheckpointError(
            f"checkpoint {path!r} is damaged: {where} cannot be read ({one_line(exc, 200)})"
        ) from None
    return attrs, arrays


def dataset_names(group) -> list:
    """The paths of every dataset under an HDF5 group ('a/b'), as a checkpoint's
    arrays are keyed (a checkpoint file, or the final state in a run file)."""
    names = []

    def visit(name, obj) -> None:
        if isinstance(obj, h5py.Dataset):
            names.append(name)

    group.visititems(visit)
    return names


def read_latest(path: str) -> tuple[dict, dict, str | None]:
    """The newest readable checkpoint: (attrs, arrays, note). note says why the live one
    was passed over for the previous one (None if the live one was read).

    Raises the live checkpoint's CheckpointError if neither can be read."""
    try:
        return (*read(path), None)
    except CheckpointError as live:
        try:
            attrs, arrays = read(path + PREVIOUS)
        except CheckpointError:
            raise live from None
        return (
            attrs,
            arrays,
            (
                f"{live}; using the previous checkpoint "
                f"{path + PREVIOUS!r} written {attrs.get('written')}"
            ),
        )


def siblings(path: str) -> tuple:
    """Every file a checkpoint at path may have beside it."""
    return (path, path + PREVIOUS, path + TMP_SUFFIX)


def remove(path: str) -> None:
    """Delete a checkpoint, its predecessor and a stale temporary (the run file holds
    the final state, or a new run replaces the old one)."""
    for name in siblings(path) + (path + PREVIOUS + TMP_SUFFIX,):
        remove_quietly(name)


def plain(value):
    """An HDF5 attribute as a Python value (text decoded, numpy scalars unwrapped)."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
