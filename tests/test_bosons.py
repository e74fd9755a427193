"""Trapped bosons: the elliptical trap, the anisotropic RBM Gaussian, hard spheres (the
interaction and the pair factor 1 - a/r) beyond the generic part tests
(test_parts.py: every part against its full ln psi and finite differences).

* exact non-interacting energies with zero variance: elliptical trap E/N = 1 + gamma/2,
  spherical 3D N = 100: E = 150 omega;
* the hard core: a move into an overlap is rejected before psi is evaluated, no walker
  ever holds r_pq <= a; initial positions without overlaps, an impossible density named;
* the factor's derivatives against finite differences close to the core;
* bad input: exit code 2 naming the key (Hypothesis-generated values).
"""

from __future__ import annotations

import math
import os

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz_config import run_cli

from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import from_dict
from parallel_vmc.hamiltonian.geometry import min_pair_distance
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System, potential_energy
from parallel_vmc.wavefunction import WaveFunction, compose, pair_jastrow

GAMMA = 2.82843


def build(system: dict, wavefunction: dict | None = None, sampler: dict | None = None):
    """(cfg, System, WaveFunction) of a config given by its sections."""
    cfg = from_dict(
        {
            "system": {"statistics": "bosons", **system},
            "wavefunction": {"init_scale": 0.0, **(wavefunction or {})},
            "sampler": sampler or {},
        }
    )
    sy = System.from_config(cfg.system)
    return cfg, sy, WaveFunction.from_config(cfg.wavefunction, sy)


def local_energy(sy, wf, theta, x):
    """E_L at x (M,): the kernel's kinetic energy plus the potential."""
    kp = wf.kernel_parts()
    kin, _, _ = compose.local_terms_at(theta, kp, x, sy.dimensions)
    return kin + potential_energy(x, sy)


# ------------------------------------------------------------------ exact energies
@pytest.mark.parametrize("P", [10, 50, 100])
@pytest.mark.parametrize("psi", ["sqrt", "full"])
def test_elliptical_trap_is_exact_without_interaction(P, psi):
    """a = b = W = 0 with the trap's own widths per axis: E_L = P (1 + gamma/2) at every
    configuration (zero variance), to round-off."""
    _, sy, wf = build(
        {"particles": P, "dimensions": 3, "omega": 1.0, "omega_z": GAMMA, "interaction": "none"},
        {"psi": psi, "hidden": 2},
    )
    assert wf.sigma_z == pytest.approx(math.sqrt((0.5 if psi == "sqrt" else 1.0) / GAMMA))
    theta = np.zeros(wf.layout.n_params)
    rng = np.random.default_rng(P)
    exact = P * (1.0 + GAMMA / 2)
    assert sy.non_interacting_energy() == pytest.approx(exact, rel=1e-15)
    for _ in range(5):
        x = rng.standard_normal(P * 3) * 1.5
        assert local_energy(sy, wf, theta, x) / P == pytest.approx(2.414215, abs=1e-15 * P + 1e-6)
        assert local_energy(sy, wf, theta, x) == pytest.approx(exact, rel=1e-13)


def test_spherical_3d_hundred_bosons():
    _, sy, wf = build(
        {"particles": 100, "dimensions": 3, "omega": 0.7, "interaction": "none"}, {"hidden": 3}
    )
    assert wf.sigma_z is None
    theta = np.zeros(wf.layout.n_params)
    x = np.random.default_rng(1).standard_normal(300)
    assert local_energy(sy, wf, theta, x) == pytest.approx(150 * 0.7, rel=1e-13)


