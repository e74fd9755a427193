"""Generative training under MPI.

Under `mpiexec -n 2 python -m pytest --with-mpi tests/test_gen_mpi.py`: parameters
identical on every rank, R ranks equal to one rank with the same global batch up to
round-off, and exactly one Allreduce per mini-batch (a communicator that counts).
Without MPI: `pvmc train` on 2 ranks (mpiexec in a subprocess), stopped and resumed on
1 rank, against an uninterrupted 1-rank run.
"""

import shutil
import subprocess

import h5py
import numpy as np
import pytest
import yaml
from conftest import pvmc_argv, subprocess_env

from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import datasets, train
from parallel_vmc.generative.model import RBM
from parallel_vmc.parallel import SerialComm

RAW = {
    "data": {"name": "bars_stripes", "size": 3},
    "model": {"hidden": 8, "visible_bias": "data"},
    "training": {
        "method": "pcd",
        "k": 3,
        "batch_size": 4,
        "epochs": 5,
        "chains": 6,
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.5,
        "weight_decay": 1e-3,
    },
    "seed": 11,
}


class CountingComm:
    """Wraps a communicator and counts every reduction it is asked for."""

    def __init__(self, comm):
        self.inner, self.reductions = comm, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def allreduce_sum(self, buf):
        self.reductions += 1
        return self.inner.allreduce_sum(buf)

    def allreduce_max(self, value):
        self.reductions += 1
        return self.inner.allreduce_max(value)


def _train(comm, method="pcd"):
    cfg = gconfig.from_dict({**RAW, "training": {**RAW["training"], "method": method}})
    data = np.repeat(datasets.bars_and_stripes(3)[0], 2, axis=0)  # 28 rows
    rbm = RBM.init("binary", 9, 8, np.random.default_rng(0), 0.1)
    return train.train(rbm, cfg.training, data, cfg.seed, comm), len(data) // 4 * 5


def _world():
    from parallel_vmc.parallel import world

    comm = world()
    assert comm.size >= 2, "run these tests with mpiexec -n 2"
    return comm


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_ranks_agree_with_one_rank_and_with_each_other(method):
    comm = _world()
    state, _ = _train(comm, method)
    everyone = comm.comm.allgather(state.theta.tobytes())
    assert all(b == everyone[0] for b in everyone)
    serial, _ = _train(SerialComm(), method)
    # only the order of the additions differs (per-rank sums, then the Allreduce)
    assert np.allclose(state.theta, serial.theta, rtol=1e-12, atol=1e-13)


@pytest.mark.mpi(min_size=2)
def test_one_allreduce_per_mini_batch_under_mpi():
    counting = CountingComm(_world())
    _, batches = _train(counting)
    assert counting.reductions == batches


def _config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**RAW, "output": {"checkpoint_epochs": 1}}))
    return path


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="no mpiexec")
def test_two_rank_cli_run_resumed_on_one_rank_matches_one_rank(tmp_path):
    cfg = _config(tmp_path)
    env = subprocess_env()
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    run = subprocess.run(
        pvmc_argv(1, "train", cfg, "-o", one, "--quiet"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    run = subprocess.run(
        pvmc_argv(2, "train", cfg, "-o", two, "--quiet", "--stop-after", "2"),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 75, run.stderr
    with h5py.File(two, "r") as h5:
        assert h5.attrs["mpi_size"] == 2 and h5["checkpoint"]["streams"].shape == (6, 4)
    run = subprocess.run(
        pvmc_argv(1, "resume", two, "--quiet"), env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    with h5py.File(one, "r") as h1, h5py.File(two, "r") as h2:
        for k in ("a", "b", "W"):
            assert np.allclose(h1["model"][k][()], h2["model"][k][()], rtol=1e-12, atol=1e-13)


@pytest.mark.skipif(shutil.which("mpiexec") is None, reason="no mpiexec")
def test_two_rank_evaluation_equals_one_rank(tmp_path):
    """Each rank evaluates only its shard and its part of the held-out rows (one
    Allreduce of the sums): the history rows and the final evaluation (here AIS for the
    bottom RBM, exact for the top one of a 2-layer DBN) of a 2-rank run equal a 1-rank
    run's up to round-off."""
    raw = {
        **RAW,
        "data": {"name": "bars_stripes", "size": 3, "samples": 200, "held_out": 0.2},
        "dbn": {"layers": [4]},
        "evaluation": {"every": 2, "exact_limit": 6, "ais_runs": 20, "ais_steps": 100},
    }
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    env, files = subprocess_env(), []
    for ranks in (1, 2):
        files.append(tmp_path / f"r{ranks}.h5")
        run = subprocess.run(
            pvmc_argv(ranks, "train", cfg, "-o", files[-1], "--quiet"),
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stderr
    with h5py.File(files[0], "r") as h1, h5py.File(files[1], "r") as h2:
        e1, e2 = h1["evaluation"].attrs, h2["evaluation"].attrs
        assert e1["method"] == e2["method"] == "ais"
        for k in ("log_z", "log_z_error", "log_likelihood", "held_out_log_likelihood"):
            assert np.isclose(e1[k], e2[k], rtol=1e-10, atol=1e-10), k
        for k in ("reconstruction_error", "pseudo_likelihood", "log_likelihood"):
            x, y = h1["history"][k][()], h2["history"][k][()]
            assert np.allclose(x, y, rtol=1e-10, atol=1e-10, equal_nan=True), k
        assert np.isfinite(h1["history"]["log_likelihood"][-1])  # the exact top layer
