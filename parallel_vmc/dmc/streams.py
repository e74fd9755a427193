"""Fresh random streams for the copies that branching makes, and the comb's offset.

A copy must not share its parent's stream (the two would make the same moves). The
copy's xoshiro256** state is drawn from splitmix64 (the generator the xoshiro authors
recommend for seeding) started from a hash of the run's key and the step, combined
with the copy's slot in the global population: the same on any rank that makes it, so
a resumed run draws the same streams, and at nanoseconds per copy instead of the
microseconds of a SeedSequence.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..rng import DMC_COPY_KEY, seed_sequence

GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def root_key(seed: int) -> np.uint64:
    """The run's key for copy streams (one uint64 from the seed's DMC_COPY_KEY stream)."""
    return seed_sequence(seed, DMC_COPY_KEY).generate_state(1, dtype=np.uint64)[0]


@njit(cache=True)
def _splitmix(z):
    """(next z, output) of splitmix64."""
    z = z + GOLDEN
    x = z
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z, x ^ (x >> np.uint64(31))


@njit(cache=True)
def fill_copy_state(state, key, step, slot):
    """state (4,) uint64: the stream of the copy in global slot ``slot`` made at
    ``step``: splitmix64 from a hash of (key, step) combined with the slot."""
    _, h = _splitmix(np.uint64(key) ^ np.uint64(step))
    z = h ^ np.uint64(slot)
    for k in range(4):
        z, state[k] = _splitmix(z)


@njit(cache=True)
def comb_offset(key, step):
    """The comb's u in [0, 1) at ``step``: the same on every rank (a hash of the key and
    the step, apart from the copies' streams by the bits flipped in the key)."""
    _, h = _splitmix(~np.uint64(key) ^ np.uint64(step))
    return np.float64(h >> np.uint64(11)) * (1.0 / 9007199254740992.0)
