"""Many chains: combined error, split R-hat and the between-chain check, speed."""

import json
import math
import time

import numpy as np
import pytest
from analysis_fixtures import ar1, ar1_exact_sem, ar1_tau

from analysis import summarize_chains
from parallel_vmc.stats.chains import check_chains, split_rhat

N = 2**14
PHI = 0.5
SEEDS = range(20)


def test_one_shifted_chain_is_flagged_equal_chains_pass():
    """Chain 2 of 4 shifted by 6 standard errors of a chain mean.

    Power computed for the z-test: |z| ~ 6/sqrt(1 + 1/3) = 5.2 against the
    Bonferroni limit 3.02 (alpha = 0.01, 4 chains): ~99 %; split R-hat alone beyond
    its limit ~90 %. Equal chains: each check fires with probability ~1 %."""
    shift = 6.0 * ar1_exact_sem(PHI, N)
    flagged = exactly_chain_2 = rhat_fires = passes = 0
    rhat_shifted, rhat_equal = [], []
    for seed in SEEDS:
        x = ar1(PHI, N, seed, chains=4)
        ok = summarize_chains(x, n_boot=10)
        passes += ok.chains_ok
        rhat_equal.append(ok.rhat)
        x[2] += shift
        bad = summarize_chains(x, n_boot=10)
        flagged += not bad.chains_ok
        exactly_chain_2 += bad.flagged_chains == (2,)
        rhat_fires += bad.rhat > bad.rhat_limit
        rhat_shifted.append(bad.rhat)
    assert flagged >= 19
    assert exactly_chain_2 >= 18
    assert rhat_fires >= 14
    assert passes >= 18
    assert np.mean(rhat_shifted) > np.mean(rhat_equal)


def test_a_broken_rank_among_many_chains_is_named():
    x = ar1(PHI, 4096, 1, chains=32)
    x[5] += 1.0  # ~20 standard errors of a chain mean
    s = summarize_chains(x, n_boot=10)
    assert not s.chains_ok and s.flagged_chains == (5,)
    assert s.rhat > s.rhat_limit


def test_split_rhat_by_hand():
    """Four chains of 6: halves of 3; formula of BDA3 written out."""
    x = np.array([[1.0, 2, 3, 4, 5, 6], [2, 2, 2, 3, 3, 4], [0, 1, 0, 1, 0, 1], [5, 4, 3, 2, 1, 0]])
    halves = np.concatenate([x[:, :3], x[:, 3:]])
    w = halves.var(axis=1, ddof=1).mean()
    b = 3 * halves.mean(axis=1).var(ddof=1)
    expected = math.sqrt((2 / 3 * w + b / 3) / w)
    assert split_rhat(x) == pytest.approx(expected, rel=1e-12)
    assert math.isnan(split_rhat(x[0]))


def test_split_rhat_detects_a_drifting_chain():
    """Each chain trending: halves disagree though whole chains agree."""
    x = ar1(0.0, 2000, 3, chains=4) + np.linspace(-2.0, 2.0, 2000)
    c = check_chains(x)
    assert c.rhat > 1.1 and c.rhat > c.rhat_limit and not c.ok


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_combined_error_matches_exact_for_independent_chains(phi):
    """Error of the grand mean of 16 independent chains = exact single-chain SEM / 4;
    mean over 6 seeds within 10 %; tau_int within 10 %."""
    n = 2**14
    ratios, taus = [], []
    for seed in range(6):
        s = summarize_chains(ar1(phi, n, seed, chains=16), n_boot=200)
        ratios.append(s.error / (ar1_exact_sem(phi, n) / 4.0))
        taus.append(s.tau_int)
        assert s.n_samples == 16 * n and s.n_chains == 16 and s.samples_per_chain == n
        assert s.n_eff == pytest.approx(s.n_samples / s.tau_int)
        assert s.error_bootstrap == pytest.approx(s.error, rel=0.2)
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.10), ratios
    assert np.mean(taus) == pytest.approx(ar1_tau(phi), rel=0.10), taus


def test_single_chain_and_fields():
    x = ar1(0.5, 2**13, 9) + 3.0
    s = summarize_chains(x)
    assert math.isnan(s.rhat) and s.chains_ok and s.n_chains == 1
    assert s.mean == pytest.approx(x.mean())
    assert s.variance == pytest.approx(x.var(ddof=1))
    assert s.blocking.mean == pytest.approx(x.mean())
    d = s.as_dict()
    for key in (
        "mean",
        "error",
        "error_bootstrap",
        "variance",
        "tau_int",
        "n_eff",
        "n_samples",
        "rhat",
        "blocking_level",
    ):
        assert key in d
    json.dumps(d)  # JSON-able (nan as NaN)
    assert summarize_chains(x).error_bootstrap == s.error_bootstrap  # seeded


def test_constant_samples():
    s = summarize_chains(np.full((4, 256), 2.0))
    assert s.mean == 2.0 and s.error == 0.0 and s.variance == 0.0
    assert s.error_bootstrap == 0.0 and s.tau_int == 1.0


def test_fast_on_a_production_sized_array():
    """(32, 32768): well under a second (measured ~0.06 s warm on 2 cores)."""
    x = ar1(0.9, 32768, 1, chains=32)
    summarize_chains(x[:, :1024])  # warm caches (chi2 quantiles)
    t = time.perf_counter()
    summarize_chains(x)
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize(
    "bad", [np.zeros((2, 2, 2)), np.zeros((3, 3)), np.array([[1.0, 2, np.nan, 4, 5]])]
)
def test_bad_samples(bad):
    with pytest.raises(ValueError):
        summarize_chains(bad)
