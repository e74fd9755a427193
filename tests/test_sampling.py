"""Samplers against known distributions and exact energies (kernel level)."""

import numpy as np
import pytest
from scipy import stats

from parallel_vmc import wavefunction as wfm
from parallel_vmc.sampling import estimators as S
from parallel_vmc.sampling.estimators import iteration_estimates
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System

SAMPLERS = [("metropolis", 1.0), ("importance", 0.3)]
# Gibbs sampling is exact for psi = sqrt(F) without a Jastrow factor only (config rule).
SQRT_SAMPLERS = SAMPLERS + [("gibbs", 1.0)]
ZERO_VARIANCE_CASES = [(m, step, psi) for m, step in SAMPLERS for psi in ("sqrt", "full")] + [
    ("gibbs", 1.0, "sqrt")
]


def setup(P, D, N, omega, coulomb, psi, theta=None, sigma=None, walkers=16, seed=1):
    system = System(P, D, omega, coulomb)
    sigma = wfm.exact_sigma(omega, psi) if sigma is None else sigma
    wf = wfm.WaveFunction(wfm.Layout(P * D, N), sigma, psi, P, D)
    theta = np.zeros(wf.layout.n_params) if theta is None else theta
    w = Walkers.start(seed, 0, walkers, P * D, sigma)
    return system, wf, theta, w


@pytest.mark.parametrize("method,step,psi", ZERO_VARIANCE_CASES)
@pytest.mark.parametrize("D", [1, 2, 3])
def test_exact_noninteracting_energy_has_zero_variance(method, step, psi, D):
    omega = 0.7
    system, wf, theta, w = setup(3, D, 3, omega, False, psi)
    sampler = Sampler(method, step, system, wf)
    sampler.thermalize(theta, w, 50, _Serial())
    e, *_ = sampler.produce(theta, w, 200, components=False)
    exact = 3 * D * omega / 2
    assert np.max(np.abs(e - exact)) < 1e-10
    assert e.var() < 1e-12
    # ... and the energy gradient vanishes there (zero-variance principle).
    est = iteration_estimates(sampler.accumulate(theta, w, 100), wf.layout.n_params)
    assert est["energy"] == pytest.approx(exact, abs=1e-10)
    assert np.max(np.abs(est["gradient"])) < 1e-10


class _Serial:
    def allreduce_sum(self, buf):
        return buf


def _positions(sampler, theta, w, n_snap, gap):
    """Positions of all walkers every `gap` sweeps: (n_snap * W, M)."""
    snaps = []
    for _ in range(n_snap):
        sampler.sweep(theta, w, gap)
        snaps.append(w.positions.copy())
    return np.concatenate(snaps)


@pytest.mark.parametrize("method,step", SQRT_SAMPLERS)
def test_gaussian_density_is_sampled(method, step):
    """a != 0, W = 0: |psi|^2 is a Gaussian of mean a and variance sigma^2/(2c)."""
    system, wf, theta, w = setup(2, 2, 2, 1.0, True, "sqrt", walkers=64)
    a = np.array([0.4, -0.3, 0.1, 0.5])
    theta[:4] = a
    sampler = Sampler(method, step, system, wf)
    sampler.thermalize(theta, w, 400, _Serial())
    x = _positions(sampler, theta, w, 150, 20)
    z = (x - a) / np.sqrt(wf.sigma**2 / (2 * wf.c))
    for i in range(4):
        assert stats.kstest(z[:, i], "norm").pvalue > 1e-3


@pytest.mark.parametrize("method,step", SQRT_SAMPLERS)
def test_rbm_density_of_two_particles_in_1d(method, step):
    """Random a, b, W for P=2, D=1: the marginal of each coordinate matches |psi|^2
    integrated on a grid (KS test against the quadrature CDF)."""
    rng = np.random.default_rng(4)
    system, wf, theta, w = setup(2, 1, 3, 1.0, False, "sqrt", walkers=64)
    theta[:] = 0.6 * rng.standard_normal(theta.size)
    kp = wf.kernel_parts()
    grid = np.linspace(-6, 6, 601)
    dens = np.array(
        [
            [np.exp(2 * wfm.compose.log_psi_at(theta, kp, np.array([x0, x1]), 1)) for x1 in grid]
            for x0 in grid
        ]
    )
    sampler = Sampler(method, step, system, wf)
    sampler.thermalize(theta, w, 400, _Serial())
    x = _positions(sampler, theta, w, 150, 20)
    for axis, coord in ((1, 0), (0, 1)):
        marginal = dens.sum(axis=axis)
        # CDF at the grid points: the mass of the cells below plus half of its own
        cdf = (np.cumsum(marginal) - 0.5 * marginal) / marginal.sum()
        assert stats.kstest(x[:, coord], lambda t: np.interp(t, grid, cdf)).pvalue > 1e-3


