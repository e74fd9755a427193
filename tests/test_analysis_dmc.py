"""`python -m analysis` on a run file with a DMC phase (/dmc): the energies recomputed
from the per-step series equal the stored ones, so does the line to tau -> 0; the two
figures; a damaged /dmc is one error line (exit 2); an edited series is a mismatch; a
file without /dmc is reported as before."""

from __future__ import annotations

import io
import json
import os
import shutil

import h5py
import numpy as np
import pytest
from analysis_fixtures import write_run_file
from conftest import ROOT

from analysis.cli import main
from parallel_vmc.runfile import schema as S

# The system of the DMC config (two electrons in 2D, RBM x Pade-Jastrow, importance
# sampling) as tests/test_dmc.py runs it, so the kernels are those already compiled;
# small enough for a few seconds.
CONFIG = os.path.join(ROOT, "configs", "dmc_dot2d_N2_omega1.0.yaml")
OVERRIDES = [
    "sampler.walkers_per_rank=4",
    "sampler.thermalization=200",
    "optimizer.iterations=5",
    "optimizer.samples_per_iteration=1024",
    "production.samples=4096",
    "dmc.time_steps=[0.04, 0.02, 0.01]",
    "dmc.walkers=100",
    "dmc.warmup_steps=100",
    "dmc.steps=400",
]


@pytest.fixture(scope="module")
def dmc_file(tmp_path_factory):
    """A real run file with /dmc (three time steps), made once in-process."""
    from parallel_vmc.config.vmc import load_config
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run

    path = tmp_path_factory.mktemp("dmc") / "dmc.h5"
    cfg = load_config(CONFIG, OVERRIDES, output=str(path))
    Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    return path


def _stored(path) -> dict:
    """The table {field: (n,)} and the attributes of /dmc, read with h5py."""
    with h5py.File(path, "r") as h5:
        g = h5[S.DMC]
        return {name: g[name][...] for name in S.DMC_FIELDS} | dict(g.attrs)


def _run(capsys, *argv) -> tuple:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _copy(src, tmp_path, name="copy.h5"):
    path = tmp_path / name
    shutil.copy(src, path)
    return path


def _truncate(grp, name: str, n: int) -> None:
    values = grp[name][...]
    del grp[name]
    grp[name] = values[:n]


def test_the_report_recomputes_the_stored_energies(dmc_file, capsys):
    """Every time step's E +- error from its series equals /dmc's (to 1e-12), in JSON and
    in the text, with the table's tau_eff, acceptance and population beside it."""
    stored = _stored(dmc_file)
    code, out, _ = _run(capsys, dmc_file, "--json", "--n-boot", "20")
    assert code == 0
    d = json.loads(out)["dmc"]
    assert d["mismatch"] is None and d["warmup_steps"] == 100
    assert len(d["time_steps"]) == 3
    for k, s in enumerate(d["time_steps"]):
        assert s["time_step"] == stored["time_step"][k]
        assert s["energy"] == pytest.approx(stored["energy"][k], rel=1e-12, abs=0)
        assert s["error"] == pytest.approx(stored["error"][k], rel=1e-12, abs=0)
        assert s["steps"] == 400 and s["bias_window"] == stored["bias_window"][k]
        assert s["tau_eff"] == stored["tau_eff"][k]
        assert s["population"] == stored["population"][k]
        # without the correction: another number with a comparable error
        assert s["uncorrected"]["energy"] != s["energy"]
        assert 0.5 < s["uncorrected"]["error"] / s["error"] < 2
        assert s["tau_int_weighted_energy"] >= 0.5
    code, out, _ = _run(capsys, dmc_file, "--n-boot", "20")
    assert code == 0
    for k in range(3):
        e, err = stored["energy"][k], stored["error"][k]
        assert f"  tau {stored['time_step'][k]:g}" in out
        assert f"{e:.6f} +- {err:.6f}  T_p {int(stored['bias_window'][k])}," in out
        assert f"acceptance {stored['acceptance'][k]:.4f}" in out
    assert "  as stored    yes:" in out and "DMC MISMATCH" not in out


