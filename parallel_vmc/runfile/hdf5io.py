"""HDF5 helpers shared by every file the program writes (the run file, the checkpoints,
the training file): checksummed datasets, the one atomic writer of whole files, the
provenance attributes, the lock that says a file is being written, and one-line error
text.

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

Atomic files. A file written whole (a checkpoint, the training file) is built in
memory (:func:`image`), written to the sibling ``PATH.tmp`` with plain system calls and
fsynced, then renamed over ``PATH`` and the directory fsynced (:func:`write_atomically`).
A kill at any instant leaves the previous complete file or the new one; a failure
(a full disk, an error while building) removes the temporary and leaves the previous
file as it was. Building in memory keeps HDF5's own error path on a failed write
(which can crash the process) out of the way, and the HDF5 1.10 format of such files
(``LIBVER``) checksums the object headers (the attributes) too.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import fcntl
import io
import os
import socket

import h5py
import numpy as np

CHUNK_BYTES_MAX = 2**31  # HDF5 refuses chunks of 4 GiB and more; stay well below
_NO_LOCKS = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}
LIBVER = ("v110", "latest")  # atomic files: checksummed object headers; closed when done
TMP_SUFFIX = ".tmp"  # the temporary sibling of an atomic file while it is written


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


# ------------------------------------------------------------------ provenance
def now_iso() -> str:
    """The local time now, ISO 8601 with its UTC offset, to the second."""
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def provenance() -> dict:
    """The root attributes saying when, where and by what a file was written: created,
    hostname and the versions of this package, numba, numpy and mpi4py."""
    import numba

    from .. import __version__
    from ..parallel import mpi4py_version

    return {
        "created": now_iso(),
        "hostname": socket.gethostname(),
        "package_version": __version__,
        "numba_version": numba.__version__,
        "numpy_version": np.__version__,
        "mpi4py_version": mpi4py_version(),
    }


# ------------------------------------------------------------------ atomic files
def image(fill, libver=LIBVER) -> bytes:
    """The bytes of an HDF5 file that ``fill(h5)`` builds in memory."""
    buffer = io.BytesIO()
    with h5py.File(buffer, "w", libver=libver) as h5:
        fill(h5)
    return buffer.getvalue()


def edited_image(path: str, edit) -> bytes:
    """The bytes of the HDF5 file at path after ``edit(h5)`` on a copy in memory (the
    file itself is not touched)."""
    with open(path, "rb") as fh:
        buffer = io.BytesIO(fh.read())
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    return buffer.getvalue()


def write_atomically(path: str, data: bytes, previous: str | None = None) -> None:
    """Replace the file at path by one holding data (see "Atomic files" above). previous:
    where the replaced file is kept (:func:`keep_previous`), or None. On any failure the
    temporary is removed and path keeps its previous content."""
    tmp = path + TMP_SUFFIX
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if previous is not None:
            keep_previous(path, previous)
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise
    fsync_dir(path)


def keep_previous(path: str, previous: str) -> None:
    """Make the file at path (if any) also the file at previous; by a hard link where
    the file system has them, so that path never disappears, not even for an instant."""
    if not os.path.exists(path):
        return
    link = previous + TMP_SUFFIX
    try:
        remove_quietly(link)
        os.link(path, link)
        os.replace(link, previous)
    except OSError:
        os.replace(path, previous)


def fsync_dir(path: str) -> None:
    """Flush the directory entry of path (its rename) to disk, where that is possible."""
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


def remove_quietly(path: str) -> None:
    """Delete path if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
