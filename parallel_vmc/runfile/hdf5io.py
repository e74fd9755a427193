"""HDF5 helpers shared by the run file and the checkpoints: checksummed datasets, the
lock that says a file is being written, and one-line error text.

Checksums. Samples, parameters and checkpoint arrays are chunked datasets with HDF5's
Fletcher32 filter: a damaged chunk fails to read with an error that names the dataset,
instead of returning wrong numbers. With a filter, HDF5 writes every chunk (with its
fill value and checksum) when the storage is allocated, so preallocated datasets cost
one write of their size at creation; in exchange the disk space is really reserved.

Locking. A file that a run writes is held with an exclusive ``flock`` by HDF5 itself
(h5py opens for writing with locking on). :func:`exclusive` takes the same lock on an
existing file, so a second process cannot replace, truncate or delete a file that a
live run holds. On file systems without ``flock`` (some parallel file systems) the
lock is skipped, as HDF5's own "best-effort" locking does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os

import h5py
import numpy as np

CHUNK_BYTES_MAX = 2**31  # HDF5 refuses chunks of 4 GiB and more; stay well below
_NO_LOCKS = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


class FileInUse(Exception):
    """The file is held (locked) by another process: a run that is still going."""


@contextlib.contextmanager
def exclusive(path: str):
    """Hold an exclusive lock on ``path`` (if it exists) for the ``with`` block.

    Raises FileInUse if another process holds it (a live run, or a reader with
    locking on). Nothing is modified.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FileInUse(
                f"{path} is in use by another process (a run that is still "
                "going holds it); wait for it to end or stop it first"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                raise
        yield
    finally:
        os.close(fd)


def in_use(path: str) -> bool:
    """Is ``path`` held by another process right now?"""
    try:
        with exclusive(path):
            return False
    except FileInUse:
        return True


def one_line(text: str, limit: int = 400) -> str:
    """``text`` with all whitespace runs (newlines of HDF5 error stacks) made single
    spaces, cut to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _dcpl(shape: tuple, chunks: tuple, fill) -> h5py.h5p.PropDCID:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_fletcher32()
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    if fill is not None:
        dcpl.set_fill_value(np.asarray(fill))
    return dcpl


def preallocated(group, name: str, shape: tuple, dtype, chunks: tuple, fill=np.nan):
    """A chunked, Fletcher32-checksummed dataset whose storage is allocated (and
    filled) now, so that later writes never change the file's structure.

    Writes that cover whole chunks never read the chunk back; partial writes read it
    (its checksum is valid from the fill)."""
    dtype = np.dtype(dtype)
    chunks = tuple(max(1, min(c, s)) for c, s in zip(chunks, shape))
    space = h5py.h5s.create_simple(tuple(shape))
    tid = h5py.h5t.py_create(dtype)
    fill = None if fill is None else np.asarray(fill, dtype=dtype)
    h5py.h5d.create(group.id, name.encode(), tid, space, dcpl=_dcpl(shape, chunks, fill))
    return group[name]


def write_array(group, name: str, value) -> None:
    """Store one array with a checksum: chunked (as few chunks as fit the size limit)
    and Fletcher32. 0-d values become shape (1,) with attribute ``scalar``; empty
    arrays are stored plain."""
    value = np.asarray(value)
    scalar = value.ndim == 0
    if scalar:
        value = value.reshape(1)
    if value.dtype.kind in "OU":
        value = value.astype("S")
    if value.size == 0:  # nothing to checksum (and HDF5 cannot chunk it)
        group.create_dataset(name, data=value)
        return
    chunks = list(value.shape)
    while int(np.prod(chunks)) * value.dtype.itemsize > CHUNK_BYTES_MAX:
        k = int(np.argmax(chunks))
        chunks[k] = max(1, chunks[k] // 2)
    ds = group.create_dataset(name, data=value, chunks=tuple(chunks), fletcher32=True)
    if scalar:
        ds.attrs["scalar"] = True


def read_array(ds) -> np.ndarray:
    """The value stored by :func:`write_array` (0-d again where it was)."""
    value = ds[()]
    if ds.attrs.get("scalar", False):
        value = np.asarray(value).reshape(())
    return value
