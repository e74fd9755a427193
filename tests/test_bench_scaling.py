"""The Allreduce cost model and efficiencies (scaling.py), and `pvmc bench --allreduce
/ --scaling`: formulas against hand-worked numbers, bad input exits 2. No timing is
asserted (speed is shown by the benchmark, not by tests)."""

import math
import subprocess
import sys

import pytest

from parallel_vmc.bench import scaling_model as scaling
from parallel_vmc.bench.scaling_run import parse_sizes
from parallel_vmc.control import N_FLAGS
from parallel_vmc.sampling import estimators


def pvmc(*args):
    from conftest import subprocess_env

    return subprocess.run(
        [sys.executable, "-m", "parallel_vmc", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
    )


def test_allreduce_model_short_message_is_recursive_doubling():
    # 448 bytes on 1000 ranks: 10 steps of alpha + n beta (+ n gamma)
    t = scaling.allreduce_seconds(448, 1000, alpha=1e-6, bandwidth=1e9, gamma=1e-9)
    assert t == pytest.approx(10 * (1e-6 + 448 * 2e-9))
    assert scaling.allreduce_seconds(448, 1, alpha=1e-6, bandwidth=1e9) == 0.0


def test_allreduce_model_long_message_is_rabenseifner():
    n = 8e6
    t = scaling.allreduce_seconds(n, 1024, alpha=1e-6, bandwidth=1e9, gamma=0.5e-9)
    share = 1023 / 1024 * n
    assert t == pytest.approx(2 * 10 * 1e-6 + 2 * share * 1e-9 + share * 0.5e-9)
    # from 2^10 to 2^20 ranks: 20 more latencies, the bytes sent grow by (R-1)/R only
    t_big = scaling.allreduce_seconds(n, 2**20, alpha=1e-6, bandwidth=1e9)
    t_small = scaling.allreduce_seconds(n, 2**10, alpha=1e-6, bandwidth=1e9)
    assert t_big - t_small == pytest.approx(20e-6 + 2 * n * 1e-9 * (2**-10 - 2**-20))


def test_short_long_switch_at_the_threshold():
    at = scaling.allreduce_seconds(scaling.SHORT_MESSAGE_BYTES, 4, 1.0, 1e30)
    above = scaling.allreduce_seconds(scaling.SHORT_MESSAGE_BYTES + 1, 4, 1.0, 1e30)
    assert at == pytest.approx(2.0) and above == pytest.approx(4.0)  # p and 2p alphas


def test_sweeps_per_walker_never_below_one():
    assert scaling.sweeps_per_walker(32768, 1, 16) == 2048
    assert scaling.sweeps_per_walker(32768, 1000, 16) == 3  # ceil(2.048)
    assert scaling.sweeps_per_walker(32768, 10000, 16) == 1


def test_weak_and_strong_efficiency():
    assert scaling.weak_efficiency(9.0, 1.0, 0.0) == 1.0
    assert scaling.weak_efficiency(9.0, 1.0, 10.0) == 0.5
    # perfectly divisible, nothing serial, free reduction: E = 1
    assert scaling.strong_efficiency(1.0, 0.0, 0.0, 1600, 10, 16) == pytest.approx(1.0)
    # Amdahl: T1 = 100 + 10, T10 = 10 + 10 -> 110 / 200
    assert scaling.strong_efficiency(1.0, 10.0, 0.0, 1600, 10, 16) == pytest.approx(0.55)


def test_parse_sizes():
    assert parse_sizes("63,2835870") == [63, 2835870]
    for bad in ("", "0", "1,x", "-5", f"{2**27 + 1}", "1.5"):
        with pytest.raises(ValueError, match="allowed"):
            parse_sizes(bad)


@pytest.mark.parametrize(
    "args, says",
    [
        (("--allreduce", "0"), "--allreduce '0': allowed"),
        (("--allreduce", "a,b"), "--allreduce 'a,b': allowed"),
        (("--allreduce", "8", "--allreduce-repeats", "0"), "--allreduce-repeats 0: allowed"),
        (("--allreduce", "8", "--scaling"), "--allreduce and --scaling: allowed: one of them"),
        (("--scaling", "--scan-particles", "2,6"), "--scaling and --scan-particles"),
        (("--production-at", "0"), "--production-at 0: allowed: a rank count"),
    ],
)
def test_bad_input_exits_2(args, says):
    res = pvmc("bench", *args)
    assert res.returncode == 2 and says in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_allreduce_prints_a_row_per_size():
    res = pvmc("bench", "--allreduce", "56,1000", "--allreduce-repeats", "3")
    assert res.returncode == 0, res.stderr
    rows = [
        line.split()
        for line in res.stdout.splitlines()
        if line.split() and line.split()[0].isdigit()
    ]
    assert [(int(r[0]), int(r[1])) for r in rows] == [(56, 448), (1000, 8000)]
    assert all(float(r[2]) > 0 for r in rows)
    assert "on 1 rank(s)" in res.stdout


def test_scaling_prints_the_table_for_each_rank_count():
    import os

    from conftest import ROOT

    res = pvmc(
        "bench",
        os.path.join(ROOT, "configs", "quickstart.yaml"),
        "--scaling",
        "--repeats",
        "2",
        "--walkers",
        "4",
        "--set",
        "optimizer.samples_per_iteration=256",
        "--set",
        "sampler.thermalization=10",
    )
    assert res.returncode == 0, res.stderr
    rows = {
        int(line.split()[0]): line.split()
        for line in res.stdout.splitlines()
        if line.split() and line.split()[0].isdigit()
    }
    assert sorted(rows) == list(scaling.RANK_COUNTS)
    for R, cells in rows.items():
        weak, strong = float(cells[3].rstrip("%")), float(cells[-1].rstrip("%"))
        assert 0 < strong <= weak <= 100, cells
        assert int(cells[4]) == max(1, math.ceil(256 / (R * 4)))  # sweeps per walker
    # the quick start's 24 parameters: the iteration sums (estimators.py) and the flags
    n_buf = estimators.iteration_size(24) + N_FLAGS
    assert n_buf == 65 and f"Allreduce buffer {n_buf} doubles" in res.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (("--weak-scaling", "2"), "--weak-scaling needs a CONFIG"),
        (("CONFIG", "--weak-scaling", "1"), "--weak-scaling 1: allowed: a rank count >= 2"),
        (("CONFIG", "--weak-scaling", "2", "--scaling"), "--scaling and --weak-scaling"),
    ],
)
def test_weak_scaling_bad_input_exits_2(args, says):
    import os

    from conftest import ROOT

    config = os.path.join(ROOT, "configs", "quickstart.yaml")
    res = pvmc("bench", *[config if a == "CONFIG" else a for a in args])
    assert res.returncode == 2 and says in res.stderr, res.stderr


