"""One verdict on the chains (``stats.chains.chain_verdict``): the run's summary and
``python -m analysis`` say the same of the same samples; a heavy tail of E_L (the RBM's
missing cusp) is a note with what to do, not an alarm; chains that really disagree get
the warning from both."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
from analysis_fixtures import ar1, write_run_file
from conftest import ROOT, subprocess_env

from analysis.cli import main as analysis_main
from parallel_vmc.parallel import SerialComm
from parallel_vmc.run import report, summary
from parallel_vmc.stats.chains import (
    AGREE,
    DISAGREE,
    HEAVY_TAIL,
    WINSOR_SD,
    chain_moments,
    summarize_chains,
    tail_cause,
    winsor_bounds,
)

# the quick start's system: 2D Coulomb, RBM alone (no cusp)
CONFIG = {
    "system": {"particles": 2, "dimensions": 2, "interaction": "coulomb", "statistics": "fermions"},
    "wavefunction": {"jastrow": "none"},
    "sampler": {"walkers_per_rank": 4},
}


def cusp_less(seed: int, chains: int = 32, n: int = 8192) -> np.ndarray:
    """Local energies with the tail of a missing 2D cusp: 0.3/r with r the length of a
    2D Gaussian vector, P(E_L > t) ~ t^-2 (an infinite variance), on a mildly
    correlated bulk."""
    rng = np.random.default_rng(seed)
    tail = 0.3 / np.linalg.norm(rng.standard_normal((chains, n, 2)), axis=-1)
    return 3.0 + 0.2 * ar1(0.3, n, seed, chains=chains) + tail


def run_summary(x: np.ndarray) -> dict:
    """The run's summary of chains x (the reductions on one rank)."""
    return summary.summarize(SerialComm(), x, 0.9, CONFIG)


def analysis_report(tmp_path, x: np.ndarray, capsys, name="run") -> tuple:
    """(JSON report, text report) of ``python -m analysis`` on a file holding x."""
    path = tmp_path / f"{name}.h5"
    write_run_file(
        path,
        format_version=3,
        mpi_size=x.shape[0] // 4,
        walkers_per_rank=4,
        n_samples=x.shape[1],
        energies=x,
        system={"particles": 2, "dimensions": 2, "interaction": "coulomb"},
    )
    capsys.readouterr()
    assert analysis_main([str(path), "--json", "--n-boot", "10"]) == 0
    report_json = json.loads(capsys.readouterr().out)
    assert analysis_main([str(path), "--n-boot", "10"]) == 0
    return report_json, capsys.readouterr().out


def printed(s: dict) -> str:
    """The summary's chain lines as the run prints them."""
    return "\n".join(report.chain_lines(s))


# ---------------------------------------------------------------- heavy tail
def test_a_heavy_tail_that_sets_off_the_plain_check_is_a_note_from_both(tmp_path, capsys):
    """Seed 16: the plain z-check flags two agreeing cusp-less chains, low (at -3.7 and
    -4.1 standard errors: they drew few of the large values); winsorised,
    they agree. Summary and analysis: the same verdict, a note naming the tail and the
    Pade factor, no warning."""
    x = cusp_less(16)
    s = run_summary(x)
    assert s["chains_verdict"] == HEAVY_TAIL and s["plain_flagged_chains"]
    assert s["flagged_chains"] == []
    text = printed(s)
    assert text.startswith("chains        agree: E_L winsorised")
    note = s["chains_explanation"]
    assert f"note          {note}" in text and "warning" not in text
    assert "heavy tail" in note and "wavefunction.jastrow: pade" in note

    r, out = analysis_report(tmp_path, x, capsys)
    p = r["production"]
    assert p["chains_verdict"] == s["chains_verdict"] and p["chains"] == s["chains"]
    assert r["notes"] == [note]
    assert not any("disagree" in w for w in r["warnings"])
    assert "DISAGREE" not in out and note in out


def test_heavy_tails_rarely_alarm_the_verdict():
    """20 sets of agreeing cusp-less chains: the winsorised verdict calls at most one of
    them disagreeing (alpha = 0.01 per check), however often the plain check fires."""
    verdicts = [summarize_chains(cusp_less(seed, n=4096), n_boot=2).verdict for seed in range(20)]
    assert sum(v.level == DISAGREE for v in verdicts) <= 1
    assert {v.level for v in verdicts} <= {AGREE, HEAVY_TAIL, DISAGREE}


