"""Shared helpers: small configs and in-process runs."""

from __future__ import annotations

import copy

import pytest

from parallel_vmc.config.vmc import from_dict
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run.driver import Run

TINY = {
    "system": {"particles": 2, "dimensions": 2, "omega": 1.0, "interaction": "coulomb"},
    "wavefunction": {"hidden": 2},
    "sampler": {"method": "importance", "walkers_per_rank": 4, "thermalization": 200},
    "optimizer": {"iterations": 5, "samples_per_iteration": 1024},
    "production": {"samples": 4096},
    "seed": 7,
}


def make_config(path, **sections):
    """TINY with sections deep-updated, writing to `path`."""
    raw = copy.deepcopy(TINY)
    for name, values in sections.items():
        if isinstance(values, dict):
            raw.setdefault(name, {}).update(values)
        else:
            raw[name] = values
    raw.setdefault("output", {})["path"] = str(path)
    return from_dict(raw)


def run_config(cfg, comm=None):
    """Run in-process (serial unless comm given) and return the RunResult."""
    return Run(cfg, comm or SerialComm(), progress=False).execute()


def interrupted_run(cfg, monkeypatch, at_call: int, match: str | None = None) -> None:
    """Run cfg in-process and stop it with SIGINT (as Ctrl-C) during the optimization
    call number at_call: RunInterrupted (its message matching match), status
    interrupted, a checkpoint written."""
    import io
    import os
    import signal

    from parallel_vmc.run.driver import RunInterrupted
    from parallel_vmc.sampling import samplers

    original, calls = samplers.Sampler.accumulate, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == at_call:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(samplers.Sampler, "accumulate", interrupted)
    try:
        with pytest.raises(RunInterrupted, match=match):
            Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    finally:
        monkeypatch.setattr(samplers.Sampler, "accumulate", original)


@pytest.fixture
def tiny_config(tmp_path):
    return lambda **sections: make_config(tmp_path / "run.h5", **sections)


@pytest.fixture
def small_disk_of(tmp_path):
    """mount(size) -> a new directory on a tmpfs of that size ("2m", "24m"), unmounted
    at the end: a real file system that fills up. Needs the right to mount (root, as
    in CI); the test is skipped with the reason otherwise."""
    import subprocess

    mounted = []

    def mount(size: str):
        mnt = tmp_path / f"disk{len(mounted)}"
        mnt.mkdir()
        res = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
        mounted.append(mnt)
        return mnt

    yield mount
    for mnt in mounted:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill_disk(directory) -> str:
    """Fill the file system of directory with one file (someone else filling the
    disk); its path."""
    import os

    path = os.path.join(str(directory), "filler")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        while True:
            os.write(fd, b"\0" * 2**16)  # unbuffered: nothing left to flush at close
    except OSError:
        pass
    finally:
        os.close(fd)
    return path


ROOT = str(__import__("pathlib").Path(__file__).resolve().parent.parent)
_LAUNCHER_PREFIXES = (
    "PMI_",
    "PMIX_",
    "HYDRA_",
    "MPIR_",
    "MPI_LOCAL",
    "OMPI_",
    "MV2_",
    "SLURM_",
    "PVMC_",
)


