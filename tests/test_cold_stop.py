"""A stop signal while the first run compiles its kernels (an empty numba cache: a
minute or more) is noted at once, on stderr, and the run then stops as after any unit
of work: exit 75 with a checkpoint that resumes."""

from __future__ import annotations

import pathlib
import queue
import signal
import subprocess
import threading
import time

import pytest
from conftest import ROOT, pvmc_argv, subprocess_env
from test_warm_start import SHORT

pytestmark = pytest.mark.coldcache  # compiles with an empty cache

CONFIG = pathlib.Path(ROOT) / "configs" / "quickstart.yaml"


def _lines(stream, out: queue.Queue) -> None:
    """Every line of stream with the time it arrived, then None."""
    for line in stream:
        out.put((time.monotonic(), line))
    out.put(None)


def test_a_stop_during_the_first_compile_is_noted_at_once(tmp_path):
    run_file, ready = tmp_path / "q.h5", tmp_path / "ready"
    proc = subprocess.Popen(
        pvmc_argv(1, "run", CONFIG, "-o", run_file, "--quiet", *SHORT),
        env=subprocess_env(NUMBA_CACHE_DIR=str(tmp_path / "cache"), PVMC_READY_FILE=str(ready)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=_lines, args=(proc.stderr, lines), daemon=True).start()
        end = time.monotonic() + 600
        while not ready.exists():  # the stop signals are caught; the compile begins
            assert proc.poll() is None and time.monotonic() < end, "never ready"
            time.sleep(0.01)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        first = lines.get(timeout=600)
        assert first is not None, "stderr ended without a line"
        arrived, note = first
        assert "SIGTERM noted while the kernels compile" in note, note
        assert arrived - sent < 1.0, f"the note came {arrived - sent:.2f} s after the signal"
        assert proc.wait(timeout=900) == 75
        rest = []
        while (item := lines.get(timeout=60)) is not None:
            rest.append(item[1])
        assert rest == [], rest  # the note was the one line on stderr
        assert f"resume with: pvmc resume {run_file}" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    resumed = subprocess.run(
        pvmc_argv(1, "resume", run_file, "--quiet"),
        env=subprocess_env(NUMBA_CACHE_DIR=str(tmp_path / "cache")),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