def test_elliptical_run_has_zero_variance(tmp_path):
    """The whole run (importance sampling, production, summary) at the exact widths."""
    from conftest import run_config

    cfg = from_dict(
        {
            "system": {
                "particles": 10,
                "dimensions": 3,
                "omega": 1.0,
                "omega_z": GAMMA,
                "interaction": "none",
                "statistics": "bosons",
            },
            "wavefunction": {"hidden": 2, "init_scale": 0.0},
            "sampler": {"walkers_per_rank": 2, "thermalization": 50},
            "optimizer": {"iterations": 0},
            "production": {"samples": 256, "observables": False},
            "output": {"path": str(tmp_path / "e.h5")},
        }
    )
    import h5py

    run_config(cfg)
    with h5py.File(tmp_path / "e.h5", "r") as h5:
        energies = h5["production/local_energy"][...]
    np.testing.assert_allclose(energies / 10, 1 + GAMMA / 2, rtol=1e-13)


# ------------------------------------------------------------------ the hard core
def hard_config(P, D, a, jastrow, method="metropolis"):
    return build(
        {
            "particles": P,
            "dimensions": D,
            "omega": 1.0,
            "interaction": "hard_sphere",
            "hard_sphere_radius": a,
        },
        {"hidden": 2, "jastrow": jastrow},
        {"method": method},
    )


@pytest.mark.parametrize("jastrow", ["none", "hard_sphere"])
@pytest.mark.parametrize("method", ["metropolis", "importance"])
def test_no_walker_ever_holds_an_overlap(jastrow, method):
    """A dense gas (a = 0.35, 12 particles in 3D, steps that often land inside a core):
    after every sweep, no pair of any walker is at r <= a, and overlaps were proposed."""
    a, P, D = 0.35, 12, 3
    cfg, sy, wf = hard_config(P, D, a, jastrow, method)
    walkers = Walkers.start(3, 0, 8, P * D, 0.8, D, a)
    for x in walkers.positions:
        assert min_pair_distance(x, P, D) > a
    sampler = Sampler(method, 1.0 if method == "metropolis" else 0.3, sy, wf)
    theta = np.zeros(wf.layout.n_params)
    closest, accepted = np.inf, 0
    for _ in range(100):
        before = walkers.accepted.sum()
        sampler.produce(theta, walkers, 1, components=False)
        accepted += walkers.accepted.sum() - before
        closest = min(closest, min(min_pair_distance(x, P, D) for x in walkers.positions))
    assert closest > a
    assert closest < 1.2 * a  # the walkers did come close to the core
    assert 0 < accepted < 100 * P * 8


def test_move_into_the_core_has_ratio_zero_not_nan():
    """The pair factor's ratio of a move to r <= a is 0 (also to r = a exactly), its
    ln psi -inf: never a NaN, whatever error model."""
    _, sy, wf = hard_config(2, 3, 0.5, "hard_sphere")
    kp = wf.kernel_parts()
    theta = np.zeros(wf.layout.n_params)
    x = np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    for target in (0.5, 0.3, 0.0, 1.0 - 1e-12):
        dx = np.array([1.0 - target, 0.0, 0.0])  # particle 1 moved to r = target
        if target == 1.0 - 1e-12:
            dx = np.array([1e-12, 0.0, 0.0])  # particle 0 moves by a hair
            ratio = compose.move_ratio_at(theta, kp, x, 0, dx, 3)
            assert 0.0 < ratio < 1.0
            continue
        ratio = compose.move_ratio_at(theta, kp, x, 1, -dx, 3)
        assert ratio == 0.0
    y = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 0.0])
    assert compose.log_psi_at(theta, kp, y, 3) == -np.inf
    assert potential_energy(y, sy) == np.inf


