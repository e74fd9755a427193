"""Production observables: binning, the exact non-interacting density and pair
distribution, the virial theorem, the energy parts against quadrature, and the parts
adding up to the local energy sample by sample in a full run."""

import math
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from conftest import make_config, run_config
from scipy import special, stats
from test_sampling import (
    XCHECK_A,
    XCHECK_B,
    XCHECK_ENERGY,
    XCHECK_INTERACTION,
    XCHECK_KINETIC,
    XCHECK_TRAP,
    XCHECK_W,
)

from parallel_vmc import wavefunction as wfm
from parallel_vmc.sampling import observables as ob
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System


class _Serial:
    def allreduce_sum(self, buf):
        return buf


def make_layout(system, n_samples, **overrides):
    prod = dict(
        batches=32, density_bins=40, density_rmax=None, image_bins=16, pair_bins=40, pair_rmax=None
    )
    prod.update(overrides)
    return ob.Layout.from_config(SimpleNamespace(**prod), system, n_samples)


def sample(
    method,
    step,
    P,
    D,
    omega,
    coulomb=False,
    theta=None,
    N=2,
    n_samples=4000,
    walkers=32,
    seed=3,
    chunk=1000,
):
    """Produce n_samples sweeps per walker (psi = sqrt(F), exact non-interacting sigma)
    and return (layout, summarize(...)) of the accumulated observables."""
    system = System(P, D, omega, coulomb)
    sigma = wfm.exact_sigma(omega, "sqrt")
    wf = wfm.WaveFunction(wfm.Layout(P * D, N), sigma, "sqrt", P, D)
    theta = np.zeros(wf.layout.n_params) if theta is None else theta
    w = Walkers.start(seed, 0, walkers, P * D, sigma)
    sampler = Sampler(method, step, system, wf)
    sampler.thermalize(theta, w, 500, _Serial())
    layout = make_layout(system, n_samples)
    acc = layout.zeros()
    for t0 in range(0, n_samples, chunk):  # in chunks, as the driver calls it
        sampler.produce(
            theta, w, min(chunk, n_samples - t0), False, acc, layout.spec(), t0, n_samples
        )
    return layout, ob.summarize(acc, layout)


def radial_cdf(r, D, omega):
    """P(|r_p| < r) for the non-interacting ground state, |psi|^2 ~ exp(-omega r^2)."""
    return special.gammainc(D / 2.0, omega * np.asarray(r) ** 2)


def pearson_pvalue(counts, probs):
    """Pearson chi-square p-value of observed counts against cell probabilities that
    sum to 1 (cells with fewer than 5 expected counts pooled into one)."""
    counts = np.asarray(counts, dtype=float)
    expected = counts.sum() * np.asarray(probs)
    small = expected < 5
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    chi2 = np.sum((obs - exp) ** 2 / exp)
    return stats.chi2.sf(chi2, obs.size - 1)


def radial_cells(summary, D, omega):
    """Observed counts and exact probabilities of the radial bins plus overflow."""
    d = summary["density"]
    cdf = radial_cdf(d["edges"], D, omega)
    probs = np.append(np.diff(cdf), 1.0 - cdf[-1])
    return np.append(d["counts"], d["attrs"]["overflow"]), probs


