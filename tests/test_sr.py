"""Stochastic reconfiguration: faster than Adam on the quick-start problem, exact with
the Jastrow factor, a clear error beyond the explicit-matrix size, a stable solve."""
import io

import h5py
import numpy as np
import pytest

from conftest import make_config
from parallel_vmc.config import ConfigError, from_dict
from parallel_vmc.driver import Run
from parallel_vmc.optimizers import sr
from parallel_vmc.parallel import SerialComm


def iterations_to_reach(path, level=3.08, k=10):
    """First iteration at which the mean of the last k iteration energies is < level."""
    with h5py.File(path) as h5:
        e = h5["optimization/energy"][:int(h5["optimization/rows_written"][0])]
    m = np.convolve(e, np.ones(k) / k, mode="valid")
    below = np.nonzero(m < level)[0]
    return below[0] + k if below.size else None


def test_sr_reaches_the_rbm_floor_in_fewer_iterations_than_adam(tmp_path):
    """Quick-start problem (2e, 2D, omega 1, no Jastrow), same samples per iteration and
    learning rate: SR needs under two thirds of Adam's iterations to get E < 3.08
    (measured: 28 vs 72)."""
    reached = {}
    for method in ("adam", "sr"):
        cfg = make_config(tmp_path / f"{method}.h5", wavefunction={"hidden": 4},
                          sampler={"walkers_per_rank": 16, "thermalization": 500},
                          optimizer={"method": method, "learning_rate": 0.05,
                                     "iterations": 120, "samples_per_iteration": 32768},
                          production={"samples": 2**14}, seed=2026)
        Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
        reached[method] = iterations_to_reach(cfg.output.path)
    assert reached["adam"] is not None and reached["sr"] is not None, reached
    assert 1.5 * reached["sr"] < reached["adam"], reached


def test_sr_solve_is_the_regularised_newton_step_and_survives_a_singular_s():
    rng = np.random.default_rng(1)
    B = rng.standard_normal((5, 5))
    S = B @ B.T
    g = rng.standard_normal(5)
    theta, state = sr(np.zeros(5), g, {"step": 0, "fallbacks": 0}, 0.1, S, 1e-3, 1e-2)
    A = S + np.diag(1e-3 + 1e-2 * np.diag(S))
    np.testing.assert_allclose(theta, -0.1 * np.linalg.solve(A, 0.5 * g), rtol=1e-10)
    assert state == {"step": 1, "fallbacks": 0}
    # Rank-one S without any shift: Cholesky fails, the eigen-solve still gives the
    # minimal-norm step in the range of S.
    v = rng.standard_normal(5)
    theta, state = sr(np.zeros(5), v, {"step": 0, "fallbacks": 0}, 1.0, np.outer(v, v),
                      0.0, 0.0)
    assert state["fallbacks"] == 1 and np.all(np.isfinite(theta))
    np.testing.assert_allclose(theta, -0.5 * v / (v @ v), rtol=1e-8)


def test_sr_refuses_more_parameters_than_the_explicit_matrix_allows():
    raw = {"system": {"particles": 10, "dimensions": 3, "omega": 1.0,
                      "statistics": "bosons"},
           "wavefunction": {"hidden": 80}, "optimizer": {"method": "sr"}}
    with pytest.raises(ConfigError, match="optimizer.method: sr builds the explicit"):
        from_dict(raw)
    raw["optimizer"]["method"] = "adam"
    from_dict(raw)


@pytest.mark.slow
def test_sr_with_the_jastrow_factor_reaches_the_exact_energy(tmp_path):
    cfg = make_config(tmp_path / "srj.h5", wavefunction={"hidden": 4, "jastrow": "pade"},
                      sampler={"walkers_per_rank": 16, "thermalization": 1000},
                      optimizer={"method": "sr", "learning_rate": 0.05, "iterations": 300,
                                 "samples_per_iteration": 32768},
                      production={"samples": 2**21})
    s = Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute().summary
    assert s["error"] < 1e-4
    assert 3.0 - 3 * s["error"] <= s["energy"] <= 3.000343 + 3 * s["error"], s
