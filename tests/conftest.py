"""Shared helpers: small configs and in-process runs."""
from __future__ import annotations

import copy

import pytest

from parallel_vmc.config import from_dict
from parallel_vmc.driver import Run
from parallel_vmc.parallel import SerialComm

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


@pytest.fixture
def tiny_config(tmp_path):
    return lambda **sections: make_config(tmp_path / "run.h5", **sections)