def test_the_extrapolation_equals_the_stored_one_and_the_weighted_line(dmc_file, capsys):
    """E_0 +- error recomputed equals the /dmc attributes; E_0 and the slope are those of
    a weighted straight-line fit (numpy's polyfit, an independent formula)."""
    stored = _stored(dmc_file)
    code, out, _ = _run(capsys, dmc_file, "--json", "--n-boot", "20")
    x = json.loads(out)["dmc"]["extrapolated"]
    assert x["energy"] == pytest.approx(stored["energy_extrapolated"], rel=1e-12, abs=0)
    assert x["error"] == pytest.approx(stored["error_extrapolated"], rel=1e-12, abs=0)
    tau, e, err = stored["time_step"], stored["energy"], stored["error"]
    (slope, e0), cov = np.polyfit(tau, e, 1, w=1 / err, cov="unscaled")
    assert x["energy"] == pytest.approx(e0, rel=1e-10)
    assert x["slope"] == pytest.approx(slope, rel=1e-8)
    assert x["error"] == pytest.approx(np.sqrt(cov[1, 1]), rel=1e-8)
    assert x["dof"] == 1 and x["chi2"] == pytest.approx(
        np.sum(((e - e0 - slope * tau) / err) ** 2), rel=1e-6
    )
    code, text, _ = _run(capsys, dmc_file, "--n-boot", "20")
    e0_text = f"{stored['energy_extrapolated']:.6f} +- {stored['error_extrapolated']:.6f}"
    assert f"  tau -> 0     {e0_text}  (weighted line" in text


def test_the_table_has_the_dmc_columns(dmc_file, tmp_path, capsys):
    stored = _stored(dmc_file)
    vmc = tmp_path / "vmc.h5"
    write_run_file(vmc, format_version=3, n_samples=256, n_iter=8)
    code, out, _ = _run(capsys, "table", dmc_file, "--by", "system.omega", "--n-boot", "20")
    assert code == 0
    head, row = out.splitlines()[:2]
    assert "dmc_E0" in head and f"{stored['energy_extrapolated']:.6f}" in row
    code, out, _ = _run(capsys, "table", vmc, "--by", "system.omega", "--json", "--n-boot", "20")
    assert json.loads(out)["rows"][0]["dmc_energy"] is None
    code, out, _ = _run(capsys, "table", vmc, "--by", "system.omega", "--n-boot", "20")
    assert code == 0 and "dmc_E0" not in out and "DMC" not in out


