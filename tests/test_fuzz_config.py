"""Property-based fuzzing of the config contract (Hypothesis).

Whatever the input (config values, structure, raw YAML text or bytes, ``--set``
strings), ``load_config`` returns a Config or raises a one-line ConfigError that names
a ``section.key``, a section, ``--set`` or the file; and ``pvmc run`` exits 0
(completed), 1 (status ``failed: ...``) or 2 (naming the key, nothing left behind),
never with a traceback. Derandomized, so CI runs the same cases every time.
"""

import contextlib
import copy
import io
import math
import os
import tempfile

import h5py
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_vmc.cli.main import main
from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import SPEC, config_from_yaml_text, from_dict, load_config

FUZZ = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
KEYS = [(section, key) for section in SPEC for key in SPEC[section]] + [("seed", None)]
NAMES = {f"{s}.{k}" for s, k in KEYS if k} | set(SPEC) | {"seed"}
BASE = {  # small and valid: mutations start here
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
    "wavefunction": {"hidden": 2},
    "sampler": {"walkers_per_rank": 2, "thermalization": 10},
    "optimizer": {"iterations": 1, "samples_per_iteration": 16},
    "production": {"samples": 64},
    "seed": 1,
}
# Values that are wrong (or borderline) for some kind of key. Ints beyond int64 and
# huge floats only: a valid but huge count would make a run take forever.
ODD_VALUES = [
    0,
    -1,
    1.5,
    -0.0,
    math.nan,
    math.inf,
    -math.inf,
    1e308,
    5e-324,
    2**63,
    -(2**63) - 1,
    10**30,
    10**400,
    True,
    False,
    None,
    "",
    "x",
    "yes",
    "on",
    "1:0",
    "12:00:00",
    "1e-3",
    "\x00",
    [],
    [1, 2],
    {},
    {"a": 1},
]
ODD_TEXT = [
    "1:0",
    "12:00:00",
    "yes",
    "off",
    "1e-3",
    "",
    "~",
    "&a 1",
    "*a",
    "!!int x",
    "!!python/object:os.system x",
    "{a: 1, a: 2}",
    "[",
    "1" + "0" * 400,
    "1" + "0" * 5000,
    ".nan",
    "-.inf",
    "0777",
    "0x10",
    "'quoted'",
    '"\\0"',
    "[" * 100,
    "2024-01-01",
    "=",
    "<<: {a: 1}",
]
FRAGMENTS = [
    "system:",
    "  omega: 2.0",
    "  particles: 1:0",
    "a: &a [1, 2]",
    "b: [*a, *a]",
    "output:",
    "  max_walltime: 12:00:00",
    "  path: !!binary aGVsbG8=",
    "seed: 0777",
    "production: {observables: yes}",
    "? [1, 2]\n: 3",
    "{",
    "- 1",
    "\t",
    "null: 1",
    "1: 2",
    "<<: {a: 1}",
    "system: [1]",
    "%YAML 1.1",
    "---",
    "...",
    "'",
    "sampler: {method: gibbs}",
    "wavefunction: {psi: full}",
    "optimizer: {method: sr, sr_shift: 0, sr_shift_relative: 0}",
]


def assert_names_something(message: str) -> None:
    """One line whose subject (before the first ': ') is a key, a section, an unknown
    key the input gave, ``--set ...``, ``-o`` or the config file."""
    assert len(message.splitlines()) == 1 and "Traceback" not in message, message
    subject, sep, detail = message.partition(": ")
    named = (
        subject in NAMES
        or subject.split(".")[0] in SPEC
        or subject.startswith(("config file", "--set", "-o"))
        or "unknown section" in detail
        or "appears twice" in detail
        or any(message.startswith(name + " ") for name in NAMES)
    )
    assert named and (detail.strip() or not sep), message


def check(build) -> None:
    """build() returns a Config whose stored YAML reads back the same with either
    loader, or raises a ConfigError that names what is wrong."""
    try:
        cfg = build()
    except ConfigError as exc:
        assert_names_something(str(exc))
        return
    text = cfg.to_yaml()
    assert config_from_yaml_text(text) == cfg
    assert yaml.safe_load(text) == cfg.to_dict()


def check_load(path: str, overrides=()) -> None:
    check(lambda: load_config(path, list(overrides)))


def dump(raw) -> str:
    """raw as YAML text, in the order given (keys need not be text)."""
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)


