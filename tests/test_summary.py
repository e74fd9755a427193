"""The production summary from per-rank reductions (``parallel_vmc.summary``) gives the
numbers of the formula it replaced (``analysis.summarize_chains`` of the whole series on
rank 0): serially, for chains split over groups, under `mpiexec -n 2`, and for a run
whose summary is made by a resumed process from the file. Plus the production
writer's choice (``parallel_vmc.writer``) and, where h5py has MPI, the MPI-IO writer."""

from __future__ import annotations

import os
import tempfile

import h5py
import numpy as np
import pytest
from analysis_fixtures import ar1
from conftest import make_config, run_config

from analysis import summarize_chains
from parallel_vmc.parallel import SerialComm, row_counts
from parallel_vmc.run import summary
from parallel_vmc.runfile import writer
from parallel_vmc.stats.autocorr import (
    autocovariance_sums,
    integrated_time,
    time_from_autocovariance,
)
from parallel_vmc.stats.chains import rhat_from_half_sums, split_half_sums, split_rhat, tail_cause

RTOL = 1e-12


def old_summary(x: np.ndarray, acceptance: float, config: dict | None = None) -> dict:
    """The summary as the driver made it before (rank 0 read the whole series), with
    the verdict on the chains as ``python -m analysis`` gives it (config: the run's)."""
    s = summarize_chains(x)
    walkers = ((config or {}).get("sampler") or {}).get("walkers_per_rank")
    return {
        "energy": s.mean,
        "error": s.error,
        "error_bootstrap": s.error_bootstrap,
        "variance": s.variance,
        "tau_int": s.tau_int,
        "n_eff": s.n_eff,
        "n_samples": s.n_samples,
        "rhat": s.rhat,
        "blocking_level": s.blocking.level,
        "n_chains": x.shape[0],
        "acceptance": acceptance,
        **s.verdict.as_dict(),
        "chains": s.verdict.headline(),
        "chains_explanation": s.verdict.explanation(tail_cause(config), walkers) or "",
    }


def assert_same(new: dict, old: dict) -> None:
    assert new.keys() == old.keys()
    for key in old:
        if isinstance(old[key], (int, np.integer, str)):
            assert new[key] == old[key], key
        elif isinstance(old[key], list):
            assert np.allclose(new[key], old[key], rtol=RTOL, atol=0), key
        elif np.isnan(old[key]):
            assert np.isnan(new[key]), key
        else:
            assert new[key] == pytest.approx(old[key], rel=RTOL, abs=0), key


def chains(n_chains=6, n=3001, seed=3) -> np.ndarray:
    """Correlated chains of unequal means (n not a power of two)."""
    x = ar1(0.9, n, seed, chains=n_chains) + 3.0
    return x + 1e-3 * np.arange(n_chains)[:, None]


@pytest.mark.parametrize("n_chains", [1, 2, 7])
def test_serial_summary_equals_the_old_formula(n_chains):
    x = chains(n_chains)
    new = summary.summarize(SerialComm(), x, 0.5)
    assert_same(new, old_summary(x, 0.5))
    # one rank: the same sums in the same order, so the run's fingerprints hold
    assert new["energy"] == old_summary(x, 0.5)["energy"]
    assert new["error"] == old_summary(x, 0.5)["error"]


def test_reductions_add_up_over_groups_of_chains():
    """What ranks reduce: the sums of groups of chains add up to those of all."""
    x = chains(7)
    e = x.mean()
    parts = [x[:3], x[3:4], x[4:]]
    assert np.allclose(
        sum(summary.mean_sums(p) for p in parts), summary.mean_sums(x), rtol=1e-13, atol=0
    )
    assert np.allclose(
        sum(summary.chain_sums(p, e) for p in parts),
        summary.chain_sums(x, e),
        rtol=1e-11,
        atol=1e-9,
    )


def test_pieces_equal_the_analysis_functions():
    x = chains(5)
    n = x.shape[1]
    ac = time_from_autocovariance(autocovariance_sums(x) / x.size, x.shape[0])
    assert ac.tau == pytest.approx(integrated_time(x).tau, rel=RTOL)
    assert rhat_from_half_sums(split_half_sums(x, x.mean()), 5, n) == pytest.approx(
        split_rhat(x), rel=RTOL
    )
    assert np.isnan(rhat_from_half_sums(split_half_sums(x[:1], 3.0), 1, n))


def test_row_counts_cover_the_rows_in_rank_order():
    assert row_counts(64, 4) == [16] * 4  # rank*W .. rank*W+W-1
    assert row_counts(5, 2) == [2, 3] and sum(row_counts(7, 3)) == 7
    assert row_counts(1, 3) == [0, 0, 1]


