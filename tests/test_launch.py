"""The launcher check (N tasks started, MPI connected 1), `pvmc mpi` and
`pvmc info --progress`: the program side of the job templates."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from parallel_vmc.parallel import LAUNCHER_SIZES, launch_leader, launch_problem

NAMES = [name for name, _ in LAUNCHER_SIZES]


def pvmc(*args, **env):
    from conftest import subprocess_env

    return subprocess.run(
        [sys.executable, "-m", "parallel_vmc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(**env),
    )


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(NAMES), value=st.text(max_size=6), size=st.integers(1, 4))
def test_a_task_count_above_one_with_one_mpi_process_is_refused(name, value, size):
    problem = launch_problem(size, {name: value})
    expected = size == 1 and value.isascii() and value.isdigit() and int(value) > 1
    assert (problem is not None) == expected, (name, value, size, problem)
    if expected:
        assert f"{name}={value}" in problem and "srun --mpi=" in problem


def test_a_task_farm_may_opt_out():
    assert launch_problem(1, {"SLURM_STEP_NUM_TASKS": "8", "PVMC_INDEPENDENT_TASKS": "1"}) is None


def test_only_task_zero_reports():
    assert launch_leader({})
    assert launch_leader({"SLURM_PROCID": "0", "PMI_RANK": ""})
    assert not launch_leader({"SLURM_PROCID": "1"})
    assert not launch_leader({"OMPI_COMM_WORLD_RANK": "3"})


def test_run_under_a_mismatched_launcher_exits_2_and_writes_nothing(tmp_path):
    from conftest import make_config

    cfg = make_config(tmp_path / "r.h5")
    (tmp_path / "c.yaml").write_text(cfg.to_yaml())
    for command in (["run", tmp_path / "c.yaml"], ["validate", tmp_path / "c.yaml"]):
        res = pvmc(*command, SLURM_STEP_NUM_TASKS="2", SLURM_PROCID="0")
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith("pvmc: error: srun started this process as one of 2")
        assert "Traceback" not in res.stderr
        # the other tasks exit 2 too, silently: one message per launch, not per task
        quiet = pvmc(*command, SLURM_STEP_NUM_TASKS="2", SLURM_PROCID="1")
        assert quiet.returncode == 2 and quiet.stderr == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


def test_mpi_names_the_library_and_the_srun_option():
    res = pvmc("mpi")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("library ")
    option = pvmc("mpi", "--srun-option").stdout.strip()
    from parallel_vmc.parallel import library_name

    if "MPICH" in library_name():
        assert option == "--mpi=pmi2"
    assert option in ("", "--mpi=pmi2", "--mpi=pmix")


def test_a_run_after_pvmc_info_in_one_process_initialises_mpi(tmp_path):
    """`pvmc info` and `pvmc mpi` import mpi4py without initialising MPI; a run after
    them in the same process (in-process callers of cli.main: info, then resume) used
    to abort in MPI's first call. In a fresh process, as the order of tests hides it."""
    script = (
        "import sys\n"
        "from parallel_vmc.parallel import library_name, world\n"
        "library_name(initialize=False)\n"
        "from mpi4py import MPI\n"
        "assert not MPI.Is_initialized()\n"
        "comm = world()\n"
        "print(comm.size, comm.allreduce_max(2.5), MPI.Is_initialized())\n"
    )
    from conftest import subprocess_env

    res = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["1", "2.5", "True"]


def test_info_progress_follows_the_checkpoint(tmp_path, monkeypatch):
    from conftest import interrupted_run, make_config, run_config

    cfg = make_config(tmp_path / "r.h5", optimizer={"iterations": 6})
    interrupted_run(cfg, monkeypatch, at_call=3)
    res = pvmc("info", "--progress", cfg.output.path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("optimize ") and "/6 iterations" in res.stdout
    done = make_config(tmp_path / "d.h5")
    run_config(done)
    assert pvmc("info", "--progress", done.output.path).stdout == "completed\n"
    assert pvmc("info", "--progress", tmp_path / "missing.h5").returncode == 2
