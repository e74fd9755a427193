"""What the report says: the summary cross-check, the command line's limits, units,
the step and sigma used, the chain checks, infinite means, and the figures."""

import json
import os
import re

import h5py
import numpy as np
import pytest
from analysis_fixtures import write_run_file

import analysis.plots as plots
from analysis.cli import main

MAX_N_BOOT, MAX_SEED = 100_000, 2**32 - 1  # the documented limits


def _run(capsys, *argv):
    """(exit code, stdout, stderr) of the CLI."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _json(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--json", "--n-boot", "20")
    assert code == 0, err
    return json.loads(out)


def _text(capsys, *argv):
    code, out, err = _run(capsys, *argv, "--n-boot", "20")
    assert code == 0, err
    return out


def _row(text: str, label: str) -> str:
    """The value of the report row with this label (exactly one)."""
    rows = [
        line[len(label) :].strip() for line in text.splitlines() if line.startswith(label + " ")
    ]
    assert len(rows) == 1, (label, text)
    return rows[0]


def _one_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def run_file(tmp_path):
    path = tmp_path / "run.h5"
    e = write_run_file(path, format_version=3, n_samples=1024)
    return path, e


# ----------------------------------------------------------------------------- 2: summary
def test_a_consistent_file_has_no_summary_mismatch(run_file, capsys):
    path, _ = run_file
    assert _json(capsys, path)["summary_mismatch"] is None
    assert "SUMMARY MISMATCH" not in _text(capsys, path)


def test_edited_samples_disagree_with_the_summary(run_file, capsys):
    """One sample changed after the run: the recomputed energy and /summary differ by
    1/n_samples, here ~1 error of 0.001; shown in its own row right below the energy,
    in JSON, exit code still 0."""
    path, e = run_file
    with h5py.File(path, "r+") as h5:
        h5["production/local_energy"][1, 7] += 4.0
    report = _json(capsys, path)
    m = report["summary_mismatch"]
    assert m["recomputed"] == pytest.approx(e.mean() + 4.0 / e.size, rel=1e-12)
    assert m["file"] == pytest.approx(e.mean(), rel=1e-15)
    assert m["in_errors"] == pytest.approx(4.0 / e.size / 0.001, rel=1e-6)
    assert "changed after the run summarised them" in m["message"]
    assert m["message"] in report["warnings"]
    text = _text(capsys, path)
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("energy "))
    assert lines[at + 1].startswith("SUMMARY MISMATCH")
    assert "disagree by" in lines[at + 1] and "x its error" in lines[at + 1]
    assert text.count("changed after the run summarised them") == 1  # not twice


@pytest.mark.parametrize("relative,flagged", [(1e-12, False), (1e-6, True)])
def test_summary_tolerance_is_round_off(run_file, capsys, relative, flagged):
    path, e = run_file
    with h5py.File(path, "r+") as h5:
        h5["summary"].attrs["energy"] = e.mean() * (1 + relative)
    assert (_json(capsys, path)["summary_mismatch"] is not None) is flagged


def test_fewer_samples_than_the_summary_counted(tmp_path, capsys):
    """Format 1 counts columns by the attribute samples_per_chain only: lowered, the
    mean of the remaining samples is not the summary's, and the counts differ."""
    path = tmp_path / "old.h5"
    write_run_file(path, format_version=1, n_samples=1024)
    with h5py.File(path, "r+") as h5:
        h5["production"].attrs["samples_per_chain"] = 512
    m = _json(capsys, path)["summary_mismatch"]
    assert m["n_samples"] == 4 * 512 and m["n_samples_file"] == 4 * 1024
    assert "/summary counts 4096 samples, the file holds 2048" in m["message"]


# ----------------------------------------------------------------------------- 3: command line
@pytest.mark.parametrize(
    "argv,named",
    [
        (["--seed", "-1"], "--seed -1: must be from 0 to 4294967295"),
        (["--seed", str(2**32)], "--seed 4294967296: must be from 0 to 4294967295"),
        (["--n-boot", "100000000"], f"--n-boot 100000000: must be from 2 to {MAX_N_BOOT}"),
        (["--n-boot", "1"], "--n-boot 1: must be from 2"),
    ],
)
def test_out_of_range_numbers_exit_2(run_file, capsys, argv, named):
    path, _ = run_file
    code, out, err = _run(capsys, path, *argv)
    assert code == 2 and out == "" and named in _one_error(err)
    if argv[0] == "--n-boot":  # table takes it too
        code, out, err = _run(capsys, "table", path, "--by", "seed", *argv)
        assert code == 2 and out == "" and named in _one_error(err)