@pytest.mark.parametrize("gap", [1e-3, 1e-2, 1e-1, 1.0])
def test_hard_sphere_slopes_near_the_core(gap):
    """u = ln(1 - a/r): u'(r)/r and u''(r) against finite differences of u at r = a (1 +
    gap), with a step small against r - a."""
    a = 0.0043
    r = a * (1.0 + gap)
    h = 1e-3 * (r - a)
    u = lambda t: pair_jastrow.hard_sphere_u(t, a)  # noqa: E731
    d1 = (u(r - 2 * h) - 8 * u(r - h) + 8 * u(r + h) - u(r + 2 * h)) / (12 * h)
    d2 = (-u(r - 2 * h) + 16 * u(r - h) - 30 * u(r) + 16 * u(r + h) - u(r + 2 * h)) / (12 * h * h)
    fr, f2 = pair_jastrow.hard_sphere_slopes(r, a)
    assert fr * r == pytest.approx(d1, rel=1e-9)
    assert f2 == pytest.approx(d2, rel=1e-5)
    # the Laplacian of ln f in 3D through f itself: (f'' + 2 f'/r)/f - (f'/f)^2
    f, f1, f2_ = 1 - a / r, a / r**2, -2 * a / r**3
    assert f2 + 2 * fr == pytest.approx((f2_ + 2 * f1 / r) / f - (f1 / f) ** 2, rel=1e-9)


def test_pair_gradient_and_laplacian_near_the_core():
    """Two particles at r = a (1 + 1e-2): the kernel's gradient and kinetic energy of the
    RBM x hard-sphere product against finite differences of its ln psi."""
    a, D = 0.2, 3
    _, sy, wf = hard_config(2, D, a, "hard_sphere")
    kp = wf.kernel_parts()
    theta = 0.1 * np.random.default_rng(2).standard_normal(wf.layout.n_params)
    direction = np.array([0.6, -0.48, 0.64])
    x = np.concatenate([0.1 * direction, (0.1 - a * 1.01) * direction])
    kin, grad, _ = compose.local_terms_at(theta, kp, x, D)
    h = 2e-5
    f = lambda y: compose.log_psi_at(theta, kp, y, D)  # noqa: E731
    g_fd, lap_fd = np.empty(6), 0.0
    for i in range(6):
        e = np.zeros(6)
        e[i] = h
        g_fd[i] = (f(x - 2 * e) - 8 * f(x - e) + 8 * f(x + e) - f(x + 2 * e)) / (12 * h)
        lap_fd += (-f(x - 2 * e) + 16 * f(x - e) - 30 * f(x) + 16 * f(x + e) - f(x + 2 * e)) / (
            12 * h * h
        )
    np.testing.assert_allclose(grad, g_fd, rtol=1e-7)
    assert kin == pytest.approx(-0.5 * (lap_fd + g_fd @ g_fd), rel=1e-5)


def test_initial_positions_avoid_overlaps_and_name_an_impossible_density():
    walkers = Walkers.start(1, 0, 4, 100 * 3, 0.7, 3, 0.2)
    for x in walkers.positions:
        assert min_pair_distance(x, 100, 3) > 0.2
    plain = Walkers.start(1, 0, 4, 30, 0.7)  # no hard core: as before
    again = Walkers.start(1, 0, 4, 30, 0.7, 3, 0.0)
    np.testing.assert_array_equal(plain.positions, again.positions)
    with pytest.raises(ConfigError, match="^system.hard_sphere_radius: "):
        Walkers.start(1, 0, 2, 100 * 3, 0.7, 3, 1.5)


