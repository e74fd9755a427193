"""``python -m analysis``: summaries, JSON and plots of pvmc run files.

    python -m analysis RUN.h5 [RUN2.h5 ...] [--json] [--plots DIR]
    python -m analysis table RUN.h5 ... --by system.omega [--json] [--plot FILE.png]
    python -m analysis TRAIN.h5 [--json] [--plots DIR]     (pvmc train files: generative)

Exit codes: 0 success; 2 bad input (missing file, not HDF5, not a run file, a damaged
file, missing datasets or config keys, bad command line, a plot destination that cannot
be written), with one line ``error: ...`` on stderr and nothing written. Plots asked for
where matplotlib cannot be imported: the report (or table) is printed as without them,
then ``error: plots skipped: ...``, exit code 2, nothing written. Input files are
opened read-only. A file whose samples no longer give the energy its /summary states
(damaged or edited after the run) is analysed with exit code 0 and a prominent
``SUMMARY MISMATCH`` row (JSON: ``summary_mismatch``): the numbers shown are those of
the samples as they are now, and the report says they are not the run's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile

import numpy as np

from analysis import dmc as dmc_analysis
from analysis.generative import is_training_file
from analysis.plots import PlotError
from analysis.runfile import SCALAR_OBSERVABLES, RunFileError, is_number, read_run
from parallel_vmc.runfile import schema as S
from parallel_vmc.runfile.schema import shell_volumes
from parallel_vmc.stats.blocking import SHORT_BATCHES, batches_too_short
from parallel_vmc.stats.chains import AGREE, DISAGREE, HEAVY_TAIL, distinct
from parallel_vmc.stats.text import estimate

EXIT_OK, EXIT_BAD_INPUT = 0, 2
ENERGY_PARTS = S.COMPONENTS + (S.POTENTIAL,)  # potential: format <= 2
SCALAR_ORDER = S.COMPONENTS + (S.LOCAL_ENERGY, S.R12)  # in the table
HISTOGRAM_NAMES = tuple(S.HISTOGRAMS)
UNITS = (
    "hbar = m = e = 1; E in units of hbar*omega_0, lengths in sqrt(hbar/(m*omega_0)), omega_0 = 1"
)
MAX_N_BOOT = 100_000  # replicates: the bootstrap's precision ~1/sqrt(2 n_boot) is ample
MAX_SEED = 2**32 - 1
SUMMARY_RTOL = 1e-9  # /summary vs the same samples' mean: round-off only
# series whose mean is infinite in a 1D Coulomb run (the bare 1/|x| at contact)
INFINITE_MEAN_SERIES = (S.LOCAL_ENERGY, S.INTERACTION, S.POTENTIAL)


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
        item = obj.item()
        return _clean(item) if type(item) is not type(obj) else str(obj)
    if hasattr(obj, "tolist"):
        return _clean(obj.tolist())
    return obj


def _section(config, name: str) -> dict:
    """A config section as a dict ({} when absent)."""
    value = config.get(name) if isinstance(config, dict) else None
    return value if isinstance(value, dict) else {}


def sampler_used(run) -> dict:
    """The sampler and step the production used: the tuned step (/production attribute
    ``step``), else the config's initial one; Gibbs sampling has no step."""
    config = _section(run.config, "sampler")
    method = run.production_attrs.get("sampler") or config.get("method")
    if method == "gibbs":
        return {"method": method, "step": None, "step_source": None}
    step, source = run.production_attrs.get("step"), "tuned"
    if not is_number(step):
        step, source = config.get("step"), "initial, from the config"
    return {
        "method": method,
        "step": step if is_number(step) else None,
        "step_source": source if is_number(step) else None,
    }


def sigma_used(run) -> dict:
    """The RBM width: /wavefunction/sigma (resolved by pvmc), else the config's value
    (None there means pvmc's default, the exact non-interacting width)."""
    stored = run.wavefunction.get("sigma")
    if stored is not None:
        return {"value": float(stored.ravel()[0]), "source": "/wavefunction/sigma"}
    value = _section(run.config, "wavefunction").get("sigma")
    return {"value": value if is_number(value) else None, "source": "config"}


def sigma_z_used(run) -> dict | None:
    """The RBM's own width along z: /wavefunction's attribute, else the config's value,
    else, in an elliptical trap, pvmc's default (not stored: value None); None when the
    width along z is sigma's."""
    stored = run.wavefunction_attrs.get(S.SIGMA_Z)
    if is_number(stored):
        return {"value": float(stored), "source": f"/wavefunction attribute {S.SIGMA_Z}"}
    value = _section(run.config, "wavefunction").get("sigma_z")
    if is_number(value):
        return {"value": value, "source": "config"}
    system = _section(run.config, "system")
    omega_z = system.get("omega_z")
    if system.get("dimensions") == 3 and is_number(omega_z) and omega_z != system.get("omega"):
        return {"value": None, "source": "config"}
    return None


def widths_used(run) -> dict | None:
    """The variational widths of a run with them (config wavefunction.variational_widths):
    their optimized values from /wavefunction/width_shift (format 6), else None."""
    if not _section(run.config, "wavefunction").get("variational_widths"):
        return None
    shift = run.wavefunction.get(S.WIDTH_SHIFT)
    return {"values": None if shift is None else [float(v) for v in np.ravel(shift)]}