def test_run_summary_equals_the_old_formula_on_its_file(tmp_path):
    cfg = make_config(tmp_path / "run.h5")
    result = run_config(cfg)
    with h5py.File(cfg.output.path) as h5:
        x = h5["production/local_energy"][...]
        assert h5["production"].attrs["writer"] == writer.GATHER
        stored = dict(h5["summary"].attrs)
    old = old_summary(x, result.summary["acceptance"], cfg.to_dict())
    assert_same({k: result.summary[k] for k in old}, old)
    assert stored["energy"] == old["energy"] and stored["error"] == old["error"]
    # the file records the verdict that python -m analysis gives on it
    assert stored["chains_verdict"] == old["chains_verdict"] and stored["chains"] == old["chains"]


def test_summary_of_a_resumed_run_reads_the_file(tmp_path, monkeypatch):
    """A process that fails in the summary leaves a checkpoint at 'finish'; the one that
    resumes makes the summary from the series an earlier process wrote."""
    from parallel_vmc.run import driver
    from parallel_vmc.run.driver import Run
    from parallel_vmc.runfile import checkpoint as ckpt

    cfg = make_config(tmp_path / "run.h5")

    def broken(*args, **kwargs):
        raise MemoryError("simulated")

    monkeypatch.setattr(driver, "production_summary", broken)
    with pytest.raises(MemoryError):
        run_config(cfg)
    monkeypatch.undo()
    attrs, arrays, _ = ckpt.read_latest(ckpt.path_for(cfg.output.path))
    assert attrs["phase"] == "finish"
    result = Run(cfg, SerialComm(), progress=False, resume=(attrs, arrays)).execute()
    with h5py.File(cfg.output.path) as h5:
        x = h5["production/local_energy"][...]
        assert h5.attrs["status"].decode().startswith("completed")
    old = old_summary(x, result.summary["acceptance"], cfg.to_dict())
    assert_same({k: result.summary[k] for k in old}, old)


# --------------------------------------------------------------------- under MPI
def _world():
    from parallel_vmc.parallel import world

    comm = world()
    assert comm.size >= 2, "run these tests with mpiexec -n 2"
    return comm


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("n_chains", [2 * 4, 5])
def test_mpi_summary_equals_the_old_formula(n_chains):
    """Each rank reduces its rows only (uneven when 5 chains meet 2 ranks)."""
    comm = _world()
    x = chains(n_chains)
    counts = row_counts(n_chains, comm.size)
    first = sum(counts[: comm.rank])
    new = summary.summarize(comm, x[first : first + counts[comm.rank]], 0.25)
    if comm.rank == 0:
        assert_same(new, old_summary(x, 0.25))
    else:
        assert new is None


@pytest.mark.mpi(min_size=2)
def test_mpi_run_summary_equals_the_old_formula_on_its_file():
    """A whole run: rank 0 reads the file in column blocks and scatters each rank its
    rows; the reduced summary equals the old formula on the file's series."""
    comm = _world()
    d = comm.bcast(tempfile.mkdtemp(prefix="pvmc-mpi-") if comm.rank == 0 else None)
    cfg = make_config(os.path.join(d, "s.h5"), production={"samples": 8192})
    result = run_config(cfg, comm)
    comm.barrier()
    if comm.rank != 0:
        assert result.summary is None
        return
    with h5py.File(cfg.output.path) as h5:
        x = h5["production/local_energy"][...]
        assert h5["production"].attrs["writer"] == writer.production_writer(comm.size)
    assert x.shape[0] == comm.size * cfg.sampler.walkers_per_rank
    old = old_summary(x, result.summary["acceptance"], cfg.to_dict())
    assert_same({k: result.summary[k] for k in old}, old)


@pytest.mark.mpi(min_size=2)
def test_mpi_production_stopped_and_resumed_gives_the_same_file(monkeypatch):
    """A stop signal in the middle of production (checkpoint: the file flushed by every
    rank that holds it; the MPI-IO handle, if any, closed on the way out), then a
    resume: the same series, bit for bit, and the same summary as without the stop,
    with either writer."""
    import io
    import signal

    from parallel_vmc.run.driver import Run, RunInterrupted
    from parallel_vmc.runfile import checkpoint as ckpt
    from parallel_vmc.sampling import samplers

    comm = _world()
    d = comm.bcast(tempfile.mkdtemp(prefix="pvmc-mpi-") if comm.rank == 0 else None)
    sections = {"production": {"samples": 80000}}  # 3 units of work per chain
    ref = run_config(make_config(os.path.join(d, "ref.h5"), **sections), comm)
    cfg = make_config(os.path.join(d, "stop.h5"), **sections)
    original, calls = samplers.Sampler.produce, []

    def produce(self, *args):
        calls.append(1)
        if len(calls) == 2 and comm.rank == 0:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(samplers.Sampler, "produce", produce)
    with pytest.raises(RunInterrupted):
        Run(cfg, comm, stream=io.StringIO(), progress=False).execute()
    monkeypatch.undo()
    comm.barrier()
    attrs, arrays, _ = ckpt.read_latest(ckpt.path_for(cfg.output.path))
    assert attrs["phase"] == "produce"
    result = Run(cfg, comm, progress=False, resume=(attrs, arrays)).execute()
    comm.barrier()
    if comm.rank != 0:
        return
    with h5py.File(os.path.join(d, "ref.h5")) as a, h5py.File(cfg.output.path) as b:
        assert b.attrs["status"].decode() == "completed"
        assert b["production"].attrs["writer"] == writer.production_writer(comm.size)
        assert np.array_equal(a["production/local_energy"][...], b["production/local_energy"][...])
    assert result.summary["energy"] == ref.summary["energy"]
    assert result.summary["error"] == ref.summary["error"]


