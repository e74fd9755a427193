"""Checkpoint files: the whole state needed to continue a run, written atomically.

A run ``RUN.h5`` keeps its live checkpoint in the sibling ``RUN.h5.ckpt`` (the run
file's root attribute ``checkpoint_file`` names it). Each checkpoint is a complete,
small HDF5 file of plain datasets and attributes (no pickle):

    attrs     kind = "pvmc checkpoint", format_version, written (ISO time), and the
              scalar state of the run (phase, counters, step, learning-rate scale, ...)
    datasets  theta, optimizer/<name>, positions (n_chains, M), rng_states
              (n_chains, 4) uint64, ... (whatever the driver hands over)

It is first written to ``RUN.h5.ckpt.tmp`` and fsynced; the previous checkpoint then
becomes ``RUN.h5.ckpt.prev`` (a hard link) and the new one takes its place (each an
``os.replace``, atomic on POSIX), and the directory is fsynced. A SIGKILL at any instant therefore
leaves a complete checkpoint, never only a torn one.

Every dataset carries a Fletcher32 checksum and the file is written in the HDF5 1.10
format, whose object headers (the attributes) carry checksums too, so a damaged
checkpoint is reported (:class:`CheckpointError` naming the dataset), never resumed
from. :func:`read_latest` then falls back to the previous checkpoint.
"""

from __future__ import annotations

import io
import os

import h5py
import numpy as np

from .hdf5io import one_line, read_array, write_array

KIND = "pvmc checkpoint"
FORMAT_VERSION = 3  # 2: with the observable accumulators (obs_totals); 3: checksums
READS = (2, 3)  # format 2 reads the same (no checksums, 0-d arrays as they are)
SUFFIX = ".ckpt"
PREVIOUS = ".prev"  # the checkpoint before the live one
LIBVER = ("v110", "latest")  # checksummed object headers; files are closed when done


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
    except OSError:  # some file systems do not support fsync on directories
        pass
    finally:
        os.close(fd)


def write(path: str, attrs: dict, arrays: dict) -> None:
    """Atomically replace the checkpoint at path.

    attrs: name -> scalar or str; arrays: name -> numpy array ('a/b' names make groups).
    The file is built in memory and written with plain system calls: a full disk is
    then an ordinary OSError (HDF5's own error path on a failed write can crash the
    process), and the torn temporary is removed.
    """
    image = _image(attrs, arrays)
    tmp = path + ".tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(image)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        _remove(tmp)
        raise
    _keep_previous(path)
    os.replace(tmp, path)
    _fsync_dir(path)


def _image(attrs: dict, arrays: dict) -> bytes:
    """The bytes of a checkpoint file holding attrs and arrays."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=LIBVER) as h5:
        h5.attrs["kind"] = KIND
        h5.attrs["format_version"] = FORMAT_VERSION
        for key, value in attrs.items():
            h5.attrs[key] = value
        for key, value in arrays.items():
            write_array(h5, key, value)
    return buffer.getvalue()


def _keep_previous(path: str) -> None:
    """Make the live checkpoint the previous one; by a hard link where the file system
    has them, so that the live name never disappears, not even for an instant."""
    if not os.path.exists(path):
        return
    link = path + PREVIOUS + ".tmp"
    try:
        _remove(link)
        os.link(path, link)
        os.replace(link, path + PREVIOUS)
    except OSError:
        os.replace(path, path + PREVIOUS)


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
            attrs = {k: _plain(v) for k, v in h5.attrs.items()}
            names = []
            h5.visititems(
                lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None
            )
            for name in names:
                where = f"dataset {name}"
                arrays[name] = read_array(h5[name])
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds on damaged files
        raise CheckpointError(
            f"checkpoint {path!r} is damaged: {where} cannot be read ({one_line(exc, 200)})"
        ) from None
    return attrs, arrays


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


def _remove(name: str) -> None:
    try:
        os.remove(name)
    except FileNotFoundError:
        pass


def siblings(path: str) -> tuple:
    """Every file a checkpoint at path may have beside it."""
    return (path, path + PREVIOUS, path + ".tmp")


def remove(path: str) -> None:
    """Delete a checkpoint, its predecessor and a stale temporary (the run file holds
    the final state, or a new run replaces the old one)."""
    for name in siblings(path) + (path + PREVIOUS + ".tmp",):
        _remove(name)


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
