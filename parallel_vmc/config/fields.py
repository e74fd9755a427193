"""The config machinery every command's table is built on: the one YAML loader
(:class:`ConfigLoader`), the :class:`Field` of one key with its checks, wall times,
``--set section.key=value`` parsing and the reading of a config file. A command's
config module (``config.vmc``, ``generative.config``) holds its table of fields and the
checks across keys.

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
MAX_CONFIG_BYTES = 2**20  # a config is a few kB; bounds the work spent on a wrong file


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
    yaml_implicit_resolvers: dict = {}  # rebuilt from _RESOLVERS below
    _depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        refused = (
            "an alias"
            if isinstance(event, yaml.AliasEvent)
            else "an anchor"
            if event.anchor is not None
            else "a tag"
            if getattr(event, "tag", None) is not None
            else None
        )
        if refused:
            raise yaml.composer.ComposerError(
                None,
                None,
                f"found {refused}; configs use no anchors, aliases or tags "
                "(write each value itself, quoted to make it text)",
                event.start_mark,
            )
        if self._depth >= self.MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {self.MAX_DEPTH} levels", event.start_mark
            )
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
        super().__init__(
            None, None, f"{key} appears twice (lines {first.line + 1} and {again.line + 1})", again
        )
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
            continue  # a list or mapping as a key: the constructor refuses it
        name = f"{path}.{key.value}" if path else key.value
        if (key.tag, key.value) in seen:
            raise DuplicateKeyError(name, seen[key.tag, key.value], key.start_mark)
        seen[key.tag, key.value] = key.start_mark
        _refuse_duplicate_keys(value, name)


class ConfigDumper(yaml.SafeDumper):
    """yaml.safe_dump that also quotes text ConfigLoader would read as a number
    (``1e3``, ``09``), so stored configs read back the same with either loader."""


_EXACT_DIGITS = 640  # Python's smallest int_max_str_digits: str -> int always allowed


def _construct_int(loader, node) -> int:
    """A decimal integer. Python refuses str -> int beyond a few thousand digits (its
    guard against quadratic time); such a number is outside every range, so only its
    sign and magnitude are kept."""
    text = loader.construct_scalar(node)
    digits = text.lstrip("+-").lstrip("0") or "0"
    head = digits[:_EXACT_DIGITS]
    value = int(head) * 10 ** (len(digits) - len(head))
    return -value if text.startswith("-") else value


_RESOLVERS = (  # (tag, pattern, first characters); ints before floats
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("int", r"[-+]?[0-9]+", "-+0123456789"),
    (
        "float",
        r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?"
        r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)",
        "-+.0123456789",
    ),
)
for _tag, _pattern, _first in _RESOLVERS:
    _regexp = re.compile(rf"^(?:{_pattern})\Z")
    ConfigLoader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp, list(_first))
    if _tag in ("int", "float"):  # added to YAML 1.1's (whose bool and null cover ours)
        ConfigDumper.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", _regexp, list(_first))
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
            f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        )
    else:
        message = str(exc)
    return " ".join(message.split())


def parse_yaml(text: str, source: str) -> Any:
    """Parse config YAML with :class:`ConfigLoader`; any problem is a one-line
    ConfigError naming the duplicated key, or else ``source``."""
    loader = None
    try:
        loader = ConfigLoader(text)  # already checks for unprintable characters
        return loader.get_single_data()
    except DuplicateKeyError as exc:
        raise ConfigError(
            f"{exc.key}: appears twice in {source} (lines {exc.lines[0]} "
            f"and {exc.lines[1]}); allowed: once"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {_one_line(exc, text)}") from None
    finally:
        if loader is not None:
            loader.dispose()


@dataclass(frozen=True)
class Field:
    """One config key: how to check it and what it means."""

    kind: str  # "int" | "float" | "str" | "bool" | "walltime" | "floats" (a list)
    default: Any
    doc: str
    choices: tuple = ()  # allowed values for "str"
    minimum: float | None = None
    maximum: float | None = None
    min_exclusive: bool = False  # minimum itself not allowed (omega > 0)
    max_exclusive: bool = False  # maximum itself not allowed (a threshold < 1)
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
        elif self.kind == "floats":
            one = dataclasses.replace(self, kind="float", nullable=False).allowed()
            text = f"a list of 1 to {MAX_LIST} different numbers (each a {one})"
        else:
            text = "integer" if self.kind == "int" else "number"
            lo = (
                ""
                if self.minimum is None
                else (f" {'>' if self.min_exclusive else '>='} {self.minimum:g}")
            )
            hi = (
                ""
                if self.maximum is None
                else (f" {'<' if self.max_exclusive else '<='} {self.maximum:g}")
            )
            text += lo + ("," if lo and hi else "") + hi
        return text + (" or null" if self.nullable else "")


_WALLTIME_HOURS = 10**6  # beyond any job; bounds the digits int() has to convert
_WALLTIME = re.compile(r"([0-9]{1,6}):([0-5][0-9]):([0-5][0-9])")


def walltime_seconds(text: str) -> int:
    """'HH:MM:SS' -> seconds (hours may exceed 24)."""
    h, m, s = (int(g) for g in _WALLTIME.fullmatch(text).groups())
    return 3600 * h + 60 * m + s


def format_walltime(seconds: int) -> str:
    """seconds -> 'HH:MM:SS'."""
    seconds = int(seconds)
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def show(value: Any) -> str:
    """A value for a one-line message: its repr, cut to 60 characters."""
    if isinstance(value, int) and value.bit_length() > 200:  # repr may even refuse
        return f"an integer of about {int(value.bit_length() * math.log10(2)) + 1} digits"
    try:
        text = repr(value)
    except ValueError:  # holds an integer of more digits than repr() converts
        text = f"a {type(value).__name__} holding a huge integer"
    return text if len(text) <= 60 else text[:56] + " ..."


def got(value: Any) -> str:
    """'got <value> (<type>)' for a message."""
    return f"got {show(value)} ({type(value).__name__})"


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
        raise ConfigError(f"{key}: expected true or false, {got(value)}")
    return value


def _check_int(key: str, field: Field, value: Any) -> int:
    """An int (not a bool) that fits in int64, within the field's range; a float
    that is an exact integer (``1e6``, ``4096.0``: counts as YAML users write them)
    counts as that integer."""
    if isinstance(value, float):
        value = _integral(key, field, value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer ({field.allowed()}), {got(value)}")
    if abs(value) > INT64_MAX:  # every int ends up in numpy or HDF5 as int64
        raise ConfigError(
            f"{key}: {show(value)} is out of range (not a 64-bit integer); "
            f"allowed: {field.allowed()}"
        )
    return _check_range(key, field, value)


EXACT_FLOAT_INTEGERS = 2**53  # below it a double holds every integer exactly


def _integral(key: str, field: Field, value: float) -> int:
    """value as an int if it is a whole number a double holds exactly; else
    ConfigError saying why it is not an integer."""
    if not math.isfinite(value):  # also 1e400, which YAML reads as inf
        raise ConfigError(
            f"{key}: expected an integer ({field.allowed()}), {got(value)}: not a finite number"
        )
    if not value.is_integer():
        raise ConfigError(
            f"{key}: expected an integer ({field.allowed()}), {got(value)}: "
            "it has a fractional part"
        )
    if EXACT_FLOAT_INTEGERS <= abs(value) <= INT64_MAX:  # beyond: refused as out of range
        raise ConfigError(
            f"{key}: {show(value)} is 2^53 or more, where a float no longer holds every "
            f"integer, so the number written may not be the one read; write it with "
            f"digits only ({field.allowed()})"
        )
    return int(value)


def _check_float(key: str, field: Field, value: Any) -> float:
    """A finite number (an int too, as a float), within the field's range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: expected a number ({field.allowed()}), {got(value)}")
    try:
        number = float(value)
    except OverflowError:  # an int beyond the largest double
        number = math.inf
    if not math.isfinite(number):
        raise ConfigError(f"{key}: must be a finite number ({field.allowed()}), {got(value)}")
    return _check_range(key, field, number)


