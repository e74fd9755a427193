"""Command line: bad input exits 2 naming the key, nothing written or overwritten."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import SPEC, from_dict, load_config

GOOD = {"system": {"particles": 2, "dimensions": 2, "omega": 1.0}}


def pvmc(*args, cwd=None):
    from conftest import subprocess_env

    return subprocess.run(
        [sys.executable, "-m", "parallel_vmc", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )


def write(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = [
    ({"system": {"particles": "two", "dimensions": 2, "omega": 1.0}}, "system.particles"),
    ({"system": {"particles": 2, "dimensions": 2, "omega": 1.0, "colour": 1}}, "system.colour"),
    ({"system": {"particles": 2, "dimensions": 2, "omega": -1}}, "system.omega"),
    ({"system": {"particles": 2, "dimensions": 4, "omega": 1.0}}, "system.dimensions"),
    ({**GOOD, "wavefunction": {"hidden": 0}}, "wavefunction.hidden"),
    ({**GOOD, "sampler": {"method": "gibbbs"}}, "sampler.method"),
    # Gibbs sampling draws F = |psi|^2 only for psi: sqrt without a Jastrow factor.
    (
        {**GOOD, "sampler": {"method": "gibbs"}, "wavefunction": {"jastrow": "pade"}},
        ("sampler.method", "wavefunction.jastrow"),
    ),
    (
        {**GOOD, "sampler": {"method": "gibbs"}, "wavefunction": {"psi": "full"}},
        ("sampler.method", "wavefunction.psi"),
    ),
    ({**GOOD, "optimizer": {"learning_rate": True}}, "optimizer.learning_rate"),
    ({**GOOD, "output": {"max_walltime": "12h"}}, "output.max_walltime"),
    ({**GOOD, "optimiser": {}}, "optimiser"),
    ({"system": {"particles": 2, "dimensions": 2}}, "system.omega"),
    (
        {
            "system": {"particles": 2, "dimensions": 1, "omega": 1.0, "interaction": "none"},
            "wavefunction": {"jastrow": "pade"},
        },
        "wavefunction.jastrow",
    ),
    ({**GOOD, "wavefunction": {"jastrow": "slater"}}, "wavefunction.jastrow"),
]


@pytest.mark.parametrize("raw,key", BAD)
def test_bad_config_exits_2_naming_the_key(tmp_path, raw, key):
    out = tmp_path / "out.h5"
    raw = {**raw, "output": {**raw.get("output", {}), "path": str(out)}}
    for command in ("run", "validate"):
        res = pvmc(command, str(write(tmp_path, raw)))
        assert res.returncode == 2, res.stderr
        for name in (key,) if isinstance(key, str) else key:
            assert name in res.stderr
        assert not out.exists()


def test_missing_config_file(tmp_path):
    res = pvmc("run", str(tmp_path / "nope.yaml"))
    assert res.returncode == 2
    assert "config file not found" in res.stderr and "nope.yaml" in res.stderr


def test_bad_override_names_the_key(tmp_path):
    path = write(tmp_path, GOOD)
    res = pvmc("validate", str(path), "--set", "system.omega=-2")
    assert res.returncode == 2 and "system.omega" in res.stderr
    res = pvmc("validate", str(path), "--set", "sampler.nothing=1")
    assert res.returncode == 2 and "sampler.nothing" in res.stderr
    res = pvmc("validate", str(path), "--set", "justtext")
    assert res.returncode == 2


def test_existing_output_is_never_touched(tmp_path):
    out = tmp_path / "precious.h5"
    out.write_bytes(b"results of last night")
    before = os.stat(out)
    path = write(tmp_path, {**GOOD, "output": {"path": str(out)}})
    res = pvmc("run", str(path))
    assert res.returncode == 2
    assert "exists" in res.stderr and "--overwrite" in res.stderr
    # A bad config with an existing output: also exit 2 and untouched.
    res = pvmc("run", str(path), "--set", "system.dimensions=4")
    assert res.returncode == 2
    assert out.read_bytes() == b"results of last night"
    assert os.stat(out).st_mtime_ns == before.st_mtime_ns


def test_validate_prints_the_resolved_config(tmp_path):
    res = pvmc(
        "validate", str(write(tmp_path, GOOD)), "--set", "wavefunction.hidden=6", "-o", "x.h5"
    )
    assert res.returncode == 0, res.stderr
    resolved = yaml.safe_load(res.stdout)
    assert resolved["wavefunction"]["hidden"] == 6
    assert resolved["output"]["path"] == "x.h5"
    assert resolved["sampler"]["walkers_per_rank"] == 16
    assert from_dict(resolved).to_dict() == resolved


def test_unknown_command_line_option_exits_2():
    assert pvmc("run", "--frobnicate").returncode == 2


def test_config_objects_are_frozen():
    cfg = from_dict(GOOD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.system.omega = 2.0


def test_int_accepted_for_float_but_not_bool_for_int():
    assert from_dict({"system": {"particles": 2, "dimensions": 2, "omega": 2}}).system.omega == 2.0
    with pytest.raises(ConfigError, match="system.particles"):
        from_dict({"system": {"particles": True, "dimensions": 2, "omega": 2}})


def test_shipped_configs_are_valid():
    root = os.path.join(os.path.dirname(__file__), "..", "configs")
    names = [n for n in os.listdir(root) if n.endswith(".yaml")]
    assert "quickstart.yaml" in names
    from parallel_vmc.generative import config as gconfig

    for name in names:  # train_*.yaml: the generative side's configs (pvmc train)
        (gconfig.load if name.startswith("train_") else load_config)(os.path.join(root, name))


CONFIG_DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "config.md")


def test_config_docs_document_every_key():
    page = open(CONFIG_DOC, encoding="utf-8").read()
    for section, fields in SPEC.items():
        for key in fields:
            assert f"`{section}.{key}`" in page, f"{section}.{key} missing from docs/config.md"


def test_config_docs_table_is_generated_from_the_spec():
    from parallel_vmc.config.vmc import reference_table

    page = open(CONFIG_DOC, encoding="utf-8").read()
    block = page.split("<!-- config-table")[1].split("-->", 1)[1].split("<!-- /config-table")[0]
    assert block.strip() == reference_table().strip()


def test_info_on_a_run_file_and_on_bad_files(tmp_path):
    from conftest import make_config, run_config

    cfg = make_config(tmp_path / "r.h5")
    run_config(cfg)
    res = pvmc("info", cfg.output.path)
    assert res.returncode == 0, res.stderr
    assert "completed" in res.stdout and "segment 0" in res.stdout
    segment = next(line for line in res.stdout.splitlines() if line.startswith("segment 0"))
    assert segment.endswith(": completed")  # not "completed, at completed"
    assert pvmc("info", str(tmp_path / "missing.h5")).returncode == 2
    (tmp_path / "text.h5").write_text("not hdf5")
    res = pvmc("info", str(tmp_path / "text.h5"))
    assert res.returncode == 2 and "not an HDF5 file" in res.stderr
    import h5py

    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    res = pvmc("info", str(tmp_path / "other.h5"))
    assert res.returncode == 2 and "not a pvmc run file" in res.stderr


@pytest.mark.parametrize(
    "override,key",
    [
        ("production.samples=32", "production.samples"),
        ("seed=99999999999999999999", "seed"),
        ("output.path=''", "output.path"),
    ],
)
def test_more_bad_values_exit_2(tmp_path, override, key):
    res = pvmc("run", str(write(tmp_path, GOOD)), "--set", override)
    assert res.returncode == 2, res.stderr
    assert key in res.stderr
    assert not list(tmp_path.glob("*.h5"))


def _snapshot(directory):
    """Every file's bytes and mtime, to prove nothing was modified."""
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in directory.iterdir()}


