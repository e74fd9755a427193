"""The DMC phase of a run file (/dmc) in the analysis: every time step's energy
recomputed from its per-step series, the line to tau -> 0 recomputed from those, and
both checked against what the run stored.

The formulas are those of the run itself, called here, never written a second time:
``parallel_vmc.dmc.estimate.corrected_energy`` (the weighted mean of Ebar(t) with the
population-control factors of the last T_p steps undone, blocking error) and
``extrapolate`` / ``fit_line`` (the weighted line E = E_0 + a tau). So the recomputed
numbers must equal the stored ones to round-off; a difference means the series were
changed after the run wrote them (damaged or edited), as the summary check says of
the VMC samples.

Beside the corrected energy, each time step gets the same estimate with no factor
undone (T_p = 0), which shows the size of the correction, and the integrated
autocorrelation time of Ebar(t) in steps, which the window T_p must well exceed for
the correction to be complete.
"""

from __future__ import annotations

import math

import numpy as np

from parallel_vmc.dmc.estimate import corrected_energy, extrapolate, fit_line
from parallel_vmc.runfile import schema as S
from parallel_vmc.stats.autocorr import integrated_time
from parallel_vmc.stats.text import estimate

__all__ = ["RTOL", "summarize", "rows"]

RTOL = 1e-12  # recomputed vs stored: the same function on the same numbers


def _same(a: float, b: float) -> bool:
    """a and b agree to RTOL of the larger (both finite)."""
    return math.isfinite(a) and math.isfinite(b) and abs(a - b) <= RTOL * max(abs(a), abs(b))


def _relative(a: float, b: float) -> float:
    """|a - b| relative to the larger (0 for two zeros, inf when not finite)."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return math.inf
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def time_step(table: dict, series: dict, k: int, first: int) -> dict:
    """One time step k: the stored row of the table and what its series give.

    table: {field: (n_time_steps,)} of DMC_FIELDS; series: {name: (steps,)} of
    DMC_SERIES of time step k (warm-up first); first: the warm-up steps (not counted).
    Raises ValueError for series the estimate cannot use (not finite, too short).
    """
    window = int(table["bias_window"][k])
    args = (series["weighted_energy"], series["total_weight"], series["trial_energy"])
    tau_eff = series["tau_eff"]
    energy, error = corrected_energy(*args, tau_eff, window, first)
    plain, plain_error = corrected_energy(*args, tau_eff, 0, first)
    auto = integrated_time(series["weighted_energy"][first:])
    population = series["population"][first:]
    return {
        "time_step": float(table["time_step"][k]),
        "tau_eff": float(table["tau_eff"][k]),
        "acceptance": float(table["acceptance"][k]),
        "population": float(table["population"][k]),
        "population_range": [float(population.min()), float(population.max())],
        "bias_window": window,
        "steps": int(population.size),
        "energy": energy,
        "error": error,
        "energy_file": float(table["energy"][k]),
        "error_file": float(table["error"][k]),
        "uncorrected": {"energy": plain, "error": plain_error},
        "tau_int_weighted_energy": auto.tau,
        "tau_int_converged": auto.converged,
    }


def line(steps: list) -> dict | None:
    """E_0 with its error (``extrapolate``) of the recomputed time steps, and for two
    or more the slope, the covariance of [E_0, slope] (``fit_line``) and chi-squared
    of the points about the line; None when a time step has no finite energy and
    positive error."""
    taus = np.array([s["time_step"] for s in steps])
    e = np.array([s["energy"] if s["energy"] is not None else np.nan for s in steps])
    err = np.array([s["error"] if s["error"] is not None else np.nan for s in steps])
    if not (np.all(np.isfinite(e)) and np.all(np.isfinite(err)) and np.all(err > 0)):
        return None
    e0, e0_error = extrapolate(taus, e, err)
    out = {"energy": e0, "error": e0_error, "slope": None, "slope_error": None}
    out.update(covariance=None, chi2=None, dof=max(len(steps) - 2, 0))
    if len(steps) >= 2:
        coef, cov = fit_line(taus, e, err)
        out.update(slope=float(coef[1]), slope_error=math.sqrt(cov[1, 1]), covariance=cov.tolist())
    if len(steps) >= 3:  # a line through two points fits them exactly
        residual = (e - (coef[0] + coef[1] * taus)) / err
        out["chi2"] = float(np.sum(residual**2))
    return out


def _differences(steps: list, fit: dict | None, stored: tuple) -> tuple:
    """(phrases, largest): what the recomputation does not reproduce of the stored
    numbers, one phrase each, and the largest relative difference of those compared
    (None if none could be)."""
    pairs, phrases = [], []
    for s in steps:
        tau = f"tau {s['time_step']:g}"
        if s["energy"] is None:
            phrases.append(f"{tau}: its series give no energy")
            continue
        pairs += [(f"{tau}: E", s["energy"], s["energy_file"])]
        pairs += [(f"{tau}: error", s["error"], s["error_file"])]
    if fit is not None:
        pairs += [("E_0", fit["energy"], stored[0]), ("error of E_0", fit["error"], stored[1])]
    for what, a, b in pairs:
        if not _same(a, b):
            phrases.append(f"{what} {a:.6f} against {b:.6f} stored ({a - b:+.2g})")
    largest = max((_relative(a, b) for _, a, b in pairs), default=None)
    return phrases, largest


def summarize(run) -> dict | None:
    """The DMC part of a run's report (None without /dmc): "warmup_steps",
    "time_steps" (one dict per time step, :func:`time_step`; energy None where the
    series cannot be used), "extrapolated" (:func:`line` + the stored "energy_file",
    "error_file"), "largest_difference" (relative, recomputed vs stored),
    "mismatch" (a message or None) and "warnings"."""
    d = run.dmc
    if not d:
        return None
    table, attrs, first = d["table"], d["attrs"], int(d["attrs"]["warmup_steps"])
    steps, warnings = [], []
    for k, series in enumerate(d["series"]):
        try:
            steps.append(time_step(table, series, k, first))
        except ValueError as exc:  # e.g. a non-finite value in the series
            tau = float(table["time_step"][k])
            steps.append({"time_step": tau, "energy": None, "error": None})
            warnings.append(f"dmc time step {tau:g} (/{S.DMC}/{S.STEP_GROUP % k}): {exc}")
    fit = line(steps)
    stored = (float(attrs["energy_extrapolated"]), float(attrs["error_extrapolated"]))
    extrapolated = dict(fit or {"energy": None, "error": None})
    extrapolated.update(energy_file=stored[0], error_file=stored[1])
    if fit is None:
        warnings.append("dmc: no extrapolation, a time step has no energy with an error")
    phrases, largest = _differences(steps, fit, stored)
    mismatch = None
    if phrases:  # the run wrote them from these very series: only a change explains it
        more = f" and {len(phrases) - 2} more" if len(phrases) > 2 else ""
        mismatch = (
            f"recomputed from the series of /{S.DMC}, {'; '.join(phrases[:2])}{more}: the "
            "series or the table were changed after the run wrote them (damaged or edited)"
        )
        warnings.append(mismatch)
    return {
        "warmup_steps": first,
        "time_steps": steps,
        "extrapolated": extrapolated,
        "largest_difference": largest,
        "mismatch": mismatch,
        "warnings": warnings,
    }


def _step_rows(s: dict) -> list:
    """The two rows of one time step: the corrected energy with the table's numbers,
    then the same without correction and Ebar's correlation time."""
    key = f"  tau {s['time_step']:g}"
    if s["energy"] is None:
        return [(key, "not analysed (see the warning)")]
    low, high = s["population_range"]
    rows = [
        (
            key,
            f"{estimate(s['energy'], s['error'])}  T_p {s['bias_window']}, "
            f"tau_eff {s['tau_eff']:.5g}, acceptance {s['acceptance']:.4f}, "
            f"population {s['population']:.1f} ({low:.0f} to {high:.0f})",
        )
    ]
    u = s["uncorrected"]
    shift = s["energy"] - u["energy"]
    if s["bias_window"] == 0:
        effect = "T_p = 0: the energy above is uncorrected too"
    else:
        effect = f"the correction moves E by {shift:+.6f}"
        effect += f" = {shift / s['error']:+.2f} errors" if s["error"] > 0 else ""
    rows.append(
        (
            "    T_p = 0",
            f"{estimate(u['energy'], u['error'])}  ({effect}); tau_int of Ebar(t) "
            f"{s['tau_int_weighted_energy']:.3g} steps"
            + ("" if s["tau_int_converged"] else " (series too short, a lower bound)"),
        )
    )
    return rows


