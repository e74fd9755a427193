"""The job templates under a real one-node SLURM (marked `slurm`, run by .ci/run).

`tests/slurm_cluster.py` starts Debian's slurmctld, slurmd and munged on localhost
(installing them with apt-get when absent and root); without them every test here is
skipped with the reason. Each test submits the real templates from a copy of jobs/
and configs/ with sbatch, as a user would, and reads the job's log, exit code and run
file. The runs are the quick-start system, sized to last a few seconds to a minute.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from slurm_cluster import Cluster, Unavailable

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
RANKS = 2
SMALL = (
    "optimizer.iterations=5 optimizer.samples_per_iteration=2048 "
    "production.samples=8192 sampler.thermalization=100"
)
# About 12 ms per iteration on 2 ranks here: ITERATIONS(n) lasts n * 12 ms.
LONG = "optimizer.samples_per_iteration=32768 production.samples=65536 "
DONE_STATES = (
    "COMPLETED",
    "FAILED",
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "BOOT_FAIL",
    "DEADLINE",
)
_DROPPED_PREFIXES = (
    "PMI_",
    "PMIX_",
    "HYDRA_",
    "MPIR_",
    "OMPI_",
    "SLURM_",
    "SBATCH_",
    "PVMC_",
    "SCAN_",
)


def long_run(iterations: int) -> str:
    return LONG + f"optimizer.iterations={iterations}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    try:
        c = Cluster(tmp_path_factory.mktemp("slurm")).start()
    except Unavailable as exc:
        pytest.skip(f"no SLURM cluster could be started here: {exc}")
    yield c
    c.stop()


class Site:
    """A user's directory (jobs/, configs/, runs/) and the commands they type."""

    def __init__(self, cluster: Cluster, path: Path):
        self.cluster = cluster
        self.work = path
        shutil.copytree(ROOT / "jobs", path / "jobs", ignore=shutil.ignore_patterns("*.md"))
        (path / "configs").mkdir()
        shutil.copy(ROOT / "configs" / "quickstart.yaml", path / "configs")
        (path / "runs").mkdir()

    def env(self, **settings) -> dict:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(_DROPPED_PREFIXES)
            and k
            not in ("CONFIG", "OUTPUT", "OVERRIDES", "RESUME", "MAX_SEGMENTS", "CHAIN_SBATCH_ARGS")
        }
        env["PATH"] = os.pathsep.join([str(VENV_BIN), env.get("PATH", "")])
        if not (VENV_BIN / "pvmc").exists():
            env["PVMC_CMD"] = f"{sys.executable} -m parallel_vmc"
            env["PYTHONPATH"] = str(ROOT)
        env.update(self.cluster.env())
        env.update({k: str(v) for k, v in settings.items()})
        return env

    def sbatch(self, *args, **settings) -> str:
        res = self.cluster.run(
            ["sbatch", "--parsable", *args], cwd=self.work, env=self.env(**settings)
        )
        return res.stdout.strip().split(";")[0]

    def slurm(self, *cmd, check=True) -> str:
        return self.cluster.run(list(cmd), cwd=self.work, env=self.env(), check=check).stdout

    def job(self, ref: str) -> dict:
        """scontrol's fields of one job (JobState, ExitCode, Restarts, ...)."""
        text = self.slurm("scontrol", "show", "job", "-o", ref)
        return dict(re.findall(r"(\w+)=(\S*)", text.splitlines()[0]))

    def wait(self, ref: str, timeout: float = 240) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            info = self.job(ref)
            if info["JobState"] in DONE_STATES:
                return info
            time.sleep(0.5)
        raise AssertionError(
            f"job {ref} not done after {timeout} s: {self.job(ref)}\n{self.cluster.logs()}"
        )

    def wait_running(self, ref: str, timeout: float = 60) -> float:
        """Wait until the job runs; time.monotonic() when it was seen running."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.job(ref)["JobState"] == "RUNNING":
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"job {ref} did not start: {self.job(ref)}")

    def wait_for(self, path: Path, ref: str, timeout: float = 120) -> None:
        end = time.monotonic() + timeout
        while not path.exists():
            assert self.job(ref)["JobState"] in ("PENDING", "RUNNING"), self.job(ref)
            assert time.monotonic() < end, f"{path} did not appear"
            time.sleep(0.1)

    def jobs_named(self, name: str, since: str) -> list:
        """Ids of the jobs called name, from job `since` on (earlier tests' excluded)."""
        out = self.slurm("squeue", "-h", "--states=all", "-n", name, "-o", "%i")
        ids = sorted(out.split(), key=lambda j: int(j.split("_")[0]))
        return [j for j in ids if int(j.split("_")[0]) >= int(since)]

    def requeue(self, ref: str, timeout: float = 240) -> dict:
        """scontrol requeue a running job and wait for its second attempt to end.
        SLURM holds a requeued job for a while (its begin time moves on); once it
        is pending again the test sets its begin time to now."""
        self.slurm("scontrol", "requeue", ref)
        end, released = time.monotonic() + timeout, False
        while True:
            info = self.job(ref)
            if info["JobState"] in DONE_STATES and info["Restarts"] == "1":
                return info
            if info["JobState"] == "PENDING" and not released:
                self.slurm("scontrol", "update", f"JobId={ref}", "StartTime=now")
                released = True
            assert time.monotonic() < end, info
            time.sleep(0.5)

    def log(self, name: str) -> str:
        return (self.work / name).read_text()


@pytest.fixture
def site(cluster, tmp_path):
    s = Site(cluster, tmp_path)
    yield s
    cluster.run(["scancel", "--full", "--user", os.environ.get("USER", "root")], check=False)


def exit_code(info: dict) -> int:
    return int(info["ExitCode"].split(":")[0])


def status(path: Path) -> str:
    with h5py.File(path, "r", locking=False) as f:
        value = f.attrs["status"]
    return value.decode() if isinstance(value, bytes) else str(value)


def read(path: Path, name: str) -> np.ndarray:
    with h5py.File(path, "r", locking=False) as f:
        return f[name][()]


# ----------------------------------------------------------------------------- 1: launch


def test_single_runs_on_every_task_with_the_mpi_the_template_chooses(site):
    """Defect 1: with MpiDefault=none plain srun gave two 'rank 0 of 1' copies."""
    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:10:00",
        "jobs/single.sbatch",
        OUTPUT="runs/single.h5",
        OVERRIDES=SMALL,
    )
    info = site.wait(job)
    log = site.log(f"slurm-pvmc-{job}.out")
    assert exit_code(info) == 0, log
    assert re.search(r"srun --mpi=pmi2 .*pvmc.* run", log), log
    with h5py.File(site.work / "runs" / "single.h5", "r", locking=False) as f:
        assert int(f.attrs["mpi_size"]) == RANKS
    assert status(site.work / "runs" / "single.h5") == "completed"


