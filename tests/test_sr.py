"""Stochastic reconfiguration: faster than Adam on the quick-start problem, exact with
the Jastrow factor, a clear error beyond the explicit-matrix size, a stable solve; the
sums O O^T that BLAS forms from the kernel's O rows, in one or in several kernel calls,
still in the iteration's single Allreduce."""

import io

import h5py
import numpy as np
import pytest
from conftest import make_config

from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import from_dict
from parallel_vmc.optimizers import sr
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run.driver import Run
from parallel_vmc.sampling import estimators, samplers
from parallel_vmc.sampling import kernels as K
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System
from parallel_vmc.wavefunction import Layout, WaveFunction, compose


def iterations_to_reach(path, level=3.08, k=10):
    """First iteration at which the mean of the last k iteration energies is < level."""
    with h5py.File(path) as h5:
        e = h5["optimization/energy"][: int(h5["optimization/rows_written"][0])]
    m = np.convolve(e, np.ones(k) / k, mode="valid")
    below = np.nonzero(m < level)[0]
    return below[0] + k if below.size else None


def test_sr_reaches_the_rbm_floor_in_fewer_iterations_than_adam(tmp_path):
    """Quick-start problem (2e, 2D, omega 1, no Jastrow), same samples per iteration and
    learning rate: SR needs under two thirds of Adam's iterations to get E < 3.08
    (measured: 28 vs 72)."""
    reached = {}
    for method in ("adam", "sr"):
        cfg = make_config(
            tmp_path / f"{method}.h5",
            wavefunction={"hidden": 4},
            sampler={"walkers_per_rank": 16, "thermalization": 500},
            optimizer={
                "method": method,
                "learning_rate": 0.05,
                "iterations": 120,
                "samples_per_iteration": 32768,
            },
            production={"samples": 2**14},
            seed=2026,
        )
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
    theta, state = sr(np.zeros(5), v, {"step": 0, "fallbacks": 0}, 1.0, np.outer(v, v), 0.0, 0.0)
    assert state["fallbacks"] == 1 and np.all(np.isfinite(theta))
    np.testing.assert_allclose(theta, -0.5 * v / (v @ v), rtol=1e-8)


def test_sr_refuses_more_parameters_than_the_explicit_matrix_allows():
    raw = {
        "system": {"particles": 10, "dimensions": 3, "omega": 1.0, "statistics": "bosons"},
        "wavefunction": {"hidden": 80},
        "optimizer": {"method": "sr"},
    }
    with pytest.raises(ConfigError, match="optimizer.method: sr builds the explicit"):
        from_dict(raw)
    raw["optimizer"]["method"] = "adam"
    from_dict(raw)
    # 20 fermions in 2D with 40 hidden units and the Jastrow factor: 1683 parameters
    from_dict(
        {
            "system": {"particles": 20, "dimensions": 2, "omega": 1.0},
            "wavefunction": {"hidden": 40, "jastrow": "pade"},
            "optimizer": {"method": "sr"},
        }
    )


@pytest.mark.slow
def test_sr_with_the_jastrow_factor_reaches_the_exact_energy(tmp_path):
    cfg = make_config(
        tmp_path / "srj.h5",
        wavefunction={"hidden": 4, "jastrow": "pade"},
        sampler={"walkers_per_rank": 16, "thermalization": 1000},
        optimizer={
            "method": "sr",
            "learning_rate": 0.05,
            "iterations": 300,
            "samples_per_iteration": 32768,
        },
        production={"samples": 2**21},
    )
    s = Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute().summary
    assert s["error"] < 1e-4
    assert 3.0 - 3 * s["error"] <= s["energy"] <= 3.000343 + 3 * s["error"], s


def sr_sampler(walkers=4, thermalization=100):
    """3 electrons in 2D, 3 hidden units and the Padé-Jastrow factor (every part's
    O_k), random RBM parameters of std 0.1, importance sampling; thermalised walkers.
    Returns (sampler, theta, walkers)."""
    cfg = from_dict(
        {
            "system": {"particles": 3, "dimensions": 2, "omega": 1.0, "statistics": "bosons"},
            "wavefunction": {"hidden": 3, "jastrow": "pade"},
            "optimizer": {"method": "sr"},
        }
    )
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wf.layout.initial(0.1, np.random.default_rng(5), cfg.wavefunction.jastrow_beta)
    w = Walkers.start(11, 0, walkers, system.n_coords, wf.sigma)
    sampler = Sampler("importance", 0.3, system, wf)
    sampler.sweep(theta, w, thermalization)
    return sampler, theta, w


def oo_block(sums, n):
    """The sum O_k O_l region of iteration sums, (n, n)."""
    return sums[estimators.S_HEADER + 2 * n :].reshape(n, n)


def assert_same_sums(got, ref):
    """Sums of products O_k O_l over the same samples, in another order (and maybe with
    O's that differ in the last bits): |got - ref| <= 1e-12 sum |O_k O_l|, and
    sum |O_k O_l| <= (ref_kk + ref_ll) / 2. Summation in any order errs by at most
    rows * eps * sum |O_k O_l| (rows * eps ~ 1e-13 here); the rest is the O's own
    round-off (kernel caches updated move by move vs computed afresh, ~1e-15)."""
    d = np.diag(ref)
    excess = np.abs(got - ref) - 1e-12 * 0.5 * (d[:, None] + d)
    assert excess.max() <= 0, np.unravel_index(excess.argmax(), excess.shape)


