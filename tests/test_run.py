"""Whole runs in-process: file schema, exact limits, optimization toward exact energies."""

import pathlib
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import make_config, run_config, subprocess_env

from parallel_vmc.config.vmc import load_config
from parallel_vmc.stats.blocking import blocking

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def test_exact_parameters_give_exact_energy_in_the_file(tiny_config):
    """init_scale 0, non-interacting, no optimization: every stored sample is 2."""
    cfg = tiny_config(
        system={"interaction": "none"},
        wavefunction={"init_scale": 0.0},
        optimizer={"iterations": 0},
        production={"store_components": True},
    )
    result = run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        e = h5["production/local_energy"][:]
        assert np.max(np.abs(e - 2.0)) < 1e-10
        assert e.var() < 1e-12
        # The parts add up to the total sample by sample.
        parts = [h5[f"production/{name}"][:] for name in ("kinetic", "trap", "interaction")]
        np.testing.assert_allclose(sum(parts), e, rtol=0, atol=1e-12)
        assert np.all(parts[2] == 0.0)
        assert h5.attrs["status"].decode() == "completed"
        assert h5["summary"].attrs["error"] < 1e-10
    assert result.summary["energy"] == pytest.approx(2.0, abs=1e-10)


def test_every_part_stores_what_its_registry_entry_names(tiny_config):
    """/wavefunction holds each present part's arrays (``Part.stored``), the variational
    widths too (they were left out before the registry named them), equal to theta."""
    from parallel_vmc.runfile import schema as S

    cfg = tiny_config(wavefunction={"variational_widths": True})
    result = run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        wf = h5[S.WAVEFUNCTION]
        stored = np.concatenate([np.ravel(wf[name][()]) for name in ("a", "b", "W")])
        stored = np.concatenate([stored, wf[S.WIDTH_SHIFT][()]])
        np.testing.assert_array_equal(stored, result.theta)