# --------------------------------------------------------------------- the writer
def test_writer_choice(monkeypatch):
    monkeypatch.setattr(writer, "h5py_has_mpi", lambda: False)
    assert writer.production_writer(1) == writer.production_writer(64) == writer.GATHER
    monkeypatch.setattr(writer, "h5py_has_mpi", lambda: True)
    assert writer.production_writer(1) == writer.GATHER
    assert writer.production_writer(2) == writer.MPIO
    assert writer.chunk_rows(writer.MPIO, 64, 16) == 16
    assert writer.chunk_rows(writer.GATHER, 64, 16) == 64


def test_pypi_h5py_writes_with_the_gather():
    if h5py.get_config().mpi:
        pytest.skip("this h5py is built with MPI")
    assert writer.production_writer(1000) == writer.GATHER


def test_writers_used_lists_each_writer_that_left_samples():
    assert writer.writers_used(None, "mpio", 0) == "mpio"
    assert writer.writers_used("gather", "mpio", 0) == "mpio"
    assert writer.writers_used("gather", "mpio", 64) == "gather,mpio"
    assert writer.writers_used("gather,mpio", "mpio", 64) == "gather,mpio"
    assert writer.writers_used(None, "mpio", 64) == "gather,mpio"  # an older file
    assert writer.recorded_writers(None) == "gather"  # format 5 and older
    assert writer.recorded_writers("gather,mpio") == "gather,mpio"


def _stopped_run(cfg, monkeypatch, stop: str) -> None:
    """Run cfg in-process and stop it: 'produce', by SIGINT in its second unit of
    production; 'finish', by a failure in the summary after production."""
    import io
    import signal

    from parallel_vmc.run import driver
    from parallel_vmc.run.driver import Run, RunInterrupted
    from parallel_vmc.sampling import samplers

    if stop == "produce":
        original, calls = samplers.Sampler.produce, []

        def produce(self, *args):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)
            return original(self, *args)

        monkeypatch.setattr(samplers.Sampler, "produce", produce)
        with pytest.raises(RunInterrupted):
            Run(cfg, SerialComm(), stream=io.StringIO(), progress=False).execute()
    else:

        def broken(*args, **kwargs):
            raise MemoryError("simulated")

        monkeypatch.setattr(driver, "production_summary", broken)
        with pytest.raises(MemoryError):
            run_config(cfg)
    monkeypatch.undo()


@pytest.mark.parametrize("stop", ["produce", "finish"])
def test_a_format5_file_without_the_writer_reads_and_resumes(tmp_path, monkeypatch, stop):
    """Format 5, the one before /production/writer was always there: a file of it
    stopped in production or before its summary reads as it is (analysis, pvmc info),
    and pvmc resume completes it as the current format, the writer recorded as the
    gather, with the series and summary of a run that never stopped."""
    from analysis.runfile import read_run
    from parallel_vmc.cli.main import main
    from parallel_vmc.runfile import schema as S

    sections = {"production": {"samples": 40000}}  # 3 units of work per chain
    ref = run_config(make_config(tmp_path / "ref.h5", **sections))
    cfg = make_config(tmp_path / "old.h5", **sections)
    _stopped_run(cfg, monkeypatch, stop)
    path = cfg.output.path
    with h5py.File(path, "r+") as h5:  # as format 5 wrote it
        h5.attrs.modify(S.FORMAT, 5)
        del h5[S.PRODUCTION].attrs[S.WRITER]
    run = read_run(path)
    assert run.attrs[S.FORMAT] == 5 and S.WRITER not in run.production_attrs
    assert main(["info", path]) == 0
    assert main(["resume", path, "--quiet"]) == 0
    with h5py.File(path) as h5, h5py.File(ref.path) as r:
        assert h5.attrs[S.FORMAT] == S.FORMAT_VERSION == 6
        assert h5.attrs[S.STATUS].decode() == S.COMPLETED
        assert h5[S.PRODUCTION].attrs[S.WRITER] == writer.GATHER
        assert np.array_equal(h5["production/local_energy"][...], r["production/local_energy"][...])
        assert h5["summary"].attrs["energy"] == ref.summary["energy"]


