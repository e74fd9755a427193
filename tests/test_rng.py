"""The per-walker xoshiro256** streams: bit-exact against a plain-Python transcription,
uniform and normal deviates against their distributions, seeding by chain index."""

import numpy as np
import pytest
from scipy import special, stats

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


def test_ziggurat_layers_have_equal_area_and_reach_the_peak():
    r, v, X, F = R.ziggurat_tables()
    n = R.ZIGGURAT_LAYERS
    assert r == pytest.approx(3.6541528853610088, rel=1e-13)  # Marsaglia-Tsang, n = 256
    base = r * F[1] + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2))
    assert base == pytest.approx(v, rel=1e-14) and X[0] * F[1] == pytest.approx(v)
    areas = X[1:n] * (F[2 : n + 1] - F[1:n])  # layers 1 .. n-1
    np.testing.assert_allclose(areas, v, rtol=1e-9)
    assert X[n] == 0.0 and np.all(np.diff(X[1:]) < 0)


def test_normal_deviates_chi_square_with_both_tails():
    """4e6 deviates in 60 bins of equal probability plus both tails beyond the
    ziggurat's base abscissa r (where the tail algorithm takes over): chi-square with
    p > 1e-4, and the tail counts within 5 sigma of their binomial expectation."""
    st = R.chain_states(11, 0, 1)[0]
    z = np.empty(4_000_000)
    R.fill_normal(st, z)
    edges = stats.norm.ppf(np.linspace(0.0, 1.0, 61))
    counts, _ = np.histogram(z, edges)
    assert stats.chisquare(counts).pvalue > 1e-4
    p_tail = stats.norm.sf(R.ZIG_R)
    for tail in (np.count_nonzero(z > R.ZIG_R), np.count_nonzero(z < -R.ZIG_R)):
        mean = z.size * p_tail
        assert abs(tail - mean) < 5 * np.sqrt(mean)
    assert np.count_nonzero(z > R.ZIG_R + 1.0) > 0  # the tail reaches past r


def test_chain_streams_depend_only_on_global_index():
    whole = R.chain_states(9, 0, 8)
    np.testing.assert_array_equal(R.chain_states(9, 4, 4), whole[4:])
    assert len({tuple(row) for row in whole}) == 8
    assert not np.array_equal(R.chain_states(10, 0, 8), whole)
