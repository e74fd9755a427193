#!/usr/bin/env python3
"""The figures of the documentation (issue 29), regenerated from the shipped configs.

    python scripts/make_figures.py [--out docs/figures] [--quick | --full] [--runs DIR]
                                   [--only NAME ...] [--ranks R]

Each figure comes from run files that the real command line writes from the configs in
``configs/`` (``pvmc run CONFIG -o RUN.h5 --quiet --set ...``, ``pvmc train``), into a
work directory (``--runs``, default ``runs/figures``, ignored by git). A completed run
file already there, made with the same settings, is reused; an interrupted one is
continued (``--resume``); one made with other settings is replaced. The figures are
drawn from the files with the ``analysis`` package's readers and plotting helpers:

    quickstart_energy.png   configs/quickstart.yaml: energy per optimization iteration,
                            the exact 3.0 (Taut) and the production estimate
    dot_densities.png       configs/dot2d_N{6,12,20}_omega1.0.yaml: radial one-body
                            densities per particle (analysis.plots.plot_density_comparison)
    boson_densities.png     configs/bosons3d_N10_elliptic.yaml: densities along the x-y
                            plane and along z (analysis.plots.plot_axial_densities)
    rbm_filters.png         configs/train_digits.yaml (configs/train_bars4x4.yaml without
    rbm_samples.png         scikit-learn): the trained RBM's filters and Gibbs samples
                            (analysis.generative.training_plots)

Settings. ``--full`` runs every config as shipped (N = 20 takes ~25 min on one core).
The default runs them as shipped too, but for N = 12 and N = 20, which it shortens
(fewer optimization iterations and production samples, ``--set``); ``--quick`` shortens
every VMC run but the quick start (about 2 minutes on one core with the numba cache
warm; compiling the fermion kernels the first time adds about a minute). The settings a
figure was drawn from are read back from its run files and written on it (its title or
legend). The committed figures in docs/figures are those of --quick.

One rank by default (``--ranks R`` launches ``mpiexec -n R``). The children get
OMP_NUM_THREADS=1 and OPENBLAS_NUM_THREADS=1 unless these are set. Exit codes: 0 done,
1 a run failed or a run file cannot be read, 2 matplotlib is missing or a bad argument.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the analysis package of this checkout
    sys.path.insert(0, ROOT)

FIGURES = (
    "quickstart_energy",
    "dot_densities",
    "boson_densities",
    "rbm_filters",
    "rbm_samples",
)
MODES = ("quick", "default", "full")
ROW = 8  # image tiles per row
GIBBS_SWEEPS = 1000  # of each chain before its sample is drawn
EXACT_QUICKSTART = 3.0  # Taut's exact energy of configs/quickstart.yaml


def _vmc(iterations: int, per_iteration: int, production: int) -> dict:
    return {
        "optimizer.iterations": iterations,
        "optimizer.samples_per_iteration": per_iteration,
        "production.samples": production,
    }


@dataclass
class Job:
    """One run file: the config, the command (run or train) and the overrides per mode
    (a mode not listed runs the config as shipped)."""

    name: str
    config: str  # relative to the repository
    command: str = "run"
    overrides: dict = field(default_factory=dict)  # mode -> {key: value}

    def settings(self, mode: str) -> dict:
        return {} if mode == "full" else self.overrides.get(mode, {})

    def path(self, runs: str, mode: str) -> str:
        """The run file: the config's stem, with -quick or -short when shortened."""
        stem = os.path.splitext(os.path.basename(self.config))[0]
        if self.settings(mode):
            stem += "-quick" if mode == "quick" else "-short"
        return os.path.join(runs, stem + ".h5")


JOBS = {
    "quickstart": Job("quickstart", "configs/quickstart.yaml"),  # ~10 s as shipped
    "N6": Job("N6", "configs/dot2d_N6_omega1.0.yaml", overrides={"quick": _vmc(150, 8192, 262144)}),
    "N12": Job(
        "N12",
        "configs/dot2d_N12_omega1.0.yaml",
        overrides={"quick": _vmc(150, 8192, 262144), "default": _vmc(150, 32768, 1048576)},
    ),
    "N20": Job(
        "N20",
        "configs/dot2d_N20_omega1.0.yaml",
        overrides={"quick": _vmc(150, 8192, 262144), "default": _vmc(100, 16384, 524288)},
    ),
    "bosons": Job(
        "bosons",
        "configs/bosons3d_N10_elliptic.yaml",
        overrides={"quick": _vmc(100, 8192, 262144)},
    ),
    "digits": Job("digits", "configs/train_digits.yaml", command="train"),
    "bars4x4": Job("bars4x4", "configs/train_bars4x4.yaml", command="train"),
}


