"""Fermions: the Slater part's algebra and physics beyond the part tests of
``test_parts.py`` (which check ln|det|, its move ratio, gradient, Laplacian and
d/d alpha against numpy and finite differences).

* closed-shell energies without interaction, exact with zero variance (2D N = 6, 12, 20;
  3D N = 8, 20; two omegas), with Metropolis and with drift-limited importance sampling;
* the Sherman-Morrison inverse after 10^4 accepted moves against numpy's inverse;
* exchange of two electrons of the same spin flips the sign of psi;
* drift-limited importance sampling samples |psi|^2 (virial: <V_trap> = E/2);
* config: closed shells only for fermions, Gibbs refused with determinants.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import from_dict
from parallel_vmc.sampling.kernels import limit_drift
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System
from parallel_vmc.wavefunction import WaveFunction, compose, slater

SHELLS = {(6, 2): 10, (12, 2): 28, (20, 2): 60, (8, 3): 18, (20, 3): 60}  # E / omega


class _Serial:
    def allreduce_sum(self, buf):
        return buf


NARROW = 4  # hidden units: a narrow layer whatever P. Each layer class (rbm.WIDE_LAYER,
# WIDEST_LAYER) is a kernel of its own to compile, and the RBM is the identity here
# (a = b = W = 0); test_parts.py checks the wide layer's code.


def fermions(P, D, omega=1.0, interaction="none", hidden=NARROW, **wf):
    """(system, wf, theta at a = b = W = 0, alpha = 1) for P fermions."""
    cfg = from_dict(
        {
            "system": {"particles": P, "dimensions": D, "omega": omega, "interaction": interaction},
            "wavefunction": {"hidden": hidden, **wf},
        }
    )
    system = System.from_config(cfg.system)
    wave = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wave.layout.initial(0.0, np.random.default_rng(0))
    return system, wave, theta


@pytest.mark.parametrize("P,D", list(SHELLS))
@pytest.mark.parametrize("omega", [1.0, 0.28])
@pytest.mark.parametrize("method,step", [("metropolis", 1.0), ("importance", 0.2)])
def test_closed_shells_without_interaction_are_exact(P, D, omega, method, step):
    system, wave, theta = fermions(P, D, omega)
    assert wave.has_determinants and system.non_interacting_energy() == SHELLS[P, D] * omega
    w = Walkers.start(3, 0, 4, P * D, 1.5 / np.sqrt(omega))
    sampler = Sampler(method, step / omega, system, wave)
    sampler.thermalize(theta, w, 200, _Serial())
    e, *_ = sampler.produce(theta, w, 150, components=False)
    E = SHELLS[P, D] * omega
    assert np.max(np.abs(e - E)) < 1e-9 * E
    assert e.var() < 1e-12 * E * E


@njit(cache=True)
def _walk(theta, r, j, s, e, x, D, n_accept, seed):
    """Metropolis walk under |psi|^2 through the kernel's operations, never rebuilding
    the Slater inverses, until n_accept moves were accepted; returns the cache."""
    np.random.seed(seed)
    rc, jc, sc, ec = compose.new_caches(theta, r, j, s, e, x, D)
    P = x.shape[0] // D
    dx = np.empty(D)
    accepted, k = 0, 0
    while accepted < n_accept:
        p = k % P
        k += 1
        for d in range(D):
            dx[d] = 1.2 * (np.random.random() - 0.5)
        log_q, factor = compose.move_ratio(theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D)
        if np.random.random() < np.exp(log_q) * factor:
            compose.commit(theta, r, rc, j, jc, s, sc, e, ec, x, p, dx, D, False)
            accepted += 1
    return sc


def _numpy_inverse(wave, theta, x, spin):
    """Dinv of one spin from numpy: Hermite series at sqrt(alpha omega) x, then inv."""
    P, D = wave.particles, wave.dimensions
    n = P // 2
    alpha = wave.layout.block(theta, "orbital_scale")[0]
    pos = x.reshape(P, D)[spin * n : (spin + 1) * n] * np.sqrt(alpha * wave.omega)
    q = slater.quantum_numbers(n, D)
    H = np.polynomial.hermite.hermval
    mat = np.array(
        [
            [np.prod([H(r[d], np.eye(q[j, d] + 1)[q[j, d]]) for d in range(D)]) for j in range(n)]
            for r in pos
        ]
    )
    return np.linalg.inv(mat)


@pytest.mark.parametrize("P,D", [(12, 2), (20, 2), (20, 3)])
def test_sherman_morrison_inverse_after_ten_thousand_accepted_moves(P, D):
    system, wave, theta = fermions(P, D, interaction="coulomb", jastrow="pade")
    theta += 0.02 * np.random.default_rng(P).standard_normal(theta.size)
    kp = wave.kernel_parts()
    x = np.random.default_rng(D).standard_normal(P * D) * 1.5
    sc = _walk(theta, *kp, x, D, 10_000, 7)
    n = P // 2
    sl = slater.slots(kp.antisymmetric, D)
    for spin in (0, 1):
        T = sc[sl[slater.INV] + spin * n * n :][: n * n].reshape(n, n)  # T[k, j] = Dinv[j, k]
        assert np.max(np.abs(T.T - _numpy_inverse(wave, theta, x, spin))) < 1e-9


@pytest.mark.parametrize("P,D", [(6, 2), (12, 2), (8, 3)])
def test_same_spin_exchange_flips_the_sign(P, D):
    system, wave, theta = fermions(P, D)
    s = wave.kernel_parts().antisymmetric
    rng = np.random.default_rng(P)
    n = P // 2
    for _ in range(5):
        x = rng.standard_normal(P * D)
        ln0, sign0 = slater.signed_log_psi(theta, s, x, D)
        for p, q in ((0, 1), (n, P - 1)):  # up-up, down-down
            y = x.reshape(P, D).copy()
            y[[p, q]] = y[[q, p]]
            ln1, sign1 = slater.signed_log_psi(theta, s, y.ravel(), D)
            assert ln1 == pytest.approx(ln0, rel=1e-12, abs=1e-12) and sign1 == -sign0


def test_opposite_spin_exchange_has_no_definite_symmetry():
    """Spins are assigned to particles (first half up): exchanging an up and a down
    electron changes |psi| in general, so psi is neither symmetric nor antisymmetric
    under it (the spin-assigned form of the antisymmetric state)."""
    system, wave, theta = fermions(6, 2)
    s = wave.kernel_parts().antisymmetric
    x = np.random.default_rng(1).standard_normal(12)
    y = x.reshape(6, 2).copy()
    y[[0, 5]] = y[[5, 0]]
    assert abs(slater.log_psi(theta, s, y.ravel(), 2) - slater.log_psi(theta, s, x, 2)) > 0.1


@pytest.mark.parametrize("limit", [1.0, 50.0])
def test_drift_limited_importance_sampling_samples_psi_squared(limit):
    """Non-interacting N = 6 (2D): the trap energy averages E/2 = 5 omega (virial
    theorem); a wrong Green's function of the limited drift would bias it. The error bar
    is the spread of 32 independent walker means; the bound is 4.5 of them."""
    omega = 1.0
    system, wave, theta = fermions(6, 2, omega)
    w = Walkers.start(5, 0, 32, 12, 1.5)
    sampler = Sampler("importance", 0.4, system, wave, drift_limit=limit)
    sampler.thermalize(theta, w, 200, _Serial())
    e, parts, *_ = sampler.produce(theta, w, 3000, components=True)
    trap = parts[1].mean(axis=1)
    err = trap.std(ddof=1) / np.sqrt(trap.size)
    assert abs(trap.mean() - 5.0 * omega) < 4.5 * err
    assert err < 0.05


def test_limited_drift_formula():
    """Against the textbook form (sqrt(1 + 2t) - 1) / t where it has no cancellation
    (t > 1e-3), the factor 1 - t/2 + ... for small t, and the length bound."""
    rng = np.random.default_rng(0)
    for _ in range(50):
        g = rng.standard_normal(2) * rng.choice([1e-3, 1.0, 1e3])
        a, tau = rng.uniform(0.1, 2.0), rng.uniform(0.01, 1.0)
        v = g.copy()
        limit_drift(v, tau, a, 2)
        t = a * (g @ g) * tau
        expected = (np.sqrt(1 + 2 * t) - 1) / t if t > 1e-3 else 1 - t / 2 + t * t / 2
        np.testing.assert_allclose(v, g * expected, rtol=1e-9)
        assert np.linalg.norm(v) <= np.sqrt(2.0 / (a * tau)) * (1 + 1e-12)
    v = np.array([1e200, -1e200])  # near a node the drift is bounded, not NaN
    limit_drift(v, 0.1, 1.0, 2)
    assert np.all(np.isfinite(v)) and np.linalg.norm(v) <= np.sqrt(2.0 / 0.1)


def _raw(P, D, statistics="fermions", **sampler):
    return {
        "system": {
            "particles": P,
            "dimensions": D,
            "omega": 1.0,
            "statistics": statistics,
            "interaction": "none",  # the closed shells of any D (no Coulomb in 1D)
        },
        "sampler": sampler,
    }


@settings(max_examples=60, deadline=None)
@given(P=st.integers(1, 80), D=st.integers(1, 3))
def test_fermion_counts_are_closed_shells(P, D):
    allowed = {
        1: [p for p in range(2, 61, 2)],
        2: [2, 6, 12, 20, 30, 42, 56],
        3: [2, 8, 20, 40, 70],
    }[D]
    if P in allowed:
        assert from_dict(_raw(P, D)).system.particles == P
        return
    with pytest.raises(ConfigError) as err:
        from_dict(_raw(P, D))
    text = str(err.value)
    assert text.startswith("system.particles:") and "statistics: bosons" in text
    if D > 1:
        assert ", ".join(map(str, allowed)) in text
    assert from_dict(_raw(P, D, "bosons")).system.particles == P


def test_gibbs_is_refused_with_determinants():
    with pytest.raises(ConfigError, match="sampler.method: gibbs.*system.statistics"):
        from_dict(_raw(6, 2, method="gibbs"))
    assert from_dict(_raw(2, 2, method="gibbs")).sampler.method == "gibbs"
    assert from_dict(_raw(6, 2, "bosons", method="gibbs")).sampler.method == "gibbs"


def test_a_stored_config_from_before_fermions_reads_as_bosons():
    """Run files written before ``system.statistics`` existed hold bosonic runs of any
    P: resuming one must not add determinants (its theta has no orbital scale)."""
    from parallel_vmc.config.vmc import config_from_yaml_text

    old = "system: {particles: 3, dimensions: 2, omega: 1.0}\n"
    assert config_from_yaml_text(old).system.statistics == "bosons"
    new = "system: {particles: 6, dimensions: 2, omega: 1.0, statistics: fermions}\n"
    assert config_from_yaml_text(new).system.statistics == "fermions"


def test_three_fermions_exit_2_and_three_bosons_run(tmp_path):
    """The command line: nothing is written for the refused config; the same count as
    bosons runs to the end."""
    import contextlib
    import io

    from parallel_vmc.cli import main as cli

    cfg = tmp_path / "three.yaml"
    cfg.write_text(
        "system: {particles: 3, dimensions: 2, omega: 1.0}\n"
        "sampler: {walkers_per_rank: 4, thermalization: 20}\n"
        "optimizer: {iterations: 2, samples_per_iteration: 256}\n"
        "production: {samples: 512}\n"
    )
    out = tmp_path / "three.h5"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", str(cfg), "-o", str(out)])
    assert code == 2 and not out.exists()
    assert "system.particles: 3" in err.getvalue() and "2, 6, 12, 20" in err.getvalue()
    assert "Traceback" not in err.getvalue()
    with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(
            ["run", str(cfg), "-o", str(out), "--quiet", "--set", "system.statistics=bosons"]
        )
    assert code == 0 and out.exists()


@pytest.mark.slow
def test_six_electrons_at_omega_one_beat_slater_jastrow_vmc(tmp_path):
    """configs/dot2d_N6_omega1.0.yaml as shipped (about 3 minutes on one core): above
    DMC 20.15932 and below 20.190 (the published Slater-Jastrow VMC is 20.1918(2)),
    each within 3 blocking error bars. Measured: 20.18144 +- 0.00026."""
    import io
    import pathlib

    from parallel_vmc.config.vmc import load_config
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run

    path = pathlib.Path(__file__).resolve().parent.parent / "configs" / "dot2d_N6_omega1.0.yaml"
    cfg = load_config(path, [f"output.path={tmp_path / 'n6.h5'}"])
    s = Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute().summary
    assert s["error"] < 1e-3
    assert 20.15932 - 3 * s["error"] <= s["energy"] <= 20.190 - 3 * s["error"], s


def test_the_periodic_rebuild_keeps_the_local_energy():
    """Inverses rebuilt every sweep or never within the call: the same moves (the same
    streams; the drift, and so each proposal, equal to round-off, so positions agree to
    1e-10 where one flipped acceptance would differ by O(1)), the same local energies
    to 1e-9 relative, and the rebuilds saw a drift at round-off level."""
    out = []
    for every in (1, 10_000):
        system, wave, theta = fermions(12, 2, interaction="coulomb", determinant_refresh=every)
        theta += 0.02 * np.random.default_rng(3).standard_normal(theta.size)
        w = Walkers.start(4, 0, 4, 24, 1.5)
        e, *_ = Sampler("importance", 0.1, system, wave).produce(theta, w, 300, False)
        out.append((e, w.positions.copy(), w.inverse_drift.copy()))
    (e1, x1, d1), (e2, x2, d2) = out
    np.testing.assert_allclose(x1, x2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(e1, e2, rtol=1e-9)
    assert (0 < d1).all() and (d1 < 1e-9).all() and (d2 < 0).all()  # d2: not measured
