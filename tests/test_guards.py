"""Guards: rewinds on non-finite numbers, a clear failure with the last good
parameters kept, and stuck walkers counted."""

import io

import h5py
import numpy as np
import pytest
from conftest import interrupted_run, make_config

from analysis.runfile import read_run
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run.driver import Run, RunFailed


def test_diverging_learning_rate_rewinds_then_fails_cleanly(tmp_path):
    lr, max_rewinds, factor = 1e3, 3, 0.5
    cfg = make_config(
        tmp_path / "div.h5",
        optimizer={
            "method": "sgd",
            "learning_rate": lr,
            "iterations": 50,
            "max_rewinds": max_rewinds,
            "rewind_factor": factor,
        },
    )
    log = io.StringIO()
    with pytest.raises(RunFailed, match="non-finite energy or gradient at iteration"):
        Run(cfg, SerialComm(), stream=log, progress=False).execute()
    lines = [x for x in log.getvalue().splitlines() if x.startswith("rewind ")]
    assert len(lines) == max_rewinds and lines[-1].startswith(f"rewind {max_rewinds}/")
    run = read_run(cfg.output.path)  # the file opens; analysis reads it
    assert run.status.startswith("failed: non-finite energy or gradient at iteration")
    assert f"after {max_rewinds} rewind(s)" in run.status
    opt = run.optimization
    n = opt["energy"].shape[0]
    assert 0 < n < 50 and np.all(np.isfinite(opt["energy"]))
    # The last good parameters: the kept row's, and they are what /wavefunction holds.
    theta = np.concatenate(
        [run.wavefunction["a"], run.wavefunction["b"], run.wavefunction["W"].ravel()]
    )
    np.testing.assert_array_equal(theta, opt["params"][n - 1])
    assert np.all(np.isfinite(theta))
    # That row was evaluated at the learning rate after the last rewind.
    assert opt["learning_rate"][n - 1] == pytest.approx(lr * factor**max_rewinds)
    assert run.segments[-1]["ended"] == "failed"


def test_no_rewinds_allowed_fails_at_the_first_bad_iteration(tmp_path):
    cfg = make_config(
        tmp_path / "div0.h5",
        optimizer={"method": "sgd", "learning_rate": 1e3, "iterations": 50, "max_rewinds": 0},
    )
    with pytest.raises(RunFailed, match="after 0 rewind"):
        Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()


def test_stuck_walkers_are_counted_and_reported(tmp_path):
    """A Metropolis box of side 1e6 never accepts: every walker is stuck."""
    cfg = make_config(
        tmp_path / "stuck.h5",
        sampler={"method": "metropolis", "step": 1e6, "thermalization": 0},
        optimizer={"iterations": 0},
        production={"samples": 4 * 2048},
    )
    log = io.StringIO()
    Run(cfg, SerialComm(), stream=log, progress=False).execute()
    assert "4 walker(s) had no accepted move in 1000 sweeps" in log.getvalue()
    with h5py.File(cfg.output.path) as h5:
        assert h5["production"].attrs["stuck_walkers"] == 4
        assert h5["production"].attrs["acceptance"] == 0.0


def test_healthy_run_has_no_stuck_walkers(tiny_config):
    cfg = tiny_config()
    Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    with h5py.File(cfg.output.path) as h5:
        assert h5["production"].attrs["stuck_walkers"] == 0


def test_pvmc_process_ignores_stop_signals_once_its_run_is_over(tmp_path, monkeypatch):
    """As its own process (cli.entry), a run that ends goes straight from catching the
    stop signals to ignoring them: a late copy forwarded by srun must find no moment
    with the default handler, which kills. In-process the caller's handlers return."""
    import signal

    from parallel_vmc import control

    names = [getattr(signal, n) for n in control.STOP_SIGNALS]
    before = {s: signal.getsignal(s) for s in names}
    seen = []
    monkeypatch.setattr(
        signal, "signal", lambda s, h, real=signal.signal: seen.append((s, h)) or real(s, h)
    )
    try:
        monkeypatch.setattr(control, "_IGNORE_AFTER_RUNS", [True])
        Run(
            make_config(tmp_path / "a.h5"), SerialComm(), stream=io.StringIO(), progress=False
        ).execute()
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in names)
        assert all(h is not signal.SIG_DFL for _, h in seen), seen
        other = control.Control(0, 1e9, None)  # not a VMC run (training): restored
        other.install()
        other.uninstall()
        assert all(signal.getsignal(s) is signal.SIG_IGN for s in names)
        for s in names:
            signal.signal(s, before[s])
        other.install()
        other.uninstall()
        assert {s: signal.getsignal(s) for s in names} == before
    finally:
        for s, h in before.items():
            signal.signal(s, h)
    monkeypatch.setattr(control, "_IGNORE_AFTER_RUNS", [False])
    Run(
        make_config(tmp_path / "b.h5"), SerialComm(), stream=io.StringIO(), progress=False
    ).execute()
    assert {s: signal.getsignal(s) for s in names} == before


