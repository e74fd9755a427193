"""Evaluation of generative RBMs: exact log Z against brute force over the joint states
(both enumeration sides) and against numerical quadrature (Gaussian visibles), AIS
against the exact log Z on three models with tolerances from its error bar, and the
progress numbers against their definitions."""

import math

import numpy as np
import pytest
from scipy import integrate

from parallel_vmc.generative import evaluate as E
from parallel_vmc.generative.model import RBM, energy, free_energy


def _random_rbm(kind, n_v, n_h, seed, scale=1.0, sigma=1.0):
    rng = np.random.default_rng(seed)
    return RBM(
        kind,
        rng.normal(0, 0.5, n_v),
        rng.normal(0, 0.5, n_h),
        rng.normal(0, scale, (n_v, n_h)),
        sigma if kind == "gaussian" else 1.0,
    )


def _brute_log_z(rbm):
    """log sum over all joint (v, h) of exp(-E), straight from the energy."""
    V, H = E.enumerate_states(rbm.n_visible), E.enumerate_states(rbm.n_hidden)
    joint_v = np.repeat(V, len(H), axis=0)
    joint_h = np.tile(H, (len(V), 1))
    minus_e = -energy(rbm, joint_v, joint_h)
    top = minus_e.max()
    return top + math.log(np.sum(np.exp(minus_e - top)))


@pytest.mark.parametrize("n_v,n_h", [(3, 6), (6, 3), (5, 5)])
def test_exact_log_z_both_sides_match_brute_force(n_v, n_h):
    rbm = _random_rbm("binary", n_v, n_h, seed=n_v * 10 + n_h, scale=1.5)
    expected = _brute_log_z(rbm)
    assert E.log_z_exact(rbm, side="visible") == pytest.approx(expected, abs=1e-12)
    assert E.log_z_exact(rbm, side="hidden") == pytest.approx(expected, abs=1e-12)
    assert E.log_z_exact(rbm) == pytest.approx(expected, abs=1e-12)


def test_chunked_enumeration_matches_one_block(monkeypatch):
    """Strong weights make the log-weights span hundreds of nats: the running maximum
    across chunks must not lose or overflow anything."""
    rbm = _random_rbm("binary", 10, 12, seed=4, scale=8.0)
    whole = E.log_z_exact(rbm)
    monkeypatch.setattr(E, "CHUNK", 7)
    assert E.log_z_exact(rbm) == pytest.approx(whole, rel=1e-13)
    assert E.log_z_exact(rbm, side="hidden") == pytest.approx(whole, rel=1e-13)


def _quad_log_z(rbm):
    f = lambda *v: math.exp(-free_energy(rbm, np.array(v[::-1]))[0])  # noqa: E731
    lim = 12.0 * rbm.sigma + np.abs(rbm.W).sum() / rbm.sigma
    if rbm.n_visible == 1:
        value, _ = integrate.quad(f, -lim, lim, epsabs=0, epsrel=1e-11, limit=200)
    else:
        value, _ = integrate.dblquad(f, -lim, lim, -lim, lim, epsabs=0, epsrel=1e-10)
    return math.log(value)


@pytest.mark.parametrize("n_v,n_h,sigma", [(1, 3, 1.0), (1, 2, 0.6), (2, 3, 0.8)])
def test_gaussian_log_z_matches_quadrature(n_v, n_h, sigma):
    rbm = _random_rbm("gaussian", n_v, n_h, seed=7 + n_h, scale=1.2, sigma=sigma)
    assert E.log_z_exact(rbm) == pytest.approx(_quad_log_z(rbm), abs=1e-8)


def test_log_likelihood_and_kl_consistent():
    rbm = _random_rbm("binary", 4, 3, seed=2)
    states = E.enumerate_states(4)
    logp = -free_energy(rbm, states) - E.log_z_exact(rbm)
    assert np.exp(logp).sum() == pytest.approx(1.0, abs=1e-12)
    patterns = states[[1, 5, 9]]
    probs = np.array([0.5, 0.3, 0.2])
    kl = E.kl_divergence(rbm, patterns, probs)
    expected = float(np.sum(probs * (np.log(probs) - logp[[1, 5, 9]])))
    assert kl == pytest.approx(expected, abs=1e-12) and kl > 0
    assert E.log_likelihood(rbm, patterns) == pytest.approx(logp[[1, 5, 9]].mean())
    # the model's own distribution has KL 0 from itself
    assert E.kl_divergence(rbm, states, np.exp(logp)) == pytest.approx(0.0, abs=1e-12)


def test_model_expectations_match_joint_enumeration():
    rbm = _random_rbm("binary", 4, 3, seed=9)
    V, H = E.enumerate_states(4), E.enumerate_states(3)
    jv, jh = np.repeat(V, len(H), axis=0), np.tile(H, (len(V), 1))
    p = np.exp(-energy(rbm, jv, jh) - _brute_log_z(rbm))
    ev, eh, evh = E.model_expectations(rbm)
    np.testing.assert_allclose(ev, p @ jv, atol=1e-12)
    np.testing.assert_allclose(eh, p @ jh, atol=1e-12)
    np.testing.assert_allclose(evh, (jv * p[:, None]).T @ jh, atol=1e-12)


