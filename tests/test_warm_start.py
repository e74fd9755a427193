"""A second ``pvmc run`` compiles nothing: every jitted function it calls comes from
numba's on-disk cache (the kernels take no jitted functions as arguments, which would
defeat that cache, and the cache key follows the sources; ``jit_cache.py``), and it
gives the same bits as the first."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest
from conftest import ROOT, subprocess_env

pytestmark = pytest.mark.coldcache  # the first run compiles with an empty cache

CONFIG = pathlib.Path(ROOT) / "configs" / "quickstart.yaml"
SHORT = [
    "--set",
    "sampler.thermalization=100",
    "--set",
    "optimizer.iterations=3",
    "--set",
    "optimizer.samples_per_iteration=1024",
    "--set",
    "production.samples=4096",
]

# Runs `pvmc run` in this process and prints, at exit, the numba cache statistics of
# every jitted function of the package: {"hits": n, "misses": n}.
PROBE = """
import atexit, json, sys
from numba.core.dispatcher import Dispatcher

def report():
    hits = misses = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("parallel_vmc"):
            continue
        for obj in vars(module).values():
            if isinstance(obj, Dispatcher):
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
    print("JIT-STATS " + json.dumps({"hits": hits, "misses": misses}))

atexit.register(report)
from parallel_vmc.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_once(tmp_path, name, cache_dir) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            "run",
            str(CONFIG),
            "-o",
            str(tmp_path / name),
            "--quiet",
            *SHORT,
        ],
        env=subprocess_env(NUMBA_CACHE_DIR=str(cache_dir)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(s for s in out.stdout.splitlines() if s.startswith("JIT-STATS "))
    return json.loads(line[len("JIT-STATS ") :]), out.stdout


def test_second_run_loads_every_kernel_from_the_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    first, _ = run_once(tmp_path, "first.h5", cache)
    assert first["misses"] > 0  # a fresh cache: the first run compiles
    second, text = run_once(tmp_path, "second.h5", cache)
    assert second["misses"] == 0, second
    assert second["hits"] > 0
    compile_line = [s for s in text.splitlines() if s.startswith("time")]
    assert compile_line and "compile" in compile_line[0]
    # The kernel loaded from the cache computes what the one just compiled did, to the
    # bit: a function called (not inlined) that reorders its sums once ran in one copy
    # when just compiled and in another when loaded (jit/inline.py).
    import h5py
    import numpy as np

    with h5py.File(tmp_path / "first.h5") as a, h5py.File(tmp_path / "second.h5") as b:
        for name in ("production/local_energy", "optimization/energy"):
            assert np.array_equal(a[name][...], b[name][...]), name