# ------------------------------------------------------------------ bad input
BAD = st.one_of(
    st.builds(
        lambda a: (
            {"interaction": "hard_sphere", "hard_sphere_radius": a},
            "system.hard_sphere_radius",
        ),
        st.one_of(
            st.floats(max_value=0.0, allow_nan=False, allow_infinity=False),
            st.integers(max_value=0),
        ),
    ),
    st.builds(
        lambda D, wz: ({"dimensions": D, "omega_z": wz}, "system.omega_z"),
        st.integers(1, 2),
        st.floats(0.01, 100.0).filter(lambda w: w != 1.0),
    ),
    st.builds(
        lambda j: (
            {
                "particles": 1,
                "interaction": "hard_sphere",
                "hard_sphere_radius": 0.01,
                "dimensions": 3,
            }
            | ({"interaction": "none"} if j else {}),
            "system.particles",
        ),
        st.booleans(),
    ),
)


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(bad=BAD)
def test_bad_boson_input_exits_2_naming_the_key(bad, tmp_path_factory):
    values, key = bad
    system = {"particles": 4, "dimensions": 3, "omega": 1.0, "statistics": "bosons", **values}
    raw = {"system": system}
    if values.get("particles") == 1 and values.get("interaction") == "none":
        raw["wavefunction"] = {"jastrow": "hard_sphere"}
    path = tmp_path_factory.mktemp("bad") / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    code, err = run_cli(["validate", str(path)])
    assert code == 2, err
    assert err.startswith(f"pvmc: error: {key}: ") and len(err.splitlines()) == 1, err


def test_combinations_of_the_new_keys():
    with pytest.raises(ConfigError, match="^system.hard_sphere_radius: required"):
        from_dict(
            {
                "system": {
                    "particles": 2,
                    "dimensions": 3,
                    "omega": 1.0,
                    "interaction": "hard_sphere",
                    "statistics": "bosons",
                }
            }
        )
    with pytest.raises(ConfigError, match="^system.hard_sphere_radius: used only"):
        from_dict(
            {
                "system": {
                    "particles": 2,
                    "dimensions": 3,
                    "omega": 1.0,
                    "hard_sphere_radius": 0.1,
                    "statistics": "bosons",
                }
            }
        )
    with pytest.raises(ConfigError, match="^wavefunction.sigma_z: "):
        from_dict(
            {
                "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
                "wavefunction": {"sigma_z": 0.5},
            }
        )
    with pytest.raises(ConfigError, match="^system.omega_z: "):
        from_dict({"system": {"particles": 8, "dimensions": 3, "omega": 1.0, "omega_z": 2.0}})
    with pytest.raises(ConfigError, match="^sampler.method: gibbs"):
        from_dict(
            {
                "system": {
                    "particles": 2,
                    "dimensions": 3,
                    "omega": 1.0,
                    "interaction": "hard_sphere",
                    "hard_sphere_radius": 0.1,
                    "statistics": "bosons",
                },
                "wavefunction": {"jastrow": "none"},
                "sampler": {"method": "gibbs"},
            }
        )
    # omega_z equal to omega is allowed in any dimension; the defaults resolve
    cfg = from_dict(
        {
            "system": {
                "particles": 2,
                "dimensions": 2,
                "omega": 1.5,
                "omega_z": 1.5,
                "interaction": "hard_sphere",
                "hard_sphere_radius": 0.1,
                "statistics": "bosons",
            }
        }
    )
    assert cfg.wavefunction.jastrow == "hard_sphere"
    cfg = from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 1.5}})
    assert cfg.wavefunction.jastrow == "none"


# ------------------------------------------------------------------ the shipped configs
# Gaussian x prod (1 - a/r) at its optimal width (E/N, error): the RBM x hard-sphere
# factor (with variational widths) must reach these or lower within 3 error bars.
GAUSSIAN_OPTIMUM = {10: (2.43983, 0.00003), 50: (2.54525, 0.00013), 100: (2.6621, 0.0003)}


def run_shipped(name: str, path, overrides=()) -> dict:
    """The summary of configs/<name> run as shipped on one rank."""
    import io
    import pathlib

    from parallel_vmc.config.vmc import load_config
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run

    config = pathlib.Path(__file__).resolve().parent.parent / "configs" / name
    cfg = load_config(config, [f"output.path={path}", *overrides])
    return Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute().summary


def test_shipped_noninteracting_elliptic_config_is_exact(tmp_path):
    s = run_shipped(
        "bosons3d_elliptic_noninteracting.yaml",
        tmp_path / "e.h5",
        ["production.samples=4096", "sampler.thermalization=100"],
    )
    assert s["energy"] / 10 == pytest.approx(1 + GAMMA / 2, rel=1e-13)
    assert s["variance"] < 1e-20


