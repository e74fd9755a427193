"""The analysis of /production/observables (format 3): reading, validation, the
report with its batch-means checks, the plots, and older formats next to it."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from analysis_fixtures import gaussian_observables, write_run_file

from analysis.cli import main
from analysis.plots import run_plots
from analysis.runfile import RunFileError, read_run, shell_volumes

OBS = "/production/observables/"


@pytest.fixture(scope="module")
def gauss():
    """Observables of 2 particles in 2D (exact density known), computed once."""
    return gaussian_observables()


@pytest.fixture
def run3(tmp_path, gauss):
    path = tmp_path / "obs.h5"
    write_run_file(path, format_version=3, observables=gauss)
    return path, gauss


def _json(capsys, *argv):
    assert main([*map(str, argv), "--json", "--n-boot", "20"]) == 0
    return json.loads(capsys.readouterr().out)


def _text(capsys, *argv):
    assert main([*map(str, argv), "--n-boot", "20"]) == 0
    return capsys.readouterr().out


# ----------------------------------------------------------------------------- reading
def test_observables_round_trip(run3):
    path, obs = run3
    run = read_run(path)
    assert run.attrs["format_version"] == 3
    assert run.observables_attrs["n_batches"] == 16
    assert run.observables_attrs["samples"] == 16384
    assert run.observables_attrs["energy_error_batch_means"] == pytest.approx(
        obs["scalars"]["local_energy"]["error"], rel=1e-15
    )
    assert set(run.observables) == {
        "local_energy",
        "kinetic",
        "trap",
        "interaction",
        "r12",
        "density",
        "density_image",
        "pair_distance",
    }
    for name, est in obs["scalars"].items():
        got = run.observables[name]
        np.testing.assert_array_equal(got["batch_means"], est["batch_means"])
        assert got["mean"] == est["mean"] and got["error"] == est["error"]
        assert isinstance(got["mean"], float) and got["batch_means"].shape == (16,)
    for name, keys in (
        ("density", ("edges",)),
        ("pair_distance", ("edges",)),
        ("density_image", ("x_edges", "y_edges")),
    ):
        for key in keys + ("counts", "density", "error"):
            np.testing.assert_array_equal(run.observables[name][key], obs[name][key])
        assert run.observables[name]["attrs"] == pytest.approx(obs[name]["attrs"])
    assert run.observables["density"]["attrs"]["dimensions"] == 2
    assert run.observables["density_image"]["counts"].shape == (12, 12)
    # format 3 series and counters: kinetic/trap/interaction, rows_written
    assert set(run.production) == {"local_energy", "kinetic", "trap", "interaction"}
    assert run.n_iterations == 20 and not np.isnan(run.optimization["energy"]).any()


def test_stored_density_agrees_with_the_exact_one(run3):
    """The fixture's Gaussian density read back: within its batch-means errors of the
    exact rho(r) = 2 exp(-r^2) / pi, rho(x, y) and the pair-distance density, and
    normalised as format 3 says (integral over space + overflow = P)."""
    path, obs = run3
    run = read_run(path)
    samples = run.observables_attrs["samples"]
    for name in ("density", "density_image", "pair_distance"):
        h = run.observables[name]
        ok = h["counts"] > 50
        z = (h["density"] - obs["exact"][name])[ok] / h["error"][ok]
        assert ok.sum() >= 15 and np.mean(z**2) < 3.0, name
    d = run.observables["density"]
    integral = np.sum(d["density"] * shell_volumes(d["edges"], 2))
    assert integral + d["attrs"]["overflow"] / samples == pytest.approx(2.0, rel=1e-12)
    assert run.observables["r12"]["mean"] == pytest.approx(np.sqrt(np.pi / 2), abs=0.02)


def _replace(group, name, data):
    del group[name]
    group[name] = data


def _replace_scalar(group, name, data):
    attrs = dict(group[name].attrs)
    _replace(group, name, data)
    group[name].attrs.update(attrs)


@pytest.mark.parametrize(
    "damage,named",
    [
        (lambda g: g["density"].__delitem__("error"), OBS + "density lacks error"),
        (
            lambda g: _replace(g["pair_distance"], "counts", np.ones(7)),
            OBS + "pair_distance/counts has shape (7,)",
        ),
        (
            lambda g: _replace(g["density_image"], "density", np.ones((3, 12))),
            OBS + "density_image/density has shape (3, 12)",
        ),
        (
            lambda g: _replace(g["density"], "edges", np.linspace(3, 0, 31)),
            OBS + "density/edges is not strictly increasing",
        ),
        (
            lambda g: _replace(g["density_image"], "x_edges", np.ones((13, 2))),
            OBS + "density_image/x_edges is not a 1-D array",
        ),
        (
            lambda g: _replace_scalar(g, "kinetic", np.ones(15)),
            OBS + "kinetic holds 15 batch means, the group's n_batches is 16",
        ),
        (lambda g: _replace_scalar(g, "r12", np.ones((16, 2))), OBS + "r12 is not a 1-D"),
        (lambda g: g["trap"].attrs.__delitem__("error"), OBS + "trap lacks the attribute(s) error"),
        (
            lambda g: (
                g.__delitem__("pair_distance"),
                g.create_dataset("pair_distance", data=[1.0]),
            ),
            OBS + "pair_distance is a dataset, not a group",
        ),
    ],
)
def test_malformed_observables_exit_2_naming_the_dataset(run3, damage, named, capsys):
    path, _ = run3
    with h5py.File(path, "r+") as h5:
        damage(h5["production/observables"])
    with pytest.raises(RunFileError, match=named.replace("(", r"\(").replace(")", r"\)")):
        read_run(path)
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path}: ") and named in err[0]


# ----------------------------------------------------------------------------- report
def test_report_lists_the_observables_with_errors(run3, capsys):
    path, obs = run3
    out = _text(capsys, path)
    lines = out.splitlines()
    sc = obs["scalars"]
    labels = [
        ("kinetic", "kinetic"),
        ("trap", "trap"),
        ("interaction", "interaction"),
        ("local_energy", "E"),
        ("r12", "<r12>"),
    ]
    where = []
    for name, label in labels:
        want = f"{sc[name]['mean']:.6f} +- {sc[name]['error']:.6f}"
        hits = [
            i
            for i, line in enumerate(lines)
            if line.split()[:1] == [label]
            and line.rstrip().endswith(want)
            and line.startswith("  ")
        ]
        assert len(hits) == 1, (label, want, out)
        where.append(hits[0])
    assert where == sorted(where)  # kinetic, trap, interaction, E, <r12>
    assert "16 batch means of 16384 samples" in out
    ratio_line = next(line for line in lines if line.startswith("  E error"))
    assert "ratio 1.000" in ratio_line and "too short" not in out
    overflow = obs["density"]["attrs"]["overflow"]
    assert "30 bins, integral" in out and f"overflow {overflow:.0f}" in out
    assert "12x12 bins" in out
    assert "warning" not in out  # a consistent file: nothing to say


def test_json_observables_are_plain_numbers(run3, capsys):
    path, obs = run3
    o = _json(capsys, path)["observables"]
    assert o["n_batches"] == 16 and o["samples"] == 16384
    for name, est in obs["scalars"].items():
        assert o["scalars"][name] == {"mean": est["mean"], "error": est["error"]}
    assert o["energy_error_batch_means"] == obs["scalars"]["local_energy"]["error"]
    assert o["energy_error_ratio"] == pytest.approx(1.0)
    assert o["energy_error_blocking_from"] == "file"
    d = o["density"]
    assert d["bins"] == [30] and d["overflow"] == obs["density"]["attrs"]["overflow"]
    assert d["integral"] + d["overflow"] / 16384 == pytest.approx(2.0, rel=1e-12)
    assert o["density_image"]["bins"] == [12, 12]
    assert o["pair_distance"]["integral"] == pytest.approx(1.0, abs=1e-3)
    assert type(o["pair_distance"]["overflow_fraction"]) is float


@pytest.mark.parametrize("ratio,warns", [(0.4, True), (0.65, True), (0.75, False), (1.6, False)])
def test_short_batches_warning(tmp_path, capsys, ratio, warns):
    """A batch-means error of E below 0.7 x its blocking error means batches shorter
    than the correlation time: the report says so, and only then."""
    obs = gaussian_observables(seed=5)
    batch = obs["scalars"]["local_energy"]["error"]
    obs["attrs"]["energy_error_blocking"] = batch / ratio
    path = tmp_path / "short.h5"
    write_run_file(path, format_version=3, observables=obs)
    out = _text(capsys, path)
    assert ("batches too short for the autocorrelation time" in out) is warns
    assert f"ratio {ratio:.3f}" in out
    report = _json(capsys, path)
    assert any("batches too short" in w for w in report["warnings"]) is warns


def test_blocking_error_from_the_analysis_when_the_file_has_none(tmp_path, capsys):
    """Without the energy-error attributes, the batch-means error of E is compared with
    this analysis's blocking error of /production/local_energy."""
    obs = gaussian_observables(error_attrs=False)
    slow = tmp_path / "slow.h5"  # tau ~ 39: blocking error ~ 6x the batch one
    write_run_file(slow, format_version=3, observables=obs, phi=0.95)
    report = _json(capsys, slow)
    o = report["observables"]
    assert o["energy_error_blocking_from"] == "this analysis"
    assert o["energy_error_blocking"] == pytest.approx(report["production"]["error"])
    assert o["energy_error_ratio"] < 0.7
    assert any("batches too short" in w for w in report["warnings"])
    fast = tmp_path / "fast.h5"
    write_run_file(fast, format_version=3, observables=obs, phi=0.0, energy=3.0)
    report = _json(capsys, fast)
    assert report["observables"]["energy_error_ratio"] > 0.7
    assert not any("batches too short" in w for w in report["warnings"])