def test_resume_bad_input_exits_2_and_modifies_nothing(tmp_path):
    import h5py
    from conftest import make_config, run_config

    done = make_config(tmp_path / "done.h5")
    run_config(done)
    (tmp_path / "text.h5").write_text("not hdf5")
    with h5py.File(tmp_path / "other.h5", "w") as h5:
        h5["x"] = 1
    # A run interrupted by a stop signal, then its checkpoint deleted.
    cut = make_config(tmp_path / "cut.h5", optimizer={"iterations": 200})
    cmd = (
        "import os, signal, conftest, parallel_vmc.run.driver as d\n"
        "from parallel_vmc.config.vmc import load_config\n"
        "cfg = load_config(os.environ['CFG'])\n"
        "orig = d.Run.optimize\n"
        "def opt(self):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    orig(self)\n"
        "d.Run.optimize = opt\n"
        "try:\n"
        "    conftest.run_config(cfg)\n"
        "except d.RunInterrupted:\n"
        "    pass\n"
    )
    cfg_path = tmp_path / "cut.yaml"
    cfg_path.write_text(cut.to_yaml())
    from conftest import subprocess_env

    subprocess.run(
        [sys.executable, "-c", cmd],
        check=True,
        cwd=tmp_path,
        env=subprocess_env(
            CFG=str(cfg_path),
            PYTHONPATH=os.path.dirname(__file__)
            + os.pathsep
            + os.path.dirname(os.path.dirname(__file__)),
        ),
    )
    with h5py.File(tmp_path / "cut.h5") as h5:
        assert h5.attrs["status"].decode() == "interrupted"
    for name in ("cut.h5.ckpt", "cut.h5.ckpt.prev"):  # no checkpoint, not even the previous
        if os.path.exists(tmp_path / name):
            os.remove(tmp_path / name)
    before = _snapshot(tmp_path)
    cases = [
        ("missing.h5", "not found"),
        ("text.h5", "not an HDF5 file"),
        ("other.h5", "not a pvmc run file"),
        ("cut.h5", "no usable checkpoint"),
    ]
    for name, message in cases:
        res = pvmc("resume", tmp_path / name)
        assert res.returncode == 2, (name, res.stdout, res.stderr)
        assert message in res.stderr and name in res.stderr, (name, res.stderr)
    assert pvmc("resume", tmp_path / "done.h5", "--max-walltime", "soon").returncode == 2
    assert _snapshot(tmp_path) == before