def test_weak_scaling_runs_pairs_and_reports_their_median(tmp_path):
    """The runs are real (mpiexec -n 2); only the form of the report is checked."""
    import os

    from parallel_vmc.bench.scaling_run import _launcher

    if not os.path.exists(_launcher()) and not __import__("shutil").which(_launcher()):
        pytest.skip("no mpiexec")
    from conftest import ROOT

    res = pvmc(
        "bench",
        os.path.join(ROOT, "configs", "quickstart.yaml"),
        "--weak-scaling",
        "2",
        "--repeats",
        "2",
        "--set",
        "optimizer.iterations=6",
        "--set",
        "optimizer.samples_per_iteration=512",
        "--set",
        "sampler.thermalization=20",
    )
    assert res.returncode == 0, res.stderr
    pairs = [
        line.split()
        for line in res.stdout.splitlines()
        if line.split() and line.split()[0].isdigit()
    ]
    assert [int(p[0]) for p in pairs] == [1, 2]
    ratios = [float(p[1]) / float(p[2]) for p in pairs]
    median = float(res.stdout.split("median of pairs ")[1].split("%")[0])
    assert median == pytest.approx(
        100 * sorted(ratios)[0] / 2 + 100 * sorted(ratios)[1] / 2, abs=0.2
    )


@pytest.mark.mpi(min_size=2)
def test_allreduce_times_are_the_slowest_ranks_on_every_rank():
    from mpi4py import MPI

    from parallel_vmc.bench.scaling_run import time_allreduce
    from parallel_vmc.parallel import world

    times = time_allreduce(world(), 100, 5)
    everyone = MPI.COMM_WORLD.allgather(times)
    assert all(t == everyone[0] for t in everyone) and all(t > 0 for t in times)


def test_reference_with_parallel_figure_exits_2(tmp_path):
    (tmp_path / "ref.c").write_text("int main(void) { return 0; }\n")
    res = pvmc("bench", "--allreduce", "8", "--reference", tmp_path / "ref.c")
    assert res.returncode == 2 and "--allreduce and --reference" in res.stderr, res.stderr


def test_production_at_prints_rank0_memory_file_and_write_rate():
    """The figures come from preflight's accounting (the one home of the sizes) and the
    ns/move measured here; checked against them, not against speeds."""
    import os
    import re

    from conftest import ROOT

    from parallel_vmc.config.vmc import load_config
    from parallel_vmc.run.preflight import Sizes

    config = os.path.join(ROOT, "configs", "quickstart.yaml")
    res = pvmc(
        "bench",
        config,
        "--production-at",
        "1000",
        "--moves",
        "2e4",
        "--repeats",
        "2",
        "--set",
        "production.samples=16777216000",
    )
    assert res.returncode == 0, res.stderr
    s = Sizes(load_config(config, ["production.samples=16777216000"]), 1000)
    assert f"{s.n_chains} chains" in res.stdout and f"{s.n_samples} samples per chain" in res.stdout
    assert f"its column block {s.summary_bytes() / 1e9:.3f} GB" in res.stdout
    ns = float(re.search(r"here: ([0-9.]+) ns/move", res.stdout).group(1))
    per_rank = float(re.search(r"([0-9.]+) MB/s per rank", res.stdout).group(1))
    assert per_rank == pytest.approx(8 / (2 * ns * 1e-9) / 1e6, rel=0.02)


def test_preflight_rank0_parts_add_up():
    from parallel_vmc.config.vmc import from_dict
    from parallel_vmc.run.preflight import Sizes

    cfg = from_dict(
        {
            "system": {"particles": 2, "dimensions": 2, "omega": 1.0},
            "production": {"samples": 2**20, "store_components": True},
        }
    )
    s = Sizes(cfg, 4)
    rank0, other = s.memory_per_rank()
    assert rank0 - other == s.gathered_bytes() + s.summary_bytes()
    # rank 0's extra: one column block of the 64 chains, not their 2^14-sample series
    # and the verdict's 8 moments of each chain
    assert s.summary_bytes() == 2 * 8 * 64 * s.chunk + 2 * 8 * 2**22 + 8 * 8 * 64
    assert s.summary_rank_bytes() == 8 * 2**14 * (16 + 25)
