"""Samplers of trained RBMs against the model's exact marginal p(v) = exp(-F(v)) / Z:
block Gibbs (binary and Gaussian-binary) and MALA, by chi-square tests on histograms of
thinned samples at fixed seeds; deliberately wrong samplers fail the same tests."""

import math

import numpy as np
import pytest
from scipy import stats

from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import datasets
from parallel_vmc.generative import evaluate as E
from parallel_vmc.generative import sampling as S
from parallel_vmc.generative.model import RBM
from parallel_vmc.generative.train import train
from parallel_vmc.parallel import SerialComm
from parallel_vmc.rng import params_generator
from parallel_vmc.stats.autocorr import integrated_time

P_MIN = 1e-3  # a correct sampler passes at this level (fixed seeds: no flakes) ...
P_WRONG = 1e-8  # ... a wrong one is rejected far below it
EDGES = np.linspace(-4.5, 4.5, 19)  # 18 x 18 bins, plus the outside as one bin
N_CHAINS, PER_CHAIN, BURN_IN = 1000, 20, 200


def bimodal_rbm(sigma=0.8) -> RBM:
    """2 visibles, 2 hiddens: p(v) is a mixture of four Gaussians whose two heavy ones sit
    at (+-1.5, 0.6) with unequal weights (b differs), so chains must cross between modes."""
    return RBM(
        "gaussian", np.zeros(2), np.array([-1.0, -0.3]), np.array([[1.5, -1.5], [0.6, 0.6]]), sigma
    )


def _bin_probabilities(rbm, edges=EDGES) -> np.ndarray:
    """Exact probability of each bin of edges x edges: exp(log p) integrated by 12 x 12
    Gauss-Legendre points per bin (p is smooth on a bin: error far below 1e-8)."""
    x, w = np.polynomial.legendre.leggauss(12)
    lo, hi = edges[:-1], edges[1:]
    pts = 0.5 * (hi - lo)[:, None] * x + 0.5 * (hi + lo)[:, None]  # (nb, 12)
    wts = 0.5 * (hi - lo)[:, None] * w
    nb = len(lo)
    X = np.broadcast_to(pts[:, None, :, None], (nb, nb, 12, 12))
    Y = np.broadcast_to(pts[None, :, None, :], (nb, nb, 12, 12))
    logp = E.log_prob(rbm, np.stack([X.ravel(), Y.ravel()], axis=1))
    density = np.exp(logp).reshape(nb, nb, 12, 12)
    return np.einsum("abij,ai,bj->ab", density, wts, wts)


def chi_square(samples: np.ndarray, probs: np.ndarray, edges=None):
    """Pearson chi-square p-value of samples (..., d) against bin probabilities: the 2D
    EDGES grid (+ one bin for outside) or, with edges None, integer-coded states.
    Bins expected below 5 counts are pooled."""
    x = samples.reshape(-1, samples.shape[-1])
    if edges is None:
        codes = (x @ (1 << np.arange(x.shape[1]))).astype(int)
        observed = np.bincount(codes, minlength=len(probs)).astype(float)
        expected = probs * len(x)
    else:
        hist, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
        observed = np.append(hist.ravel(), len(x) - hist.sum())
        expected = np.append(probs.ravel(), 1.0 - probs.sum()) * len(x)
    small = expected < 5
    if small.any():
        observed = np.append(observed[~small], observed[small].sum())
        expected = np.append(expected[~small], expected[small].sum())
    return stats.chisquare(observed, expected).pvalue


def _thin(series: np.ndarray) -> int:
    """3 x the integrated autocorrelation time of the mode indicator sign(v_0) in a
    pilot run (chains, steps): kept samples are then correlated by ~exp(-6)."""
    return max(1, math.ceil(3 * integrated_time(np.sign(series[:, :, 0])).tau))


@pytest.fixture(scope="module")
def model():
    rbm = bimodal_rbm()
    return rbm, _bin_probabilities(rbm)


def test_bins_cover_the_marginal(model):
    _, probs = model
    assert 0.9999 < probs.sum() < 1.0


def test_gibbs_matches_exact_marginal(model):
    rbm, probs = model
    thin = _thin(S.gibbs_chains(rbm, 20, 4000, seed=11))
    samples = S.gibbs_chains(rbm, N_CHAINS, PER_CHAIN, thin=thin, burn_in=BURN_IN, seed=1)
    assert chi_square(samples, probs, EDGES) > P_MIN


def test_gibbs_of_a_wrong_model_fails(model):
    """Power: the chain of a model with sigma 10% too small is rejected."""
    rbm, probs = model
    wrong = bimodal_rbm(sigma=0.72)
    samples = S.gibbs_chains(wrong, N_CHAINS, PER_CHAIN, thin=20, burn_in=BURN_IN, seed=1)
    assert chi_square(samples, probs, EDGES) < P_WRONG


