"""The Coulomb interaction ``sum_{p<q} 1/r_pq`` (units hbar = m = e = 1)."""

from __future__ import annotations

import numpy as np
from numba import njit

from .geometry import pair_distance


# forceinline: one copy of code that reorders its sums (see jit/inline.py)
@njit(cache=True, fastmath={"reassoc", "contract"}, forceinline=True)
def coulomb_potential(x, P, D):
    """sum_{p<q} 1/r_pq for x of shape (P*D,). The sum may be reordered (and
    vectorised); one pair's energy is exact as before."""
    v = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            v += 1.0 / pair_distance(x, p, q, D)
    return v


@njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy", forceinline=True)
def coulomb_from_table(table, offset, P):
    """sum_{p<q} 1/r_pq from a table of the current pair distances, r_pq at
    table[offset + p P + q] (the pair part's cache): the kernel's Coulomb energy where
    the table is kept anyway, with no square roots. The same sum as
    ``coulomb_potential``, reordered (and vectorised) as that one may be; unsigned
    indices, as the part's own loops (``jit/unsigned.py``)."""
    v = 0.0
    for p in range(P):
        row = offset + p * P
        for q in range(p + 1, P):
            v += 1.0 / table[np.uint64(row + q)]
    return v