def test_overflow_and_normalisation_warnings(tmp_path, capsys):
    obs = gaussian_observables(r_max=1.5, seed=7)  # ~10 % of |r| beyond 1.5
    path = tmp_path / "narrow.h5"
    write_run_file(path, format_version=3, observables=obs)
    report = _json(capsys, path)
    frac = report["observables"]["density"]["overflow_fraction"]
    assert frac == pytest.approx(np.exp(-(1.5**2)), rel=0.1)
    assert any(
        "of the density counts lie beyond" in w and "density_rmax" in w for w in report["warnings"]
    )
    assert not any("normalisation" in w for w in report["warnings"])
    # a radial distribution P(r) (integral 1) stored where rho(r) (integral P) belongs
    wrong = gaussian_observables(seed=7)
    d = wrong["density"]
    d["density"] = d["counts"] / d["counts"].sum() / np.diff(d["edges"])
    path = tmp_path / "wrong.h5"
    write_run_file(path, format_version=3, observables=wrong)
    report = _json(capsys, path)
    assert any("density integrates to" in w and "not 2" in w for w in report["warnings"])


# ----------------------------------------------------------------------------- plots
def test_plots_of_the_observables(run3, tmp_path, capsys):
    path, _ = run3
    out = tmp_path / "plots"
    assert main([str(path), "--plots", str(out), "--n-boot", "20"]) == 0
    text = capsys.readouterr().out
    for kind in ("density", "density_image", "pair_distance"):
        png = out / f"obs_{kind}.png"
        assert png.exists() and os.path.getsize(png) > 5000, kind
        assert f"wrote {png}" in text