def test_info_status_and_resume_command(tmp_path):
    from conftest import make_config, run_config

    cfg = make_config(tmp_path / "r.h5")
    run_config(cfg)
    res = pvmc("info", "--status", cfg.output.path)
    assert res.returncode == 0 and res.stdout == "completed\n"
    assert pvmc("info", "--status", tmp_path / "nothing.h5").returncode == 2


def test_run_resume_refuses_a_different_config(tmp_path):
    from conftest import make_config, run_config

    cfg = make_config(tmp_path / "r.h5", optimizer={"iterations": 3})
    run_config(cfg)
    import h5py

    with h5py.File(cfg.output.path, "r+") as h5:  # pretend it was interrupted
        h5.attrs["status"] = "interrupted"
    other = write(tmp_path, {**GOOD, "output": {"path": str(cfg.output.path)}})
    res = pvmc("run", other, "--resume")
    assert res.returncode == 2
    assert "different config" in res.stderr and "optimizer.iterations" in res.stderr


def test_walltime_and_exponent_spellings_are_accepted(tmp_path):
    cfg = load_config(
        write(tmp_path, GOOD), ["output.max_walltime=12:00:00", "optimizer.learning_rate=1e-3"]
    )
    # YAML reads an unquoted 12:00:00 as 43200 seconds; 1e-3 (no dot) as a string.
    assert cfg.output.max_walltime == "12:00:00"
    assert cfg.optimizer.learning_rate == 1e-3
    with pytest.raises(ConfigError, match="output.max_walltime"):
        load_config(write(tmp_path, GOOD), ["output.max_walltime=00:00:00"])


def test_bench_prints_its_figures():
    """Not a timing test: the benchmark runs and reports every figure it promises."""
    res = pvmc("bench", "--moves", "2e4", "--repeats", "1", "--walkers", "4")
    assert res.returncode == 0, res.stderr
    for text in ("ns/move", "samples (sweeps) per second", "Allreduce of", "checkpoint ("):
        assert text in res.stdout, text