# three binary models (different sizes, one with strong weights) and a Gaussian one;
# base model: zeros, or the base rate of data drawn from the model's own marginal
AIS_MODELS = [
    ("binary", 10, 8, 0.5, False),
    ("binary", 16, 12, 1.0, True),
    ("binary", 20, 10, 3.0, False),
    ("gaussian", 3, 8, 0.7, True),
]


@pytest.mark.parametrize("kind,n_v,n_h,scale,with_data", AIS_MODELS)
def test_ais_agrees_with_exact_log_z(kind, n_v, n_h, scale, with_data):
    rbm = _random_rbm(kind, n_v, n_h, seed=n_v + n_h, scale=scale, sigma=1.0)
    data = None
    if with_data:  # rows roughly like the model's: means of p(v|h) for random h
        h = np.random.default_rng(1).integers(0, 2, (200, n_h)).astype(float)
        data = (h @ rbm.W.T + rbm.a > 0).astype(float) if kind == "binary" else h @ rbm.W.T
    exact = E.log_z_exact(rbm)
    result = E.ais_log_z(rbm, runs=200, betas=2000, data=data, seed=3)
    assert 0 < result.error < 0.05  # a useful error bar ...
    assert abs(result.log_z - exact) < 4 * result.error  # ... that covers the truth


def test_ais_error_bar_matches_the_spread_of_estimates():
    """Twenty independent short AIS estimates: their z-scores against the exact log Z
    have mean ~0 and spread ~1, so the delta-method error bar is neither too small nor
    much too large."""
    rbm = _random_rbm("binary", 12, 8, seed=5, scale=1.0)
    exact = E.log_z_exact(rbm)
    z = [
        (r.log_z - exact) / r.error
        for r in (E.ais_log_z(rbm, runs=100, betas=300, seed=s) for s in range(20))
    ]
    assert abs(np.mean(z)) < 3 / math.sqrt(20) + 0.3
    assert 0.4 < np.std(z, ddof=1) < 2.0


def test_ais_with_too_few_temperatures_misses():
    """A test that can fail: with 2 temperatures on strong weights the estimate is far
    off and its error bar does not cover the truth (AIS is biased low)."""
    rbm = _random_rbm("binary", 20, 10, seed=30, scale=3.0)
    result = E.ais_log_z(rbm, runs=200, betas=2, seed=3)
    assert E.log_z_exact(rbm) - result.log_z > 4 * result.error


def test_pseudo_likelihood_full_and_stochastic():
    rbm = _random_rbm("binary", 5, 4, seed=11)
    states = E.enumerate_states(5)
    logp = -free_energy(rbm, states)
    rows = [3, 17, 30]
    expected = 0.0
    for r in rows:  # log p(v_i | v_-i) from the enumerated p(v)
        for i in range(5):
            partner = r ^ (1 << i)
            expected += logp[r] - np.logaddexp(logp[r], logp[partner])
    V = states[rows]
    assert E.pseudo_likelihood(rbm, V) == pytest.approx(expected / 3, abs=1e-12)
    many = np.repeat(V, 4000, axis=0)
    rng = np.random.default_rng(0)
    est = [E.pseudo_likelihood(rbm, many, rng=rng) for _ in range(5)]
    sd = np.std(est, ddof=1) / math.sqrt(5)
    assert abs(np.mean(est) - expected / 3) < 5 * sd + 1e-3


def test_reconstruction_error_without_weights():
    """W = 0: the reconstruction is sigmoid(a) whatever v is."""
    a = np.array([0.0, 2.0, -1.0])
    rbm = RBM("binary", a, np.zeros(2), np.zeros((3, 2)))
    V = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    r = 1 / (1 + np.exp(-a))
    assert E.reconstruction_error(rbm, V) == pytest.approx(np.mean(((V - r) ** 2).sum(1)))


@pytest.mark.slow
def test_ais_on_a_trained_digits_model():
    """A realistic, peaked model: 16 hidden trained 20 epochs on the binarised digits.
    AIS from the data's base rate agrees with the exact log Z within 4 error bars, and
    the base-rate start gives a smaller error bar than a0 = 0 (measured: 53.068 +- 0.024
    and 53.070 +- 0.037 against 53.089)."""
    pytest.importorskip("sklearn")
    from parallel_vmc.generative import compare, datasets

    train_rows, _ = datasets.split(datasets.digits()[0], 0.2, 2026)
    rbm, _ = compare.train_ours(train_rows, 16, 10, 0.05, 20, 2026)
    exact = E.log_z_exact(rbm)
    with_data = E.ais_log_z(rbm, runs=100, betas=1000, data=train_rows, seed=1)
    from_zero = E.ais_log_z(rbm, runs=100, betas=1000, seed=1)
    for result in (with_data, from_zero):
        assert abs(result.log_z - exact) < 4 * result.error
    assert with_data.error < from_zero.error
