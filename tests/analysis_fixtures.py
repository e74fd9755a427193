"""Shared helpers of the analysis tests: AR(1) series and run files in the pvmc schema."""

from __future__ import annotations

from math import gamma as gamma_fn

import numpy as np
import yaml
from scipy.signal import lfilter


def ar1(phi: float, n: int, seed: int, chains: int | None = None) -> np.ndarray:
    """Stationary AR(1) x_t = phi x_{t-1} + e_t, e_t ~ N(0, 1); shape (n,) or (chains, n)."""
    rng = np.random.default_rng(seed)
    shape = (n,) if chains is None else (chains, n)
    e = rng.standard_normal(shape)
    x0 = rng.standard_normal(shape[:-1] + (1,)) / np.sqrt(1.0 - phi**2)
    return lfilter([1.0], [1.0, -phi], e, axis=-1, zi=phi * x0)[0]


def ar1_exact_sem(phi: float, n: int) -> float:
    """Exact standard error of the mean of n stationary AR(1) samples (unit innovations).

    Var(mean) = sigma_x^2 / n [1 + 2 sum_{k=1}^{n-1} (1 - k/n) phi^k],
    sum = phi/(1-phi) - phi (1 - phi^n) / (n (1-phi)^2), sigma_x^2 = 1/(1-phi^2).
    """
    var_x = 1.0 / (1.0 - phi**2)
    s = phi / (1.0 - phi) - phi * (1.0 - phi**n) / (n * (1.0 - phi) ** 2)
    return float(np.sqrt(var_x / n * (1.0 + 2.0 * s)))


def ar1_tau(phi: float) -> float:
    return (1.0 + phi) / (1.0 - phi)


CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0, "interaction": "coulomb"},
    "wavefunction": {
        "hidden": 4,
        "psi": "sqrt",
        "sigma": None,
        "init_scale": 0.001,
        "jastrow": "none",
    },
    "sampler": {"method": "importance", "step": 0.5, "walkers_per_rank": 4, "thermalization": 100},
    "optimizer": {
        "method": "adam",
        "learning_rate": 0.05,
        "iterations": 20,
        "samples_per_iteration": 1024,
    },
    "production": {"samples": 16384},
    "output": {"path": "run.h5", "checkpoint_every": 300, "max_walltime": None},
    "seed": 2026,
}