def per_particle(run, prod: dict | None) -> dict | None:
    """E/N and its error for bosons, as the literature on trapped bosons quotes it;
    None for fermions, another series or an infinite mean."""
    particles = _section(run.config, "system").get("particles")
    if (
        statistics_used(run) != "bosons"
        or not prod
        or prod.get("series") != S.LOCAL_ENERGY
        or "mean" not in prod
        or prod.get("mean_is_infinite")
        or not (isinstance(particles, int) and particles > 0)
    ):
        return None
    return {
        "particles": particles,
        "mean": prod["mean"] / particles,
        "error": prod["error"] / particles,
    }


def statistics_used(run) -> str | None:
    """fermions | bosons: /wavefunction's attribute (format 4), else the config's; None
    for a file from before fermions (its RBM had no determinants)."""
    stored = run.wavefunction_attrs.get(S.STATISTICS)
    return stored if isinstance(stored, str) else _section(run.config, "system").get(S.STATISTICS)


def orbitals_used(run) -> dict | None:
    """The Slater part of a fermion run (format 4, once /wavefunction is written): the
    quantum numbers (n, D) of each spin's orbitals as lists, their text, the orbital
    scale and the largest inverse drift; None without determinants."""
    q = run.wavefunction.get(S.ORBITALS)
    if q is None:
        return None
    scale = run.wavefunction.get(S.ORBITAL_SCALE)
    return {
        "quantum_numbers": q.tolist(),
        "text": S.orbitals_text(q),
        "orbital_scale": None if scale is None else float(scale.ravel()[0]),
        "inverse_drift": run.wavefunction_attrs.get(S.INVERSE_DRIFT),
    }


def infinite_mean_reason(config) -> str | None:
    """Why the mean local energy of this system is infinite, or None.

    In 1D the bare Coulomb 1/|x_p - x_q| is not integrable at contact, and the RBM has
    no node there (|psi|^2 > 0 at x_p = x_q): the expectation value diverges. The
    sample mean is then finite but grows with the samples, and its error bar means
    nothing."""
    system = _section(config, "system")
    particles = system.get("particles")
    if (
        system.get("dimensions") == 1
        and system.get("interaction", "coulomb") == "coulomb"
        and is_number(particles)
        and particles > 1
    ):
        return (
            "1D Coulomb: the bare 1/|x| is not integrable at contact and the RBM has no "
            "node there, so the mean local energy (and interaction) is INFINITE: the "
            "printed mean is not an estimate of anything and its error bar is "
            "meaningless"
        )
    return None


def summary_mismatch(run) -> dict | None:
    """The file's /summary energy against the mean of /production/local_energy.

    pvmc writes /summary from exactly these samples when the run ends, so their mean
    must agree to round-off (SUMMARY_RTOL of max(|E|, error)); more than that means the
    samples changed afterwards. Returns None when they agree or there is no summary,
    else the numbers and a message."""
    s = run.summary
    if not is_number(s.get("energy")):
        return None
    energy, error = float(s["energy"]), s.get("error")
    error = float(error) if is_number(error) else float("nan")
    x = run.production.get(S.LOCAL_ENERGY)
    if x is None or x.size == 0:
        return {
            "recomputed": None,
            "file": energy,
            "error": error,
            "in_errors": None,
            "message": f"the file's /summary states E = {energy:.6f}, but "
            "/production/local_energy holds no samples: the file was changed "
            "after the run summarised them (damaged or edited)",
        }
    mean = float(np.mean(x))
    n_file = s.get("n_samples")
    scale = max(abs(energy), abs(error) if math.isfinite(error) else 0.0)
    same_count = not is_number(n_file) or int(n_file) == x.size
    if math.isfinite(mean) and abs(mean - energy) <= SUMMARY_RTOL * scale and same_count:
        return None
    diff = mean - energy
    sigmas = diff / error if math.isfinite(diff) and error > 0 else None
    by = (
        f"by {diff:+.3g} = {sigmas:+.3g} x its error {error:.3g}"
        if sigmas is not None
        else f"by {diff:+.3g}"
    )
    count = (
        "" if same_count else f"; /summary counts {int(n_file)} samples, the file holds {x.size}"
    )
    return {
        "recomputed": mean,
        "file": energy,
        "error": error,
        "difference": diff,
        "in_errors": sigmas,
        "n_samples": int(x.size),
        "n_samples_file": int(n_file) if is_number(n_file) else None,
        "message": f"the energy recomputed from the samples ({mean:.6f}) and the file's "
        f"/summary ({energy:.6f}) disagree {by}{count}: the samples were "
        "changed after the run summarised them (damaged or edited)",
    }


def _finite(v) -> bool:
    return is_number(v) and math.isfinite(v)


def _production_report(run, series, n_boot, seed, report) -> tuple:
    """(production dict or None, ChainSummary or None) of one series, with its warnings
    and notes added to the report."""
    from parallel_vmc.stats.chains import summarize_chains, tail_cause

    if series not in run.production:
        return None, None
    x = run.production[series]
    pa = run.production_attrs
    prod = {
        "series": series,
        "samples_per_chain_filled": int(x.shape[1]),
        "n_chains": int(x.shape[0]),
        "acceptance": pa.get("acceptance"),
        "step": pa.get("step"),
        "sampler": pa.get("sampler"),
    }
    summary = None
    if x.shape[1] < 4:
        report["warnings"].append(
            f"production has only {x.shape[1]} sample(s) per chain so far; not analysed"
        )
    else:
        try:
            summary = summarize_chains(x, n_boot=n_boot, seed=seed)
        except ValueError as exc:
            report["warnings"].append(f"{S.path(S.PRODUCTION, series)}: {exc}; not analysed")
    if summary is not None:
        prod.update(summary.as_dict())
        if not summary.blocking.converged:
            report["warnings"].append(
                "blocking found no level with uncorrelated blocks: the error is a "
                "lower bound, the chains are too short for their correlation time"
            )
        if not summary.autocorr.converged:
            report["warnings"].append("no self-consistent window for tau_int: chains too short")
        # the verdict of the run's own summary, from the same function
        verdict = summary.verdict
        prod["chains"] = verdict.headline()
        message = verdict.explanation(tail_cause(run.config), run.attrs.get("walkers_per_rank"))
        if verdict.level == DISAGREE:
            report["warnings"].append(message)
        elif message:
            report["notes"].append(message)
    for part in ENERGY_PARTS:
        if part != series and part in run.production and run.production[part].shape[1] >= 4:
            try:
                ps = summarize_chains(run.production[part], n_boot=2, seed=seed)
                prod[part] = {"mean": ps.mean, "error": ps.error}
            except ValueError as exc:
                report["warnings"].append(f"{S.path(S.PRODUCTION, part)}: {exc}")
    return prod, summary


