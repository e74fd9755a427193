"""Where numba keeps its compiled kernels: one directory per version of the jitted code.

numba decides whether a cached function is still valid from the source of the file that
defines it alone. The kernels in ``kernels.py`` inline functions of ``wavefunction.py``,
``system.py``, ``rng.py`` and ``observables.py``; after an edit or an upgrade that
changes one of those but not ``kernels.py``, numba would load a kernel compiled from
the old formulas and the run would silently compute something else. So the cache lives
in a directory named after a hash of all jitted modules: other sources, other
directory, and nothing stale is ever found.

The base directory is the user's ``NUMBA_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/parallel_vmc`` (``~/.cache/parallel_vmc``). Nothing is ever written
into the installed package: a cache folder left in ``site-packages/parallel_vmc`` after
``pip uninstall`` becomes a namespace package that shadows a later editable install.
This must run before the first jitted module is imported (``parallel_vmc/__init__``).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile

JIT_MODULES = ("kernels.py", "observables.py", "rng.py", "system.py", "wavefunction.py")
PREFIX = "pvmc-sources-"


def source_hash(package_dir: str) -> str:
    """Hash of the jitted modules' sources (16 hex digits)."""
    h = hashlib.sha256()
    for name in JIT_MODULES:
        h.update(name.encode())
        with open(os.path.join(package_dir, name), "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()[:16]


def cache_dir(package_dir: str, environ=os.environ) -> str:
    """The numba cache directory for the sources in package_dir."""
    base = environ.get("NUMBA_CACHE_DIR")
    if base:
        base = os.path.abspath(base)
        if os.path.basename(base).startswith(PREFIX):     # inherited from a parent pvmc
            base = os.path.dirname(base)
    else:
        xdg = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".cache")
        base = os.path.join(xdg, "parallel_vmc")
    return os.path.join(base, PREFIX + source_hash(package_dir))


def _usable(path: str) -> bool:
    """Can numba write cache files into path (created if needed)?"""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
            pass
    except OSError:
        return False
    return True


def configure(package_dir: str) -> str:
    """Point numba's cache at :func:`cache_dir` (or, if that cannot be written, a keyed
    directory under the system's temporary directory: numba would otherwise fall back
    to the unkeyed ``__pycache__`` and could load a stale kernel); returns it.

    This sets ``NUMBA_CACHE_DIR`` for the whole process (and its children)."""
    path = cache_dir(package_dir)
    if not _usable(path):
        path = os.path.join(tempfile.gettempdir(), "parallel_vmc",
                            PREFIX + source_hash(package_dir))
        _usable(path)
    os.environ["NUMBA_CACHE_DIR"] = path          # read by numba when it is imported
    if "numba" in sys.modules:                     # already imported: set it directly
        import numba
        numba.config.CACHE_DIR = path
    return path