def _check_str(key: str, field: Field, value: Any) -> str:
    """Text, one of the field's choices if it has them."""
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string ({field.allowed()}), {got(value)}")
    if field.choices and value not in field.choices:
        raise ConfigError(f"{key}: {show(value)} is not allowed; allowed: {field.allowed()}")
    if "\0" in value:  # no file name or C string can hold it
        raise ConfigError(
            f"{key}: contains a NUL character; allowed: {field.allowed()} without NUL"
        )
    return value


def _check_walltime(key: str, field: Field, value: Any) -> str:
    """A positive "HH:MM:SS", or positive seconds (YAML 1.1, e.g. yaml.safe_load, reads
    an unquoted 12:00:00 as 43200)."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and 0 < value < 3600 * _WALLTIME_HOURS
    ):
        return format_walltime(value)
    if not isinstance(value, str) or not _WALLTIME.fullmatch(value) or walltime_seconds(value) == 0:
        raise ConfigError(f'{key}: expected a positive "HH:MM:SS" wall time, {got(value)}')
    return value


MAX_LIST = 64  # numbers in a list-valued key


def _check_floats(key: str, field: Field, value: Any) -> list:
    """A list of 1 to MAX_LIST different numbers, each within the field's range."""
    if not isinstance(value, list):
        raise ConfigError(f"{key}: expected a list such as [0.01, 0.02], {got(value)}")
    if not 1 <= len(value) <= MAX_LIST:
        raise ConfigError(f"{key}: {len(value)} numbers; allowed: {field.allowed()}")
    one = dataclasses.replace(field, kind="float", nullable=False)
    numbers = [_check_float(f"{key}[{i}]", one, v) for i, v in enumerate(value)]
    if len(set(numbers)) < len(numbers):
        raise ConfigError(f"{key}: {show(value)} repeats a number; allowed: {field.allowed()}")
    return numbers


