"""The per-walker xoshiro256** streams: bit-exact against a plain-Python transcription,
uniform and normal deviates against their distributions, seeding by chain index."""
import numpy as np
from scipy import stats

from parallel_vmc import rng as R

MASK = (1 << 64) - 1


def reference_xoshiro(state, n):
    """xoshiro256** in Python integers (the published algorithm, written out)."""
    s = [int(v) for v in state]
    rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & MASK  # noqa: E731
    out = []
    for _ in range(n):
        out.append((rotl((s[1] * 5) & MASK, 7) * 9) & MASK)
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
    return out, s


def test_matches_reference_bit_for_bit():
    state = R.chain_states(123, 0, 1)[0]
    expected, end = reference_xoshiro(state, 1000)
    st = state.copy()
    got = np.empty(1000)
    R.fill_uniform(st, got)
    np.testing.assert_array_equal(got, [(v >> 11) * 2.0**-53 for v in expected])
    assert [int(v) for v in st] == end


def test_uniform_and_normal_distributions():
    st = R.chain_states(5, 0, 1)[0]
    u = np.empty(200_000)
    R.fill_uniform(st, u)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    z = np.empty(200_000)
    R.fill_normal(st, z)
    assert stats.kstest(z, "norm").pvalue > 1e-3


def test_chain_streams_depend_only_on_global_index():
    whole = R.chain_states(9, 0, 8)
    np.testing.assert_array_equal(R.chain_states(9, 4, 4), whole[4:])
    assert len({tuple(row) for row in whole}) == 8
    assert not np.array_equal(R.chain_states(10, 0, 8), whole)