def analyse(run, series: str = S.LOCAL_ENERGY, n_boot: int = 1000, seed: int | None = None):
    """(report dict, ChainSummary or None) of one RunData."""
    from parallel_vmc.stats.bootstrap import DEFAULT_SEED

    seed = DEFAULT_SEED if seed is None else seed
    a = run.attrs
    report = {
        "file": run.path,
        "status": run.status,
        "format_version": a.get(S.FORMAT),
        "package_version": a.get("package_version"),
        "created": a.get("created"),
        "hostname": a.get("hostname"),
        "mpi_size": a.get("mpi_size"),
        "walkers_per_rank": a.get("walkers_per_rank"),
        "seed": a.get("seed"),
        "units": UNITS,
        "config": run.config,
        "sampler": sampler_used(run),
        "sigma": sigma_used(run),
        "sigma_z": sigma_z_used(run),
        "widths": widths_used(run),
        "statistics": statistics_used(run),
        "orbitals": orbitals_used(run),
        "warnings": [],
        "notes": [],
    }
    if run.n_iterations:
        o = run.optimization
        last = run.n_iterations - 1
        report["optimization"] = {
            "iterations": run.n_iterations,
            **{f"final_{k}": float(o[k][last]) for k in S.OPT_FIELDS if k in o},
        }
    else:
        report["optimization"] = None
    prod, summary = _production_report(run, series, n_boot, seed, report)
    report["production"] = prod
    reason = infinite_mean_reason(run.config)
    report["infinite_mean"] = (
        {"series": list(INFINITE_MEAN_SERIES), "reason": reason} if reason else None
    )
    if reason:
        report["warnings"].append(reason)
        if prod is not None:
            prod["mean_is_infinite"] = series in INFINITE_MEAN_SERIES
    report["summary_in_file"] = run.summary or None
    report["summary_mismatch"] = summary_mismatch(run)
    if report["summary_mismatch"]:
        report["warnings"].append(report["summary_mismatch"]["message"])
    report["energy_per_particle"] = per_particle(run, prod)
    report["segments"] = run.segments
    report["observables"] = _observables_report(
        run,
        report["warnings"],
        blocking_error=summary.error if summary is not None and series == S.LOCAL_ENERGY else None,
    )
    report["dmc"] = dmc_analysis.summarize(run)
    if run.dmc_note:
        report["warnings"].append(run.dmc_note)
    if report["dmc"]:
        report["warnings"] += report["dmc"].pop("warnings")
    if not run.status.startswith(S.COMPLETED):
        report["warnings"].append(f"run status is '{run.status}': partial data analysed")
    return report, summary


def _integral(name: str, h: dict, dimensions) -> float | None:
    """Integral of a stored histogram density over its range (None if D is unknown)."""
    if name == S.DENSITY_IMAGE:
        area = np.outer(np.diff(h["x_edges"]), np.diff(h["y_edges"]))
        return float(np.sum(h["density"] * area))
    if name == S.DENSITY:
        if not isinstance(dimensions, int) or not 1 <= dimensions <= 3:
            return None
        return float(np.sum(h["density"] * shell_volumes(h["edges"], dimensions)))
    if name == S.DENSITY_XY:  # column density over the plane's rings
        return float(np.sum(h["density"] * shell_volumes(h["edges"], 2)))
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
    if not any(isinstance(v, dict) for v in obs.values()):  # formats 1-2: flat arrays
        return {"datasets": sorted(obs)}
    attrs = run.observables_attrs
    system = run.config.get("system")
    system = system if isinstance(system, dict) else {}
    particles = system.get("particles")
    if isinstance(obs.get(S.DENSITY), dict):
        particles = obs[S.DENSITY]["attrs"].get("particles", particles)
    samples = attrs.get("samples")
    out = {
        "n_batches": attrs.get("n_batches"),
        "samples": samples,
        "error_method": attrs.get("error_method"),
        "scalars": {},
    }
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
        entry = {
            "bins": list(h["counts"].shape),
            "overflow": overflow,
            "overflow_fraction": (
                float(overflow) / counted if overflow is not None and counted else None
            ),
            "integral": _integral(name, h, dims),
        }
        out[name] = entry
        # expected: P particles (densities) or 1 (pair distance), less what overflowed
        if name == S.PAIR_DISTANCE:
            per_sample = particles * (particles - 1) // 2 if isinstance(particles, int) else None
            target = 1.0
        else:
            per_sample = particles if isinstance(particles, int) else None
            target = per_sample
        if (
            entry["integral"] is not None
            and per_sample
            and isinstance(samples, (int, float))
            and samples > 0
            and overflow is not None
        ):
            missing = float(overflow) / samples / (1 if name != S.PAIR_DISTANCE else per_sample)
            if abs(entry["integral"] + missing - target) > 1e-6 * target:
                warnings.append(
                    f"observables: {name} integrates to {entry['integral']:.6g} over its "
                    f"range (+ {missing:.3g} beyond it), not {target}: the file's "
                    "normalisation is not that of format 3"
                )
        if entry["overflow_fraction"] is not None and entry["overflow_fraction"] > 1e-3:
            key = "pair_rmax" if name == S.PAIR_DISTANCE else "density_rmax"
            warnings.append(
                f"observables: {100 * entry['overflow_fraction']:.2g} % of the "
                f"{name} counts lie beyond the histogram (raise "
                f"production.{key})"
            )

    batch = attrs.get("energy_error_batch_means")
    if batch is None and isinstance(obs.get(S.LOCAL_ENERGY), dict):
        batch = obs[S.LOCAL_ENERGY]["error"]
    blocking = attrs.get("energy_error_blocking")
    source = "file"
    if blocking is None and blocking_error is not None:
        blocking, source = blocking_error, "this analysis"
    ratio = (
        batch / blocking
        if isinstance(batch, (int, float))
        and isinstance(blocking, (int, float))
        and blocking > 0
        and math.isfinite(batch)
        else None
    )
    out.update(
        energy_error_batch_means=batch,
        energy_error_blocking=blocking,
        energy_error_blocking_from=source if blocking is not None else None,
        energy_error_ratio=ratio,
    )
    if ratio is not None and batches_too_short(batch, blocking):
        warnings.append(
            f"observables: the batch-means error of E ({batch:.3g}) is below "
            f"{SHORT_BATCHES} x its blocking error ({blocking:.3g}): batches too "
            "short for the autocorrelation time, so the observables' errors are "
            "underestimated (fewer production.batches or more samples)"
        )
    return out


