"""Hard spheres of radius a: ``V = inf`` for ``r <= a``, else 0. The term has no
energy: a move into an overlap is rejected, an initial position redrawn."""

from __future__ import annotations

from numba import njit

from .geometry import distance


@njit(cache=True, inline="always")
def overlaps(y, i, x, p, a, P, D):
    """True if the point y[i:i+D] (a position of particle p) lies within a hard core of
    any other particle of x (P*D,): r <= a, where V = inf. The one home of the hard-core
    test: a move to such a point is rejected, an initial position redrawn."""
    for q in range(P):
        if q != p and distance(y, i, x, q, D) <= a:
            return True
    return False
