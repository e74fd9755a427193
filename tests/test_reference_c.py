"""The plain-C speed references of ``pvmc bench --reference`` (parallel_vmc/bench/reference/):
packaged and found by name, compiled as the bench compiles them, their self-tests pass,
and they sample the energy the project's kernel samples on the same problem (the same
parameters, read from a file), within the combined error bars."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from parallel_vmc.bench import reference
from parallel_vmc.bench.options import BenchInputError

HAVE_CC = bool(shutil.which("gcc") or shutil.which("cc"))
needs_cc = pytest.mark.skipif(
    not HAVE_CC, reason="no C compiler (gcc or cc) on PATH: the C references cannot be built"
)
Z = 4.0  # |E_C - E_kernel| must lie within Z combined standard errors
# Importance sampling in C at 70 % acceptance, not its default 93 %: at the larger time
# step a wrong Green's function or drift biases E by many error bars (measured: the
# Green's function ratio left out, 7 sigma; the drift at x' taken as the one at x, 5)
IMPORTANCE = ("--sampler", "importance", "--target", 0.7)


def pvmc(*args, **env):
    from conftest import subprocess_env

    return subprocess.run(
        [sys.executable, "-m", "parallel_vmc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(**env),
    )


@pytest.fixture(scope="module")
def exe(tmp_path_factory):
    """name -> the reference compiled as `pvmc bench --reference NAME` compiles it."""
    if not HAVE_CC:
        pytest.skip("no C compiler (gcc or cc) on PATH: the C references cannot be built")
    out = tmp_path_factory.mktemp("c_references")
    built = {}
    for name in reference.NAMES:
        built[name] = str(out / name)
        reference.compile_source(reference.resolve(name), built[name])
    return built


# ------------------------------------------------------------------ names and errors


def test_names_resolve_to_the_packaged_sources():
    for name, file in reference.NAMES.items():
        source = reference.resolve(name)
        assert source.endswith(file) and source.startswith(reference.DIRECTORY)
        with open(source, encoding="utf-8") as f:
            text = f.read()
        assert "--selftest" in text


@pytest.mark.parametrize("value", ["nonsense", "rbm.yaml", "missing_ref.c"])
def test_bad_reference_names_what_is_allowed(value):
    with pytest.raises(BenchInputError, match="allowed: rbm or slater .* FILE.c"):
        reference.resolve(value)


def test_bad_reference_on_the_command_line_exits_2():
    res = pvmc("bench", "--reference", "rmb")
    assert res.returncode == 2, res.stderr
    assert "--reference 'rmb'" in res.stderr and "rbm or slater" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "problem:" not in res.stdout


def test_no_compiler_is_a_clear_error_exit_2(tmp_path):
    """Without gcc and cc on PATH: one line saying so, exit code 2, before any work."""
    res = pvmc("bench", "--reference", "rbm", PATH=str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert "no C compiler on PATH" in res.stderr and "problem:" not in res.stdout


# ------------------------------------------------------------------ the self-tests

SELFTESTS = [
    ("rbm", ["2", "2", "4"]),
    ("rbm", ["3", "3", "10"]),
    ("rbm", ["4", "1", "9"]),
    ("slater", ["6", "2", "4"]),
    ("slater", ["12", "2", "24"]),
    ("slater", ["8", "3", "6", "0", "0.5"]),
    ("slater", ["6", "2", "12", "0", "1.0", "0"]),  # no Jastrow factor
]


@needs_cc
@pytest.mark.parametrize(
    "name, args", SELFTESTS, ids=lambda v: "-".join(v) if isinstance(v, list) else v
)
def test_selftest_passes(exe, name, args):
    if len(args) == 3:
        args = [*args, "0"]  # SWEEPS: unused by the self-test
    res = subprocess.run(
        [exe[name], *args, "--selftest"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0 and "selftest passed" in res.stdout, res.stdout + res.stderr
    assert "FAILED" not in res.stdout


@needs_cc
@pytest.mark.parametrize(
    "name, args",
    [("slater", ["7", "2", "4", "0"]), ("rbm", ["2", "4", "4", "10", "--psi", "half"])],
)
def test_a_bad_problem_is_a_usage_error_exit_2(exe, name, args):
    """An odd P is no closed shell, D = 4 and psi half do not exist: exit code 2, usage."""
    res = subprocess.run([exe[name], *args, "--selftest"], capture_output=True, text=True)
    assert res.returncode == 2 and "usage:" in res.stderr, res.stderr


# ------------------------------------------------------------------ energies vs the kernel


def c_energy(executable, args) -> tuple[float, float, str]:
    """(<E>, its error bar, the printed line) of one run of a reference."""
    res = subprocess.run([executable, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    found = re.search(r"<E>=(\S+) err=(\S+)", res.stdout)
    assert found, res.stdout
    return float(found.group(1)), float(found.group(2)), res.stdout.strip()


def kernel_energy(
    P,
    D,
    H,
    statistics,
    jastrow,
    psi,
    params_file,
    sweeps,
    interaction="coulomb",
    walkers=16,
    seed=5,
):
    """(<E>, error) of the project's kernel (Metropolis, step tuned) on the problem with
    RBM parameters ~ N(0, 0.05^2) (Padé betas 0.5, orbital scale 1), which are written to
    params_file in the order of theta (a, b, W row-major) for the C reference."""
    from parallel_vmc.config.vmc import from_dict
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.sampling.samplers import Sampler, Walkers
    from parallel_vmc.stats.blocking import blocking
    from parallel_vmc.system import System
    from parallel_vmc.wavefunction import WaveFunction

    cfg = from_dict(
        {
            "system": {
                "particles": P,
                "dimensions": D,
                "omega": 1.0,
                "statistics": statistics,
                "interaction": interaction,
            },
            "wavefunction": {"hidden": H, "jastrow": jastrow, "psi": psi},
            "sampler": {"method": "metropolis", "step": 1.0},
            "seed": seed,
        }
    )
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wf.layout.initial(0.05, np.random.default_rng(seed), 0.5)
    a, b, W = wf.layout.split(theta)
    np.savetxt(params_file, np.concatenate([a, b, W.ravel()]))
    sampler = Sampler("metropolis", 1.0, system, wf)
    chains = Walkers.start(seed, 0, walkers, system.n_coords, wf.sigma, D)
    sampler.thermalize(theta, chains, 1000, SerialComm())
    e, _, _, _ = sampler.produce(theta, chains, sweeps, False)
    result = blocking(e.mean(axis=0))  # the chains are independent: one series of means
    return result.mean, result.error


def assert_agree(ours, theirs, what, bound):
    (e1, s1), (e2, s2, line) = ours, theirs
    combined = math.hypot(s1, s2)
    assert 0 < combined < bound, (what, ours, line)  # an error bar, and a small one
    assert abs(e1 - e2) < Z * combined, (
        f"{what}: kernel {e1:.5f} +- {s1:.5f}, C {e2:.5f} +- {s2:.5f} "
        f"({abs(e1 - e2) / combined:.1f} sigma): {line}"
    )


@needs_cc
@pytest.mark.parametrize("psi, D, coulomb", [("sqrt", 3, True), ("full", 2, False)])
def test_rbm_reference_samples_the_kernels_energy(exe, tmp_path, psi, D, coulomb):
    """P = 2, H = 4, random parameters: the reference by Metropolis and by importance
    sampling against the kernel. Coulomb in 3D only: in 2D without a cusp in psi the
    variance of E_L diverges (logarithmically, 1/r at coalescence), and so would an
    error bar now and then."""
    params = tmp_path / "theta.txt"
    interaction = "coulomb" if coulomb else "none"
    ours = kernel_energy(2, D, 4, "bosons", "none", psi, params, 40000, interaction)
    for sampler in ("metropolis", "importance"):
        args = [2, D, 4, 600000, "--params", params, "--therm", 2000, "--seed", 3, "--psi", psi]
        args += IMPORTANCE if sampler == "importance" else ()
        args += () if coulomb else ("--no-coulomb",)
        what = f"rbm {sampler} psi {psi} D {D} {interaction}"
        assert_agree(ours, c_energy(exe["rbm"], args), what, 0.02)


@needs_cc
def test_slater_reference_samples_the_kernels_energy(exe, tmp_path):
    """P = 6, D = 2, H = 4, Slater x RBM x Padé-Jastrow with Coulomb: the reference by
    Metropolis and by importance sampling against the kernel."""
    params = tmp_path / "theta.txt"
    ours = kernel_energy(6, 2, 4, "fermions", "pade", "sqrt", params, sweeps=8000)
    for sampler in ("metropolis", "importance"):
        args = [6, 2, 4, 100000, 1.0, 1, "--params", params, "--seed", 3]
        args += IMPORTANCE if sampler == "importance" else ()
        assert_agree(ours, c_energy(exe["slater"], args), f"slater {sampler}", 0.01)


@needs_cc
def test_slater_reference_non_interacting_energy_is_exact(exe):
    """a = b = W = 0, no Jastrow factor, no Coulomb: E_L = 28 omega at every sample (P = 12)."""
    e, err, line = c_energy(exe["slater"], [12, 2, 24, 2000, 0.5, "--non-interacting"])
    assert abs(e - 14.0) < 1e-9 and err < 1e-9, line
    assert float(re.search(r"max\|E_L-E_exact\|=(\S+)", line).group(1)) < 1e-9, line


# ------------------------------------------------------------------ through pvmc bench


@needs_cc
def test_bench_reference_by_name():
    res = pvmc("bench", "--reference", "rbm", "--moves", "2e4", "--repeats", "1", "--walkers", "4")
    assert res.returncode == 0, res.stderr
    assert "C reference (rbm_vmc_ref.c):" in res.stdout and "ratio ours / C" in res.stdout
