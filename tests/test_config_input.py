"""Bad input (config files, --set, bench options) exits 2 with one line
`pvmc: error: ...` naming the key, before any work and without a traceback."""

import os
import shutil
import subprocess
import sys
import time

import pytest
import yaml
from conftest import ROOT

from parallel_vmc.config.fields import ConfigError, ConfigLoader
from parallel_vmc.config.vmc import config_from_yaml_text, from_dict, load_config

GOOD = "system:\n  particles: 2\n  dimensions: 2\n  omega: 1.0\n"
# The "billion laughs": 10^9 strings from 9 nested lists of 10 aliases (a hang before).
BOMB = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


def pvmc(*args, cwd=None):
    from conftest import subprocess_env

    return subprocess.run(
        [sys.executable, "-m", "parallel_vmc", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
    )


def assert_bad_input(res, *names):
    """Exit 2 with one short line `pvmc: error: ...` that contains every one of names."""
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pvmc: error: "), res.stderr[:2000]
    assert len(lines[0]) < 600, lines[0][:2000]
    for name in names:
        assert name in lines[0], (name, lines[0])


BAD_FILES = [  # (config text, what the message names)
    # 1. one project loader: duplicate keys, no base 60, no aliases/tags, 1.2 booleans
    (GOOD + "system:\n  particles: 3\n", ("system:", "appears twice", "lines 1 and 5")),
    (
        "system: {particles: 2, dimensions: 2, omega: 1.0, omega: 2.0}\n",
        ("system.omega", "appears twice"),
    ),
    (GOOD + "sampler:\n  thermalization: 1:0\n", ("sampler.thermalization",)),
    (GOOD + "production:\n  observables: yes\n", ("production.observables",)),
    (GOOD + BOMB, ("anchor", "line 5")),
    (GOOD + "optimizer:\n  iterations: !!int x\n", ("tag", "line 6")),
    (GOOD + "wavefunction:\n  hidden: " + "[" * 3000 + "\n", ("nested deeper",)),
    (GOOD + "output:\n  path: 'a\x00b'\n", ("line 6",)),  # NUL in the YAML text
    # 2. every value checked generically; odd structures
    (GOOD.replace("1.0", "1" + "0" * 400), ("system.omega", "finite number")),
    (GOOD.replace("2\n", "1" + "0" * 5000 + "\n", 1), ("system.particles", "out of range")),
    (
        GOOD + "sampler:\n  walkers_per_rank: 9223372036854775808\n",
        ("sampler.walkers_per_rank", "out of range"),
    ),
    (GOOD + "optimizer:\n  learning_rate: .inf\n", ("optimizer.learning_rate", "finite")),
    (GOOD + "output:\n  max_walltime: " + "9" * 5000 + ":00:00\n", ("output.max_walltime",)),
    (GOOD + 'output:\n  path: "a\\0b"\n', ("output.path", "NUL")),
    (GOOD + "wavefunction:\n  1: 2\n", ("wavefunction.1",)),
    (GOOD + "wavefunction:\n  null: 2\n", ("wavefunction.None",)),
    (GOOD + "sampler: [1, 2]\n", ("sampler:", "mapping")),
    ("- 1\n- 2\n", ("mapping of sections",)),
]


@pytest.mark.parametrize("text,names", BAD_FILES)
def test_bad_config_file_exits_2_in_one_line(tmp_path, text, names):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    started = time.monotonic()
    assert_bad_input(pvmc("validate", path), *names)
    assert time.monotonic() - started < 60


def test_bad_files_exit_2(tmp_path):
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00garbage\x81")
    assert_bad_input(pvmc("validate", tmp_path / "bin.yaml"), "bin.yaml", "not UTF-8")
    assert_bad_input(pvmc("validate", tmp_path), str(tmp_path), "is a directory")


BAD_OVERRIDES = [
    ("system.particles=1:0", ("system.particles",)),  # 60 in YAML 1.1
    ("system.omega=1" + "0" * 400, ("system.omega", "finite number")),
    ("system.particles=1" + "0" * 5000, ("system.particles", "out of range")),
    ("system.omega=!!float x", ("--set", "tag")),
    ("system.omega={a: 1, a: 2}", ("appears twice", "--set")),
    ("production.store_components=on", ("production.store_components",)),
    ("output=x", ("--set", "section.key")),
    # a count given as a float: only a whole number a double holds exactly
    ("production.samples=1.5", ("production.samples", "fractional part")),
    ("production.samples=4096.5e0", ("production.samples", "fractional part")),
    ("production.samples=1e400", ("production.samples", "not a finite number")),
    ("production.samples=1e17", ("production.samples", "2^53", "digits only")),
    ("production.samples=1e19", ("production.samples", "out of range")),
]


@pytest.mark.parametrize("override,names", BAD_OVERRIDES)
def test_bad_override_exits_2_and_writes_nothing(tmp_path, override, names):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + f"output:\n  path: {tmp_path / 'out.h5'}\n")
    assert_bad_input(pvmc("run", path, "--set", override), *names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_output_option_on_a_section_that_is_not_a_mapping(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "output: 0\n")  # -o used to replace it silently
    assert_bad_input(pvmc("validate", path, "-o", tmp_path / "x.h5"), "output:")


def test_yaml_12_spellings_are_accepted(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        GOOD + "optimizer:\n  learning_rate: 1e-3\n  iterations: 010\n"
        "output:\n  max_walltime: 12:00:00\n"
    )
    cfg = load_config(path)
    assert cfg.optimizer.learning_rate == 1e-3 and cfg.optimizer.iterations == 10
    assert cfg.output.max_walltime == "12:00:00"
    cfg = load_config(path, ["output.max_walltime=1:00:00", "production.observables=False"])
    assert cfg.output.max_walltime == "1:00:00" and cfg.production.observables is False
    raw = {
        "system": {"particles": 2, "dimensions": 2, "omega": 1},
        "output": {"max_walltime": 43200},
    }
    assert from_dict(raw).output.max_walltime == "12:00:00"  # seconds, as YAML 1.1 reads


def test_counts_written_as_whole_floats_are_integers(tmp_path):
    """1e6, 1.0e6 and 4096.0 are how YAML users write counts: integer keys take them
    (in the file, with --set, and in the train config, the same machinery)."""
    path = tmp_path / "c.yaml"
    path.write_text(GOOD + "production:\n  samples: 1e6\noptimizer:\n  iterations: 4096.0\n")
    cfg = load_config(path, ["sampler.walkers_per_rank=1.6e1"])
    assert cfg.production.samples == 1_000_000 and type(cfg.production.samples) is int
    assert cfg.optimizer.iterations == 4096 and type(cfg.optimizer.iterations) is int
    assert cfg.sampler.walkers_per_rank == 16
    assert "samples: 1000000\n" in cfg.to_yaml()
    res = pvmc("validate", path, "--set", "production.samples=1.0e6", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "samples: 1000000\n" in res.stdout

    from parallel_vmc.generative import config as gconfig

    train = tmp_path / "t.yaml"
    train.write_text("data:\n  name: bars_stripes\n  size: 3\ntraining:\n  epochs: 1e2\n")
    assert gconfig.load(str(train)).training.epochs == 100


def test_loader_resolves_only_what_configs_need():
    assert yaml.load(
        "a: [yes, no, on, off, y, 1:0, 0x10, 2024-01-01, '=']", Loader=ConfigLoader
    ) == {"a": ["yes", "no", "on", "off", "y", "1:0", "0x10", "2024-01-01", "="]}
    assert yaml.load("[true, False, ~, null, 1e-3, -.5, +7, 0777]", Loader=ConfigLoader) == [
        True,
        False,
        None,
        None,
        1e-3,
        -0.5,
        7,
        777,
    ]
    started = time.monotonic()
    with pytest.raises(yaml.YAMLError, match="anchor"):
        yaml.load(BOMB, Loader=ConfigLoader)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("path", ["09", "1e3", "yes", "1:0", "on", "1_0", "null", "é.h5"])
def test_stored_config_reads_back_the_same_with_either_loader(path):
    """The resolved YAML quotes text that either YAML 1.1 or ConfigLoader would read
    as something else (`pvmc resume` uses one, the analysis package the other)."""
    cfg = from_dict(
        {"system": {"particles": 2, "dimensions": 2, "omega": 1}, "output": {"path": path}}
    )
    text = cfg.to_yaml()
    assert config_from_yaml_text(text) == cfg
    assert yaml.safe_load(text) == cfg.to_dict()


def test_stored_config_errors_are_config_errors():
    with pytest.raises(ConfigError, match="appears twice"):
        config_from_yaml_text(GOOD + GOOD)


# ------------------------------------------------------------------ pvmc bench
def test_bench_set_needs_a_config():
    assert_bad_input(pvmc("bench", "--set", "system.particles=3"), "--set", "CONFIG")


@pytest.mark.parametrize(
    "args,names",
    [
        (("-P", "0"), ("-P 0", "system.particles")),
        (("-D", "7"), ("-D 7", "system.dimensions")),
        (("-H", "-1"), ("-H -1", "wavefunction.hidden")),
        (("--walkers", "0"), ("--walkers 0",)),
        (("--moves", "nan"), ("--moves nan",)),
        (("no-such.yaml",), ("config file not found", "no-such.yaml")),
        (("--scan-particles", "2,7"), ("--scan-particles 7", "closed shell", "2, 6, 12, 20")),
        (("-D", "3", "--scan-particles", "2,6"), ("--scan-particles 6", "2, 8, 20")),
        (("--scan-particles", "6"), ("--scan-particles '6'", "at least two", "2,6,12,20")),
        (("--scan-particles", "2,x"), ("--scan-particles '2,x'", "allowed")),
        (("--scan-particles", "2,6", "-P", "6"), ("--scan-particles 2,6", "-P 6", "one of them")),
        (
            ("--efficiency", "--samplers", "metropolis,langevin"),
            ("--samplers 'metropolis,langevin'", "metropolis, importance, gibbs"),
        ),
        (("--efficiency", "--samples", "0"), ("--samples 0", ">= 1")),
        (("--efficiency", "--scan-particles", "2,6"), ("--efficiency", "one of them")),
    ],
)
def test_bench_bad_options_exit_2(args, names):
    assert_bad_input(pvmc("bench", *args), *names)


def test_bench_bad_choice_is_argparse_exit_2():
    res = pvmc("bench", "--sampler", "foo")
    assert res.returncode == 2 and "--sampler" in res.stderr
    assert "Traceback" not in res.stderr


def test_bench_reference_that_is_not_c_source(tmp_path):
    (tmp_path / "some.yaml").write_text(GOOD)
    assert_bad_input(
        pvmc("bench", "--reference", tmp_path / "some.yaml"), "--reference", "some.yaml"
    )
    assert_bad_input(pvmc("bench", "--reference", tmp_path / "none.c"), "--reference", "not found")


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="no C compiler")
def test_bench_reference_that_fails(tmp_path):
    (tmp_path / "bad.c").write_text("int main(void) { syntax error }\n")
    res = pvmc("bench", "--reference", tmp_path / "bad.c", "--moves", "1e3", "--repeats", "1")
    assert_bad_input(res, "--reference", "bad.c", "error")  # the compiler's first error
    (tmp_path / "quiet.c").write_text("int main(void) { return 3; }\n")
    res = pvmc("bench", "--reference", tmp_path / "quiet.c", "--moves", "1e3", "--repeats", "1")
    assert_bad_input(res, "--reference", "exited with code 3", "ns/move")
    assert "problem:" not in res.stdout  # refused before any work


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="no C compiler")
def test_bench_reference_for_another_problem(tmp_path):
    """A reference without determinants (no tuned step=) against 6 fermions, and a
    fermion one against bosons: exit 2 before any work."""
    (tmp_path / "rbm.c").write_text(
        '#include <stdio.h>\nint main(void) { printf("acc=0.5  ns/move=10.0\\n"); return 0; }\n'
    )
    res = pvmc("bench", "-P", "6", "--reference", tmp_path / "rbm.c")
    assert_bad_input(res, "--reference 'rbm.c'", "6 fermions", "--statistics bosons")
    (tmp_path / "fermi.c").write_text(
        '#include <stdio.h>\nint main(void) { printf("step=2.0  ns/move=10.0\\n"); return 0; }\n'
    )
    res = pvmc("bench", "--statistics", "bosons", "--reference", tmp_path / "fermi.c")
    assert_bad_input(res, "--reference 'fermi.c'", "bosons", "rbm_vmc_ref.c")
    assert "problem:" not in res.stdout


