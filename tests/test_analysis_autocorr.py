"""Integrated autocorrelation time (Sokal window) against AR(1): tau = (1+phi)/(1-phi)."""

import numpy as np
import pytest
from analysis_fixtures import ar1, ar1_tau

from parallel_vmc.stats.autocorr import autocorrelation, autocovariance, integrated_time

N = 2**18


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9, 0.99])
def test_tau_int_within_10_percent_of_exact(phi):
    """Mean over 8 seeds within 10 %. One estimate scatters by sqrt(2(2M+1)/n)
    (M the window): 12 % at phi = 0.99, so the mean of 8 has ~4 %."""
    taus = [integrated_time(ar1(phi, N, seed)).tau for seed in range(8)]
    assert np.mean(taus) == pytest.approx(ar1_tau(phi), rel=0.10), taus


def test_window_is_self_consistent_and_n_eff():
    r = integrated_time(ar1(0.9, N, 1))
    assert r.converged
    assert r.window >= 5 * r.tau > r.window - 1 - 5 * 2  # first M with M >= 5 tau(M)
    assert r.n_eff == pytest.approx(N / r.tau)
    assert r.n_samples == N


def test_autocorrelation_of_ar1():
    """rho(t) = phi^t; statistical scatter of rho-hat ~ sqrt(tau/n) = 0.008 here."""
    phi = 0.8
    rho = autocorrelation(ar1(phi, N, 2))
    assert rho[0] == 1.0
    for t in (1, 2, 5, 10):
        assert rho[t] == pytest.approx(phi**t, abs=0.03)


def test_autocovariance_matches_direct_sum():
    x = ar1(0.5, 500, 3)
    d = x - x.mean()
    c = autocovariance(x)
    for t in (0, 1, 7, 499):
        assert c[t] == pytest.approx(d[: 500 - t] @ d[t:] / 500, rel=1e-9, abs=1e-12)


def test_several_chains_share_one_estimate():
    """Chains centred on their own means: an offset chain does not change tau."""
    x = ar1(0.9, 2**14, 4, chains=8)
    tau = integrated_time(x).tau
    assert tau == pytest.approx(ar1_tau(0.9), rel=0.10)
    shifted = x.copy()
    shifted[3] += 100.0
    assert integrated_time(shifted).tau == pytest.approx(tau, rel=1e-9)
    assert integrated_time(x).n_eff == pytest.approx(x.size / tau)


def test_short_series_not_converged_and_constant_series():
    assert not integrated_time(ar1(0.999, 200, 1)).converged
    r = integrated_time(np.full(100, 3.0))
    assert r.tau == 1.0 and r.n_eff == 100


def test_bad_input():
    with pytest.raises(ValueError, match="not finite"):
        integrated_time(np.array([1.0, np.inf, 2.0]))
    with pytest.raises(ValueError):
        integrated_time(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError):
        integrated_time(np.zeros(10), c=0)