@pytest.mark.slow
@pytest.mark.parametrize("P", [10, 50])
def test_hard_sphere_bosons_reach_the_gaussian_optimum(P, tmp_path):
    """configs/bosons3d_N{P}_elliptic.yaml as shipped (N = 10: about 1 minute, N = 50:
    about 10 minutes on one core): E/N at or below the optimal Gaussian x (1 - a/r)
    within 3 combined error bars, and the first pair-distance bin [0, a) empty."""
    import h5py

    path = tmp_path / f"n{P}.h5"
    s = run_shipped(f"bosons3d_N{P}_elliptic.yaml", path)
    reference, ref_error = GAUSSIAN_OPTIMUM[P]
    error = math.hypot(s["error"] / P, ref_error)
    assert s["energy"] / P <= reference + 3 * error, s
    with h5py.File(path, "r") as h5:
        pair = h5["production/observables/pair_distance"]
        edges, counts = pair["edges"][...], pair["counts"][...]
    assert edges[1] == pytest.approx(0.0043) and counts[0] == 0 and counts[1:].sum() > 0


# ------------------------------------------------------------------ densities along the axes
def test_axial_densities_integrate_to_the_particles_and_bin_by_hand():
    """production.axial_density (3D): rho = sqrt(x^2 + y^2) and z histograms, in the
    accumulator and as summarised (integral over the plane / over z = P)."""
    from parallel_vmc.runfile.schema import DENSITY_XY, DENSITY_Z, shell_volumes
    from parallel_vmc.sampling import observables as ob

    cfg = from_dict(
        {
            "system": {
                "particles": 2,
                "dimensions": 3,
                "omega": 1.0,
                "interaction": "none",
                "statistics": "bosons",
            },
            "production": {
                "axial_density": True,
                "density_bins": 4,
                "density_rmax": 2.0,
                "batches": 2,
            },
        }
    )
    layout = ob.Layout.from_config(cfg.production, System.from_config(cfg.system), 2)
    assert layout.n_axial == 4
    plain = ob.Layout.from_config(
        from_dict({"system": {"particles": 2, "dimensions": 3, "omega": 1.0}}).production,
        System.from_config(cfg.system),
        2,
    )
    assert plain.n_axial == 0 and plain.width == plain.off_axial  # off: as before
    acc = layout.zeros()
    x = np.array([0.3, 0.4, -1.2, 1.2, 1.6, 0.1])  # rho 0.5, 2.0; z -1.2, 0.1
    for b in range(2):
        ob.accumulate(acc, b, x, 2, 3, 1.0, 0.5, 0.5, 0.0, layout.spec())
    rho_hist = acc[0, layout.off_axial : layout.off_axial + 5]
    z_hist = acc[0, layout.off_axial + 5 : layout.off_axial + 10]
    np.testing.assert_array_equal(rho_hist, [0, 1, 0, 0, 1])  # 2.0: overflow
    np.testing.assert_array_equal(z_hist, [1, 0, 1, 0, 0])  # bins of width 1 from -2
    out = ob.summarize(acc, layout)
    xy, z = out[DENSITY_XY], out[DENSITY_Z]
    assert np.sum(xy["density"] * shell_volumes(xy["edges"], 2)) == pytest.approx(1.0)
    assert np.sum(z["density"] * np.diff(z["edges"])) == pytest.approx(2.0)
    assert xy["attrs"]["overflow"] == 2.0


