"""Shared helpers of the analysis tests: AR(1) series and run files in the pvmc schema."""
from __future__ import annotations

import numpy as np
import yaml
from scipy.signal import lfilter


def ar1(phi: float, n: int, seed: int, chains: int | None = None) -> np.ndarray:
    """Stationary AR(1) x_t = phi x_{t-1} + e_t, e_t ~ N(0, 1); shape (n,) or (chains, n)."""
    rng = np.random.default_rng(seed)
    shape = (n,) if chains is None else (chains, n)
    e = rng.standard_normal(shape)
    x0 = rng.standard_normal(shape[:-1] + (1,)) / np.sqrt(1.0 - phi ** 2)
    return lfilter([1.0], [1.0, -phi], e, axis=-1, zi=phi * x0)[0]


def ar1_exact_sem(phi: float, n: int) -> float:
    """Exact standard error of the mean of n stationary AR(1) samples (unit innovations).

    Var(mean) = sigma_x^2 / n [1 + 2 sum_{k=1}^{n-1} (1 - k/n) phi^k],
    sum = phi/(1-phi) - phi (1 - phi^n) / (n (1-phi)^2), sigma_x^2 = 1/(1-phi^2).
    """
    var_x = 1.0 / (1.0 - phi ** 2)
    s = phi / (1.0 - phi) - phi * (1.0 - phi ** n) / (n * (1.0 - phi) ** 2)
    return float(np.sqrt(var_x / n * (1.0 + 2.0 * s)))


def ar1_tau(phi: float) -> float:
    return (1.0 + phi) / (1.0 - phi)


CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0, "interaction": "coulomb"},
    "wavefunction": {"hidden": 4, "psi": "sqrt", "sigma": None, "init_scale": 0.001,
                     "jastrow": "none"},
    "sampler": {"method": "importance", "step": 0.5, "walkers_per_rank": 4,
                "thermalization": 100},
    "optimizer": {"method": "adam", "learning_rate": 0.05, "iterations": 20,
                  "samples_per_iteration": 1024},
    "production": {"samples": 16384},
    "output": {"path": "run.h5", "checkpoint_every": 300, "max_walltime": None},
    "seed": 2026,
}


def write_run_file(path, *, status="completed", omega=1.0, n_iter=20, mpi_size=2,
                   walkers_per_rank=2, n_samples=4096, samples_per_chain=None,
                   energy=3.0, phi=0.5, seed=1, production=True, components=True,
                   density=True, summary=True, shift_chain=None, shift=0.0):
    """Write a file in the pvmc schema (DESIGN section 4) with AR(1) local energies.

    Columns beyond samples_per_chain (a running run) are filled with NaN, which an
    analysis must never touch. Returns the (n_chains, samples_per_chain) energies.
    """
    import h5py

    cfg = yaml.safe_load(yaml.safe_dump(CONFIG))
    cfg["system"]["omega"] = omega
    cfg["sampler"]["walkers_per_rank"] = walkers_per_rank
    cfg["seed"] = seed
    n_chains = mpi_size * walkers_per_rank
    filled = n_samples if samples_per_chain is None else samples_per_chain
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as h5:
        a = h5.attrs
        a["format_version"] = 1
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
        it = np.arange(n_iter)
        e_opt = energy + 0.5 * np.exp(-it / 5.0) + 0.01 * rng.standard_normal(n_iter)
        opt["iteration"] = it.astype(np.int64)
        opt["energy"] = e_opt
        opt["energy_error"] = np.full(n_iter, 0.01)
        opt["variance"] = 0.1 + np.exp(-it / 5.0)
        opt["acceptance"] = np.full(n_iter, 0.95)
        opt["grad_norm"] = np.exp(-it / 5.0)
        opt["learning_rate"] = np.full(n_iter, 0.05)
        opt["wall_time"] = 0.1 * it.astype(float)
        opt["params"] = rng.standard_normal((n_iter, 14))
        e = None
        if production:
            prod = h5.create_group("production")
            e = energy + 0.1 * ar1(phi, filled, seed + 1000, chains=n_chains)
            if shift_chain is not None:
                e[shift_chain] += shift
            full = np.full((n_chains, n_samples), np.nan)
            full[:, :filled] = e
            prod["local_energy"] = full
            if components:
                kin = np.full((n_chains, n_samples), np.nan)
                kin[:, :filled] = 0.5 * e
                prod["kinetic"] = kin
                prod["potential"] = full - kin
            prod.attrs["acceptance"] = 0.97
            prod.attrs["step"] = 0.31
            prod.attrs["sampler"] = "importance"
            prod.attrs["samples_per_chain"] = filled
            if density:
                obs = prod.create_group("observables")
                edges = np.linspace(0.0, 4.0, 41)
                r = np.abs(rng.standard_normal(20000)) + np.abs(rng.standard_normal(20000))
                obs["density_counts"] = np.histogram(r, edges)[0]
                obs["density_edges"] = edges
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


def add_observables(path, *, n_batches=16, batch_error=0.0012, blocking_error=0.0013,
                    samples=32768, seed=3):
    """Turn a file of :func:`write_run_file` into format 3 with /production/observables,
    filled from independent draws of two particles in a 2D Gaussian trap
    (|psi|^2 ~ exp(-|r|^2)); returns the values written, as read_run should give them."""
    import h5py

    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((n_batches, samples // n_batches, 2, 2)) / np.sqrt(2.0)
    r = np.linalg.norm(pts, axis=-1)                       # (K, n, P)
    r12 = np.linalg.norm(pts[:, :, 0] - pts[:, :, 1], axis=-1)
    written = {}
    with h5py.File(path, "r+") as h5:
        h5.attrs["format_version"] = 3
        prod = h5["production"]
        if "observables" in prod:
            del prod["observables"]
        obs = prod.create_group("observables")
        obs.attrs.update(n_batches=n_batches, samples=samples,
                         error_method="batch means over n_batches consecutive time "
                                      "batches of all chains",
                         energy_error_batch_means=batch_error,
                         energy_error_blocking=blocking_error)
        trap = 0.5 * (r ** 2).sum(-1)
        for name, per_sample in (("kinetic", 2.0 - trap), ("trap", trap), ("r12", r12)):
            means = per_sample.mean(axis=1)
            ds = obs.create_dataset(name, data=means)
            ds.attrs["mean"] = means.mean()
            ds.attrs["error"] = means.std(ddof=1) / np.sqrt(n_batches)
            written[name] = (means.mean(), ds.attrs["error"])
        hists = {"density": (r.reshape(-1), np.linspace(0, 4, 41)),
                 "pair_distance": (r12.reshape(-1), np.linspace(0, 8, 41))}
        for name, (values, edges) in hists.items():
            counts = np.histogram(values, edges)[0].astype(float)
            g = obs.create_group(name)
            g["edges"] = edges
            g["counts"] = counts
            g["density"] = counts / counts.sum() / np.diff(edges)
            g["error"] = np.sqrt(counts) / counts.sum() / np.diff(edges)
            g.attrs["overflow"] = float(np.sum(values >= edges[-1]))
            written[name] = counts
        g = obs.create_group("density_image")
        xy = np.linspace(-3, 3, 13)
        img = np.histogram2d(pts[..., 0].ravel(), pts[..., 1].ravel(), [xy, xy])[0]
        g["x_edges"], g["y_edges"], g["counts"] = xy, xy, img
        g["density"] = img / samples / (xy[1] - xy[0]) ** 2
        g["error"] = np.sqrt(img) / samples / (xy[1] - xy[0]) ** 2
        g.attrs["overflow"] = float(2 * samples - img.sum())
        written["density_image"] = img
    return written