def test_plain_srun_is_refused_before_any_file_is_written(site):
    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:10:00",
        "jobs/single.sbatch",
        OUTPUT="runs/plain.h5",
        OVERRIDES=SMALL,
        PVMC_LAUNCH="srun",
    )
    info = site.wait(job)
    log = site.log(f"slurm-pvmc-{job}.out")
    assert exit_code(info) == 2, log
    assert "started this process as one of 2 tasks" in log and "srun --mpi=pmi2" in log
    assert log.count("pvmc: error:") == 1, log  # one message, not one per task
    assert "Traceback" not in log
    assert not (site.work / "runs" / "plain.h5").exists()


# ----------------------------------------------------------------------------- 2: arrays


def test_every_array_task_gets_its_own_wall_time(site):
    """Defect 2: task 0 (job id = array id) asked squeue for the whole array."""
    array = site.sbatch(
        "--array=0-1",
        "--ntasks=1",
        "--time=00:10:00",
        "jobs/scan.sbatch",
        SCAN_VALUES="0.75 1.5",
        OVERRIDES=SMALL,
    )
    for task in (0, 1):
        info = site.wait(f"{array}_{task}")
        log = site.log(f"slurm-pvmc-scan-{array}_{task}.out")
        assert exit_code(info) == 0, log
        assert re.search(r"--max-walltime 00:0[6-7]:\d\d", log), log
        assert f"job {array}_{task}," in log, log  # defect 7: not the task's job id
    for value in ("0.75", "1.5"):
        assert status(site.work / "runs" / f"scan_system.omega_{value}.h5") == "completed"


