"""YAML run configuration -> validated, frozen config objects.

One table, ``SPEC``, is the single source of truth for every key: its type, default,
allowed values and one-line description. Validation, the frozen section objects, the
resolved YAML written into every output file and the README's config reference all
follow from it. Every error names the offending key (``section.key``) and what is
allowed; the command line turns :class:`ConfigError` into exit code 2 before any work.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from typing import Any

import yaml

REQUIRED = object()  # marker: the key has no default


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is allowed."""


@dataclass(frozen=True)
class Field:
    """One config key: how to check it and what it means."""

    kind: str                     # "int" | "float" | "str" | "bool" | "walltime"
    default: Any
    doc: str
    choices: tuple = ()           # allowed values for "str"
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False   # minimum itself not allowed (omega > 0)
    nullable: bool = False

    def allowed(self) -> str:
        """Human-readable description of the allowed values."""
        if self.choices:
            text = ", ".join(self.choices)
        elif self.kind == "walltime":
            text = '"HH:MM:SS"'
        elif self.kind == "bool":
            text = "true, false"
        elif self.kind == "str":
            text = "text"
        else:
            text = "integer" if self.kind == "int" else "number"
            lo = "" if self.minimum is None else (
                f" {'>' if self.min_exclusive else '>='} {self.minimum:g}")
            hi = "" if self.maximum is None else f" <= {self.maximum:g}"
            text += lo + ("," if lo and hi else "") + hi
        return text + (" or null" if self.nullable else "")