# ------------------------------------------------------------------ dimensions
QUICKSTART = os.path.join(ROOT, "configs", "quickstart.yaml")


@pytest.mark.parametrize(
    "override,names",
    [
        ("system.dimensions=1", ("system.interaction", "coulomb", "not integrable in 1D")),
        ("production.axial_density=true", ("production.axial_density", "dimensions 3")),
    ],
)
def test_what_the_dimension_does_not_have_is_refused(tmp_path, override, names):
    """1D Coulomb electrons (1/|x| is not integrable: the summary reported an infinite
    energy with an interaction +- error) and the axial densities outside 3D were
    accepted; validate and run refuse them, and nothing is written."""
    out = tmp_path / "out.h5"
    for command in ("validate", "run"):
        res = pvmc(command, QUICKSTART, "--set", override, "-o", out, cwd=tmp_path)
        assert_bad_input(res, *names)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_every_term_is_refused_outside_the_dimensions_its_registry_entry_names():
    """The registry says where a term is offered (a new term states it too); the
    config refuses it elsewhere naming its key and why, and takes it where offered."""
    from parallel_vmc.hamiltonian import terms

    for t in terms.TERMS:
        key = "trap" if t.role == "external" else "interaction"
        for D in (1, 2, 3):
            raw = {
                "system": {
                    "particles": 2,
                    "dimensions": D,
                    "omega": 1.0,
                    "interaction": "none",
                    key: t.name,
                    "statistics": "bosons",
                    "hard_sphere_radius": 0.01 if t.name == "hard_sphere" else None,
                }
            }
            if D in t.dimensions:
                assert getattr(from_dict(raw).system, key) == t.name
                continue
            with pytest.raises(ConfigError) as err:
                from_dict(raw)
            assert str(err.value).startswith(f"system.{key}: {t.name} is not offered")
            assert t.why_not and t.why_not in str(err.value)
    assert terms.offered("interaction", 1) == ("hard_sphere", "none")