def test_optimize_sums_match_recorded_samples():
    """The packed sums of an optimization call hold exactly the samples that a
    production call records from the same state (same streams, same moves)."""
    rng = np.random.default_rng(2)
    system, wf, theta, w = setup(2, 2, 4, 1.0, True, "sqrt")
    theta[:] = 0.1 * rng.standard_normal(theta.size)
    sampler = Sampler("importance", 0.3, system, wf)
    sampler.thermalize(theta, w, 100, _Serial())
    twin = Walkers(w.positions.copy(), w.rng.copy())
    sums = sampler.accumulate(theta, w, 300)
    e, *_ = sampler.produce(theta, twin, 300, components=False)
    np.testing.assert_array_equal(w.positions, twin.positions)
    assert sums[S.S_COUNT] == e.size
    assert sums[S.S_E] == pytest.approx(e.sum(), rel=1e-12)
    assert sums[S.S_E2] == pytest.approx(np.square(e).sum(), rel=1e-12)
    assert sums[S.S_WMEAN2] == pytest.approx(np.square(e.mean(axis=1)).sum(), rel=1e-12)


# Fixed RBM (P=2, D=2, N=3, sigma^2 = 1/2, psi = sqrt(F)) and its exact expectation
# values, computed independently of this code by deterministic quadrature in
# centre-of-mass and polar relative coordinates (converged to ~1e-9).
XCHECK_A = [0.09994521166415575, 0.12107754721710406, 0.016547988284980747, 0.3478372515206548]
XCHECK_B = [-0.01590606605404354, -0.37397562862295264, 0.25266558851510734]
XCHECK_W = [
    [0.35799055911652927, 0.2825050239771711, 0.12797663756951064],
    [0.5556865557886365, -0.369381554817075, -0.3307135817687384],
    [0.2876651193131988, -0.40722360083515446, -0.04457616723511049],
    [-0.1536968313403745, 0.26510832583017596, -0.2706498084572468],
]
XCHECK_KINETIC = 0.880869415
XCHECK_TRAP = 1.326791446
XCHECK_INTERACTION = 1.064702016  # Coulomb
XCHECK_ENERGY = 3.272362877


@pytest.mark.parametrize("method,step", SQRT_SAMPLERS)
def test_energy_of_a_fixed_rbm_matches_quadrature(method, step):
    from analysis import summarize_chains

    system, wf, theta, w = setup(2, 2, 3, 1.0, True, "sqrt", walkers=32, seed=5)
    theta[:] = wf.layout.join(XCHECK_A, XCHECK_B, XCHECK_W)
    sampler = Sampler(method, step, system, wf)
    sampler.thermalize(theta, w, 1000, _Serial())
    e, (kin, trap, inter), *_ = sampler.produce(theta, w, 2**15, components=True)
    for series, exact in (
        (e, XCHECK_ENERGY),
        (kin, XCHECK_KINETIC),
        (trap, XCHECK_TRAP),
        (inter, XCHECK_INTERACTION),
    ):
        s = summarize_chains(series)
        assert abs(s.mean - exact) < 4 * s.error, (s.mean, s.error, exact)
    assert summarize_chains(e).error < 0.005


def test_gibbs_and_metropolis_agree_at_fixed_random_parameters():
    """Three interacting electrons in 2D, random a, b, W: the two samplers of the same
    |psi|^2 give the same energy within the combined blocking error."""
    from analysis import summarize_chains

    results = []
    for method, step in (("gibbs", 1.0), ("metropolis", 1.0)):
        system, wf, theta, w = setup(3, 2, 4, 1.0, True, "sqrt", walkers=32, seed=7)
        theta[:] = 0.3 * np.random.default_rng(11).standard_normal(theta.size)
        sampler = Sampler(method, step, system, wf)
        sampler.thermalize(theta, w, 1000, _Serial())
        e, *_ = sampler.produce(theta, w, 2**14, components=False)
        results.append(summarize_chains(e))
    gibbs, metropolis = results
    assert gibbs.error < 0.01 and metropolis.error < 0.01
    combined = np.hypot(gibbs.error, metropolis.error)
    assert abs(gibbs.mean - metropolis.mean) < 4 * combined, (gibbs, metropolis)