def test_seed_limits_are_accepted(run_file, capsys):
    path, _ = run_file
    a = _json(capsys, path, "--seed", "0")["production"]["error_bootstrap"]
    b = _json(capsys, path, "--seed", str(MAX_SEED))["production"]["error_bootstrap"]
    assert a > 0 and b > 0 and a != b


@pytest.mark.parametrize("where", ["/proc/plots", "/proc/no/such/deep", "FILE/plots"])
def test_plot_directory_that_cannot_be_written(run_file, tmp_path, capsys, where):
    """Probed (created, a file written and removed) before any analysis: exit 2 naming
    the path, nothing written, no traceback."""
    if where.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    path, _ = run_file
    blocker = tmp_path / "FILE"
    blocker.write_text("a file, not a directory")
    where = where.replace("FILE", str(blocker))
    before = sorted(os.listdir(tmp_path))
    code, out, err = _run(capsys, path, "--plots", where)
    assert code == 2 and out == ""
    assert f"--plots {where}: cannot write there" in _one_error(err)
    assert sorted(os.listdir(tmp_path)) == before


def test_plot_probe_creates_the_directory_and_leaves_no_trace(
    run_file, tmp_path, capsys, monkeypatch
):
    path, _ = run_file
    monkeypatch.setattr(plots, "run_plots", lambda run, summary, directory: [])
    out = tmp_path / "new" / "figs"
    assert _run(capsys, path, "--plots", out, "--n-boot", "20")[0] == 0
    assert os.listdir(out) == []


@pytest.mark.parametrize("where", ["/proc/scan.png", "FILE/scan.png", "new/FILE/scan.png"])
def test_table_plot_that_cannot_be_written(run_file, tmp_path, capsys, where):
    if where.startswith("/proc") and not os.path.isdir("/proc/self"):
        pytest.skip("no /proc")
    path, _ = run_file
    blocker = tmp_path / "FILE"
    blocker.write_text("x")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "FILE").write_text("x")
    where = str(tmp_path / where) if not where.startswith("/") else where
    before = sorted(os.listdir(tmp_path))
    code, out, err = _run(capsys, "table", path, "--by", "seed", "--plot", where)
    assert code == 2 and out == ""
    assert f"--plot {where}: cannot write there" in _one_error(err)
    assert sorted(os.listdir(tmp_path)) == before


# ----------------------------------------------------------------------------- 4: header
def test_units_are_stated(run_file, capsys):
    path, _ = run_file
    units = _row(_text(capsys, path), "units")
    assert units.startswith("hbar = m = e = 1") and "hbar*omega_0" in units
    assert "sqrt(hbar/(m*omega_0))" in units
    assert _json(capsys, path)["units"] == units


def test_header_shows_the_tuned_step_and_the_stored_sigma(run_file, capsys):
    """The fixture's config says step 0.5 and sigma null; the file says step 0.31
    (tuned, /production attribute) and sigma 1 (/wavefunction/sigma)."""
    path, _ = run_file
    text = _text(capsys, path)
    assert _row(text, "sampler") == "importance, step 0.31 (tuned)"
    assert "sigma=1 " in _row(text, "wavefunction") and "None" not in text
    assert "(importance, step 0.31 (tuned))" in _row(text, "acceptance")
    report = _json(capsys, path)
    assert report["sampler"] == {"method": "importance", "step": 0.31, "step_source": "tuned"}
    assert report["sigma"] == {"value": 1.0, "source": "/wavefunction/sigma"}


def test_header_before_the_run_resolved_them(tmp_path, capsys):
    """A running file: no tuned step yet (the config's, labelled initial), no stored
    sigma (the config's null is pvmc's default width)."""
    path = tmp_path / "live.h5"
    write_run_file(path, format_version=3, status="running", n_samples=1024, samples_per_chain=512)
    with h5py.File(path, "r+") as h5:
        del h5["wavefunction/sigma"]
    text = _text(capsys, path)
    assert _row(text, "sampler") == "importance, step 0.5 (initial, from the config)"
    assert "sigma=default (not stored yet)" in _row(text, "wavefunction")


def test_gibbs_has_no_step(tmp_path, capsys):
    path = tmp_path / "gibbs.h5"
    write_run_file(path, format_version=3, n_samples=1024, sampler={"method": "gibbs"})
    text = _text(capsys, path)
    assert _row(text, "sampler") == "gibbs, no step (Gibbs)"
    assert _row(text, "acceptance").endswith("(gibbs, no step (Gibbs))")
    assert _json(capsys, path)["sampler"]["step"] is None


# ----------------------------------------------------------------------------- 4: chains
def _numbers(text: str) -> list:
    return [float(v) for v in re.findall(r"\d+\.\d+", text)]