def _observable_rows(r: dict) -> list:
    o = r.get("observables")
    if not o:
        return []
    if "scalars" not in o:
        return [("observables", "datasets " + ", ".join(o.get("datasets", [])))]
    rows = [
        (
            "observables",
            f"{_g(o['n_batches'])} batch means of {_g(o['samples'])} "
            "samples (mean +- batch-means error)",
        )
    ]
    labels = {S.LOCAL_ENERGY: "E", S.R12: "<r12>"}
    for name in SCALAR_ORDER:
        v = o["scalars"].get(name)
        if v is not None:
            rows.append((f"  {labels.get(name, name)}", _mean_text(r, name, v["mean"], v["error"])))
    batch, blocking = o.get("energy_error_batch_means"), o.get("energy_error_blocking")
    if batch is not None and blocking is not None:
        ratio = o.get("energy_error_ratio")
        rows.append(
            (
                "  E error",
                f"batch means {_g(batch, '.4g')} vs blocking "
                f"{_g(blocking, '.4g')}"
                + (
                    " (this analysis)"
                    if o.get("energy_error_blocking_from") == "this analysis"
                    else ""
                )
                + (f": ratio {ratio:.3f}" if ratio is not None else "")
                + (
                    " (batches too short)"
                    if ratio is not None and batches_too_short(batch, blocking)
                    else ""
                ),
            )
        )
    labels = {
        S.DENSITY: "rho(r)",
        S.DENSITY_IMAGE: "rho(x,y)",
        S.PAIR_DISTANCE: "P(r12)",
        S.DENSITY_XY: "n(rho)",
        S.DENSITY_Z: "n(z)",
    }
    for name in HISTOGRAM_NAMES:
        h = o.get(name)
        if h is None:
            continue
        frac = h.get("overflow_fraction")
        rows.append(
            (
                f"  {labels[name]}",
                f"{'x'.join(map(str, h['bins']))} bins, integral "
                f"{_g(h.get('integral'), '.6g')}, overflow {_g(h['overflow'], '.0f')}"
                + (f" ({100 * frac:.2g} %)" if frac else ""),
            )
        )
    return rows


def _pm(v, e, digits=6):
    """'v +- e'; v alone without a finite error, or when v itself is not finite."""
    return estimate(v, e if isinstance(e, (int, float)) else None, digits)


def _g(v, fmt=".4g"):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else format(v, fmt)
    return str(v)


def _step_text(sampler: dict) -> str:
    if sampler.get("method") == "gibbs":
        return "no step (Gibbs)"
    if sampler.get("step") is None:
        return "step unknown"
    return f"step {_g(sampler['step'], '.4g')} ({sampler['step_source']})"


def _sigma_text(sigma: dict, name: str = "sigma") -> str:
    if sigma.get("value") is None:
        return f"{name}=default (not stored yet)"
    return f"{name}={sigma['value']:.6g}" + (" (config)" if sigma["source"] == "config" else "")


def _wavefunction_text(r: dict, wf: dict) -> str:
    """The wavefunction row: the product present, as the run's summary names it, and
    the widths."""
    product = ("Slater x " if _has_determinants(r) else "") + "RBM"
    product += " x variational widths" if r.get("widths") else ""
    sigma_z = " " + _sigma_text(r["sigma_z"], "sigma_z") if r.get("sigma_z") else ""
    return (
        f"{product} hidden={wf.get('hidden')} psi={wf.get('psi')} "
        f"{_sigma_text(r.get('sigma') or {})}{sigma_z} jastrow={wf.get('jastrow', 'none')}"
    )


def _width_rows(widths: dict | None) -> list:
    """The optimized variational widths (none without them)."""
    if not widths:
        return []
    values = widths.get("values")
    text = S.widths_text(values) if values else "not stored yet"
    return [("widths", f"{text} (variational: exp(-1/2 delta x^2) on the RBM's Gaussian)")]