def subprocess_env(**extra) -> dict:
    """Environment for a child `pvmc`/`mpiexec`: the package importable, and none of the
    variables an enclosing mpiexec set (a child would otherwise try to join the parent's
    MPI job, e.g. under `mpiexec -n 2 python -m pytest --with-mpi`)."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(_LAUNCHER_PREFIXES)}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def pvmc_argv(ranks: int, *args) -> list:
    """argv of `mpiexec -n ranks python -m parallel_vmc ARGS` (plain python for 1 rank)."""
    import shutil
    import sys

    base = [sys.executable, "-m", "parallel_vmc", *map(str, args)]
    if ranks == 1:
        return base
    return [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks), *base]


def compiled_signatures() -> dict:
    """Kernel signatures of this process by the module of the jitted function:
    {module: [compiled, loaded from numba's cache]}."""
    import sys

    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return {}
    counts = {}
    for name, module in list(sys.modules.items()):
        if not name.startswith(("parallel_vmc", "test_", "conftest")):
            continue
        for value in list(vars(module).values()):
            if isinstance(value, CPUDispatcher) and value.__module__ == name:
                hits = sum(value.stats.cache_hits.values())
                row = counts.setdefault(name, [0, 0])
                row[0] += max(len(value.signatures) - hits, 0)
                row[1] += hits
    return counts


# The files that take minutes (kernel compiles, many child processes), heaviest first,
# run before the others: pytest-xdist's --dist loadfile hands out whole files in
# collection order, and test_resume.py (6 minutes), collected late, kept one worker busy
# for 5 minutes after the other had run out of files. A name missing here costs only
# time.
HEAVY_FIRST = (
    "test_resume.py",
    "test_parts.py",
    "test_slater.py",
    "test_cli.py",
    "test_jobs.py",
    "test_bosons.py",
    "test_fuzz_config.py",
    "test_jastrow.py",
)


def pytest_collection_modifyitems(session, config, items):
    """The files of HEAVY_FIRST first, in that order; every file's tests stay together
    and in their order."""
    rank = {name: k for k, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # a stable sort


_WORKER_SIGNATURES: dict = {}  # with pytest-xdist: the workers' counts, summed


def pytest_sessionfinish(session):
    """In a pytest-xdist worker: hand this process's counts to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["pvmc_signatures"] = compiled_signatures()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """In the pytest-xdist controller: add up the counts of a worker that finished."""
    for module, (compiled, loaded) in (
        getattr(node, "workeroutput", {}).get("pvmc_signatures", {}).items()
    ):
        row = _WORKER_SIGNATURES.setdefault(module, [0, 0])
        row[0] += compiled
        row[1] += loaded


def pytest_terminal_summary(terminalreporter):
    """How many kernel signatures this process (or, with pytest-xdist, its workers
    together) compiled, each seconds to minutes of LLVM with an empty numba cache, and
    how many it loaded from the cache."""
    counts = _WORKER_SIGNATURES or compiled_signatures()
    if counts:
        compiled = sum(c for c, _ in counts.values())
        loaded = sum(h for _, h in counts.values())
        top = ", ".join(
            f"{m} {c}" for m, (c, _) in sorted(counts.items(), key=lambda i: -i[1][0])[:6] if c
        )
        terminalreporter.write_line(
            f"numba signatures: {compiled} compiled, {loaded} loaded from the cache"
            + (f" (compiled: {top})" if top else "")
        )


_SEEN_SIGNATURES: set = set()


def _new_signatures() -> list:
    """(function, 'compiled'|'cached', signature) of every kernel signature this process
    gained since the last call."""
    import sys

    try:
        from numba.core.registry import CPUDispatcher
    except ImportError:
        return []
    new = []
    for name, module in list(sys.modules.items()):
        if not name.startswith(("parallel_vmc", "test_", "conftest")):
            continue
        for value in list(vars(module).values()):
            if not (isinstance(value, CPUDispatcher) and value.__module__ == name):
                continue
            cached = {str(sig) for sig in value.stats.cache_hits}
            for sig in value.signatures:
                key = (id(value), sig)
                if key not in _SEEN_SIGNATURES:
                    _SEEN_SIGNATURES.add(key)
                    how = "cached" if str(sig) in cached else "compiled"
                    new.append((f"{name}.{value.__name__}", how, str(sig)))
    return new


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """With PVMC_SIGNATURE_LOG=FILE, append one line per kernel signature a test made
    this process compile or load (test id, seconds of the test, function, how,
    signature): where the compile minutes of a cold run go."""
    import os
    import time

    path = os.environ.get("PVMC_SIGNATURE_LOG")
    start = time.perf_counter()
    yield
    if path:
        seconds = time.perf_counter() - start
        with open(path, "a") as fh:
            for function, how, sig in _new_signatures():
                fh.write(f"{item.nodeid}\t{seconds:.1f}\t{function}\t{how}\t{sig[:400]}\n")