def test_disagreeing_chains_say_which_test_fired_with_numbers(tmp_path, capsys):
    path = tmp_path / "shifted.h5"
    write_run_file(path, format_version=3, n_samples=1024, shift_chain=2, shift=0.1)
    report = _json(capsys, path)
    p = report["production"]
    assert p["chains_verdict"] == "disagree" and p["flagged_chains"] == [2]
    assert not p["chains_ok"]
    warning = next(w for w in report["warnings"] if w.startswith("chains disagree"))
    rhat, limit = _numbers(re.search(r"R-hat (\S+) above its limit (\S+)", warning)[0])
    assert rhat > limit
    z, z_limit = _numbers(re.search(r"chain 2 \(rank 1\) at .*\(limit \S+\)", warning)[0])[-2:]
    assert z > z_limit
    assert "sampler.thermalization" in warning  # what to do
    text = _text(capsys, path)
    assert _row(text, "chains").startswith("CHAINS DISAGREE")
    assert _row(text, "warning") == warning


def test_one_outlying_heavy_tailed_chain_is_a_note_not_a_disagreement(tmp_path, capsys):
    """32 chains of a 1/r-type local energy without a cusp (infinite variance): chain 7
    of this seed lies beyond the plain z limit, low (it drew few of the large values);
    winsorised, the chains agree. The report says so in a note, with the numbers."""
    rng = np.random.default_rng(12)
    energies = 3.0 + 0.3 / np.linalg.norm(rng.standard_normal((32, 4096, 2)), axis=-1)
    path = tmp_path / "tail.h5"
    write_run_file(
        path, format_version=3, mpi_size=8, walkers_per_rank=4, n_samples=4096, energies=energies
    )
    report = _json(capsys, path)
    p = report["production"]
    assert p["plain_flagged_chains"] == [7] and p["flagged_chains"] == [] and p["chains_ok"]
    assert p["chains_verdict"] == "heavy_tail"
    assert p["rhat_winsorised"] <= p["rhat_winsorised_limit"]
    assert not any("disagree" in w for w in report["warnings"])
    note = report["notes"][0]
    assert note.startswith("heavy tail of E_L") and "chain 7 (rank 1) at -3.7" in note
    z, z_limit = _numbers(re.search(r"at -(\S+) standard errors .*\(limit \S+\)", note)[0])[-2:]
    assert z > z_limit
    text = _text(capsys, path)
    assert "DISAGREE" not in text
    assert _row(text, "chains").startswith("agree") and "heavy tail" in _row(text, "chains")
    assert _row(text, "note") == note


def test_rhat_and_its_limit_never_print_alike(tmp_path, capsys):
    """Two different numbers get the digits that tell them apart."""
    from parallel_vmc.stats.chains import distinct

    assert distinct(1.000021, 1.000024) == ("1.000021", "1.000024")
    assert distinct(1.0000200001, 1.0000200003)[0] != distinct(1.0000200001, 1.0000200003)[1]
    assert distinct(1.5, 1.25) == ("1.50000", "1.25000")


# ----------------------------------------------------------------------------- 4: 1D Coulomb
@pytest.mark.parametrize(
    "system,infinite",
    [
        ({"dimensions": 1, "particles": 2, "interaction": "coulomb"}, True),
        ({"dimensions": 1, "particles": 2, "interaction": "none"}, False),
        ({"dimensions": 1, "particles": 1, "interaction": "coulomb"}, False),
        ({"dimensions": 2, "particles": 2, "interaction": "coulomb"}, False),
    ],
)
def test_1d_coulomb_mean_is_infinite(tmp_path, capsys, system, infinite):
    path = tmp_path / "line.h5"
    write_run_file(path, format_version=3, n_samples=1024, system=system)
    report = _json(capsys, path)
    assert bool(report["production"].get("mean_is_infinite")) is infinite
    assert (report["infinite_mean"] is not None) is infinite
    assert any("INFINITE" in w and "meaningless" in w for w in report["warnings"]) is infinite
    energy = _row(_text(capsys, path), "energy")
    assert ("MEAN IS INFINITE" in energy and "meaningless" in energy) is infinite
    assert re.match(r"\d+\.\d{6}", energy)  # the sample mean is shown
    assert ("+-" not in energy) is infinite  # with no error bar when the mean diverges


def test_table_marks_an_infinite_mean(tmp_path, capsys):
    path = tmp_path / "line.h5"
    write_run_file(path, format_version=3, n_samples=1024, system={"dimensions": 1, "particles": 2})
    code, out, _ = _run(capsys, "table", path, "--by", "system.dimensions", "--n-boot", "20")
    assert code == 0
    row = out.splitlines()[1]
    assert "meaningless" in row
    assert "the mean energy is infinite (1D Coulomb)" in out


