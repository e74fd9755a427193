"""YAML run configuration -> validated, frozen config objects.

One table, ``SPEC``, is the single source of truth for every key: its type, default,
allowed values and one-line description. Validation, the frozen section objects, the
resolved YAML written into every output file and the config reference (docs/config.md) all
follow from it. Every error names the offending key (``section.key``) and what is
allowed; the command line turns :class:`ConfigError` into exit code 2 before any work.

The machinery under the table (the YAML loader, fields and their checks, ``--set``)
is ``fields.py``, shared with the training config.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import yaml

from ..hamiltonian import terms
from ..wavefunction.layout import GENERIC_PARTS, PAIR_PARTS
from .fields import (
    REQUIRED,
    ConfigDumper,
    ConfigError,
    Field,
    check_value,
    got,
    parse_override,
    parse_yaml,
    read_config_file,
    refuse_unknown,
    show,
)

SPEC: dict[str, dict[str, Field]] = {
    "system": {
        "particles": Field("int", REQUIRED, "number of particles P", minimum=1),
        "dimensions": Field("int", REQUIRED, "spatial dimensions D", minimum=1, maximum=3),
        "omega": Field("float", REQUIRED, "trap frequency", minimum=0.0, min_exclusive=True),
        "omega_z": Field(
            "float",
            None,
            "trap frequency along z (3D elliptical trap "
            "V = 1/2 (omega^2 (x^2 + y^2) + omega_z^2 z^2)); null -> omega",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "trap": Field(
            "str",
            "harmonic",
            "the external potential (a registered term of hamiltonian/terms.py): "
            "harmonic, with omega and omega_z",
            choices=terms.names("external"),
        ),
        "interaction": Field(
            "str",
            "coulomb",
            "pair interaction: coulomb 1/r_pq (D >= 2: not integrable in 1D), "
            "hard_sphere (V = inf for r_pq <= hard_sphere_radius), or none",
            choices=terms.names("interaction"),
        ),
        "hard_sphere_radius": Field(
            "float",
            None,
            "hard-sphere radius a (with interaction hard_sphere or jastrow hard_sphere)",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "statistics": Field(
            "str",
            "fermions",
            "fermions: Slater determinants per spin, "
            "closed shells only (first half spin up); bosons: symmetric, "
            "any count",
            choices=("fermions", "bosons"),
        ),
    },
    "wavefunction": {
        "hidden": Field("int", 4, "RBM hidden units N", minimum=1),
        "psi": Field(
            "str",
            "sqrt",
            "sqrt: |psi|^2 = F (RBM marginal); full: psi = F",
            choices=("sqrt", "full"),
        ),
        "sigma": Field(
            "float",
            None,
            "RBM width (x, y); null -> exact non-interacting width",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "sigma_z": Field(
            "float",
            None,
            "RBM width along z (3D); null -> sigma in a round "
            "trap, the exact non-interacting width for omega_z in an "
            "elliptical one",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "variational_widths": Field(
            "bool",
            False,
            "optimize the RBM Gaussian's widths too: "
            "exp(-1/2 sum delta x^2) with one delta for x-y and "
            "one for z, starting at 0 (not with gibbs)",
        ),
        "init_scale": Field("float", 0.001, "std of the random initial a, b, W", minimum=0.0),
        "jastrow": Field(
            "str",
            None,
            "pair factor: none, the cusp-exact Padé-Jastrow "
            "exp(sum a r/(1 + beta r)), or hard_sphere prod (1 - a/r_pq); "
            "null -> hard_sphere with interaction hard_sphere, else none",
            choices=("none",) + PAIR_PARTS,  # the registry's pair parts
            nullable=True,
        ),
        "extra_factor": Field(
            "str",
            "none",
            "a further factor of psi in the generic slot, beside the other parts: "
            "none or a generic part of the registry (not with gibbs; see How to add "
            "a wave-function part)",
            choices=("none",) + GENERIC_PARTS,  # the registry's generic parts
        ),
        "jastrow_beta": Field(
            "float",
            0.5,
            "initial beta of both Padé-Jastrow pair kinds",
            minimum=0.0,
            min_exclusive=True,
        ),
        "determinant_refresh": Field(
            "int",
            100,
            "sweeps between Slater inverses computed "
            "from scratch (fermions; updated by Sherman-Morrison "
            "in between)",
            minimum=1,
        ),
    },
    "sampler": {
        "method": Field(
            "str",
            "importance",
            "Markov chain sampler; gibbs: alternate "
            "h | x and x | h draws of the RBM (psi: sqrt, jastrow: none only)",
            choices=("metropolis", "importance", "gibbs"),
        ),
        "step": Field(
            "float",
            0.5,
            "Metropolis step / Langevin time step (initial, then tuned; unused by gibbs)",
            minimum=0.0,
            min_exclusive=True,
        ),
        "walkers_per_rank": Field("int", 16, "independent chains per MPI rank", minimum=1),
        "thermalization": Field(
            "int",
            1000,
            "sweeps per walker before measuring (first half also tunes the step)",
            minimum=0,
        ),
        "target_acceptance": Field(
            "float",
            None,
            "acceptance the step is tuned to; "
            "null -> 0.5 metropolis, 0.93 importance (gibbs: "
            "no step, ignored)",
            minimum=0.05,
            maximum=0.99,
            nullable=True,
        ),
        "drift_limit": Field(
            "float",
            None,
            "importance sampling: Umrigar's drift limit a "
            "(drift v -> v (sqrt(1 + 2 a v^2 dt) - 1) / (a v^2 dt)); 0: "
            "off; null -> 1 with Slater determinants or the hard-sphere "
            "factor, else 0",
            minimum=0.0,
            nullable=True,
        ),
    },
    "optimizer": {
        "method": Field(
            "str",
            "adam",
            "parameter update rule; sr: stochastic reconfiguration",
            choices=("sgd", "adam", "sr"),
        ),
        "learning_rate": Field(
            "float", 0.05, "step size of the update", minimum=0.0, min_exclusive=True
        ),
        "iterations": Field("int", 300, "optimization iterations (0: production only)", minimum=0),
        "samples_per_iteration": Field(
            "int",
            32768,
            "samples per iteration, total over all ranks and walkers (one sample = one sweep)",
            minimum=1,
        ),
        "momentum": Field(
            "float", 0.9, "SGD momentum (0: plain gradient descent)", minimum=0.0, maximum=0.999
        ),
        "sr_shift": Field("float", 1e-3, "SR: absolute diagonal shift of S", minimum=0.0),
        "sr_shift_relative": Field(
            "float", 1e-2, "SR: diagonal shift of S relative to diag(S)", minimum=0.0
        ),
        "schedule": Field(
            "str",
            "constant",
            "learning-rate schedule over the iterations: "
            "constant, exponential or cosine decay to lr_final_fraction",
            choices=("constant", "exponential", "cosine"),
        ),
        "lr_final_fraction": Field(
            "float",
            0.1,
            "last learning rate / first, for the exponential and cosine schedules",
            minimum=0.0,
            maximum=1.0,
            min_exclusive=True,
        ),
        "plateau_window": Field(
            "int",
            0,
            "stop optimizing when the energy of the last "
            "this many iterations has no significant slope (0: off)",
            minimum=0,
        ),
        "max_rewinds": Field(
            "int",
            5,
            "rewinds to the last good parameters after a "
            "non-finite energy, gradient or update before failing",
            minimum=0,
        ),
        "rewind_factor": Field(
            "float",
            0.5,
            "learning rate multiplier applied at each rewind",
            minimum=0.0,
            maximum=1.0,
            min_exclusive=True,
        ),
    },
    "production": {
        "samples": Field(
            "int", 1048576, "production samples, total over all ranks and walkers", minimum=1
        ),
        "store_components": Field(
            "bool", False, "also store the kinetic, trap and interaction energy of every sample"
        ),
        "observables": Field(
            "bool",
            True,
            "accumulate the energy parts, one-body "
            "density, pair-distance histogram and <r12> (with errors)",
        ),
        "observables_every": Field(
            "int",
            1,
            "add every k-th production sweep of each "
            "chain to the observables (the energy series keeps "
            "every sweep); k > 1 when the histograms need fewer "
            "samples than the energy",
            minimum=1,
        ),
        "batches": Field(
            "int",
            32,
            "consecutive time batches whose spread gives the "
            "observables' errors (batch means); memory per rank: batches x "
            "(bins + image_bins^2) doubles",
            minimum=2,
            maximum=1024,
        ),
        "density_bins": Field(
            "int", 100, "bins of the radial one-body density", minimum=1, maximum=100000
        ),
        "density_rmax": Field(
            "float",
            None,
            "outer radius of the density histograms; null -> 4/sqrt(omega) (along z "
            "in 3D: times sqrt(omega/omega_z))",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "axial_density": Field(
            "bool",
            False,
            "D = 3 only: also the one-body density along "
            "the x-y plane (column density vs sqrt(x^2 + y^2)) and "
            "along z (linear density), density_bins bins each",
        ),
        "image_bins": Field(
            "int", 64, "pixels per side of the 2D density image (D = 2)", minimum=1, maximum=512
        ),
        "pair_bins": Field(
            "int",
            None,
            "bins of the pair-distance histogram; null -> 100, or with a hard-sphere "
            "radius a bins whose width divides a (an edge at a: the core's hole shows), "
            "the outer edge rounded up to a whole bin, up to 20000 bins",
            minimum=1,
            maximum=100000,
            nullable=True,
        ),
        "pair_rmax": Field(
            "float",
            None,
            "outer edge of the pair-distance histogram; null -> 2 density_rmax",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
    },
    "dmc": {
        "time_steps": Field(
            "floats",
            None,
            "fixed-node diffusion Monte Carlo after VMC, one run per time step tau "
            "(hbar/E units), starting from the VMC walkers; E(tau) is fitted by a line to "
            "tau -> 0 (three or more time steps with acceptance >= 99 %); null: no DMC",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
        "walkers": Field(
            "int",
            2000,
            "target population, total over all ranks (at least one per rank): the "
            "population-control bias, ~ 1/walkers, is removed (bias_window), the "
            "error bar shrinks as 1/sqrt(walkers)",
            minimum=1,
            maximum=10**9,
        ),
        "warmup_steps": Field(
            "int",
            1000,
            "steps per time step before the energy is recorded: the projection from "
            "the trial function to the fixed-node ground state (tau x steps of a few "
            "inverse excitation energies)",
            minimum=0,
            maximum=10**9,
        ),
        "steps": Field("int", 10000, "recorded steps per time step", minimum=16, maximum=10**9),
        "feedback": Field(
            "float",
            1.0,
            "g: E_T = E_est - ln(W / walkers) / (g tau_eff) brings the total weight W "
            "back to its target in about g steps",
            minimum=0.0,
            min_exclusive=True,
        ),
        "bias_window": Field(
            "int",
            None,
            "T_p: steps whose E_T factors are undone in the energy (the population-"
            "control bias; much longer than the energy's correlation time); null -> "
            "ceil(2 / tau), a projection time of 2; 0: no correction",
            minimum=0,
            maximum=10**9,
            nullable=True,
        ),
        "drift_limit": Field(
            "float",
            1.0,
            "Umrigar's a: the drift near a node limited to sqrt(2 / (a tau)) (it diverges there)",
            minimum=0.0,
            min_exclusive=True,
        ),
        "cutoff": Field(
            "float",
            1.0,
            "alpha of the size-consistent cutoff alpha sqrt(P / tau) on |E_L - E_est| in "
            "the weights (Zen et al.); their 0.2 assumes the electron-electron cusp, and "
            "without it (jastrow: none) E_L ~ 1/r is cut so often that E stays 0.018 "
            "high for two electrons at tau = 0.01; 1.0 keeps that within the error; "
            "null: no cutoff",
            minimum=0.0,
            min_exclusive=True,
            nullable=True,
        ),
    },
    "output": {
        "path": Field(
            "str", "runs/quickstart.h5", "HDF5 result file (never overwritten without --overwrite)"
        ),
        "checkpoint_every": Field(
            "float",
            300.0,
            "seconds of wall time between "
            "checkpoints (also at phase ends and on a stop signal; "
            "0: after every unit of work)",
            minimum=0.0,
        ),
        "max_walltime": Field(
            "walltime",
            None,
            "HH:MM:SS: stop cleanly, checkpointed, before this wall time (exit code 75)",
            nullable=True,
        ),
        "progress_every": Field(
            "float",
            10.0,
            "seconds between plain progress lines when stdout is not a terminal",
            minimum=0.0,
        ),
    },
}
SEED = Field("int", 2026, "root seed of every random stream", minimum=0, maximum=2**63 - 1)


def _section_class(name: str) -> type:
    cls_name = name.capitalize() + "Config"
    fields = [(key, Any) for key in SPEC[name]]
    return dataclasses.make_dataclass(cls_name, fields, frozen=True)


SystemConfig = _section_class("system")
WavefunctionConfig = _section_class("wavefunction")
SamplerConfig = _section_class("sampler")
OptimizerConfig = _section_class("optimizer")
ProductionConfig = _section_class("production")
OutputConfig = _section_class("output")
DmcConfig = _section_class("dmc")
_SECTION_CLASSES = {
    "system": SystemConfig,
    "wavefunction": WavefunctionConfig,
    "sampler": SamplerConfig,
    "optimizer": OptimizerConfig,
    "production": ProductionConfig,
    "dmc": DmcConfig,
    "output": OutputConfig,
}


@dataclass(frozen=True)
class Config:
    """A whole, validated run configuration (immutable)."""

    system: Any
    wavefunction: Any
    sampler: Any
    optimizer: Any
    production: Any
    dmc: Any
    output: Any
    seed: int

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SPEC}
        out["seed"] = self.seed
        return out

    def to_yaml(self) -> str:
        """The resolved configuration (every key, defaults filled in) as YAML text."""
        return yaml.dump(self.to_dict(), Dumper=ConfigDumper, sort_keys=False)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


# Largest fermion counts offered: the unnormalised Hermite polynomials of the top shell
# must stay far from overflow (1D: 30 orbitals per spin).
CLOSED_SHELL_LIMIT = {1: 60, 2: 56, 3: 70}
# Explicit S: 2000^2 doubles = 32 MB per Allreduce, a 2000^3/3-flop Cholesky per solve
# (sum O O^T itself is a BLAS product, samples * n^2 flops per iteration).
SR_MAX_PARAMS = 2000
_SECTION_NAMES = ", ".join(list(SPEC) + ["seed"])


def _require_sections(raw: Any, source: str) -> None:
    """ConfigError unless raw is a mapping of known sections (and seed)."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({_SECTION_NAMES}), {got(raw)}"
        )
    refuse_unknown(raw, list(SPEC) + ["seed"], "")