# ------------------------------------------------------------------ hard-sphere starts
ELLIPTIC = os.path.join(ROOT, "configs", "bosons3d_N10_elliptic.yaml")


@pytest.mark.parametrize(
    "overrides",
    [
        ["system.hard_sphere_radius=1000"],
        ["system.hard_sphere_radius=0.8", "system.particles=200"],
    ],
)
def test_walkers_that_cannot_be_placed_are_refused_by_validate_and_run(tmp_path, overrides):
    """Exit 1 with a traceback around the ConfigError at the start of the run, and
    validate accepted the config: now both exit 2 in one line naming the key and the
    packing fraction, and nothing is written."""
    sets = [a for o in overrides for a in ("--set", o)]
    for command in ("validate", "run"):
        res = pvmc(command, ELLIPTIC, *sets, "-o", tmp_path / "out.h5", cwd=tmp_path)
        assert_bad_input(res, "system.hard_sphere_radius: ", "packing fraction", "allowed: up to")
    assert list(tmp_path.iterdir()) == []


def test_a_start_that_fails_after_the_check_is_a_one_line_refusal(tmp_path):
    """Should a config within the packing limit still fail to start (more particles or
    walkers than the limit was measured with), the run is refused on every rank before
    it writes anything, with the one line that names the key; pvmc run reports it
    as bad input (exit 2)."""
    import dataclasses

    from conftest import make_config

    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run, RunRefused

    cfg = make_config(
        tmp_path / "r.h5",
        system={
            "particles": 10,
            "dimensions": 3,
            "interaction": "hard_sphere",
            "hard_sphere_radius": 0.01,
            "statistics": "bosons",
        },
    )
    dense = cfg.replace(system=dataclasses.replace(cfg.system, hard_sphere_radius=50.0))
    with pytest.raises(RunRefused) as refused:
        Run(dense, SerialComm(), progress=False)
    message = str(refused.value)
    assert message.startswith("system.hard_sphere_radius: 50: 4 of 4 walkers could not")
    assert "packing fraction" in message and len(message.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
