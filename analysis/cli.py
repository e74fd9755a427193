"""``python -m analysis``: summaries, JSON and plots of pvmc run files.

    python -m analysis RUN.h5 [RUN2.h5 ...] [--json] [--plots DIR]
    python -m analysis table RUN.h5 ... --by system.omega [--json] [--plot FILE.png]

Exit codes: 0 success; 2 bad input (missing file, not HDF5, not a run file, missing
datasets or config keys, bad command line), with one line ``error: ...`` on stderr
and nothing written. Input files are opened read-only.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

from .plots import PlotError
from .runfile import SCALAR_OBSERVABLES, RunFileError, read_run, shell_volumes

EXIT_OK, EXIT_BAD_INPUT = 0, 2
ENERGY_PARTS = ("kinetic", "trap", "interaction", "potential")   # potential: format <= 2
SCALAR_ORDER = ("kinetic", "trap", "interaction", "local_energy", "r12")   # in the table
HISTOGRAM_NAMES = ("density", "density_image", "pair_distance")
SHORT_BATCHES = 0.7    # batch-means error of E below this x blocking error: warn


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line ``error: ...`` and exit code 2."""

    def error(self, message):  # noqa: D401 - argparse hook
        raise UsageError(f"{message} (see python -m analysis --help)")


# ----------------------------------------------------------------------------- analysis
def _num(v):
    """JSON-safe number: nan/inf -> None."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _clean(obj):
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return _num(obj)
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():
        return _clean(obj.item())
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return obj


def analyse(run, series: str = "local_energy", n_boot: int = 1000, seed: int | None = None):
    """(report dict, ChainSummary or None) of one RunData."""
    from .bootstrap import DEFAULT_SEED
    from .chains import summarize_chains

    seed = DEFAULT_SEED if seed is None else seed
    a = run.attrs
    report = {
        "file": run.path,
        "status": run.status,
        "format_version": a.get("format_version"),
        "package_version": a.get("package_version"),
        "created": a.get("created"),
        "hostname": a.get("hostname"),
        "mpi_size": a.get("mpi_size"),
        "walkers_per_rank": a.get("walkers_per_rank"),
        "seed": a.get("seed"),
        "config": run.config,
        "warnings": [],
    }
    if run.n_iterations:
        o = run.optimization
        last = run.n_iterations - 1
        report["optimization"] = {
            "iterations": run.n_iterations,
            **{f"final_{k}": float(o[k][last]) for k in
               ("energy", "energy_error", "variance", "acceptance", "grad_norm",
                "learning_rate", "wall_time") if k in o},
        }
    else:
        report["optimization"] = None

    summary = None
    prod = None
    if series in run.production:
        x = run.production[series]
        pa = run.production_attrs
        prod = {"series": series, "samples_per_chain_filled": int(x.shape[1]),
                "n_chains": int(x.shape[0]),
                "acceptance": pa.get("acceptance"), "step": pa.get("step"),
                "sampler": pa.get("sampler")}
        if x.shape[1] < 4:
            report["warnings"].append(
                f"production has only {x.shape[1]} sample(s) per chain so far; not analysed")
        else:
            try:
                summary = summarize_chains(x, n_boot=n_boot, seed=seed)
            except ValueError as exc:
                report["warnings"].append(f"production/{series}: {exc}; not analysed")
            else:
                prod.update(summary.as_dict())
                if not summary.blocking.converged:
                    report["warnings"].append(
                        "blocking found no level with uncorrelated blocks: the error is a "
                        "lower bound, the chains are too short for their correlation time")
                if not summary.autocorr.converged:
                    report["warnings"].append(
                        "no self-consistent window for tau_int: chains too short")
                if not summary.chains_ok:
                    wpr = run.attrs.get("walkers_per_rank")
                    chains = list(summary.flagged_chains)
                    where = ""
                    if chains and isinstance(wpr, int) and wpr > 0:
                        where = " (rank " + ", ".join(
                            f"{c // wpr}" for c in chains) + ")"
                    report["warnings"].append(
                        f"chains disagree: R-hat {summary.rhat:.5f} vs limit "
                        f"{summary.rhat_limit:.5f}; flagged chains {chains}{where}")
        for part in ENERGY_PARTS:
            if part != series and part in run.production and run.production[part].shape[1] >= 4:
                try:
                    ps = summarize_chains(run.production[part], n_boot=2, seed=seed)
                    prod[part] = {"mean": ps.mean, "error": ps.error}
                except ValueError as exc:
                    report["warnings"].append(f"production/{part}: {exc}")
    report["production"] = prod
    report["summary_in_file"] = run.summary or None
    report["segments"] = run.segments
    report["observables"] = _observables_report(
        run, report["warnings"],
        blocking_error=summary.error if summary is not None and series == "local_energy"
        else None)
    if not run.status.startswith("completed"):
        report["warnings"].append(f"run status is '{run.status}': partial data analysed")
    return report, summary


def _integral(name: str, h: dict, dimensions) -> float | None:
    """Integral of a stored histogram density over its range (None if D is unknown)."""
    if name == "density_image":
        area = np.outer(np.diff(h["x_edges"]), np.diff(h["y_edges"]))
        return float(np.sum(h["density"] * area))
    if name == "density":
        if not isinstance(dimensions, int) or dimensions < 1:
            return None
        return float(np.sum(h["density"] * shell_volumes(h["edges"], dimensions)))
    return float(np.sum(h["density"] * np.diff(h["edges"])))


def _observables_report(run, warnings: list, blocking_error=None) -> dict | None:
    """The /production/observables of a run for the report.

    Format 3: the scalars' means with their batch-means errors, per histogram its bins,
    overflow and integral, and the energy's batch-means error against its blocking error
    (the file's, else ``blocking_error`` from this analysis) with a warning when the
    batches are too short to be independent. Formats 1-2: the dataset names.
    """
    obs = run.observables
    if not obs:
        return None
    if not any(isinstance(v, dict) for v in obs.values()):   # formats 1-2: flat arrays
        return {"datasets": sorted(obs)}
    attrs = run.observables_attrs
    system = run.config.get("system")
    system = system if isinstance(system, dict) else {}
    particles = system.get("particles")
    if isinstance(obs.get("density"), dict):
        particles = obs["density"]["attrs"].get("particles", particles)
    samples = attrs.get("samples")
    out = {"n_batches": attrs.get("n_batches"), "samples": samples,
           "error_method": attrs.get("error_method"), "scalars": {}}
    for name in SCALAR_OBSERVABLES:
        if isinstance(obs.get(name), dict):
            out["scalars"][name] = {"mean": obs[name]["mean"], "error": obs[name]["error"]}
    for name in HISTOGRAM_NAMES:
        h = obs.get(name)
        if not isinstance(h, dict):
            continue
        overflow = h["attrs"].get("overflow")
        counted = float(h["counts"].sum()) + float(overflow or 0.0)
        dims = h["attrs"].get("dimensions", system.get("dimensions"))
        entry = {"bins": list(h["counts"].shape), "overflow": overflow,
                 "overflow_fraction": (float(overflow) / counted
                                       if overflow is not None and counted else None),
                 "integral": _integral(name, h, dims)}
        out[name] = entry
        # expected: P particles (densities) or 1 (pair distance), less what overflowed
        if name == "pair_distance":
            per_sample = (particles * (particles - 1) // 2
                          if isinstance(particles, int) else None)
            target = 1.0
        else:
            per_sample = particles if isinstance(particles, int) else None
            target = per_sample
        if (entry["integral"] is not None and per_sample
                and isinstance(samples, (int, float)) and samples > 0
                and overflow is not None):
            missing = float(overflow) / samples / (1 if name != "pair_distance"
                                                   else per_sample)
            if abs(entry["integral"] + missing - target) > 1e-6 * target:
                warnings.append(
                    f"observables: {name} integrates to {entry['integral']:.6g} over its "
                    f"range (+ {missing:.3g} beyond it), not {target}: the file's "
                    "normalisation is not that of format 3")
        if entry["overflow_fraction"] is not None and entry["overflow_fraction"] > 1e-3:
            key = "pair_rmax" if name == "pair_distance" else "density_rmax"
            warnings.append(f"observables: {100 * entry['overflow_fraction']:.2g} % of the "
                            f"{name} counts lie beyond the histogram (raise "
                            f"production.{key})")

    batch = attrs.get("energy_error_batch_means")
    if batch is None and isinstance(obs.get("local_energy"), dict):
        batch = obs["local_energy"]["error"]
    blocking = attrs.get("energy_error_blocking")
    source = "file"
    if blocking is None and blocking_error is not None:
        blocking, source = blocking_error, "this analysis"
    ratio = (batch / blocking if isinstance(batch, (int, float)) and
             isinstance(blocking, (int, float)) and blocking > 0 and math.isfinite(batch)
             else None)
    out.update(energy_error_batch_means=batch, energy_error_blocking=blocking,
               energy_error_blocking_from=source if blocking is not None else None,
               energy_error_ratio=ratio)
    if ratio is not None and ratio < SHORT_BATCHES:
        warnings.append(f"observables: the batch-means error of E ({batch:.3g}) is below "
                        f"{SHORT_BATCHES} x its blocking error ({blocking:.3g}): batches too "
                        "short for the autocorrelation time, so the observables' errors are "
                        "underestimated (fewer production.batches or more samples)")
    return out


def _observable_rows(o: dict | None) -> list:
    if not o:
        return []
    if "scalars" not in o:
        return [("observables", "datasets " + ", ".join(o.get("datasets", [])))]
    rows = [("observables", f"{_g(o['n_batches'])} batch means of {_g(o['samples'])} "
             "samples (mean +- batch-means error)")]
    labels = {"local_energy": "E", "r12": "<r12>"}
    for name in SCALAR_ORDER:
        v = o["scalars"].get(name)
        if v is not None:
            rows.append((f"  {labels.get(name, name)}", _pm(v["mean"], v["error"])))
    batch, blocking = o.get("energy_error_batch_means"), o.get("energy_error_blocking")
    if batch is not None and blocking is not None:
        ratio = o.get("energy_error_ratio")
        rows.append(("  E error", f"batch means {_g(batch, '.4g')} vs blocking "
                     f"{_g(blocking, '.4g')}"
                     + (" (this analysis)" if o.get("energy_error_blocking_from")
                        == "this analysis" else "")
                     + (f": ratio {ratio:.3f}" if ratio is not None else "")
                     + (" (batches too short)" if ratio is not None and ratio < SHORT_BATCHES
                        else "")))
    labels = {"density": "rho(r)", "density_image": "rho(x,y)", "pair_distance": "P(r12)"}
    for name in HISTOGRAM_NAMES:
        h = o.get(name)
        if h is None:
            continue
        frac = h.get("overflow_fraction")
        rows.append((f"  {labels[name]}",
                     f"{'x'.join(map(str, h['bins']))} bins, integral "
                     f"{_g(h.get('integral'), '.6g')}, overflow {_g(h['overflow'], '.0f')}"
                     + (f" ({100 * frac:.2g} %)" if frac else "")))
    return rows


def _pm(v, e, digits=6):
    if v is None:
        return "-"
    if e is None or not isinstance(e, (int, float)) or not math.isfinite(e):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} +- {e:.{digits}f}"


def _g(v, fmt=".4g"):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else format(v, fmt)
    return str(v)


def format_report(r: dict) -> str:
    cfg = r.get("config") or {}
    sy, wf = cfg.get("system", {}) or {}, cfg.get("wavefunction", {}) or {}
    sa, op = cfg.get("sampler", {}) or {}, cfg.get("optimizer", {}) or {}
    rows = [
        ("file", r["file"]),
        ("status", r["status"]),
        ("created", f"{r.get('created')} on {r.get('hostname')}, pvmc "
                    f"{r.get('package_version')}, format {r.get('format_version')}"),
        ("parallel", f"{r.get('mpi_size')} rank(s) x {r.get('walkers_per_rank')} walkers, "
                     f"seed {r.get('seed')}"),
        ("system", f"P={sy.get('particles')} D={sy.get('dimensions')} "
                   f"omega={sy.get('omega')} interaction={sy.get('interaction')}"),
        ("wavefunction", f"RBM hidden={wf.get('hidden')} psi={wf.get('psi')} "
                         f"sigma={wf.get('sigma')} jastrow={wf.get('jastrow', 'none')}"),
        ("sampler", f"{sa.get('method')} step={sa.get('step')}"),
        ("optimizer", f"{op.get('method')} lr={op.get('learning_rate')} "
                      f"iterations={op.get('iterations')}"),
    ]
    o = r.get("optimization")
    if o:
        rows.append(("optimisation", f"{o['iterations']} iterations, last energy "
                     + _pm(o.get("final_energy"), o.get("final_energy_error"))))
    else:
        rows.append(("optimisation", "no iterations recorded"))
    p = r.get("production")
    if p is None:
        rows.append(("production", "no production data yet"))
    elif "mean" not in p:
        rows.append(("production", f"{p['n_chains']} chains x "
                     f"{p['samples_per_chain_filled']} samples: not analysed"))
    else:
        name = "energy" if p["series"] == "local_energy" else p["series"]
        rows += [
            (name, _pm(p["mean"], p["error"]) + "  (blocking)"),
            ("  bootstrap", f"+- {p['error_bootstrap']:.6f}   between chains +- "
                            f"{_g(p['error_chains'], '.6f')}"),
            ("variance", _g(p["variance"], ".6g")),
            ("tau_int", f"{_g(p['tau_int'], '.4g')} samples (blocking implies "
                        f"{_g(p['tau_blocking'], '.4g')}); level {p['blocking_level']}, "
                        f"blocks of {p['block_size']}"),
            ("samples", f"{p['n_samples']} = {p['n_chains']} chains x "
                        f"{p['samples_per_chain']}; effective {p['n_eff']:.4g}"),
            ("R-hat", f"{_g(p['rhat'], '.5f')} (limit {_g(p['rhat_limit'], '.5f')}): "
                      + ("chains agree" if p["chains_ok"] else
                         f"CHAINS DISAGREE, flagged {p['flagged_chains']}")),
            ("acceptance", f"{_g(p.get('acceptance'), '.4f')}  ({p.get('sampler')}, "
                           f"step {_g(p.get('step'), '.4g')})"),
        ]
        for part in ENERGY_PARTS:
            if isinstance(p.get(part), dict):
                rows.append((part, _pm(p[part]["mean"], p[part]["error"]) + "  (blocking)"))
    rows += _observable_rows(r.get("observables"))
    s = r.get("summary_in_file")
    if s and "energy" in s:
        rows.append(("pvmc summary", _pm(s.get("energy"), s.get("error"))))
    for k, seg in enumerate(r.get("segments") or []):
        rows.append((f"segment {k}", f"{seg.get('mpi_size')} rank(s) on {seg.get('hostname')}, "
                     f"{seg.get('start_time')} -> {seg.get('end_time') or '...'}: "
                     f"{seg.get('ended')}"))
    for w in r.get("warnings", []):
        rows.append(("warning", w))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# ----------------------------------------------------------------------------- commands
def _summary_parser():
    p = _Parser(prog="python -m analysis", description=(
        "Statistics of pvmc run files: automated blocking, bootstrap, autocorrelation "
        "time, split R-hat, plots. For a table over many runs: "
        "python -m analysis table RUN.h5 ... --by KEY"))
    p.add_argument("files", nargs="+", metavar="RUN.h5", help="run file(s) written by pvmc")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plots", metavar="DIR",
                   help="write PNG figures into DIR (created if needed)")
    p.add_argument("--series", default=None, metavar="NAME",
                   help="production series to analyse: local_energy (default), kinetic, "
                        "trap, interaction (potential in format <= 2); an explicitly "
                        "named series must exist")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (1000)")
    p.add_argument("--seed", type=int, default=None, help="bootstrap seed")
    return p


def _table_parser():
    p = _Parser(prog="python -m analysis table", description=(
        "One table (and optionally one figure) across many runs, keyed by a config value "
        "such as system.omega or a root attribute such as mpi_size."))
    p.add_argument("files", nargs="+", metavar="RUN.h5")
    p.add_argument("--by", required=True, metavar="KEY", help="dotted config key")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--plot", metavar="FILE.png", help="write energy vs KEY to FILE.png")
    p.add_argument("--skip-bad", action="store_true",
                   help="report bad files as warnings and go on (exit code still 0)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates (1000)")
    return p


def _check_plot_dir(directory: str) -> None:
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise UsageError(f"--plots {directory}: exists and is not a directory")


def cmd_summary(argv) -> int:
    args = _summary_parser().parse_args(argv)
    if args.n_boot < 2:
        raise UsageError("--n-boot must be at least 2")
    if args.plots:
        _check_plot_dir(args.plots)
        from .plots import require_matplotlib
        require_matplotlib()
    series = args.series or "local_energy"
    require = (f"production/{series}",) if args.series else ()
    stems = {}
    runs = []
    for path in args.files:          # validate everything before any output is written
        run = read_run(path, require=require)
        if args.plots and run.name in stems:
            raise UsageError(f"{path} and {stems[run.name]} have the same name {run.name!r}; "
                             "their plots would overwrite each other")
        stems[run.name] = path
        runs.append(run)
    reports = []
    for run in runs:
        report, summary = analyse(run, series=series, n_boot=args.n_boot, seed=args.seed)
        if args.plots:
            from .plots import run_plots
            report["plots"] = run_plots(run, summary, args.plots)
        reports.append(report)
    if args.json:
        out = _clean(reports[0] if len(reports) == 1 else reports)
        print(json.dumps(out, indent=2, sort_keys=False))
    else:
        print("\n\n".join(format_report(r) for r in reports))
        for r in reports:
            for path in r.get("plots", []):
                print(f"wrote {path}")
    return EXIT_OK


def _sort_key(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return (1, str(v))
    return (0, v)


def cmd_table(argv) -> int:
    args = _table_parser().parse_args(argv)
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise UsageError(f"--plot {args.plot}: the figure name must end in .png")
        if any(os.path.abspath(args.plot) == os.path.abspath(f) for f in args.files):
            raise UsageError(f"--plot {args.plot} is one of the input files")
        if os.path.isdir(args.plot):
            raise UsageError(f"--plot {args.plot} is a directory")
        from .plots import require_matplotlib
        require_matplotlib()
    runs, problems = [], []
    for path in args.files:
        try:
            run = read_run(path)
            try:
                key = run.value(args.by)
            except KeyError:
                raise RunFileError(path, f"config has no key {args.by}") from None
            runs.append((key, run))
        except RunFileError as exc:
            if not args.skip_bad:
                raise
            problems.append(str(exc))
    rows = []
    for key, run in runs:
        report, s = analyse(run, n_boot=args.n_boot)
        p = report["production"] or {}
        rows.append({"key": key, "file": run.path, "status": run.status,
                     "energy": p.get("mean"), "error": p.get("error"),
                     "error_bootstrap": p.get("error_bootstrap"),
                     "variance": p.get("variance"), "tau_int": p.get("tau_int"),
                     "n_samples": p.get("n_samples"), "rhat": p.get("rhat"),
                     "chains_ok": p.get("chains_ok"), "acceptance": p.get("acceptance")})
    rows.sort(key=lambda r: _sort_key(r["key"]))
    for msg in problems:
        print(f"warning: skipped {msg}", file=sys.stderr)
    if args.plot:
        from .plots import plot_scan
        parent = os.path.dirname(os.path.abspath(args.plot))
        os.makedirs(parent, exist_ok=True)
        plot_scan(rows, args.by, args.plot)
    if args.json:
        print(json.dumps(_clean({"by": args.by, "rows": rows}), indent=2))
    else:
        head = [args.by, "status", "energy", "error", "err_boot", "variance", "tau_int",
                "samples", "R-hat", "ok", "file"]
        table = [head]
        for r in rows:
            table.append([_g(r["key"]), r["status"],
                          "-" if r["energy"] is None else f"{r['energy']:.6f}",
                          "-" if r["error"] is None else f"{r['error']:.6f}",
                          "-" if r["error_bootstrap"] is None else f"{r['error_bootstrap']:.6f}",
                          _g(r["variance"], ".5g"), _g(r["tau_int"], ".3g"),
                          _g(r["n_samples"]), _g(r["rhat"], ".4f"),
                          "-" if r["chains_ok"] is None else ("yes" if r["chains_ok"] else "NO"),
                          r["file"]])
        widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
        for row in table:
            print("  ".join(f"{str(c):<{w}}" for c, w in zip(row, widths)).rstrip())
        if args.plot:
            print(f"wrote {args.plot}")
    return EXIT_OK


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "table":
            return cmd_table(argv[1:])
        return cmd_summary(argv)
    except SystemExit as exc:           # --help (0); argparse errors go through UsageError
        return int(exc.code or 0)
    except (UsageError, RunFileError, PlotError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