def _header_rows(r: dict) -> list:
    cfg = r.get("config") or {}
    sy, wf = _section(cfg, "system"), _section(cfg, "wavefunction")
    op = _section(cfg, "optimizer")
    sampler = r.get("sampler") or {}
    return [
        ("file", r["file"]),
        ("status", r["status"]),
        (
            "created",
            f"{r.get('created')} on {r.get('hostname')}, pvmc "
            f"{r.get('package_version')}, format {r.get('format_version')}",
        ),
        (
            "parallel",
            f"{r.get('mpi_size')} rank(s) x {r.get('walkers_per_rank')} walkers, "
            f"seed {r.get('seed')}",
        ),
        (
            "system",
            f"P={sy.get('particles')} D={sy.get('dimensions')} "
            f"omega={sy.get('omega')} interaction={sy.get('interaction')}"
            + (f" statistics={r['statistics']}" if r.get("statistics") else ""),
        ),
        ("units", r.get("units", UNITS)),
        ("wavefunction", _wavefunction_text(r, wf)),
        *_width_rows(r.get("widths")),
        *_orbital_rows(r.get("orbitals")),
        ("sampler", f"{sampler.get('method')}, {_step_text(sampler)}"),
        (
            "optimizer",
            f"{op.get('method')} lr={op.get('learning_rate')} iterations={op.get('iterations')}",
        ),
    ]


def _has_determinants(r: dict) -> bool:
    """Slater determinants: orbitals stored, or fermions beyond two (not stored yet)."""
    particles = _section(r.get("config") or {}, "system").get("particles")
    return bool(r.get("orbitals")) or (
        r.get("statistics") == "fermions" and is_number(particles) and particles > 2
    )


def _orbital_rows(o: dict | None) -> list:
    """The orbitals row of a run with Slater determinants (none without)."""
    if not o:
        return []
    drift = o.get("inverse_drift")
    return [
        (
            "orbitals",
            f"{o['text']}; orbital scale alpha={_g(o['orbital_scale'], '.6g')}"
            + ("" if drift is None else f"; inverse drift {_g(drift, '.3g')}"),
        )
    ]


def _divergent(r: dict, name: str) -> bool:
    """Is the mean of series name infinite (1D Coulomb), whatever its samples' mean?"""
    inf = r.get("infinite_mean")
    return bool(inf) and name in inf["series"]


def _mean_text(r: dict, name: str, mean, error, note: str = "") -> str:
    """The mean of series name with its error and note; when that mean is infinite
    (1D Coulomb), the sample mean alone (an error bar would be meaningless), tagged."""
    if not _divergent(r, name):
        return _pm(mean, error) + note
    return (
        _pm(mean, None) + note + "  <- MEAN IS INFINITE (1D Coulomb): not an estimate, "
        "an error bar would be meaningless"
    )


def _production_rows(r: dict) -> list:
    p = r.get("production")
    mismatch = r.get("summary_mismatch")
    flag = [("SUMMARY MISMATCH", mismatch["message"])] if mismatch else []
    if p is None:
        return [("production", "no production data yet")] + flag
    if "mean" not in p:
        return [
            (
                "production",
                f"{p['n_chains']} chains x {p['samples_per_chain_filled']} samples: not analysed",
            )
        ] + flag
    name = "energy" if p["series"] == S.LOCAL_ENERGY else p["series"]
    rhat, limit = p["rhat"], p["rhat_limit"]
    if _finite(rhat) and _finite(limit):
        rhat, limit = distinct(rhat, limit)
    else:
        rhat, limit = _g(rhat, ".5f"), _g(limit, ".5f")
    rows = [(name, _mean_text(r, p["series"], p["mean"], p["error"], "  (blocking)"))]
    e_n = r.get("energy_per_particle")
    if e_n:
        rows.append(
            ("E/N", _pm(e_n["mean"], e_n["error"], 7) + f"  (blocking, N = {e_n['particles']})")
        )
    rows += flag
    no_error = _divergent(r, p["series"]) or not _finite(p["mean"])
    rows += [
        (
            "  bootstrap",
            "no error bar (the mean is not finite)"
            if no_error
            else f"+- {p['error_bootstrap']:.6f}   between chains +- "
            f"{_g(p['error_chains'], '.6f')}",
        ),
        ("variance", _g(p["variance"], ".6g")),
        (
            "tau_int",
            f"{_g(p['tau_int'], '.4g')} samples (blocking implies "
            f"{_g(p['tau_blocking'], '.4g')}); level {p['blocking_level']}, "
            f"blocks of {p['block_size']}",
        ),
        (
            "samples",
            f"{p['n_samples']} = {p['n_chains']} chains x "
            f"{p['samples_per_chain']}; effective {p['n_eff']:.4g}",
        ),
        ("R-hat", f"{rhat} (its limit for a finite variance {limit})"),
        ("chains", p["chains"]),
        (
            "acceptance",
            f"{_g(p.get('acceptance'), '.4f')}  "
            f"({(r.get('sampler') or {}).get('method')}, "
            f"{_step_text(r.get('sampler') or {})})",
        ),
    ]
    for part in ENERGY_PARTS:
        if isinstance(p.get(part), dict):
            rows.append(
                (part, _mean_text(r, part, p[part]["mean"], p[part]["error"], "  (blocking)"))
            )
    return rows


