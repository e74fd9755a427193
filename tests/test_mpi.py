"""Under `mpiexec -n 2 python -m pytest --with-mpi`: parameters bit-identical on all
ranks, the allreduced energy equals the mean of the gathered samples, one Allreduce per
optimization iteration, and bit-for-bit reproducibility for a fixed seed and rank count."""

import os
import tempfile

import h5py
import numpy as np
import pytest
from conftest import make_config, run_config


def _comm():
    from parallel_vmc.parallel import world

    comm = world()
    assert comm.size >= 2, "run these tests with mpiexec -n 2"
    return comm


def _shared_dir(comm):
    path = tempfile.mkdtemp(prefix="pvmc-mpi-") if comm.rank == 0 else None
    return comm.bcast(path)


def _run(comm, path, **sections):
    cfg = make_config(path, **sections)
    result = run_config(cfg, comm)
    comm.barrier()
    return cfg, result


@pytest.mark.mpi(min_size=2)
def test_parameters_identical_on_all_ranks():
    comm = _comm()
    d = _shared_dir(comm)
    _, result = _run(comm, os.path.join(d, "p.h5"), optimizer={"iterations": 25})
    everyone = comm.comm.allgather(result.theta.tobytes())
    assert all(b == everyone[0] for b in everyone)


@pytest.mark.mpi(min_size=2)
def test_allreduced_energy_equals_mean_of_gathered_samples():
    comm = _comm()
    d = _shared_dir(comm)
    cfg, _ = _run(comm, os.path.join(d, "e.h5"))
    if comm.rank == 0:
        with h5py.File(cfg.output.path) as h5:
            e = h5["production/local_energy"][:]
            assert e.shape[0] == comm.size * cfg.sampler.walkers_per_rank
            assert h5.attrs["mpi_size"] == comm.size
            allreduced = h5["production"].attrs["energy_allreduced"]
            assert allreduced == pytest.approx(e.mean(), rel=1e-13, abs=0)
            assert h5["summary"].attrs["energy"] == pytest.approx(e.mean(), rel=1e-13, abs=0)


@pytest.mark.mpi(min_size=2)
def test_observables_count_every_sample_of_every_rank():
    """The observable accumulators are reduced over the ranks: the means are those of
    the gathered series of all chains, and every particle of every sample is counted."""
    comm = _comm()
    d = _shared_dir(comm)
    cfg, _ = _run(
        comm, os.path.join(d, "o.h5"), production={"samples": 2**14, "store_components": True}
    )
    if comm.rank == 0:
        with h5py.File(cfg.output.path) as h5:
            prod = h5["production"]
            obs = prod["observables"]
            n = prod["local_energy"].size
            assert obs.attrs["samples"] == n
            for name in ("local_energy", "kinetic", "trap", "interaction"):
                series = prod[name][:]
                assert series.shape[0] == comm.size * cfg.sampler.walkers_per_rank
                assert obs[name].attrs["mean"] == pytest.approx(series.mean(), rel=1e-12)
            dens = obs["density"]
            assert dens["counts"][:].sum() + dens.attrs["overflow"] == 2 * n


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("method,particles", [("adam", 2), ("sr", 2), ("adam", 6), ("sr", 6)])
def test_one_allreduce_per_iteration(method, particles):
    """SR's S matrix rides in the same buffer as the energy and the gradient; six
    fermions (Slater determinants) change nothing in that."""
    comm = _comm()
    d = _shared_dir(comm)
    from parallel_vmc.run.driver import Run

    cfg = make_config(
        os.path.join(d, f"c{method}{particles}.h5"),
        system={"particles": particles},
        optimizer={"iterations": 7, "method": method},
        sampler={"thermalization": 0},
    )
    run = Run(cfg, comm, progress=False)
    before = comm.allreduce_calls
    run.optimize()  # no file: the stop/checkpoint flags ride in the same buffer
    assert run.state.iteration == 7
    # One per iteration, plus one at the end of the phase that checks that the last
    # update left finite parameters on every rank.
    assert comm.allreduce_calls - before == 7 + 1


