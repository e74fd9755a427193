"""Fixed-node diffusion Monte Carlo (``parallel_vmc/dmc``): the comb against the
distribution it must draw, the copies' streams, the estimator on series with known
answers, the exact nodeless energy of two electrons, and walkers that never cross a
node of the determinants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_config  # noqa: F401 - the conftest's path for the imports below

from parallel_vmc import wavefunction as wfm
from parallel_vmc.dmc import balance, streams
from parallel_vmc.dmc.estimate import corrected_energy, extrapolate
from parallel_vmc.dmc.walk import Diffusion, DiffusionUnstable
from parallel_vmc.dmc.weights import branching_rate, comb, cutoff, replicate
from parallel_vmc.parallel import SerialComm
from parallel_vmc.sampling.samplers import Sampler, Walkers
from parallel_vmc.system import System
from parallel_vmc.wavefunction import slater


def test_the_comb_gives_each_walker_its_weight_in_copies_on_average():
    """Over u uniform in [0, 1), walker i's mean copy count is its weight w_i (to the
    sampling error of the u's), the total is the number of teeth in [0, sum w), and a
    population split over two ranks at any walker gets the copies of one piece."""
    rng = np.random.default_rng(1)
    w = rng.exponential(1.0, 40)
    total = w.sum()
    us = (np.arange(4000) + 0.5) / 4000  # u on a fine grid: the average is exact to 1/4000
    copies = np.array([comb(w, 0.0, total, u) for u in us])
    np.testing.assert_allclose(copies.mean(axis=0), w, atol=2.0 / 4000 * 4)
    assert all(c.sum() == math.ceil(total - u) for c, u in zip(copies, us))
    cut = 17
    mid = w[:cut].sum()
    for u in us[::97]:
        split = np.concatenate([comb(w[:cut], 0.0, mid, u), comb(w[cut:], mid, total, u)])
        assert split.sum() == math.ceil(total - u)
        assert np.abs(split - comb(w, 0.0, total, u)).sum() <= 2  # a tooth on the cut


def test_copy_streams_are_reproducible_and_distinct():
    key = streams.root_key(7)
    assert key == streams.root_key(7) and key != streams.root_key(8)
    a = np.empty((50, 4), dtype=np.uint64)
    b = np.empty((50, 4), dtype=np.uint64)
    c = np.empty((50, 4), dtype=np.uint64)
    for slot in range(50):
        streams.fill_copy_state(a[slot], key, 3, slot)
        streams.fill_copy_state(b[slot], key, 3, slot)
        streams.fill_copy_state(c[slot], key, 4, slot)
    np.testing.assert_array_equal(a, b)
    rows = {tuple(r) for r in np.concatenate([a, c]).tolist()}
    assert len(rows) == 100  # no two copies (of two steps) share a stream
    us = [streams.comb_offset(key, np.int64(t)) for t in range(2000)]
    assert 0.0 <= min(us) and max(us) < 1.0 and abs(np.mean(us) - 0.5) < 4 * 0.29 / 2000**0.5


def test_branching_rate_is_cut_at_alpha_sqrt_n_over_tau():
    cut = cutoff(4, 0.01)
    assert cut == pytest.approx(0.2 * math.sqrt(4 / 0.01))
    got = [branching_rate(e, 3.1, 3.0, cut) for e in (3.0, 2.0, 100.0, -100.0)]
    np.testing.assert_allclose(got, [0.1, 1.1, 0.1 - cut, 0.1 + cut])


def test_replicated_walkers_keep_their_place_and_only_first_copies_their_stream():
    copies = np.array([0, 2, 1, 3], dtype=np.int64)
    x = np.arange(8.0).reshape(4, 2)
    rng = np.arange(16, dtype=np.uint64).reshape(4, 4)
    key = streams.root_key(3)
    rows = np.array([7, 4, -1, 0], dtype=np.int64)  # of kept caches: none for walker 2
    nx, nrng, ne, nrows = replicate(
        copies, x, rng, np.array([1.0, 2.0, 3.0, 4.0]), rows, key, 5, 10
    )
    np.testing.assert_array_equal(ne, [2.0, 2.0, 3.0, 4.0, 4.0, 4.0])
    np.testing.assert_array_equal(nrows, [4, -1, -1, 0, -1, -1])  # first copies keep theirs
    np.testing.assert_array_equal(nx, x[[1, 1, 2, 3, 3, 3]])
    for j, parent in ((0, 1), (2, 2), (3, 3)):
        np.testing.assert_array_equal(nrng[j], rng[parent])
    fresh = np.empty((1, 4), dtype=np.uint64)
    streams.fill_copy_state(fresh[0], key, 5, 10 + 4)  # the slot of row 4
    np.testing.assert_array_equal(nrng[4], fresh[0])
    assert len({tuple(r) for r in nrng.tolist()}) == 6


@pytest.mark.parametrize("counts", [[5, 0, 9], [1, 1, 1], [0, 0, 7], [10, 3], [4], [4, 5, 3]])
def test_the_balancing_plan_evens_out_the_counts_in_global_order(counts):
    """Every rank ends with total // size or one more walkers, and walker k of the
    global order (rank 0's first) stays walker k."""
    size = len(counts)
    order = np.arange(sum(counts))
    held = np.split(order, np.cumsum(counts)[:-1])
    after = []
    for r in range(size):
        sends, receives = balance.plan(counts, r)
        others = [d for d, _, _ in sends if d != r] + [src for src, _ in receives if src != r]
        assert balance.untouched(counts, r) == (not others)  # then it sits the transfers out
        pieces = []
        for src, n in receives:
            mine = [(a, b) for dst, a, b in balance.plan(counts, src)[0] if dst == r]
            assert len(mine) == 1 and mine[0][1] - mine[0][0] == n
            pieces.append(held[src][mine[0][0] : mine[0][1]])
        after.append(np.concatenate(pieces) if pieces else np.empty(0, dtype=int))
    np.testing.assert_array_equal(np.concatenate(after), order)
    sizes = [a.size for a in after]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_the_estimator_undoes_the_trial_energy_and_fits_the_line():
    """A constant E_T leaves the weighted mean; with E_T(t) varying, the weights are
    multiplied by exp(-tau sum of the last T_p values); the fit recovers a line."""
    rng = np.random.default_rng(2)
    e, w = 3.0 + 0.1 * rng.standard_normal(4096), rng.uniform(0.5, 1.5, 4096)
    got, err = corrected_energy(e, w, np.full(4096, 2.0), 0.01, 50, 96)
    assert got == pytest.approx(np.sum(w[96:] * e[96:]) / np.sum(w[96:]), rel=1e-12)
    assert 0.0 < err < 0.01
    e_t = rng.standard_normal(4096)
    got, _ = corrected_energy(e, w, e_t, 0.1, 3, 96)
    pi = np.exp(-0.1 * np.array([e_t[t - 2 : t + 1].sum() for t in range(96, 4096)]))
    assert got == pytest.approx(np.sum(pi * w[96:] * e[96:]) / np.sum(pi * w[96:]), rel=1e-12)
    taus = np.array([0.01, 0.02, 0.04])
    e0, err0 = extrapolate(taus, 3.0 + 0.5 * taus, np.full(3, 1e-3))
    assert e0 == pytest.approx(3.0, abs=1e-12) and 0.0 < err0 < 3e-3
    assert extrapolate([0.01], [3.1], [0.2]) == (3.1, 0.2)


def test_a_window_longer_than_the_warm_up_does_not_hand_the_first_steps_the_weight():
    """T_p = 800 after 500 warm-up steps (the default window at tau = 0.0025): the first
    counted steps have truncated windows. With factors of the absolute E_T (~24) they
    would outweigh the rest by exp(tau E_T) per missing step, and the 'error' would
    collapse to that of a few steps (the boson run that found this: 2e-7). E_T that
    only fluctuates must leave the plain mean and its error."""
    rng = np.random.default_rng(5)
    n, first = 4500, 500
    e = 24.3977 + 0.0013 * rng.standard_normal(n)
    e_t = 24.3969 + 0.0012 * (-1.0) ** np.arange(n) + 1e-4 * rng.standard_normal(n)
    w = 1000.0 + 0.003 * rng.standard_normal(n)
    plain, plain_err = corrected_energy(e, w, e_t, 0.0025, 0, first)
    got, err = corrected_energy(e, w, e_t, 0.0025, 800, first)
    assert abs(got - plain) < 0.1 * plain_err and 0.9 < err / plain_err < 1.1, (got, err)


def two_electrons(beta: float):
    """(system, wf, theta): P = 2 in 2D, omega = 1, Coulomb; RBM (a = b = W = 0) x
    Pade-Jastrow with the cusp and the given beta."""
    system = System(2, 2, 1.0, True)
    sigma = wfm.exact_sigma(1.0, "sqrt")
    wf = wfm.WaveFunction(wfm.Layout(4, 2, ("rbm", "pade")), sigma, "sqrt", 2, 2)
    return system, wf, wf.layout.initial(0.0, np.random.default_rng(3), beta=beta)


def test_two_electrons_reach_the_exact_energy_three():
    """No nodes: DMC converges to the exact 3 (Taut 1993) as tau -> 0, from a trial
    function whose Jastrow factor is too stiff (VMC ~ 3.07). The line through three
    time steps must meet 3 within 3 of its error bars + 1e-4 (the issue's bound), and
    the VMC energy must lie above it by more than 5 error bars."""
    system, wf, theta = two_electrons(beta=1.2)
    target = 400
    walkers = Walkers.start(5, 0, target, 4, wf.sigma, 2)
    vmc = Sampler("importance", 0.3, system, wf)
    vmc.thermalize(theta, walkers, 300, SerialComm())
    e, *_ = vmc.produce(theta, walkers, 400, components=False)
    key, rows = streams.root_key(11), []
    for i, tau in enumerate((0.04, 0.02, 0.01)):
        sampler = Sampler("importance", tau, system, wf, drift_limit=1.0)
        run = Diffusion(sampler, theta, walkers, SerialComm(), target, e.mean(), key, 1.0, i << 32)
        run.run(2500)
        energy, error = run.energy_summary(500, 100)
        assert run.moves[0] / run.moves[1] > 0.99
        assert 0.9 * tau < run.tau_eff < tau
        rows.append((tau, energy, error))
        walkers = run.walkers
    e0, err0 = extrapolate(*zip(*rows))
    assert abs(e0 - 3.0) < 3 * err0 + 1e-4, rows
    assert err0 < 8e-3  # 400 walkers x 2000 steps; a config's run makes it 2e-4
    assert e.mean() - 3.0 > 5 * err0, (e.mean(), rows)


def test_fixed_node_walkers_never_change_the_sign_of_psi():
    """Six free fermions in 2D with a large time step, where importance-sampled VMC
    moves walkers across the nodes of the determinants: in DMC no walker's sign of the
    Slater part ever changes (the node is rejected), and the energy is the exact 10 of
    these nodes, the non-interacting ground state's."""
    from parallel_vmc.config.vmc import from_dict
    from parallel_vmc.wavefunction import WaveFunction

    cfg = from_dict(
        {
            "system": {"particles": 6, "dimensions": 2, "omega": 1.0, "interaction": "none"},
            "wavefunction": {"hidden": 4},
        }
    )
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wf.layout.initial(0.0, np.random.default_rng(0))
    s = wf.kernel_parts().antisymmetric

    def signs(w):
        return np.array([slater.signed_log_psi(theta, s, x, 2)[1] for x in w.positions])

    flips = {}
    for mode in ("vmc", "dmc"):
        w = Walkers.start(3, 0, 64, 12, 1.2)
        sampler = Sampler("importance", 0.6, system, wf, drift_limit=1.0)
        before, changed = signs(w), 0
        for _ in range(40):
            if mode == "vmc":
                sampler.produce(theta, w, 1, components=False)
                now = signs(w)
            else:
                e, _ = sampler.diffuse(theta, w, 1)
                now = signs(w)
                np.testing.assert_allclose(e, 10.0, rtol=1e-9)
            changed += int(np.count_nonzero(now != before))
            before = now
        flips[mode] = changed
    assert flips["vmc"] > 0 and flips["dmc"] == 0, flips


@pytest.mark.parametrize("config", ["dmc_dot2d_N2_omega1.0.yaml", "dmc_dot2d_N6_omega1.0.yaml"])
def test_caches_kept_between_steps_give_the_moves_of_caches_rebuilt_every_step(config):
    """The walkers keep their parts' caches from step to step (the comb's first copies
    keep their rows, the others are rebuilt): 150 steps, across a full rebuild
    (walk.BLOCK), move and weigh every walker as a run that rebuilds all caches before
    every step does, to rounding. A row handed to the wrong walker, or left stale after
    a move, would give other moves and energies."""
    from conftest import ROOT

    from parallel_vmc.config.vmc import load_config
    from parallel_vmc.wavefunction import WaveFunction

    cfg = load_config(f"{ROOT}/configs/{config}")
    system = System.from_config(cfg.system)
    wf = WaveFunction.from_config(cfg.wavefunction, system)
    theta = wf.layout.initial(0.01, np.random.default_rng(0), beta=0.5)
    start = Walkers.start(4, 0, 60, system.n_coords, wf.sigma, system.dimensions)
    Sampler("importance", 0.3, system, wf).sweep(theta, start, 50)
    runs = []
    for _ in range(2):
        walkers = Walkers(start.positions.copy(), start.rng.copy())
        sampler = Sampler("importance", 0.02, system, wf, drift_limit=1.0)
        e0 = 3.0 if system.particles == 2 else 20.2
        runs.append(Diffusion(sampler, theta, walkers, SerialComm(), 60, e0, streams.root_key(2)))
    kept, rebuilt = runs
    shared = 0
    for _ in range(150):
        kept.step()
        shared += np.count_nonzero(kept.walkers.cached)
        rebuilt.walkers.cached[:] = False
        rebuilt.step()
    assert shared > 0.9 * 150 * 60  # most walkers did keep their caches
    np.testing.assert_allclose(kept.series.e_mean, rebuilt.series.e_mean, rtol=1e-10)
    np.testing.assert_array_equal(kept.series.population, rebuilt.series.population)
    np.testing.assert_allclose(kept.walkers.positions, rebuilt.walkers.positions, rtol=1e-10)


def test_a_vmc_call_after_dmc_rebuilds_the_caches_dmc_kept():
    """Walkers that kept their caches through DMC steps at one theta, then sampled by
    VMC at another, move exactly as copies that never kept any: VMC calls pass no
    store, so they rebuild every walker's caches."""
    system, wf, theta = two_electrons(beta=0.4)
    other = two_electrons(beta=0.9)[2]
    walkers = Walkers.start(5, 0, 20, 4, wf.sigma, 2)
    Sampler("importance", 0.01, system, wf).diffusion(theta)(walkers)
    assert walkers.cached.all()
    fresh = Walkers(walkers.positions.copy(), walkers.rng.copy())
    vmc = Sampler("importance", 0.3, system, wf)
    e_kept, *_ = vmc.produce(other, walkers, 3, components=False)
    e_fresh, *_ = vmc.produce(other, fresh, 3, components=False)
    np.testing.assert_array_equal(e_kept, e_fresh)


def test_a_population_out_of_bounds_stops_with_a_clear_error():
    system, wf, theta = two_electrons(beta=0.4)
    walkers = Walkers.start(5, 0, 50, 4, wf.sigma, 2)
    sampler = Sampler("importance", 0.01, system, wf, drift_limit=1.0)
    run = Diffusion(sampler, theta, walkers, SerialComm(), 400, 3.0, streams.root_key(1))
    with pytest.raises(DiffusionUnstable, match="left"):
        run.step()


@pytest.mark.mpi(min_size=2)
def test_across_ranks_counts_stay_even_e_t_is_common_and_the_energy_agrees():
    """2 ranks share 400 walkers: after every step the ranks hold counts within one
    walker, E_T is the same bits on both, and the energy agrees with the exact 3 and
    with one rank running the whole population."""
    from parallel_vmc.parallel import world

    comm = world()
    system, wf, theta = two_electrons(beta=0.4)
    target, steps, per_rank = 400, 600, 400 // comm.size
    key = streams.root_key(9)

    def run(c, first, n):
        walkers = Walkers.start(5, first, n, 4, wf.sigma, 2)
        Sampler("importance", 0.3, system, wf).thermalize(theta, walkers, 200, c)
        sampler = Sampler("importance", 0.02, system, wf, drift_limit=1.0)
        return Diffusion(sampler, theta, walkers, c, target, 3.0, key), walkers

    parallel, _ = run(comm, comm.rank * per_rank, per_rank)
    for _ in range(steps):
        parallel.step()
        counts = comm.comm.allgather(parallel.walkers.count)
        assert max(counts) - min(counts) <= 1, counts
        assert len(set(comm.comm.allgather(np.float64(parallel.e_trial).tobytes()))) == 1
    serial, _ = run(SerialComm(), 0, target)
    serial.run(steps)
    e2, err2 = parallel.energy_summary(150, 50)
    e1, err1 = serial.energy_summary(150, 50)
    assert abs(e2 - 3.0) < 3 * err2 + 1e-4 and abs(e1 - 3.0) < 3 * err1 + 1e-4, (e1, e2)
    assert abs(e1 - e2) < 3 * math.hypot(err1, err2)


DMC_RUN = {
    "wavefunction": {"hidden": 2, "jastrow": "pade"},
    "optimizer": {"iterations": 20, "samples_per_iteration": 4096},
    "production": {"samples": 16384},
    "dmc": {"time_steps": [0.04, 0.02], "walkers": 200, "warmup_steps": 200, "steps": 800},
}


def test_a_run_with_a_dmc_section_writes_dmc_and_reaches_three(tmp_path):
    """pvmc run's DMC phase after VMC: /dmc holds one row per time step and the series
    of every step, the summary has the table, and the line meets the exact 3."""
    import io

    import h5py

    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run
    from parallel_vmc.runfile import schema as S

    cfg = make_config(tmp_path / "d.h5", **DMC_RUN)
    out = io.StringIO()
    result = Run(cfg, SerialComm(), stream=out, progress=False).execute()
    assert "dmc energy" in out.getvalue() and result.summary["dmc"]["attrs"]
    with h5py.File(cfg.output.path) as h5:
        g = h5[S.DMC]
        for name in S.DMC_FIELDS:
            assert g[name].shape == (2,), name
        np.testing.assert_array_equal(g["time_step"][...], [0.04, 0.02])
        assert all(0.99 < a < 1 for a in g["acceptance"][...])
        for k in range(2):
            for name in S.DMC_SERIES:
                assert g[S.STEP_GROUP % k][name].shape == (1000,)
        e0, err0 = g.attrs["energy_extrapolated"], g.attrs["error_extrapolated"]
    assert abs(e0 - 3.0) < 3 * err0 + 1e-4 and err0 < 2e-3, (e0, err0)


def test_a_stop_during_dmc_resumes_to_the_bits_of_an_uninterrupted_run(tmp_path, monkeypatch):
    """SIGINT in the middle of the second time step: the run ends interrupted with a
    checkpoint of the phase, and pvmc resume continues the time step from that block
    (only the 300 steps left are made) to the same /dmc, bit for bit."""
    import io
    import os
    import signal

    import h5py
    from conftest import run_config

    from parallel_vmc.cli.main import main
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.run.driver import Run, RunInterrupted
    from parallel_vmc.runfile import schema as S

    sections = dict(DMC_RUN, dmc=dict(DMC_RUN["dmc"], steps=300))
    ref = run_config(make_config(tmp_path / "ref.h5", **sections))
    cfg = make_config(tmp_path / "stop.h5", **sections)
    original, calls = Diffusion.step, []

    def step(self):
        calls.append(1)
        if len(calls) == 700:  # the 200th step of the second time step
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Diffusion, "step", step)
    with pytest.raises(RunInterrupted, match=r"time step 2/2 \(tau 0.02\), step 200/500"):
        Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    with h5py.File(cfg.output.path) as h5:
        assert h5.attrs[S.STATUS].decode() == S.INTERRUPTED and S.DMC not in h5
    calls.clear()
    monkeypatch.setattr(Diffusion, "step", lambda self: calls.append(1) or original(self))
    assert main(["resume", cfg.output.path, "--quiet"]) == 0
    assert len(calls) == 300
    with h5py.File(cfg.output.path) as h5, h5py.File(ref.path) as r:
        for name in S.DMC_FIELDS:
            np.testing.assert_array_equal(h5[S.DMC][name][...], r[S.DMC][name][...])
        for name in S.DMC_SERIES:
            a, b = h5[S.DMC]["series_1"][name][...], r[S.DMC]["series_1"][name][...]
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "dmc,key",
    [
        ({"time_steps": []}, "dmc.time_steps"),
        ({"time_steps": [0.01, -0.02]}, "dmc.time_steps[1]"),
        ({"time_steps": "0.01"}, "dmc.time_steps"),
        ({"time_steps": [0.01], "walkers": 0}, "dmc.walkers"),
        ({"time_steps": [0.01], "steps": 3}, "dmc.steps"),
        ({"time_steps": [0.01], "feedback": 0}, "dmc.feedback"),
        ({"time_steps": [0.01], "cutoff": 0}, "dmc.cutoff"),
        ({"time_steps": [0.01], "alpha": 1}, "dmc.alpha"),
    ],
)
def test_bad_dmc_input_names_the_key(tmp_path, dmc, key):

    from parallel_vmc.config.fields import ConfigError

    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        make_config(tmp_path / "x.h5", dmc=dmc)