SPEC: dict[str, dict[str, Field]] = {
    "system": {
        "particles": Field("int", REQUIRED, "number of particles P", minimum=1),
        "dimensions": Field("int", REQUIRED, "spatial dimensions D", minimum=1, maximum=3),
        "omega": Field("float", REQUIRED, "trap frequency", minimum=0.0, min_exclusive=True),
        "interaction": Field("str", "coulomb", "pair interaction 1/r_pq or none",
                             choices=("coulomb", "none")),
    },
    "wavefunction": {
        "hidden": Field("int", 4, "RBM hidden units N", minimum=1),
        "psi": Field("str", "sqrt", "sqrt: |psi|^2 = F (RBM marginal); full: psi = F",
                     choices=("sqrt", "full")),
        "sigma": Field("float", None, "RBM width; null -> exact non-interacting width",
                       minimum=0.0, min_exclusive=True, nullable=True),
        "init_scale": Field("float", 0.001, "std of the random initial a, b, W", minimum=0.0),
        "jastrow": Field("str", "none", "correlation factor: none, or the cusp-exact "
                         "Padé-Jastrow exp(sum a r/(1 + beta r))", choices=("none", "pade")),
        "jastrow_beta": Field("float", 0.5, "initial beta of both Padé-Jastrow pair kinds",
                              minimum=0.0, min_exclusive=True),
    },
    "sampler": {
        "method": Field("str", "importance", "Markov chain sampler; gibbs: alternate "
                        "h | x and x | h draws of the RBM (psi: sqrt, jastrow: none only)",
                        choices=("metropolis", "importance", "gibbs")),
        "step": Field("float", 0.5, "Metropolis step / Langevin time step (initial, then "
                      "tuned; unused by gibbs)",
                      minimum=0.0, min_exclusive=True),
        "walkers_per_rank": Field("int", 16, "independent chains per MPI rank", minimum=1),
        "thermalization": Field("int", 1000, "sweeps per walker before measuring "
                                "(first half also tunes the step)", minimum=0),
        "target_acceptance": Field("float", None, "acceptance the step is tuned to; "
                                   "null -> 0.5 metropolis, 0.93 importance (gibbs: "
                                   "no step, ignored)",
                                   minimum=0.05, maximum=0.99, nullable=True),
    },
    "optimizer": {
        "method": Field("str", "adam", "parameter update rule; sr: stochastic "
                        "reconfiguration", choices=("sgd", "adam", "sr")),
        "learning_rate": Field("float", 0.05, "step size of the update",
                               minimum=0.0, min_exclusive=True),
        "iterations": Field("int", 300, "optimisation iterations (0: production only)",
                            minimum=0),
        "samples_per_iteration": Field("int", 32768, "samples per iteration, total over "
                                       "all ranks and walkers (one sample = one sweep)",
                                       minimum=1),
        "momentum": Field("float", 0.9, "SGD momentum (0: plain gradient descent)",
                          minimum=0.0, maximum=0.999),
        "sr_shift": Field("float", 1e-3, "SR: absolute diagonal shift of S", minimum=0.0),
        "sr_shift_relative": Field("float", 1e-2, "SR: diagonal shift of S relative to "
                                   "diag(S)", minimum=0.0),
        "schedule": Field("str", "constant", "learning-rate schedule over the iterations: "
                          "constant, exponential or cosine decay to lr_final_fraction",
                          choices=("constant", "exponential", "cosine")),
        "lr_final_fraction": Field("float", 0.1, "last learning rate / first, for the "
                                   "exponential and cosine schedules",
                                   minimum=0.0, maximum=1.0, min_exclusive=True),
        "plateau_window": Field("int", 0, "stop optimising when the energy of the last "
                                "this many iterations has no significant slope (0: off)",
                                minimum=0),
        "max_rewinds": Field("int", 5, "rewinds to the last good parameters after a "
                             "non-finite energy, gradient or update before failing",
                             minimum=0),
        "rewind_factor": Field("float", 0.5, "learning rate multiplier applied at each "
                               "rewind", minimum=0.0, maximum=1.0, min_exclusive=True),
    },
    "production": {
        "samples": Field("int", 1048576, "production samples, total over all ranks and "
                         "walkers", minimum=1),
        "store_components": Field("bool", False, "also store the kinetic, trap and "
                                  "interaction energy of every sample"),
        "observables": Field("bool", True, "accumulate the energy parts, one-body "
                             "density, pair-distance histogram and <r12> (with errors)"),
        "batches": Field("int", 32, "consecutive time batches whose spread gives the "
                         "observables' errors (batch means); memory per rank: batches x "
                         "(bins + image_bins^2) doubles", minimum=2, maximum=1024),
        "density_bins": Field("int", 100, "bins of the radial one-body density",
                              minimum=1, maximum=100000),
        "density_rmax": Field("float", None, "outer radius of the density histograms; "
                              "null -> 4/sqrt(omega)", minimum=0.0, min_exclusive=True,
                              nullable=True),
        "image_bins": Field("int", 64, "pixels per side of the 2D density image (D = 2)",
                            minimum=1, maximum=512),
        "pair_bins": Field("int", 100, "bins of the pair-distance histogram", minimum=1,
                           maximum=100000),
        "pair_rmax": Field("float", None, "outer edge of the pair-distance histogram; "
                           "null -> 2 density_rmax", minimum=0.0, min_exclusive=True,
                           nullable=True),
    },
    "output": {
        "path": Field("str", "runs/quickstart.h5", "HDF5 result file (never overwritten "
                      "without --overwrite)"),
        "checkpoint_every": Field("float", 300.0, "seconds of wall time between "
                                  "checkpoints (also at phase ends and on a stop signal; "
                                  "0: after every unit of work)", minimum=0.0),
        "max_walltime": Field("walltime", None, "HH:MM:SS: stop cleanly, checkpointed, "
                              "before this wall time (exit code 75)", nullable=True),
        "progress_every": Field("float", 10.0, "seconds between plain progress lines "
                                "when stdout is not a terminal", minimum=0.0),
    },
}
SEED = Field("int", 2026, "root seed of every random stream", minimum=0,
             maximum=2**63 - 1)


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
_SECTION_CLASSES = {
    "system": SystemConfig, "wavefunction": WavefunctionConfig, "sampler": SamplerConfig,
    "optimizer": OptimizerConfig, "production": ProductionConfig, "output": OutputConfig,
}