def test_mala_matches_exact_marginal(model):
    rbm, probs = model
    thin = _thin(S.mala(rbm, 20, 4000, step=0.8, seed=11).samples)
    result = S.mala(rbm, N_CHAINS, PER_CHAIN, step=0.8, thin=thin, burn_in=BURN_IN, seed=1)
    assert 0.6 < result.acceptance < 0.99
    assert chi_square(result.samples, probs, EDGES) > P_MIN


def test_mala_without_hastings_correction_fails(model, monkeypatch):
    """Deliberately wrong acceptance: the proposal-density ratio left out."""
    rbm, probs = model
    monkeypatch.setattr(S, "_proposal_log_ratio", lambda *args: 0.0)
    result = S.mala(rbm, N_CHAINS, PER_CHAIN, step=0.8, thin=20, burn_in=BURN_IN, seed=1)
    assert chi_square(result.samples, probs, EDGES) < P_WRONG


def test_unadjusted_langevin_fails(model):
    """Every proposal accepted (no Metropolis step): biased at this step size."""
    rbm, probs = model
    result = S.mala(
        rbm, N_CHAINS, PER_CHAIN, step=0.8, thin=20, burn_in=BURN_IN, seed=1, metropolis=False
    )
    assert result.acceptance == 1.0
    assert chi_square(result.samples, probs, EDGES) < P_WRONG


def test_binary_gibbs_matches_enumerated_distribution():
    rng = np.random.default_rng(4)
    rbm = RBM("binary", rng.normal(0, 1, 4), rng.normal(0, 1, 3), rng.normal(0, 1.5, (4, 3)))
    probs = np.exp(E.log_prob(rbm, E.enumerate_states(4)))
    samples = S.gibbs_chains(rbm, 500, 20, thin=10, burn_in=100, seed=2)
    assert chi_square(samples, probs) > P_MIN
    wrong = rbm.copy()
    wrong.W = wrong.W * 0.8
    assert chi_square(S.gibbs_chains(wrong, 500, 20, thin=10, burn_in=100, seed=2), probs) < P_WRONG


def test_sampler_arguments():
    rbm = bimodal_rbm()
    binary = RBM("binary", np.zeros(2), np.zeros(1), np.zeros((2, 1)))
    with pytest.raises(ValueError, match="gaussian"):
        S.mala(binary, 2, 2, step=0.5)
    with pytest.raises(ValueError, match="step"):
        S.mala(rbm, 2, 2, step=0.0)
    with pytest.raises(ValueError, match="start"):
        S.gibbs_chains(rbm, 2, 2, start=np.zeros((3, 2)))
    out = S.gibbs_chains(rbm, 3, 4, thin=2, seed=5)
    assert out.shape == (3, 4, 2)
    assert np.array_equal(out, S.gibbs_chains(rbm, 3, 4, thin=2, seed=5))  # seeded
    assert S.reconstructions(binary, np.ones((5, 2))).shape == (5, 2)


@pytest.fixture(scope="module")
def trained_on_mixture():
    """A Gaussian-binary RBM (sigma 0.5, 4 hidden) trained briefly by PCD on the 2D
    mixture of datasets.gaussian_mixture (modes at (+-1.5, 0)), and its bin
    probabilities on [-4, 4]^2."""
    data = datasets.gaussian_mixture(2000, seed=3)
    tr = gconfig.from_dict(
        {
            "data": {"name": "mixture2d"},
            "model": {"kind": "gaussian", "hidden": 4, "sigma": 0.5},
            "training": {
                "method": "pcd",
                "epochs": 30,
                "batch_size": 20,
                "chains": 100,
                "learning_rate": 0.01,
                "optimizer": "adam",
            },
        }
    ).training
    rbm = RBM.init("gaussian", 2, 4, params_generator(1), 0.01, 0.5)
    theta = train(rbm, tr, data, 1, SerialComm()).theta
    model = RBM.from_theta("gaussian", theta, 2, 4, 0.5)
    edges = np.linspace(-4.0, 4.0, 21)
    return model, edges, _bin_probabilities(model, edges)


def test_gibbs_and_mala_on_a_model_trained_on_the_mixture(trained_on_mixture):
    """The trained model is bimodal with a barrier (thinning ~100-300 steps): both
    samplers still match its exact marginal; unadjusted Langevin does not."""
    rbm, edges, probs = trained_on_mixture
    assert E.log_likelihood(rbm, datasets.gaussian_mixture(500, seed=4)) > -5.0
    thin = _thin(S.gibbs_chains(rbm, 20, 4000, seed=11))
    gibbs = S.gibbs_chains(rbm, 500, 20, thin=thin, burn_in=200, seed=1)
    assert chi_square(gibbs, probs, edges) > P_MIN
    thin = _thin(S.mala(rbm, 20, 4000, step=0.5, seed=11).samples)
    mala = S.mala(rbm, 500, 20, step=0.5, thin=thin, burn_in=200, seed=1)
    assert 0.6 < mala.acceptance < 0.99
    assert chi_square(mala.samples, probs, edges) > P_MIN
    ula = S.mala(rbm, 500, 20, step=0.5, thin=thin, burn_in=200, seed=1, metropolis=False)
    assert chi_square(ula.samples, probs, edges) < P_WRONG
