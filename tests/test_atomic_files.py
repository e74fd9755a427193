"""The one atomic writer (``runfile.hdf5io.write_atomically``) and the one provenance
of every HDF5 file written whole: the training file and the VMC checkpoints. A write
that fails at any stage leaves the previous file intact and no temporary behind; the
training file's old format still reads."""

import errno
import os

import h5py
import numpy as np
import pytest

from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import gio
from parallel_vmc.generative.model import RBM
from parallel_vmc.runfile import checkpoint as ckpt
from parallel_vmc.runfile import hdf5io

CFG = {"data": {"name": "bars_stripes", "size": 2}, "model": {"hidden": 3}}
PROVENANCE = {
    "created",
    "hostname",
    "package_version",
    "numba_version",
    "numpy_version",
    "mpi4py_version",
}


def rbm(seed: int) -> RBM:
    return RBM.init("binary", 4, 3, np.random.default_rng(seed), 0.1)


def write_training(path, seed: int, status=gio.RUNNING) -> None:
    """A training file of a random RBM with a checkpoint."""
    attrs = dict(gio.root_attrs(gconfig.from_dict(CFG), 1), status=status)
    model = rbm(seed)
    checkpoint = {"theta": model.theta(), "attrs": {"layer": 0, "epoch": seed, "batch": 0}}
    gio.write(str(path), attrs, [model], {"epoch": [1.0]}, None, checkpoint)


def leftovers(directory) -> list:
    return sorted(name for name in os.listdir(directory) if ".tmp" in name)


def fail_half_way(monkeypatch):
    """Make the next write of a file's bytes stop half-way with a full disk."""
    real = os.write

    def write(fd, data):
        if len(data) > 1:
            real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(hdf5io.os, "write", write)


def fail_at(stage: str, monkeypatch) -> None:
    """Make the atomic write fail at one stage: building the image, writing its bytes,
    fsync, or the rename."""
    if stage == "build":
        monkeypatch.setattr(gio, "write_array", lambda *a: 1 / 0)
    elif stage == "write":
        fail_half_way(monkeypatch)
    else:

        def broken(*args):
            raise OSError(errno.EIO, f"{stage} failed")

        monkeypatch.setattr(hdf5io.os, stage, broken)


@pytest.mark.parametrize("stage", ["build", "write", "fsync", "replace"])
def test_a_failed_training_file_write_leaves_the_old_file(tmp_path, monkeypatch, stage):
    path = tmp_path / "t.h5"
    write_training(path, 1)
    before = path.read_bytes()
    fail_at(stage, monkeypatch)
    with pytest.raises((OSError, ZeroDivisionError)):
        write_training(path, 2)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []
    assert gio.read_resumable(str(path))["checkpoint"]["attrs"]["epoch"] == 1


def test_a_failed_checkpoint_write_leaves_the_old_one(tmp_path, monkeypatch):
    """The checkpoints use the same writer (and keep the replaced one as .prev)."""
    path = str(tmp_path / "r.h5.ckpt")
    ckpt.write(path, {"step": 1}, {"theta": np.arange(3.0)})
    ckpt.write(path, {"step": 2}, {"theta": np.arange(4.0)})
    before = open(path, "rb").read()
    fail_half_way(monkeypatch)
    with pytest.raises(OSError, match="No space"):
        ckpt.write(path, {"step": 3}, {"theta": np.arange(5.0)})
    monkeypatch.undo()
    assert open(path, "rb").read() == before
    assert leftovers(tmp_path) == []
    assert ckpt.read(path)[0]["step"] == 2 and ckpt.read(path + ckpt.PREVIOUS)[0]["step"] == 1


def test_mark_failed_rewrites_atomically(tmp_path, monkeypatch):
    path = tmp_path / "t.h5"
    write_training(path, 1)
    gio.mark_failed(str(path), "Diverged:\n non-finite")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["status"] == "failed: Diverged: non-finite"
    before = path.read_bytes()
    fail_half_way(monkeypatch)
    gio.mark_failed(str(path), "again")  # best effort: no exception, the file intact
    monkeypatch.undo()
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_run_file_and_training_file_share_the_provenance(tmp_path):
    from conftest import make_config

    from parallel_vmc.runfile.output import RunFile

    assert set(hdf5io.provenance()) == PROVENANCE
    path = tmp_path / "t.h5"
    write_training(path, 1)
    cfg = make_config(tmp_path / "run.h5")
    run = RunFile.create(str(tmp_path / "run.h5"), cfg, 1, "none", 5, 4, 16, 16)
    run.h5.close()
    with h5py.File(path, "r") as train, h5py.File(tmp_path / "run.h5", "r") as vmc:
        assert PROVENANCE <= set(train.attrs) and PROVENANCE <= set(vmc.attrs)
        for key in PROVENANCE - {"created"}:
            assert train.attrs[key] == vmc.attrs[key], key


def write_format_1(path, model: RBM) -> None:
    """A training file as written before the shared writer: HDF5's default format, no
    mpi4py_version, the time in UTC, checkpoint_every counting epochs."""
    text = (
        gconfig.from_dict(CFG).to_yaml().replace("checkpoint_every: 300.0", "checkpoint_every: 10")
    )
    text = text.replace("  checkpoint_epochs: 0\n", "")
    with h5py.File(path, "w") as h5:
        h5.attrs.update(
            run_type="train",
            format_version=1,
            package_version="0.1.0",
            created="2025-01-01T00:00:00+00:00",
            config=text,
            mpi_size=1,
            seed=2026,
            hostname="old",
            numpy_version="1",
            numba_version="1",
            status=gio.INTERRUPTED,
        )
        group = h5.create_group("model")
        for name in ("a", "b", "W"):
            hdf5io.write_array(group, name, getattr(model, name))
        group.attrs.update(kind="binary", sigma=1.0)
        hist = h5.create_group("history")
        for name in gio.HISTORY_FIELDS:
            hist.create_dataset(name, data=np.zeros(1))
        ck = h5.create_group("checkpoint")
        ck.attrs.update(layer=0, epoch=1, batch=0, train_seconds=1.0, opt_step=2)
        hdf5io.write_array(ck, "theta", model.theta())


def test_files_of_the_old_format_still_read(tmp_path):
    from analysis.generative import read_training

    model, path = rbm(3), str(tmp_path / "old.h5")
    write_format_1(path, model)
    payload = gio.read_resumable(path)
    assert np.array_equal(payload["layers"][0].W, model.W)
    run = read_training(path)
    assert np.array_equal(run.rbm.W, model.W) and run.config["output"]["checkpoint_every"] == 10
    gio.mark_failed(path, "late")
    with h5py.File(path, "r") as h5:
        assert h5.attrs["status"] == "failed: late" and h5.attrs["hostname"] == "old"
