"""``pvmc dmc RUN.h5``: DMC on the trial function of a completed VMC run, into a new
file that records its source; the same bits as the DMC phase of one ``pvmc run``; and
bad input refused (exit 2) before anything is written."""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest
from conftest import make_config, pvmc_argv, run_config, subprocess_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_vmc.cli.main import main
from parallel_vmc.config.fields import ConfigError
from parallel_vmc.config.vmc import apply_overrides, from_dict
from parallel_vmc.runfile import schema as S

# The two-electron run of test_dmc.py (the same kernels), with a short DMC.
VMC = {
    "wavefunction": {"hidden": 2, "jastrow": "pade"},
    "optimizer": {"iterations": 20, "samples_per_iteration": 4096},
    "production": {"samples": 16384},
}
DMC = {"time_steps": [0.04, 0.02], "walkers": 200, "warmup_steps": 100, "steps": 300}
SETS = [f"dmc.{k}={v}" for k, v in DMC.items()]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def vmc_run(tmp_path_factory):
    """A completed VMC run without a dmc section."""
    d = tmp_path_factory.mktemp("vmc")
    return run_config(make_config(d / "vmc.h5", **VMC)).path


def sets_args(sets):
    return [a for s in sets for a in ("--set", s)]


def test_pvmc_dmc_equals_the_dmc_phase_of_one_run_and_records_its_source(tmp_path, vmc_run):
    """The new file holds the VMC run's data, /dmc and its source; the VMC file is not
    touched; /dmc has the bits of one ``pvmc run`` with the same dmc section (the
    phase starts from the same final state)."""
    before = digest(vmc_run)
    out = tmp_path / "from_vmc.h5"
    assert main(["dmc", vmc_run, "-o", str(out), "--quiet", *sets_args(SETS)]) == 0
    assert digest(vmc_run) == before
    one = run_config(make_config(tmp_path / "one.h5", **VMC, dmc=DMC)).path
    with h5py.File(out) as a, h5py.File(one) as b, h5py.File(vmc_run) as v:
        assert a.attrs[S.STATUS].decode() == S.COMPLETED
        assert a.attrs[S.DMC_SOURCE] == os.path.abspath(vmc_run)
        assert a.attrs[S.DMC_SOURCE_RUN_ID] == v.attrs[S.RUN_ID] != a.attrs[S.RUN_ID]
        np.testing.assert_array_equal(a["wavefunction/a"][()], v["wavefunction/a"][()])
        names = list(S.DMC_FIELDS) + [
            f"{S.STEP_GROUP % k}/{name}" for k in range(2) for name in S.DMC_SERIES
        ]
        for name in names:
            assert a[S.DMC][name][()].tobytes() == b[S.DMC][name][()].tobytes(), name
        assert list(a["segments/ended"].asstr()[:]) == ["completed", "completed"]


