"""ln psi derivatives against central finite differences; the potential by hand."""
import numpy as np
import pytest

from parallel_vmc import wavefunction as wfm
from parallel_vmc.system import System, potential_energy


def random_case(D, psi, seed, P=3, N=5):
    rng = np.random.default_rng(seed)
    M = P * D
    layout = wfm.Layout(M, N)
    theta = 0.3 * rng.standard_normal(layout.n_params)
    a, b, W = layout.split(theta)
    x = rng.standard_normal(M)
    sigma = 0.8
    return layout, theta, a, b, np.ascontiguousarray(W), x, 1.0 / sigma**2, wfm.psi_exponent(psi)


def rel_err(x, y):
    return np.max(np.abs(x - y) / np.maximum(1.0, np.abs(y)))


CASES = [(D, psi) for D in (1, 2, 3) for psi in ("sqrt", "full")]


@pytest.mark.parametrize("D,psi", CASES)
def test_gradient_and_laplacian_match_finite_differences(D, psi):
    layout, theta, a, b, W, x, inv_s2, c = random_case(D, psi, seed=D)
    s = wfm.sigmoids(x, b, W, inv_s2)
    grad, lap = np.empty_like(x), np.empty_like(x)
    wfm.grad_lap_log_psi(x, a, W, s, inv_s2, c, grad, lap)
    h = 1e-4
    fd_grad, fd_lap = np.empty_like(x), np.empty_like(x)
    f0 = wfm.log_psi(x, a, b, W, inv_s2, c)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        fp = wfm.log_psi(x + e, a, b, W, inv_s2, c)
        fm = wfm.log_psi(x - e, a, b, W, inv_s2, c)
        fd_grad[i] = (fp - fm) / (2 * h)
        fd_lap[i] = (fp - 2 * f0 + fm) / h**2
    assert rel_err(grad, fd_grad) < 1e-6
    # The second difference loses precision as eps/h^2 ~ 1e-8: 1e-6 still holds.
    assert rel_err(lap, fd_lap) < 1e-6
    # The fused kinetic energy equals -1/2 sum(lap + grad^2).
    kin = wfm.kinetic_energy(x, a, W, s, inv_s2, c)
    assert kin == pytest.approx(-0.5 * np.sum(lap + grad**2), rel=1e-12)
    # The one-particle gradient used for the drift agrees with the full gradient.
    out = np.empty(D)
    wfm.particle_gradient(x, a, W, s, inv_s2, c, 1, D, out)
    np.testing.assert_allclose(out, grad[D:2 * D], rtol=1e-12)


@pytest.mark.parametrize("D,psi", CASES)
def test_parameter_derivatives_match_finite_differences(D, psi):
    layout, theta, a, b, W, x, inv_s2, c = random_case(D, psi, seed=10 + D)
    s = wfm.sigmoids(x, b, W, inv_s2)
    O = np.empty(layout.n_params)
    wfm.parameter_derivatives(x, a, s, inv_s2, c, O)
    h = 1e-5
    fd = np.empty_like(O)
    for k in range(layout.n_params):
        tp, tm = theta.copy(), theta.copy()
        tp[k] += h
        tm[k] -= h
        ap, bp, Wp = layout.split(tp)
        am, bm, Wm = layout.split(tm)
        fd[k] = (wfm.log_psi(x, ap, bp, np.ascontiguousarray(Wp), inv_s2, c)
                 - wfm.log_psi(x, am, bm, np.ascontiguousarray(Wm), inv_s2, c)) / (2 * h)
    assert rel_err(O, fd) < 1e-6


def test_log_psi_is_log_of_rbm_marginal():
    """sqrt: |psi|^2 equals the explicit sum over all 2^N hidden states of exp(-E)."""
    layout, theta, a, b, W, x, inv_s2, c = random_case(2, "sqrt", seed=3, P=2, N=3)
    total = 0.0
    for bits in range(2 ** 3):
        h = np.array([(bits >> j) & 1 for j in range(3)], dtype=float)
        energy = (np.sum((x - a) ** 2) * inv_s2 / 2 - b @ h - x @ W @ h * inv_s2)
        total += np.exp(-energy)
    assert 2 * wfm.log_psi(x, a, b, W, inv_s2, c) == pytest.approx(np.log(total), rel=1e-12)


def test_softplus_and_sigmoid_do_not_overflow():
    assert wfm.softplus(800.0) == pytest.approx(800.0)
    assert wfm.softplus(-800.0) == 0.0
    assert wfm.sigmoid_from_exp(np.inf) == 1.0
    assert wfm.sigmoid_from_exp(0.0) == 0.0


def test_exact_sigma():
    assert wfm.exact_sigma(1.0, "sqrt") ** 2 == pytest.approx(0.5)
    assert wfm.exact_sigma(2.0, "full") ** 2 == pytest.approx(0.5)


def test_potential_energy_by_hand():
    x = np.array([0.0, 0.0, 3.0, 4.0])  # two particles in 2D, r12 = 5
    with_c = potential_energy(x, System(2, 2, 2.0, True))
    assert with_c == pytest.approx(0.5 * 4.0 * 25.0 + 0.2, rel=1e-14)
    assert potential_energy(x, System(2, 2, 2.0, False)) == pytest.approx(50.0, rel=1e-14)
