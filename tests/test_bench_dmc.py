"""`pvmc bench --dmc` and the DMC model of `--scaling`: the printed figures are there
and finite, the timing instrumentation of ``Diffusion`` leaves its results bit for bit,
the model's formulas against hand-worked numbers and a simulation of the comb, and bad
input exits 2 naming the option. No timing is asserted (speed is the benchmark's
business, not a test's)."""

from __future__ import annotations

import math
import os
import re
import subprocess

import numpy as np
import pytest
from conftest import ROOT, pvmc_argv, subprocess_env
from test_dmc import two_electrons

from parallel_vmc.bench import scaling_model as scaling
from parallel_vmc.cli.main import main
from parallel_vmc.dmc import balance, streams
from parallel_vmc.dmc.walk import HEADER, SECTIONS, Diffusion
from parallel_vmc.parallel import SerialComm
from parallel_vmc.sampling.samplers import Sampler, Walkers

N2 = os.path.join(ROOT, "configs", "dmc_dot2d_N2_omega1.0.yaml")
QUICK = ["--repeats", "2", "--moves", "4000", "--set", "sampler.thermalization=10"]
NUMBER = r"([-+0-9.eE]+|nan|inf)"


def figure(text: str, label: str) -> float:
    """The first number after ``label`` in the printed text."""
    found = re.search(re.escape(label) + r"\s*" + NUMBER, text)
    assert found, f"no {label!r} in:\n{text}"
    return float(found.group(1))


def shares(text: str) -> dict:
    """{section label: % of a step} of the printed table."""
    rows = re.findall(r"^  (\S.*?)\s+([0-9.]+) %\s+[0-9.]+ us$", text, re.MULTILINE)
    return {name: float(value) for name, value in rows}


def check_dmc_output(text: str) -> None:
    """The figures of --dmc: positive and finite, shares summing to 100 %."""
    for label in ("VMC production sweeps:", "DMC steps:", "DMC / VMC per move:", "sigma_w ="):
        value = figure(text, label)
        assert math.isfinite(value) and value > 0, (label, value)
    assert figure(text, "a DMC step:") > 0 and figure(text, "us (mean over ranks),") > 0
    parts = shares(text)
    assert len(parts) == len(SECTIONS), parts
    assert sum(parts.values()) == pytest.approx(100.0, abs=0.05)
    assert parts["moves (kernel)"] > 0


def test_dmc_mode_prints_both_costs_their_ratio_and_the_parts_of_a_step(capsys):
    assert main(["bench", N2, "--dmc", "--walkers", "40", *QUICK]) == 0
    out = capsys.readouterr().out
    check_dmc_output(out)
    assert "population 40 (40 walkers per rank" in out
    assert "dmc.time_steps[0] = 0.04" in out
    assert "sent + received" not in out  # one rank: no transfers


def test_dmc_mode_on_two_ranks_measures_the_transfers():
    res = subprocess.run(
        pvmc_argv(2, "bench", N2, "--dmc", "--walkers", "30", *QUICK),
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        stdin=subprocess.DEVNULL,
    )
    assert res.returncode == 0, res.stderr
    check_dmc_output(res.stdout)
    assert "2 rank(s), population 60" in res.stdout
    measured = figure(res.stdout, "sent + received per step:")
    assert math.isfinite(measured) and measured >= 0


def diffusion(timings):
    """30 steps of 60 walkers of two electrons (timings: None or a dict)."""
    system, wf, theta = two_electrons(beta=0.5)
    walkers = Walkers.start(5, 0, 60, 4, wf.sigma, 2)
    Sampler("importance", 0.3, system, wf).thermalize(theta, walkers, 50, SerialComm())
    sampler = Sampler("importance", 0.02, system, wf, drift_limit=1.0)
    walk = Diffusion(sampler, theta, walkers, SerialComm(), 60, 3.0, streams.root_key(4))
    walk.timings = timings
    walk.run(30)
    return walk