def write_run_file(
    path,
    *,
    format_version=1,
    status="completed",
    omega=1.0,
    n_iter=20,
    mpi_size=2,
    walkers_per_rank=2,
    n_samples=4096,
    samples_per_chain=None,
    energy=3.0,
    phi=0.5,
    seed=1,
    production=True,
    components=True,
    density=True,
    observables=None,
    summary=True,
    shift_chain=None,
    shift=0.0,
    system=None,
    checksums=False,
    sampler=None,
    energies=None,
):
    """Write a file in the pvmc schema (docs/runfile.md) with AR(1) local energies.

    format_version 1: datasets exactly as long as their data. 2 and 3: growing datasets
    allocated in full (NaN beyond the data) with the counters
    /optimization/rows_written and /production/samples_written, and the production
    attribute samples_per_chain only once completed. Energy parts (``components``):
    kinetic and potential (formats 1-2) or kinetic, trap and interaction (format 3).
    ``density`` (formats 1-2): the flat /production/observables/density_counts and
    density_edges. ``observables`` (format 3): a dict from :func:`gaussian_observables`,
    written as the /production/observables group. ``system``: entries replacing those
    of CONFIG["system"] (particles, dimensions, ...); ``sampler`` likewise for
    CONFIG["sampler"]. ``energies``: (n_chains, samples) local energies to store
    instead of the AR(1) ones (with n_samples = samples). ``checksums``: the
    production series and the optimization parameters chunked with HDF5's Fletcher32
    checksum filter (as pvmc is to write them).

    Columns beyond samples_per_chain (a running run) are filled with NaN, which an
    analysis must never touch. Returns the (n_chains, samples_per_chain) energies.
    """
    import h5py

    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["system"]["omega"] = omega
    cfg["system"].update(system or {})
    cfg["sampler"].update(sampler or {})
    cfg["sampler"]["walkers_per_rank"] = walkers_per_rank
    cfg["seed"] = seed
    n_chains = mpi_size * walkers_per_rank
    filled = n_samples if samples_per_chain is None else samples_per_chain
    counters = format_version >= 2
    rng = np.random.default_rng(seed)

    def checked(group, name, data):
        """group[name] = data, chunked with a Fletcher32 checksum if asked."""
        if checksums:
            group.create_dataset(name, data=data, chunks=True, fletcher32=True)
        else:
            group[name] = data

    with h5py.File(path, "w") as h5:
        a = h5.attrs
        a["format_version"] = format_version
        a["package_version"] = "0.1.0"
        a["created"] = "2026-01-02T03:04:05+00:00"
        a["config"] = yaml.safe_dump(cfg, sort_keys=False)
        a["mpi_size"] = mpi_size
        a["walkers_per_rank"] = walkers_per_rank
        a["seed"] = seed
        a["numba_version"] = "0.60.0"
        a["numpy_version"] = np.__version__
        a["mpi4py_version"] = "4.0.0"
        a["hostname"] = "node001"
        a["status"] = status
        opt = h5.create_group("optimization")
        spare = 5 if counters else 0  # allocated rows not yet written
        it = np.arange(n_iter)
        e_opt = energy + 0.5 * np.exp(-it / 5.0) + 0.01 * rng.standard_normal(n_iter)

        def rows(values):
            values = np.asarray(values)
            pad = np.full(
                (spare,) + values.shape[1:],
                np.nan if values.dtype.kind == "f" else -1,
                dtype=values.dtype,
            )
            return np.concatenate([values, pad])

        opt["iteration"] = rows(it.astype(np.int64))
        opt["energy"] = rows(e_opt)
        opt["energy_error"] = rows(np.full(n_iter, 0.01))
        opt["variance"] = rows(0.1 + np.exp(-it / 5.0))
        opt["acceptance"] = rows(np.full(n_iter, 0.95))
        opt["grad_norm"] = rows(np.exp(-it / 5.0))
        opt["learning_rate"] = rows(np.full(n_iter, 0.05))
        opt["wall_time"] = rows(0.1 * it.astype(float))
        checked(opt, "params", rows(rng.standard_normal((n_iter, 14))))
        if counters:
            opt["rows_written"] = np.array([n_iter], dtype=np.int64)
        e = None
        if production:
            prod = h5.create_group("production")
            e = (
                energy + 0.1 * ar1(phi, filled, seed + 1000, chains=n_chains)
                if energies is None
                else np.array(energies, dtype=float)
            )
            if shift_chain is not None:
                e[shift_chain] += shift

            def series(values):
                full = np.full((n_chains, n_samples), np.nan)
                full[:, :filled] = values
                return full

            checked(prod, "local_energy", series(e))
            if components:
                checked(prod, "kinetic", series(0.5 * e))
                if format_version >= 3:
                    checked(prod, "trap", series(0.3 * e))
                    checked(prod, "interaction", series(0.2 * e))
                else:
                    checked(prod, "potential", series(0.5 * e))
            if counters:
                prod["samples_written"] = np.array([filled], dtype=np.int64)
            if not counters or status == "completed":
                method = cfg["sampler"]["method"]
                prod.attrs["acceptance"] = 0.97
                # pvmc stores the sampler's step; gibbs never uses (or tunes) it
                prod.attrs["step"] = cfg["sampler"]["step"] if method == "gibbs" else 0.31
                prod.attrs["sampler"] = method
                prod.attrs["samples_per_chain"] = filled
            if density and format_version < 3:
                obs = prod.create_group("observables")
                edges = np.linspace(0.0, 4.0, 41)
                r = np.abs(rng.standard_normal(20000)) + np.abs(rng.standard_normal(20000))
                obs["density_counts"] = np.histogram(r, edges)[0]
                obs["density_edges"] = edges
            if observables is not None:
                write_observables(prod, observables)
        wf = h5.create_group("wavefunction")
        wf["a"] = np.zeros(4)
        wf["b"] = np.zeros(4)
        wf["W"] = np.zeros((4, 4))
        wf["sigma"] = 1.0
        wf.attrs["kind"] = "rbm"
        wf.attrs["psi"] = "sqrt"
        if summary and status == "completed" and e is not None:
            s = h5.create_group("summary")
            s.attrs["energy"] = float(e.mean())
            s.attrs["error"] = 0.001
            s.attrs["variance"] = float(e.var())
            s.attrs["tau_int"] = 3.0
            s.attrs["n_samples"] = int(e.size)
        seg = h5.create_group("segments")
        str_dt = h5py.string_dtype()
        seg["mpi_size"] = np.array([mpi_size], dtype=np.int64)
        seg["first_iteration"] = np.array([0], dtype=np.int64)
        seg["last_iteration"] = np.array([n_iter], dtype=np.int64)
        seg.create_dataset("start_time", data=["2026-01-02T03:04:05+00:00"], dtype=str_dt)
        seg.create_dataset("end_time", data=["2026-01-02T03:14:05+00:00"], dtype=str_dt)
        seg.create_dataset("hostname", data=["node001"], dtype=str_dt)
        seg.create_dataset("ended", data=[status.split(":")[0]], dtype=str_dt)
    return e