def _line_text(x: dict, n: int) -> str:
    if x.get("energy") is None:
        return "not computed (see the warning)"
    if n == 1:
        return f"{estimate(x['energy'], x['error'])}  (one time step: its own energy)"
    fit = f"{estimate(x['energy'], x['error'])}  (weighted line E_0 + a tau, a = "
    fit += f"{estimate(x['slope'], x['slope_error'], 4)}"
    if x["chi2"] is not None:
        fit += f", chi2 {x['chi2']:.3g} for {x['dof']} degree(s) of freedom"
    return fit + ")"


def rows(d: dict | None) -> list:
    """The report's DMC rows (key, text) of :func:`summarize`'s dict; none without."""
    if not d:
        return []
    steps = d["time_steps"]
    counted = {s["steps"] for s in steps if s["energy"] is not None}
    length = f"{counted.pop()} steps" if len(counted) == 1 else "steps"
    out = [
        (
            "dmc",
            f"{len(steps)} time step(s), {length} each after {d['warmup_steps']} warm-up "
            "steps; E from the series (population-control factors of the last T_p steps "
            "undone, blocking error)",
        )
    ]
    for s in steps:
        out += _step_rows(s)
    x = d["extrapolated"]
    out.append(("  tau -> 0", _line_text(x, len(steps))))
    if d["mismatch"]:
        out.append(("DMC MISMATCH", d["mismatch"]))
    elif d["largest_difference"] is not None:
        out.append(
            (
                "  as stored",
                f"yes: energies, errors and E_0 {estimate(x['energy_file'], x['error_file'])} "
                f"of /{S.DMC} (largest relative difference {d['largest_difference']:.2g})",
            )
        )
    return out
