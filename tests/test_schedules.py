"""Learning-rate schedules and the plateau stopping rule."""

import io

import h5py
import numpy as np
import pytest
from conftest import make_config

from parallel_vmc.optimizers import plateaued, scheduled_rate
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run.driver import Run


@pytest.mark.parametrize("schedule", ["exponential", "cosine"])
def test_decaying_schedules_go_from_lr_to_the_final_fraction(schedule):
    rates = [scheduled_rate(schedule, 0.2, t, 50, 0.1) for t in range(50)]
    assert rates[0] == pytest.approx(0.2) and rates[-1] == pytest.approx(0.02)
    assert np.all(np.diff(rates) < 0)
    assert scheduled_rate("constant", 0.2, 30, 50, 0.1) == 0.2


def test_plateau_rule_sees_a_trend_and_a_flat_series():
    rng = np.random.default_rng(0)
    k = 40
    err = np.full(k, 0.01)
    falling = 3.1 - 0.002 * np.arange(k) + 0.01 * rng.standard_normal(k)
    flat = 3.0 + 0.01 * rng.standard_normal(k)
    assert not plateaued(falling, err)
    assert plateaued(flat, err)
    assert not plateaued(flat, np.zeros(k))  # no error estimate: never decide


def test_schedule_is_recorded_and_plateau_stops_the_optimization(tmp_path):
    cfg = make_config(
        tmp_path / "p.h5",
        optimizer={
            "iterations": 400,
            "schedule": "cosine",
            "plateau_window": 30,
            "learning_rate": 0.05,
        },
    )
    log = io.StringIO()
    Run(cfg, SerialComm(), stream=log, progress=False).execute()
    assert "energy plateau over the last 30 iterations" in log.getvalue()
    with h5py.File(cfg.output.path) as h5:
        n = int(h5["optimization/rows_written"][0])
        assert 30 <= n < 400
        assert h5["optimization"].attrs["stopped_on_plateau"] == n
        lr = h5["optimization/learning_rate"][:n]
        expected = [scheduled_rate("cosine", 0.05, t, 400, 0.1) for t in range(n)]
        np.testing.assert_allclose(lr, expected, rtol=1e-15)
        assert h5.attrs["status"].decode() == "completed"
        assert h5["production"].attrs["samples_per_chain"] > 0