def test_the_z_histogram_follows_omega_z():
    """omega_z = 4 omega: the cloud is half as wide along z, and so is the z histogram:
    [-1, 1) for density_rmax 2 (bins of 0.5 by hand, the kernel's binning)."""
    from parallel_vmc.runfile.schema import DENSITY_Z
    from parallel_vmc.sampling import observables as ob

    cfg = from_dict(
        {
            "system": {"particles": 2, "dimensions": 3, "omega": 1.0, "omega_z": 4.0},
            "production": {
                "axial_density": True,
                "density_bins": 4,
                "density_rmax": 2.0,
                "batches": 2,
            },
        }
    )
    layout = ob.Layout.from_config(cfg.production, System.from_config(cfg.system), 2)
    assert layout.z_half == 1.0 and layout.r_max == 2.0
    acc = layout.zeros()
    x = np.array([0.3, 0.4, -0.8, 1.2, 1.6, 0.1])  # z -0.8, 0.1
    ob.accumulate(acc, 0, x, 2, 3, 1.0, 0.5, 0.5, 0.0, layout.spec())
    z_hist = acc[0, layout.off_axial + 5 : layout.off_axial + 10]
    np.testing.assert_array_equal(z_hist, [1, 0, 1, 0, 0])
    z = ob.summarize(acc, layout)[DENSITY_Z]
    np.testing.assert_allclose(z["edges"], [-1.0, -0.5, 0.0, 0.5, 1.0])
    assert np.sum(z["density"] * np.diff(z["edges"])) == pytest.approx(2.0)


@pytest.mark.parametrize(
    "a,bins,width",
    [
        (0.0043, 1861, 0.0043),  # a narrower than the default bins: bins of a
        (0.5, 112, 0.5 / 7),  # wider: the widest bins below 0.08 that divide a
        (1e-5, 100, 0.08),  # too narrow to resolve in 20000 bins: the default
    ],
)
def test_default_pair_bins_put_an_edge_at_the_hard_core(a, bins, width):
    from parallel_vmc.sampling.obs_layout import pair_geometry

    cfg = from_dict(
        {
            "system": {
                "particles": 4,
                "dimensions": 3,
                "omega": 1.0,
                "interaction": "hard_sphere",
                "hard_sphere_radius": a,
                "statistics": "bosons",
            }
        }
    )
    n, outer = pair_geometry(cfg.production, cfg.system, 4.0)  # default reach 8
    assert n == bins and outer / n == pytest.approx(width)
    assert 8.0 <= outer < 8.0 + width * (1 + 1e-9)
    edges = np.linspace(0.0, outer, n + 1)
    assert (np.min(np.abs(edges - a)) < 1e-9 * a) == (bins != 100)
    # set by hand: as given
    given_bins = from_dict({**cfg.to_dict(), "production": {"pair_bins": 30}}).production
    assert pair_geometry(given_bins, cfg.system, 4.0) == (30, 8.0)
    plain = from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 1.0}})
    assert pair_geometry(plain.production, plain.system, 4.0) == (100, 8.0)


def test_analysis_compares_the_axial_densities_of_two_runs(tmp_path):
    """Two 3D runs with axial densities (with and without hard spheres): python -m
    analysis --plots writes each run's figure and the comparison."""
    from conftest import run_config

    from analysis.cli import main as analysis_main

    paths = []
    for name, system in (
        ("free", {"interaction": "none"}),
        ("hard", {"interaction": "hard_sphere", "hard_sphere_radius": 0.1}),
    ):
        cfg = from_dict(
            {
                "system": {
                    "particles": 4,
                    "dimensions": 3,
                    "omega": 1.0,
                    "omega_z": GAMMA,
                    "statistics": "bosons",
                    **system,
                },
                "wavefunction": {"hidden": 2},
                "sampler": {"walkers_per_rank": 2, "thermalization": 20},
                "optimizer": {"iterations": 0},
                "production": {
                    "samples": 512,
                    "axial_density": True,
                    "density_bins": 20,
                    "batches": 4,
                },
                "output": {"path": str(tmp_path / f"{name}.h5")},
            }
        )
        run_config(cfg)
        paths.append(str(tmp_path / f"{name}.h5"))
    code = analysis_main([*paths, "--plots", str(tmp_path / "plots")])
    assert code == 0
    names = set(p.name for p in (tmp_path / "plots").iterdir())
    assert {
        "free_density_axes.png",
        "hard_density_axes.png",
        "density_axes_comparison.png",
    } <= names
    import h5py

    from parallel_vmc.runfile import schema as S

    with h5py.File(paths[1]) as h5:
        obs = h5["production/observables"]
        z_edges, pair_edges = obs["density_z/edges"][...], obs["pair_distance/edges"][...]
        sigma_z = h5["wavefunction"].attrs[S.SIGMA_Z]
    r_max = 4.0  # density_rmax null: 4 / sqrt(omega)
    assert z_edges[0] == pytest.approx(-r_max / math.sqrt(GAMMA))  # the range follows omega_z
    assert np.min(np.abs(pair_edges - 0.1)) < 1e-12  # pair_bins null: an edge at a
    assert sigma_z == pytest.approx(math.sqrt(0.5 / GAMMA))  # exact width along z