@pytest.mark.mpi(min_size=2)
def test_mpio_writer_run_reads_back_with_checksums():
    """Only where h5py is built with MPI: a 2-rank run writes production through
    MPI-IO in chunks of one rank's walkers; the file reads back (checksums) and says
    which writer wrote it."""
    if not h5py.get_config().mpi:
        pytest.skip("h5py is not built with MPI (PyPI's wheels): the gather writes")
    comm = _world()
    d = comm.bcast(tempfile.mkdtemp(prefix="pvmc-mpio-") if comm.rank == 0 else None)
    cfg = make_config(
        os.path.join(d, "m.h5"), production={"samples": 8192, "store_components": True}
    )
    result = run_config(cfg, comm)
    comm.barrier()
    if comm.rank == 0:
        with h5py.File(cfg.output.path) as h5:
            ds = h5["production/local_energy"]
            assert h5["production"].attrs["writer"] == writer.MPIO
            assert ds.chunks[0] == cfg.sampler.walkers_per_rank and ds.fletcher32
            x = ds[...]
            assert h5["production/samples_written"][0] == x.shape[1]
        assert result.summary["energy"] == pytest.approx(x.mean(), rel=1e-13)


@pytest.mark.mpi(min_size=2)
def test_parallel_series_writes_each_ranks_rows_collectively(tmp_path_factory):
    """Only where h5py is built with MPI: ParallelSeries alone, units written by every
    rank into its rows of Fletcher32 chunks of (W, unit) read back exact, the counter
    follows, and the file is in use (locked) while the MPI-IO handle is open."""
    if not h5py.get_config().mpi:
        pytest.skip("h5py is not built with MPI (PyPI's wheels): the gather writes")
    from parallel_vmc.runfile import schema as S
    from parallel_vmc.runfile.hdf5io import in_use, preallocated
    from parallel_vmc.runfile.output import _allocated

    comm = _world()
    W, n, unit = 4, 200, 64
    path = comm.bcast(str(tmp_path_factory.mktemp("ps") / "p.h5") if comm.rank == 0 else None)
    if comm.rank == 0:
        with h5py.File(path, "w") as h5:
            prod = h5.create_group(S.PRODUCTION)
            _allocated(prod, S.SAMPLES_WRITTEN, (1,), "i8", fill=0)
            preallocated(prod, S.LOCAL_ENERGY, (comm.size * W, n), "f8", chunks=(W, unit))
    comm.barrier()
    ps = writer.ParallelSeries(
        path, comm, (S.LOCAL_ENERGY,), slice(comm.rank * W, (comm.rank + 1) * W)
    )
    if comm.rank == 0:
        assert in_use(path)
    expected = np.arange(comm.size * W * n, dtype=float).reshape(comm.size * W, n)
    for start in range(0, n, unit):
        mine = expected[comm.rank * W : (comm.rank + 1) * W, start : start + unit]
        ps.write(start, {S.LOCAL_ENERGY: mine})
        ps.flush()
    ps.close()
    comm.barrier()
    if comm.rank == 0:
        with h5py.File(path, "r") as h5:
            assert np.array_equal(h5["production/local_energy"][...], expected)
            assert h5["production/samples_written"][0] == n


def test_a_checkpoint_with_histograms_of_another_geometry_restarts_production(
    tmp_path, monkeypatch
):
    """A production checkpoint whose observable sums have another width (an earlier
    pvmc's histogram geometry, e.g. pair_bins before null matched a hard core): resume
    starts production again and says so; the kernels never see the old rows."""
    import io

    from parallel_vmc.run.driver import Run
    from parallel_vmc.runfile import checkpoint as ckpt

    cfg = make_config(tmp_path / "g.h5", production={"samples": 40000})
    _stopped_run(cfg, monkeypatch, "produce")
    live = ckpt.path_for(cfg.output.path)
    attrs, arrays, _ = ckpt.read_latest(live)
    assert attrs["phase"] == "produce" and attrs["prod_done"] > 0
    arrays["obs_totals"] = arrays["obs_totals"][:, :-7]  # fewer pair bins
    ckpt.write(live, attrs, arrays)
    out = io.StringIO()
    attrs, arrays, _ = ckpt.read_latest(live)
    result = Run(cfg, SerialComm(), stream=out, progress=False, resume=(attrs, arrays)).execute()
    assert "another geometry (an earlier pvmc), so production starts again" in out.getvalue()
    with h5py.File(cfg.output.path) as h5:
        pair = h5["production/observables/pair_distance"]
        assert pair["counts"].shape == (100,)
        assert pair["counts"][...].sum() + pair.attrs["overflow"] == 40000
    assert result.summary["n_samples"] == 40000