def training_job() -> Job:
    """The digits (scikit-learn's bundled 8x8 images) when scikit-learn is installed,
    else bars-and-stripes 4x4 (no extra needed)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        print(
            "note: scikit-learn is missing (pip install 'parallel_vmc[data]'): the RBM "
            "figures are drawn from configs/train_bars4x4.yaml instead of train_digits.yaml"
        )
        return JOBS["bars4x4"]
    return JOBS["digits"]


def needed_jobs(figures) -> list:
    jobs = []
    for name in figures:
        if name == "quickstart_energy":
            jobs.append(JOBS["quickstart"])
        elif name == "dot_densities":
            jobs += [JOBS["N6"], JOBS["N12"], JOBS["N20"]]
        elif name == "boson_densities":
            jobs.append(JOBS["bosons"])
        elif name in ("rbm_filters", "rbm_samples"):
            jobs.append(training_job())
    unique = []
    for job in jobs:
        if job not in unique:
            unique.append(job)
    return unique


# -------------------------------------------------------------------------------- runs
def file_state(path: str, settings: dict) -> str:
    """'missing', 'completed' (with these settings), 'other' (other settings: to be
    replaced) or 'unfinished' (to be continued)."""
    import h5py
    import yaml

    from analysis.runfile import config_value

    if not os.path.exists(path):
        return "missing"
    try:
        with h5py.File(path, "r", locking=False) as h5:
            status = h5.attrs.get("status", b"")
            config = yaml.safe_load(h5.attrs.get("config", "")) or {}
    except Exception:  # noqa: BLE001 - unreadable: start again
        return "other"
    status = status.decode() if isinstance(status, bytes) else str(status)
    for key, value in settings.items():
        try:
            if config_value(config, key) != value:
                return "other"
        except KeyError:
            return "other"
    return "completed" if status.strip() == "completed" else "unfinished"


def command_line(job: Job, path: str, settings: dict, ranks: int, flag: str | None) -> list:
    cmd = [sys.executable, "-m", "parallel_vmc", job.command]
    cmd += [os.path.join(ROOT, job.config), "-o", path, "--quiet"]
    for key, value in settings.items():
        cmd += ["--set", f"{key}={value}"]
    if flag:
        cmd.append(flag)
    return (["mpiexec", "-n", str(ranks)] if ranks > 1 else []) + cmd


def shown(cmd: list) -> str:
    """The command as a user would type it (pvmc for python -m parallel_vmc)."""
    words = [os.path.relpath(w, ROOT) if os.path.isabs(w) else w for w in cmd]
    i = words.index("-m")
    words[i - 1 : i + 2] = ["pvmc"]
    return " ".join(words)


def ensure_run(job: Job, runs: str, mode: str, ranks: int) -> tuple:
    """Make (or reuse) the job's run file; returns (path, seconds or None if reused)."""
    path = job.path(runs, mode)
    settings = job.settings(mode)
    state = file_state(path, settings)
    if state == "completed":
        print(f"reusing {path}")
        return path, None
    flag = {"unfinished": "--resume", "other": "--overwrite"}.get(state)
    cmd = command_line(job, path, settings, ranks, flag)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env.setdefault(var, "1")
    print(f"running  {shown(cmd)}", flush=True)
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"error: {job.config} failed (exit {done.returncode}):\n{tail}")
    print(f"         {seconds:.1f} s -> {path}", flush=True)
    return path, seconds


# ------------------------------------------------------------------------------ drawing
def _settings_text(config: dict) -> str:
    """'300 iterations x 32768 samples, 1048576 production samples' from a run's config."""
    opt = config.get("optimizer") or {}
    prod = config.get("production") or {}
    return (
        f"{opt.get('iterations')} iterations x {opt.get('samples_per_iteration')} samples, "
        f"{prod.get('samples')} production samples"
    )