def from_dict(raw: Any, source: str = "config") -> Config:
    """Validate a parsed YAML mapping and build the frozen :class:`Config`."""
    _require_sections(raw, source)
    if "system" not in raw:
        raise ConfigError("system: section is required (particles, dimensions, omega)")
    sections = {}
    for name, fields in SPEC.items():
        given = raw.get(name)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise ConfigError(f"{name}: expected a mapping of keys, {got(given)}")
        refuse_unknown(given, list(fields), name)
        values = {}
        for key, field in fields.items():
            full = f"{name}.{key}"
            if key in given:
                values[key] = check_value(full, field, given[key])
            elif field.default is REQUIRED:
                raise ConfigError(f"{full}: required key is missing; allowed: {field.allowed()}")
            else:
                values[key] = field.default
        sections[name] = _SECTION_CLASSES[name](**values)
    seed = check_value("seed", SEED, raw.get("seed", SEED.default))
    cfg = _resolve_defaults(Config(seed=seed, **sections))
    _check_combinations(cfg)
    return cfg


def _resolve_defaults(cfg: Config) -> Config:
    """Null defaults that depend on other keys, made explicit (the resolved YAML of a
    run shows what ran): wavefunction.jastrow null -> hard_sphere with system.interaction
    hard_sphere, else none."""
    if cfg.wavefunction.jastrow is None:
        jastrow = "hard_sphere" if cfg.system.interaction == "hard_sphere" else "none"
        cfg = cfg.replace(wavefunction=dataclasses.replace(cfg.wavefunction, jastrow=jastrow))
    return cfg


