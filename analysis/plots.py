"""PNG figures of a run (matplotlib, imported only when a plot is made).

Every function takes what it draws and the output path, writes one PNG with the
non-interactive Agg machinery (no display, no pyplot global state) and returns
the path. :func:`run_plots` writes the standard set for one run file into a
directory, each name prefixed by the run file's stem so that several runs can
share a directory:

    <stem>_optimization.png   energy vs optimization iteration, error band
    <stem>_blocking.png       standard error vs blocking level, chosen level marked
    <stem>_histogram.png      local-energy histogram of the production samples
    <stem>_density.png        radial one-body density rho(r) with error bars
    <stem>_density_image.png  2D one-body density rho(x, y) (D = 2 runs)
    <stem>_pair_distance.png  pair-distance density with error bars, <r12> marked (P > 1);
                              with hard spheres a second panel near r12 = a
    <stem>_density_axes.png   3D: the densities along the x-y plane and along z
                              (production.axial_density)
    <stem>_dmc_energy.png     DMC: E(tau) of every time step with its error bar, the
                              fitted line and its value at tau = 0 (/dmc)
    <stem>_dmc_traces.png     DMC: population and trial energy E_T against the step,
                              one line per time step, the warm-up shaded (/dmc)

(each of the last three only if the file has it: /production/observables, format 3;
older files with flat ``density_counts`` / ``density_edges`` get the density plot.)
Given several run files, ``python -m analysis`` also draws their radial densities per
particle on one figure, ``density_comparison.png`` (:func:`plot_density_comparison`),
and their densities along x-y and z, ``density_axes_comparison.png``
(:func:`plot_axial_densities`): with and without interaction, the repulsion's
widening of the cloud.

Units (pvmc's): hbar = m = e = 1 with the trap frequency unit omega_0 = 1, so
energies are in hbar*omega_0 and lengths in sqrt(hbar/(m*omega_0)); every axis with
an energy or a length says so.
"""

from __future__ import annotations

import math
import os

import numpy as np

from parallel_vmc.runfile import schema as S
from parallel_vmc.runfile.schema import shell_volumes

__all__ = [
    "PlotError",
    "require_matplotlib",
    "plot_optimization",
    "plot_blocking",
    "plot_histogram",
    "histogram_range",
    "plot_density",
    "plot_radial_density",
    "plot_density_comparison",
    "plot_density_image",
    "plot_pair_distance",
    "plot_scan",
    "plot_dmc_energy",
    "plot_dmc_traces",
    "run_plots",
    "plot_names",
    "COMPARISON",
]

E_UNIT = r"$\hbar\omega_0$"  # energies
T_UNIT = r"$1/\omega_0$"  # DMC time steps (hbar / energy)
L_UNIT = r"$\sqrt{\hbar/m\omega_0}$"  # lengths
KEY_UNITS = {"system.omega": r"$\omega_0$", "wavefunction.sigma": L_UNIT}
BULK_IQR = 5.0  # histogram range: median +- this many interquartile ranges
AXES_COMPARISON = "density_axes_comparison.png"  # several runs' densities along the axes
COMPARISON = "density_comparison.png"  # several runs' rho(r)/N (no run's stem: shared)


class PlotError(RuntimeError):
    """Plotting is impossible (matplotlib missing)."""


