"""`python -m analysis` on files in the pvmc schema (fixture) and on a real pvmc run."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
from analysis_fixtures import write_run_file
from conftest import subprocess_env

from analysis import summarize_chains
from analysis.cli import main
from analysis.runfile import read_run, shell_volumes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _png_size(path):
    """(width, height) from a PNG read back with matplotlib."""
    from matplotlib.image import imread

    img = imread(path)
    return img.shape[1], img.shape[0]


@pytest.fixture
def run_file(tmp_path):
    path = tmp_path / "omega1.h5"
    energies = write_run_file(path)
    return path, energies


def test_summary_table(run_file, capsys):
    path, e = run_file
    before = _digest(path)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    s = summarize_chains(e)
    assert f"{s.mean:.6f} +- {s.error:.6f}" in out
    for word in (
        "status",
        "completed",
        "bootstrap",
        "variance",
        "tau_int",
        "R-hat",
        "acceptance",
        "omega=1.0",
        "importance",
        "kinetic",
        "potential",
        "segment 0",
        "agree: E_L winsorised",
        "pvmc summary",
    ):
        assert word in out, word
    assert "E/N" not in out  # fermions: the energy alone
    assert _digest(path) == before  # input untouched


def test_json_fields(run_file, capsys):
    path, e = run_file
    assert main([str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    s = summarize_chains(e)
    p = d["production"]
    assert p["mean"] == pytest.approx(s.mean) and p["error"] == pytest.approx(s.error)
    assert p["error_bootstrap"] == pytest.approx(s.error_bootstrap)
    assert p["n_samples"] == e.size and p["n_chains"] == 4
    assert p["acceptance"] == pytest.approx(0.97)
    assert d["status"] == "completed" and d["config"]["system"]["omega"] == 1.0
    assert d["optimization"]["iterations"] == 20
    assert d["production"]["kinetic"]["mean"] == pytest.approx(0.5 * e.mean())


def test_plots_written_and_sized(run_file, tmp_path, capsys):
    path, _ = run_file
    out = tmp_path / "figs" / "deep"
    (tmp_path / "figs").mkdir()
    keep = tmp_path / "figs" / "deep_other.txt"
    keep.write_text("mine")
    assert main([str(path), "--plots", str(out)]) == 0
    names = sorted(os.listdir(out))
    assert names == [
        "omega1_blocking.png",
        "omega1_density.png",
        "omega1_histogram.png",
        "omega1_optimization.png",
    ]
    for name in names:
        assert os.path.getsize(out / name) > 5000
        w, h = _png_size(out / name)
        assert w >= 600 and h >= 400
    assert keep.read_text() == "mine"


def test_running_file_uses_only_filled_columns(tmp_path, capsys):
    """A running run: columns past samples_per_chain are NaN and must be ignored."""
    path = tmp_path / "live.h5"
    e = write_run_file(
        path, status="running", n_samples=4096, samples_per_chain=1000, density=False
    )
    assert main([str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["status"] == "running"
    assert d["production"]["n_samples"] == e.size == 4 * 1000
    assert d["production"]["mean"] == pytest.approx(e.mean())
    assert d["summary_in_file"] is None
    assert any("running" in w for w in d["warnings"])
    assert main([str(path), "--plots", str(tmp_path / "p")]) == 0
    assert "omega1_density.png" not in os.listdir(tmp_path / "p")
    assert "running" in capsys.readouterr().out


def test_failed_file_without_production(tmp_path, capsys):
    path = tmp_path / "dead.h5"
    write_run_file(path, status="failed: MemoryError", production=False)
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "failed: MemoryError" in out and "no production data yet" in out
    assert main([str(path), "--plots", str(tmp_path / "p")]) == 0
    assert os.listdir(tmp_path / "p") == ["dead_optimization.png"]


def _bad_cases(tmp_path):
    missing = tmp_path / "nope.h5"
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5 at all\n")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5["data"] = np.arange(10)
        h5.attrs["status"] = "completed"
    future = tmp_path / "future.h5"
    write_run_file(future)
    with h5py.File(future, "a") as h5:
        h5.attrs["format_version"] = 99
    return [
        (missing, "no such file"),
        (text, "not an HDF5 file"),
        (other, "not a pvmc run file"),
        (future, "format_version 99"),
    ]


def test_bad_files_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    for path, text in _bad_cases(tmp_path):
        before = _digest(path) if path.exists() else None
        plots = tmp_path / f"plots_{path.stem}"
        assert main([str(path), "--plots", str(plots)]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ")
        assert str(path) in lines[0] and text in lines[0]
        assert not plots.exists()
        if before:
            assert _digest(path) == before


def test_missing_dataset_asked_for(run_file, tmp_path, capsys):
    path = tmp_path / "nokin.h5"
    write_run_file(path, components=False)
    assert main([str(path), "--series", "kinetic"]) == 2
    err = capsys.readouterr().err
    assert "missing dataset /production/kinetic" in err and str(path) in err
    assert main([str(run_file[0]), "--series", "kinetic"]) == 0


@pytest.mark.parametrize(
    "argv", [[], ["--bogus", "x.h5"], ["table", "x.h5"], ["x.h5", "--n-boot", "zero"]]
)
def test_bad_command_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")


def test_table_across_runs(tmp_path, capsys):
    paths = []
    for omega in (0.5, 1.0, 0.25):
        p = tmp_path / f"scan_{omega}.h5"
        write_run_file(p, omega=omega, energy=3.0 * omega, seed=int(omega * 100))
        paths.append(str(p))
    fig = tmp_path / "out" / "scan.png"
    assert main(["table", *paths, "--by", "system.omega", "--plot", str(fig)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[0] == "system.omega"
    assert [line.split()[0] for line in out[1:4]] == ["0.25", "0.5", "1"]
    assert os.path.getsize(fig) > 5000 and _png_size(fig)[0] >= 600
    assert main(["table", *paths, "--by", "system.omega", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["key"] for r in rows] == [0.25, 0.5, 1.0]
    for r in rows:  # AR(1) noise of amplitude 0.1, 16384 samples: error ~0.001
        assert r["energy"] == pytest.approx(3.0 * r["key"], abs=0.01)
        assert r["status"] == "completed" and r["chains_ok"]


def test_table_bad_inputs(tmp_path, capsys):
    good = tmp_path / "good.h5"
    write_run_file(good)
    bad = tmp_path / "bad.h5"
    bad.write_text("x")
    fig = tmp_path / "t.png"
    assert main(["table", str(good), str(bad), "--by", "system.omega", "--plot", str(fig)]) == 2
    assert "not an HDF5 file" in capsys.readouterr().err and not fig.exists()
    assert main(["table", str(good), "--by", "system.nothing"]) == 2
    assert "config has no key system.nothing" in capsys.readouterr().err
    assert main(["table", str(good), str(bad), "--by", "system.omega", "--skip-bad"]) == 0
    captured = capsys.readouterr()
    assert "warning: skipped" in captured.err and str(good) in captured.out
    assert main(["table", str(good), "--by", "seed", "--plot", str(good)]) == 2


def test_module_entry_point_exit_codes(run_file, tmp_path):
    path, _ = run_file
    env = subprocess_env()
    ok = subprocess.run(
        [sys.executable, "-m", "analysis", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert ok.returncode == 0 and "energy" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "analysis", str(tmp_path / "x.h5")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ")


def test_real_pvmc_output_file(tmp_path):
    """A tiny config through `pvmc run` (a separate process), then the CLI on its file."""
    cfg = tmp_path / "tiny.yaml"
    out = tmp_path / "real.h5"
    cfg.write_text(
        textwrap.dedent(f"""\
        system: {{particles: 2, dimensions: 2, omega: 1.0, interaction: coulomb}}
        wavefunction: {{hidden: 2}}
        sampler: {{method: importance, walkers_per_rank: 4, thermalization: 200}}
        optimizer: {{iterations: 5, samples_per_iteration: 1024}}
        production: {{samples: 16384}}
        output: {{path: {out}}}
        seed: 7
        """)
    )
    env = subprocess_env()
    run = subprocess.run(
        [sys.executable, "-m", "parallel_vmc", "run", str(cfg), "--quiet"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    plots = tmp_path / "plots"
    res = subprocess.run(
        [sys.executable, "-m", "analysis", str(out), "--plots", str(plots)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    for word in (
        "completed",
        "energy",
        "bootstrap",
        "tau_int",
        "R-hat",
        "pvmc summary",
        "kinetic",
        "trap",
        "interaction",
        "<r12>",
        "batch means",
    ):
        assert word in res.stdout
    with h5py.File(out, "r") as h5:
        stored = h5["summary"].attrs["energy"]
        e = h5["production/local_energy"][:, : h5["production"].attrs["samples_per_chain"]]
    assert f"{stored:.6f}" in res.stdout
    assert summarize_chains(e).mean == pytest.approx(stored, rel=1e-12)
    # the producer's observables as this analysis reads them: normalised as format 3 says
    obs = read_run(out).observables
    samples = read_run(out).observables_attrs["samples"]
    assert samples == e.size
    d = obs["density"]
    integral = np.sum(d["density"] * shell_volumes(d["edges"], 2))
    assert integral + d["attrs"]["overflow"] / samples == pytest.approx(2.0, rel=1e-9)
    assert obs["local_energy"]["mean"] == pytest.approx(stored, rel=1e-9)
    assert obs["local_energy"]["mean"] == pytest.approx(
        obs["kinetic"]["mean"] + obs["trap"]["mean"] + obs["interaction"]["mean"], rel=1e-9
    )
    assert obs["pair_distance"]["attrs"]["mean"] == obs["r12"]["mean"]
    assert "integrates to" not in res.stdout and f"{obs['r12']['mean']:.6f}" in res.stdout
    names = sorted(os.listdir(plots))
    assert names == [
        "real_blocking.png",
        "real_density.png",
        "real_density_image.png",
        "real_histogram.png",
        "real_optimization.png",
        "real_pair_distance.png",
    ]
    for name in names:
        assert os.path.getsize(plots / name) > 5000
        w, h = _png_size(plots / name)
        assert w >= 600 and h >= 400


# ------------------------------------------------------------- without matplotlib
NO_MATPLOTLIB = (
    "import sys\n"
    "sys.modules['matplotlib'] = None  # import matplotlib -> ImportError\n"
    "from analysis.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@pytest.mark.parametrize("json_out", [False, True])
def test_the_report_prints_when_plots_cannot_be_drawn(tmp_path, json_out):
    """matplotlib not importable: the report (text or JSON) as without --plots, then
    one line saying why the plots were skipped, exit code 2, no plot directory made."""
    path = tmp_path / "run.h5"
    write_run_file(path, format_version=3)
    plots = tmp_path / "plots"
    extra = ["--json"] if json_out else []
    res = subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, str(path), "--plots", str(plots), *extra],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert res.returncode == 2
    assert res.stderr.startswith("error: plots skipped: plots need matplotlib")
    assert res.stderr.count("\n") == 1
    alone = subprocess.run(
        [sys.executable, "-m", "analysis", str(path), *extra],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert res.stdout == alone.stdout and "energy" in res.stdout
    assert not plots.exists()


def test_the_table_prints_when_its_plot_cannot_be_drawn(tmp_path):
    paths = []
    for omega in (0.5, 1.0):
        paths.append(str(tmp_path / f"w{omega}.h5"))
        write_run_file(paths[-1], format_version=3, omega=omega)
    figure = tmp_path / "scan.png"
    res = subprocess.run(
        [sys.executable, "-c", NO_MATPLOTLIB, "table", *paths, "--by", "system.omega"]
        + ["--plot", str(figure)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert res.returncode == 2 and res.stderr.startswith("error: plots skipped")
    assert res.stdout.startswith("system.omega") and len(res.stdout.splitlines()) == 3
    assert not figure.exists()


def test_the_first_install_line_gives_what_the_next_steps_use():
    """The README's quick-start line installs matplotlib (a plain dependency: plots)
    and the data extra (scikit-learn: the digits of pvmc train)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as fh:
        project = tomllib.load(fh)["project"]
    assert any(d.split(">")[0].strip() == "matplotlib" for d in project["dependencies"])
    with open(os.path.join(ROOT, "README.md")) as fh:
        first = next(line for line in fh if "pip install '.[" in line)
    extras = first.split("pip install '.[")[1].split("]")[0].split(",")
    assert "data" in extras and "mpi" in extras
    assert "scikit-learn" in project["optional-dependencies"]["data"][0]