def _check_combinations(cfg: Config) -> None:
    """Rules that involve more than one key."""
    if cfg.optimizer.method == "sr":
        from ..wavefunction import Layout  # numba only when SR needs the count

        n = Layout.from_config(cfg.system, cfg.wavefunction).n_params
        if n > SR_MAX_PARAMS:
            raise ConfigError(
                f"optimizer.method: sr builds the explicit {n} x {n} matrix S "
                f"(Allreduced and Cholesky-solved every iteration); allowed "
                f"up to {SR_MAX_PARAMS} parameters: use fewer hidden units "
                "or adam"
            )
        if cfg.optimizer.sr_shift == 0 and cfg.optimizer.sr_shift_relative == 0:
            raise ConfigError(
                "optimizer.sr_shift: with sr_shift_relative also 0, S may be "
                "singular; allowed: at least one of them > 0"
            )
    if 0 < cfg.optimizer.plateau_window < 10:
        raise ConfigError(
            f"optimizer.plateau_window: {cfg.optimizer.plateau_window} is too "
            "short for a slope test; allowed: 0 (off) or >= 10"
        )
    _check_trap(cfg)
    _check_terms(cfg)
    _check_axial_density(cfg)
    _check_hard_spheres(cfg)
    _check_statistics(cfg)
    if cfg.sampler.method == "gibbs" and cfg.dmc.time_steps is not None:
        raise ConfigError(
            "dmc.time_steps: DMC moves walkers along the drift grad ln psi of the "
            "trial function VMC sampled; with sampler.method gibbs VMC samples the RBM's "
            "joint distribution of x and h instead; allowed: dmc.time_steps null with "
            "gibbs, or sampler.method metropolis/importance"
        )
    if cfg.sampler.method == "gibbs":
        # x | h and h | x are the conditionals of exp(-E(x, h)), whose marginal is F:
        # Gibbs sampling draws |psi|^2 only when that is F itself.
        if cfg.wavefunction.psi != "sqrt":
            raise ConfigError(
                f"sampler.method: gibbs samples F, which is |psi|^2 only for "
                f"wavefunction.psi: sqrt (got wavefunction.psi: "
                f"{cfg.wavefunction.psi}); allowed: psi sqrt with gibbs, or "
                f"sampler.method metropolis/importance"
            )
        if cfg.wavefunction.jastrow != "none":
            raise ConfigError(
                f"sampler.method: gibbs samples the RBM alone and cannot "
                f"include wavefunction.jastrow: {cfg.wavefunction.jastrow}; "
                f"allowed: jastrow none with gibbs, or sampler.method "
                f"metropolis/importance"
            )
        if cfg.wavefunction.extra_factor != "none":
            raise ConfigError(
                f"sampler.method: gibbs samples the RBM alone and cannot include "
                f"wavefunction.extra_factor: {cfg.wavefunction.extra_factor}; allowed: "
                f"extra_factor none with gibbs, or sampler.method metropolis/importance"
            )
        if cfg.wavefunction.variational_widths:
            raise ConfigError(
                "sampler.method: gibbs draws x | h from the RBM's fixed "
                "widths, not with wavefunction.variational_widths: true; "
                "allowed: sampler.method metropolis/importance"
            )
        if cfg.system.interaction == "hard_sphere":
            raise ConfigError(
                "sampler.method: gibbs draws from the RBM alone, which "
                "knows no hard core of system.interaction: hard_sphere; "
                "allowed: sampler.method metropolis/importance"
            )
    _check_parts(cfg)
    _check_packing(cfg)


