"""The size arithmetic of a run, numba-free (the checks before any work use it):
sweeps per walker, production units, and the walkers of one SR kernel call."""

from __future__ import annotations

import math

PRODUCTION_GATHER_BYTES = 32 * 2**20  # bound on one gathered production block
PRODUCTION_CHUNK_SWEEPS = 4096  # bound on one production unit of work
# Bytes of the O rows one SR kernel call may store. O^T O by BLAS is as fast in blocks of
# >= 4096 rows as in one (1683 parameters: 4096 rows are 55 MB), so more, smaller calls
# cost nothing and the budget can be small: it is per rank, and nodes run many ranks.
O_ROWS_BUDGET = 64 * 2**20


def per_walker(total: int, n_chains: int) -> int:
    """Sweeps per walker so that all chains together give at least ``total``."""
    return max(1, math.ceil(total / n_chains))


def production_chunk(n: int, n_chains: int) -> int:
    """Sweeps per production unit: bounded in time and in gathered bytes; fixed by the
    config and the chain count alone."""
    return max(16, min(n, PRODUCTION_CHUNK_SWEEPS, PRODUCTION_GATHER_BYTES // (8 * n_chains)))


def walkers_per_call(n_walkers: int, n_sweeps: int, n_params: int, budget: int) -> int:
    """Walkers per SR kernel call so that their O rows, (walkers * n_sweeps, n_params)
    float64, fit in ``budget`` bytes; at least one, as a walker's iteration is never
    split (see :meth:`Sampler.accumulate`)."""
    return max(1, min(n_walkers, budget // max(8 * n_sweeps * n_params, 1)))
