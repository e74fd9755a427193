"""numba's cache locator for the package's own jitted functions: one directory per
module closure (see ``cache.closure_keys``).

numba finds this class through ``NUMBA_CACHE_LOCATOR_CLASSES``, which ``cache.configure``
sets before numba is imported, and asks it first for every cached function. A
function defined in a key module of this package is cached under
``<base>/pvmc-closure-<its module's closure key>/``; any other function (a test's, a
user's) is left to numba's usual locators, and so to ``NUMBA_CACHE_DIR``, the directory
keyed by every jitted source of the package. A numba without that setting uses the
latter for everything: correct, only more is recompiled after an edit.
"""

from __future__ import annotations

import functools
import os

from numba.core import config
from numba.core.caching import UserProvidedCacheLocator

from . import cache, cache_file

cache_file.install()  # before numba creates the first cache (it imports this module then)

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLOSURE_PREFIX = "pvmc-closure-"


@functools.lru_cache(maxsize=1)
def _keys() -> dict:
    """The closure key of every key module, computed once per process (~15 ms)."""
    return cache.closure_keys(PACKAGE_DIR)


def closure_dir(py_file: str) -> str | None:
    """The cache directory of functions defined in py_file, or None for a file that is
    not a key module of the package."""
    rel = os.path.relpath(os.path.abspath(py_file), PACKAGE_DIR).replace(os.sep, "/")
    key = _keys().get(rel)
    if key is None or not config.CACHE_DIR:
        return None
    base = os.path.dirname(os.path.abspath(config.CACHE_DIR))  # CACHE_DIR: the keyed one
    return os.path.join(base, CLOSURE_PREFIX + key)


class ClosureCacheLocator(UserProvidedCacheLocator):
    """numba's locator for a user-provided cache directory, with the directory of the
    function's module closure in place of ``NUMBA_CACHE_DIR``."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(
            closure_dir(py_file), self.get_suitable_cache_subpath(py_file)
        )

    @classmethod
    def from_function(cls, py_func, py_file):
        if closure_dir(py_file) is None:
            return None
        return super().from_function(py_func, py_file)