def _check_packing(cfg: Config) -> None:
    """With a hard core the walkers must start without overlaps: the spheres must fit
    in the cloud the starts are drawn from (``sampling.packing``'s criterion)."""
    from ..sampling.packing import packing_problem, start_width
    from ..system import System
    from ..wavefunction import WaveFunction

    sy = cfg.system
    if sy.interaction != "hard_sphere":  # only a hard core redraws overlapping starts
        return
    wf = WaveFunction.from_config(cfg.wavefunction, System.from_config(sy))
    problem = packing_problem(sy.particles, sy.dimensions, sy.hard_sphere_radius, start_width(wf))
    if problem:
        raise ConfigError(problem)


def _check_terms(cfg: Config) -> None:
    """Every selected Hamiltonian term is offered in the dimension (its registry
    entry says where, and why not elsewhere)."""
    sy = cfg.system
    for role, key in (("external", "trap"), ("interaction", "interaction")):
        selected = terms.term(role, getattr(sy, key))
        if not selected.offered_in(sy.dimensions):
            raise ConfigError(
                f"system.{key}: {selected.name} is not offered with system.dimensions "
                f"{sy.dimensions}: {selected.why_not}; allowed with dimensions "
                f"{sy.dimensions}: {', '.join(terms.offered(role, sy.dimensions))}"
            )