# A fermion reference (prints its tuned step=) with ns/move = 10 P: timed runs must get
# `P D H SWEEPS omega jastrow`, here omega 1 and no Jastrow (the check run gets 4).
FAKE_FERMION_REF = r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
  if (argc != 5 && !(argc == 7 && atof(argv[5]) == 1.0 && !strcmp(argv[6], "0"))) return 3;
  printf("P=%s  acc=0.480  step=2.500  cpu=99%%  ns/move=%d.0\n", argv[1], 10 * atoi(argv[1]));
  return 0;
}
"""
# -H 4: the P = 6 kernel is then the narrow one that test_slater and test_fermion_report
# compile too (H = P*D, the scan's default, was a Slater kernel of its own: 60-75 s)
SCAN = ("bench", "--scan-particles", "2,6", "-H", "4", "--moves", "2e4", "--repeats", "1")
SCAN += ("--walkers", "4")


def scan_rows(stdout: str) -> dict:
    """The scan table's rows by particle count: their numbers, '-' left as text."""
    rows = {}
    for line in stdout.splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = [c if c == "-" else float(c.rstrip("%")) for c in cells]
    return rows


def test_bench_scan_hidden_units_default_to_p_times_d():
    from parallel_vmc.bench import kernel as B
    from parallel_vmc.cli.main import build_parser

    args = build_parser().parse_args(["bench", "--scan-particles", "2,6,12", "-D", "2"])
    assert [B._config(args, P).wavefunction.hidden for P in (2, 6, 12)] == [4, 12, 24]
    args = build_parser().parse_args(["bench", "--scan-particles", "2,6", "-H", "4"])
    assert [B._config(args, P).wavefunction.hidden for P in (2, 6)] == [4, 4]


def test_bench_scan_prints_table_and_growth_exponent():
    res = pvmc(*SCAN)
    assert res.returncode == 0, res.stderr
    rows = scan_rows(res.stdout)
    assert sorted(rows) == [2, 6] and [r[1] for r in rows.values()] == [4, 4]  # -H 4
    for P, (_, _, ns, cpu, acc, step) in rows.items():  # fermions: step tuned to 50 %
        assert ns > 0 and cpu > 0 and abs(acc - 0.5) < 0.05 and step > 0, (P, rows[P])
    assert "growth exponent of ns/move with P" in res.stdout and ", C " not in res.stdout


@pytest.mark.skipif(not (shutil.which("gcc") or shutil.which("cc")), reason="no C compiler")
def test_bench_scan_with_reference_prints_c_columns_and_exponent(tmp_path):
    (tmp_path / "fake_ref.c").write_text(FAKE_FERMION_REF)
    res = pvmc(*SCAN, "--reference", tmp_path / "fake_ref.c")
    assert res.returncode == 0, res.stderr
    rows = scan_rows(res.stdout)
    assert [rows[P][6:10] for P in (2, 6)] == [[20.0, 0.48, 2.5, 99.0], [60.0, 0.48, 2.5, 99.0]]
    assert rows[6][10] == pytest.approx(rows[6][2] / 60.0, rel=1e-2)  # ours / C
    assert re.search(r"ours -?[0-9.]+, C 1\.00$", res.stdout.strip())  # C: 10 P


@pytest.mark.skipif(
    not (shutil.which("gcc") or shutil.which("cc")),
    reason="no C compiler (gcc or cc) on PATH to build the packaged reference slater",
)
def test_fermion_bench_prints_matching_acceptances_and_steps():
    """Both sides tune the step towards 50 % acceptance on the same problem (the
    packaged reference slater_vmc_ref.c, by its name)."""
    res = pvmc(
        "bench",
        "-P",
        "6",
        "--moves",
        "2e4",
        "--repeats",
        "1",
        "--walkers",
        "4",
        "--reference",
        "slater",
    )
    assert res.returncode == 0, res.stderr
    found = re.search(
        r"acceptance: ours ([0-9.]+) \(step ([0-9.]+)\), C ([0-9.]+) "
        r"\(step ([0-9.]+)\)",
        res.stdout,
    )
    assert found, res.stdout
    ours, step, c, c_step = map(float, found.groups())
    assert abs(ours - 0.5) < 0.05 and abs(c - 0.5) < 0.05, found.group(0)
    assert abs(step / c_step - 1) < 0.25, found.group(0)