@dataclass(frozen=True)
class Config:
    """A whole, validated run configuration (immutable)."""

    system: Any
    wavefunction: Any
    sampler: Any
    optimizer: Any
    production: Any
    output: Any
    seed: int

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SPEC}
        out["seed"] = self.seed
        return out

    def to_yaml(self) -> str:
        """The resolved configuration (every key, defaults filled in) as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


SR_MAX_PARAMS = 2000   # explicit S: 2000^2 doubles = 32 MB per Allreduce and solve
_EXPONENT_FLOAT = re.compile(r"^[-+]?\d+(\.\d*)?[eE][-+]?\d+$")
_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


def walltime_seconds(text: str) -> int:
    """'HH:MM:SS' -> seconds (hours may exceed 24)."""
    h, m, s = (int(g) for g in _WALLTIME.match(text).groups())
    return 3600 * h + 60 * m + s


def format_walltime(seconds: int) -> str:
    """seconds -> 'HH:MM:SS'."""
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _check(key: str, field: Field, value: Any) -> Any:
    """Validate one value; return it normalised (ints accepted for floats)."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: must not be null; allowed: {field.allowed()}")
    kind = field.kind
    got = f"got {value!r} ({type(value).__name__})"
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, {got}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer ({field.allowed()}), {got}")
    elif kind == "float":
        if isinstance(value, str) and _EXPONENT_FLOAT.match(value.strip()):
            value = float(value)     # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number ({field.allowed()}), {got}")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key}: must be finite, {got}")
    elif kind == "str":
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string ({field.allowed()}), {got}")
        if field.choices and value not in field.choices:
            raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {field.allowed()}")
        return value
    elif kind == "walltime":
        # Unquoted 12:00:00 is a base-60 integer (seconds) to YAML 1.1: accept both.
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return format_walltime(value)
        if not isinstance(value, str) or not _WALLTIME.match(value) \
                or walltime_seconds(value) == 0:
            raise ConfigError(f'{key}: expected a positive "HH:MM:SS" wall time, {got}')
        return value
    if field.minimum is not None:
        too_small = value <= field.minimum if field.min_exclusive else value < field.minimum
        if too_small:
            raise ConfigError(f"{key}: {value!r} is out of range; allowed: {field.allowed()}")
    if field.maximum is not None and value > field.maximum:
        raise ConfigError(f"{key}: {value!r} is out of range; allowed: {field.allowed()}")
    return value


