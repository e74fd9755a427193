"""The DMC figures of `pvmc bench`, measured when the command runs:

* ``CONFIG --dmc``: ns per move of importance-sampling VMC production sweeps and of
  DMC steps, alternating on the same number of walkers per rank
  (:mod:`dmc_timing`), their ratio, what a DMC step spends in each of its parts
  (``dmc.walk.SECTIONS``) and the walkers it moves; on several ranks also the walkers
  sent between them against the model's;
* ``CONFIG --scaling`` with a dmc section (after the VMC table): a DMC step timed on
  one rank at two populations, and the modelled step and parallel efficiency on 100
  to 10,000 ranks (the formulas are :mod:`scaling_model`'s).
"""

from __future__ import annotations

import statistics

from . import scaling_model as scaling
from .dmc_timing import alternate, prepare, time_steps, weight_spread
from .options import dmc_population
from .problem import target_acceptance

SMALL_POPULATION = 32  # the second population of the fit of a step's fixed cost
SECTION_NAMES = {
    "moves": "moves (kernel)",
    "reweight": "reweighting",
    "allreduce": "Allreduce",
    "branch": "comb + replicate",
    "balance": "transfer (balancing)",
    "other": "the rest (E_T, checks)",
}


def spread(values, unit: str = "ns/move") -> str:
    """'median unit [min, max]' of values."""
    return f"{statistics.median(values):8.1f} {unit} [{min(values):.1f}, {max(values):.1f}]"


def _problem_line(cfg, comm, target: int, steps: int, repeats: int, vmc_step: float) -> str:
    sy, wf = cfg.system, cfg.wavefunction
    return (
        f"dmc bench: P={sy.particles} D={sy.dimensions} H={wf.hidden} {sy.statistics} "
        f"psi={wf.psi} jastrow={wf.jastrow}; {comm.size} rank(s), population {target} "
        f"({target / comm.size:g} walkers per rank, as many VMC walkers); VMC importance "
        f"sampling at step {vmc_step:.4g} (tuned to acceptance "
        f"{target_acceptance(cfg, False):g}), DMC at "
        f"dmc.time_steps[0] = {cfg.dmc.time_steps[0]:g}; {steps} sweeps / steps per "
        f"timed run, {repeats} alternating runs of each"
    )


def cmd_dmc(args, comm, cfg, say) -> int:
    """`pvmc bench CONFIG --dmc`: measure and print (see the module docstring)."""
    target = dmc_population(args, cfg, comm.size)
    prob = prepare(comm, cfg, target)
    steps = max(1, int(args.moves / (prob.particles * target / comm.size)))
    say(_problem_line(cfg, comm, target, steps, args.repeats, prob.vmc.step))
    timed = alternate(comm, prob, steps, args.repeats)
    sigma = weight_spread(prob.walk, comm)
    ratios = [d / v for d, v in zip(timed.dmc, timed.vmc)]
    say(f"VMC production sweeps: {spread(timed.vmc)}  acceptance {timed.vmc_acceptance:.4f}")
    say(f"DMC steps:             {spread(timed.dmc)}  acceptance {timed.dmc_acceptance:.4f}")
    say(
        f"DMC / VMC per move:    {statistics.median(ratios):.3f} (median of pairs; ratio of "
        f"medians {statistics.median(timed.dmc) / statistics.median(timed.vmc):.3f}; "
        f"issue target <= 1.3); cpu {timed.cpu:.0f}%"
    )
    for line in section_lines(timed, comm.size):
        say(line)
    say(
        f"weights' relative spread after a step: sigma_w = {sigma:.4g} (the transfer "
        f"model's input, scaling_model.comb_traffic)"
    )
    if comm.size > 1:
        model = scaling.comb_traffic(target, sigma, comm.size)
        say(
            f"walkers the busiest rank sent + received per step: {timed.traffic:.3f} "
            f"measured, {model:.3f} modelled (the bridge of the weights alone; the "
            f"rounding of the comb's teeth adds up to about one a boundary)"
        )
    return 0


def section_lines(timed, ranks: int) -> list:
    """The parts of a DMC step: their shares, and branching + balancing's."""
    total = sum(timed.sections.values())
    lines = [
        f"a DMC step: {1e6 * total:.1f} us (mean over ranks), {timed.moved:.1f} walkers "
        f"moved ({timed.moved / ranks:.1f} per rank)"
    ]
    for name, seconds in timed.sections.items():
        lines.append(
            f"  {SECTION_NAMES[name]:<24} {100 * seconds / total:6.2f} %  {1e6 * seconds:10.2f} us"
        )
    parts = (timed.sections["branch"] + timed.sections["balance"]) / total
    lines.append(
        f"  branching + balancing    {100 * parts:6.2f} %  (issue target <= 10 % at 2 ranks)"
    )
    return lines