def test_plots_only_for_the_data_present(tmp_path, capsys):
    """One particle in 3D: a radial density, but no image (D != 2) and no pair distance."""
    obs = gaussian_observables(particles=1, dimensions=3, samples=4096, seed=11)
    assert "r12" not in obs["scalars"]
    path = tmp_path / "single.h5"
    write_run_file(
        path,
        format_version=3,
        observables=obs,
        system={"particles": 1, "dimensions": 3, "interaction": "none"},
    )
    text = _text(capsys, path)
    assert "<r12>" not in text and "rho(x,y)" not in text and "warning" not in text
    out = tmp_path / "plots"
    run_plots(read_run(path), None, str(out))  # no blocking and histogram
    assert sorted(os.listdir(out)) == ["single_density.png", "single_optimization.png"]


def test_cli_subprocess_end_to_end(run3, tmp_path):
    """`python -m analysis` as a process: exit 0, the observables in its output."""
    from conftest import subprocess_env

    path, obs = run3
    res = subprocess.run(
        [sys.executable, "-m", "analysis", str(path), "--n-boot", "20"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert f"{obs['scalars']['r12']['mean']:.6f}" in res.stdout


# ----------------------------------------------------------------------------- formats 1-2
@pytest.mark.parametrize("version", [1, 2])
def test_older_formats_still_work(tmp_path, capsys, version):
    """kinetic/potential series and the flat density_counts/density_edges of formats 1-2;
    format 2's counters (rows_written, samples_written) limit what is read."""
    path = tmp_path / f"old{version}.h5"
    e = write_run_file(path, format_version=version)
    run = read_run(path)
    assert set(run.production) == {"local_energy", "kinetic", "potential"}
    assert run.n_iterations == 20 and not np.isnan(run.optimization["energy"]).any()
    assert run.observables["density_counts"].shape == (40,)
    report = _json(capsys, path)
    p = report["production"]
    assert p["potential"]["mean"] == pytest.approx(0.5 * e.mean())
    assert p["kinetic"]["mean"] == pytest.approx(0.5 * e.mean())
    assert report["observables"] == {"datasets": ["density_counts", "density_edges"]}
    assert not any("observables" in w for w in report["warnings"])
    text = _text(capsys, path)
    assert "potential" in text and "datasets density_counts, density_edges" in text
    out = tmp_path / "plots"
    run_plots(run, None, str(out))
    assert sorted(os.listdir(out)) == [
        f"old{version}_density.png",
        f"old{version}_optimization.png",
    ]
    assert os.path.getsize(out / f"old{version}_density.png") > 5000


def test_format2_running_file_reads_only_the_counted_columns(tmp_path, capsys):
    path = tmp_path / "live2.h5"
    e = write_run_file(path, format_version=2, status="running", samples_per_chain=1000)
    run = read_run(path)
    assert run.production["local_energy"].shape == (4, 1000)
    assert "samples_per_chain" not in run.production_attrs  # only set at the end
    assert _json(capsys, path)["production"]["mean"] == pytest.approx(e.mean())


def test_flat_density_with_mismatched_edges_exits_2(tmp_path, capsys):
    path = tmp_path / "flat.h5"
    write_run_file(path, format_version=2)
    with h5py.File(path, "r+") as h5:
        _replace(h5["production/observables"], "density_edges", np.linspace(0, 4, 30))
    assert main([str(path), "--plots", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert OBS + "density_counts has shape (40,), density_edges give 29 bins" in err
    assert not (tmp_path / "p").exists()


def test_series_option_names_the_format3_parts(run3, tmp_path, capsys):
    path, _ = run3
    report = _json(capsys, path, "--series", "trap")
    assert report["production"]["series"] == "trap"
    old = tmp_path / "old.h5"
    write_run_file(old, format_version=2)
    assert main([str(old), "--series", "trap"]) == 2
    assert "missing dataset /production/trap" in capsys.readouterr().err
    assert main(["--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in ("kinetic", "trap", "interaction", "potential"))


def test_reader_and_writer_share_the_schema_and_the_shell_volumes():
    """One home for the file's names and for the radial density's normalisation
    (parallel_vmc.schema); the reader knows the format the writer writes."""
    from analysis import runfile
    from parallel_vmc.runfile import schema
    from parallel_vmc.sampling import observables

    assert schema.FORMAT_VERSION in runfile.SUPPORTED_FORMATS
    assert runfile.shell_volumes is schema.shell_volumes is observables.shell_volumes
    assert set(schema.PRODUCTION_SERIES) <= set(runfile.PRODUCTION_SERIES)
    edges = np.array([0.0, 0.5, 1.5])
    for d, exact in [
        (1, 2 * np.diff(edges)),
        (2, np.pi * np.diff(edges**2)),
        (3, 4 / 3 * np.pi * np.diff(edges**3)),
        (4, np.pi**2 / 2 * np.diff(edges**4)),
    ]:
        assert shell_volumes(edges, d) == pytest.approx(exact, rel=1e-14), d


def test_the_analysis_does_not_import_numba():
    """analysis reads the schema from parallel_vmc, whose import must stay light."""
    code = (
        "import sys, analysis.cli, analysis.plots, analysis.runfile; "
        "sys.exit('numba' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
