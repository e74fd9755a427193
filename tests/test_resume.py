"""Runs that are killed, stopped or resumed: `pvmc` under `mpiexec -n 2` as separate
process groups, compared bit for bit with an uninterrupted run of the same seed."""

import os
import random
import re
import shutil
import signal
import subprocess
import time

import h5py
import numpy as np
import pytest
import yaml
from conftest import pvmc_argv, subprocess_env

from parallel_vmc.runfile import schema as S

pytestmark = pytest.mark.skipif(
    shutil.which("mpiexec") is None, reason="no mpiexec on PATH (install the 'mpi' extra)"
)

# Thermalisation, optimization and production each take a good fraction of a second
# with a checkpoint after every unit of work, so kills can be aimed at each of them.
CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
    "wavefunction": {"hidden": 4},
    "sampler": {"method": "importance", "walkers_per_rank": 8, "thermalization": 4000},
    "optimizer": {"iterations": 150, "samples_per_iteration": 4096},
    "production": {"samples": 2**21},
    "seed": 11,
}
EVERY_UNIT = ("--set", "output.checkpoint_every=0")
EXIT_INTERRUPTED = 75
# Everything a result is made of; wall_time and the timestamps are not results.
DATASETS = (
    "optimization/energy",
    "optimization/energy_error",
    "optimization/variance",
    "optimization/acceptance",
    "optimization/grad_norm",
    "optimization/params",
    "optimization/learning_rate",
    "production/local_energy",
    "wavefunction/a",
    "wavefunction/b",
    "wavefunction/W",
    "checkpoint/theta",
    "checkpoint/positions",
    "checkpoint/rng_states",
    "checkpoint/optimizer/m",
    "checkpoint/optimizer/v",
    "checkpoint/obs_totals",
    "production/observables/kinetic",
    "production/observables/trap",
    "production/observables/interaction",
    "production/observables/r12",
    "production/observables/density/counts",
    "production/observables/density/error",
    "production/observables/density_image/counts",
    "production/observables/pair_distance/counts",
    "production/observables/pair_distance/error",
)