def from_dict(raw: Any, source: str = "config") -> Config:
    """Validate a parsed YAML mapping and build the frozen :class:`Config`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections "
                          f"({', '.join(list(SPEC) + ['seed'])}), got {type(raw).__name__}")
    unknown = sorted(map(str, set(raw) - set(SPEC) - {"seed"}))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown section; allowed: "
                          f"{', '.join(list(SPEC) + ['seed'])}")
    if "system" not in raw:
        raise ConfigError("system: section is required (particles, dimensions, omega)")
    sections = {}
    for name, fields in SPEC.items():
        given = raw.get(name)
        if given is None:
            given = {}
        if not isinstance(given, dict):
            raise ConfigError(f"{name}: expected a mapping of keys, got {given!r}")
        extra = sorted(map(str, set(given) - set(fields)))
        if extra:
            raise ConfigError(f"{name}.{extra[0]}: unknown key; allowed keys in {name}: "
                              f"{', '.join(fields)}")
        values = {}
        for key, field in fields.items():
            full = f"{name}.{key}"
            if key in given:
                values[key] = _check(full, field, given[key])
            elif field.default is REQUIRED:
                raise ConfigError(f"{full}: required key is missing; allowed: {field.allowed()}")
            else:
                values[key] = field.default
        sections[name] = _SECTION_CLASSES[name](**values)
    seed = _check("seed", SEED, raw.get("seed", SEED.default))
    cfg = Config(seed=seed, **sections)
    _check_combinations(cfg)
    return cfg


def _check_combinations(cfg: Config) -> None:
    """Rules that involve more than one key."""
    if cfg.optimizer.method == "sr":
        M = cfg.system.particles * cfg.system.dimensions
        N = cfg.wavefunction.hidden
        n = M + N + M * N + (2 if cfg.wavefunction.jastrow == "pade" else 0)
        if n > SR_MAX_PARAMS:
            raise ConfigError(f"optimizer.method: sr builds the explicit {n} x {n} matrix S "
                              f"(and Allreduces it every iteration); allowed up to "
                              f"{SR_MAX_PARAMS} parameters: use fewer hidden units or adam")
        if cfg.optimizer.sr_shift == 0 and cfg.optimizer.sr_shift_relative == 0:
            raise ConfigError("optimizer.sr_shift: with sr_shift_relative also 0, S may be "
                              "singular; allowed: at least one of them > 0")
    if 0 < cfg.optimizer.plateau_window < 10:
        raise ConfigError(f"optimizer.plateau_window: {cfg.optimizer.plateau_window} is too "
                          "short for a slope test; allowed: 0 (off) or >= 10")
    if cfg.sampler.method == "gibbs":
        # x | h and h | x are the conditionals of exp(-E(x, h)), whose marginal is F:
        # Gibbs sampling draws |psi|^2 only when that is F itself.
        if cfg.wavefunction.psi != "sqrt":
            raise ConfigError(f"sampler.method: gibbs samples F, which is |psi|^2 only for "
                              f"wavefunction.psi: sqrt (got wavefunction.psi: "
                              f"{cfg.wavefunction.psi}); allowed: psi sqrt with gibbs, or "
                              f"sampler.method metropolis/importance")
        if cfg.wavefunction.jastrow != "none":
            raise ConfigError(f"sampler.method: gibbs samples the RBM alone and cannot "
                              f"include wavefunction.jastrow: {cfg.wavefunction.jastrow}; "
                              f"allowed: jastrow none with gibbs, or sampler.method "
                              f"metropolis/importance")
    if cfg.wavefunction.jastrow == "pade" and cfg.system.dimensions < 2:
        raise ConfigError("wavefunction.jastrow: pade needs system.dimensions >= 2 (its "
                          "cusp is 1/(D-1)); allowed with dimensions 1: none")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not (parts == ["seed"] or (len(parts) == 2 and all(parts))):
        raise ConfigError(f"--set {text!r}: key must be section.key (or seed)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {text!r}: value is not valid YAML ({exc})") from None
    return parts, parsed


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with every ``--set section.key=value`` applied."""
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (raw or {}).items()}
    for text in overrides:
        parts, value = parse_override(text)
        if parts == ["seed"]:
            raw["seed"] = value
            continue
        section, key = parts
        if section not in SPEC:
            raise ConfigError(f"{section}: unknown section in --set {text!r}; allowed: "
                              f"{', '.join(list(SPEC) + ['seed'])}")
        current = raw.get(section) or {}
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: expected a mapping of keys, got {current!r}")
        raw[section] = {**current, key: value}
    return raw


def load_config(path: str | os.PathLike, overrides: list[str] = (),
                output: str | None = None) -> Config:
    """Read, override and validate a YAML config file; raise ConfigError on any problem."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path}: expected a mapping of sections")
    raw = apply_overrides(raw, list(overrides))
    if output is not None:
        raw["output"] = {**(raw.get("output") or {}), "path": output}
    return from_dict(raw, source=path)


def config_from_yaml_text(text: str) -> Config:
    """Rebuild a Config from the resolved YAML stored in a run file."""
    return from_dict(yaml.safe_load(text))


def reference_table() -> str:
    """Markdown table of every key (for the README's config reference)."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name, fields in list(SPEC.items()) + [("", {"seed": SEED})]:
        for key, field in fields.items():
            full = f"{name}.{key}" if name else key
            default = "(required)" if field.default is REQUIRED else yaml.safe_dump(
                field.default, default_flow_style=True).strip().removesuffix("...").strip()
            cells = (f"`{full}`", f"`{default}`", field.allowed(), field.doc)
            rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)