def test_timings_leave_the_results_bit_for_bit():
    plain, timed = diffusion(None), diffusion({})
    for name in ("e_mean", "weight", "e_trial", "population", "tau_eff"):
        assert getattr(plain.series, name) == getattr(timed.series, name), name
    np.testing.assert_array_equal(plain.walkers.positions, timed.walkers.positions)
    np.testing.assert_array_equal(plain.walkers.rng, timed.walkers.rng)
    np.testing.assert_array_equal(plain.e_prev, timed.e_prev)
    assert (plain.e_est, plain.e_trial) == (timed.e_est, timed.e_trial)
    assert plain.timings is None
    assert set(timed.timings) == set(SECTIONS) - {"balance"}  # one rank: no transfers
    assert all(seconds > 0 for seconds in timed.timings.values())


def test_dmc_efficiency_falls_with_the_rank_count():
    c, fixed, row = 2e-6, 50e-6, 8 * 17
    strong, weak = [], []
    for R in (2, 16, 128, 1000):
        t_ar = scaling.allreduce_seconds(scaling.dmc_allreduce_bytes(R, HEADER), R)
        t_tr = scaling.transfer_seconds(scaling.comb_traffic(1000, 0.01, R), 1000 / R, row, R)
        strong.append(scaling.dmc_strong_efficiency(1000, R, c, fixed, t_ar, t_tr))
        t_tr = scaling.transfer_seconds(scaling.comb_traffic(1000 * R, 0.01, R), 1000, row, R)
        weak.append(scaling.dmc_weak_efficiency(1000, c, fixed, t_ar, t_tr))
    assert strong == sorted(strong, reverse=True) and 0 < strong[-1] < strong[0] < 1
    assert weak == sorted(weak, reverse=True) and 0 < weak[-1] < weak[0] < 1


def test_the_dmc_allreduce_grows_with_its_buffer():
    assert scaling.dmc_allreduce_bytes(10000, HEADER) == 8 * (HEADER + 10000)
    times = [
        scaling.allreduce_seconds(scaling.dmc_allreduce_bytes(R, HEADER), 1024) for R in (2, 256)
    ]
    times.append(scaling.allreduce_seconds(scaling.dmc_allreduce_bytes(10**5, HEADER), 1024))
    assert times == sorted(times) and times[0] < times[-1]


def test_dmc_model_known_values():
    # perfectly divisible, no fixed cost, free communication: E = 1
    assert scaling.dmc_strong_efficiency(1000, 10, 1e-6, 0.0, 0.0, 0.0) == pytest.approx(1.0)
    # a fixed cost of 100 walkers' worth: (100 + 1000) / (10 (100 + 100))
    assert scaling.dmc_strong_efficiency(1000, 10, 1e-6, 1e-4, 0.0, 0.0) == pytest.approx(0.55)
    assert scaling.dmc_weak_efficiency(100, 1e-6, 0.0, 1e-4, 0.0) == pytest.approx(0.5)
    assert scaling.dmc_step_seconds(7, 2.0, 1.0, 0.5, 0.25) == 15.75
    assert scaling.step_cost_fit(10, 3.0, 110, 13.0) == pytest.approx((2.0, 0.1))
    assert scaling.step_cost_fit(10, 0.5, 110, 13.0) == (0.0, 13.0 / 110)  # noise: no fixed
    assert scaling.comb_traffic(400, 0.1, 1) == 0.0
    assert scaling.comb_traffic(400, 0.1, 2) == pytest.approx(math.sqrt(2 / math.pi))
    assert scaling.comb_traffic(400, 0.1, 64) == pytest.approx(2 * math.sqrt(math.pi / 2) * 2.0)
    # 10 walkers, one message a side, 100 bytes each at 1 GB/s
    t = scaling.transfer_seconds(10, 50, 100, 64, alpha=1e-6, bandwidth=1e9)
    assert t == pytest.approx(2e-6 + 1e-6)
    assert scaling.transfer_seconds(10, 50, 100, 2, 1e-6, 1e9) == pytest.approx(1e-6 + 1e-6)
    # 20 walkers a side, 5 a rank: from 4 ranks each side
    t = scaling.transfer_seconds(40, 5, 100, 64, alpha=1e-6, bandwidth=1e9)
    assert t == pytest.approx(8e-6 + 4e-6)
    assert scaling.transfer_seconds(0.0, 5, 100, 1) == 0.0