def _check_trap(cfg: Config) -> None:
    """An elliptical trap (omega_z != omega) and a z width exist only in 3D; the Slater
    orbitals are those of a round trap."""
    sy, wf = cfg.system, cfg.wavefunction
    elliptic = sy.omega_z is not None and sy.omega_z != sy.omega
    if elliptic and sy.dimensions != 3:
        raise ConfigError(
            f"system.omega_z: {sy.omega_z:g} differs from system.omega "
            f"({sy.omega:g}), an elliptical trap, which needs "
            f"system.dimensions 3 (got {sy.dimensions}); allowed: null or "
            f"equal to system.omega"
        )
    if wf.sigma_z is not None and sy.dimensions != 3:
        raise ConfigError(
            f"wavefunction.sigma_z: the width along z needs "
            f"system.dimensions 3 (got {sy.dimensions}); allowed: null"
        )
    if elliptic and sy.statistics == "fermions" and sy.particles > 2:
        raise ConfigError(
            "system.omega_z: the Slater orbitals of "
            "system.statistics: fermions are those of a round trap; "
            "allowed: null or equal to system.omega, or statistics bosons"
        )


def _check_axial_density(cfg: Config) -> None:
    """The axial densities split the x-y plane from z: they exist only in 3D."""
    D = cfg.system.dimensions
    if cfg.production.axial_density and D != 3:
        raise ConfigError(
            f"production.axial_density: the densities across the x-y plane and along z "
            f"need system.dimensions 3 (got {D}; in {D}D there is no z axis to split "
            f"off); allowed: false"
        )