def _check_range(key: str, field: Field, value: float) -> float:
    """value itself if it lies within the field's minimum and maximum."""
    low = field.minimum is not None and (
        value <= field.minimum if field.min_exclusive else value < field.minimum
    )
    high = field.maximum is not None and (
        value >= field.maximum if field.max_exclusive else value > field.maximum
    )
    if low or high:
        raise ConfigError(f"{key}: {show(value)} is out of range; allowed: {field.allowed()}")
    return value


_CHECKS = {
    "bool": _check_bool,
    "int": _check_int,
    "float": _check_float,
    "str": _check_str,
    "walltime": _check_walltime,
    "floats": _check_floats,
}


def refuse_unknown(given: dict, allowed: list, section: str) -> None:
    """ConfigError naming the first key of given (of a section, or of the top level
    when section is empty) that is not one of allowed."""
    extra = [k for k in given if k not in allowed]
    if not extra:
        return
    key, prefix = extra[0], f"{section}." if section else ""
    name = prefix + (
        key if isinstance(key, str) else f"{show(key)} ({type(key).__name__}, not text)"
    )
    what = f"key; allowed keys in {section}" if section else "section; allowed"
    raise ConfigError(f"{name}: unknown {what}: {', '.join(allowed)}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """'section.key=value' -> (['section', 'key'], parsed YAML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {show(text)}: expected section.key=value")
    key, _, value = text.partition("=")
    parts = key.strip().split(".")
    if not (parts == ["seed"] or (len(parts) == 2 and all(parts))):
        raise ConfigError(f"--set {show(text)}: key must be section.key (or seed)")
    parsed = parse_yaml(value, f"--set {show(text)}") if value.strip() else None
    return parts, parsed


def read_config_file(path: str) -> str:
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
        raise ConfigError(
            f"config file {path}: larger than {MAX_CONFIG_BYTES // 1024} kB; "
            "a config is a few kB of YAML"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path}: not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def flat_keys(raw: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out.update(flat_keys(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def differing_keys(a: dict, b: dict, ignore=()) -> list:
    """Dotted keys whose values differ between two nested config dicts."""
    fa, fb = flat_keys(a), flat_keys(b)
    return sorted(
        k for k in set(fa) | set(fb) if k.split(".")[0] not in ignore and fa.get(k) != fb.get(k)
    )