# ---------------------------------------------------------------- disagreement
@pytest.mark.parametrize("tail", [False, True])
def test_a_shifted_chain_gets_the_warning_from_both(tmp_path, capsys, tail):
    """Chain 5 shifted by 10 of its winsorised standard errors (a stuck or unrelaxed
    chain), with or without the heavy tail: both say the chains disagree, name the chain
    and its rank, and say what to do."""
    x = cusp_less(3, n=4096) if tail else 3.0 + 0.2 * ar1(0.3, 4096, 3, chains=32)
    bounds = winsor_bounds(x.mean(), x.var(ddof=1))
    m = chain_moments(x, bounds)
    x[5] += 10.0 * np.sqrt(np.median(m[:, 1]) * 2.0 / x.shape[1])  # tau ~ 2 (phi 0.3)
    s = run_summary(x)
    assert s["chains_verdict"] == DISAGREE and 5 in s["flagged_chains"]
    warning = s["chains_explanation"]
    assert warning.startswith("chains disagree") and "chain 5 (rank 1)" in warning
    assert "sampler.thermalization" in warning
    text = printed(s)
    assert text.startswith("chains        CHAINS DISAGREE")
    assert f"warning       {warning}" in text

    r, out = analysis_report(tmp_path, x, capsys)
    p = r["production"]
    assert p["chains_verdict"] == DISAGREE and p["flagged_chains"] == s["flagged_chains"]
    assert not p["chains_ok"] and p["chains"] == s["chains"]
    assert warning in r["warnings"]
    assert "CHAINS DISAGREE" in out and warning in out


def test_the_bounds_are_the_same_for_every_chain():
    """Winsorising is one fixed function of the samples: the bounds come from all of
    them, E -+ WINSOR_SD sd, and each chain's moments are those of its clipped samples."""
    x = cusp_less(1, chains=4, n=512)
    lo, hi = winsor_bounds(x.mean(), x.var(ddof=1))
    assert hi - lo == pytest.approx(2 * WINSOR_SD * x.std(ddof=1))
    m = chain_moments(x, (lo, hi))
    assert m[:, 0] == pytest.approx(np.clip(x, lo, hi).mean(axis=1))
    assert m[:, 6] == pytest.approx(x.mean(axis=1))
    assert m[:, 7] == pytest.approx(x.var(axis=1, ddof=1))
    # rows split as over ranks give the moments of all rows
    assert np.array_equal(np.concatenate([chain_moments(x[:1], (lo, hi)), m[1:]]), m)


def test_what_to_do_follows_the_system():
    assert "wavefunction.jastrow: pade" in tail_cause(CONFIG)
    assert "logarithmically in 2D" in tail_cause(CONFIG)
    pade = {**CONFIG, "wavefunction": {"jastrow": "pade"}}
    assert tail_cause(pade) is None  # two electrons with the cusp: no tail left
    six = {**pade, "system": {**CONFIG["system"], "particles": 6}}
    assert "nodes of the Slater determinants" in tail_cause(six)
    bosons = {
        "system": {"particles": 10, "dimensions": 3, "interaction": "hard_sphere"},
        "wavefunction": {"jastrow": "hard_sphere"},
    }
    assert tail_cause(bosons) is None and tail_cause(None) is None
    line = {**CONFIG, "system": {**CONFIG["system"], "dimensions": 1}}
    assert tail_cause(line) is None  # an infinite mean, reported on its own


# ---------------------------------------------------------------- the quick start
@pytest.mark.slow
def test_the_quick_start_gets_one_verdict_and_no_alarm(tmp_path):
    """The README's quick start (2 ranks, minutes): its summary and python -m analysis
    give the same verdict on its file, and it is not 'disagree' (the plain check said
    CHAINS DISAGREE there: R-hat 1.000021 against 1.000017, two chains at -4.6 and
    -4.1 standard errors, all from the heavy tail of E_L without the cusp)."""
    out = tmp_path / "quickstart.h5"
    env = subprocess_env()
    run = subprocess.run(
        ["mpiexec", "-n", "2", sys.executable, "-m", "parallel_vmc", "run"]
        + [os.path.join(ROOT, "configs", "quickstart.yaml"), "-o", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    chains = next(line for line in run.stdout.splitlines() if line.startswith("chains "))
    res = subprocess.run(
        [sys.executable, "-m", "analysis", str(out), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    p = json.loads(res.stdout)["production"]
    with h5py.File(out) as h5:
        stored = h5["summary"].attrs["chains_verdict"]
    assert p["chains_verdict"] == stored != DISAGREE
    assert chains == f"chains        {p['chains']}"