def test_binning_matches_numpy_histograms():
    """The jitted accumulation against numpy on random configurations, including
    particles outside every histogram and a NaN coordinate (counted as overflow)."""
    rng = np.random.default_rng(0)
    P, D = 3, 2
    system = System(P, D, 1.0, True)
    layout = make_layout(
        system, 100, density_bins=10, image_bins=6, pair_bins=8, density_rmax=2.0, pair_rmax=3.0
    )
    X = 1.2 * rng.standard_normal((500, P * D))
    acc = layout.zeros()
    for t, x in enumerate(X):
        ob.accumulate(
            acc,
            ob.batch_of(t % 100, layout.n_batches, 100),
            x,
            P,
            D,
            1.0,
            0.5,
            0.25,
            0.25,
            layout.spec(),
        )
    s = ob.summarize(acc, layout)
    pts = X.reshape(-1, D)
    r = np.linalg.norm(pts, axis=1)
    counts, _ = np.histogram(r, np.linspace(0, 2.0, 11))
    np.testing.assert_array_equal(s["density"]["counts"], counts)
    assert 0 < s["density"]["attrs"]["overflow"] == pts.shape[0] - counts.sum()
    img, _, _ = np.histogram2d(pts[:, 0], pts[:, 1], bins=6, range=[[-2, 2], [-2, 2]])
    np.testing.assert_array_equal(s["density_image"]["counts"], img)
    assert s["density_image"]["attrs"]["overflow"] == pts.shape[0] - img.sum()
    xyz = X.reshape(-1, P, D)
    pairs = np.stack(
        [np.linalg.norm(xyz[:, p] - xyz[:, q], axis=1) for p in range(P) for q in range(p + 1, P)]
    )  # (pairs, samples)
    pc, _ = np.histogram(pairs, np.linspace(0, 3.0, 9))
    np.testing.assert_array_equal(s["pair_distance"]["counts"], pc)
    assert s["scalars"]["r12"]["mean"] == pytest.approx(pairs.mean(), rel=1e-12)
    # A NaN coordinate (a broken walker) lands in the overflow bins, nowhere else.
    nan_acc = layout.zeros()
    x = X[0].copy()
    x[0] = np.nan
    ob.accumulate(nan_acc, 0, x, P, D, 1.0, 0.5, 0.25, 0.25, layout.spec())
    bad = ob.summarize(nan_acc, layout)
    assert bad["density"]["attrs"]["overflow"] >= 1
    assert bad["density"]["counts"].sum() + bad["density"]["attrs"]["overflow"] == P
    assert bad["pair_distance"]["attrs"]["overflow"] == 2  # the pairs of particle 0
    assert s["attrs"]["samples"] == 500
    assert s["scalars"]["kinetic"]["mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("D", [1, 2, 3])
def test_gibbs_one_body_density_is_the_exact_gaussian(D):
    """Non-interacting ground state: Gibbs draws at a = W = 0 are independent, so the
    radial counts follow the exact multinomial (Pearson chi-square); a trap 3 % off in
    omega is rejected by the same test."""
    omega = 0.8
    layout, s = sample("gibbs", 1.0, 2, D, omega)
    counts, probs = radial_cells(s, D, omega)
    assert pearson_pvalue(counts, probs) > 1e-3
    _, wrong = radial_cells(s, D, 1.03 * omega)
    assert pearson_pvalue(counts, wrong) < 1e-6
    # rho integrates to the number of particles (nothing is in the overflow here).
    d = s["density"]
    volume = {1: 2.0, 2: math.pi, 3: 4 * math.pi / 3}[D] * np.diff(d["edges"] ** D)
    assert np.sum(d["density"] * volume) == pytest.approx(2.0, rel=1e-3)


def test_gibbs_density_image_is_the_exact_gaussian():
    omega = 0.8
    layout, s = sample("gibbs", 1.0, 2, 2, omega)
    img = s["density_image"]
    cdf = stats.norm.cdf(img["x_edges"], scale=math.sqrt(1 / (2 * omega)))
    pix = np.outer(np.diff(cdf), np.diff(cdf)).ravel()
    counts = np.append(img["counts"].ravel(), img["attrs"]["overflow"])
    assert pearson_pvalue(counts, np.append(pix, 1 - pix.sum())) > 1e-3


@pytest.mark.parametrize("method,step", [("metropolis", 1.5), ("importance", 0.4)])
def test_correlated_samplers_density_within_batch_errors(method, step):
    """Metropolis samples are correlated: the density is compared bin by bin with its
    batch-means error (chi-square over bins with enough counts), and a 3 % wrong
    omega fails the same comparison."""
    omega, D = 0.8, 2
    layout, s = sample(method, step, 2, D, omega, n_samples=8000, seed=4)
    d = s["density"]
    ok = d["counts"] > 200
    nu = layout.n_batches - 1

    def chi2_pvalue(om):
        exact = 2 * np.diff(radial_cdf(d["edges"], D, om)) / (math.pi * np.diff(d["edges"] ** 2))
        z2 = ((d["density"][ok] - exact[ok]) / d["error"][ok]) ** 2
        # Each z^2 uses an error estimated from nu + 1 batches: t^2 with nu degrees of
        # freedom, not chi^2(1). Their sum is matched to a scaled chi-square by its
        # first two moments.
        mean = ok.sum() * nu / (nu - 2)
        var = ok.sum() * 2 * nu**2 * (nu - 1) / ((nu - 2) ** 2 * (nu - 4))
        scale = var / (2 * mean)
        return stats.chi2.sf(z2.sum() / scale, 2 * mean**2 / var)

    assert chi2_pvalue(omega) > 1e-3
    assert chi2_pvalue(1.03 * omega) < 1e-6


@pytest.mark.parametrize(
    "method,step,D", [("gibbs", 1.0, 2), ("metropolis", 1.5, 3), ("importance", 0.4, 2)]
)
def test_virial_theorem_noninteracting(method, step, D):
    """Harmonic trap, exact ground state: <T> = <V_trap> = E/2 = P D omega / 4, within
    the batch-means error (T - V_trap has its own batch means; T + V is constant)."""
    omega, P = 0.7, 3
    _, s = sample(method, step, P, D, omega)
    t, v = s["scalars"]["kinetic"], s["scalars"]["trap"]
    diff = t["batch_means"] - v["batch_means"]
    err = diff.std(ddof=1) / math.sqrt(diff.size)
    assert err > 0
    assert abs(diff.mean()) < 3 * err, (t["mean"], v["mean"], err)
    assert abs(t["mean"] - P * D * omega / 4) < 4 * t["error"]
    assert s["scalars"]["local_energy"]["mean"] == pytest.approx(P * D * omega / 2, abs=1e-10)
    assert s["scalars"]["interaction"]["mean"] == 0.0


def test_gibbs_pair_distance_is_rayleigh():
    """Two free particles in 2D: r_12 = |x_1 - x_2| with Normal(0, 1/omega) components,
    a Rayleigh distribution of mean sqrt(pi / (2 omega))."""
    omega = 0.8
    _, s = sample("gibbs", 1.0, 2, 2, omega)
    pair = s["pair_distance"]
    cdf = 1.0 - np.exp(-omega * pair["edges"] ** 2 / 2)
    counts = np.append(pair["counts"], pair["attrs"]["overflow"])
    assert pearson_pvalue(counts, np.append(np.diff(cdf), 1 - cdf[-1])) > 1e-3
    r12 = s["scalars"]["r12"]
    assert abs(r12["mean"] - math.sqrt(math.pi / (2 * omega))) < 4 * r12["error"]
    assert pair["attrs"]["mean"] == r12["mean"]


@pytest.mark.parametrize("method,step", [("gibbs", 1.0), ("importance", 0.3)])
def test_energy_parts_of_a_fixed_rbm_match_quadrature(method, step):
    """Interacting electrons, a fixed random RBM whose <T>, <V_trap>, <V_int> are known
    by quadrature: the accumulated parts agree within 4 batch-means errors."""
    P, D, N = 2, 2, 3
    wf_layout = wfm.Layout(P * D, N)
    theta = wf_layout.join(XCHECK_A, XCHECK_B, XCHECK_W)
    _, s = sample(method, step, P, D, 1.0, coulomb=True, theta=theta, N=N, n_samples=2**13, seed=5)
    sc = s["scalars"]
    for name, exact in (
        ("kinetic", XCHECK_KINETIC),
        ("trap", XCHECK_TRAP),
        ("interaction", XCHECK_INTERACTION),
        ("local_energy", XCHECK_ENERGY),
    ):
        assert abs(sc[name]["mean"] - exact) < 4 * sc[name]["error"], (name, sc[name], exact)
        assert sc[name]["error"] < 0.01


def test_run_writes_observables_and_parts_add_up(tmp_path):
    """A full run with the Padé-Jastrow factor and stored components: kinetic + trap +
    interaction = E_L sample by sample, the observables' means are those of the stored
    series, and every particle and pair is counted once."""
    P = 3
    cfg = make_config(
        tmp_path / "obs.h5",
        system={"particles": P, "dimensions": 2, "omega": 0.5, "statistics": "bosons"},
        wavefunction={"hidden": 3, "jastrow": "pade"},
        sampler={"walkers_per_rank": 8, "thermalization": 200},
        optimizer={"iterations": 5, "samples_per_iteration": 2048},
        production={"samples": 2**15, "store_components": True, "batches": 16},
    )
    run_config(cfg)
    with h5py.File(tmp_path / "obs.h5", "r") as h5:
        prod = h5["production"]
        e = prod["local_energy"][()]
        kin, trap, inter = (prod[k][()] for k in ("kinetic", "trap", "interaction"))
        np.testing.assert_allclose(kin + trap + inter, e, rtol=1e-13, atol=1e-13)
        assert np.all(inter > 0) and np.all(trap > 0)
        obs = prod["observables"]
        n = e.size
        assert obs.attrs["samples"] == n and obs.attrs["n_batches"] == 16
        for name, series in (
            ("local_energy", e),
            ("kinetic", kin),
            ("trap", trap),
            ("interaction", inter),
        ):
            assert obs[name].attrs["mean"] == pytest.approx(series.mean(), rel=1e-12)
            assert obs[name].shape == (16,)
            # batch k = sweeps [k n/16, (k+1) n/16) of every chain
            length = e.shape[1] // 16
            assert obs[name][3] == pytest.approx(
                series[:, 3 * length : 4 * length].mean(), rel=1e-12
            )
        assert prod.attrs["energy_allreduced"] == pytest.approx(e.mean(), rel=1e-12)
        dens = obs["density"]
        assert dens["counts"][()].sum() + dens.attrs["overflow"] == P * n
        pair = obs["pair_distance"]
        assert pair["counts"][()].sum() + pair.attrs["overflow"] == n * P * (P - 1) // 2
        img = obs["density_image"]
        assert img["counts"].shape == (64, 64)
        assert img["counts"][()].sum() + img.attrs["overflow"] == P * n
        assert 0 < obs.attrs["energy_error_batch_means"]
        assert h5["summary"].attrs["error"] == obs.attrs["energy_error_blocking"]


def test_observables_can_be_switched_off(tmp_path):
    cfg = make_config(
        tmp_path / "off.h5",
        system={"particles": 2, "dimensions": 3, "omega": 1.0},
        sampler={"walkers_per_rank": 4, "thermalization": 100},
        optimizer={"iterations": 2, "samples_per_iteration": 512},
        production={"samples": 4096, "observables": False},
    )
    run_config(cfg)
    with h5py.File(tmp_path / "off.h5", "r") as h5:
        assert "observables" not in h5["production"]
        assert "obs_totals" not in h5["checkpoint"]


def test_chain_count_change_before_production_resizes_the_accumulators(tmp_path, monkeypatch):
    """Stopped while optimizing, resumed with another chain count (as on another rank
    count) whose samples per chain give another number of batches: production still
    runs and the observables count every sample of the new chains."""
    import io

    from conftest import interrupted_run

    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run
    from parallel_vmc.runfile import checkpoint

    sections = dict(
        system={"particles": 2, "dimensions": 2, "omega": 1.0},
        optimizer={"iterations": 6, "samples_per_iteration": 512},
        production={"samples": 128, "batches": 32},
    )
    cfg = make_config(tmp_path / "r.h5", sampler={"walkers_per_rank": 8}, **sections)
    interrupted_run(cfg, monkeypatch, at_call=3)
    state = checkpoint.read(checkpoint.path_for(cfg.output.path))
    assert state[1]["obs_totals"].shape[0] == 16  # 128 / 8 chains per chain
    fewer = make_config(tmp_path / "r.h5", sampler={"walkers_per_rank": 2}, **sections)
    Run(fewer, SerialComm(), stream=io.StringIO(), progress=False, resume=state).execute()
    with h5py.File(tmp_path / "r.h5", "r") as h5:
        obs = h5["production/observables"]
        assert obs.attrs["samples"] == h5["production/local_energy"].size == 128
        assert obs.attrs["n_batches"] == 32


@pytest.mark.parametrize("every", [1, 3])
def test_batches_and_every_kth_sweep_match_the_energy_series(every):
    """Production in uneven chunks: each batch row holds exactly the sweeps t with
    t * K // n == b and t % every == 0 (COUNT), and its E column is the sum of those
    sweeps' stored local energies. Checks the kernel's stepping through the batches
    and production.observables_every against the energy series."""
    P, D, n, walkers = 2, 2, 1000, 4
    system = System(P, D, 1.0, True)
    sigma = wfm.exact_sigma(1.0, "sqrt")
    wf = wfm.WaveFunction(wfm.Layout(P * D, 2), sigma, "sqrt", P, D)
    theta = np.zeros(wf.layout.n_params)
    w = Walkers.start(5, 0, walkers, P * D, sigma)
    sampler = Sampler("importance", 0.3, system, wf)
    layout = make_layout(system, n, batches=7)
    acc = layout.zeros()
    energies, t0 = [], 0
    for chunk in (1, 29, 300, 7, 663):
        e, _, _, _ = sampler.produce(theta, w, chunk, False, acc, layout.spec(every), t0, n)
        energies.append(e)
        t0 += chunk
    e = np.concatenate(energies, axis=1)  # (walkers, n)
    t = np.arange(n)
    batch = t * layout.n_batches // n
    seen = t % every == 0
    count = np.bincount(batch[seen], minlength=layout.n_batches) * walkers
    np.testing.assert_array_equal(acc[:, ob.COUNT], count)
    e_sum = np.bincount(batch[seen], weights=e[:, seen].sum(axis=0), minlength=layout.n_batches)
    np.testing.assert_allclose(acc[:, ob.E], e_sum, rtol=1e-12)
