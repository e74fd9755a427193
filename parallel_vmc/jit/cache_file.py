"""numba's on-disk cache made safe for processes that compile at the same time.

numba keeps one index per cached function (signature -> data file) and names a new
data file by the first number the index it read does not use. Two processes that
compile two signatures of one function at the same time (two workers of a test run,
two jobs of an array starting with an empty cache) both read the same index, pick the
same number and write their code to the same file: the index that survives can point
one signature at the other's machine code. With signatures of the same calling
convention (the RBM's operations for a literal D and for any D) the wrong code runs
silently: the last bits of a run changed, seen with two test workers.

:class:`KeyedCacheFile` names each data file by a hash of its key, so a file only ever
holds its own signature's code (two writers of one key write the same thing, each
through numba's temporary file and rename), writes the data before the index entry
that points at it, and updates the index under a lock on a file beside it (where the
file system has no locks, a lost entry only means one more compile later).
:func:`install` puts it in place of numba's class; ``locator.py`` calls it, so it is
active wherever the package's cache locator is.
"""

from __future__ import annotations

import contextlib
import hashlib
import pickle

from numba.core import caching

_Base = caching.IndexDataCacheFile
# what the subclass relies on; a numba without them keeps its own class
_NEEDED = ("_load_index", "_save_index", "_save_data", "_data_name", "_data_path")


@contextlib.contextmanager
def _locked(path: str):
    """An exclusive lock on path (created if needed) for the block; none if the file
    system refuses it."""
    try:
        import fcntl

        f = open(path, "ab")
    except (ImportError, OSError):  # no fcntl (Windows) or a read-only directory
        yield
        return
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX)
        except OSError:  # e.g. NFS without a lock daemon
            pass
        yield  # the lock goes with the file's closing


class KeyedCacheFile(_Base):
    """numba's index and data files, with a data file per key (see the module)."""

    def _keyed_name(self, key) -> str:
        """The data file of key: the function's base name and 20 hex digits of the
        pickled key (signature, target, bytecode hash)."""
        digest = hashlib.sha256(pickle.dumps(key, protocol=4)).hexdigest()[:20]
        stem = self._data_name(0)[: -len(".0.nbc")]  # numba's '<base>.<number>.nbc'
        return f"{stem}.{digest}.nbc"

    def save(self, key, data):
        name = self._keyed_name(key)
        self._save_data(name, data)  # first: an index entry never points at nothing
        with _locked(self._index_path + ".lock"):
            overloads = self._load_index()  # read again under the lock
            if overloads.get(key) != name:
                overloads[key] = name
                self._save_index(overloads)


def install() -> bool:
    """Make numba create :class:`KeyedCacheFile` for every cache from now on (its
    ``Cache`` looks the class up when a function's cache is created). Returns whether
    it is installed."""
    if caching.IndexDataCacheFile is KeyedCacheFile:
        return True
    if not all(hasattr(_Base, name) for name in _NEEDED):
        return False
    caching.IndexDataCacheFile = KeyedCacheFile
    return True
