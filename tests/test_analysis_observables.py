"""The analysis of /production/observables (format 3): reading, validation, the
report with its batch-means checks, and the plots."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from analysis.runfile import RunFileError, read_run
from analysis_fixtures import add_observables, write_run_file


def analysis(*args, cwd=None):
    from conftest import subprocess_env
    return subprocess.run([sys.executable, "-m", "analysis", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=subprocess_env())


@pytest.fixture
def run3(tmp_path):
    path = tmp_path / "obs.h5"
    write_run_file(path, density=False)
    return path, add_observables(path)


def test_observables_are_read_back(run3):
    path, written = run3
    run = read_run(path)
    assert run.observables_attrs["n_batches"] == 16
    for name in ("kinetic", "trap", "r12"):
        mean, error = written[name]
        assert run.observables[name]["mean"] == mean
        assert run.observables[name]["error"] == error
        assert run.observables[name]["batch_means"].shape == (16,)
    np.testing.assert_array_equal(run.observables["density"]["counts"], written["density"])
    np.testing.assert_array_equal(run.observables["density_image"]["counts"],
                                  written["density_image"])
    assert run.observables["pair_distance"]["attrs"]["overflow"] >= 0


@pytest.mark.parametrize("damage,named", [
    (lambda g: g["density"].__delitem__("error"), "/production/observables/density lacks"),
    (lambda g: (g["pair_distance"].__delitem__("counts"),
                g["pair_distance"].create_dataset("counts", data=np.ones(7))),
     "/production/observables/pair_distance/counts"),
    (lambda g: (g["density_image"].__delitem__("density"),
                g["density_image"].create_dataset("density", data=np.ones((3, 12)))),
     "/production/observables/density_image/density"),
])
def test_malformed_observables_exit_2_naming_the_dataset(run3, damage, named):
    path, _ = run3
    with h5py.File(path, "r+") as h5:
        damage(h5["production/observables"])
    with pytest.raises(RunFileError, match=named):
        read_run(path)
    res = analysis(path)
    assert res.returncode == 2 and named in res.stderr


def test_report_lists_the_observables_with_errors(run3):
    path, written = run3
    res = analysis(path)
    assert res.returncode == 0, res.stderr
    mean, error = written["r12"]
    assert f"<r12>         {mean:.6f} +- {error:.6f}" in res.stdout
    assert "histograms: density 40" in res.stdout and "density_image 12x12" in res.stdout
    assert "batches too short" not in res.stdout
    report = json.loads(analysis(path, "--json").stdout)
    obs = report["observables"]
    assert obs["scalars"]["trap"]["mean"] == pytest.approx(written["trap"][0])
    assert obs["n_batches"] == 16 and obs["density_image"]["bins"] == [12, 12]


def test_short_batches_are_flagged(tmp_path):
    """A batch-means error of E well below its blocking error means batches shorter than
    the correlation time: the report says so (and not for the consistent case above)."""
    path = tmp_path / "short.h5"
    write_run_file(path, density=False)
    add_observables(path, batch_error=0.0005, blocking_error=0.0013)
    res = analysis(path)
    assert res.returncode == 0
    assert "batches too short" in res.stdout


def test_plots_of_the_observables(run3, tmp_path):
    path, _ = run3
    out = tmp_path / "plots"
    res = analysis(path, "--plots", out)
    assert res.returncode == 0, res.stderr
    for kind in ("density", "density_image", "pair_distance"):
        png = out / f"obs_{kind}.png"
        assert png.exists() and os.path.getsize(png) > 5000, kind
