"""The relative Gaussian (the generic slot's part) in the production kernel, against the
exact energy and energy gradient of its Gaussian psi. Its operations against its ln psi
are in ``test_parts.py``.

For P bosons in an isotropic trap of frequency omega, without interaction, the RBM at
a = b = W = 0 (psi = sqrt, the exact width) times the part is a Gaussian whose
quadratic form has, per axis, the frequency omega along the centre of mass and
a = omega + 2 g P along the P - 1 relative modes. A Gaussian exp(-a y^2 / 2) in an
oscillator of frequency omega has <T> = a/4 and <V> = omega^2/(4 a), so

    E(g) = D [omega/2 + (P - 1) (a/4 + omega^2 / (4 a))],
    dE/dg = 2 P D (P - 1) (1/4 - omega^2 / (4 a^2)).
"""

import numpy as np
import pytest

from analysis import summarize_chains
from parallel_vmc import wavefunction as wfm
from parallel_vmc.config.vmc import ConfigError, from_dict
from parallel_vmc.sampling.estimators import iteration_estimates
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System

P, D, HIDDEN, OMEGA, G = 3, 2, 4, 1.0, 0.15


def exact(g):
    """(E, dE/dg) of the module docstring."""
    a = OMEGA + 2.0 * g * P
    energy = D * (OMEGA / 2 + (P - 1) * (a / 4 + OMEGA**2 / (4 * a)))
    return energy, 2 * P * D * (P - 1) * (0.25 - OMEGA**2 / (4 * a * a))


class _Serial:
    def allreduce_sum(self, buf):
        return buf


def test_energy_and_gradient_of_the_gaussian_are_exact():
    system = System(P, D, OMEGA, False)
    sigma = wfm.exact_sigma(OMEGA, "sqrt")
    layout = wfm.Layout(P * D, HIDDEN, ("rbm", "relative_gaussian"))
    wf = wfm.WaveFunction(layout, sigma, "sqrt", P, D)
    theta = np.zeros(layout.n_params)
    layout.block(theta, "relative_gaussian_g")[:] = G
    w = Walkers.start(5, 0, 32, P * D, sigma)
    sampler = Sampler("importance", 0.4, system, wf)
    sampler.thermalize(theta, w, 400, _Serial())
    e, *_ = sampler.produce(theta, w, 4000, components=False)
    summary = summarize_chains(e)
    expected_e, expected_grad = exact(G)
    assert abs(summary.mean - expected_e) < 4 * summary.error, (summary, expected_e)
    assert summary.error < 0.01  # a test that can fail: g = 0 would give 3.0
    # dE/dg from 20 consecutive batches of every chain: their spread is the error bar
    g_index = layout.part_offset("relative_gaussian")
    grads = [
        iteration_estimates(sampler.accumulate(theta, w, 200), layout.n_params)["gradient"][g_index]
        for _ in range(20)
    ]
    error = np.std(grads, ddof=1) / np.sqrt(len(grads))
    assert abs(np.mean(grads) - expected_grad) < 4 * error, (np.mean(grads), error, expected_grad)
    assert error < 0.1 * abs(expected_grad)


def test_the_config_selects_it_and_gibbs_refuses_it():
    raw = {
        "system": {"particles": P, "dimensions": D, "omega": OMEGA, "statistics": "bosons"},
        "wavefunction": {"extra_factor": "relative_gaussian"},
    }
    cfg = from_dict(raw)
    wf = wfm.WaveFunction.from_config(cfg.wavefunction, System.from_config(cfg.system))
    assert wf.layout.parts == ("rbm", "relative_gaussian")
    assert wf.kernel_parts().generic is not None
    assert "relative Gaussian" in wf.layout.product_label()
    with pytest.raises(ConfigError, match="extra_factor"):
        from_dict({**raw, "sampler": {"method": "gibbs"}})
    with pytest.raises(ConfigError, match="extra_factor"):
        from_dict({**raw, "wavefunction": {"extra_factor": "mlp"}})