def _energy_text(run) -> str:
    e, err = run.summary.get("energy"), run.summary.get("error")
    if e is None:
        return "E unknown"
    return f"E = {e:.5f} ± {err:.5f}" if err is not None else f"E = {e:.5f}"


def draw_quickstart_energy(run_path: str, out: str, exact: float = EXACT_QUICKSTART) -> str:
    """The energy per optimization iteration with its error band, the exact energy and
    the production estimate of one run file."""
    import numpy as np

    from analysis.plots import E_UNIT, figure, save
    from analysis.runfile import read_run

    run = read_run(run_path, series=())
    opt = run.optimization
    if run.n_iterations == 0:
        raise ValueError(f"{run_path}: no optimization rows")
    it, e = np.asarray(opt["iteration"]), np.asarray(opt["energy"])
    err = np.asarray(opt.get("energy_error", np.zeros_like(e)))
    fig = figure(6.4, 4.0)
    ax = fig.subplots()
    ax.plot(it, e, lw=1.2, color="C0", label="energy of the iteration's samples")
    ax.fill_between(it, e - err, e + err, color="C0", alpha=0.3, lw=0, label="± its error")
    ax.axhline(exact, color="k", ls="--", lw=1, label=f"exact {exact:.1f} (Taut)")
    if run.summary.get("energy") is not None:
        ax.axhline(
            run.summary["energy"], color="C3", lw=1, label=f"production: {_energy_text(run)}"
        )
    ax.set_xlabel("optimization iteration")
    ax.set_ylabel(f"energy ({E_UNIT})")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(
        "quick start: 2 electrons in a 2D dot, omega = 1\n" + _settings_text(run.config),
        fontsize=10,
    )
    return save(fig, out)


def draw_dot_densities(run_paths: list, out: str) -> str:
    """The radial one-body densities per particle of several runs on one figure, each
    labelled with N, its energy and the settings it ran with."""
    from analysis.plots import plot_density_comparison
    from analysis.runfile import read_run

    curves, settings = [], {}
    for path in run_paths:
        run = read_run(path, series=())
        d = run.observables.get("density")
        if not isinstance(d, dict):
            raise ValueError(f"{path}: no radial density (production.observables off?)")
        system = run.config.get("system") or {}
        n = d["attrs"].get("particles", system.get("particles"))
        settings.setdefault(_settings_text(run.config), []).append(n)
        curves.append(
            {
                "edges": d["edges"],
                "density": d["density"],
                "error": d["error"],
                "particles": n,
                "dimensions": d["attrs"].get("dimensions", system.get("dimensions")),
                "label": f"N = {n}: {_energy_text(run)}",
            }
        )
    curves.sort(key=lambda c: c["particles"])
    if len(settings) == 1:
        ran = next(iter(settings)) + " each"
    else:
        ran = "\n".join(
            f"N = {', '.join(str(n) for n in sorted(ns))}: {text}" for text, ns in settings.items()
        )
    return plot_density_comparison(
        curves, out, title=f"2D quantum dots, omega = 1: one-body density per particle\n{ran}"
    )


def draw_boson_densities(run_path: str, out: str) -> str:
    """The densities along the x-y plane and along z of one 3D run."""
    from analysis.plots import axial_curve, plot_axial_densities
    from analysis.runfile import read_run

    run = read_run(run_path, series=())
    system = run.config.get("system") or {}
    curve = axial_curve(
        run.observables,
        system.get("particles"),
        f"N = {system.get('particles')}: {_energy_text(run)}",
    )
    if curve is None:
        raise ValueError(f"{run_path}: no density_xy / density_z (production.axial_density)")
    title = (
        f"{system.get('particles')} hard-sphere bosons, a = {system.get('hard_sphere_radius')}, "
        f"omega_z = {system.get('omega_z')}: {_settings_text(run.config)}"
    )
    return plot_axial_densities([curve], out, title=title)