def format_report(r: dict) -> str:
    """The text report of one analysed run (``analyse``'s dict)."""
    rows = _header_rows(r)
    o = r.get("optimization")
    if o:
        rows.append(
            (
                "optimization",
                f"{o['iterations']} iterations, last energy "
                + _pm(o.get("final_energy"), o.get("final_energy_error")),
            )
        )
    else:
        rows.append(("optimization", "no iterations recorded"))
    rows += _production_rows(r)
    rows += _observable_rows(r)
    s = r.get("summary_in_file")
    if s and "energy" in s:
        verdict = s.get("chains_verdict")
        said = f"; chains: {verdict}" if isinstance(verdict, str) else ""
        rows.append(
            (
                "pvmc summary",
                _mean_text(r, S.LOCAL_ENERGY, s.get("energy"), s.get("error")) + said,
            )
        )
    rows += dmc_analysis.rows(r.get("dmc"))
    for k, seg in enumerate(r.get("segments") or []):
        rows.append(
            (
                f"segment {k}",
                f"{seg.get('mpi_size')} rank(s) on {seg.get('hostname')}, "
                f"{seg.get('start_time')} -> {seg.get('end_time') or '...'}: "
                f"{seg.get('ended')}",
            )
        )
    for note in r.get("notes", []):
        rows.append(("note", note))
    shown = {
        (r.get("summary_mismatch") or {}).get("message"),
        (r.get("dmc") or {}).get("mismatch"),
    }
    for w in r.get("warnings", []):
        if w not in shown:  # the mismatches have their own rows above
            rows.append(("warning", w))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


# ----------------------------------------------------------------------------- commands
def _summary_parser():
    p = _Parser(
        prog="python -m analysis",
        description=(
            "Statistics of pvmc run files: automated blocking, bootstrap, autocorrelation "
            "time, split R-hat, plots. For a table over many runs: "
            "python -m analysis table RUN.h5 ... --by KEY"
        ),
    )
    p.add_argument("files", nargs="+", metavar="RUN.h5", help="run file(s) written by pvmc")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--plots", metavar="DIR", help="write PNG figures into DIR (created if needed)")
    p.add_argument(
        "--series",
        default=None,
        metavar="NAME",
        help="production series to analyse: local_energy (default), kinetic, "
        "trap, interaction (potential in format <= 2); an explicitly "
        "named series must exist",
    )
    _n_boot_option(p)
    p.add_argument(
        "--seed", type=int, default=None, help=f"bootstrap seed, 0 to {MAX_SEED} (default: fixed)"
    )
    return p


def _n_boot_option(p) -> None:
    p.add_argument(
        "--n-boot", type=int, default=1000, help=f"bootstrap replicates, 2 to {MAX_N_BOOT} (1000)"
    )


def _table_parser():
    p = _Parser(
        prog="python -m analysis table",
        description=(
            "One table (and optionally one figure) across many runs, keyed by a config value "
            "such as system.omega or a root attribute such as mpi_size."
        ),
    )
    p.add_argument("files", nargs="+", metavar="RUN.h5")
    p.add_argument("--by", required=True, metavar="KEY", help="dotted config key")
    p.add_argument("--json", action="store_true", help="print JSON rows")
    p.add_argument("--plot", metavar="FILE.png", help="write energy vs KEY to FILE.png")
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="report bad files as warnings and go on (exit code still 0)",
    )
    _n_boot_option(p)
    return p


def _check_numbers(args) -> None:
    """--n-boot and --seed within what the bootstrap takes."""
    if not 2 <= args.n_boot <= MAX_N_BOOT:
        raise UsageError(f"--n-boot {args.n_boot}: must be from 2 to {MAX_N_BOOT}")
    seed = getattr(args, "seed", None)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise UsageError(f"--seed {seed}: must be from 0 to {MAX_SEED} (2**32 - 1)")


def _probe_directory(directory: str, what: str) -> None:
    """Create ``directory`` if needed and create + remove a file in it, so that a place
    where figures cannot be written is bad input, found before any analysis. When the
    probe fails, the directories it created are removed again (nothing written)."""
    missing, d = [], os.path.abspath(directory)
    while not os.path.lexists(d) and os.path.dirname(d) != d:
        missing.append(d)
        d = os.path.dirname(d)
    created = []
    try:
        for d in reversed(missing):
            os.mkdir(d)
            created.append(d)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".analysis-probe-", suffix=".png")
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        for d in reversed(created):
            try:
                os.rmdir(d)
            except OSError:
                pass
        raise UsageError(f"{what}: cannot write there ({exc.strerror or exc})") from None


def _probe_file(path: str, what: str) -> None:
    """A figure file can be written: its directory (as _probe_directory) and, if it
    exists, the file itself (opened for appending, which changes nothing)."""
    _probe_directory(os.path.dirname(os.path.abspath(path)), what)
    if os.path.exists(path):
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise UsageError(f"{what}: cannot write it ({exc.strerror or exc})") from None


class PlotsSkipped(Exception):
    """The report is printed, but the figures asked for cannot be drawn (matplotlib
    missing): one line after the report says why, exit code 2."""


def _plots_skipped(wanted) -> str | None:
    """Why the figures asked for (wanted: --plots / --plot, or None) cannot be drawn:
    None when they can or none are asked for. Checked before anything is written, so
    that nothing (no directory either) is left behind."""
    from analysis.plots import require_matplotlib

    if not wanted:
        return None
    try:
        require_matplotlib()
    except PlotError as exc:
        return f"plots skipped: {exc}"
    return None


def cmd_summary(argv) -> int:
    args = _summary_parser().parse_args(argv)
    _check_numbers(args)
    if args.plots and os.path.exists(args.plots) and not os.path.isdir(args.plots):
        raise UsageError(f"--plots {args.plots}: exists and is not a directory")
    skipped = _plots_skipped(args.plots)
    if skipped:
        args.plots = None  # the report without the figures, then the reason
    if any(is_training_file(path) for path in args.files):
        _training_summary(args)
    else:
        _run_summary(args)
    if skipped:
        raise PlotsSkipped(skipped)
    return EXIT_OK