def test_dmc_with_gibbs_is_refused(tmp_path):

    from parallel_vmc.config.fields import ConfigError

    with pytest.raises(ConfigError, match="dmc.time_steps.*gibbs"):
        make_config(tmp_path / "x.h5", sampler={"method": "gibbs"}, dmc={"time_steps": [0.01]})


def test_fewer_dmc_walkers_than_ranks_is_refused_before_any_work(tmp_path):
    from conftest import make_config

    from parallel_vmc.run.preflight import all_problems, resume_problems

    cfg = make_config(tmp_path / "x.h5", dmc={"time_steps": [0.01], "walkers": 2})
    for problem in (all_problems(cfg, 3, False), resume_problems(cfg, 3)):
        assert problem.startswith("dmc.walkers: 2 ") and ">= 3" in problem
    assert all_problems(cfg, 2, False) is None


def test_diffusion_needs_the_importance_sampler():
    system, wf, theta = two_electrons(beta=0.4)
    with pytest.raises(ValueError, match="importance"):
        Sampler("metropolis", 0.5, system, wf).diffusion(theta)


@pytest.mark.mpi(min_size=2)
def test_an_exception_on_one_rank_stops_every_rank_after_the_same_step():
    """Rank 1's moves raise: its guard turns that into a flag of the step's Allreduce,
    and every rank raises DiffusionFailed naming rank 1 (no rank waits for ever)."""
    from parallel_vmc.dmc.walk import DiffusionFailed
    from parallel_vmc.parallel import world

    comm = world()
    system, wf, theta = two_electrons(beta=0.4)
    walkers = Walkers.start(5, comm.rank * 100, 100, 4, wf.sigma, 2)
    sampler = Sampler("importance", 0.02, system, wf, drift_limit=1.0)

    def guard(work, fallback):
        try:
            return work(), False
        except ZeroDivisionError:
            return fallback, True

    target = 100 * comm.size
    run = Diffusion(sampler, theta, walkers, comm, target, 3.0, streams.root_key(2), guard=guard)
    run.step()
    if comm.rank == 1:
        run.move = lambda w, t0: 1 / 0
    with pytest.raises(DiffusionFailed, match="exception on rank 1 at tau = 0.02, step 2"):
        run.step()