# ----------------------------------------------------------------------------- 3-5: chain


def wait_for_chain(site: Site, first: str, out: Path, timeout: float = 420):
    """Wait until the chain begun by job `first` has ended: every segment done, none
    submitted meanwhile (a segment submits its successor just before it ends, so the
    list is read again after the states), and `out` no longer 'running'; (job ids,
    their scontrol fields), as they are at the timeout at the latest."""
    end = time.monotonic() + timeout
    while True:
        jobs = site.jobs_named("pvmc-chain", first)
        infos = [site.job(j) for j in jobs]
        if (
            all(i["JobState"] in DONE_STATES for i in infos)
            and site.jobs_named("pvmc-chain", first) == jobs
            and out.exists()
            and status(out) != "running"
        ) or time.monotonic() > end:
            return jobs, infos
        time.sleep(1)


def test_chain_over_segments_equals_an_uninterrupted_run(site):
    """Short --time with an early USR1 (--signal=B:USR1@20): segment after segment,
    each resubmitting the next, until the run completes; the result is bit-identical
    to one uninterrupted run (started alongside on the same 2 cores)."""
    overrides = long_run(2500)
    ref = site.work / "runs" / "reference.h5"
    reference = subprocess.Popen(
        [
            "mpiexec",
            "-n",
            str(RANKS),
            *site.env().get("PVMC_CMD", "pvmc").split(),
            "run",
            "configs/quickstart.yaml",
            "-o",
            str(ref),
            "--quiet",
            *[a for kv in overrides.split() for a in ("--set", kv)],
        ],
        cwd=site.work,
        env={k: v for k, v in site.env().items() if not k.startswith("SLURM_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    short = "--time=00:01:00 --signal=B:USR1@20"
    first = site.sbatch(
        f"--ntasks={RANKS}",
        *short.split(),
        "jobs/chain.sbatch",
        OUTPUT="runs/chain.h5",
        OVERRIDES=overrides,
        CHAIN_SBATCH_ARGS=f"--ntasks={RANKS} {short}",
        PVMC_SIGNAL_LEAD=20,
        PVMC_MIN_WORK=20,
    )
    out = site.work / "runs" / "chain.h5"
    jobs, infos = wait_for_chain(site, first, out)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    logs = "\n".join(site.log(f"slurm-pvmc-chain-{j}.out") for j in jobs)
    assert jobs[0] == first
    assert len(jobs) >= 2, logs
    assert [exit_code(i) for i in infos] == [0] * len(jobs), logs
    assert status(out) == "completed", logs
    assert f"segment {len(jobs)} completed the run" in logs
    for name in ("production/local_energy", "optimization/params", "checkpoint/theta"):
        assert np.array_equal(read(out, name), read(ref, name)), name
    print(f"chain: {len(jobs)} segments, bit-identical to the uninterrupted run")


# A small training (bars-and-stripes 3x3, 8 hidden units, binary PCD with Adam: the
# kernel types tests/test_gen_cli.py compiles) of 2500 epochs, about 15 s on 2 ranks
# here (30 s beside the reference run; 2 to 3 short segments, 8 on a machine loaded
# 3 times over), with a checkpoint by the clock every 2 s.
TRAIN = """\
data: {name: bars_stripes, size: 3}
model: {hidden: 8}
training: {method: pcd, k: 10, chains: 1000, batch_size: 14, epochs: 2500,
           optimizer: adam, learning_rate: 0.01}
evaluation: {every: 100}
output: {checkpoint_every: 2.0}
seed: 5
"""


def test_training_chain_over_segments_equals_an_uninterrupted_training(site):
    """PVMC_COMMAND=train with the chain of test_chain_over_segments_equals_an_
    uninterrupted_run (--time=00:01:00, USR1 20 s before the limit), and a USR1 to the
    first segment's batch shell once its training file exists, so that it takes two
    segments or more on any machine: each segment continues the training file with
    pvmc train --resume; the final parameters and the history equal, bit for bit,
    those of one uninterrupted training on as many ranks (started alongside)."""
    (site.work / "configs" / "train_chain.yaml").write_text(TRAIN)
    ref = site.work / "runs" / "train_reference.h5"
    reference = subprocess.Popen(
        [
            "mpiexec",
            "-n",
            str(RANKS),
            *site.env().get("PVMC_CMD", "pvmc").split(),
            "train",
            "configs/train_chain.yaml",
            "-o",
            str(ref),
            "--quiet",
        ],
        cwd=site.work,
        env={k: v for k, v in site.env().items() if not k.startswith("SLURM_")},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    short = "--time=00:01:00 --signal=B:USR1@20"
    first = site.sbatch(
        f"--ntasks={RANKS}",
        *short.split(),
        "jobs/chain.sbatch",
        PVMC_COMMAND="train",
        CONFIG="configs/train_chain.yaml",
        OUTPUT="runs/train_chain.h5",
        CHAIN_SBATCH_ARGS=f"--ntasks={RANKS} {short}",
        PVMC_SIGNAL_LEAD=20,
        PVMC_MIN_WORK=20,
    )
    out = site.work / "runs" / "train_chain.h5"
    site.wait_for(out, first)
    site.slurm("scancel", "--batch", "--signal=USR1", first)
    jobs, infos = wait_for_chain(site, first, out)
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    logs = "\n".join(site.log(f"slurm-pvmc-chain-{j}.out") for j in jobs)
    assert jobs[0] == first
    assert len(jobs) >= 2, logs
    assert [exit_code(i) for i in infos] == [0] * len(jobs), logs
    assert status(out) == "completed", logs
    assert "pvmc train configs/train_chain.yaml -o runs/train_chain.h5 --resume" in logs
    assert "stopped cleanly (SIGUSR1)" in logs, logs
    assert f"segment {len(jobs)} completed the run" in logs, logs
    for name in ("model/a", "model/b", "model/W", "history/epoch", "history/log_likelihood"):
        assert np.array_equal(read(out, name), read(ref, name)), name
    print(f"training chain: {len(jobs)} segments, bit-identical to the uninterrupted run")


def test_plain_scancel_stops_a_chain(site):
    """Defect 3: a cancelled segment checkpointed and submitted its successor."""
    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:10:00",
        "jobs/chain.sbatch",
        OUTPUT="runs/cancel.h5",
        OVERRIDES=long_run(3000),
    )
    site.wait_for(site.work / "runs" / "cancel.h5.ckpt", job)
    time.sleep(1)
    site.slurm("scancel", job)
    info = site.wait(job)
    log = site.log(f"slurm-pvmc-chain-{job}.out")
    assert info["JobState"] == "CANCELLED", log
    time.sleep(2)
    assert site.jobs_named("pvmc-chain", job) == [job], log
    assert "cancelled (scancel): the chain stops here" in log, log
    assert "before the time limit" not in log  # defect 7
    assert status(site.work / "runs" / "cancel.h5") == "interrupted", log


def requeued_mid_run(site: Site, template: str, output: str, checkpoint=None, **settings):
    """Submit jobs/TEMPLATE.sbatch on a run of ~10 s (settings: other than the
    quick-start run's), requeue it once its first checkpoint (file) exists, wait for
    the second attempt; (job id, scontrol fields, log)."""
    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:10:00",
        f"jobs/{template}.sbatch",
        OUTPUT=output,
        **{"OVERRIDES": long_run(800), **settings},
    )
    site.wait_for(site.work / (checkpoint or f"{output}.ckpt"), job)
    time.sleep(1)
    info = site.requeue(job)
    name = "pvmc" if template == "single" else f"pvmc-{template}"
    return job, info, site.log(f"slurm-{name}-{job}.out")


def test_requeued_chain_segment_runs_again_without_a_second_chain(site):
    """Defect 4: the requeued segment submitted a successor and then ran again."""
    job, info, log = requeued_mid_run(site, "chain", "runs/requeue.h5")
    assert exit_code(info) == 0, log
    assert site.jobs_named("pvmc-chain", job) == [job], log  # no second chain
    assert "being requeued" in log and "attempt 2 of this job" in log, log
    assert "segment 1 completed the run (requeued: attempt 2" in log, log
    assert status(site.work / "runs" / "requeue.h5") == "completed"


def test_requeued_single_job_resumes_and_keeps_both_logs(site):
    """Defect 4: after a requeue single.sbatch ran without --resume and exited 2 on
    its own file; the first attempt's log was overwritten."""
    job, info, log = requeued_mid_run(site, "single", "runs/req1.h5")
    assert exit_code(info) == 0, log
    assert "restart 0:" in log and "restart 1:" in log, log  # both attempts kept
    assert "continuing the run with --resume" in log
    assert status(site.work / "runs" / "req1.h5") == "completed"


def test_requeued_training_job_continues_its_file(site):
    """PVMC_COMMAND=train: the requeued single job continues its training file with
    pvmc train --resume (the file is the checkpoint) and completes it."""
    (site.work / "configs" / "train_chain.yaml").write_text(TRAIN)
    job, info, log = requeued_mid_run(
        site,
        "single",
        "runs/req_train.h5",
        checkpoint="runs/req_train.h5",
        PVMC_COMMAND="train",
        CONFIG="configs/train_chain.yaml",
        # ~25 s of training with a warm cache (1500 epochs, ~4 s, once completed before
        # the requeue reached it): the requeue must find it running on any machine
        OVERRIDES="training.epochs=12000",
    )
    assert exit_code(info) == 0, log
    assert "restart 0:" in log and "restart 1:" in log, log
    assert "stopped cleanly (requeue)" in log, log
    assert "pvmc train configs/train_chain.yaml -o runs/req_train.h5 --set" in log, log
    assert "continuing the run with --resume" in log, log
    assert status(site.work / "runs" / "req_train.h5") == "completed"


def test_chain_refuses_a_time_limit_that_leaves_no_work(site):
    """Defect 5: with --time=00:02:00 and the shipped @300 / 180 s the chain set
    --max-walltime 00:00:01 and went through 20 segments."""
    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:02:00",
        "jobs/chain.sbatch",
        OUTPUT="runs/short.h5",
        OVERRIDES=SMALL,
    )
    info = site.wait(job)
    log = site.log(f"slurm-pvmc-chain-{job}.out")
    assert exit_code(info) == 2, log
    assert "less than PVMC_MIN_WORK" in log and "stop signal's lead (300 s)" in log, log
    time.sleep(2)
    assert site.jobs_named("pvmc-chain", job) == [job], log
    assert not (site.work / "runs" / "short.h5").exists()


# ----------------------------------------------------------------------------- 6, 7


def test_a_stop_signal_in_the_first_second_is_held_until_the_run_takes_it(site):
    """Defect 6: a USR1 that came while srun and the ranks were starting was 'passed
    on' and lost (the run then completed), or killed srun. It is sent here as soon as
    the log shows the launch. The launcher is given (the one the template would
    choose), so that this test needs nothing but the signal handling."""
    from parallel_vmc.parallel import srun_mpi_option

    job = site.sbatch(
        f"--ntasks={RANKS}",
        "--time=00:10:00",
        "jobs/single.sbatch",
        OUTPUT="runs/early.h5",
        OVERRIDES=long_run(800),
        PVMC_LAUNCH=f"srun {srun_mpi_option()}",
    )
    log_path = site.work / f"slurm-pvmc-{job}.out"
    end = time.monotonic() + 60
    while not (log_path.exists() and " task(s)" in log_path.read_text()):
        assert time.monotonic() < end, site.job(job)
        time.sleep(0.02)
    site.slurm("scancel", "--batch", "--signal=USR1", job)
    info = site.wait(job)
    log = log_path.read_text()
    assert exit_code(info) == 75, log
    assert "held until it does" in log and "passed on to the run" in log, log
    assert status(site.work / "runs" / "early.h5") == "interrupted"
    assert "stopped cleanly (SIGUSR1)" in log
    assert "srun: error" not in log  # defect 7
