"""Borrowed array views (parallel_vmc/borrow.py): same data, no reference, no leak."""

import numpy as np
import pytest
from numba import njit
from numba.core.runtime import _nrt_python, rtsys

from parallel_vmc.jit.borrow import borrowed, release


@njit(cache=True)
def _fill_through_view(a):
    v = borrowed(a)
    for i in range(v.shape[0]):
        v[i] = 2.0 * i
    return v.shape[0], v.strides[0]


@njit(cache=True)
def _sum_of_own_scratch(n, rounds):
    owners = (np.empty(n), np.empty(n))
    a, b = borrowed(owners[0]), borrowed(owners[1])
    total = 0.0
    for r in range(rounds):
        for i in range(n):
            a[i] = r + i
            b[i] = 0.5 * a[i]
        np.empty(n)[:] = -1.0  # allocations meanwhile must not reuse a or b
        for i in range(n):
            total += a[i] + b[i]
    release(owners)
    return total


@pytest.fixture
def nrt_stats():
    """numba's allocation counters, on for the test."""
    was = _nrt_python.memsys_stats_enabled()
    _nrt_python.memsys_enable_stats()
    yield rtsys.get_allocation_stats
    if not was:
        _nrt_python.memsys_disable_stats()


def test_view_shares_data_shape_and_strides():
    a = np.zeros(7)
    assert _fill_through_view(a) == (7, 8)
    assert a.tolist() == [2.0 * i for i in range(7)]
    col = np.zeros((5, 3))[:, 1]
    _fill_through_view(col)
    assert _fill_through_view(col)[1] == 24


def test_owners_live_until_release_and_are_freed_then(nrt_stats):
    n, rounds = 64, 50
    expected = sum(1.5 * (r + i) for r in range(rounds) for i in range(n))
    _sum_of_own_scratch(n, rounds)  # compiled before counting
    before = nrt_stats()
    assert _sum_of_own_scratch(n, rounds) == expected
    after = nrt_stats()
    assert after.alloc - before.alloc == after.free - before.free == 2 + rounds
    assert after.mi_alloc - before.mi_alloc == after.mi_free - before.mi_free


def test_a_kernel_call_frees_all_it_allocates(nrt_stats):
    """run_walkers borrows its caches and work arrays: each is freed once at the end."""
    from parallel_vmc.bench import kernel as B
    from parallel_vmc.bench import problem as P
    from parallel_vmc.cli.main import build_parser
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.sampling import kernels as K

    args = build_parser().parse_args(
        ["bench", "--scan-particles", "6", "-H", "4", "--walkers", "2"]
    )  # the kernel of test_cli's scan and of test_slater, compiled once for all
    cfg = B._config(args, 6)
    theta, sampler, walkers = P.setup(args, SerialComm(), cfg, P.fermion_setup(cfg, True, True))
    sampler.produce(theta, walkers, 2, components=False)
    before = nrt_stats()
    P.time_kernel(sampler, theta, walkers, 50, K.PRODUCE)
    after = nrt_stats()
    assert after.alloc - before.alloc == after.free - before.free > 0