def test_a_checkpoint_left_by_another_run_is_never_used(tmp_path, monkeypatch):
    """A new run at the same path removes an old RUN.h5.ckpt before it starts, and a
    checkpoint whose run_id differs from the file's is refused (exit 2)."""
    import io
    import shutil

    from conftest import make_config

    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run
    from parallel_vmc.runfile import checkpoint

    first = make_config(tmp_path / "a.h5", optimizer={"iterations": 3})
    Run(first, SerialComm(), stream=io.StringIO(), progress=False).execute()
    stale = tmp_path / "a.h5.ckpt"
    stale.write_bytes(b"left over")

    def dies(self):  # killed before the first checkpoint of the new run
        raise KeyboardInterrupt

    monkeypatch.setattr(Run, "checkpoint", dies)
    with pytest.raises(KeyboardInterrupt):
        Run(first, SerialComm(), overwrite=True, stream=io.StringIO(), progress=False).execute()
    assert not stale.exists()
    monkeypatch.undo()
    # Two interrupted runs; b.h5 gets a.h5's checkpoint.
    for name in ("a", "b"):
        cfg = make_config(tmp_path / f"{name}.h5", optimizer={"iterations": 3})
        Run(cfg, SerialComm(), overwrite=True, stream=io.StringIO(), progress=False).execute()
    import h5py

    for name in ("a", "b"):
        with h5py.File(tmp_path / f"{name}.h5", "r+") as h5:
            h5.attrs["status"] = "interrupted"
    # The completed runs removed their live checkpoints; put a's final state back
    # beside b.h5 as if it were b's.
    with h5py.File(tmp_path / "a.h5") as h5:
        attrs = dict(h5["checkpoint"].attrs)
        arrays = {}
        h5["checkpoint"].visititems(
            lambda n, o: arrays.__setitem__(n, o[()]) if isinstance(o, h5py.Dataset) else None
        )
    checkpoint.write(str(tmp_path / "b.h5.ckpt"), attrs, arrays)
    res = pvmc("resume", tmp_path / "b.h5")
    assert res.returncode == 2 and "belongs to another run" in res.stderr
    shutil.move(tmp_path / "b.h5.ckpt", tmp_path / "a.h5.ckpt")
    res = pvmc("info", tmp_path / "a.h5")
    assert res.returncode == 0 and "pvmc resume" in res.stdout


def test_a_closed_pipe_ends_info_and_analysis_quietly(tiny_config):
    """`pvmc info RUN.h5 | head -1`: the reader leaves early; no traceback, no claim
    that the file is damaged, exit code 141 (128 + SIGPIPE) as a shell tool gives."""
    from conftest import run_config, subprocess_env

    cfg = tiny_config(
        optimizer={"iterations": 2, "samples_per_iteration": 256},
        production={"samples": 512},
        sampler={"thermalization": 20},
    )
    run_config(cfg)
    for argv in (
        ["-m", "parallel_vmc", "info", cfg.output.path],
        ["-m", "analysis", cfg.output.path],
    ):
        child = subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=subprocess_env(),
            text=True,
        )
        child.stdout.close()  # the reader is gone before the first line (as `| head
        # -1` is after its line): every write fails, whatever the timing
        err = child.stderr.read()
        assert child.wait(timeout=120) == 141, err
        assert "Traceback" not in err and "damaged" not in err, err


