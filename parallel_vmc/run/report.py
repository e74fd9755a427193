"""What a run tells its user: the progress bar or lines, the one-line messages of the
phases, and the final summary (its numbers of the observable sums, and its text; those
of the production series are ``summary``'s). Rank 0 prints; nothing here is
collective.
"""

from __future__ import annotations

import math
import sys
import time

from ..hamiltonian.terms import term
from ..runfile import schema as S
from ..sampling import observables
from ..stats.chains import DISAGREE
from ..stats.text import estimate
from ..wavefunction import slater

UNITS = "hbar = m = e = 1: E in hbar*w0, lengths in sqrt(hbar/(m*w0)), omega in w0"


class Progress:
    """Rank-0 progress: a tqdm bar on a terminal, plain periodic lines otherwise."""

    def __init__(self, total: int, label: str, every: float, stream=None, enabled=True):
        self.stream = stream or sys.stdout
        self.enabled = enabled and total > 0
        self.total = total
        self.label = label
        self.every = every
        self.start = time.monotonic()
        self.last = -math.inf
        self.bar = None
        if self.enabled and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, desc=label, file=self.stream, dynamic_ncols=True, smoothing=0.1
            )

    def update(self, done: int, text: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(done - self.bar.n)
            return
        now = time.monotonic()
        if now - self.last < self.every and done < self.total:
            return
        self.last = now
        elapsed = now - self.start
        eta = elapsed / done * (self.total - done) if done else float("nan")
        print(
            f"{self.label} {done}/{self.total}  {text}  elapsed {hms(elapsed)}  eta {hms(eta)}",
            file=self.stream,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def hms(seconds: float) -> str:
    """h:mm:ss, or --:--:-- for a time not known."""
    if not math.isfinite(seconds):
        return "--:--:--"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s // 60 % 60:02d}:{s % 60:02d}"


# ---------------------------------------------------------------------- messages
def thermalized_line(cfg, n_chains: int, sampler, acceptance: float) -> str:
    step = "no step" if sampler.method == "gibbs" else f"step {sampler.step:.4g}"
    return (
        f"thermalised {cfg.sampler.thermalization} sweeps x {n_chains} chains: "
        f"{cfg.sampler.method} {step}, acceptance {acceptance:.3f}"
    )


def resume_line(path: str, where: str, ranks: int, reseeded: bool, production_reset: bool) -> str:
    line = f"resuming {path} at {where} on {ranks} rank(s)"
    if reseeded:
        line += "; the chain count changed, so the chains get new streams"
        if production_reset:
            line += " and production starts again"
    elif production_reset:
        line += (
            "; the checkpoint's histograms have another geometry (an earlier pvmc), "
            "so production starts again"
        )
    return line


def iteration_text(est: dict) -> str:
    """Progress text of an optimization iteration (``estimators.iteration_estimates``)."""
    return (
        f"E = {estimate(est['energy'], est['energy_error'], 5)}"
        f"  var = {est['variance']:.4f}  acc = {est['acceptance']:.3f}"
    )


# ---------------------------------------------------------------------- summary
def observables_summary(totals, layout, blocking_error: float) -> dict:
    """``observables.summarize`` of the sums totals (n_batches, width), with the
    batch-means and the blocking error of the energy side by side in its attrs."""
    obs = observables.summarize(totals, layout)
    obs["attrs"].update(
        energy_error_batch_means=obs["scalars"][S.LOCAL_ENERGY]["error"],
        energy_error_blocking=blocking_error,
    )
    return obs


def observable_lines(obs: dict | None) -> list:
    """Summary lines of the observables (batch-means errors), with a warning when
    the batches are too short to be independent."""
    from ..stats.blocking import batches_too_short

    if obs is None:
        return []
    sc = obs["scalars"]
    names = [
        (S.KINETIC, "kinetic"),
        (S.TRAP, "trap"),
        (S.INTERACTION, "interaction"),
        (S.R12, "<r12>"),
    ]
    lines = [
        f"{label:<14}{estimate(sc[name]['mean'], sc[name]['error'])}"
        + ("   (batch means)" if name == S.KINETIC else "")
        for name, label in names
        if name in sc
    ]
    a = obs["attrs"]
    if batches_too_short(a["energy_error_batch_means"], a["energy_error_blocking"]):
        lines.append(
            f"warning       the batch-means error of E ("
            f"{a['energy_error_batch_means']:.3g}) is below the blocking "
            f"error ({a['energy_error_blocking']:.3g}): the batches are too "
            f"short, the observables' errors are underestimated; use fewer "
            f"production.batches or more samples"
        )
    return lines


def chain_lines(s: dict) -> list:
    """The verdict on the chains (``stats.chains.chain_verdict``, as ``python -m
    analysis`` gives it): its headline, then the note or warning that says why."""
    if "chains" not in s:
        return []
    lines = [f"chains        {s['chains']}"]
    if s.get("chains_explanation"):
        label = "warning" if s["chains_verdict"] == DISAGREE else "note"
        lines.append(f"{label:<14}{s['chains_explanation']}")
    return lines


def energy_line(s: dict) -> str:
    """The mean energy with its blocking and bootstrap errors (the mean alone when it
    is not finite: it has no error bar)."""
    if not math.isfinite(s["energy"]):
        return f"{estimate(s['energy'], None)} (not a finite mean: no error bar)"
    return (
        f"{estimate(s['energy'], s['error'])} (blocking)"
        f"   +- {s['error_bootstrap']:.6f} (bootstrap)"
    )


def per_particle_lines(s: dict, system) -> list:
    """E/N of bosons, as the literature on trapped bosons quotes it (none for fermions;
    no error bar on a mean that is not finite)."""
    if system.statistics != "bosons":
        return []
    n = system.particles
    return [f"E/N           {estimate(s['energy'] / n, s['error'] / n, 7)} (blocking, N = {n})"]


def sampler_line(s: dict, sampler) -> str:
    if sampler.method == "gibbs":
        return f"gibbs (exact conditional draws, no step), acceptance {s['acceptance']:.3f}"
    return f"{sampler.method}, step {sampler.step:.4g} (tuned), acceptance {s['acceptance']:.3f}"


def time_line(timings: dict) -> str:
    """Seconds per part of this segment, checkpoints last."""
    parts = sorted(timings.items(), key=lambda kv: kv[0] == "checkpoint")
    return (
        ", ".join(f"{k} {v:.1f} s" for k, v in parts)
        + f"; total {sum(timings.values()):.1f} s (this segment)"
    )


def wavefunction_line(wf) -> str:
    """'Slater x RBM x Pade-Jastrow, 4 hidden units, psi=sqrt, ...': the parts present."""
    product = wf.layout.product_label()
    sigma_z = f", sigma_z={wf.sigma_z:.6g}" if wf.sigma_z is not None else ""
    return (
        f"{product}, {wf.layout.n_hidden} hidden units, psi={wf.psi}, "
        f"sigma={wf.sigma:.6g}{sigma_z}, {wf.layout.n_params} parameters"
    )


def system_line(sy) -> str:
    """'P=10 D=3 omega=1 omega_z=2.83 hard spheres a=0.0043, bosons': the terms' labels
    (``hamiltonian/terms.py``)."""
    trap = term("external", sy.trap).label(sy)
    inter = term("interaction", sy.interaction).label(sy)
    return f"P={sy.particles} D={sy.dimensions} {trap} {inter}, {sy.statistics}"


def width_lines(wf, theta) -> list:
    """The optimized variational widths (none without them)."""
    if "widths" not in wf.layout.parts:
        return []
    shift = S.widths_text(wf.layout.block(theta, S.WIDTH_SHIFT))
    return [f"widths        {shift} (variational: exp(-1/2 delta x^2) on the RBM's Gaussian)"]


def determinant_lines(wf, theta, inverse_drift: float) -> list:
    """Summary lines of the Slater part (none without it): the orbitals each spin
    occupies with the optimized orbital scale, and how far the updated inverses drifted
    (inverse_drift: the largest over all ranks, ``Walkers.inverse_drift``)."""
    if not wf.has_determinants:
        return []
    return [
        f"orbitals      {slater.shell_filling(wf.particles, wf.dimensions)}; "
        f"orbital scale alpha={wf.orbital_scale(theta):.6g}",
        f"inverse drift {S.inverse_drift_text(inverse_drift)} = max|D Dinv - I| at "
        f"rebuilds (every {wf.determinant_refresh} sweeps, all ranks)",
    ]


def summary_text(
    s: dict, sampler, timings: dict, ranks: int, path: str, theta, inverse_drift: float
) -> str:
    """The summary block printed at the end of a run: s from ``summary.summarize``
    (with "observables" when kept); sampler: ``samplers.Sampler`` of the run; theta:
    (n_params,) its final parameters; inverse_drift: see :func:`determinant_lines`."""
    sy, wf = sampler.system, sampler.wf
    lines = [
        "",
        "==================== parallel_vmc summary ====================",
        f"system        {system_line(sy)}",
        f"wavefunction  {wavefunction_line(wf)}",
        *width_lines(wf, theta),
        *determinant_lines(wf, theta, inverse_drift),
        f"sampler       {sampler_line(s, sampler)}",
        f"energy        {energy_line(s)}",
        *per_particle_lines(s, sy),
        f"variance      {s['variance']:.6g}",
        f"tau_int       {s['tau_int']:.3g} samples   R-hat {s['rhat']:.4f}",
        *chain_lines(s),
        *observable_lines(s.get("observables")),
        f"samples       {s['n_samples']} ({s['n_chains']} chains x "
        f"{s['n_samples'] // s['n_chains']}), {ranks} rank(s)",
        f"time          {time_line(timings)}",
        f"units         {UNITS}",
        f"output        {path}",
        "==============================================================",
    ]
    return "\n".join(lines)
