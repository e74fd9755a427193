"""YAML run configuration -> validated, frozen config objects.

One table, ``SPEC``, is the single source of truth for every key: its type, default,
allowed values and one-line description. Validation, the frozen section objects, the
resolved YAML written into every output file and the README's config reference all
follow from it. Every error names the offending key (``section.key``) and what is
allowed; the command line turns :class:`ConfigError` into exit code 2 before any work.

Config files, ``--set`` values and the configs stored in run files are all read by one
YAML loader, :class:`ConfigLoader`: YAML 1.2 scalars (``12:00:00`` and ``yes`` are
text, ``1e-3`` is a number), and no duplicate keys, anchors, aliases or tags.
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
INT64_MAX = 2**63 - 1
MAX_CONFIG_BYTES = 2**20   # a config is a few kB; bounds the work spent on a wrong file


class ConfigError(ValueError):
    """A configuration problem; the message names the key and what is allowed. It is
    one line whatever input it quotes (a key, a path): line breaks are escaped."""

    def __init__(self, message: str):
        super().__init__(message.translate(_LINE_BREAKS))


_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


# ---------------------------------------------------------------------------- YAML
class ConfigLoader(yaml.SafeLoader):
    """The one YAML loader of configs, ``--set`` values and stored configs.

    A config is a mapping of sections of plain scalars, so the loader accepts only that
    much of YAML and refuses, with the line, whatever would hide a mistake:

    * a mapping key given twice (``DuplicateKeyError``: the last would silently win);
    * anchors, aliases and tags (``&a``, ``*a``, ``!!int``): configs never need them;
      refusing aliases defuses the "billion laughs" alias bomb, and the tags' own
      constructors raise plain Python errors on bad text;
    * nesting deeper than ``MAX_DEPTH`` (PyYAML composes recursively).

    Scalars resolve as in YAML 1.2's core schema, not YAML 1.1: ``true``/``false``
    (also ``True``, ``TRUE``, ...) are booleans, but ``yes``/``no``/``on``/``off``,
    ``y``/``n`` are plain strings, so a boolean key given one of them gets a type error
    naming the key rather than a silent guess. Integers are decimal only: ``1:0`` and
    ``12:00:00`` are strings (YAML 1.1 reads them as base-60 numbers), ``0777`` is 777
    (not octal). Floats need a dot or an exponent: ``1e-3`` is a float (a string in
    YAML 1.1), ``.inf`` and ``.nan`` are floats (and fail the finiteness check).
    ``null``/``~``/empty are null. Timestamps, ``<<`` merge keys and ``=`` are strings.
    """

    MAX_DEPTH = 16
    yaml_implicit_resolvers: dict = {}       # rebuilt from _RESOLVERS below
    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        refused = ("an alias" if isinstance(event, yaml.AliasEvent) else
                   "an anchor" if event.anchor is not None else
                   "a tag" if getattr(event, "tag", None) is not None else None)
        if refused:
            raise yaml.composer.ComposerError(
                None, None, f"found {refused}; configs use no anchors, aliases or tags "
                "(write each value itself, quoted to make it text)", event.start_mark)
        if self._depth >= self.MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {self.MAX_DEPTH} levels", event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self):
        node = super().compose_document()
        _refuse_duplicate_keys(node, "")
        return node


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A mapping key given twice; ``key`` is its dotted path (``system.omega``)."""

    def __init__(self, key: str, first: yaml.Mark, again: yaml.Mark):
        super().__init__(None, None, f"{key} appears twice (lines {first.line + 1} and "
                         f"{again.line + 1})", again)
        self.key = key
        self.lines = (first.line + 1, again.line + 1)