def test_a_mean_that_is_not_finite_has_no_error_bar(tmp_path):
    """inf +- 0.13 claims a precision that does not exist: the summary's lines, the
    progress text and `pvmc info` write such a mean alone."""
    import math

    import h5py
    from conftest import make_config, run_config

    from parallel_vmc.run import report
    from parallel_vmc.stats.text import estimate

    assert estimate(1.25, 0.5, 3) == "1.250 +- 0.500"
    for mean in (math.inf, -math.inf, math.nan):
        assert estimate(mean, 0.1) == str(mean)
    assert estimate(1.0, math.nan) == "1.000000" and estimate(None, 0.1) == "-"
    s = {"energy": math.inf, "error": 0.13, "error_bootstrap": 0.12}
    assert "+-" not in report.energy_line(s) and "inf" in report.energy_line(s)
    assert "+-" in report.energy_line({**s, "energy": 3.0})
    est = {"energy": math.nan, "energy_error": 0.1, "variance": 0.0, "acceptance": 0.5}
    assert "+-" not in report.iteration_text(est)
    obs = {
        "scalars": {"interaction": {"mean": math.inf, "error": 0.13}},
        "attrs": {"energy_error_batch_means": 0.1, "energy_error_blocking": 0.1},
    }
    assert report.observable_lines(obs) == ["interaction   inf"]

    cfg = make_config(tmp_path / "r.h5", optimizer={"iterations": 1})
    run_config(cfg)
    with h5py.File(cfg.output.path, "r+") as h5:
        h5["summary"].attrs["energy"] = math.inf
        h5["optimization/energy"][0] = math.nan
    res = pvmc("info", cfg.output.path)
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line for line in res.stdout.splitlines()}
    assert "last energy nan" in lines["iterations"] and "+-" not in lines["iterations"]
    assert lines["energy"].split()[1] == "inf" and "+-" not in lines["energy"]


def test_resume_and_run_resume_agree_on_a_completed_run(tmp_path):
    """`pvmc resume` on a completed run exited 2 while `pvmc run --resume` exited 0: both
    now say so in one line and succeed (a requeued job resuming a finished run must not
    fail), and leave the file as it was."""
    from conftest import make_config, run_config

    cfg = make_config(tmp_path / "done.h5")
    run_config(cfg)
    config = write(tmp_path, {**yaml.safe_load(cfg.to_yaml())})
    before = _snapshot(tmp_path)
    line = f"pvmc: {cfg.output.path} is already completed; nothing to do\n"
    for args in (("resume", cfg.output.path), ("run", config, "--resume")):
        res = pvmc(*args)
        assert (res.returncode, res.stdout, res.stderr) == (0, line, ""), args
    assert _snapshot(tmp_path) == before


def test_messages_point_the_right_way(tmp_path, monkeypatch):
    """A directory or a checkpoint given to info (or resume) is named as such, with the
    run file to give; a config given to the other command of run and train says which
    command it is for; and when no one size key alone is the cause, the message names
    the keys that account for most of the shortfall (the parameter count of a huge
    wavefunction.hidden), not fewer samples."""
    from conftest import interrupted_run, make_config

    root = os.path.dirname(os.path.dirname(__file__))
    cfg = make_config(tmp_path / "r.h5", optimizer={"iterations": 5})
    interrupted_run(cfg, monkeypatch, at_call=2)
    before = _snapshot(tmp_path)
    for command in ("info", "resume"):
        res = pvmc(command, tmp_path)
        assert res.returncode == 2
        assert res.stderr.strip() == (
            f"pvmc: error: {tmp_path}: is a directory (it holds r.h5); give one run file"
        )
        res = pvmc(command, tmp_path / "r.h5.ckpt")
        assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
        assert f"a checkpoint of the run file {tmp_path / 'r.h5'}, not a run file" in res.stderr

    for command, config, other in (
        ("run", "train_bars3x3.yaml", "train"),
        ("train", "quickstart.yaml", "run"),
    ):
        path = os.path.join(root, "configs", config)
        res = pvmc(command, path, cwd=tmp_path)
        assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
        assert f"run it with: pvmc {other} {path}" in res.stderr
    assert _snapshot(tmp_path) == before

    # 10^15 hidden units and 10^15 samples: neither alone fits any machine
    res = pvmc(
        "validate",
        write(tmp_path, GOOD),
        "--set",
        "wavefunction.hidden=1000000000000000",
        "--set",
        "production.samples=1000000000000000",
        "-o",
        tmp_path / "big.h5",
    )
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "no one key alone makes it fit; most of it comes from wavefunction.hidden: " in (
        res.stderr
    )
    assert "(5000000000000004 parameters: " in res.stderr
    assert "reduce wavefunction.hidden and " in res.stderr