def _check_hard_spheres(cfg: Config) -> None:
    """The radius comes with hard spheres (as interaction or as pair factor), and hard
    spheres need two particles and a radius."""
    sy, jastrow = cfg.system, cfg.wavefunction.jastrow
    wanted = sy.interaction == "hard_sphere" or jastrow == "hard_sphere"
    who = (
        "system.interaction: hard_sphere"
        if sy.interaction == "hard_sphere"
        else "wavefunction.jastrow: hard_sphere"
    )
    if wanted and sy.hard_sphere_radius is None:
        raise ConfigError(f"system.hard_sphere_radius: required with {who}; allowed: a number > 0")
    if not wanted and sy.hard_sphere_radius is not None:
        raise ConfigError(
            f"system.hard_sphere_radius: used only with interaction "
            f"hard_sphere or jastrow hard_sphere (got interaction "
            f"{sy.interaction}, jastrow {jastrow}); allowed: null"
        )
    if wanted and sy.particles < 2:
        raise ConfigError(
            f"system.particles: {who} needs at least 2 particles (got "
            f"{sy.particles}); allowed: particles >= 2, or interaction and "
            f"jastrow other than hard_sphere"
        )


def _check_statistics(cfg: Config) -> None:
    """Fermions come in closed shells; Gibbs sampling cannot carry determinants."""
    from ..shells import closed_shells

    sy = cfg.system
    if sy.statistics != "fermions":
        return
    limit = CLOSED_SHELL_LIMIT[sy.dimensions]
    if sy.dimensions == 1:
        if sy.particles % 2 or sy.particles > limit:
            raise ConfigError(
                f"system.particles: {sy.particles} fermions are not offered "
                f"in 1D; allowed: an even count up to {limit} (one orbital "
                f"per shell), or system.statistics: bosons"
            )
    elif sy.particles not in closed_shells(sy.dimensions, limit):
        counts = ", ".join(map(str, closed_shells(sy.dimensions, limit)))
        raise ConfigError(
            f"system.particles: {sy.particles} fermions are not a closed "
            f"shell offered in {sy.dimensions}D; allowed: {counts}, or "
            f"system.statistics: bosons (any count)"
        )
    if sy.particles > 2 and cfg.sampler.method == "gibbs":
        raise ConfigError(
            f"sampler.method: gibbs draws from the RBM's conditionals, which "
            f"do not sample |psi|^2 with the Slater determinants of "
            f"system.statistics: fermions (particles {sy.particles}); allowed: "
            f"sampler.method metropolis/importance, or statistics bosons"
        )