def test_the_dmc_figures_are_written(dmc_file, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plots = tmp_path / "plots"
    code, out, _ = _run(capsys, dmc_file, "--plots", plots, "--n-boot", "20")
    assert code == 0
    for name in ("dmc_dmc_energy.png", "dmc_dmc_traces.png"):
        assert f"wrote {plots / name}" in out
        assert (plots / name).stat().st_size > 5000


def test_the_dmc_figures_show_the_line_and_the_warm_up(dmc_file, tmp_path, monkeypatch):
    """The energy figure has the three points, the line and E_0 at tau = 0; the traces
    one line per time step in each panel and the warm-up shaded."""
    pytest.importorskip("matplotlib")
    from analysis import plots
    from analysis.runfile import read_run

    saved = {}

    def keep(fig, path):
        saved[os.path.basename(path)] = fig
        return path

    monkeypatch.setattr(plots, "save", keep)
    plots.run_plots(read_run(dmc_file), None, str(tmp_path))
    energy = saved["dmc_dmc_energy.png"].axes[0]
    stored = _stored(dmc_file)
    (line,) = [x for x in energy.get_lines() if x.get_label().startswith("E_0 + a tau")]
    assert line.get_xdata()[0] == 0.0
    assert line.get_ydata()[0] == pytest.approx(stored["energy_extrapolated"], rel=1e-12)
    labels = [t.get_text() for t in energy.get_legend().get_texts()]
    assert any(t.startswith("tau -> 0: ") for t in labels)
    population, trial = saved["dmc_dmc_traces.png"].axes
    assert len(population.get_lines()) == 3 + 1 + 1  # time steps, warm-up end, target
    assert len(trial.get_lines()) == 3 + 1
    assert population.patches and trial.patches  # the shaded warm-up


@pytest.mark.parametrize(
    "damage,named",
    [
        (lambda h5: h5["dmc"].__delitem__("series_1"), "/dmc lacks the series group(s) series_1"),
        (
            lambda h5: _truncate(h5["dmc"], "energy", 2),
            "/dmc/energy holds 2 value(s), /dmc/time_step 3",
        ),
        (
            lambda h5: _truncate(h5["dmc/series_2"], "trial_energy", 300),
            "/dmc/series_2/trial_energy holds 300 value(s), /dmc/series_2/weighted_energy 500",
        ),
        (lambda h5: h5["dmc/series_0"].__delitem__("tau_eff"), "/dmc/series_0 lacks tau_eff"),
        (
            lambda h5: h5["dmc"].attrs.__delitem__("warmup_steps"),
            "/dmc lacks the attribute(s) warmup_steps",
        ),
        (
            lambda h5: h5["dmc"].copy("series_0", "series_3"),
            "/dmc/series_3 belongs to no time step",
        ),
    ],
    ids=["no-series-group", "short-table", "short-series", "no-series", "no-attr", "extra-group"],
)
def test_a_damaged_dmc_group_is_one_error_line(dmc_file, tmp_path, capsys, damage, named):
    path = _copy(dmc_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        damage(h5)
    code, out, err = _run(capsys, path)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: ")
    assert named in lines[0]


def test_an_edited_series_is_a_dmc_mismatch(dmc_file, tmp_path, capsys):
    """A changed value inside a series still reads (exit 0), but the energies no longer
    equal the stored ones: the report says so, once, with the time step."""
    path = _copy(dmc_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        h5["dmc/series_1/weighted_energy"][300] += 0.5
    code, out, _ = _run(capsys, path, "--n-boot", "20")
    assert code == 0
    assert out.count("DMC MISMATCH   recomputed from the series of /dmc, tau 0.02: E ") == 1
    assert "as stored" not in out and out.count("changed after the run wrote them") == 1
    code, out, _ = _run(capsys, path, "--json", "--n-boot", "20")
    d = json.loads(out)
    assert d["dmc"]["mismatch"] in d["warnings"]


def test_without_dmc_the_report_is_as_before(dmc_file, tmp_path, capsys):
    """The same file without /dmc: the report is the one with /dmc less its DMC rows
    (the segment rows follow them); JSON dmc is null. A VMC fixture has no DMC rows."""
    path = _copy(dmc_file, tmp_path, "dmc.h5")  # the same name: the same file row
    with h5py.File(path, "r+") as h5:
        del h5[S.DMC]
    code, full, _ = _run(capsys, dmc_file, "--n-boot", "20")
    dmc_rows = [
        line
        for line in full.splitlines()
        if line.startswith(("dmc ", "  tau ", "    T_p = 0", "  as stored"))
    ]
    assert len(dmc_rows) == 1 + 3 * 2 + 1 + 1
    code, without, _ = _run(capsys, path, "--n-boot", "20")
    assert code == 0
    kept = [line for line in full.splitlines() if line not in dmc_rows]
    assert without.splitlines() == [line.replace(str(dmc_file), str(path)) for line in kept]
    code, out, _ = _run(capsys, path, "--json", "--n-boot", "20")
    assert json.loads(out)["dmc"] is None
    vmc = tmp_path / "vmc.h5"
    write_run_file(vmc, format_version=3, n_samples=256, n_iter=8)
    code, out, _ = _run(capsys, vmc, "--n-boot", "20")
    assert code == 0 and "tau -> 0" not in out and "DMC" not in out
    assert not [line for line in out.splitlines() if line.startswith("dmc")]


def test_the_first_dmc_layout_is_a_warning_not_a_damaged_file(dmc_file, tmp_path, capsys):
    """/dmc as the first DMC code wrote it (one bias_window attribute, no per-step
    tau_eff): the VMC report stands, with a warning that DMC is not recomputed, and
    pvmc info still prints the stored table."""
    from parallel_vmc.cli.main import main as pvmc

    path = _copy(dmc_file, tmp_path)
    with h5py.File(path, "r+") as h5:
        g = h5[S.DMC]
        g.attrs["bias_window"] = int(g["bias_window"][-1])
        del g["bias_window"]
        for k in range(g["time_step"].shape[0]):
            del g[S.STEP_GROUP % k]["tau_eff"]
    code, out, err = _run(capsys, path)
    assert code == 0 and "first DMC layout" in out + err, out + err
    assert pvmc(["info", str(path)]) == 0
    assert "dmc tau 0.04" in capsys.readouterr().out