def require_matplotlib():
    """Import matplotlib's Figure class, or raise PlotError with how to get it."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise PlotError(
            "plots need matplotlib, which is not installed "
            "(pip install matplotlib, or pip install 'parallel_vmc[plots]')"
        ) from None
    return Figure


def figure(width=6.4, height=4.2):
    Figure = require_matplotlib()
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def save(fig, path: str) -> str:
    try:
        fig.savefig(path, format="png")
    except OSError as exc:
        raise PlotError(f"cannot write {path} ({exc.strerror or exc})") from None
    return path


def plot_optimization(optimization: dict, path: str, title: str = "") -> str:
    """Energy (with its error as a band) and variance per optimization iteration."""
    it = np.asarray(optimization["iteration"])
    e = np.asarray(optimization["energy"])
    err = np.asarray(optimization.get("energy_error", np.zeros_like(e)))
    fig = figure(6.4, 5.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    ax.plot(it, e, lw=1.2, color="C0", label="energy")
    ax.fill_between(it, e - err, e + err, color="C0", alpha=0.3, lw=0, label="± error")
    ax.set_ylabel(f"energy ({E_UNIT})")
    ax.legend(loc="upper right")
    ax.set_title(title or "optimization")
    if "variance" in optimization:
        var = np.asarray(optimization["variance"])
        if np.all(var > 0) and var.max() > 20 * var.min():
            ax2.semilogy(it, var, color="C1", lw=1.0)
        else:
            ax2.plot(it, var, color="C1", lw=1.0)
        ax2.set_ylabel(f"variance of E_L (({E_UNIT})$^2$)")
    ax2.set_xlabel("iteration")
    return save(fig, path)


def plot_blocking(result, path: str, title: str = "") -> str:
    """Blocking curve: standard error per level with its own uncertainty, chosen level marked."""
    levels = np.arange(result.errors.size)
    nb = np.asarray(result.n_blocks, dtype=float)
    spread = result.errors / np.sqrt(2.0 * np.maximum(nb - 1.0, 1.0))
    fig = figure()
    ax = fig.subplots()
    ax.errorbar(
        levels,
        result.errors,
        yerr=spread,
        fmt="o-",
        ms=4,
        lw=1,
        capsize=2,
        color="C0",
        label="standard error at level k",
    )
    k = result.level
    ax.plot(
        [k],
        [result.errors[k]],
        "s",
        ms=11,
        mfc="none",
        mew=2,
        color="C3",
        label=f"chosen level {k} (blocks of {result.block_size})",
    )
    ax.axvline(k, color="C3", lw=0.8, ls=":")
    ax.axhline(result.error, color="C2", lw=1, ls="--", label=f"reported error {result.error:.3g}")
    ax.set_xlabel("blocking level k (block size 2^k)")
    ax.set_ylabel(f"standard error of the mean ({E_UNIT})")
    ax.set_title(title or "automated blocking")
    ax.legend(loc="lower right", fontsize="small")
    return save(fig, path)


def histogram_range(x) -> tuple:
    """(lo, hi) of the local-energy histogram: the bulk, median +- BULK_IQR
    interquartile ranges, clipped to the data (the whole data if the IQR is 0; +- 0.5
    around samples equal to round-off, which no 128 bins resolve). A fixed
    quantile cut would spend the axis on the sparse tail of a heavy-tailed E_L."""
    x = np.asarray(x, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    q1, median, q3 = np.quantile(x, [0.25, 0.5, 0.75])
    if q3 > q1:
        lo = max(lo, median - BULK_IQR * (q3 - q1))
        hi = min(hi, median + BULK_IQR * (q3 - q1))
    if hi - lo <= 1e3 * np.spacing(max(abs(lo), abs(hi))):  # constant to round-off
        lo, hi = lo - 0.5, hi + 0.5  # (a zero-variance state)
    return lo, hi


def plot_histogram(samples, path: str, title: str = "", mean: float | None = None) -> str:
    """Histogram of local-energy samples over their bulk (histogram_range), log y so
    that the tails show, with the number of samples outside the range."""
    x = np.asarray(samples, dtype=float).ravel()
    x = x[np.isfinite(x)]
    fig = figure()
    ax = fig.subplots()
    if x.size:
        lo, hi = histogram_range(x)
        below, above = int(np.count_nonzero(x < lo)), int(np.count_nonzero(x > hi))
        bins = int(min(200, max(10, math.sqrt(x.size))))
        ax.hist(
            x,
            bins=bins,
            range=(lo, hi),
            density=True,
            color="C0",
            alpha=0.8,
            label=f"{x.size} samples",
        )
        ax.set_yscale("log")
        if mean is not None and math.isfinite(mean):
            ax.axvline(mean, color="C3", lw=1.2, label=f"mean {mean:.6g}")
        ax.legend(
            loc="upper right",
            fontsize="small",
            title_fontsize="small",
            title=f"outside the range: {below + above} of {x.size} samples\n"
            f"({100.0 * (below + above) / x.size:.2g} %; {below} below, "
            f"{above} above)",
        )
    ax.set_xlabel(f"local energy E_L ({E_UNIT})")
    ax.set_ylabel(f"probability density (1/{E_UNIT}), log scale")
    ax.set_title(title or "local energy")
    return save(fig, path)


def plot_density(
    counts, edges, path: str, dimensions: int = 3, particles: int = 1, title: str = ""
) -> str:
    """Radial one-body density from histogram counts of particle distances r.

    Counts (summed over any leading axes, e.g. chains) are normalised so that the
    density integrates to the number of particles: ``rho(r) = P * counts /
    (total * shell volume)`` with the D-dimensional shell volume; the second panel
    shows the radial distribution ``P(r)`` (integrates to 1).
    """
    edges = np.asarray(edges, dtype=float).ravel()
    counts = np.asarray(counts, dtype=float)
    counts = counts.reshape(-1, counts.shape[-1]).sum(axis=0)
    if counts.size != edges.size - 1:
        raise ValueError(f"density: {counts.size} counts do not fit {edges.size} edges")
    total = counts.sum()
    centres = 0.5 * (edges[1:] + edges[:-1])
    width = np.diff(edges)
    shell = shell_volumes(edges, dimensions)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = particles * counts / (total * shell) if total > 0 else counts * 0
        radial = counts / (total * width) if total > 0 else counts * 0
    fig = figure(6.4, 5.2)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    ax.plot(centres, rho, "-", color="C0", lw=1.4)
    ax.set_ylabel(f"one-body density rho(r) ({L_UNIT}$^{{-{dimensions}}}$)")
    ax.set_title(title or "one-body density")
    ax2.plot(centres, radial, "-", color="C1", lw=1.4)
    ax2.set_ylabel(f"radial distribution P(r) (1/{L_UNIT})")
    ax2.set_xlabel(f"r ({L_UNIT})")
    return save(fig, path)


def _with_error_bars(ax, edges, values, errors, color, label):
    """values per bin at the bin centres with their error bars (batch means); bins
    without an error (NaN: fewer than 2 batches) are drawn without one."""
    centres = 0.5 * (edges[1:] + edges[:-1])
    errors = np.where(np.isfinite(errors), errors, 0.0)
    ax.errorbar(
        centres,
        values,
        yerr=errors,
        fmt="o-",
        ms=2.5,
        lw=1.0,
        elinewidth=1.0,
        capsize=1.5,
        color=color,
        label=label,
    )


def plot_radial_density(
    edges, density, error, path: str, title: str = "", dimensions: int | None = None
) -> str:
    """rho(r) as stored by pvmc (integral over space = P) with its error bars."""
    edges = np.asarray(edges, float)
    fig = figure()
    ax = fig.subplots()
    _with_error_bars(
        ax,
        edges,
        np.asarray(density, float),
        np.asarray(error, float),
        "C0",
        "rho(r) ± error (batch means)",
    )
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"r ({L_UNIT})")
    power = f"$^{{-{dimensions}}}$" if dimensions else "$^{-D}$"
    ax.set_ylabel(f"one-body density rho(r) ({L_UNIT}{power})")
    ax.set_title(title or "one-body density")
    ax.legend(loc="upper right")
    return save(fig, path)


def plot_density_comparison(curves: list, path: str, title: str = "") -> str:
    """The radial one-body densities of several runs on one figure, each divided by
    its number of particles N, so that every curve integrates to 1 over space and the
    shells of different N compare; error bars from the batch means. One panel per
    dimension D (densities per unit length^D of different D do not share an axis).

    curves: dicts with edges (n_bins + 1,), density and error (n_bins,) as stored
    (integral over space = N), particles N, dimensions D and the legend's label.
    """
    dims = sorted({c["dimensions"] for c in curves})
    fig = figure(6.4 * len(dims), 4.6)
    axes = np.atleast_1d(fig.subplots(1, len(dims)))
    for ax, d in zip(axes, dims):
        for k, c in enumerate(x for x in curves if x["dimensions"] == d):
            edges, n = np.asarray(c["edges"], float), c["particles"]
            _with_error_bars(
                ax,
                edges,
                np.asarray(c["density"], float) / n,
                np.asarray(c["error"], float) / n,
                f"C{k % 10}",
                c["label"],
            )
        ax.set_xlim(left=0.0)
        ax.set_xlabel(f"r ({L_UNIT})")
        ax.set_ylabel(f"rho(r) / N ({L_UNIT}$^{{-{d}}}$)")
        ax.set_title(f"D = {d}" if len(dims) > 1 else (title or "one-body density per particle"))
        ax.legend(
            loc="upper right",
            fontsize="small",
            title="error bars: batch means",
            title_fontsize="small",
        )
    if len(dims) > 1:
        fig.suptitle(title or "one-body density per particle")
    return save(fig, path)


def plot_axial_densities(curves: list, path: str, title: str = "") -> str:
    """The one-body density along the x-y plane (column density n(rho), integral over
    the plane 1) and along z (linear density n(z), integral 1), per particle, of one or
    several 3D runs; error bars from the batch means.

    curves: dicts with "xy" and "z", each (edges (n + 1,), density (n,), error (n,)) as
    stored (integrals = N), particles N and the legend's label.
    """
    fig = figure(12.8, 4.6)
    axes = fig.subplots(1, 2)
    for k, c in enumerate(curves):
        n = c["particles"]
        for ax, key in zip(axes, ("xy", "z")):
            edges, density, error = (np.asarray(v, float) for v in c[key])
            _with_error_bars(ax, edges, density / n, error / n, f"C{k % 10}", c["label"])
    axes[0].set_xlim(left=0.0)
    axes[0].set_xlabel(f"rho = sqrt(x^2 + y^2) ({L_UNIT})")
    axes[0].set_ylabel(f"n(rho) / N ({L_UNIT}$^{{-2}}$)")
    axes[0].set_title("along the x-y plane (integrated over z)")
    axes[1].set_xlabel(f"z ({L_UNIT})")
    axes[1].set_ylabel(f"n(z) / N ({L_UNIT}$^{{-1}}$)")
    axes[1].set_title("along z (integrated over x, y)")
    for ax in axes:
        ax.legend(
            loc="upper right",
            fontsize="small",
            title="error bars: batch means",
            title_fontsize="small",
        )
    fig.suptitle(title or "one-body density per particle along the axes")
    return save(fig, path)


def axial_curve(obs: dict, particles, label: str) -> dict | None:
    """The curve of :func:`plot_axial_densities` from a run's observables (None
    without both axial densities)."""
    xy, z = obs.get(S.DENSITY_XY), obs.get(S.DENSITY_Z)
    if not (isinstance(xy, dict) and isinstance(z, dict)):
        return None
    n = xy["attrs"].get("particles", particles)
    return {
        "xy": (xy["edges"], xy["density"], xy["error"]),
        "z": (z["edges"], z["density"], z["error"]),
        "particles": n if isinstance(n, int) and n > 0 else 1,
        "label": label,
    }


def plot_density_image(x_edges, y_edges, density, path: str, title: str = "") -> str:
    """rho(x, y) of a 2D system (density[ix, iy]) as an image with a colour bar."""
    x_edges, y_edges = np.asarray(x_edges, float), np.asarray(y_edges, float)
    fig = figure(6.4, 5.2)
    ax = fig.subplots()
    im = ax.imshow(
        np.asarray(density, float).T,
        origin="lower",
        cmap="viridis",
        interpolation="nearest",
        extent=(x_edges[0], x_edges[-1], y_edges[0], y_edges[-1]),
    )
    ax.set_aspect("equal")
    ax.set_xlabel(f"x ({L_UNIT})")
    ax.set_ylabel(f"y ({L_UNIT})")
    ax.set_title(title or "one-body density rho(x, y)")
    fig.colorbar(im, ax=ax, label=f"rho(x, y) ({L_UNIT}$^{{-2}}$)")
    return save(fig, path)


def plot_pair_distance(
    edges, density, error, mean, path: str, title: str = "", core: float | None = None
) -> str:
    """Probability density of the pair distance r_pq with its error bars; <r12> marked.
    core: the hard-sphere radius a, if any: a second panel shows r12 up to a few a, the
    core r < a shaded, with whether a bin edge lies at a (pvmc's default bins put one
    there; coarser bins hide the hole)."""
    edges = np.asarray(edges, float)
    density, error = np.asarray(density, float), np.asarray(error, float)
    fig = figure(6.4, 7.2) if core else figure()
    axes = fig.subplots(2, 1) if core else [fig.subplots()]
    ax = axes[0]
    _with_error_bars(ax, edges, density, error, "C1", "P(r12) ± error (batch means)")
    if mean is not None and math.isfinite(mean):
        ax.axvline(mean, color="k", ls="--", lw=1, label=f"<r12> = {mean:.4f}")
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(f"r12 ({L_UNIT})")
    ax.set_ylabel(f"pair-distance density (1/{L_UNIT})")
    ax.set_title(title or "pair distance")
    ax.legend(loc="upper right")
    if core:
        _hard_core_panel(axes[1], edges, density, error, core)
    return save(fig, path)


def _hard_core_panel(ax, edges, density, error, a: float) -> None:
    """P(r12) near r12 = a: the core [0, a) shaded, a marked, and whether the bins
    resolve it (a bin edge at a)."""
    width = float(edges[1] - edges[0])
    at_a = bool(np.any(np.isclose(edges, a, rtol=1e-9, atol=1e-12 * max(a, width))))
    upper = min(float(edges[-1]), max(12.0 * a, 12.0 * width))
    k = max(int(np.count_nonzero(edges[1:] <= upper + 0.5 * width)), 1)  # bins shown
    _with_error_bars(
        ax, edges[: k + 1], density[:k], error[:k], "C1", "P(r12) ± error (batch means)"
    )
    ax.axvspan(0.0, a, color="0.85", label=f"hard core r12 < a = {a:g}")
    ax.axvline(a, color="k", lw=1)
    ax.set_xlim(0.0, upper)
    ax.set_xlabel(f"r12 ({L_UNIT})")
    ax.set_ylabel(f"pair-distance density (1/{L_UNIT})")
    ax.set_title(
        f"near the hard core: bins of {width:.3g}, "
        + ("a bin edge at a" if at_a else "NO bin edge at a: the hole is not resolved")
    )
    ax.legend(loc="lower right", fontsize="small")


def plot_scan(rows: list, key: str, path: str, title: str = "") -> str:
    """Energy with its error bar against a config value, one point per run. Points are
    not joined: the runs may differ in more than ``key``. Runs whose mean is infinite
    (1D Coulomb) are crosses without error bars."""
    pts = [
        r
        for r in rows
        if r.get("energy") is not None and (r.get("error") is not None or r.get("mean_is_infinite"))
    ]
    fig = figure()
    ax = fig.subplots()
    if pts:
        numeric = all(
            isinstance(r["key"], (int, float)) and not isinstance(r["key"], bool) for r in pts
        )
        xs = [r["key"] for r in pts] if numeric else list(range(len(pts)))
        finite = [i for i, r in enumerate(pts) if not r.get("mean_is_infinite")]
        if finite:
            ax.errorbar(
                [xs[i] for i in finite],
                [pts[i]["energy"] for i in finite],
                yerr=[pts[i]["error"] for i in finite],
                fmt="o",
                ls="none",
                ms=5,
                capsize=3,
                label="E +- error (blocking)",
            )
        infinite = [i for i, r in enumerate(pts) if r.get("mean_is_infinite")]
        if infinite:
            ax.plot(
                [xs[i] for i in infinite],
                [pts[i]["energy"] for i in infinite],
                "x",
                ls="none",
                color="C3",
                ms=7,
                label="infinite mean (1D Coulomb): not an estimate",
            )
        if not numeric:
            ax.set_xticks(xs, [str(r["key"]) for r in pts], rotation=30)
        ax.legend(loc="best", fontsize="small")
    unit = KEY_UNITS.get(key)
    ax.set_xlabel(f"{key} ({unit})" if unit else key)
    ax.set_ylabel(f"energy E ({E_UNIT})")
    ax.set_title(title or f"energy vs {key}")
    return save(fig, path)


def plot_dmc_energy(d: dict, path: str, title: str = "") -> str:
    """E(tau) of the DMC time steps with their error bars, the weighted line E_0 + a tau
    with its 1-sigma band (from the covariance of E_0 and a) and E_0 at tau = 0.

    d: ``analysis.dmc.summarize``'s dict: "time_steps" (n,) dicts with time_step,
    energy, error; "extrapolated" with energy, error and, for n >= 2, slope and
    covariance (2, 2).
    """
    steps = [s for s in d["time_steps"] if s["energy"] is not None]
    taus = np.array([s["time_step"] for s in steps])
    fig = figure()
    ax = fig.subplots()
    ax.errorbar(
        taus,
        [s["energy"] for s in steps],
        yerr=[s["error"] for s in steps],
        fmt="o",
        ms=5,
        capsize=3,
        color="C0",
        label="E(tau) +- error (blocking)",
    )
    x = d["extrapolated"]
    if x.get("covariance") is not None:
        t = np.linspace(0.0, 1.05 * taus.max(), 200)
        cov = np.asarray(x["covariance"])
        e = x["energy"] + x["slope"] * t
        spread = np.sqrt(np.maximum(cov[0, 0] + 2 * t * cov[0, 1] + t**2 * cov[1, 1], 0.0))
        ax.plot(t, e, color="C1", lw=1.2, label=f"E_0 + a tau, a = {x['slope']:.4g}")
        ax.fill_between(t, e - spread, e + spread, color="C1", alpha=0.2, lw=0)
        ax.errorbar(
            [0.0],
            [x["energy"]],
            yerr=[x["error"]],
            fmt="s",
            ms=6,
            capsize=3,
            color="C3",
            label=f"tau -> 0: {x['energy']:.6f} +- {x['error']:.6f}",
        )
    if taus.size:  # room left of tau = 0 for E_0's marker
        ax.set_xlim(-0.04 * taus.max(), 1.06 * taus.max())
    ax.set_xlabel(f"time step tau ({T_UNIT})")
    ax.set_ylabel(f"DMC energy ({E_UNIT})")
    ax.set_title(title or "DMC energy against the time step")
    ax.legend(loc="best", fontsize="small")
    return save(fig, path)


def plot_dmc_traces(
    series: list, time_steps, warmup: int, path: str, title: str = "", target=None
) -> str:
    """Population and trial energy E_T against the step, one line per time step, the
    warm-up steps (not counted in the energy) shaded.

    series: per time step {"population": (T,), "trial_energy": (T,), ...} (warm-up
    first); time_steps: (n,) their tau; target: the population aimed at (a line), or
    None.
    """
    fig = figure(6.4, 5.6)
    ax, ax2 = fig.subplots(2, 1, sharex=True)
    for k, (s, tau) in enumerate(zip(series, time_steps)):
        step = np.arange(np.asarray(s["population"]).size)
        ax.plot(step, s["population"], color=f"C{k % 10}", lw=0.8, label=f"tau = {tau:g}")
        ax2.plot(step, s["trial_energy"], color=f"C{k % 10}", lw=0.8)
    for a in (ax, ax2):
        if warmup > 0:
            a.axvspan(0, warmup, color="0.9", lw=0)
            a.axvline(warmup, color="0.4", lw=0.8, ls=":")
    if target is not None:
        ax.axhline(target, color="k", lw=0.8, ls="--", label=f"target {target:g}")
    ax.set_ylabel("population (walkers)")
    ax.set_title(title or "DMC population and trial energy")
    ax.legend(
        loc="best",
        fontsize="small",
        title=f"shaded: {warmup} warm-up steps",
        title_fontsize="small",
    )
    ax2.set_ylabel(f"trial energy E_T ({E_UNIT})")
    ax2.set_xlabel("step")
    return save(fig, path)


def hard_core_radius(config) -> float | None:
    """The hard-sphere radius a of a run's config (system.hard_sphere_radius), None
    without one."""
    system = config.get("system") if isinstance(config, dict) else None
    a = system.get("hard_sphere_radius") if isinstance(system, dict) else None
    return float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) and a > 0 else None


def plot_names(stem: str) -> dict:
    names = {
        kind: f"{stem}_{kind}.png"
        for kind in (
            "optimization",
            "blocking",
            "histogram",
            "density",
            "density_image",
            "pair_distance",
            "dmc_energy",
            "dmc_traces",
        )
    }
    names[S.DENSITY_XY] = names[S.DENSITY_Z] = f"{stem}_density_axes.png"  # one figure
    return names


def run_plots(run, summary, directory: str) -> list:
    """Write the standard figures of one run (RunData + ChainSummary or None) into directory.

    Returns the list of paths written; a figure whose data are absent is skipped.
    """
    os.makedirs(directory, exist_ok=True)
    names = plot_names(run.name)
    written = []
    label = f"{run.name} ({run.status})"
    if run.n_iterations > 0:
        written.append(
            plot_optimization(
                run.optimization,
                os.path.join(directory, names["optimization"]),
                title=f"optimization: {label}",
            )
        )
    if summary is not None:
        written.append(
            plot_blocking(
                summary.blocking,
                os.path.join(directory, names["blocking"]),
                title=f"blocking of the chain-averaged E_L: {label}",
            )
        )
        written.append(
            plot_histogram(
                run.production[S.LOCAL_ENERGY],
                os.path.join(directory, names["histogram"]),
                title=f"local energy: {label}",
                mean=summary.mean,
            )
        )
    obs = run.observables
    out = {kind: os.path.join(directory, names[kind]) for kind in S.HISTOGRAMS}
    if isinstance(obs.get(S.DENSITY), dict):
        d = obs[S.DENSITY]
        written.append(
            plot_radial_density(
                d["edges"],
                d["density"],
                d["error"],
                out[S.DENSITY],
                title=f"one-body density: {label}",
                dimensions=d["attrs"].get("dimensions"),
            )
        )
    if isinstance(obs.get(S.DENSITY_IMAGE), dict):
        d = obs[S.DENSITY_IMAGE]
        written.append(
            plot_density_image(
                d["x_edges"],
                d["y_edges"],
                d["density"],
                out[S.DENSITY_IMAGE],
                title=f"one-body density: {label}",
            )
        )
    curve = axial_curve(
        obs,
        (run.config.get("system") or {}).get("particles") if isinstance(run.config, dict) else None,
        "per particle",
    )
    if curve is not None:
        written.append(
            plot_axial_densities(
                [curve], out[S.DENSITY_XY], title=f"one-body density along the axes: {label}"
            )
        )
    if isinstance(obs.get(S.PAIR_DISTANCE), dict):
        d = obs[S.PAIR_DISTANCE]
        mean = d["attrs"].get(S.MEAN)
        if mean is None and isinstance(obs.get(S.R12), dict):
            mean = obs[S.R12]["mean"]
        written.append(
            plot_pair_distance(
                d["edges"],
                d["density"],
                d["error"],
                mean,
                out[S.PAIR_DISTANCE],
                title=f"pair distance: {label}",
                core=hard_core_radius(run.config),
            )
        )
    if (
        "density_counts" in obs
        and "density_edges" in obs
        and not isinstance(obs.get(S.DENSITY), dict)
    ):  # formats 1-2
        system = run.config.get("system") if isinstance(run.config, dict) else None
        system = system if isinstance(system, dict) else {}
        written.append(
            plot_density(
                obs["density_counts"],
                obs["density_edges"],
                os.path.join(directory, names["density"]),
                dimensions=int(system.get("dimensions", 3)),
                particles=int(system.get("particles", 1)),
                title=f"one-body density: {label}",
            )
        )
    written += _dmc_plots(run, names, directory, label)
    return written


def _dmc_plots(run, names: dict, directory: str, label: str) -> list:
    """The DMC figures of a run with /dmc (none without)."""
    from analysis.dmc import summarize

    d = summarize(run)
    if d is None:
        return []
    dmc = run.config.get("dmc") if isinstance(run.config, dict) else None
    target = dmc.get("walkers") if isinstance(dmc, dict) else None
    return [
        plot_dmc_energy(
            d, os.path.join(directory, names["dmc_energy"]), title=f"DMC energy: {label}"
        ),
        plot_dmc_traces(
            run.dmc["series"],
            run.dmc["table"][S.DMC_FIELDS[0]],
            d["warmup_steps"],
            os.path.join(directory, names["dmc_traces"]),
            title=f"DMC population and trial energy: {label}",
            target=target if isinstance(target, (int, float)) else None,
        ),
    ]
