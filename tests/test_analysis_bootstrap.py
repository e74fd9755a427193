"""Block bootstrap: agreement with blocking and naive errors, derived quantities, seeding."""

import numpy as np
import pytest
from analysis_fixtures import ar1, ar1_exact_sem

from parallel_vmc.stats.blocking import blocking
from parallel_vmc.stats.bootstrap import (
    block_bootstrap,
    bootstrap_mean,
    bootstrap_ratio,
    bootstrap_variance,
)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_independent_samples_blocking_bootstrap_naive_agree_within_5_percent(seed):
    """iid normal, n = 2^16. Bootstrap error of the error: sqrt(1/(2*2000) + 1/(2*4096))
    ~ 1.9 %; blocking at level 0 is the naive error (at a higher level ~ 3 %)."""
    x = np.random.default_rng(seed).standard_normal(2**16)
    naive = x.std(ddof=1) / np.sqrt(x.size)
    b = blocking(x)
    boot = bootstrap_mean(x, block_size=b.block_size, n_boot=2000, seed=seed)
    assert b.error == pytest.approx(naive, rel=0.05)
    assert boot.error == pytest.approx(naive, rel=0.05)
    assert boot.error == pytest.approx(b.error, rel=0.05)
    assert boot.estimate == pytest.approx(x.mean(), rel=1e-12)


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_block_bootstrap_of_correlated_mean_matches_exact(phi):
    """With the blocking block size, mean over 4 seeds within 10 % of the exact error."""
    n = 2**17
    ratios = []
    for seed in range(4):
        x = ar1(phi, n, seed)
        ratios.append(bootstrap_mean(x, n_boot=1000, seed=seed).error / ar1_exact_sem(phi, n))
    assert np.mean(ratios) == pytest.approx(1.0, abs=0.10), ratios


def test_naive_bootstrap_underestimates_correlated_error():
    """Block size 1 on AR(1) phi=0.9 misses the factor sqrt(tau) = sqrt(19)."""
    n = 2**16
    x = ar1(0.9, n, 5)
    naive = bootstrap_mean(x, block_size=1, n_boot=500, max_blocks=n).error
    assert naive / ar1_exact_sem(0.9, n) == pytest.approx(1 / np.sqrt(19), rel=0.1)


def test_variance_error_of_gaussian():
    """Var of the sample variance of iid N(0, s^2): 2 s^4 / n; n = 2^16, 2000 replicates."""
    n = 2**16
    x = 3.0 * np.random.default_rng(7).standard_normal(n) + 10.0
    r = bootstrap_variance(x, n_boot=2000, seed=1)
    assert r.estimate == pytest.approx(x.var(), rel=1e-10)
    assert r.error == pytest.approx(9.0 * np.sqrt(2.0 / n), rel=0.08)
    assert r.ci_low < r.estimate < r.ci_high


def test_ratio_error_by_delta_method():
    """<a>/<b> for independent a ~ N(2, 1), b ~ N(4, 1): error^2 ~ (1/16 + 4/256)/n."""
    n = 2**15
    rng = np.random.default_rng(8)
    a = 2.0 + rng.standard_normal(n)
    b = 4.0 + rng.standard_normal(n)
    r = bootstrap_ratio(a, b, block_size=1, n_boot=2000, seed=2)
    assert r.estimate == pytest.approx(a.mean() / b.mean(), rel=1e-12)
    expected = np.sqrt((1 / 16 + 4 / 256) / n)
    assert r.error == pytest.approx(expected, rel=0.08)


def test_seeded_and_deterministic():
    x = ar1(0.5, 10000, 1)
    r1 = bootstrap_mean(x, block_size=8, seed=3)
    r2 = bootstrap_mean(x, block_size=8, seed=3)
    r3 = bootstrap_mean(x, block_size=8, seed=4)
    assert r1.error == r2.error
    assert np.array_equal(r1.replicates, r2.replicates)
    assert r1.error != r3.error


def test_blocks_merged_beyond_max_blocks_and_leftover():
    x = np.random.default_rng(0).standard_normal(100003)
    r = block_bootstrap(x, block_size=1, n_boot=200, max_blocks=4096)
    assert r.block_size == 32 and r.n_blocks == 100003 // 32


def test_bad_arguments():
    x = np.zeros(100)
    with pytest.raises(ValueError, match="block_size"):
        bootstrap_mean(x, block_size=80)
    with pytest.raises(ValueError, match="func"):
        block_bootstrap((x, x))
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_mean(x, n_boot=1)