def write_config(tmp_path, name="run.yaml", **sections):
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in CONFIG.items()}
    for key, values in sections.items():
        raw[key].update(values)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def launch(tmp_path, *args, ranks=2):
    """Start pvmc in its own process group (so the whole MPI job can be killed)."""
    log = open(tmp_path / f"log-{time.monotonic_ns()}.txt", "w")
    return subprocess.Popen(
        pvmc_argv(ranks, *args),
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def finish(proc, timeout=120):
    return proc.wait(timeout=timeout)


def pvmc(tmp_path, *args, ranks=2, timeout=120):
    res = subprocess.run(
        pvmc_argv(ranks, *args),
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return res


def progress_of(run_path) -> str:
    """The live checkpoint's 'progress' attribute ('' while there is none)."""
    try:
        with h5py.File(str(run_path) + ".ckpt", "r", locking=False) as h5:
            return str(h5.attrs["progress"])
    except (OSError, KeyError):
        return ""


def wait_until(predicate, proc, timeout=60.0, poll=0.001):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(poll)
    return False


def kill_job(proc):
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def assert_same_results(ref, other):
    with h5py.File(ref, "r") as a, h5py.File(other, "r") as b:
        assert b.attrs["status"].decode() == "completed"
        for name in DATASETS:
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
        for group in ("summary", "production", "production/observables"):
            for key, value in a[group].attrs.items():
                assert np.array_equal(b[group].attrs[key], value), f"{group}.{key}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run (default checkpoint interval) on 2 ranks."""
    d = tmp_path_factory.mktemp("reference")
    cfg = write_config(d)
    res = pvmc(d, "run", cfg, "-o", "ref.h5", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    return d / "ref.h5"


def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, reference):
    """Eight kill -9 of the whole 2-rank job, aimed at each phase and at the checkpoint
    write itself, in one run: each kill comes after the job (from the second on, a
    resumed one) has written a checkpoint of its own. The last resume completes the run,
    and it equals the uninterrupted run bit for bit. One run killed eight times, not
    eight runs killed once: each completion, with a checkpoint after every unit of work,
    took 20-25 s (the test took 220 s)."""
    rnd = random.Random(20261123)
    cfg = write_config(tmp_path)
    kills = ["thermalize", "optimize", "write", "optimize", "write", "produce", "write", "produce"]
    out = tmp_path / "t.h5"
    tmp = tmp_path / "t.h5.ckpt.tmp"
    hit_write = 0
    proc = launch(tmp_path, "run", cfg, "-o", out, "--quiet", *EVERY_UNIT)
    for k, phase in enumerate(kills):
        before = progress_of(out)

        def fresh(phase=phase, before=before):
            """A checkpoint written by this job (after a unit of work), in phase."""
            now = progress_of(out)
            return now != before and now.startswith("" if phase == "write" else phase)

        assert wait_until(fresh, proc), f"kill {k}: never reached {phase}: {progress_of(out)}"
        if phase == "write":  # a later write of this job (its first renamed the tmp away)
            assert wait_until(tmp.exists, proc), f"kill {k}: no checkpoint write seen"
        else:
            time.sleep(rnd.uniform(0.0, 0.05))
        kill_job(proc)
        assert progress_of(out), f"kill {k}: no checkpoint survived the kill"
        hit_write += phase == "write" and tmp.exists()
        if k + 1 < len(kills):
            proc = launch(tmp_path, "resume", out, "--quiet")
    res = pvmc(tmp_path, "resume", out, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_results(reference, out)
    assert not os.path.exists(str(out) + ".ckpt"), "completed runs keep no live checkpoint"
    with h5py.File(out) as h5:
        ended = list(h5["segments/ended"].asstr()[:])
    assert ended == ["killed"] * len(kills) + ["completed"]
    assert hit_write >= 1, "no kill landed inside a checkpoint write"


@pytest.mark.parametrize(
    "signame,target", [("SIGUSR1", "every process"), ("SIGTERM", "mpiexec only")]
)
def test_stop_signal_checkpoints_and_resumes_identically(tmp_path, reference, signame, target):
    """SLURM signals every task; a user or a site script may signal only the launcher,
    which forwards it to the ranks."""
    cfg = write_config(tmp_path)
    out = tmp_path / "s.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, *EVERY_UNIT)
    assert wait_until(lambda: progress_of(out).startswith("optimize 5"), proc)
    if target == "every process":
        os.killpg(proc.pid, getattr(signal, signame))
    else:
        proc.send_signal(getattr(signal, signame))
    assert finish(proc) == EXIT_INTERRUPTED
    with h5py.File(out, "r") as h5:
        assert h5.attrs["status"].decode() == "interrupted"
        assert list(h5["segments/ended"].asstr()[:]) == ["interrupted"]
    assert progress_of(out).startswith("optimize")
    info = pvmc(tmp_path, "info", out, ranks=1)
    assert info.returncode == 0 and "interrupted" in info.stdout
    assert f"pvmc resume {out}" in info.stdout
    res = pvmc(tmp_path, "resume", out, "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_results(reference, out)


def test_resume_on_one_rank_of_a_two_rank_run(tmp_path, reference):
    """Another rank count: new streams (documented re-seeding), both segments recorded,
    the energy agrees with the uninterrupted run within the error bars."""
    cfg = write_config(tmp_path)
    out = tmp_path / "r.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, *EVERY_UNIT)
    assert wait_until(lambda: progress_of(out).startswith("optimize 100"), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    assert finish(proc) == EXIT_INTERRUPTED
    res = pvmc(tmp_path, "resume", out, "--quiet", ranks=1)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "new streams" in res.stdout
    with h5py.File(reference) as a, h5py.File(out) as b:
        assert list(b["segments/mpi_size"][:]) == [2, 1]
        assert list(b["segments/ended"].asstr()[:]) == ["interrupted", "completed"]
        assert list(b["segments/reseeded"][:]) == [0, 1]
        assert b["production/local_energy"].shape[0] == 8  # 1 rank x 8 walkers
        ea, eb = a["summary"].attrs["energy"], b["summary"].attrs["energy"]
        err = np.hypot(a["summary"].attrs["error"], b["summary"].attrs["error"])
        # The first 100 iterations are shared, so the two energies are correlated
        # and 4 combined errors is a conservative bound.
        assert abs(ea - eb) < 4 * err, (ea, eb, err)
        # The iterations before the stop are the 2-rank run's, bit for bit.
        np.testing.assert_array_equal(
            b["optimization/params"][:100], a["optimization/params"][:100]
        )


def test_max_walltime_stops_cleanly_and_resumes(tmp_path, reference):
    """(reference: the kernels are compiled and cached before the clock matters.)
    A short thermalisation and 8 s: the limit must fall inside the optimization also
    when the machine runs slowly (with 4000 sweeps and 4 s, the margin the control keeps
    once ended the run inside the thermalisation). 8000 iterations, not 20000: the
    resume runs all the rest (the test took 51 s with 20000 in a CI run, 31 s with 8000
    on the idle 2-core machine)."""
    cfg = write_config(
        tmp_path, sampler={"thermalization": 200}, optimizer={"iterations": 8000}
    )  # well over 8 s of work
    out = tmp_path / "w.h5"
    limit = 8
    t0 = time.monotonic()
    proc = launch(tmp_path, "run", cfg, "-o", out, "--max-walltime", f"00:00:0{limit}")
    rc = finish(proc)
    elapsed = time.monotonic() - t0
    assert rc == EXIT_INTERRUPTED
    with h5py.File(out) as h5:
        assert h5.attrs["status"].decode() == "interrupted"
        stopped_at = int(h5["optimization/rows_written"][0])
        # The limit counts from the start of the Python process; the segment closes
        # (file written, checkpointed) inside it ...
        assert h5["segments/seconds"][0] < limit
    # ... and the launcher's own start and exit add only a little on top.
    assert elapsed < limit + 3.0, elapsed
    assert 0 < stopped_at < 8000
    res = pvmc(tmp_path, "resume", out, "--quiet", "--max-walltime", "00:10:00")
    assert res.returncode == 0, res.stdout + res.stderr
    with h5py.File(out) as h5:
        assert list(h5["segments/ended"].asstr()[:]) == ["interrupted", "completed"]
        assert list(h5["segments/first_iteration"][:]) == [0, stopped_at]
        assert np.all(np.isfinite(h5["optimization/energy"][:]))


def test_run_resume_flag_starts_continues_and_is_idempotent(tmp_path, reference):
    cfg = write_config(tmp_path)
    out = tmp_path / "f.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, "--resume", *EVERY_UNIT)
    assert wait_until(lambda: progress_of(out).startswith("produce"), proc)
    os.killpg(proc.pid, signal.SIGUSR1)
    assert finish(proc) == EXIT_INTERRUPTED
    res = pvmc(tmp_path, "run", cfg, "-o", out, "--resume", "--quiet")
    assert res.returncode == 0, res.stdout + res.stderr
    assert_same_results(reference, out)
    again = pvmc(tmp_path, "run", cfg, "-o", out, "--resume", "--quiet", ranks=1)
    assert again.returncode == 0 and "already completed" in again.stdout


def _production_written(path):
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return (
                h5["production/local_energy"].shape[0],
                int(h5["production/samples_written"][0]),
            )
    except (OSError, KeyError):
        return (0, 0)


def test_info_on_a_live_run_in_production_says_where_it_is(tmp_path):
    """During production `pvmc info` said "at thermalize 0/4000 sweeps" (the live
    segment's row holds where the segment started) and suggested a plain srun, which
    may start independent runs. Now the segment says where it started and how far the
    file's records go, the checkpoint line says it is where a resume starts, and the
    srun is the form `pvmc mpi --srun-option` gives. The run is held (SIGSTOP) while
    `pvmc info` reads it: once, beside another test process, it finished its production
    before info had started and the stop signal came."""
    cfg = write_config(tmp_path)
    out = tmp_path / "live.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, "--quiet", ranks=1)
    try:
        assert wait_until(lambda: _production_written(out)[1] > 0, proc, timeout=120)
        proc.send_signal(signal.SIGSTOP)
        info = pvmc(tmp_path, "info", out, ranks=1)
    finally:
        proc.send_signal(signal.SIGTERM)  # taken when it continues
        proc.send_signal(signal.SIGCONT)
        assert finish(proc) == EXIT_INTERRUPTED
    assert info.returncode == 0, info.stderr
    rows = {line[:14].strip(): line[14:] for line in info.stdout.splitlines()}
    assert rows["status"] == "running"
    segment = rows["segment 0"]
    assert "started at thermalize 0/4000 sweeps; the file holds produce " in segment, segment
    assert "samples per chain" in segment
    checkpoint = [line for line in info.stdout.splitlines() if ".ckpt, written" in line][0]
    assert "the run at produce " in checkpoint and "where a resume starts" in checkpoint
    assert "srun pvmc" not in info.stdout
    resume = rows["resume with"]
    assert "srun --mpi=" in resume or "$(pvmc mpi --srun-option)" in resume


def test_rank_count_changes_during_production_even_if_killed(tmp_path):
    """1 rank -> stopped in production -> 2 ranks, killed before any later checkpoint
    -> 1 rank again: each change of the chain count restarts production (it is
    checkpointed at once), so the final series is one consistent set of chains."""
    cfg = write_config(tmp_path, production={"samples": 2**22})
    out = tmp_path / "p.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, "--quiet", ranks=1)
    assert wait_until(lambda: _production_written(out)[1] > 8192, proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == EXIT_INTERRUPTED
    proc = launch(tmp_path, "resume", out, "--quiet", ranks=2)
    assert wait_until(
        lambda: (
            _production_written(out) == (16, 4096)
            or _production_written(out)[0] == 16
            and _production_written(out)[1] > 0
        ),
        proc,
    )
    kill_job(proc)
    res = pvmc(tmp_path, "resume", out, "--quiet", ranks=1)
    assert res.returncode == 0, res.stdout + res.stderr
    with h5py.File(out) as h5:
        e = h5["production/local_energy"][()]
        assert e.shape == (8, 2**22 // 8) and np.all(np.isfinite(e))
        # The allreduced sums were accumulated with the samples in the file.
        assert h5["production"].attrs["energy_allreduced"] == pytest.approx(e.mean(), rel=1e-12)
        assert list(h5["segments/ended"].asstr()[:]) == ["interrupted", "killed", "completed"]
        assert list(h5["segments/reseeded"][:]) == [0, 1, 1]


# The two-electron DMC run of test_dmc.py (the same kernels), on 2 ranks.
DMC_CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0, "interaction": "coulomb"},
    "wavefunction": {"hidden": 2, "jastrow": "pade"},
    "sampler": {"method": "importance", "walkers_per_rank": 4, "thermalization": 200},
    "optimizer": {"iterations": 20, "samples_per_iteration": 4096},
    "production": {"samples": 16384},
    "dmc": {"time_steps": [0.04, 0.02], "walkers": 200, "warmup_steps": 200, "steps": 800},
    "seed": 7,
}


def dmc_step(run_path, k: int) -> int:
    """The step the live checkpoint reached in DMC time step k (1-based), -1 before."""
    m = re.match(rf"dmc time step {k}/\d+ \(tau [^)]*\), step (\d+)/", progress_of(run_path))
    return int(m.group(1)) if m else -1


def test_kill_and_sigterm_during_dmc_then_resume_is_bit_identical(tmp_path):
    """kill -9 of the 2-rank job in the first DMC time step, then SIGTERM to mpiexec in
    the second: each resume continues the phase from its last checkpoint (a block of
    steps), and /dmc equals that of an uninterrupted run bit for bit."""
    cfg = tmp_path / "dmc.yaml"
    cfg.write_text(yaml.safe_dump(DMC_CONFIG))
    # generous limits: with an empty numba cache each rank compiles the kernels first
    ref = pvmc(tmp_path, "run", cfg, "-o", "ref.h5", "--quiet", timeout=900)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    out = tmp_path / "d.h5"
    proc = launch(tmp_path, "run", cfg, "-o", out, *EVERY_UNIT)
    assert wait_until(lambda: dmc_step(out, 1) >= 300, proc, timeout=600), progress_of(out)
    kill_job(proc)
    proc = launch(tmp_path, "resume", out)
    assert wait_until(lambda: dmc_step(out, 2) >= 200, proc, timeout=600), progress_of(out)
    proc.send_signal(signal.SIGTERM)
    assert finish(proc, timeout=600) == EXIT_INTERRUPTED
    info = pvmc(tmp_path, "info", out, ranks=1)
    assert info.returncode == 0 and "dmc time step 2/2" in info.stdout, info.stdout
    res = pvmc(tmp_path, "resume", out, "--quiet", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    with h5py.File(tmp_path / "ref.h5", "r") as a, h5py.File(out, "r") as b:
        assert list(b["segments/ended"].asstr()[:]) == ["killed", "interrupted", "completed"]
        names = list(S.DMC_FIELDS) + [
            f"{S.STEP_GROUP % k}/{name}" for k in range(2) for name in S.DMC_SERIES
        ]
        for name in names:
            assert a[S.DMC][name][()].tobytes() == b[S.DMC][name][()].tobytes(), name
        for key, value in a[S.DMC].attrs.items():
            assert b[S.DMC].attrs[key] == value, key
