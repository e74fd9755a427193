"""scripts/make_figures.py: the documentation's figures drawn from tiny real run files.

The run files are made by the script's own ``ensure_run`` (``pvmc run`` / ``pvmc
train`` in a child process, one rank) from the shipped configs with tiny ``--set``
overrides, a few seconds in all; the figures must be written and non-empty PNGs.
"""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest
from conftest import ROOT

pytest.importorskip("matplotlib")

PNG = b"\x89PNG\r\n\x1a\n"
TINY_VMC = {
    "optimizer.iterations": 4,
    "optimizer.samples_per_iteration": 256,
    "production.samples": 2048,
    "sampler.walkers_per_rank": 4,
    "sampler.thermalization": 50,
}


def _script():
    spec = importlib.util.spec_from_file_location(
        "make_figures", os.path.join(ROOT, "scripts", "make_figures.py")
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_figures"] = module  # (its dataclass looks itself up there)
    spec.loader.exec_module(module)
    return module


mf = _script()


def _job(name, config, command="run", **extra):
    return mf.Job(name, config, command, {"quick": {**extra}})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny run files of the quick start, the boson config and a training config."""
    where = str(tmp_path_factory.mktemp("runs"))
    jobs = {
        "quickstart": _job("quickstart", "configs/quickstart.yaml", **TINY_VMC),
        "bosons": _job(
            "bosons",
            "configs/bosons3d_N10_elliptic.yaml",
            **TINY_VMC,
            **{"system.particles": 3, "production.density_bins": 20, "production.pair_bins": 50},
        ),
        "train": _job(
            "train",
            "configs/train_bars3x3.yaml",
            "train",
            **{"training.epochs": 4, "training.chains": 20, "evaluation.every": 2},
        ),
    }
    files = {name: mf.ensure_run(job, where, "quick", 1) for name, job in jobs.items()}
    return jobs, where, {name: path for name, (path, _) in files.items()}


def _is_png(path):
    assert os.path.getsize(path) > 1000
    with open(path, "rb") as f:
        assert f.read(8) == PNG


def test_figures_are_written(runs, tmp_path):
    _, _, files = runs
    out = lambda name: str(tmp_path / f"{name}.png")  # noqa: E731
    written = [
        mf.draw_quickstart_energy(files["quickstart"], out("quickstart_energy")),
        mf.draw_dot_densities([files["quickstart"]], out("dot_densities")),
        mf.draw_boson_densities(files["bosons"], out("boson_densities")),
        *mf.draw_rbm(files["train"], out("rbm_filters"), out("rbm_samples")),
    ]
    assert sorted(os.path.basename(p) for p in written) == sorted(f + ".png" for f in mf.FIGURES)
    for path in written:
        _is_png(path)


def test_completed_runs_are_reused_and_other_settings_replaced(runs, capsys):
    jobs, where, files = runs
    path, seconds = mf.ensure_run(jobs["quickstart"], where, "quick", 1)
    assert (path, seconds) == (files["quickstart"], None)
    assert "reusing" in capsys.readouterr().out
    assert mf.file_state(path, {"optimizer.iterations": 5}) == "other"
    assert mf.file_state(os.path.join(where, "absent.h5"), {}) == "missing"


def test_run_file_names_and_settings():
    n20 = mf.JOBS["N20"]
    assert n20.path("w", "full").endswith("dot2d_N20_omega1.0.h5")
    assert n20.path("w", "quick").endswith("dot2d_N20_omega1.0-quick.h5")
    assert n20.path("w", "default").endswith("dot2d_N20_omega1.0-short.h5")
    assert mf.JOBS["quickstart"].settings("quick") == {}
    for job in mf.JOBS.values():
        assert os.path.isfile(os.path.join(ROOT, job.config))


def test_without_matplotlib_exit_2(monkeypatch, tmp_path, capsys):
    import analysis.plots

    def missing():
        raise analysis.plots.PlotError("plots need matplotlib, which is not installed")

    monkeypatch.setattr(analysis.plots, "require_matplotlib", missing)
    assert mf.main(["--runs", str(tmp_path / "r"), "--out", str(tmp_path / "f")]) == 2
    assert "matplotlib" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