class StepCost:
    """A DMC step on one rank, t(n) = fixed + n c (``scaling_model.step_cost_fit``),
    measured alternately at the config's dmc.walkers and SMALL_POPULATION; per_move: ns
    per move at dmc.walkers; sigma: the weights' spread there; row_bytes: one walker in
    transit; particles: P."""

    def __init__(self, args, comm, cfg):
        self.total = cfg.dmc.walkers
        large = prepare(comm, cfg, self.total)
        self.particles, self.row_bytes = large.particles, 8 * large.walk.comm.row
        populations = [(self.total, large)]
        if self.total >= 4 * SMALL_POPULATION:  # else: no fit, the fixed cost taken as 0
            populations.append((SMALL_POPULATION, prepare(comm, cfg, SMALL_POPULATION)))
        seconds = {n: [] for n, _ in populations}
        for _ in range(args.repeats):
            for n, prob in populations:
                steps = max(1, int(args.moves / (self.particles * n)))
                t, moved = time_steps(prob.walk, steps)
                seconds[n].append(t / moved)  # per walker moved
        per_walker = {n: statistics.median(v) for n, v in seconds.items()}
        self.per_move = 1e9 * per_walker[self.total] / self.particles
        self.fixed, self.c = 0.0, per_walker[self.total]
        if len(populations) > 1:
            n, m = SMALL_POPULATION, self.total
            self.fixed, self.c = scaling.step_cost_fit(n, n * per_walker[n], m, m * per_walker[m])
        self.sigma = weight_spread(large.walk, comm)


def model_lines(cost: StepCost, gamma: float, header: int) -> list:
    """The modelled DMC step per rank count (strong: the config's population over R
    ranks; weak: that population on every rank)."""
    N = cost.total
    lines = [
        f"{'ranks':>6} {'Allreduce':>10} {'t_allreduce':>11} {'strong: n':>10} {'traffic':>8} "
        f"{'t_transfer':>10} {'t_step':>10} {'E':>6}  {'weak: traffic':>13} {'t_step':>10} "
        f"{'E':>6}"
    ]
    for R in scaling.RANK_COUNTS:
        n_bytes = scaling.dmc_allreduce_bytes(R, header)
        t_ar = scaling.allreduce_seconds(n_bytes, R, gamma=gamma)
        strong = "  (dmc.walkers < ranks: refused)"
        if R <= N:
            n = -(-N // R)
            traffic = scaling.comb_traffic(N, cost.sigma, R)
            t_tr = scaling.transfer_seconds(traffic, n, cost.row_bytes, R)
            t = scaling.dmc_step_seconds(n, cost.c, cost.fixed, t_ar, t_tr)
            e = scaling.dmc_strong_efficiency(N, R, cost.c, cost.fixed, t_ar, t_tr)
            strong = (
                f"{n:>10} {traffic:>8.2f} {1e6 * t_tr:>7.2f} us {1e6 * t:>7.1f} us {100 * e:>5.1f}%"
            )
        traffic = scaling.comb_traffic(N * R, cost.sigma, R)
        t_tr = scaling.transfer_seconds(traffic, N, cost.row_bytes, R)
        t = scaling.dmc_step_seconds(N, cost.c, cost.fixed, t_ar, t_tr)
        e = scaling.dmc_weak_efficiency(N, cost.c, cost.fixed, t_ar, t_tr)
        lines.append(
            f"{R:>6} {n_bytes:>8} B {1e6 * t_ar:>8.1f} us {strong}  {traffic:>13.1f} "
            f"{1e6 * t:>7.1f} us {100 * e:>5.1f}%"
        )
    return lines


def print_model(args, comm, cfg, say) -> None:
    """The DMC part of `pvmc bench CONFIG --scaling` (one rank): measure, model, print
    (gamma, the local reduction's cost per byte, measured here as for the VMC table)."""
    from ..dmc.walk import HEADER
    from .scaling_run import measure_gamma

    cost = StepCost(args, comm, cfg)
    gamma = measure_gamma(HEADER + max(scaling.RANK_COUNTS))
    N, P = cost.total, cost.particles
    say(
        f"DMC step at dmc.time_steps[0] = {cfg.dmc.time_steps[0]:g} on 1 rank, "
        f"{args.repeats} runs per population, medians: {cost.per_move:.1f} ns/move at "
        f"dmc.walkers = {N}; t(n) = t_fixed + n c with t_fixed {1e6 * cost.fixed:.1f} us, "
        f"c {1e6 * cost.c:.3f} us per walker ({1e9 * cost.c / P:.1f} ns/move)"
        + ("" if N >= 4 * SMALL_POPULATION else " (population too small for the fit)")
    )
    say(
        f"model: t(R) = t_fixed + n c + Allreduce of 8 ({HEADER} + R) bytes + transfers "
        f"of the comb's imbalance (sigma_w {cost.sigma:.4g}, {cost.row_bytes} bytes a "
        f"walker, a message a side); alpha {1e6 * scaling.HDR_LATENCY:.1f} "
        f"us, {scaling.HDR_BANDWIDTH / 1e9:.0f} GB/s, gamma {1e9 * gamma:.3f} ns/byte; "
        f"strong: {N} walkers over R ranks; "
        f"weak: {N} walkers per rank"
    )
    for line in model_lines(cost, gamma, HEADER):
        say(line)
