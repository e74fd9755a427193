"""What a fermion run reports: the summary, the run file (format 4), ``pvmc info`` and
``python -m analysis`` state the statistics, the shell filling, the orbital scale and
the largest inverse drift; the analysis compares the radial densities of several runs.

Two tiny P = 6 runs (2D, omega 1 and 0.5) are made once for the module; the first
compiles the kernel with the Slater part (60-90 s on an empty numba cache).
"""

from __future__ import annotations

import io
import json
import os

import h5py
import numpy as np
import pytest
from conftest import interrupted_run, make_config

from parallel_vmc.cli import main as cli
from parallel_vmc.config.vmc import from_dict
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run import report
from parallel_vmc.run.driver import Run
from parallel_vmc.runfile import schema as S
from parallel_vmc.sampling.samplers import Sampler
from parallel_vmc.system import System
from parallel_vmc.wavefunction import WaveFunction

SIX = [[0, 0], [1, 0], [0, 1]]
FILLING = "3 per spin: (0,0) (1,0) (0,1)"


def _fermions(path, omega):
    return make_config(
        path,
        system={"particles": 6, "dimensions": 2, "omega": omega},
        sampler={"walkers_per_rank": 8, "thermalization": 100},
        optimizer={"iterations": 3, "samples_per_iteration": 4096},
        production={"samples": 4096},
    )


@pytest.fixture(scope="module")
def six(tmp_path_factory):
    """[(path, summary text, RunResult)] of two P = 6 runs (omega 1 and 0.5)."""
    d = tmp_path_factory.mktemp("fermions")
    out = []
    for name, omega in (("n6", 1.0), ("n6_soft", 0.5)):
        cfg = _fermions(d / f"{name}.h5", omega)
        stream = io.StringIO()
        result = Run(cfg, SerialComm(), stream=stream, progress=False).execute()
        out.append((cfg.output.path, stream.getvalue(), result))
    return out


def _lines(text: str, label: str) -> list:
    return [line for line in text.splitlines() if line.startswith(label)]


# ----------------------------------------------------------------------------- summary
def test_summary_states_statistics_filling_scale_and_drift(six):
    path, text, result = six[0]
    with h5py.File(path, "r") as h5:
        alpha = float(h5["wavefunction/orbital_scale"][()])
    assert _lines(text, "system") == ["system        P=6 D=2 omega=1 coulomb, fermions"]
    [wf] = _lines(text, "wavefunction")
    assert wf.startswith("wavefunction  Slater x RBM, 2 hidden units, psi=sqrt")
    assert _lines(text, "orbitals") == [f"orbitals      {FILLING}; orbital scale alpha={alpha:.6g}"]
    assert alpha != 1.0  # optimized: not the start
    [drift] = _lines(text, "inverse drift")
    value = float(drift.split()[2])
    # round-off of thousands of Sherman-Morrison updates: small, never exactly 0
    assert 0.0 < value < 1e-9 and "every 100 sweeps, all ranks" in drift


def _summary_of(P, statistics, jastrow):
    """summary_text of a run that was not made: the wave-function lines only depend on
    the config and theta."""
    cfg = from_dict(
        {
            "system": {"particles": P, "dimensions": 2, "omega": 1.0, "statistics": statistics},
            "wavefunction": {"hidden": 3, "jastrow": jastrow},
        }
    )
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wf.layout.initial(0.0, np.random.default_rng(0))
    if wf.has_determinants:
        wf.layout.block(theta, "orbital_scale")[:] = 0.93
    s = dict(
        energy=1.0,
        error=0.1,
        error_bootstrap=0.1,
        variance=1.0,
        tau_int=1.0,
        rhat=1.0,
        n_samples=8,
        n_chains=2,
        acceptance=0.5,
    )
    sampler = Sampler("metropolis", 1.0, system, wf)
    return report.summary_text(s, sampler, {}, 1, "x.h5", theta, 2.5e-14)