def draw_rbm(train_path: str, filters_out: str | None, samples_out: str | None) -> list:
    """The trained RBM's filters (the columns of W as images, one colour scale) and
    Gibbs samples of it under a row of training images, in rows of 8 tiles (the tile
    grids of analysis.generative; its own --plots figures are one long row)."""
    from analysis.generative import N_SHOWN, _data_rows, _image_grid, read_training
    from parallel_vmc.generative import sampling

    run = read_training(train_path)
    rbm, shape = run.rbm, run.image_shape
    if shape is None:
        raise ValueError(f"{train_path}: the visibles are no image (no image shape)")
    data = (run.config.get("data") or {}).get("name")
    written = []
    if filters_out is not None:
        cols = rbm.W.T[:N_SHOWN]
        rows = [cols[k : k + ROW] for k in range(0, len(cols), ROW)]
        titles = [
            f"{data}: filters of the {rbm.n_hidden} hidden units, columns of W "
            "(red > 0 > blue, one scale)"
        ] + [""] * (len(rows) - 1)
        written.append(_image_grid(rows, shape, titles, filters_out, weights=True))
    if samples_out is not None:
        drawn = sampling.gibbs_chains(rbm, N_SHOWN, 1, thin=1, burn_in=GIBBS_SWEEPS, seed=0)
        drawn = drawn[:, 0]
        rows = [drawn[k : k + ROW] for k in range(0, len(drawn), ROW)]
        titles = [f"Gibbs samples of the RBM ({N_SHOWN} chains, {GIBBS_SWEEPS} sweeps each)"]
        titles += [""] * (len(rows) - 1)
        images = _data_rows(run)
        if images is not None and images.shape[1] == rbm.n_visible:
            rows.insert(0, images[:ROW])
            titles.insert(0, f"{data}: training images")
        written.append(_image_grid(rows, shape, titles, samples_out))
    return written


# --------------------------------------------------------------------------------- main
def parse(argv=None):
    p = argparse.ArgumentParser(
        description="Regenerate the documentation's figures from the shipped configs."
    )
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "figures"), help="figure directory")
    p.add_argument(
        "--runs",
        default=os.path.join(ROOT, "runs", "figures"),
        help="work directory of the run files (reused when already there)",
    )
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--quick", action="store_true", help="shorten every VMC run but the quick start"
    )
    speed.add_argument("--full", action="store_true", help="every config as shipped (slow)")
    p.add_argument("--only", nargs="+", choices=FIGURES, metavar="NAME", help="these figures")
    p.add_argument("--ranks", type=int, default=1, help="MPI ranks per run (mpiexec -n R)")
    args = p.parse_args(argv)
    if args.ranks < 1:
        p.error("--ranks must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse(argv)
    from analysis.plots import PlotError, require_matplotlib

    try:
        require_matplotlib()
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    mode = "quick" if args.quick else "full" if args.full else "default"
    figures = list(dict.fromkeys(args.only or FIGURES))
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.runs, exist_ok=True)
    files = {}
    for job in needed_jobs(figures):
        files[job.name], _ = ensure_run(job, args.runs, mode, args.ranks)
    train = files.get("digits") or files.get("bars4x4")

    def out(name):
        return os.path.join(args.out, name + ".png")

    made = []  # (figure, run files)
    try:
        if "quickstart_energy" in figures:
            made.append(
                (
                    draw_quickstart_energy(files["quickstart"], out("quickstart_energy")),
                    [files["quickstart"]],
                )
            )
        if "dot_densities" in figures:
            dots = [files["N6"], files["N12"], files["N20"]]
            made.append((draw_dot_densities(dots, out("dot_densities")), dots))
        if "boson_densities" in figures:
            made.append(
                (draw_boson_densities(files["bosons"], out("boson_densities")), [files["bosons"]])
            )
        wanted = [f for f in ("rbm_filters", "rbm_samples") if f in figures]
        if wanted:
            paths = draw_rbm(
                train,
                out("rbm_filters") if "rbm_filters" in wanted else None,
                out("rbm_samples") if "rbm_samples" in wanted else None,
            )
            made += [(path, [train]) for path in paths]
    except (ValueError, OSError, PlotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - RunFileError and friends: one line
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for path, used in made:
        size = os.path.getsize(path) / 1024
        print(f"wrote {path} ({size:.0f} kB) from {', '.join(used)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
