"""Even walker counts across ranks after a comb.

Every rank knows every rank's count after the comb (from the Allreduced weight totals
and the common comb offset), so all compute the same plan without a message: the
global population is kept in its order (rank 0's walkers first) and cut anew into
consecutive pieces whose sizes differ by at most one walker (the first N mod size ranks
hold one more). A rank then sends the walkers of its old piece that fall into another
rank's new piece, in one message per neighbour, and receives likewise. The order, and
so every walker's slot in the global population, does not depend on how it is cut.
"""

from __future__ import annotations

import numpy as np


def even_counts(total: int, size: int) -> np.ndarray:
    """(size,) counts summing to total, differing by at most one, larger first."""
    return np.array([total // size + (1 if r < total % size else 0) for r in range(size)])


def plan(counts, rank: int) -> tuple[list, list]:
    """(sends, receives) of ``rank`` that turn the per-rank counts (size,) into
    ``even_counts``: sends [(destination, first, end)] in this rank's local indices,
    receives [(source, how many)] in the order their walkers come in the global order
    (this rank's kept walkers sit among them in that order too)."""
    counts = np.asarray(counts, dtype=np.int64)
    old = np.concatenate([[0], np.cumsum(counts)])
    new = np.concatenate([[0], np.cumsum(even_counts(int(old[-1]), counts.size))])
    sends, receives = [], []
    for other in range(counts.size):
        lo, hi = max(old[rank], new[other]), min(old[rank + 1], new[other + 1])
        if lo < hi:
            sends.append((other, int(lo - old[rank]), int(hi - old[rank])))
        lo, hi = max(old[other], new[rank]), min(old[other + 1], new[rank + 1])
        if lo < hi:
            receives.append((other, int(hi - lo)))
    return sends, receives


def untouched(counts, rank: int) -> bool:
    """Whether the plan for ``counts`` sends no walker from ``rank`` and brings none
    to it (its piece of the global order is the same before and after): then it
    takes no part in the transfers (most steps, as the comb changes few counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    old = np.concatenate([[0], np.cumsum(counts)])
    new = np.concatenate([[0], np.cumsum(even_counts(int(old[-1]), counts.size))])
    return old[rank] == new[rank] and old[rank + 1] == new[rank + 1]


def kept(counts, rank: int) -> tuple[int, int, int]:
    """(a, b, at): the walkers a..b-1 of ``rank`` that stay there under the plan for
    ``counts`` land at at..at + b - a of its new rows (a == b: none stays)."""
    sends, receives = plan(counts, rank)
    stay = next(((a, b) for dst, a, b in sends if dst == rank), (0, 0))
    at = 0
    for src, n in receives:
        if src == rank:
            break
        at += n
    return stay[0], stay[1], at


def rebalance(comm, counts, rows: np.ndarray) -> np.ndarray:
    """This rank's rows (n, k) float64 (one walker's packed data per row) after the
    plan for ``counts``: the rows it keeps and those it receives, in global order."""
    sends, receives = plan(counts, comm.rank)
    k = rows.shape[1]
    outgoing = {dst: rows[a:b] for dst, a, b in sends if dst != comm.rank}
    incoming = {src: n * k for src, n in receives if src != comm.rank}
    got = comm.exchange(outgoing, incoming)
    pieces = []
    for src, n in receives:
        if src == comm.rank:
            a, b = next((a, b) for dst, a, b in sends if dst == comm.rank)
            pieces.append(rows[a:b])
        else:
            pieces.append(got[src].reshape(n, k))
    return np.concatenate(pieces) if pieces else np.empty((0, k))