def test_an_exception_in_a_dmc_step_fails_the_run_with_the_reason(tmp_path, monkeypatch):
    """In a run, the step's exception is reported (traceback on stderr) and the run
    fails with a status that says where, rather than a bare traceback."""
    import io

    import h5py

    from parallel_vmc.run.driver import Run, RunFailed
    from parallel_vmc.runfile import schema as S

    cfg = make_config(tmp_path / "f.h5", **DMC_RUN)

    def broken(self, tau_eff):
        raise ZeroDivisionError("a broken step")

    monkeypatch.setattr(Diffusion, "_local", broken)
    with pytest.raises(RunFailed, match="DMC: an exception on rank 0 at tau = 0.04, step 1"):
        Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    with h5py.File(cfg.output.path) as h5:
        assert h5.attrs[S.STATUS].decode().startswith(S.FAILED)


def test_hard_sphere_walkers_never_overlap_in_dmc():
    """A dense gas of hard spheres (a = 0.35, 12 particles in 3D) under DMC: a move
    into a core is rejected (the potential is infinite there), so after every step no
    pair of any walker, copies included, is at r <= a; and such moves were proposed."""
    from test_bosons import hard_config

    from parallel_vmc.hamiltonian.geometry import min_pair_distance

    a, P, D = 0.35, 12, 3
    _, system, wf = hard_config(P, D, a, "hard_sphere", "importance")
    walkers = Walkers.start(3, 0, 40, P * D, 0.8, D, a)
    theta = np.zeros(wf.layout.n_params)
    sampler = Sampler("importance", 0.05, system, wf, drift_limit=1.0)
    run = Diffusion(sampler, theta, walkers, SerialComm(), 40, 40.0, streams.root_key(4))
    closest = np.inf
    for _ in range(60):
        run.step()
        closest = min(closest, min(min_pair_distance(x, P, D) for x in run.walkers.positions))
    assert a < closest < 1.2 * a
    assert run.moves[0] < run.moves[1]  # some moves rejected: the cores were hit


def test_an_infinite_weight_stops_the_step_with_a_clear_error():
    """Without a cutoff a weight can overflow while its local energy is finite: it is
    counted like a non-finite E_L, and the step stops with that reason (not with an
    error formatting a count of inf)."""

    system, wf, theta = two_electrons(beta=0.4)
    walkers = Walkers.start(5, 0, 50, 4, wf.sigma, 2)
    sampler = Sampler("importance", 0.01, system, wf, drift_limit=1.0)
    run = Diffusion(sampler, theta, walkers, SerialComm(), 50, 3.0, streams.root_key(1), alpha=None)

    run.e_trial = 1e6  # exp(tau (E_T - E_est)) overflows
    with pytest.raises(DiffusionUnstable, match="50 walkers' local energies or weights are not"):
        run.step()