# ----------------------------------------------------------------------------- 4: figures
@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions would save, by file name."""
    saved = {}

    def keep(fig, path):
        saved[os.path.basename(path)] = fig
        return path

    monkeypatch.setattr(plots, "save", keep)
    return saved


def test_histogram_shows_the_bulk_on_a_log_axis(figures):
    """A heavy tail (1/r without a cusp): the range covers the bulk, not the tail's
    extreme quantiles, the y axis is logarithmic, and the plot says how many samples
    lie outside."""
    rng = np.random.default_rng(1)
    x = 3.0 + 0.3 / np.linalg.norm(rng.standard_normal((200_000, 2)), axis=-1)
    lo, hi = plots.histogram_range(x)
    q = np.quantile(x, [0.001, 0.999])
    assert x.min() <= lo < np.median(x) < hi < q[1]
    assert hi - lo < 0.3 * (q[1] - q[0])  # not the tail's 99.9 % point
    assert np.mean((x >= lo) & (x <= hi)) > 0.95
    outside = int(np.count_nonzero((x < lo) | (x > hi)))
    plots.plot_histogram(x, "h.png", mean=float(x.mean()))
    ax = figures["h.png"].axes[0]
    assert ax.get_yscale() == "log"
    assert ax.get_xlim()[1] < q[1]
    note = ax.get_legend().get_title().get_text()
    assert f"outside the range: {outside} of {x.size} samples" in note
    assert "omega_0" in ax.get_xlabel()


def test_histogram_range_of_constant_and_gaussian_samples():
    assert plots.histogram_range(np.full(100, 2.0)) == (1.5, 2.5)
    x = np.random.default_rng(2).standard_normal(10_000)
    assert plots.histogram_range(x) == (x.min(), x.max())  # nothing cut


def test_scan_plot_has_error_bars_and_no_lines(figures):
    rows = [
        {"key": 0.5, "energy": 1.6, "error": 0.01},
        {"key": 1.0, "energy": 3.0, "error": 0.02},
        {"key": 2.0, "energy": 5.9, "error": 0.03, "mean_is_infinite": True},
    ]
    plots.plot_scan(rows, "system.omega", "scan.png")
    ax = figures["scan.png"].axes[0]
    assert all(line.get_linestyle() in ("None", "none", "") for line in ax.lines)
    bars = [c for c in ax.containers if getattr(c, "has_yerr", False)]
    assert len(bars) == 1 and len(bars[0].lines[0].get_xdata()) == 2
    assert "omega_0" in ax.get_ylabel() and "omega_0" in ax.get_xlabel()
    assert any("infinite mean" in t.get_text() for t in ax.get_legend().get_texts())


def test_every_run_figure_labels_its_units(tmp_path, figures, capsys):
    from analysis_fixtures import gaussian_observables

    path = tmp_path / "obs.h5"
    write_run_file(
        path,
        format_version=3,
        n_samples=1024,
        observables=gaussian_observables(samples=2048, n_batches=8),
    )
    assert _run(capsys, path, "--plots", tmp_path / "p", "--n-boot", "20")[0] == 0
    labels = {
        name: (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) for name, fig in figures.items()
    }
    assert "hbar" in labels["obs_optimization.png"][1]
    assert "hbar" in labels["obs_blocking.png"][1]
    assert "hbar" in labels["obs_histogram.png"][0]
    for name in ("obs_density.png", "obs_pair_distance.png", "obs_density_image.png"):
        assert "sqrt{\\hbar/m\\omega_0}" in labels[name][0], name


def test_pair_distance_plot_shows_the_hard_core(figures):
    """With a hard-sphere radius a: a second panel near r12 = a, the core shaded, and
    whether the bins resolve it (an edge at a)."""
    a, width = 0.1, 0.025
    edges = np.arange(0, 321) * width  # an edge at a = 4 widths
    density = np.where(edges[1:] <= a + 1e-12, 0.0, 1.0)
    plots.plot_pair_distance(edges, density, 0.01 * density, 1.5, "core.png", core=a)
    near = figures["core.png"].axes[1]
    assert "a bin edge at a" in near.get_title() and "NO" not in near.get_title()
    assert near.get_xlim() == (0.0, pytest.approx(12 * a))
    assert any(f"a = {a:g}" in t.get_text() for t in near.get_legend().get_texts())
    coarse = np.arange(0, 101) * 0.08  # no edge at 0.1
    plots.plot_pair_distance(coarse, np.ones(100), np.zeros(100), 1.5, "c.png", core=a)
    assert "NO bin edge at a" in figures["c.png"].axes[1].get_title()
    plots.plot_pair_distance(coarse, np.ones(100), np.zeros(100), 1.5, "plain.png")
    assert len(figures["plain.png"].axes) == 1  # no hard core: one panel
