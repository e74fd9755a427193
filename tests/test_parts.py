"""Every registered wave-function part, alone and in every combination, against ln psi.

The combinations come from the registry (``wavefunction.PARTS``): the RBM with each
subset of the optional parts that supports the dimension (at most one pair part), for
psi = sqrt and full, in D = 1, 2, 3 (in 3D every other seed is an elliptical trap with
its own RBM width along z). At random parameters and configurations (with the
hard-sphere factor: no pair closer than three times its radius):

* ln psi from the jitted parts equals an independent numpy formula of each part;
* the ratio of a single-particle move (``compose.move_ratio``, the function the kernel
  accepts with, called through ``compose.move_ratio_at``) equals
  |psi(x')|^2 / |psi(x)|^2 from the full ln psi (relative 1e-10);
* the gradient, the kinetic energy (Laplacian) and d ln psi / d theta equal finite
  differences of ln psi; the drift at x and at the proposal of importance sampling is
  grad ln psi there; after an accepted move (importance sampling or Metropolis, which
  commit differently) the caches give what fresh ones give;
* the Green's-function ratio of the Langevin proposal equals the ratio of the two
  Gaussian proposal densities.

A new part is tested here by being registered in ``PARTS`` and by adding its numpy
ln psi to ``REFERENCE``.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from parallel_vmc.config.vmc import from_dict
from parallel_vmc.hamiltonian.geometry import min_pair_distance
from parallel_vmc.sampling.kernels import langevin_log_green
from parallel_vmc.system import System
from parallel_vmc.wavefunction import PAIR_PARTS, PARTS, WaveFunction, compose

# 3 bosons (up, up, down for the Jastrow cusps): both kinds of spin pairs; fermions
# with determinants: the smallest closed shell beyond 2 (both kinds of pairs too).
P_BOSONS = 3
P_FERMIONS = {1: 4, 2: 6, 3: 8}
# The config that selects each optional part (the registry says it in words).
HARD_SPHERE_RADIUS = 0.05
CLEARANCE = 3  # random configurations keep pairs beyond CLEARANCE radii (see fd_step)
# Hidden units: 3 (a narrow layer) in every combination, and 9 (a wide one, see
# rbm.WIDE_LAYER: its own vectorised code, not a multiple of its four partial sums) in
# the plain RBM (2D, 3D, so the z axis's scaling too) and with widths, the Padé factor
# and determinants in 2D.
NARROW, WIDE = 3, 9
SELECT = {
    "widths": {"wavefunction": {"variational_widths": True}},
    "pade": {"wavefunction": {"jastrow": "pade"}},
    "hard_sphere": {
        "wavefunction": {"jastrow": "hard_sphere"},
        "system": {"interaction": "hard_sphere", "hard_sphere_radius": HARD_SPHERE_RADIUS},
    },
    "slater": {"system": {"statistics": "fermions"}},
    "relative_gaussian": {"wavefunction": {"extra_factor": "relative_gaussian"}},
}


def n_particles(D, parts):
    return P_FERMIONS[D] if "slater" in parts else P_BOSONS


def fd_step(parts):
    """(finite-difference step, relative tolerance of the kinetic energy). ln|det|
    varies fast near the nodes (gradients ~20 at these configurations): the
    fourth-order error h^4 f^(5) of the second derivative was 4e-5 at h = 1e-3 and
    falls as h^4 towards the kernel's value (checked down to 2.5e-4), so a smaller step;
    its round-off, ~5e-16 |ln psi| / h^2 per coordinate, sets the tolerance 1e-6. The
    same for ln(1 - a/r), whose n-th derivative grows as 1/(r - a)^n: h^4 24/(r - a)^5
    is 2e-8 at the clearance r - a = 2a = 0.1."""
    return (3e-4, 1e-6) if "slater" in parts or "hard_sphere" in parts else (1e-3, 1e-7)


def rbm_reference(wf, theta, x, D):
    """ln F^c with F the RBM marginal, summed over the hidden units in numpy; each
    coordinate with its axis' width (sigma along x, y; sigma_z along z)."""
    a, b, W = wf.layout.split(theta)
    widths = (
        np.array([wf.sigma, wf.sigma, wf.width_z][:D] * (x.size // D))
        if D == 3
        else np.full(x.size, wf.sigma)
    )
    inv_s2 = 1.0 / widths**2
    u = b + (x * inv_s2) @ W
    return wf.c * (-0.5 * np.sum((x - a) ** 2 * inv_s2) + np.sum(np.logaddexp(0.0, u)))


def widths_reference(wf, theta, x, D):
    """-1/2 sum_i delta_i x_i^2: delta_z on the z coordinates (3D), delta_xy elsewhere."""
    delta_xy, delta_z = wf.layout.block(theta, "width_shift")
    delta = np.full(x.size, delta_xy)
    if D == 3:
        delta[2::3] = delta_z
    return -0.5 * float(np.sum(delta * x * x))


def hard_sphere_reference(wf, theta, x, D):
    """sum_{p<q} ln(1 - a/r_pq) in numpy (all pairs apart: r > a)."""
    pos = x.reshape(-1, D)
    r = [np.linalg.norm(pos[p] - pos[q]) for p, q in itertools.combinations(range(pos.shape[0]), 2)]
    return float(np.sum(np.log(1.0 - HARD_SPHERE_RADIUS / np.array(r))))


def pade_reference(wf, theta, x, D):
    """J = sum_{p<q} A r / (1 + beta r) in numpy, with the cusps of the closed-shell
    spins written out: particles 0 .. ceil(P/2)-1 up, A = 1/(D+1) for parallel spins
    and 1/(D-1) for antiparallel ones."""
    beta_anti, beta_para = wf.layout.betas(theta)
    pos = x.reshape(-1, D)
    up = np.arange(pos.shape[0]) < (pos.shape[0] + 1) // 2
    total = 0.0
    for p, q in itertools.combinations(range(pos.shape[0]), 2):
        r = np.linalg.norm(pos[p] - pos[q])
        A, beta = (1 / (D + 1), beta_para) if up[p] == up[q] else (1 / (D - 1), beta_anti)
        total += A * r / (1.0 + beta * r)
    return total


def slater_reference(wf, theta, x, D):
    """ln|det D_up det D_down| - (alpha - 1) omega |x|^2 / 2 with numpy's physicists'
    Hermite series and slogdet; the orbitals' quantum numbers written out shell by
    shell."""
    shells = {
        1: [(0,), (1,), (2,), (3,)],
        2: [(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)],
        3: [(0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1)],
    }[D]
    alpha = wf.layout.block(theta, "orbital_scale")[0]
    pos = x.reshape(-1, D) * np.sqrt(alpha * wf.omega)
    n = pos.shape[0] // 2

    def hermite(m, t):
        return np.polynomial.hermite.hermval(t, np.eye(m + 1)[m])

    total = -0.5 * (alpha - 1.0) * wf.omega * np.sum(x * x)
    for rows in (pos[:n], pos[n:]):
        mat = np.array(
            [[np.prod([hermite(q[d], r[d]) for d in range(D)]) for q in shells[:n]] for r in rows]
        )
        total += np.linalg.slogdet(mat)[1]
    return total


def relative_gaussian_reference(wf, theta, x, D):
    """-g sum_{p<q} |x_p - x_q|^2, pair by pair."""
    g = wf.layout.block(theta, "relative_gaussian_g")[0]
    pos = x.reshape(-1, D)
    pairs = itertools.combinations(range(pos.shape[0]), 2)
    return -g * float(sum(np.sum((pos[p] - pos[q]) ** 2) for p, q in pairs))


REFERENCE = {
    "rbm": rbm_reference,
    "widths": widths_reference,
    "pade": pade_reference,
    "hard_sphere": hard_sphere_reference,
    "slater": slater_reference,
    "relative_gaussian": relative_gaussian_reference,
}


def combinations():
    """(D, psi, parts) for every registered combination; a part of the generic slot
    alone with the RBM and with every other role filled (each combination of parts is a
    kernel of its own: 25-50 s to compile)."""
    optional = [p for p in PARTS if p.name in SELECT and p.role != "generic"]
    for D, psi in itertools.product((1, 2, 3), ("sqrt", "full")):
        usable = [p for p in optional if p.min_dimensions <= D]
        for k in range(len(usable) + 1):
            for chosen in itertools.combinations(usable, k):
                names = tuple(p.name for p in chosen)
                if sum(name in PAIR_PARTS for name in names) <= 1:  # one pair part
                    yield D, psi, ("rbm",) + names
        for generic in (p.name for p in PARTS if p.role == "generic"):
            yield D, psi, ("rbm", generic)
            if D >= 2:
                yield D, psi, ("rbm", "widths", "pade", "slater", generic)


WIDE_COMBOS = (
    (2, "sqrt", ("rbm",)),
    (3, "sqrt", ("rbm",)),
    (2, "sqrt", ("rbm", "widths", "pade", "slater")),
)


def with_layer_sizes(combos):
    """(D, psi, parts, hidden): every combination narrow, WIDE_COMBOS also wide (each
    is a kernel of its own to compile: all of them wide took 14 more minutes)."""
    return [(D, psi, parts, NARROW) for D, psi, parts in combos] + [
        (D, psi, parts, WIDE) for D, psi, parts in combos if (D, psi, parts) in WIDE_COMBOS
    ]


COMBOS = with_layer_sizes(list(combinations()))


def make(D, psi, parts, seed, hidden=NARROW):
    """(wf, theta, x, rng) at random parameters and positions for one combination."""
    rng = np.random.default_rng(seed)
    P = n_particles(D, parts)
    raw = {
        "system": {"particles": P, "dimensions": D, "omega": 1.3, "statistics": "bosons"},
        "wavefunction": {"hidden": hidden, "psi": psi, "sigma": 0.9},
    }
    if D == 1:  # the default Coulomb interaction has no 1D (the parts do not care)
        raw["system"]["interaction"] = "none"
    if D == 3 and seed % 2 == 1 and "slater" not in parts:  # elliptical trap
        raw["system"]["omega_z"] = 2.1
        raw["wavefunction"]["sigma_z"] = 0.6
    for name in parts[1:]:
        for section, values in SELECT[name].items():
            raw[section].update(values)
    cfg = from_dict(raw)
    wf = WaveFunction.from_config(cfg.wavefunction, System.from_config(cfg.system))
    assert wf.layout.parts == parts
    theta = 0.4 * rng.standard_normal(wf.layout.n_params)
    if "pade" in parts:
        wf.layout.betas(theta)[:] = rng.uniform(0.3, 2.0, 2)
    if "slater" in parts:
        wf.layout.block(theta, "orbital_scale")[:] = rng.uniform(0.7, 1.3)
    x = rng.standard_normal(P * D)
    while "hard_sphere" in parts and min_pair_distance(x, P, D) <= CLEARANCE * HARD_SPHERE_RADIUS:
        x = rng.standard_normal(P * D)
    return wf, theta, x, rng


def log_psi(wf, theta, x, D):
    return compose.log_psi_at(theta, wf.kernel_parts(), x, D)


def d1(f, x, i, h=1e-3):
    """Fourth-order central first derivative of f along coordinate i."""

    def at(t):
        y = x.copy()
        y[i] += t
        return f(y)

    return (at(-2 * h) - 8 * at(-h) + 8 * at(h) - at(2 * h)) / (12 * h)


def d2(f, x, i, h=1e-3):
    """Fourth-order central second derivative of f along coordinate i."""

    def at(t):
        y = x.copy()
        y[i] += t
        return f(y)

    return (-at(-2 * h) + 16 * at(-h) - 30 * at(0.0) + 16 * at(h) - at(2 * h)) / (12 * h * h)


IDS = [
    f"D{D}-{psi}-{'x'.join(parts)}" + ("" if hidden == NARROW else f"-H{hidden}")
    for D, psi, parts, hidden in COMBOS
]


@pytest.mark.parametrize("D,psi,parts,hidden", COMBOS, ids=IDS)
def test_log_psi_is_the_product_of_the_parts(D, psi, parts, hidden):
    for seed in range(5):
        wf, theta, x, _ = make(D, psi, parts, seed, hidden)
        expected = sum(REFERENCE[name](wf, theta, x, D) for name in parts)
        assert log_psi(wf, theta, x, D) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("D,psi,parts,hidden", COMBOS, ids=IDS)
def test_move_ratio_is_the_ratio_of_psi_squared(D, psi, parts, hidden):
    for seed in range(5):
        wf, theta, x, rng = make(D, psi, parts, seed, hidden)
        kp = wf.kernel_parts()
        for p in range(n_particles(D, parts)):
            dx = 0.7 * rng.standard_normal(D)
            y = x.copy()
            y[p * D : (p + 1) * D] += dx
            expected = np.exp(2.0 * (log_psi(wf, theta, y, D) - log_psi(wf, theta, x, D)))
            got = compose.move_ratio_at(theta, kp, x, p, dx, D)
            assert got == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("D,psi,parts,hidden", COMBOS, ids=IDS)
def test_gradient_kinetic_energy_and_parameter_derivatives(D, psi, parts, hidden):
    for seed in range(3):
        wf, theta, x, _ = make(D, psi, parts, seed, hidden)
        kp = wf.kernel_parts()
        n = wf.layout.n_params
        kin, grad, O = compose.local_terms_at(theta, kp, x, D)
        f = lambda y: log_psi(wf, theta, y, D)  # noqa: E731
        g_fd = np.array([d1(f, x, i, fd_step(parts)[0]) for i in range(x.size)])
        h, tol = fd_step(parts)
        lap_fd = sum(d2(f, x, i, h) for i in range(x.size))
        np.testing.assert_allclose(grad, g_fd, rtol=1e-8, atol=1e-8)
        assert kin == pytest.approx(-0.5 * (lap_fd + g_fd @ g_fd), rel=tol, abs=tol)
        fp = lambda th: log_psi(wf, th, x, D)  # noqa: E731
        O_fd = np.array([d1(fp, theta, k, fd_step(parts)[0]) for k in range(n)])
        np.testing.assert_allclose(O, O_fd, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("D,psi,parts,hidden", COMBOS, ids=IDS)
@pytest.mark.parametrize("with_drift", [True, False], ids=["importance", "metropolis"])
def test_drift_is_grad_ln_psi_and_commit_keeps_the_caches(D, psi, parts, hidden, with_drift):
    for seed in range(3):
        wf, theta, x, rng = make(D, psi, parts, seed, hidden)
        kp = wf.kernel_parts()
        f = lambda y: log_psi(wf, theta, y, D)  # noqa: E731
        for p in range(n_particles(D, parts)):
            dx = 0.5 * rng.standard_normal(D)
            while (
                "hard_sphere" in parts
                and min_pair_distance(
                    x + np.eye(len(x) // D)[p].repeat(D) * np.tile(dx, len(x) // D), len(x) // D, D
                )
                <= CLEARANCE * HARD_SPHERE_RADIUS
            ):  # no accepted overlap
                dx = 0.5 * rng.standard_normal(D)
            g_old, g_new, y, kin, O = compose.move_and_commit_at(theta, kp, x, p, dx, D, with_drift)
            moved = x.copy()
            moved[p * D : (p + 1) * D] += dx
            np.testing.assert_array_equal(y, moved)
            coords = range(p * D, (p + 1) * D)
            kin_fresh, _, O_fresh = compose.local_terms_at(theta, kp, moved, D)
            # Sherman-Morrison's updated inverse differs from a fresh one by ~cond(D)
            # eps: 5e-12 relative seen (D3-full-rbmxwidthsxhard_spherexslater)
            tol = 1e-10 if "slater" in parts else 1e-12
            assert kin == pytest.approx(kin_fresh, rel=tol, abs=tol)
            np.testing.assert_allclose(O, O_fresh, rtol=1e-12, atol=1e-12)
            if not with_drift:
                continue
            # A proposal may land next to a node, where ln|det| changes on the scale
            # 1/|grad|: the step shrinks with it (round-off ~1e-16 |ln psi| / h).
            for g, at in ((g_old, x), (g_new, moved)):
                h = fd_step(parts)[0] / max(1.0, np.abs(g).max() / 20.0)
                np.testing.assert_allclose(
                    g, [d1(f, at, i, h) for i in coords], rtol=1e-8, atol=1e-8
                )


@pytest.mark.parametrize("D", [1, 2, 3])
def test_green_function_ratio_is_the_ratio_of_proposal_densities(D):
    rng = np.random.default_rng(D)
    for _ in range(20):
        step = rng.uniform(0.05, 1.0)
        dx, g_old, g_new = rng.standard_normal((3, D))
        log_q0 = rng.standard_normal()
        # ln G(x | x') - ln G(x' | x), G(y | z) = exp(-|y - z - step g(z)|^2 / (2 step))
        backward = -np.sum((-dx - step * g_new) ** 2) / (2 * step)
        forward = -np.sum((dx - step * g_old) ** 2) / (2 * step)
        got = langevin_log_green(log_q0, dx, g_old, g_new, step, D)
        assert got == pytest.approx(log_q0 + backward - forward, rel=1e-12, abs=1e-12)


def test_every_registered_part_is_combined_and_has_a_reference():
    names = {p.name for p in PARTS}
    assert names == set(REFERENCE)
    assert names == {name for _, _, parts, _ in COMBOS for name in parts}


@pytest.mark.coldcache
def test_a_broken_formula_fails_these_tests(tmp_path):
    """The tests above can fail: flip the sign of the Padé u'(r) in a copy of the
    package and run them on it (a fresh numba cache, so the copy is compiled)."""
    import pathlib
    import shutil
    import subprocess
    import sys

    from conftest import ROOT, subprocess_env

    root = pathlib.Path(ROOT)
    shutil.copytree(
        root / "parallel_vmc",
        tmp_path / "parallel_vmc",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copy(root / "tests" / "test_parts.py", tmp_path / "test_parts.py")
    shutil.copy(root / "tests" / "conftest.py", tmp_path / "conftest.py")
    module = tmp_path / "parallel_vmc" / "wavefunction" / "pair_jastrow.py"
    text = module.read_text()
    right = "return A / (t * t * r), "
    assert text.count(right) == 1
    module.write_text(text.replace(right, "return -A / (t * t * r), "))
    env = subprocess_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    env["PYTHONPATH"] = str(tmp_path)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_parts.py",
            "-k",
            "D2-sqrt-rbmxpade and not slater and not broken",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 1, out.stdout[-2000:]
    assert "2 failed, 3 passed" in out.stdout, out.stdout[-2000:]