def _batch_means(per_batch_sums, per_batch_samples):
    """(mean over all samples, batch-means error) of per-batch sums (K, ...)."""
    k = per_batch_sums.shape[0]
    means = per_batch_sums / per_batch_samples
    return (
        per_batch_sums.sum(axis=0) / (k * per_batch_samples),
        means.std(axis=0, ddof=1) / np.sqrt(k),
    )


def gaussian_observables(
    *,
    particles=2,
    dimensions=2,
    n_batches=16,
    samples=16384,
    r_max=3.0,
    bins=30,
    image_bins=12,
    pair_bins=30,
    blocking_error=None,
    error_attrs=True,
    seed=3,
):
    """The /production/observables of format 3 from ``samples`` independent draws of P
    non-interacting particles in the D-dimensional trap with omega = 1 (|psi|^2 ~
    exp(-sum_p |r_p|^2): every coordinate is N(0, 1/2)), cut into ``n_batches``
    equal batches, normalised as the producer does.

    Returns {"attrs": group attrs, "scalars": {name: {"batch_means", "mean", "error"}},
    "density", "density_image" (D = 2), "pair_distance" (P > 1): {arrays, "attrs"},
    "exact": the bin averages of the exact rho(r) = P exp(-r^2) / pi^(D/2), of the
    exact rho(x, y) and of the exact pair-distance density (chi distribution with D
    degrees of freedom), same keys}. Per sample: trap = sum |r_p|^2 / 2, kinetic =
    P D / 2 - trap (the local kinetic energy of the exact ground state), a softened
    Coulomb interaction sum_{p<q} 1 / sqrt(r_pq^2 + 1/4) (finite variance),
    local_energy = their sum, r12 = mean of r_pq over the pairs.

    blocking_error: the energy_error_blocking attribute (default: equal to the
    batch-means error, as for independent samples); error_attrs=False leaves both
    energy-error attributes out.
    """
    from scipy.special import erf, gammainc

    rng = np.random.default_rng(seed)
    per = samples // n_batches
    samples = per * n_batches
    P, D, K = particles, dimensions, n_batches
    x = rng.standard_normal((K, per, P, D)) / np.sqrt(2.0)
    r = np.linalg.norm(x, axis=-1)  # (K, per, P)
    pairs = [(p, q) for p in range(P) for q in range(p + 1, P)]
    rpq = (
        np.stack([np.linalg.norm(x[:, :, p] - x[:, :, q], axis=-1) for p, q in pairs], axis=-1)
        if pairs
        else np.zeros((K, per, 0))
    )  # (K, per, n_pairs)
    trap = 0.5 * (r**2).sum(-1)
    per_sample = {
        "kinetic": 0.5 * P * D - trap,
        "trap": trap,
        "interaction": (1.0 / np.sqrt(rpq**2 + 0.25)).sum(-1),
    }
    per_sample["local_energy"] = (
        per_sample["kinetic"] + per_sample["trap"] + per_sample["interaction"]
    )
    if pairs:
        per_sample["r12"] = rpq.mean(-1)
    out = {"scalars": {}, "exact": {}}
    for name, values in per_sample.items():
        sums = values.sum(axis=1)
        mean, error = _batch_means(sums, per)
        out["scalars"][name] = {
            "batch_means": sums / per,
            "mean": float(mean),
            "error": float(error),
        }

    def histogram(values, edges, norm, total):
        """values (K, per, m) -> per-batch counts in the bins of edges -> schema dict."""
        counts = np.stack([np.histogram(v.ravel(), edges)[0] for v in values]).astype(float)
        density, error = _batch_means(counts / norm, per)
        return {
            "edges": edges,
            "counts": counts.sum(0),
            "density": density,
            "error": error,
            "attrs": {"overflow": float(total - counts.sum())},
        }

    edges = np.linspace(0.0, r_max, bins + 1)
    unit_ball = np.pi ** (D / 2) / gamma_fn(D / 2 + 1)
    shells = unit_ball * np.diff(edges**D)
    dens = histogram(r, edges, shells, P * samples)
    dens["attrs"].update(r_max=r_max, dimensions=D, particles=P)
    out["density"] = dens
    out["exact"]["density"] = P * np.diff(gammainc(D / 2, edges**2)) / shells
    if D == 2:
        xy = np.linspace(-r_max, r_max, image_bins + 1)
        area = (xy[1] - xy[0]) ** 2
        img = np.stack(
            [np.histogram2d(b[..., 0].ravel(), b[..., 1].ravel(), [xy, xy])[0] for b in x]
        )
        density, error = _batch_means(img / area, per)
        out["density_image"] = {
            "x_edges": xy,
            "y_edges": xy.copy(),
            "counts": img.sum(0),
            "density": density,
            "error": error,
            "attrs": {"overflow": float(P * samples - img.sum())},
        }
        cdf = np.diff(0.5 * (1.0 + erf(xy)))  # N(0, 1/2) mass per cell side
        out["exact"]["density_image"] = P * np.outer(cdf, cdf) / area
    if pairs:
        p_edges = np.linspace(0.0, 2.0 * r_max, pair_bins + 1)
        pair = histogram(rpq, p_edges, len(pairs) * np.diff(p_edges), len(pairs) * samples)
        r12 = out["scalars"]["r12"]
        pair["attrs"].update(mean=r12["mean"], error=r12["error"])
        out["pair_distance"] = pair
        out["exact"]["pair_distance"] = np.diff(gammainc(D / 2, p_edges**2 / 2)) / np.diff(p_edges)
    attrs = {
        "n_batches": K,
        "samples": samples,
        "error_method": f"batch means over {K} consecutive time batches of all chains",
    }
    if error_attrs:
        batch = out["scalars"]["local_energy"]["error"]
        attrs.update(
            energy_error_batch_means=batch,
            energy_error_blocking=batch if blocking_error is None else blocking_error,
        )
    out["attrs"] = attrs
    return out


def write_observables(production_group, observables: dict) -> None:
    """Write a :func:`gaussian_observables` dict as /production/observables (the layout
    of format 3); the "exact" entry is not written."""
    grp = production_group.create_group("observables")
    grp.attrs.update(observables["attrs"])
    for name, est in observables["scalars"].items():
        ds = grp.create_dataset(name, data=est["batch_means"])
        ds.attrs["mean"] = est["mean"]
        ds.attrs["error"] = est["error"]
    for name in ("density", "density_image", "pair_distance"):
        if name in observables:
            sub = grp.create_group(name)
            for key, value in observables[name].items():
                if key == "attrs":
                    sub.attrs.update(value)
                else:
                    sub[key] = np.asarray(value)
