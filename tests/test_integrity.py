"""Nothing lost, nothing silent: a live run's file is never replaced, damaged files are
reported (or a good checkpoint is used), sizes are checked before any work, and a
fault during a run leaves a one-line status and no temporary files."""

import contextlib
import io
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import yaml
from conftest import fill_disk, pvmc_argv, subprocess_env

from parallel_vmc.cli import main as cli
from parallel_vmc.runfile import checkpoint as ckpt
from parallel_vmc.runfile.hdf5io import FileInUse
from parallel_vmc.runfile.output import RunFile

CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
    "wavefunction": {"hidden": 2},
    "sampler": {"method": "metropolis", "walkers_per_rank": 4, "thermalization": 200},
    "optimizer": {"iterations": 20, "samples_per_iteration": 1024},
    "production": {"samples": 2**16},
    "output": {"checkpoint_every": 0},
    "seed": 5,
}


def write_config(directory, **sections):
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in CONFIG.items()}
    for key, values in sections.items():
        raw.setdefault(key, {}).update(values)
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def pvmc(directory, *args, **kwargs):
    return subprocess.run(
        pvmc_argv(1, *args),
        cwd=directory,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
        **kwargs,
    )


def in_process(*argv):
    """(exit code, stdout, stderr) of ``pvmc ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def summary_energy(path):
    with h5py.File(path, "r") as h5:
        return float(h5["summary"].attrs["energy"])


def wait_for(predicate, proc, timeout=60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.005)
    return False


def progress(path) -> str:
    try:
        return ckpt.read(ckpt.path_for(str(path)))[0]["progress"]
    except ckpt.CheckpointError:
        return ""


# ----------------------------------------------------------------------------- live file
def test_a_live_runs_file_is_never_replaced_resumed_or_truncated(tmp_path):
    """While a run writes live.h5, `run --overwrite`, `run --resume` and `resume` are
    refused (exit 2, "in use") and the live run ends with an intact file."""
    cfg = write_config(tmp_path, production={"samples": 2**22})
    live = tmp_path / "live.h5"
    proc = subprocess.Popen(
        pvmc_argv(1, "run", cfg, "-o", live, "--quiet"),
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: progress(live).startswith("produce"), proc)
        for args in (
            ("run", cfg, "-o", live, "--overwrite"),
            ("run", cfg, "-o", live, "--resume"),
            ("resume", live),
        ):
            res = pvmc(tmp_path, *args)
            assert res.returncode == 2, (args, res.stderr)
            assert "in use" in res.stderr and "Traceback" not in res.stderr, res.stderr
            assert ckpt.path_for(str(live)) and os.path.exists(ckpt.path_for(str(live)))
        assert proc.wait(timeout=240) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    code, out, _ = in_process("info", "--status", live)
    assert (code, out.strip()) == (0, "completed")
    from analysis.runfile import read_run

    run = read_run(str(live))
    assert np.mean(run.production["local_energy"]) == pytest.approx(summary_energy(live), rel=1e-12)


def test_create_refuses_a_held_file_before_touching_anything(tmp_path):
    """The lock is taken before anything is deleted: even when the early check was
    passed (a run started in between), the held file and its checkpoint stay."""
    from conftest import make_config

    path = tmp_path / "held.h5"
    cfg = make_config(path)
    with h5py.File(path, "w") as holder:
        holder["x"] = np.arange(10.0)
        holder.flush()
        ckpt.write(ckpt.path_for(str(path)), {"progress": "x"}, {"a": np.ones(3)})
        before = path.read_bytes()
        with pytest.raises(FileInUse):
            RunFile.create(
                str(path),
                cfg,
                1,
                "serial",
                4,
                4,
                16,
                16,
                overwrite=True,
                stale=ckpt.siblings(ckpt.path_for(str(path))),
            )
        assert path.read_bytes() == before
        assert os.path.exists(ckpt.path_for(str(path)))
    assert sorted(os.listdir(tmp_path)) == ["held.h5", "held.h5.ckpt"]


# ----------------------------------------------------------------------------- damage
@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A run stopped by SIGTERM during production with a live and a previous
    checkpoint, and the energy an undamaged resume of it ends with."""
    d = tmp_path_factory.mktemp("interrupted")
    cfg = write_config(d)
    path = d / "run.h5"
    proc = subprocess.Popen(
        pvmc_argv(1, "run", cfg, "-o", path, "--quiet"),
        cwd=d,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert wait_for(lambda: progress(path).startswith("produce 4096"), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 75
    assert os.path.exists(str(path) + ".ckpt.prev")
    ref = d / "ref"
    ref.mkdir()
    copy_run(d, ref)
    code, _, err = in_process("resume", ref / "run.h5", "--quiet")
    assert code == 0, err
    return d, summary_energy(ref / "run.h5")


def copy_run(src, dst):
    for name in os.listdir(src):
        if name.startswith("run.h5"):
            shutil.copy(src / name, dst / name)


def damage(path, rnd: random.Random) -> str:
    """Truncate the file at a random offset or flip random bytes; what was done."""
    size = os.path.getsize(path)
    data = bytearray(open(path, "rb").read())
    if rnd.random() < 0.3:
        cut = rnd.randrange(size)
        open(path, "wb").write(data[:cut])
        return f"truncated at {cut}"
    n = rnd.choice([1, 4, 50, 200])
    header = rnd.random() < 0.4  # the first 4 KB: superblock, root object header
    for _ in range(n):
        k = rnd.randrange(min(size, 4096)) if header else rnd.randrange(size)
        data[k] ^= 1 << rnd.randrange(8)
    open(path, "wb").write(data)
    return f"{n} bytes flipped ({'header' if header else 'anywhere'})"


def one_message(code, err):
    """Exit 2 with one 'pvmc: error:' line, and never a traceback."""
    assert "Traceback" not in err, err
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines and lines[-1].startswith("pvmc: error:"), err


N_INFO_CASES = 240
N_RESUME_CASES = 60


def damaged_copies(src, tmp_path, n, seed, targets):
    """n copies of the run in src, each with one of targets damaged (fixed seed):
    yields (directory, damaged file, what was done); each copy is removed after use."""
    rnd = random.Random(seed)
    for k in range(n):
        case = tmp_path / f"case{k}"
        case.mkdir()
        copy_run(src, case)
        target = case / rnd.choice(targets)
        yield case, target, damage(target, rnd)
        shutil.rmtree(case)


def test_info_of_damaged_files_is_a_message_or_the_truth(interrupted, tmp_path):
    """`info` and `info --status` on truncated and bit-flipped run files and
    checkpoints: exit 0 or exit 2 with one message, never a traceback; the status is
    one line, and the run file's own when only the checkpoint was damaged. (The run
    file's attributes carry no checksum, so a flip inside the status text itself can
    change it: docs/checkpoints.md, "Checksums".)"""
    src, _ = interrupted
    codes = {0: 0, 2: 0}
    for case, target, what in damaged_copies(
        src, tmp_path, N_INFO_CASES, 12, ["run.h5", "run.h5", "run.h5.ckpt"]
    ):
        for args in (("info", case / "run.h5"), ("info", "--status", case / "run.h5")):
            code, out, err = in_process(*args)
            assert code in (0, 2), (what, err)
            one_message(code, err)
            codes[code] += 1
            if args[1] == "--status" and code == 0:
                assert out.count("\n") == 1, (what, out)
                assert out == "interrupted\n" or target.name == "run.h5", (what, out)
    assert codes[2] > 0 and codes[0] > 0, codes


def test_resume_of_damaged_files_is_refused_or_bit_identical(interrupted, tmp_path):
    """`resume` on damaged copies: refused with one message (exit 2), or completed with
    exactly the undamaged resume's energy (a damaged live checkpoint falls back to the
    previous one, which continues to the same bits)."""
    src, energy = interrupted
    outcomes = {0: 0, 2: 0}
    for case, _, what in damaged_copies(
        src, tmp_path, N_RESUME_CASES, 34, ["run.h5", "run.h5.ckpt", "run.h5.ckpt"]
    ):
        code, _, err = in_process("resume", case / "run.h5", "--quiet")
        assert code in (0, 2), (what, err)
        one_message(code, err)
        if code == 0:
            assert summary_energy(case / "run.h5") == energy, what
        outcomes[code] += 1
    assert outcomes[0] > 0 and outcomes[2] > 0, outcomes


def test_damaged_live_checkpoint_falls_back_to_the_previous(interrupted, tmp_path):
    src, energy = interrupted
    copy_run(src, tmp_path)
    live = tmp_path / "run.h5.ckpt"
    with h5py.File(live, "r", locking=False) as h5:
        offset = (
            h5["positions"].id.get_offset()
            if h5["positions"].chunks is None
            else h5["positions"].id.get_chunk_info(0).byte_offset
        )
    data = bytearray(live.read_bytes())
    data[offset + 3] ^= 0xFF
    live.write_bytes(data)
    code, _, err = in_process("resume", tmp_path / "run.h5", "--quiet")
    assert code == 0, err
    assert "positions" in err and "previous checkpoint" in err
    assert summary_energy(tmp_path / "run.h5") == energy


# ----------------------------------------------------------------------------- sizes
def _limited_file_size(limit):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize(
    "override,words",
    [
        ("production.samples=10000000000000", ("production.samples: ", "disk", "free", "TB")),
        (
            "sampler.walkers_per_rank=1000000000 production.samples=4000000000",
            ("GB", "1000000000 chains"),
        ),
        ("sampler.walkers_per_rank=1000000000", ("sampler.walkers_per_rank: ", "memory per rank")),
        (
            "system.particles=1000000 system.statistics=bosons wavefunction.jastrow=pade",
            ("system.particles: ", "memory"),
        ),
        (
            "wavefunction.hidden=10000000 optimizer.iterations=300",
            ("wavefunction.hidden: 10000000 (", "parameters", "disk", "free"),
        ),
    ],
)
def test_sizes_beyond_the_machine_exit_2_at_once_naming_the_numbers(tmp_path, override, words):
    cfg = write_config(tmp_path)
    out = tmp_path / "big.h5"
    for command in ("run", "validate"):
        t = time.monotonic()
        sets = [a for o in override.split() for a in ("--set", o)]
        code, _, err = in_process(command, cfg, *sets, "-o", out)
        assert time.monotonic() - t < 1.0
        assert code == 2, err
        assert all(w in err for w in words), err
        assert os.listdir(tmp_path) == ["run.yaml"]


def test_a_file_size_limit_is_checked_before_any_work(tmp_path):
    """optimizer.iterations = 1e7: the history alone is 2.6 GB; with `ulimit -f` at
    100 MB the run is refused at once, naming the size and the limit."""
    cfg = write_config(tmp_path)
    t = time.monotonic()
    res = subprocess.run(
        pvmc_argv(1, "run", cfg, "--set", "optimizer.iterations=10000000", "-o", "big.h5"),
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited_file_size(100 * 2**20),
    )
    assert res.returncode == 2, res.stderr
    assert "ulimit -f" in res.stderr and "GB" in res.stderr, res.stderr
    assert os.listdir(tmp_path) == ["run.yaml"]
    assert time.monotonic() - t < 30


@pytest.fixture
def small_disk(small_disk_of):
    """A 24 MB tmpfs (needs the right to mount, as root in CI)."""
    return small_disk_of("24m")


def test_a_run_larger_than_the_free_space_is_refused(tmp_path, small_disk):
    cfg = write_config(tmp_path)
    code, _, err = in_process(
        "run", cfg, "--set", "optimizer.iterations=10000000", "-o", small_disk / "big.h5"
    )
    assert code == 2 and "disk" in err and "free" in err, err
    assert os.listdir(small_disk) == []


def test_disk_full_during_a_run_leaves_a_one_line_status_and_no_temporary(tmp_path, small_disk):
    cfg = write_config(tmp_path, production={"samples": 2**20}, optimizer={"iterations": 200})
    out = small_disk / "run.h5"
    proc = subprocess.Popen(
        pvmc_argv(1, "run", cfg, "-o", out, "--quiet"),
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert wait_for(lambda: progress(out).startswith("optimize"), proc)
    fill_disk(small_disk)  # someone else fills the disk
    code = proc.wait(timeout=120)
    err = proc.stderr.read()
    assert code == 1 and "Traceback" not in err, err
    os.remove(small_disk / "filler")
    status = subprocess.run(
        pvmc_argv(1, "info", "--status", out), env=subprocess_env(), capture_output=True, text=True
    ).stdout
    assert status.startswith("failed: ") and status.count("\n") == 1, status
    assert not os.path.exists(str(out) + ".ckpt.tmp")


def test_status_is_one_line(tmp_path):
    from conftest import make_config

    path = tmp_path / "s.h5"
    f = RunFile.create(str(path), make_config(path), 1, "serial", 4, 4, 16, 16)
    f.set_status("failed: OSError: Can't write data\n  #000: H5Dio.c line 1\n  #001: x")
    f.close()
    code, out, _ = in_process("info", "--status", path)
    assert out == "failed: OSError: Can't write data #000: H5Dio.c line 1 #001: x\n"


def test_numba_cache_is_not_in_the_package():
    import numba

    import parallel_vmc

    assert not numba.config.CACHE_DIR.startswith(os.path.dirname(parallel_vmc.__file__))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