@pytest.mark.parametrize(
    "P,statistics,jastrow,product",
    [
        (6, "fermions", "pade", "Slater x RBM x Pade-Jastrow"),
        (2, "fermions", "none", "RBM"),  # two electrons: no determinant
        (3, "bosons", "pade", "RBM x Pade-Jastrow"),
    ],
)
def test_summary_names_the_parts_present(P, statistics, jastrow, product):
    text = _summary_of(P, statistics, jastrow)
    assert _lines(text, "system")[0].endswith(f"coulomb, {statistics}")
    assert _lines(text, "wavefunction")[0].startswith(f"wavefunction  {product}, 3 hidden")
    if P == 6:
        assert _lines(text, "orbitals") == [f"orbitals      {FILLING}; orbital scale alpha=0.93"]
        assert _lines(text, "inverse drift")[0].startswith("inverse drift 2.5e-14 = ")
    else:
        assert not _lines(text, "orbitals") and not _lines(text, "inverse drift")


def test_every_registered_part_has_its_own_name_and_place_in_the_summary():
    from parallel_vmc.wavefunction import PARTS

    assert len({p.label for p in PARTS}) == len({p.product_rank for p in PARTS}) == len(PARTS)


# ----------------------------------------------------------------------------- run file
def test_run_file_has_the_statistics_orbitals_scale_and_drift(six):
    path, text, result = six[0]
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format_version"] == S.FORMAT_VERSION == 6
        wf = h5["wavefunction"]
        assert wf.attrs["statistics"] == "fermions"
        assert wf["orbitals"].dtype.kind == "i"
        np.testing.assert_array_equal(wf["orbitals"][()], SIX)
        assert wf["orbital_scale"].shape == ()
        assert wf["orbital_scale"][()] == result.theta[-1]  # the last block: alpha
        drift = wf.attrs["inverse_drift"]
        assert 0.0 < drift < 1e-9
        assert f"inverse drift {drift:.3g} = " in text


def test_a_format3_file_is_resumed_and_ends_in_the_current_format(tmp_path, monkeypatch):
    """A run file of format 3 (before the statistics) is resumed, and says the current
    format after; format 2 is still refused, naming the formats that resume."""
    cfg = make_config(tmp_path / "old.h5", optimizer={"iterations": 4})
    interrupted_run(cfg, monkeypatch, at_call=2)
    path = cfg.output.path
    for version, resumes in ((2, False), (3, True)):
        with h5py.File(path, "r+") as h5:
            h5.attrs.modify("format_version", version)
        if not resumes:
            with pytest.raises(cli.InputError, match="it resumes formats 3, 4, 5, 6 only"):
                cli._read_resumable(path)
    state = cli._read_resumable(path)  # the checkpoint's (attrs, arrays)
    assert 0 < state[0]["iteration"] < 4
    Run(cfg, SerialComm(), stream=io.StringIO(), progress=False, resume=state).execute()
    with h5py.File(path, "r") as h5:
        assert h5.attrs["format_version"] == S.FORMAT_VERSION
        assert h5.attrs["status"] == b"completed"
        assert h5["wavefunction"].attrs["statistics"] == "fermions"
        assert "orbitals" not in h5["wavefunction"]  # P = 2: no determinant


# ----------------------------------------------------------------------------- pvmc info
def _info(path, capsys) -> list:
    assert cli.main(["info", str(path)]) == 0
    return capsys.readouterr().out.splitlines()


def test_pvmc_info_prints_statistics_and_the_shell_filling(six, capsys):
    path, _, _ = six[0]
    with h5py.File(path, "r") as h5:
        alpha = float(h5["wavefunction/orbital_scale"][()])
        drift = float(h5["wavefunction"].attrs["inverse_drift"])
    lines = _info(path, capsys)
    assert "system        P=6 D=2 omega=1, coulomb, fermions" in lines
    assert (
        f"orbitals      {FILLING}; orbital scale alpha={alpha:.6g}; inverse drift {drift:.3g}"
    ) in lines