@contextlib.contextmanager
def config_file(data):
    """(directory, path) of a temporary config file holding data (text or bytes)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "wb") as fh:
            fh.write(data.encode() if isinstance(data, str) else data)
        yield tmp, path


odd_values = st.one_of(
    st.sampled_from(ODD_VALUES),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
)
odd_keys = st.one_of(st.text(max_size=8), st.integers(), st.none(), st.booleans())
override_strings = st.one_of(
    st.builds(
        "{}={}".format,
        st.sampled_from(
            [f"{s}.{k}" if k else s for s, k in KEYS]
            + ["nosuch.key", "system", "a.b.c", "seed", ""]
        ),
        st.one_of(
            st.sampled_from(ODD_TEXT),
            st.text(max_size=12),
            st.integers().map(str),
            st.floats().map(repr),
        ),
    ),
    st.text(max_size=30),
)


@st.composite
def mutate(draw, raw: dict, values, keys=odd_keys) -> dict:
    """raw with 0-4 mutations: odd values, unknown or non-text keys and sections,
    missing keys (also required ones), sections that are not mappings."""
    raw = copy.deepcopy(raw)
    for _ in range(draw(st.integers(0, 4))):
        section, key = draw(st.sampled_from(KEYS))
        kind = draw(
            st.sampled_from(
                ["value", "value", "value", "unknown key", "unknown section", "drop", "section"]
            )
        )
        if kind == "unknown section":
            target, key = raw, draw(keys)
        elif section == "seed":
            target, key = raw, "seed"
        else:
            target = raw.setdefault(section, {})
            if not isinstance(target, dict):
                continue
            if kind == "unknown key":
                key = draw(keys)
        if kind == "drop":
            target.pop(key, None)
        elif kind == "section" and section != "seed":
            raw[section] = draw(values)
        else:
            target[key] = draw(values)
    return raw


@settings(max_examples=1300, **FUZZ)
@given(
    raw=mutate(BASE, odd_values),
    overrides=st.one_of(st.just([]), st.lists(override_strings, min_size=1, max_size=2)),
)
def test_mutated_configs_load_or_name_the_key(raw, overrides):
    with config_file(dump(raw)) as (_, path):
        check_load(path, overrides)


@settings(max_examples=200, **FUZZ)
@given(path=st.text(max_size=30))
def test_any_output_path_reads_back_the_same(path):
    """Text that YAML 1.1 or ConfigLoader would read as something else is quoted."""
    check(lambda: from_dict({**BASE, "output": {"path": path}}))


@st.composite
def yaml_files(draw) -> bytes:
    """The bytes of a config file: the valid one with fragments (duplicate keys,
    aliases, base-60 values, tags, stray syntax, random text) inserted, in UTF-8 or
    another encoding, or random bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    lines = dump(BASE).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        fragment = draw(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=40)))
        lines.insert(draw(st.integers(0, len(lines))), fragment)
    encoding = draw(st.sampled_from(["utf-8"] * 8 + ["utf-16", "latin-1"]))
    return "\n".join(lines).encode(encoding, errors="replace")


@settings(max_examples=1000, **FUZZ)
@given(data=yaml_files())
def test_raw_yaml_loads_or_names_the_file(data):
    with config_file(data) as (_, path):
        check_load(path)


@settings(max_examples=500, **FUZZ)
@given(overrides=st.lists(override_strings, min_size=1, max_size=3))
def test_set_strings_apply_or_name_the_key(overrides):
    with config_file(dump(BASE)) as (_, path):
        check_load(path, overrides)


# ------------------------------------------------------------------ pvmc run
@st.composite
def tiny_configs(draw) -> dict:
    """A valid config of a run that takes a fraction of a second, with a random
    sampler, optimizer, psi and Jastrow factor (only the combinations allowed).

    Two dimensions only: the dimension is part of the kernel's type, and each other
    one cost minutes of compiling in every cold CI run for no new path through the
    command line (1D and 3D runs are tested in test_run, test_bosons, test_parts)."""
    dims, psi, jastrow = (
        2,
        draw(st.sampled_from(["sqrt", "full"])),
        draw(st.sampled_from(["none", "pade"])),
    )
    interactions = ["coulomb", "none"]  # (1D would have none: no 1/|x| there)
    gibbs = ["gibbs"] if (psi, jastrow) == ("sqrt", "none") else []
    walkers = draw(st.integers(1, 4))
    return {
        "system": {
            "particles": draw(st.integers(1, 3)),
            "dimensions": dims,
            "omega": draw(st.sampled_from([0.5, 1.0, 2.0])),
            "interaction": draw(st.sampled_from(interactions)),
        },
        "wavefunction": {"hidden": draw(st.integers(1, 3)), "psi": psi, "jastrow": jastrow},
        "sampler": {
            "method": draw(st.sampled_from(["metropolis", "importance"] + gibbs)),
            "walkers_per_rank": walkers,
            "thermalization": draw(st.integers(0, 20)),
        },
        "optimizer": {
            "method": draw(st.sampled_from(["sgd", "adam", "sr"])),
            "iterations": draw(st.integers(0, 2)),
            "samples_per_iteration": draw(st.integers(1, 64)),
            "schedule": draw(st.sampled_from(["constant", "exponential", "cosine"])),
        },
        "production": {
            "samples": draw(st.integers(4 * walkers, 256)),
            "observables": draw(st.booleans()),
            "store_components": draw(st.booleans()),
            "batches": draw(st.integers(2, 8)),
        },
        "seed": draw(st.integers(0, 2**63 - 1)),
    }


