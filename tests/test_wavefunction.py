"""The RBM part beyond the generic part tests (test_parts.py): ln psi is the log of the
RBM marginal, the scalar helpers do not overflow, the exact width; the potential by
hand; the parameter layout."""

import numpy as np
import pytest

from parallel_vmc import wavefunction as wfm
from parallel_vmc.system import System, potential_energy
from parallel_vmc.wavefunction import rbm


def test_log_psi_is_log_of_rbm_marginal():
    """sqrt: |psi|^2 equals the explicit sum over all 2^N hidden states of exp(-E)."""
    rng = np.random.default_rng(3)
    M, N, inv_s2 = 4, 3, 1.0 / 0.8**2
    layout = wfm.Layout(M, N)
    theta = 0.3 * rng.standard_normal(layout.n_params)
    a, b, W = layout.split(theta)
    x = rng.standard_normal(M)
    total = 0.0
    for bits in range(2**N):
        h = np.array([(bits >> j) & 1 for j in range(N)], dtype=float)
        energy = np.sum((x - a) ** 2) * inv_s2 / 2 - b @ h - x @ W @ h * inv_s2
        total += np.exp(-energy)
    prm = rbm.params(0, M, N, 0.8, 0.8, "sqrt", 2)
    assert 2 * rbm.log_psi(theta, prm, x, 2) == pytest.approx(np.log(total), rel=1e-12)


def test_softplus_and_sigmoid_do_not_overflow():
    assert rbm.softplus(800.0) == pytest.approx(800.0)
    assert rbm.softplus(-800.0) == 0.0
    assert rbm.sigmoid_from_exp(np.inf) == 1.0
    assert rbm.sigmoid_from_exp(0.0) == 0.0


def test_exact_sigma():
    assert wfm.exact_sigma(1.0, "sqrt") ** 2 == pytest.approx(0.5)
    assert wfm.exact_sigma(2.0, "full") ** 2 == pytest.approx(0.5)


def test_potential_energy_by_hand():
    x = np.array([0.0, 0.0, 3.0, 4.0])  # two particles in 2D, r12 = 5
    with_c = potential_energy(x, System(2, 2, 2.0, True))
    assert with_c == pytest.approx(0.5 * 4.0 * 25.0 + 0.2, rel=1e-14)
    assert potential_energy(x, System(2, 2, 2.0, False)) == pytest.approx(50.0, rel=1e-14)


def test_layout_blocks_are_contiguous_and_named():
    layout = wfm.Layout(6, 4, ("rbm", "pade"))
    blocks = layout.blocks
    assert [b.name for b in blocks] == ["a", "b", "W", "jastrow_beta"]
    assert [b.offset for b in blocks] == [0, 6, 10, 34]
    assert layout.n_params == 36 and layout.n_rbm == 34 and layout.n_jastrow == 2
    theta = np.arange(36.0)
    a, b, W = layout.split(theta)
    assert W.shape == (6, 4) and W[1, 0] == 14.0
    np.testing.assert_array_equal(layout.betas(theta), [34.0, 35.0])
    np.testing.assert_array_equal(layout.join(a, b, W, layout.betas(theta)), theta)
    np.testing.assert_array_equal(layout.join(jastrow_beta=[34, 35], W=W, b=b, a=a), theta)
    assert wfm.Layout(6, 4).n_params == 34 and wfm.Layout(6, 4).betas(theta).size == 0


def test_weight_index_is_where_the_layouts_put_w():
    """rbm.weight_index, the one spelling of W's place, agrees with the wave function's
    Layout (the RBM block first) and with the generative RBM's theta = [a, b, W]."""
    from parallel_vmc.generative.model import RBM

    M, N = 6, 4
    layout = wfm.Layout(M, N, ("rbm", "pade"))
    theta = np.arange(float(layout.n_params))
    W = layout.block(theta, "W")
    prm = rbm.params(layout.part_offset("rbm"), M, N, 0.8, 0.8, "sqrt", 2)
    gen = RBM("binary", np.zeros(M), np.zeros(N), np.arange(float(M * N)).reshape(M, N))
    for i in range(M):
        for j in range(N):
            assert rbm.weight(theta, prm, i, j) == W[i, j]
            assert rbm.weight_index(5, M, N, i, j) == 5 + rbm.weight_index(0, M, N, i, j)
            assert gen.theta()[rbm.weight_index(0, M, N, i, j)] == gen.W[i, j]