def _refuse_duplicate_keys(node, path: str) -> None:
    """Raise DuplicateKeyError for the first key that a mapping in node repeats."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, f"{path}[{i}]")
    if not isinstance(node, yaml.MappingNode):
        return
    seen = {}
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue            # a list or mapping as a key: the constructor refuses it
        name = f"{path}.{key.value}" if path else key.value
        if (key.tag, key.value) in seen:
            raise DuplicateKeyError(name, seen[key.tag, key.value], key.start_mark)
        seen[key.tag, key.value] = key.start_mark
        _refuse_duplicate_keys(value, name)


class ConfigDumper(yaml.SafeDumper):
    """yaml.safe_dump that also quotes text ConfigLoader would read as a number
    (``1e3``, ``09``), so stored configs read back the same with either loader."""


_EXACT_DIGITS = 640   # Python's smallest int_max_str_digits: str -> int always allowed


def _construct_int(loader, node) -> int:
    """A decimal integer. Python refuses str -> int beyond a few thousand digits (its
    guard against quadratic time); such a number is outside every range, so only its
    sign and magnitude are kept."""
    text = loader.construct_scalar(node)
    digits = text.lstrip("+-").lstrip("0") or "0"
    head = digits[:_EXACT_DIGITS]
    value = int(head) * 10 ** (len(digits) - len(head))
    return -value if text.startswith("-") else value


_RESOLVERS = (   # (tag, pattern, first characters); ints before floats
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("int", r"[-+]?[0-9]+", "-+0123456789"),
    ("float", r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
              r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)", "-+.0123456789"),
)
for _tag, _pattern, _first in _RESOLVERS:
    _regexp = re.compile(rf"^(?:{_pattern})\Z")
    ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp, list(_first))
    if _tag in ("int", "float"):   # added to YAML 1.1's (whose bool and null cover ours)
        ConfigDumper.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp,
                                           list(_first))
ConfigLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _one_line(exc: yaml.YAMLError, text: str) -> str:
    """A YAML error of text as one line: what is wrong and where (PyYAML's own message
    spans lines and quotes the input)."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        return f"character #x{exc.character:04x} is not allowed in YAML (line {line})"
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        message = ", ".join(filter(None, (exc.context, exc.problem))) + (
            f" (line {mark.line + 1}, column {mark.column + 1})" if mark else "")
    else:
        message = str(exc)
    return " ".join(message.split())


def parse_yaml(text: str, source: str) -> Any:
    """Parse config YAML with :class:`ConfigLoader`; any problem is a one-line
    ConfigError naming the duplicated key, or else ``source``."""
    loader = None
    try:
        loader = ConfigLoader(text)     # already checks for unprintable characters
        return loader.get_single_data()
    except DuplicateKeyError as exc:
        raise ConfigError(f"{exc.key}: appears twice in {source} (lines {exc.lines[0]} "
                          f"and {exc.lines[1]}); allowed: once") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(exc, text)}") from None
    finally:
        if loader is not None:
            loader.dispose()


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
    max_exclusive: bool = False   # maximum itself not allowed (a threshold < 1)
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
            hi = "" if self.maximum is None else (
                f" {'<' if self.max_exclusive else '<='} {self.maximum:g}")
            text += lo + ("," if lo and hi else "") + hi
        return text + (" or null" if self.nullable else "")


