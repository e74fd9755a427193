"""`pvmc bench --efficiency`: the option checks (generated inputs) and a short run whose
figures are checked where they are known: Gibbs draws of the RBM at a = b = 0 and
|W| <= 0.005 are almost independent (x | h barely depends on h), so tau_int is 1."""

import argparse
import pathlib
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_config_input import pvmc

from parallel_vmc.bench import efficiency
from parallel_vmc.bench import options as bench_options

CONFIGS = pathlib.Path(__file__).resolve().parent.parent / "configs"


def options(samplers="metropolis", samples=1000.0, efficiency_flag=True):
    return argparse.Namespace(
        samplers=samplers,
        samples=samples,
        efficiency=efficiency_flag,
        scan_particles=None,
        reference=None,
    )


@given(text=st.text(alphabet="abcdeghilmnoprstuv, ", max_size=40))
@settings(max_examples=200, deadline=None)
def test_sampler_lists_are_accepted_or_refused_naming_the_choices(text):
    args = options(samplers=text)
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names and all(n in bench_options.SAMPLERS for n in names):
        bench_options.check_efficiency_options(args)
        assert args.samplers == tuple(names)
    else:
        with pytest.raises(
            bench_options.BenchInputError,
            match=r"--samplers .*allowed: .*metropolis, importance, gibbs",
        ):
            bench_options.check_efficiency_options(args)


@given(
    samples=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10).map(float)
    )
)
@settings(max_examples=100, deadline=None)
def test_sample_counts_outside_the_range_are_refused(samples):
    args = options(samples=samples)
    if 1 <= samples < 1e12:
        bench_options.check_efficiency_options(args)
        assert args.samples == int(samples)
    else:
        with pytest.raises(bench_options.BenchInputError, match="--samples"):
            bench_options.check_efficiency_options(args)


def test_samplers_a_config_forbids_are_named_with_the_reason():
    from parallel_vmc.config.vmc import load_config

    cfg = load_config(str(CONFIGS / "dot2d_omega1.0.yaml"), [])  # Padé-Jastrow: no Gibbs
    usable, refused = efficiency.sampler_configs(cfg, bench_options.SAMPLERS)
    assert [n for n, _ in usable] == ["metropolis", "importance"]
    assert refused[0][0] == "gibbs" and "jastrow" in refused[0][1]


def test_sweeps_per_chain_cover_the_samples():
    assert efficiency.sweeps_per_chain(10**6, 16) * 16 >= 10**6
    assert efficiency.sweeps_per_chain(10, 16) == efficiency.MIN_SWEEPS


def test_efficiency_run_prints_every_sampler_and_gibbs_draws_are_independent():
    res = pvmc(
        "bench",
        CONFIGS / "quickstart.yaml",
        "--efficiency",
        "--samples",
        "65536",
        "--repeats",
        "2",
        "--walkers",
        "8",
        "--moves",
        "2e4",
    )
    assert res.returncode == 0, res.stderr
    rows = {}
    for line in res.stdout.splitlines():
        m = re.match(r"(metropolis|importance|gibbs)\s+\S+\s+([\d.]+)\s+(.*)", line)
        if m:
            numbers = [float(v) for v in re.findall(r"[-+]?\d[\d.]*(?:e[-+]?\d+)?", m.group(3))]
            rows[m.group(1)] = numbers  # ns, err, tau, err, kappa, err, ess, err
    assert set(rows) == {"metropolis", "importance", "gibbs"}
    for ns, _, tau, _, kappa, _, ess, _ in rows.values():
        assert ns > 0 and tau > 0 and kappa > 0 and ess > 0
    assert rows["gibbs"][2] == pytest.approx(1.0, abs=0.1)
    assert rows["metropolis"][2] > rows["gibbs"][2]  # local moves: correlated
    energies = re.findall(r"(metropolis|importance|gibbs)\s+E = ([\d.]+) \+- ([\d.]+)", res.stdout)
    assert len(energies) == 3
    exact = 2.0 + (np.pi / 2) ** 0.5  # a = b = 0, |W| <= 0.005: the Gaussian ground state
    for _, e, err in energies:  # with Coulomb, <1/r12> = sqrt(pi/2); 0.01:
        assert abs(float(e) - exact) < 5 * float(err) + 0.01  # <1/r12^2> diverges in 2D,
    # so E_L's blocking error is only indicative
    costs = re.findall(
        r"^\s+(metropolis|importance|gibbs)\s+([\d.]+)\s+with observables\s+"
        r"([\d.]+)",
        res.stdout,
        re.M,
    )
    assert len(costs) == 3 and all(float(a) > 0 and float(b) > 0 for _, a, b in costs)
    assert "importance / metropolis move:" in res.stdout