def test_bosons_are_reported_per_particle_with_their_widths(tmp_path, capsys):
    """The summary and python -m analysis give E/N beside E for bosons (as the
    literature on trapped bosons quotes it), and sigma_z, the variational widths and
    their values; the pair-distance plot gets its panel near the hard core."""
    import json

    from conftest import run_config

    from analysis.cli import main as analysis_main
    from parallel_vmc.run import report
    from parallel_vmc.runfile import schema as S

    system = {
        "particles": 4,
        "dimensions": 3,
        "omega": 1.0,
        "omega_z": GAMMA,
        "statistics": "bosons",
        "interaction": "hard_sphere",
        "hard_sphere_radius": 0.1,
    }
    cfg = from_dict(
        {
            "system": system,
            "wavefunction": {"hidden": 2},
            "sampler": {"walkers_per_rank": 2, "thermalization": 20},
            "optimizer": {"iterations": 0},
            "production": {"samples": 512, "axial_density": True, "density_bins": 20},
            "output": {"path": str(tmp_path / "b.h5")},
        }
    )
    result = run_config(cfg)
    s = result.summary
    sy = System.from_config(cfg.system)
    line = report.per_particle_lines(s, sy)
    per_particle = f"{s['energy'] / 4:.7f} +- {s['error'] / 4:.7f}"
    assert line == [f"E/N           {per_particle} (blocking, N = 4)"]
    dot = from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 1.0}}).system
    assert report.per_particle_lines(s, System.from_config(dot)) == []  # fermions: E
    # the analysis: E/N, sigma_z and, once the file has them, the variational widths
    with h5py.File(tmp_path / "b.h5", "r+") as h5:
        config = yaml.safe_load(h5.attrs["config"])
        config["wavefunction"]["variational_widths"] = True
        h5.attrs["config"] = yaml.safe_dump(config)
        h5["wavefunction"][S.WIDTH_SHIFT] = np.array([0.0125, -0.25])
    capsys.readouterr()  # the run's own summary
    assert analysis_main([str(tmp_path / "b.h5"), "--plots", str(tmp_path / "p")]) == 0
    text = capsys.readouterr().out
    rows = dict(line.split(None, 1) for line in text.splitlines() if len(line.split()) > 1)
    e_n = rows["E/N"]
    assert e_n.startswith(per_particle) and "N = 4" in e_n
    assert "RBM x variational widths" in rows["wavefunction"]
    assert f"sigma_z={math.sqrt(0.5 / GAMMA):.6g}" in rows["wavefunction"]
    assert rows["widths"].startswith("delta_xy=0.0125, delta_z=-0.25")
    assert analysis_main([str(tmp_path / "b.h5"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["energy_per_particle"]["mean"] == pytest.approx(s["energy"] / 4)
    assert os.path.getsize(tmp_path / "p" / "b_pair_distance.png") > 1000
