"""vector_width.prefer_wide_vectors: the LLVM attribute goes on the function that asks
for it and nowhere else, and a wide hidden layer's move ratio has the same bits with
512-bit vectors as without (vectorising reorders no sum)."""

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from parallel_vmc.jit.vector_width import WIDTH_ATTRIBUTE, prefer_wide_vectors
from parallel_vmc.wavefunction import rbm

P, D, H = 20, 2, 40  # a fermion scan's widest case: H >= rbm.WIDEST_LAYER


@njit(error_model="numpy", fastmath={"contract"})  # as the kernel
def ratios(theta, prm, x, steps, out):
    """(log_q, factor) of rbm.move_ratio for each step (n, D) of particle k % P from x,
    the proposal committed every third move; compiled for 512-bit vectors when
    prm.widest is True."""
    prefer_wide_vectors(prm.widest)
    cache = rbm.new_cache(prm, D)
    rbm.refresh(theta, prm, cache, x)
    for k in range(steps.shape[0]):
        dx = steps[k]
        out[k, 0], out[k, 1] = rbm.move_ratio(theta, prm, cache, x, k % P, dx, D)
        if k % 3 == 0:
            rbm.commit(theta, prm, cache, x, k % P, dx, D, False)
            for d in range(D):
                x[(k % P) * D + d] += dx[d]


def wide_rbm(widest):
    prm = rbm.params(0, P * D, H, 0.7, 0.7, "sqrt", D)
    assert prm.widest is True  # the default for H = 40
    return prm._replace(widest=widest)


def test_attribute_only_when_asked():
    rng = np.random.default_rng(3)
    theta = rng.normal(0.0, 0.05, P * D + H + P * D * H)
    x, steps = rng.normal(size=P * D), rng.normal(0.0, 0.5, (10, D))
    for widest, expected in ((True, True), (None, False)):
        prm = wide_rbm(widest)
        ratios(theta, prm, x.copy(), steps, np.empty((10, 2)))
        ir = ratios.inspect_llvm(ratios.signatures[-1])
        assert (WIDTH_ATTRIBUTE in ir) is expected


def test_same_bits_with_wide_vectors():
    rng = np.random.default_rng(11)
    theta = rng.normal(0.0, 0.05, P * D + H + P * D * H)
    x, steps = rng.normal(size=P * D), rng.normal(0.0, 0.5, (3000, D))
    out = {}
    for widest in (True, None):
        out[widest] = np.empty((steps.shape[0], 2))
        ratios(theta, wide_rbm(widest), x.copy(), steps, out[widest])
    assert np.all(np.isfinite(out[True]))
    assert np.array_equal(out[True], out[None])  # bit for bit
    # and they are the ratios of psi itself (the part's full ln psi at both points)
    prm = wide_rbm(None)
    k = 0
    xn = x.copy()
    xn[k * D : (k + 1) * D] += steps[0]
    log_ratio = 2.0 * (rbm.log_psi(theta, prm, xn, D) - rbm.log_psi(theta, prm, x, D))
    assert np.log(out[True][0, 1]) + out[True][0, 0] == pytest.approx(log_ratio, abs=1e-10)


def test_rejects_other_flags():
    @njit
    def ask(flag):
        prefer_wide_vectors(flag)
        return 0

    with pytest.raises(TypingError):
        ask(1.5)
