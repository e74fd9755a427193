"""Distances between particles of a flat position vector x (P*D,): particle p owns
``x[p*D:(p+1)*D]``. The one home of the pair distance."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def distance(y, i, x, q, D):
    """|y[i:i+D] - x_q|: the distance of a point stored at y[i:i+D] from particle q of
    the flat position vector x (shape (P*D,)). The one home of the pair distance."""
    r2 = 0.0
    for d in range(D):
        t = y[i + d] - x[q * D + d]
        r2 += t * t
    return np.sqrt(r2)


@njit(cache=True, inline="always")
def pair_distance(x, p, q, D):
    """r_pq = |x_p - x_q| for the flat position vector x (shape (P*D,))."""
    return distance(x, p * D, x, q, D)


@njit(cache=True)
def min_pair_distance(x, P, D):
    """min_{p<q} r_pq for x (P*D,) (inf for P < 2); for tests and tools."""
    r = np.inf
    for p in range(P):
        for q in range(p + 1, P):
            r = min(r, pair_distance(x, p, q, D))
    return r