def _check_parts(cfg: Config) -> None:
    """Every selected wave-function part supports the dimension (its registry entry)."""
    from ..wavefunction.layout import PARTS

    D = cfg.system.dimensions
    for part in PARTS:
        if part.selects(cfg.system, cfg.wavefunction) and D < part.min_dimensions:
            key = part.selected_by.split(":")[0]
            raise ConfigError(
                f"{part.selected_by} needs system.dimensions >= "
                f"{part.min_dimensions} (got {D}); allowed with dimensions "
                f"{D}: another value of {key}"
            )


def _set_key(raw: dict, parts: list[str], value: Any, origin: str) -> None:
    """raw[section][key] = value (or raw['seed']), given on the command line by origin."""
    if parts == ["seed"]:
        raw["seed"] = value
        return
    section, key = parts
    if section not in SPEC:
        raise ConfigError(f"{section}: unknown section in {origin}; allowed: {_SECTION_NAMES}")
    current = raw.get(section)
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise ConfigError(f"{section}: expected a mapping of keys, {got(current)}")
    raw[section] = {**current, key: value}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with every ``--set section.key=value`` applied."""
    raw = dict(raw or {})
    for text in overrides:
        parts, value = parse_override(text)
        _set_key(raw, parts, value, f"--set {show(text)}")
    return raw


def load_config(
    path: str | os.PathLike, overrides: list[str] = (), output: str | None = None
) -> Config:
    """Read, override and validate a YAML config file; raise ConfigError on any problem."""
    path = os.fspath(path)
    source = f"config file {path}"
    raw = parse_yaml(read_config_file(path), source)
    if raw is None:
        raw = {}
    _require_sections(raw, source)
    raw = apply_overrides(raw, list(overrides))
    if output is not None:
        _set_key(raw, ["output", "path"], output, "-o")
    return from_dict(raw, source=path)


# Keys added after run files stored configs without them, with the meaning those runs
# had: a stored config lacking one reads with this value, not with today's default.
STORED_BEFORE = {("system", "statistics"): "bosons"}  # runs before fermions existed


def with_stored_defaults(raw):
    """A config mapping stored in a run file, with every key the file predates set
    to its value of then (``STORED_BEFORE``)."""
    if isinstance(raw, dict):
        for (section, key), value in STORED_BEFORE.items():
            if isinstance(raw.get(section), dict):
                raw[section].setdefault(key, value)
    return raw


def config_from_yaml_text(text: str, source: str = "config") -> Config:
    """Rebuild a Config from the resolved YAML stored in a run file (a key the file
    predates takes its value from ``STORED_BEFORE``)."""
    return from_dict(with_stored_defaults(parse_yaml(text, source)), source)


def reference_table() -> str:
    """Markdown table of every key (for the config reference, docs/config.md)."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name, fields in list(SPEC.items()) + [("", {"seed": SEED})]:
        for key, field in fields.items():
            full = f"{name}.{key}" if name else key
            default = (
                "(required)"
                if field.default is REQUIRED
                else yaml.safe_dump(field.default, default_flow_style=True)
                .strip()
                .removesuffix("...")
                .strip()
            )
            cells = (f"`{full}`", f"`{default}`", field.allowed(), field.doc)
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)