def test_s_sums_equal_a_direct_per_sample_accumulation():
    """One sweep per call, so that after each call the walkers stand where the sample
    was taken: O computed there from scratch (``compose.local_terms_at``, fresh
    caches), accumulated sample by sample with numpy, against the BLAS sums of the
    stored rows (entries up to ~600, from O_k up to ~3 over 200 samples: measured
    difference 1e-13, bound 6e-10 at the largest). sum O, from the kernel's own loop,
    agrees to the same relative round-off."""
    sampler, theta, w = sr_sampler()
    wf = sampler.wf
    n, D = wf.layout.n_params, wf.dimensions
    kp = wf.kernel_parts()
    got = np.zeros(estimators.iteration_size(n, True))
    ref_oo, ref_o = np.zeros((n, n)), np.zeros(n)
    for _ in range(50):
        got += sampler.accumulate(theta, w, 1, with_s=True)
        for x in w.positions:
            O = compose.local_terms_at(theta, kp, x, D)[2]
            ref_oo += np.outer(O, O)
            ref_o += O
    assert got[estimators.S_COUNT] == 200
    assert_same_sums(oo_block(got, n), ref_oo)
    o_sum = got[estimators.S_HEADER : estimators.S_HEADER + n]
    np.testing.assert_allclose(o_sum, ref_o, rtol=0, atol=1e-12 * np.abs(ref_o).max())
    np.testing.assert_array_equal(oo_block(got, n), oo_block(got, n).T)


def test_walker_groups_give_the_sums_and_walker_means_of_one_call():
    """A budget that fits one walker's rows per call against one call for all: same
    moves, same header, sum O and sum E O bit for bit (so the same per-walker means),
    and O^T O to round-off (measured 5e-13 on entries up to ~600)."""
    n_sweeps, runs = 40, []
    for budget in (None, 1):
        sampler, theta, w = sr_sampler(walkers=5)
        runs.append((sampler.accumulate(theta, w, n_sweeps, True, budget), w.positions))
    n = sampler.wf.layout.n_params
    assert samplers.walkers_per_call(5, n_sweeps, n, samplers.O_ROWS_BUDGET) == 5
    assert samplers.walkers_per_call(5, n_sweeps, n, 1) == 1
    (one, x_one), (groups, x_groups) = runs
    head = estimators.S_HEADER + 2 * n
    assert one[:head].tobytes() == groups[:head].tobytes()
    assert x_one.tobytes() == x_groups.tobytes()
    assert_same_sums(oo_block(groups, n), oo_block(one, n))
    est = estimators.iteration_estimates(groups, n)
    assert groups[estimators.S_WALKERS] == 5 and np.isfinite(est["energy_error"])


def test_sr_iteration_is_one_allreduce_also_in_walker_groups(tmp_path, monkeypatch):
    """With a budget of one walker per kernel call, 4 calls an iteration, yet still one
    Allreduce per iteration (plus the final finiteness check, as in test_mpi)."""
    monkeypatch.setattr(samplers, "O_ROWS_BUDGET", 1)
    modes, call = [], Sampler._call

    def counted(self, mode, *args, **kwargs):
        modes.append(mode)
        return call(self, mode, *args, **kwargs)

    monkeypatch.setattr(Sampler, "_call", counted)
    cfg = make_config(
        tmp_path / "g.h5",
        optimizer={"iterations": 3, "method": "sr"},
        sampler={"thermalization": 0},
    )
    comm = SerialComm()
    run = Run(cfg, comm, progress=False)
    before, modes[:] = comm.allreduce_calls, []
    run.optimize()
    assert run.state.iteration == 3
    assert comm.allreduce_calls - before == 3 + 1
    assert modes.count(K.OPTIMIZE) == 3 * cfg.sampler.walkers_per_rank


def test_preflight_counts_one_calls_o_rows_within_the_budget():
    """20 fermions, 40 hidden units: 1683 parameters (the RBM, two betas, the orbital
    scale), 2048 sweeps per walker on one rank (27.6 MB of rows a walker): rows within
    O_ROWS_BUDGET, plus O^T O."""
    from parallel_vmc.run.preflight import Sizes

    raw = {
        "system": {"particles": 20, "dimensions": 2, "omega": 1.0},
        "wavefunction": {"hidden": 40, "jastrow": "pade"},
        "optimizer": {"method": "sr"},
    }
    sr_sizes = Sizes(from_dict(raw), 1)
    raw["optimizer"]["method"] = "adam"
    adam_sizes = Sizes(from_dict(raw), 1)
    n = Layout.from_config(from_dict(raw).system, from_dict(raw).wavefunction).n_params
    assert n == 1683
    walker_rows = 8 * n * 2048
    product = 8 * n * n
    assert walker_rows + product <= sr_sizes.o_rows <= samplers.O_ROWS_BUDGET + product
    assert adam_sizes.o_rows == 0
    extra = sr_sizes.memory_per_rank()[1] - adam_sizes.memory_per_rank()[1]
    assert extra >= sr_sizes.o_rows