cli_overrides = st.builds(
    "{}={}".format,
    st.sampled_from([f"{s}.{k}" if k else s for s, k in KEYS] + ["nosuch.key"]),
    st.sampled_from(ODD_TEXT),
)


def run_cli(argv: list) -> tuple[int, str]:
    """pvmc in this process: (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, err.getvalue()


def status(path: str) -> str:
    """The status attribute of a run file."""
    with h5py.File(path, "r") as h5:
        value = h5.attrs["status"]
    return value.decode() if isinstance(value, bytes) else str(value)


@settings(max_examples=300, **FUZZ)
@given(
    raw=st.one_of(
        tiny_configs(),
        tiny_configs(),
        tiny_configs(),
        tiny_configs().flatmap(
            lambda r: mutate(r, st.sampled_from(ODD_VALUES), st.sampled_from(["zz", 1]))
        ),
    ),
    overrides=st.one_of(
        st.just([]), st.just([]), st.just([]), st.lists(cli_overrides, min_size=1, max_size=1)
    ),
    output=st.sampled_from(["out.h5"] * 18 + ["", "."]),
)
def test_cli_run_completes_fails_or_names_the_key(raw, overrides, output):
    with config_file(dump(raw)) as (tmp, path):
        out = os.path.join(tmp, output) if output else ""
        argv = ["run", path, *(a for o in overrides for a in ("--set", o)), "-o", out, "--quiet"]
        code, err = run_cli(argv)
        assert "Traceback" not in err, err
        if code == 0:
            assert status(out) == "completed"
        elif code == 1:
            assert status(out).startswith("failed: "), err
        else:
            assert code == 2, (code, err)
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("pvmc: error: "), err
            assert_names_something(lines[0].removeprefix("pvmc: error: "))
            assert os.listdir(tmp) == ["c.yaml"], os.listdir(tmp)


# ------------------------------------------------------------------ absurd sizes
# Size keys, each with what its message says the value amounts to. Set alone to a value
# no machine has room for (>= 1e15: petabytes of memory or disk), each is named.
ABSURD = {
    "sampler.walkers_per_rank": "chains",
    "wavefunction.hidden": "parameters",
    "system.particles": "parameters",
    "production.samples": "samples per chain",
    "optimizer.iterations": "iterations",
}


@settings(max_examples=150, **FUZZ)
@given(
    key=st.sampled_from(sorted(ABSURD)),
    value=st.integers(10**15, 2**63 - 1),
    command=st.sampled_from(["validate", "run"]),
)
def test_an_absurd_size_exits_2_naming_the_key_and_what_it_implies(key, value, command):
    """One line whose subject is the key and its value, then what that amounts to, the
    memory or disk it needs and the largest value that fits; no traceback, no file."""
    raw = copy.deepcopy(BASE)
    raw["system"]["statistics"] = "bosons"  # any particle count
    with config_file(dump(raw)) as (tmp, path):
        out = os.path.join(tmp, "out.h5")
        code, err = run_cli([command, path, "--set", f"{key}={value}", "-o", out])
        assert "Traceback" not in err, err
        assert code == 2, (code, err)
        [line] = err.splitlines()
        message = line.removeprefix("pvmc: error: ")
        assert message.startswith(f"{key}: {value} ("), message
        assert ABSURD[key] in message and "memory" in message, message
        assert "allowed: up to " in message, message
        assert os.listdir(tmp) == ["c.yaml"], os.listdir(tmp)


# ------------------------------------------------------------------ hard-sphere starts
@st.composite
def hard_sphere_systems(draw):
    """(raw config, walkers) of hard-sphere bosons: any dimension, 2-300 particles, and
    a radius anywhere from dilute to impossible, half of them near the packing limit."""
    from parallel_vmc.sampling.packing import largest_radius, start_width
    from parallel_vmc.system import System
    from parallel_vmc.wavefunction import WaveFunction

    D, P = draw(st.integers(1, 3)), draw(st.integers(2, 300))
    omega, psi = draw(st.sampled_from([0.5, 1.0, 4.0])), draw(st.sampled_from(["sqrt", "full"]))
    raw = {
        "system": {
            "particles": P,
            "dimensions": D,
            "omega": omega,
            "interaction": "hard_sphere",
            "hard_sphere_radius": 1e-6,
            "statistics": "bosons",
        },
        "wavefunction": {"psi": psi, "sigma": draw(st.sampled_from([None, 0.3, 1.5]))},
        "sampler": {"walkers_per_rank": 16},
    }
    if draw(st.booleans()):
        radius = 10 ** draw(st.floats(-3, 3))
    else:  # within a factor 1.5 of the limit
        cfg = from_dict(raw)
        wf = WaveFunction.from_config(cfg.wavefunction, System.from_config(cfg.system))
        radius = largest_radius(P, D, start_width(wf)) * draw(st.floats(1 / 1.5, 1.5))
    raw["system"]["hard_sphere_radius"] = radius
    return raw, draw(st.integers(1, 4))


@settings(max_examples=200, **FUZZ)
@given(system=hard_sphere_systems())
def test_validate_and_the_start_agree_on_hard_spheres(system):
    """Walkers that cannot be placed were refused only at the start of the run, with a
    traceback, and validate accepted the config. Now: validate accepts => the run's start
    (``state.fresh`` on every rank) places every walker without an overlap; validate
    refuses => one line naming system.hard_sphere_radius and the packing fraction."""
    from parallel_vmc.hamiltonian.geometry import min_pair_distance
    from parallel_vmc.run import state as runstate
    from parallel_vmc.system import System
    from parallel_vmc.wavefunction import WaveFunction

    raw, ranks = system
    with config_file(dump(raw)) as (tmp, path):
        code, err = run_cli(["validate", path, "-o", os.path.join(tmp, "out.h5")])
    if code == 2:
        [line] = err.splitlines()
        assert line.startswith("pvmc: error: system.hard_sphere_radius: "), line
        assert "packing fraction" in line and "allowed: up to " in line, line
        return
    assert code == 0, err
    cfg = from_dict(raw)
    sy = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, sy)
    P, D, a = sy.particles, sy.dimensions, sy.hard_sphere_radius
    for rank in range(ranks):  # the chains of each rank of a launch on `ranks` ranks
        chains = runstate.Chains(ranks * 16, rank * 16, 16)
        _, walkers, failed = runstate.fresh(cfg, sy, wf, chains, None)
        assert failed == 0, (P, D, a)
        assert all(min_pair_distance(x, P, D) > a for x in walkers.positions)


# ------------------------------------------------------------------ counts as floats
INT_KEYS = sorted(f"{s}.{k}" for s, k in KEYS if k and SPEC[s][k].kind == "int")


@settings(max_examples=400, **FUZZ)
@given(
    key=st.sampled_from(INT_KEYS),
    value=st.one_of(
        st.integers(-(2**60), 2**60).map(float),  # whole numbers, also beyond 2^53
        st.floats(),  # anything, inf and nan included
        st.sampled_from([1e6, 1.0e6, 4096.0, 1.5, 1.5e-3, 1e400, -0.0, 2.0**53, 1e19]),
    ),
)
def test_integer_keys_take_whole_floats_or_name_the_key(key, value):
    """An integer key takes a float that is a whole number below 2^53 (1e6, 4096.0) as
    that integer, and refuses any other float in one line naming the key."""
    from parallel_vmc.config.fields import check_value

    section, name = key.split(".")
    field = SPEC[section][name]
    whole = math.isfinite(value) and value.is_integer() and abs(value) < 2**53
    in_range = whole and (field.minimum is None or value >= field.minimum)
    in_range = in_range and (field.maximum is None or value <= field.maximum)
    try:
        got = check_value(key, field, value)
    except ConfigError as exc:
        assert not in_range, (key, value, str(exc))
        assert str(exc).startswith(f"{key}: ") and len(str(exc).splitlines()) == 1
        return
    assert in_range and type(got) is int and got == value, (key, value, got)