def test_sigint_in_process_stops_cleanly_and_resumes_bit_identically(tmp_path, monkeypatch):
    """One rank, in-process: Ctrl-C during optimization -> RunInterrupted, status
    'interrupted'; the checkpoint resumes to exactly the uninterrupted result."""
    import signal

    from parallel_vmc.runfile import checkpoint

    ref = make_config(tmp_path / "ref.h5", optimizer={"iterations": 12})
    Run(ref, SerialComm(), stream=io.StringIO(), progress=False).execute()

    cfg = make_config(tmp_path / "cut.h5", optimizer={"iterations": 12})
    before = signal.getsignal(signal.SIGINT)  # Python's, or SIG_IGN in a background job
    interrupted_run(cfg, monkeypatch, at_call=5, match="SIGINT at optimize 5/12")
    assert signal.getsignal(signal.SIGINT) is before  # restored
    with h5py.File(cfg.output.path) as h5:
        assert h5.attrs["status"].decode() == "interrupted"
    state = checkpoint.read(checkpoint.path_for(cfg.output.path))
    Run(cfg, SerialComm(), stream=io.StringIO(), progress=False, resume=state).execute()
    with h5py.File(ref.output.path) as a, h5py.File(cfg.output.path) as b:
        for name in (
            "optimization/params",
            "optimization/energy",
            "production/local_energy",
            "checkpoint/rng_states",
            "checkpoint/positions",
        ):
            assert a[name][()].tobytes() == b[name][()].tobytes(), name
        assert a["summary"].attrs["energy"] == b["summary"].attrs["energy"]
        assert list(b["segments/ended"].asstr()[:]) == ["interrupted", "completed"]


def test_non_finite_local_energy_in_production_fails_every_rank(tmp_path, monkeypatch):
    """The kernels turn a division by zero into inf (error_model numpy): production
    stops on it (status failed, naming the rank; chain and sample on its stderr)
    instead of writing it into the series."""
    from parallel_vmc.sampling import samplers

    cfg = make_config(
        tmp_path / "inf.h5", optimizer={"iterations": 3}, production={"samples": 4096}
    )
    original = samplers.Sampler.produce

    def poisoned(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        out[0][2, 5] = np.inf
        return out

    monkeypatch.setattr(samplers.Sampler, "produce", poisoned)
    with pytest.raises(RunFailed, match="exception on"):
        Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    with h5py.File(cfg.output.path) as h5:
        assert h5.attrs["status"].decode().startswith("failed: an exception on rank 0")
        assert h5["production/samples_written"][0] == 0


def test_a_stop_while_compiling_is_noted_at_once_once_and_on_rank_0_only():
    """Control.compiling: a stop signal during the block (or one that came before and
    waits for the next unit) gets one line at once on rank 0; the flag is still set,
    so the stop itself comes after the next unit, as always."""
    import os
    import signal
    import time

    from parallel_vmc.control import Control

    def notes(rank: int, before: bool) -> tuple[list, str | None]:
        control, stream = Control(rank, 1e9, None), io.StringIO()
        control.install()
        try:
            if before:
                os.kill(os.getpid(), signal.SIGUSR1)
            with control.compiling(stream):
                os.kill(os.getpid(), signal.SIGTERM)
                os.kill(os.getpid(), signal.SIGUSR1)
                end = time.monotonic() + 1.0
                while time.monotonic() < end and not stream.getvalue():
                    time.sleep(0.001)  # the note comes while the block still runs
                time.sleep(0.05)
                lines = stream.getvalue().splitlines()
        finally:
            control.uninstall()
        return lines, control.signal_name

    lines, flag = notes(0, before=False)
    assert lines == [
        "pvmc: SIGTERM noted while the kernels compile (a minute or more with an empty "
        "numba cache); the run stops with a checkpoint once they are compiled"
    ]
    assert flag is not None  # the stop flag for the next unit
    lines, _ = notes(0, before=True)
    assert len(lines) == 1 and lines[0].startswith("pvmc: SIGUSR1 noted"), lines
    lines, flag = notes(1, before=False)
    assert lines == [] and flag is not None