def test_pvmc_info_shows_the_dmc_table_and_the_source(tmp_path, vmc_run, capsys):
    out = tmp_path / "d.h5"
    assert main(["dmc", vmc_run, "-o", str(out), "--quiet", *sets_args(SETS)]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"dmc from      {os.path.abspath(vmc_run)}" in text
    assert "dmc tau 0.04" in text and "dmc tau 0.02" in text and "(tau -> 0)" in text


@pytest.mark.parametrize(
    "extra,message",
    [
        ([], "dmc.time_steps is null"),
        (["--set", "system.omega=2", *sets_args(SETS)], "only dmc.* and output.*"),
        (["--set", "dmc.time_steps=[0.01, -1]"], "dmc.time_steps[1]"),
        (["--set", "dmc.bogus=1", *sets_args(SETS[:1])], "dmc.bogus"),
    ],
)
def test_bad_pvmc_dmc_input_exits_2_naming_the_key_and_writes_nothing(
    tmp_path, vmc_run, capsys, extra, message
):
    out = tmp_path / "never.h5"
    assert main(["dmc", vmc_run, "-o", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_pvmc_dmc_refuses_an_unfinished_run_an_existing_output_and_itself(
    tmp_path, vmc_run, capsys
):
    stopped = tmp_path / "stopped.h5"
    with h5py.File(vmc_run) as src, h5py.File(stopped, "w") as dst:
        for key, value in src.attrs.items():
            dst.attrs[key] = value
        dst.attrs.modify(S.STATUS, S.INTERRUPTED.encode())
    assert main(["dmc", str(stopped), *sets_args(SETS)]) == 2
    assert "needs a completed VMC run" in capsys.readouterr().err
    taken = tmp_path / "taken.h5"
    taken.write_bytes(b"keep me")
    assert main(["dmc", vmc_run, "-o", str(taken), *sets_args(SETS)]) == 2
    assert "exists" in capsys.readouterr().err and taken.read_bytes() == b"keep me"
    assert main(["dmc", vmc_run, "-o", vmc_run, *sets_args(SETS)]) == 2
    assert "not the VMC run itself" in capsys.readouterr().err


KEYS = ("time_steps", "walkers", "warmup_steps", "steps", "feedback", "bias_window")
VALUES = st.one_of(
    st.integers(-10, 3),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.floats(-1, 1), max_size=3).map(lambda v: str(v)),
    st.just("[]"),
    st.just("null"),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(KEYS), value=VALUES)
def test_generated_bad_dmc_values_exit_2_before_any_file(tmp_path, vmc_run, capsys, key, value):
    """Any value the config check refuses (the same check as pvmc run's) makes
    pvmc dmc exit 2 naming the key, with no file written; values it accepts are not
    run here."""
    sets = [s for s in SETS if not s.startswith(f"dmc.{key}=")] + [f"dmc.{key}={value}"]
    with h5py.File(vmc_run) as h5:
        stored = h5.attrs[S.CONFIG]
    from parallel_vmc.config.fields import parse_yaml

    try:
        from_dict(apply_overrides(parse_yaml(stored, "stored"), sets))
    except ConfigError:
        pass
    else:
        return  # a good value (possibly a long run): not this test's business
    out = tmp_path / f"x{abs(hash((key, str(value))))}.h5"
    assert main(["dmc", vmc_run, "-o", str(out), *sets_args(sets)]) == 2
    assert f"dmc.{key}" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="no mpiexec (the 'mpi' extra)")
def test_three_ranks_oversubscribed_agree_with_one(tmp_path, vmc_run):
    """200 walkers on 3 ranks (67, 67, 66: the rank count does not divide the
    population) on the 2-core machine: the run completes and its energies agree with
    one rank's within the errors. Every walker's streams do not depend on the rank
    count, so the two differ only where the order of a sum moved a tooth of the comb."""
    one = tmp_path / "one.h5"
    assert main(["dmc", vmc_run, "-o", str(one), "--quiet", *sets_args(SETS)]) == 0
    three = tmp_path / "three.h5"
    argv = pvmc_argv(3, "dmc", vmc_run, "-o", three, "--quiet", *sets_args(SETS))
    res = subprocess.run(argv, env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    with h5py.File(one) as a, h5py.File(three) as b:
        assert b["segments/mpi_size"][-1] == 3
        for k in range(2):
            e1, e3 = a[S.DMC]["energy"][k], b[S.DMC]["energy"][k]
            err = math.hypot(a[S.DMC]["error"][k], b[S.DMC]["error"][k])
            assert abs(e1 - e3) < 3 * err, (k, e1, e3, err)


def test_pvmc_dmc_makes_the_output_directory_and_drops_the_sources_own_dmc(tmp_path, vmc_run):
    """-o into a directory that does not exist yet (as pvmc run allows); a source that
    ran its own DMC: its /dmc is not copied as this file's result (checked on the
    prepared file, before the phase runs)."""
    from parallel_vmc.cli import dmc as cli_dmc

    first = tmp_path / "new" / "dir" / "first.h5"
    assert main(["dmc", vmc_run, "-o", str(first), "--quiet", *sets_args(SETS)]) == 0
    with h5py.File(first) as h5:
        assert S.DMC in h5
    cfg, state = cli_dmc._plan(str(first), str(tmp_path / "second.h5"), [])
    cli_dmc._derive(str(first), str(tmp_path / "second.h5"), cfg, state)
    with h5py.File(tmp_path / "second.h5") as h5:
        assert S.DMC not in h5 and h5.attrs[S.DMC_SOURCE] == str(first)
    assert sorted(os.listdir(tmp_path)) == ["new", "second.h5", "second.h5.ckpt"]


def test_pvmc_dmc_refuses_a_bad_walltime_and_the_source_through_a_symlink(
    tmp_path, vmc_run, capsys
):
    out = tmp_path / "never.h5"
    assert main(["dmc", vmc_run, "-o", str(out), "--max-walltime", "5 min", *sets_args(SETS)]) == 2
    assert "--max-walltime" in capsys.readouterr().err and not out.exists()
    link = tmp_path / "link"
    link.symlink_to(os.path.dirname(vmc_run))
    same = link / os.path.basename(vmc_run)
    before = digest(vmc_run)
    assert main(["dmc", vmc_run, "-o", str(same), "--overwrite", *sets_args(SETS)]) == 2
    assert "not the VMC run itself" in capsys.readouterr().err and digest(vmc_run) == before