def _run_summary(args) -> None:
    """Report (text or JSON) and figures of VMC run files."""
    series = args.series or S.LOCAL_ENERGY
    require = (S.path(S.PRODUCTION, series),) if args.series else ()
    stems = {}
    runs = []
    for path in args.files:  # validate everything before any output is written
        run = read_run(path, require=require)
        if args.plots and run.name in stems:
            raise UsageError(
                f"{path} and {stems[run.name]} have the same name {run.name!r}; "
                "their plots would overwrite each other"
            )
        stems[run.name] = path
        runs.append(run)
    if args.plots:
        _probe_directory(args.plots, f"--plots {args.plots}")
    reports = []
    for run in runs:
        report, summary = analyse(run, series=series, n_boot=args.n_boot, seed=args.seed)
        if args.plots:
            from analysis.plots import run_plots

            report["plots"] = run_plots(run, summary, args.plots)
        reports.append(report)
    lines = []
    if args.plots and len(runs) > 1:
        lines = density_comparison(runs, reports, args.plots)
    if args.json:
        out = _clean(reports[0] if len(reports) == 1 else reports)
        print(json.dumps(out, indent=2, sort_keys=False))
    else:
        print("\n\n".join(format_report(r) for r in reports))
        for r in reports:
            for path in r.get("plots", []):
                print(f"wrote {path}")
        print("\n".join(lines), end="\n" if lines else "")


def _training_summary(args) -> None:
    """Training files of ``pvmc train`` (a /model group): report, JSON, plots."""
    from analysis.generative import (
        format_training_report,
        read_training,
        training_plots,
        training_report,
    )

    others = [p for p in args.files if not is_training_file(p)]
    if others:
        raise UsageError(
            f"{others[0]} is not a training file; analyse training files "
            "and VMC run files in separate calls"
        )
    runs = [read_training(path) for path in args.files]
    if args.plots:
        if len({r.name for r in runs}) < len(runs):
            raise UsageError(
                "two training files have the same name; their plots would overwrite each other"
            )
        _probe_directory(args.plots, f"--plots {args.plots}")
    reports = []
    for run in runs:
        report = training_report(run)
        if args.plots:
            report["plots"] = training_plots(run, args.plots, seed=args.seed or 0)
        reports.append(report)
    if args.json:
        print(json.dumps(_clean(reports[0] if len(reports) == 1 else reports), indent=2))
        return
    print("\n\n".join(format_training_report(r) for r in reports))
    for r in reports:
        for path in r.get("plots", []):
            print(f"wrote {path}")


def _energy_label(report: dict) -> str:
    """E +- error of a run for a legend: this analysis's blocking of the local
    energy, else the file's /summary."""
    if report.get("infinite_mean"):
        return "E infinite (1D Coulomb)"
    p = report.get("production") or {}
    if p.get("series") == S.LOCAL_ENERGY and "mean" in p:
        return f"E = {_pm(p['mean'], p['error'])}"
    s = report.get("summary_in_file") or {}
    return f"E = {_pm(s['energy'], s.get('error'))}" if "energy" in s else "E unknown"


def _density_curve(run, report) -> dict | None:
    """The radial density of a run for the comparison (None without one: no
    observables, or format 1-2, whose flat counts carry no error bars)."""
    d = run.observables.get(S.DENSITY)
    if not isinstance(d, dict):
        return None
    system = _section(run.config, "system")
    n = d["attrs"].get("particles", system.get("particles"))
    dims = d["attrs"].get("dimensions", system.get("dimensions"))
    if not (isinstance(n, int) and n > 0 and dims in (1, 2, 3)):
        return None
    return {
        "edges": d["edges"],
        "density": d["density"],
        "error": d["error"],
        "particles": n,
        "dimensions": dims,
        "label": f"N = {n}: {_energy_label(report)} ({run.name})",
    }


def density_comparison(runs: list, reports: list, directory: str) -> list:
    """One figure of the radial densities per particle of every run that has one
    (sorted by D, then N) into directory; each report gets its path (None when left
    out). Returns the lines to print."""
    from analysis.plots import COMPARISON, plot_density_comparison

    curves = [_density_curve(run, r) for run, r in zip(runs, reports)]
    shown = sorted((c for c in curves if c), key=lambda c: (c["dimensions"], c["particles"]))
    path = None
    if len(shown) > 1:
        path = plot_density_comparison(shown, os.path.join(directory, COMPARISON))
    for r, c in zip(reports, curves):
        r["density_comparison"] = path if c else None
    lines = [
        f"note: {run.name} is not in the density comparison: no radial density with "
        "error bars (production.observables off, or a format 1-2 file)"
        for run, c in zip(runs, curves)
        if c is None
    ]
    if path is None:
        return lines + ["note: no density comparison: fewer than two files have a radial density"]
    sizes = ", ".join(str(c["particles"]) for c in shown)
    return (
        [f"wrote {path} (one-body density per particle, N = {sizes})"]
        + lines
        + axial_comparison(runs, reports, directory)
    )


