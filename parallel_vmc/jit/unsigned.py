"""Unsigned cache indices for the parts' hot loops."""

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def u(i):
    """An array index as unsigned: numba then skips its wrap-around of negative
    indices, a compare and select per access that also kept LLVM from vectorising the
    loops of a move (the parts' caches are flat arrays with computed offsets)."""
    return np.uint64(i)
