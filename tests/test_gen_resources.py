"""`pvmc train` and the machine: sizes beyond the memory or the free disk are refused
before any work (exit 2, one line naming the key and the numbers, as for `pvmc run`),
and a disk that fills during training stops it with exit 1 and one line, no temporary
left, the last checkpoint's file intact and resumable once there is space again."""

import copy
import os
import threading
import time

import h5py
from conftest import fill_disk
from test_gen_cli import TINY, run_cli, write_config

from parallel_vmc.generative import gio


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_training_larger_than_the_free_disk_is_refused_at_once(tmp_path, small_disk_of):
    disk = small_disk_of("2m")
    cfg = write_config(tmp_path, TINY)
    for command in ("train", "validate"):
        t = time.monotonic()
        code, out, err = run_cli([command, cfg, "-o", disk / "t.h5", "--set", "model.hidden=30000"])
        line = one_line(err)
        assert code == 2 and time.monotonic() - t < 5.0, err
        for words in ("model.hidden: 30000 (150004 parameters", "of disk", "MB free", "up to"):
            assert words in line, line
        assert out == "" and os.listdir(disk) == []


def test_a_training_beyond_the_memory_names_the_key(tmp_path):
    """10^7 persistent chains of 100004 units: 8 TB for their hidden units alone."""
    cfg = write_config(tmp_path, TINY)
    sets = ["--set", "training.chains=10000000", "--set", "model.hidden=100000"]
    code, _, err = run_cli(["train", cfg, "-o", tmp_path / "t.h5", *sets])
    line = one_line(err)
    assert code == 2 and "training.chains: 10000000 (" in line and "of memory" in line, line
    assert not (tmp_path / "t.h5").exists()


def test_resume_on_a_full_disk_is_refused_and_works_once_there_is_space(tmp_path, small_disk_of):
    disk = small_disk_of("2m")
    out = disk / "t.h5"
    cfg = write_config(tmp_path, TINY)
    assert run_cli(["train", cfg, "-o", out, "--quiet", "--stop-after", "2"])[0] == 75
    before = out.read_bytes()
    filler = fill_disk(disk)
    code, _, err = run_cli(["resume", out, "--quiet"])
    assert code == 2 and "disk" in one_line(err) and "free" in err, err
    assert out.read_bytes() == before
    os.remove(filler)
    code, _, err = run_cli(["resume", out, "--quiet"])
    assert code == 0, err


def test_a_disk_that_fills_during_training_stops_it_with_one_line(tmp_path, small_disk_of):
    """Someone fills the disk while the file is rewritten after every mini-batch: exit
    1 with one line naming the checkpoint kept, no temporary, the file at that
    checkpoint; resumed once there is space, it goes on from there."""
    disk = small_disk_of("2m")
    out = disk / "t.h5"
    raw = copy.deepcopy(TINY)
    raw["training"]["epochs"] = 10**6  # runs until the disk is full
    raw["evaluation"] = {"every": 10**5}  # a short history: the file fits the disk
    raw["output"] = {"checkpoint_every": 0.0}  # a rewrite after every mini-batch
    cfg = write_config(tmp_path, raw)

    def someone_fills_the_disk():
        while not out.exists():
            time.sleep(0.01)
        fill_disk(disk)

    filler = threading.Thread(target=someone_fills_the_disk, daemon=True)
    filler.start()
    code, stdout, err = run_cli(["train", cfg, "-o", out, "--quiet"])
    filler.join(timeout=60)
    line = one_line(err)
    assert code == 1 and stdout == "", err
    assert "cannot write" in line and "No space left on device" in line, line
    assert sorted(os.listdir(disk)) == ["filler", "t.h5"]  # no temporary
    ck = gio.read_resumable(str(out))["checkpoint"]["attrs"]
    kept = f"layer {ck['layer']}, epoch {ck['epoch']}, mini-batch {ck['batch']}"
    assert f"keeps its checkpoint at {kept};" in line and f"pvmc resume {out}" in line, line
    os.remove(disk / "filler")
    code, _, err = run_cli(["resume", out, "--quiet", "--stop-after", "1"])
    assert code == 75, err
    with h5py.File(out, "r") as h5:
        assert h5["checkpoint"].attrs["epoch"] == ck["epoch"] + 1