def axial_comparison(runs: list, reports: list, directory: str) -> list:
    """The densities along x-y and along z of every 3D run that has them, on one figure
    (with and without interaction: the repulsion widens the cloud). Lines to print."""
    from analysis.plots import AXES_COMPARISON, axial_curve, plot_axial_densities

    curves = [
        axial_curve(
            run.observables,
            _section(run.config, "system").get("particles"),
            f"{_section(run.config, 'system').get('interaction')}: {_energy_label(r)} ({run.name})",
        )
        for run, r in zip(runs, reports)
    ]
    shown = [c for c in curves if c]
    if len(shown) < 2:
        return []
    path = plot_axial_densities(shown, os.path.join(directory, AXES_COMPARISON))
    return [f"wrote {path} (densities along x-y and z per particle, {len(shown)} runs)"]


def _sort_key(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return (1, str(v))
    return (0, v)


def _table_row(key, run, n_boot: int) -> dict:
    """One row of the table: the run's energy, errors and checks."""
    report, _ = analyse(run, n_boot=n_boot)
    p = report["production"] or {}
    mismatch = report["summary_mismatch"]
    dmc = (report["dmc"] or {}).get("extrapolated") or {}
    return {
        "key": key,
        "file": run.path,
        "status": run.status,
        "energy": p.get("mean"),
        "error": p.get("error"),
        "error_bootstrap": p.get("error_bootstrap"),
        "variance": p.get("variance"),
        "tau_int": p.get("tau_int"),
        "n_samples": p.get("n_samples"),
        "rhat": p.get("rhat"),
        "chains_ok": p.get("chains_ok"),
        "chains_verdict": p.get("chains_verdict"),
        "acceptance": p.get("acceptance"),
        "mean_is_infinite": bool(p.get("mean_is_infinite")),
        "summary_mismatch": mismatch["message"] if mismatch else None,
        "dmc_energy": dmc.get("energy"),
        "dmc_error": dmc.get("error"),
        "dmc_mismatch": report["dmc"]["mismatch"] if report["dmc"] else None,
    }


def _print_table(rows: list, by: str) -> None:
    head = [
        by,
        "status",
        "energy",
        "error",
        "err_boot",
        "variance",
        "tau_int",
        "samples",
        "R-hat",
        "chains",
        "file",
    ]
    chains = {AGREE: "ok", HEAVY_TAIL: "ok (tail)", DISAGREE: "DISAGREE", None: "-"}
    # the DMC columns only where a run has /dmc: a table of VMC runs stays as it was
    dmc = any(r["dmc_energy"] is not None for r in rows)
    if dmc:
        head[-1:-1] = ["dmc_E0", "dmc_err"]
    table = [head]
    for r in rows:
        error = (
            "meaningless"
            if r["mean_is_infinite"] and r["energy"] is not None
            else "-"
            if r["error"] is None
            else f"{r['error']:.6f}"
        )
        table.append(
            [
                _g(r["key"]),
                r["status"],
                "-" if r["energy"] is None else f"{r['energy']:.6f}",
                error,
                "-"
                if r["error_bootstrap"] is None or r["mean_is_infinite"]
                else f"{r['error_bootstrap']:.6f}",
                _g(r["variance"], ".5g"),
                _g(r["tau_int"], ".3g"),
                _g(r["n_samples"]),
                _g(r["rhat"], ".4f"),
                chains[r["chains_verdict"]],
                *([_g(r["dmc_energy"], ".6f"), _g(r["dmc_error"], ".6f")] if dmc else []),
                r["file"],
            ]
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(head))]
    for row in table:
        print("  ".join(f"{str(c):<{w}}" for c, w in zip(row, widths)).rstrip())
    for r in rows:  # what the columns cannot say
        if r["mean_is_infinite"]:
            print(
                f"warning: {r['file']}: the mean energy is infinite (1D Coulomb): its "
                "energy is not an estimate and its error bar is meaningless"
            )
        if r["summary_mismatch"]:
            print(f"warning: {r['file']}: SUMMARY MISMATCH: {r['summary_mismatch']}")
        if r["dmc_mismatch"]:
            print(f"warning: {r['file']}: DMC MISMATCH: {r['dmc_mismatch']}")


def cmd_table(argv) -> int:
    args = _table_parser().parse_args(argv)
    _check_numbers(args)
    if args.plot:
        if not args.plot.lower().endswith(".png"):
            raise UsageError(f"--plot {args.plot}: the figure name must end in .png")
        if any(os.path.abspath(args.plot) == os.path.abspath(f) for f in args.files):
            raise UsageError(f"--plot {args.plot} is one of the input files")
        if os.path.isdir(args.plot):
            raise UsageError(f"--plot {args.plot} is a directory")
    skipped = _plots_skipped(args.plot)
    if skipped:
        args.plot = None  # the table without the figure, then the reason
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
    if args.plot:
        _probe_file(args.plot, f"--plot {args.plot}")
    rows = sorted(
        (_table_row(key, run, args.n_boot) for key, run in runs), key=lambda r: _sort_key(r["key"])
    )
    for msg in problems:
        print(f"warning: skipped {msg}", file=sys.stderr)
    if args.plot:
        from analysis.plots import plot_scan

        plot_scan(rows, args.by, args.plot)
    if args.json:
        print(json.dumps(_clean({"by": args.by, "rows": rows}), indent=2))
    else:
        _print_table(rows, args.by)
        if args.plot:
            print(f"wrote {args.plot}")
    if skipped:
        raise PlotsSkipped(skipped)
    return EXIT_OK


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "table":
            return cmd_table(argv[1:])
        return cmd_summary(argv)
    except SystemExit as exc:  # --help (0); argparse errors go through UsageError
        return int(exc.code or 0)
    except (UsageError, RunFileError, PlotError, PlotsSkipped) as exc:
        sys.stdout.flush()  # the report first, then the one line
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `python -m analysis RUN.h5 | head`
        from parallel_vmc.cli.common import closed_output

        return closed_output()
