"""parallel_vmc: MPI-parallel variational Monte Carlo with an RBM trial wave function."""

import os as _os

from .jit.cache import configure as _configure_jit_cache

__version__ = "0.1.0"

# Before any jitted module is imported: numba's cache keyed by all jitted sources.
_configure_jit_cache(_os.path.dirname(_os.path.abspath(__file__)))