SPEC: dict[str, dict[str, Field]] = {
    "system": {
        "particles": Field("int", REQUIRED, "number of particles P", minimum=1),
        "dimensions": Field("int", REQUIRED, "spatial dimensions D", minimum=1, maximum=3),
        "omega": Field("float", REQUIRED, "trap frequency", minimum=0.0, min_exclusive=True),
        "omega_z": Field("float", None, "trap frequency along z (3D elliptical trap "
                         "V = 1/2 (omega^2 (x^2 + y^2) + omega_z^2 z^2)); null -> omega",
                         minimum=0.0, min_exclusive=True, nullable=True),
        "interaction": Field("str", "coulomb", "pair interaction: coulomb 1/r_pq, "
                             "hard_sphere (V = inf for r_pq <= hard_sphere_radius), or none",
                             choices=("coulomb", "hard_sphere", "none")),
        "hard_sphere_radius": Field("float", None, "hard-sphere radius a (with interaction "
                                    "hard_sphere or jastrow hard_sphere)", minimum=0.0,
                                    min_exclusive=True, nullable=True),
        "statistics": Field("str", "fermions", "fermions: Slater determinants per spin, "
                            "closed shells only (first half spin up); bosons: symmetric, "
                            "any count", choices=("fermions", "bosons")),
    },
    "wavefunction": {
        "hidden": Field("int", 4, "RBM hidden units N", minimum=1),
        "psi": Field("str", "sqrt", "sqrt: |psi|^2 = F (RBM marginal); full: psi = F",
                     choices=("sqrt", "full")),
        "sigma": Field("float", None, "RBM width (x, y); null -> exact non-interacting width",
                       minimum=0.0, min_exclusive=True, nullable=True),
        "sigma_z": Field("float", None, "RBM width along z (3D); null -> sigma in a round "
                         "trap, the exact non-interacting width for omega_z in an "
                         "elliptical one", minimum=0.0, min_exclusive=True, nullable=True),
        "variational_widths": Field("bool", False, "optimise the RBM Gaussian's widths too: "
                                    "exp(-1/2 sum delta x^2) with one delta for x-y and "
                                    "one for z, starting at 0 (not with gibbs)"),
        "init_scale": Field("float", 0.001, "std of the random initial a, b, W", minimum=0.0),
        "jastrow": Field("str", None, "pair factor: none, the cusp-exact Padé-Jastrow "
                         "exp(sum a r/(1 + beta r)), or hard_sphere prod (1 - a/r_pq); "
                         "null -> hard_sphere with interaction hard_sphere, else none",
                         choices=("none", "pade", "hard_sphere"), nullable=True),
        "jastrow_beta": Field("float", 0.5, "initial beta of both Padé-Jastrow pair kinds",
                              minimum=0.0, min_exclusive=True),
        "determinant_refresh": Field("int", 100, "sweeps between Slater inverses computed "
                                     "from scratch (fermions; updated by Sherman-Morrison "
                                     "in between)", minimum=1),
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
        "drift_limit": Field("float", None, "importance sampling: Umrigar's drift limit a "
                             "(drift v -> v (sqrt(1 + 2 a v^2 dt) - 1) / (a v^2 dt)); 0: "
                             "off; null -> 1 with Slater determinants or the hard-sphere "
                             "factor, else 0",
                             minimum=0.0, nullable=True),
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
        "observables_every": Field("int", 1, "add every k-th production sweep of each "
                                   "chain to the observables (the energy series keeps "
                                   "every sweep); k > 1 when the histograms need fewer "
                                   "samples than the energy", minimum=1),
        "batches": Field("int", 32, "consecutive time batches whose spread gives the "
                         "observables' errors (batch means); memory per rank: batches x "
                         "(bins + image_bins^2) doubles", minimum=2, maximum=1024),
        "density_bins": Field("int", 100, "bins of the radial one-body density",
                              minimum=1, maximum=100000),
        "density_rmax": Field("float", None, "outer radius of the density histograms; "
                              "null -> 4/sqrt(omega)", minimum=0.0, min_exclusive=True,
                              nullable=True),
        "axial_density": Field("bool", False, "D = 3: also the one-body density along "
                               "the x-y plane (column density vs sqrt(x^2 + y^2)) and "
                               "along z (linear density), density_bins bins each"),
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
        return yaml.dump(self.to_dict(), Dumper=ConfigDumper, sort_keys=False)

    def replace(self, **sections) -> "Config":
        return dataclasses.replace(self, **sections)


# Largest fermion counts offered: the unnormalised Hermite polynomials of the top shell
# must stay far from overflow (1D: 30 orbitals per spin).
CLOSED_SHELL_LIMIT = {1: 60, 2: 56, 3: 70}
# Explicit S: 2000^2 doubles = 32 MB per Allreduce, a 2000^3/3-flop Cholesky per solve
# (sum O O^T itself is a BLAS product, samples * n^2 flops per iteration).
SR_MAX_PARAMS = 2000
_WALLTIME_HOURS = 10**6   # beyond any job; bounds the digits int() has to convert
_WALLTIME = re.compile(r"([0-9]{1,6}):([0-5][0-9]):([0-5][0-9])")


def walltime_seconds(text: str) -> int:
    """'HH:MM:SS' -> seconds (hours may exceed 24)."""
    h, m, s = (int(g) for g in _WALLTIME.fullmatch(text).groups())
    return 3600 * h + 60 * m + s


def format_walltime(seconds: int) -> str:
    """seconds -> 'HH:MM:SS'."""
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _show(value: Any) -> str:
    """A value for a one-line message: its repr, cut to 60 characters."""
    if isinstance(value, int) and value.bit_length() > 200:   # repr may even refuse
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except ValueError:     # holds an integer of more digits than repr() converts
        text = f"a {type(value).__name__} holding a huge integer"
    return text if len(text) <= 60 else text[:56] + " ..."


def _got(value: Any) -> str:
    """'got <value> (<type>)' for a message."""
    return f"got {_show(value)} ({type(value).__name__})"


def check_value(key: str, field: Field, value: Any) -> Any:
    """Validate one value of ``field`` given for ``key`` (named in the error); return
    it normalised (ints accepted for floats, seconds for wall times)."""
    if value is None:
        if field.nullable:
            return None
        raise ConfigError(f"{key}: must not be null; allowed: {field.allowed()}")
    return _CHECKS[field.kind](key, field, value)


def _check_bool(key: str, field: Field, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, {_got(value)}")
    return value


def _check_int(key: str, field: Field, value: Any) -> int:
    """An int (not a bool) that fits in int64, within the field's range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer ({field.allowed()}), {_got(value)}")
    if abs(value) > INT64_MAX:     # every int ends up in numpy or HDF5 as int64
        raise ConfigError(f"{key}: {_show(value)} is out of range (not a 64-bit integer); "
                          f"allowed: {field.allowed()}")
    return _check_range(key, field, value)


def _check_float(key: str, field: Field, value: Any) -> float:
    """A finite number (an int too, as a float), within the field's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number ({field.allowed()}), {_got(value)}")
    try:
        number = float(value)
    except OverflowError:          # an int beyond the largest double
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: must be a finite number ({field.allowed()}), "
                          f"{_got(value)}")
    return _check_range(key, field, number)


def _check_str(key: str, field: Field, value: Any) -> str:
    """Text, one of the field's choices if it has them."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string ({field.allowed()}), {_got(value)}")
    if field.choices and value not in field.choices:
        raise ConfigError(f"{key}: {_show(value)} is not allowed; allowed: {field.allowed()}")
    if "\0" in value:              # no file name or C string can hold it
        raise ConfigError(f"{key}: contains a NUL character; allowed: {field.allowed()} "
                          "without NUL")
    return value


def _check_walltime(key: str, field: Field, value: Any) -> str:
    """A positive "HH:MM:SS", or positive seconds (YAML 1.1, e.g. yaml.safe_load, reads
    an unquoted 12:00:00 as 43200)."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and 0 < value < 3600 * _WALLTIME_HOURS:
        return format_walltime(value)
    if not isinstance(value, str) or not _WALLTIME.fullmatch(value) \
            or walltime_seconds(value) == 0:
        raise ConfigError(f'{key}: expected a positive "HH:MM:SS" wall time, {_got(value)}')
    return value


def _check_range(key: str, field: Field, value: float) -> float:
    """value itself if it lies within the field's minimum and maximum."""
    low = field.minimum is not None and (
        value <= field.minimum if field.min_exclusive else value < field.minimum)
    high = field.maximum is not None and (
        value >= field.maximum if field.max_exclusive else value > field.maximum)
    if low or high:
        raise ConfigError(f"{key}: {_show(value)} is out of range; allowed: {field.allowed()}")
    return value


_CHECKS = {"bool": _check_bool, "int": _check_int, "float": _check_float,
           "str": _check_str, "walltime": _check_walltime}
_SECTION_NAMES = ", ".join(list(SPEC) + ["seed"])


def _require_sections(raw: Any, source: str) -> None:
    """ConfigError unless raw is a mapping of known sections (and seed)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections ({_SECTION_NAMES}), "
                          f"{_got(raw)}")
    _refuse_unknown(raw, list(SPEC) + ["seed"], "")


def _refuse_unknown(given: dict, allowed: list, section: str) -> None:
    """ConfigError naming the first key of given (of a section, or of the top level
    when section is empty) that is not one of allowed."""
    extra = [k for k in given if k not in allowed]
    if not extra:
        return
    key, prefix = extra[0], f"{section}." if section else ""
    name = prefix + (key if isinstance(key, str) else
                     f"{_show(key)} ({type(key).__name__}, not text)")
    what = f"key; allowed keys in {section}" if section else "section; allowed"
    raise ConfigError(f"{name}: unknown {what}: {', '.join(allowed)}")


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
            raise ConfigError(f"{name}: expected a mapping of keys, {_got(given)}")
        _refuse_unknown(given, list(fields), name)
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
        cfg = cfg.replace(wavefunction=dataclasses.replace(cfg.wavefunction,
                                                           jastrow=jastrow))
    return cfg


def _check_combinations(cfg: Config) -> None:
    """Rules that involve more than one key."""
    if cfg.optimizer.method == "sr":
        from ..wavefunction import Layout     # numba only when SR needs the count
        n = Layout.from_config(cfg.system, cfg.wavefunction).n_params
        if n > SR_MAX_PARAMS:
            raise ConfigError(f"optimizer.method: sr builds the explicit {n} x {n} matrix S "
                              f"(Allreduced and Cholesky-solved every iteration); allowed "
                              f"up to {SR_MAX_PARAMS} parameters: use fewer hidden units "
                              "or adam")
        if cfg.optimizer.sr_shift == 0 and cfg.optimizer.sr_shift_relative == 0:
            raise ConfigError("optimizer.sr_shift: with sr_shift_relative also 0, S may be "
                              "singular; allowed: at least one of them > 0")
    if 0 < cfg.optimizer.plateau_window < 10:
        raise ConfigError(f"optimizer.plateau_window: {cfg.optimizer.plateau_window} is too "
                          "short for a slope test; allowed: 0 (off) or >= 10")
    _check_trap(cfg)
    _check_hard_spheres(cfg)
    _check_statistics(cfg)
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
        if cfg.wavefunction.variational_widths:
            raise ConfigError("sampler.method: gibbs draws x | h from the RBM's fixed "
                              "widths, not with wavefunction.variational_widths: true; "
                              "allowed: sampler.method metropolis/importance")
        if cfg.system.interaction == "hard_sphere":
            raise ConfigError("sampler.method: gibbs draws from the RBM alone, which "
                              "knows no hard core of system.interaction: hard_sphere; "
                              "allowed: sampler.method metropolis/importance")
    _check_parts(cfg)


def _check_trap(cfg: Config) -> None:
    """An elliptical trap (omega_z != omega) and a z width exist only in 3D; the Slater
    orbitals are those of a round trap."""
    sy, wf = cfg.system, cfg.wavefunction
    elliptic = sy.omega_z is not None and sy.omega_z != sy.omega
    if elliptic and sy.dimensions != 3:
        raise ConfigError(f"system.omega_z: {sy.omega_z:g} differs from system.omega "
                          f"({sy.omega:g}), an elliptical trap, which needs "
                          f"system.dimensions 3 (got {sy.dimensions}); allowed: null or "
                          f"equal to system.omega")
    if wf.sigma_z is not None and sy.dimensions != 3:
        raise ConfigError(f"wavefunction.sigma_z: the width along z needs "
                          f"system.dimensions 3 (got {sy.dimensions}); allowed: null")
    if elliptic and sy.statistics == "fermions" and sy.particles > 2:
        raise ConfigError(f"system.omega_z: the Slater orbitals of "
                          f"system.statistics: fermions are those of a round trap; "
                          f"allowed: null or equal to system.omega, or statistics bosons")


def _check_hard_spheres(cfg: Config) -> None:
    """The radius comes with hard spheres (as interaction or as pair factor), and hard
    spheres need two particles and a radius."""
    sy, jastrow = cfg.system, cfg.wavefunction.jastrow
    wanted = sy.interaction == "hard_sphere" or jastrow == "hard_sphere"
    who = ("system.interaction: hard_sphere" if sy.interaction == "hard_sphere"
           else "wavefunction.jastrow: hard_sphere")
    if wanted and sy.hard_sphere_radius is None:
        raise ConfigError(f"system.hard_sphere_radius: required with {who}; allowed: a "
                          f"number > 0")
    if not wanted and sy.hard_sphere_radius is not None:
        raise ConfigError(f"system.hard_sphere_radius: used only with interaction "
                          f"hard_sphere or jastrow hard_sphere (got interaction "
                          f"{sy.interaction}, jastrow {jastrow}); allowed: null")
    if wanted and sy.particles < 2:
        raise ConfigError(f"system.particles: {who} needs at least 2 particles (got "
                          f"{sy.particles}); allowed: particles >= 2, or interaction and "
                          f"jastrow other than hard_sphere")


def _check_statistics(cfg: Config) -> None:
    """Fermions come in closed shells; Gibbs sampling cannot carry determinants."""
    from ..wavefunction.slater import closed_shells
    sy = cfg.system
    if sy.statistics != "fermions":
        return
    limit = CLOSED_SHELL_LIMIT[sy.dimensions]
    if sy.dimensions == 1:
        if sy.particles % 2 or sy.particles > limit:
            raise ConfigError(f"system.particles: {sy.particles} fermions are not offered "
                              f"in 1D; allowed: an even count up to {limit} (one orbital "
                              f"per shell), or system.statistics: bosons")
    elif sy.particles not in closed_shells(sy.dimensions, limit):
        counts = ", ".join(map(str, closed_shells(sy.dimensions, limit)))
        raise ConfigError(f"system.particles: {sy.particles} fermions are not a closed "
                          f"shell offered in {sy.dimensions}D; allowed: {counts}, or "
                          f"system.statistics: bosons (any count)")
    if sy.particles > 2 and cfg.sampler.method == "gibbs":
        raise ConfigError(f"sampler.method: gibbs draws from the RBM's conditionals, which "
                          f"do not sample |psi|^2 with the Slater determinants of "
                          f"system.statistics: fermions (particles {sy.particles}); allowed: "
                          f"sampler.method metropolis/importance, or statistics bosons")


def _check_parts(cfg: Config) -> None:
    """Every selected wave-function part supports the dimension (its registry entry)."""
    from ..wavefunction.layout import PARTS
    D = cfg.system.dimensions
    for part in PARTS:
        if part.selects(cfg.system, cfg.wavefunction) and D < part.min_dimensions:
            key = part.selected_by.split(":")[0]
            raise ConfigError(f"{part.selected_by} needs system.dimensions >= "
                              f"{part.min_dimensions} (got {D}); allowed with dimensions "
                              f"{D}: another value of {key}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {_show(text)}: expected section.key=value")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not (parts == ["seed"] or (len(parts) == 2 and all(parts))):
        raise ConfigError(f"--set {_show(text)}: key must be section.key (or seed)")
    parsed = parse_yaml(value, f"--set {_show(text)}") if value.strip() else None
    return parts, parsed


def _set_key(raw: dict, parts: list[str], value: Any, origin: str) -> None:
    """raw[section][key] = value (or raw['seed']), given on the command line by origin."""
    if parts == ["seed"]:
        raw["seed"] = value
        return
    section, key = parts
    if section not in SPEC:
        raise ConfigError(f"{section}: unknown section in {origin}; allowed: "
                          f"{_SECTION_NAMES}")
    current = raw.get(section)
    if current is None:
        current = {}
    if not isinstance(current, dict):
        raise ConfigError(f"{section}: expected a mapping of keys, {_got(current)}")
    raw[section] = {**current, key: value}


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Return a copy of ``raw`` with every ``--set section.key=value`` applied."""
    raw = dict(raw or {})
    for text in overrides:
        parts, value = parse_override(text)
        _set_key(raw, parts, value, f"--set {_show(text)}")
    return raw


def _read_config_file(path: str) -> str:
    """The text of a config file; ConfigError if it is missing, a directory, too large
    or not UTF-8."""
    if os.path.isdir(path):
        raise ConfigError(f"config file {path}: is a directory; give a YAML file")
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path}: larger than {MAX_CONFIG_BYTES // 1024} kB; "
                          "a config is a few kB of YAML")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path}: not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})") from None


def load_config(path: str | os.PathLike, overrides: list[str] = (),
                output: str | None = None) -> Config:
    """Read, override and validate a YAML config file; raise ConfigError on any problem."""
    path = os.fspath(path)
    source = f"config file {path}"
    raw = parse_yaml(_read_config_file(path), source)
    if raw is None:
        raw = {}
    _require_sections(raw, source)
    raw = apply_overrides(raw, list(overrides))
    if output is not None:
        _set_key(raw, ["output", "path"], output, "-o")
    return from_dict(raw, source=path)


# Keys added after run files stored configs without them, with the meaning those runs
# had: a stored config lacking one reads with this value, not with today's default.
STORED_BEFORE = {("system", "statistics"): "bosons"}   # runs before fermions existed


def config_from_yaml_text(text: str, source: str = "config") -> Config:
    """Rebuild a Config from the resolved YAML stored in a run file (a key the file
    predates takes its value from ``STORED_BEFORE``)."""
    raw = parse_yaml(text, source)
    if isinstance(raw, dict):
        for (section, key), value in STORED_BEFORE.items():
            if isinstance(raw.get(section), dict):
                raw[section].setdefault(key, value)
    return from_dict(raw, source)


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