def test_file_follows_the_schema(tiny_config):
    cfg = tiny_config()
    run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        for key in (
            "format_version",
            "package_version",
            "created",
            "config",
            "mpi_size",
            "walkers_per_rank",
            "seed",
            "numba_version",
            "numpy_version",
            "mpi4py_version",
            "hostname",
            "status",
        ):
            assert key in h5.attrs, key
        opt = h5["optimization"]
        for name in (
            "iteration",
            "energy",
            "energy_error",
            "variance",
            "acceptance",
            "grad_norm",
            "learning_rate",
            "wall_time",
        ):
            assert opt[name].shape == (5,), name
        assert opt["params"].shape == (5, 4 + 2 + 4 * 2)  # a (M=4), b (N=2), W
        n_chains = 4
        assert h5["production/local_energy"].shape == (n_chains, 4096 // n_chains)
        assert h5["production"].attrs["samples_per_chain"] == 1024
        assert h5["wavefunction/W"].shape == (4, 2)
        assert h5["wavefunction"].attrs["psi"] == "sqrt"
        # two electrons: fermions without determinants (format 4)
        assert h5["wavefunction"].attrs["statistics"] == "fermions"
        assert "orbitals" not in h5["wavefunction"]
        assert "inverse_drift" not in h5["wavefunction"].attrs
        for key in ("energy", "error", "variance", "tau_int", "n_samples"):
            assert key in h5["summary"].attrs
        assert list(h5["segments/ended"].asstr()[:]) == ["completed"]
        assert h5["checkpoint/rng_states"].dtype == np.uint64
        assert h5["checkpoint/rng_states"].shape == (n_chains, 4)
        obs = h5["production/observables"]
        for name in ("local_energy", "kinetic", "trap", "interaction", "r12"):
            assert obs[name].shape == (32,) and {"mean", "error"} <= set(obs[name].attrs)
        for group, members in (
            ("density", ("edges", "counts", "density", "error")),
            ("density_image", ("x_edges", "y_edges", "counts", "density", "error")),
            ("pair_distance", ("edges", "counts", "density", "error")),
        ):
            assert set(members) <= set(obs[group]), group


@pytest.mark.parametrize("D", [1, 2, 3])
@pytest.mark.parametrize("omega", [0.5, 1.0, 2.0])
def test_noninteracting_optimization_reaches_exact_energy(tmp_path, D, omega):
    """configs/noninteracting.yaml, started visibly off (init_scale 0.5)."""
    cfg = load_config(
        CONFIGS / "noninteracting.yaml",
        output=str(tmp_path / "n.h5"),
        overrides=[
            f"system.dimensions={D}",
            f"system.omega={omega}",
            "wavefunction.init_scale=0.5",
            "sampler.walkers_per_rank=8",
            "sampler.thermalization=300",
            "optimizer.samples_per_iteration=4096",
            "production.samples=65536",
        ],
    )
    exact = D * omega
    result = run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        first = h5["optimization/energy"][0]
    assert first - exact > 5e-3, "the random start should be visibly off the exact energy"
    assert abs(result.summary["energy"] - exact) < 1e-3


def test_two_electrons_in_2d_below_3_10(tmp_path):
    """Fast version of the quick start (the full one is in test_quickstart_slow)."""
    cfg = make_config(
        tmp_path / "q.h5",
        wavefunction={"hidden": 4},
        sampler={"walkers_per_rank": 16, "thermalization": 500},
        optimizer={"iterations": 120, "samples_per_iteration": 8192},
        production={"samples": 2**18},
    )
    s = run_config(cfg).summary
    assert s["energy"] < 3.10
    assert s["energy"] > 3.0 - 3 * s["error"]  # variational: never below exact
    assert s["error"] < 0.005


def test_samplers_agree_at_fixed_parameters(tmp_path):
    energies = {}
    for method in ("metropolis", "importance"):
        cfg = make_config(
            tmp_path / f"{method}.h5",
            sampler={"method": method, "walkers_per_rank": 16, "thermalization": 500},
            wavefunction={"hidden": 3, "init_scale": 0.2},
            optimizer={"iterations": 0},
            production={"samples": 2**18},
        )
        s = run_config(cfg).summary
        energies[method] = (s["energy"], s["error"])
    (e1, s1), (e2, s2) = energies.values()
    assert abs(e1 - e2) < 4 * np.hypot(s1, s2), energies


def test_same_seed_same_numbers(tmp_path):
    a = run_config(make_config(tmp_path / "a.h5"))
    b = run_config(make_config(tmp_path / "b.h5"))
    np.testing.assert_array_equal(a.theta, b.theta)
    with h5py.File(tmp_path / "a.h5") as fa, h5py.File(tmp_path / "b.h5") as fb:
        np.testing.assert_array_equal(
            fa["production/local_energy"][:], fb["production/local_energy"][:]
        )
    c = run_config(make_config(tmp_path / "c.h5", seed=8))
    assert not np.array_equal(a.theta, c.theta)


def test_summary_error_is_the_blocking_error(tiny_config):
    cfg = tiny_config()
    result = run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        series = h5["production/local_energy"][:].mean(axis=0)
    assert result.summary["energy"] == pytest.approx(series.mean(), rel=1e-12)
    assert result.summary["error"] > 0
    assert blocking(series).error == pytest.approx(result.summary["error"], rel=0.5)


def test_quickstart_config(tmp_path):
    """The shipped quick start as it is (about 5 s on one core once compiled)."""
    cfg = load_config(CONFIGS / "quickstart.yaml", output=str(tmp_path / "q.h5"))
    s = run_config(cfg).summary
    assert 3.0 - 3 * s["error"] < s["energy"] < 3.10
    assert s["error"] < 0.005


@pytest.mark.slow
@pytest.mark.parametrize("psi,method", [("full", "importance"), ("sqrt", "metropolis")])
def test_two_electrons_other_conventions(tmp_path, psi, method):
    """psi = F and brute-force sampling reach the same band as the quick start."""
    cfg = load_config(
        CONFIGS / "quickstart.yaml",
        output=str(tmp_path / "q.h5"),
        overrides=[
            f"wavefunction.psi={psi}",
            f"sampler.method={method}",
            "optimizer.iterations=500",
            "production.samples=4194304",
        ],
    )
    s = run_config(cfg).summary
    assert 3.0 - 3 * s["error"] < s["energy"] < 3.10
    assert s["error"] < 0.005


@pytest.mark.parametrize("method,target", [("metropolis", 0.5), ("importance", 0.93)])
def test_step_is_tuned_toward_target_acceptance(tiny_config, method, target):
    cfg = tiny_config(
        sampler={"method": method, "step": 3.0, "thermalization": 1000}, optimizer={"iterations": 0}
    )
    run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        assert abs(h5["production"].attrs["acceptance"] - target) < 0.05
        assert h5["production"].attrs["step"] != 3.0


@pytest.mark.skipif(
    shutil.which("mpiexec") is None, reason="no mpiexec on PATH (install the 'mpi' extra)"
)
def test_command_line_run_under_mpiexec(tmp_path):
    """`mpiexec -n 2 pvmc run` end to end: exit 0, plain progress lines (not a TTY),
    the summary block, a completed two-rank file."""
    out = tmp_path / "cli.h5"
    res = subprocess.run(
        [
            "mpiexec",
            "-n",
            "2",
            sys.executable,
            "-m",
            "parallel_vmc",
            "run",
            str(CONFIGS / "quickstart.yaml"),
            "-o",
            str(out),
            "--set",
            "optimizer.iterations=20",
            "--set",
            "optimizer.samples_per_iteration=2048",
            "--set",
            "production.samples=16384",
            "--set",
            "sampler.thermalization=200",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=subprocess_env(),
    )
    assert res.returncode == 0, res.stderr
    assert "optimize 20/20" in res.stdout
    assert "parallel_vmc summary" in res.stdout and "(blocking)" in res.stdout
    with h5py.File(out) as h5:
        assert h5.attrs["status"].decode() == "completed"
        assert h5.attrs["mpi_size"] == 2
        assert h5["production/local_energy"].shape == (32, 512)
