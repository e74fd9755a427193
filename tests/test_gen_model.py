"""The generative RBM's math (model.py) against enumeration and finite differences, and
the block Gibbs sampler (gibbs.py) against the exact distribution of a small model."""

import itertools

import numpy as np
import pytest

from parallel_vmc.generative import gibbs
from parallel_vmc.generative.model import (
    RBM,
    energy,
    free_energy,
    free_energy_grad_v,
    hidden_input,
    p_hidden,
    sigmoid,
    visible_mean,
)
from parallel_vmc.rng import chain_states


def random_rbm(kind, n_v=4, n_h=3, seed=1, sigma=0.8):
    rng = np.random.default_rng(seed)
    return RBM(
        kind,
        rng.normal(size=n_v),
        rng.normal(size=n_h),
        rng.normal(size=(n_v, n_h)),
        sigma if kind == "gaussian" else 1.0,
    )


def all_states(n):
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_free_energy_is_minus_log_sum_over_h(kind):
    rbm = random_rbm(kind)
    H = all_states(rbm.n_hidden)
    V = np.random.default_rng(2).normal(size=(6, rbm.n_visible))
    if kind == "binary":
        V = (V > 0).astype(float)
    for v, F in zip(V, free_energy(rbm, V)):
        E = energy(rbm, np.repeat(v[None], len(H), 0), H)
        assert F == pytest.approx(-np.log(np.sum(np.exp(-E))), abs=1e-12)


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_hidden_conditional_against_enumeration(kind):
    rbm = random_rbm(kind)
    H = all_states(rbm.n_hidden)
    v = np.random.default_rng(3).normal(size=rbm.n_visible)
    w = np.exp(-energy(rbm, np.repeat(v[None], len(H), 0), H))
    exact = (w @ H) / w.sum()  # p(h_j = 1 | v)
    assert np.allclose(p_hidden(rbm, v)[0], exact, atol=1e-13)


def test_binary_visible_conditional_against_enumeration():
    rbm = random_rbm("binary")
    V = all_states(rbm.n_visible)
    h = np.array([1.0, 0.0, 1.0])
    w = np.exp(-energy(rbm, V, np.repeat(h[None], len(V), 0)))
    assert np.allclose(visible_mean(rbm, h)[0], (w @ V) / w.sum(), atol=1e-13)


def test_gaussian_visible_conditional_is_the_completed_square():
    """-E(v, h) is quadratic in v with curvature -1/sigma^2; its maximum is the mean."""
    rbm = random_rbm("gaussian")
    h = np.array([[0.0, 1.0, 1.0]])
    m = visible_mean(rbm, h)
    for i in range(rbm.n_visible):
        e = np.zeros(rbm.n_visible)
        e[i] = 1e-3
        slope = (energy(rbm, m + e, h) - energy(rbm, m - e, h)) / 2e-3
        curv = (energy(rbm, m + e, h) - 2 * energy(rbm, m, h) + energy(rbm, m - e, h)) / 1e-6
        assert slope[0] == pytest.approx(0.0, abs=1e-8)
        assert curv[0] == pytest.approx(1.0 / rbm.sigma**2, rel=1e-5)


@pytest.mark.parametrize("kind", ["binary", "gaussian"])
def test_free_energy_grad_v_against_finite_differences(kind):
    rbm = random_rbm(kind, n_v=5, n_h=4)
    V = np.random.default_rng(4).normal(size=(3, 5))
    g = free_energy_grad_v(rbm, V)
    eps = 1e-6
    for i in range(5):
        d = np.zeros(5)
        d[i] = eps
        fd = (free_energy(rbm, V + d) - free_energy(rbm, V - d)) / (2 * eps)
        assert np.allclose(g[:, i], fd, atol=1e-7)


def test_numerically_safe_at_extreme_inputs():
    s = sigmoid(np.array([[-1000.0, -30.0, 0.0, 30.0, 1000.0]]))[0]
    assert np.all(np.isfinite(s)) and s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    rbm = RBM("binary", np.zeros(2), np.zeros(1), np.array([[800.0], [-800.0]]))
    F = free_energy(rbm, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert F == pytest.approx([-800.0, -np.log1p(np.exp(-800.0))])


def test_theta_round_trip_and_shapes():
    rbm = random_rbm("gaussian", n_v=3, n_h=2)
    back = RBM.from_theta("gaussian", rbm.theta(), 3, 2, rbm.sigma)
    assert np.array_equal(back.W, rbm.W) and np.array_equal(back.a, rbm.a)
    assert hidden_input(rbm, np.zeros((7, 3))).shape == (7, 2)
    with pytest.raises(ValueError, match="expected shape"):
        free_energy(rbm, np.zeros((2, 4)))


def test_gibbs_samples_the_exact_binary_distribution():
    """Chi-square of many chains' states against p(v) = exp(-F(v)) / Z."""
    rbm = random_rbm("binary", n_v=3, n_h=2, seed=5)
    rbm.W *= 0.7
    n = 20000
    V = np.zeros((n, 3))
    gibbs.sweeps(rbm, V, 30, chain_states(7, 0, n))
    idx = (V @ (2 ** np.arange(3))).astype(int)
    counts = np.bincount(idx, minlength=8)
    S = np.array([[(k >> i) & 1 for i in range(3)] for k in range(8)], float)
    p = np.exp(-free_energy(rbm, S))
    p /= p.sum()
    chi2 = np.sum((counts - n * p) ** 2 / (n * p))
    assert chi2 < 24.3  # 7 degrees of freedom, p-value 0.001


def test_gibbs_gaussian_marginal_mean_and_variance():
    """Gaussian-binary: the visible mean and variance of many chains against the exact
    mixture over h (p(h) from the Gaussian integral)."""
    rbm = random_rbm("gaussian", n_v=1, n_h=2, seed=6, sigma=0.7)
    H = all_states(2)
    m = visible_mean(rbm, H)[:, 0]
    logw = H @ rbm.b + ((rbm.a[0] + H @ rbm.W[0]) ** 2 - rbm.a[0] ** 2) / (2 * 0.49)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    mean, var = w @ m, w @ (m**2 + 0.49) - (w @ m) ** 2
    n = 40000
    V = np.zeros((n, 1))
    gibbs.sweeps(rbm, V, 40, chain_states(8, 0, n))
    assert V.mean() == pytest.approx(mean, abs=4 * np.sqrt(var / n))
    assert V.var() == pytest.approx(var, rel=0.05)


def test_gibbs_chain_depends_only_on_its_stream():
    """Chain c's trajectory is the same whether it runs alone or among others."""
    rbm = random_rbm("binary", n_v=6, n_h=4, seed=9)
    V = np.zeros((8, 6))
    gibbs.sweeps(rbm, V, 5, chain_states(3, 0, 8))
    part = np.zeros((3, 6))
    gibbs.sweeps(rbm, part, 5, chain_states(3, 4, 3))
    assert np.array_equal(V[4:7], part)