@pytest.mark.mpi(min_size=2)
def test_fixed_seed_is_reproducible_bit_for_bit():
    comm = _comm()
    d = _shared_dir(comm)
    cfg_a, res_a = _run(comm, os.path.join(d, "a.h5"))
    cfg_b, res_b = _run(comm, os.path.join(d, "b.h5"))
    assert res_a.theta.tobytes() == res_b.theta.tobytes()
    if comm.rank == 0:
        with h5py.File(cfg_a.output.path) as fa, h5py.File(cfg_b.output.path) as fb:
            for name in ("optimization/energy", "optimization/params", "production/local_energy"):
                np.testing.assert_array_equal(fa[name][:], fb[name][:])
            assert fa["summary"].attrs["energy"] == fb["summary"].attrs["energy"]


@pytest.mark.mpi(min_size=2)
def test_exception_on_one_rank_stops_every_rank_and_is_recorded(monkeypatch):
    """The failing rank only raises a flag; the next reduction tells every rank, so all
    stop together (no MPI_Abort) and rank 0 records which rank failed."""
    comm = _comm()
    d = _shared_dir(comm)
    cfg = make_config(os.path.join(d, "x.h5"), optimizer={"iterations": 10})
    from parallel_vmc.run.driver import Run, RunFailed
    from parallel_vmc.sampling import samplers

    if comm.rank == 1:
        original = samplers.Sampler.accumulate
        calls = []

        def broken(self, *args):
            calls.append(1)
            if len(calls) == 4:
                raise FloatingPointError("injected")
            return original(self, *args)

        monkeypatch.setattr(samplers.Sampler, "accumulate", broken)
    with pytest.raises(RunFailed, match="an exception on rank 1 in optimize 3/10"):
        Run(cfg, comm, progress=False).execute()
    comm.barrier()
    if comm.rank == 0:
        with h5py.File(cfg.output.path) as h5:
            assert h5.attrs["status"].decode().startswith("failed: an exception on rank 1")
            assert h5["optimization/rows_written"][0] == 3


@pytest.mark.mpi(min_size=2)
def test_parameter_mismatch_between_ranks_is_named(monkeypatch):
    comm = _comm()
    d = _shared_dir(comm)
    cfg = make_config(os.path.join(d, "m.h5"), optimizer={"iterations": 25})
    from parallel_vmc import optimizers
    from parallel_vmc.run.driver import Run, RunFailed

    if comm.rank == 1:
        original = optimizers.update

        def drifting(*args, **kwargs):
            theta, state = original(*args, **kwargs)
            return theta + 1e-15 * (1 + np.abs(theta)), state

        monkeypatch.setattr(optimizers, "update", drifting)
    with pytest.raises(
        RunFailed,
        match=r"parameters on rank\(s\) 1 differ from rank 0 "
        "after iteration 9",
    ):
        Run(cfg, comm, progress=False).execute()


@pytest.mark.mpi(min_size=2)
def test_non_finite_update_on_one_rank_rewinds_every_rank(monkeypatch):
    """The finiteness of the parameters is reduced with the next iteration's sums, so a
    bad update on one rank makes all ranks rewind together instead of one rank alone
    (which would leave the others waiting in the Allreduce)."""
    comm = _comm()
    d = _shared_dir(comm)
    cfg = make_config(os.path.join(d, "n.h5"), optimizer={"iterations": 12})
    from parallel_vmc import optimizers
    from parallel_vmc.run.driver import Run

    if comm.rank == 1:
        original = optimizers.update
        calls = []

        def spoiled(*args, **kwargs):
            theta, state = original(*args, **kwargs)
            calls.append(1)
            return (theta * np.inf if len(calls) == 5 else theta), state

        monkeypatch.setattr(optimizers, "update", spoiled)
    run = Run(cfg, comm, progress=False)
    result = run.execute()
    assert run.state.rewinds == 1
    everyone = comm.comm.allgather(result.theta.tobytes())
    assert all(b == everyone[0] for b in everyone)


@pytest.mark.mpi(min_size=2)
def test_allreduce_max_gives_every_rank_the_largest():
    """The one reduction of the run's end: the largest inverse drift of all ranks."""
    comm = _comm()
    assert comm.allreduce_max(1e-15 * (comm.rank + 1)) == 1e-15 * comm.size
    assert comm.allreduce_max(-float(comm.rank)) == 0.0