def simulated_traffic(ranks: int, n: int, spread: float, steps: int, seed: int) -> float:
    """The mean over steps of the walkers the busiest rank sends plus receives, from
    even counts of n walkers with independent weights 1 + spread N(0, 1) (so that the
    population is off its target by about spread sqrt(ranks n), as in DMC): every
    rank's count after the comb (as ``Diffusion._branch`` counts them) and the moves
    of ``balance.plan`` (walkers that cross each boundary of the global order)."""
    rng = np.random.default_rng(seed)
    busiest = []
    for _ in range(steps):
        totals = (1.0 + spread * rng.standard_normal((ranks, n))).sum(axis=1)
        ends = np.cumsum(totals)
        u = rng.random()
        counts = np.ceil(ends - u) - np.ceil(ends - totals - u)
        old = np.concatenate([[0], np.cumsum(counts)])
        even = balance.even_counts(int(old[-1]), ranks)
        crossing = np.abs(old - np.concatenate([[0], np.cumsum(even)]))
        busiest.append((crossing[:-1] + crossing[1:]).max())
    return float(np.mean(busiest))


@pytest.mark.parametrize(
    "ranks, n, spread",
    [(2, 500, 0.1), (2, 500, 0.3), (100, 100, 0.05), (1000, 20, 0.1), (1000, 100, 0.05)],
)
def test_the_comb_traffic_model_meets_a_simulation_of_the_comb(ranks, n, spread):
    simulated = simulated_traffic(ranks, n, spread, 400 if ranks < 1000 else 60, seed=ranks)
    model = scaling.comb_traffic(ranks * n, spread, ranks)
    assert simulated == pytest.approx(model, rel=0.15)


def test_scaling_with_a_dmc_section_prints_the_dmc_model(capsys):
    args = ["--walkers", "4", "--set", "optimizer.samples_per_iteration=256"]
    assert main(["bench", N2, "--scaling", *QUICK, *args, "--set", "dmc.walkers=200"]) == 0
    out = capsys.readouterr().out
    assert figure(out, "medians:") > 0 and "t_fixed" in out
    rows = {}
    for line in out.split("DMC step at")[1].splitlines():
        cells = line.split()
        if cells and cells[0].isdigit():
            rows[int(cells[0])] = line
    assert sorted(rows) == list(scaling.RANK_COUNTS)
    assert "refused" not in rows[100] and "refused" in rows[1000]  # 200 walkers
    efficiencies = [float(e) for e in re.findall(r"([0-9.]+)%", rows[100])]
    assert len(efficiencies) == 2 and all(0 < e <= 100 for e in efficiencies)
    assert f"{8 * (HEADER + 10000)} B" in rows[10000]


@pytest.mark.parametrize(
    "args, says",
    [
        ((os.path.join(ROOT, "configs", "quickstart.yaml"), "--dmc"), "dmc.time_steps"),
        ((N2, "--dmc", "--scaling"), "--dmc and --scaling: allowed: one of them"),
        ((N2, "--dmc", "--efficiency"), "--efficiency and --dmc: allowed: one of them"),
        (("--dmc",), "--dmc needs a CONFIG"),
        ((N2, "--dmc", "--walkers", "0"), "--walkers 0: allowed"),
    ],
)
def test_bad_dmc_input_exits_2_naming_the_option(args, says, capsys):
    assert main(["bench", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err, err