def test_pvmc_info_without_determinants_or_statistics(tmp_path, capsys):
    """Two electrons: fermions, no orbitals line. A file from before fermions (no
    statistics anywhere) says so; an unreadable stored config does not hide the rest."""
    from conftest import run_config

    cfg = make_config(tmp_path / "two.h5")
    run_config(cfg)
    lines = _info(cfg.output.path, capsys)
    assert "system        P=2 D=2 omega=1, coulomb, fermions" in lines
    assert not [line for line in lines if line.startswith("orbitals")]
    with h5py.File(cfg.output.path, "r+") as h5:
        del h5["wavefunction"].attrs["statistics"]
        h5.attrs["config"] = h5.attrs["config"].replace("  statistics: fermions\n", "")
    lines = _info(cfg.output.path, capsys)
    assert any(
        line.startswith("system        P=2 D=2 omega=1, coulomb, not recorded") for line in lines
    )
    with h5py.File(cfg.output.path, "r+") as h5:
        h5.attrs["config"] = "system: [unclosed"
    lines = _info(cfg.output.path, capsys)
    assert lines[3].startswith("system        unknown: ") and "status        completed" in lines


# ----------------------------------------------------------------------------- analysis
def test_analysis_report_states_statistics_and_orbitals(six, capsys):
    from analysis.cli import main

    path, _, _ = six[0]
    assert main([path, "--n-boot", "20"]) == 0
    text = capsys.readouterr().out
    assert "interaction=coulomb statistics=fermions" in text
    assert "wavefunction   Slater x RBM hidden=2" in text
    assert f"orbitals       {FILLING}; orbital scale alpha=" in text
    assert main([path, "--n-boot", "20", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["statistics"] == "fermions" and r["format_version"] == S.FORMAT_VERSION
    assert r["orbitals"]["quantum_numbers"] == SIX and r["orbitals"]["text"] == FILLING
    assert 0.0 < r["orbitals"]["inverse_drift"] < 1e-9


def test_analysis_compares_the_densities_per_particle(six, tmp_path, capsys, monkeypatch):
    """Several run files and --plots: one figure of rho(r)/N with batch-means error
    bars, each curve labelled with N and the energy; a run without a density is left
    out with a note."""
    from conftest import run_config

    from analysis import plots
    from analysis.cli import main
    from parallel_vmc.runfile.schema import shell_volumes

    bare = make_config(tmp_path / "bare.h5", production={"samples": 4096, "observables": False})
    run_config(bare)
    capsys.readouterr()  # its summary
    drawn = []
    original = plots.plot_density_comparison
    monkeypatch.setattr(
        plots,
        "plot_density_comparison",
        lambda curves, path: drawn.append(curves) or original(curves, path),
    )
    files = [six[1][0], six[0][0], bare.output.path]
    out = tmp_path / "plots"
    assert main([*files, "--plots", str(out), "--n-boot", "20", "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    png = out / plots.COMPARISON
    assert png.exists() and os.path.getsize(png) > 5000
    assert [r["density_comparison"] for r in reports] == [str(png), str(png), None]
    [curves] = drawn
    assert [c["label"].split(" (")[-1] for c in curves] == ["n6_soft)", "n6)"]
    for c, r in zip(curves, reports):
        p = r["production"]
        assert c["label"] == (
            f"N = 6: E = {p['mean']:.6f} +- {p['error']:.6f} ({os.path.basename(r['file'])[:-3]})"
        )
        with h5py.File(r["file"], "r") as h5:
            d = h5["production/observables/density"]
            per_particle = np.sum(d["density"][()] / 6 * shell_volumes(d["edges"][()], 2))
            beyond = d.attrs["overflow"] / (h5["production/observables"].attrs["samples"] * 6)
        assert per_particle + beyond == pytest.approx(1.0, rel=1e-12)
    assert main([*files, "--plots", str(out), "--n-boot", "20"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {png} (one-body density per particle, N = 6, 6)" in text
    assert (
        "note: bare is not in the density comparison: no radial density with error bars"
    ) in text


def test_density_comparison_has_a_panel_per_dimension(tmp_path):
    """Densities per unit length^D of different D do not share an axis."""
    from analysis.plots import plot_density_comparison

    edges = np.linspace(0.0, 4.0, 41)
    r = 0.5 * (edges[1:] + edges[:-1])
    curves = [
        {
            "edges": edges,
            "density": P * np.exp(-r * r) / np.pi ** (D / 2),
            "error": 0.01 * np.ones_like(r),
            "particles": P,
            "dimensions": D,
            "label": f"N = {P}, D = {D}",
        }
        for P, D in ((2, 2), (6, 2), (8, 3))
    ]
    path = plot_density_comparison(curves, str(tmp_path / "c.png"))
    from matplotlib.image import imread

    height, width = imread(path).shape[:2]
    assert width > 1.8 * 640 and height < 500  # two panels side by side


def test_a_run_from_before_fermions_resumes_as_bosons(tmp_path, monkeypatch, capsys):
    """A stored config without system.statistics (a run from before fermions) reads as
    bosons, the meaning it had (``config.STORED_BEFORE``): a P = 6 run resumes without
    an orbital scale and completes. A checkpoint whose theta does not fit its stored
    config (here edited to fermions) is refused, exit 2 naming both counts, instead of
    sampling out of bounds."""
    from parallel_vmc.runfile import checkpoint

    cfg = make_config(
        tmp_path / "old.h5",
        optimizer={"iterations": 4},
        system={"particles": 6, "dimensions": 2, "omega": 1.0, "statistics": "bosons"},
    )
    interrupted_run(cfg, monkeypatch, at_call=2)
    paths = (cfg.output.path, checkpoint.path_for(cfg.output.path))

    def edit(old, new):
        for path in paths:
            with h5py.File(path, "r+") as h5:
                h5.attrs["config"] = h5.attrs["config"].replace(old, new)

    edit("  statistics: bosons\n", "  statistics: fermions\n")
    assert cli.main(["resume", cfg.output.path]) == 2
    err = capsys.readouterr().err
    assert "its checkpoint holds 38 parameters, but its stored config now gives 39" in err
    with h5py.File(cfg.output.path, "r") as h5:
        assert h5.attrs["status"] == b"interrupted"
    edit("  statistics: fermions\n", "")
    assert cli.main(["resume", cfg.output.path, "--quiet"]) == 0
    with h5py.File(cfg.output.path, "r") as h5:
        assert h5.attrs["status"] == b"completed"
        assert h5["checkpoint/theta"].size == 38


def test_a_drift_never_checked_says_so():
    """Kernel calls shorter than determinant_refresh sweeps never check the inverse:
    the walkers' drift stays NOT_MEASURED and the text says so instead of a 0."""
    assert S.inverse_drift_text(S.NOT_MEASURED).startswith("not measured")
    assert S.inverse_drift_text(2.5e-15) == "2.5e-15"
    cfg = from_dict(
        {
            "system": {"particles": 6, "dimensions": 2, "omega": 1.0},
            "wavefunction": {"hidden": 2, "determinant_refresh": 1000},
        }
    )
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    from parallel_vmc.sampling.samplers import Walkers

    walkers = Walkers.start(1, 0, 2, 12, 1.0)
    theta = wf.layout.initial(0.0, np.random.default_rng(0))
    Sampler("metropolis", 1.0, system, wf).produce(theta, walkers, 999, False)
    assert (walkers.inverse_drift == S.NOT_MEASURED).all()
    Sampler("metropolis", 1.0, system, wf).produce(theta, walkers, 1000, False)
    assert (walkers.inverse_drift > 0).all() and (walkers.inverse_drift < 1e-9).all()
