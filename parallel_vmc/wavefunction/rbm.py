"""The Gaussian-binary RBM part of psi: its formulas, parameter block and cache.

The marginal of the RBM over its ``N`` binary hidden units is
``F(x) = exp(-|x-a|^2 / (2 sigma^2)) prod_j (1 + exp(u_j))``,
``u_j = b_j + sum_i x_i W_ij / sigma^2``, and the part is ``F^c``: ``c = 1/2`` for
``psi: sqrt`` (then ``|psi|^2 = F`` is the RBM marginal) and ``c = 1`` for ``psi: full``.
With ``s_j = sigmoid(u_j)`` (docs/design.md):

* ``ln psi        = c [ -|x-a|^2/(2 sigma^2) + sum_j softplus(u_j) ]``
* ``d_i ln psi    = c [ -(x_i-a_i) + sum_j W_ij s_j ] / sigma^2``
* ``d_i^2 ln psi  = c [ -1/sigma^2 + sum_j W_ij^2 s_j (1-s_j) / sigma^4 ]``
* ``d ln psi / d a_i = c (x_i-a_i)/sigma^2``, ``d/d b_j = c s_j``,
  ``d/d W_ij = c x_i s_j / sigma^2``.

Parameter block ``[a (M), b (N), W (M*N)]`` of theta (``W`` row-major: ``W[i, j]``
couples visible ``i`` to hidden ``j``); the widths are fixed. Each coordinate has its
own width ``sigma_i`` in every formula above (``sigma^2 -> sigma_i^2``, also inside
``u_j = b_j + sum_i x_i W_ij / sigma_i^2``): ``sigma`` along x and y, ``sigma_z`` along z
(3D; equal to ``sigma`` in a round trap), so that the Gaussian of an elliptical trap is
exact at a = b = W = 0.

Variational widths (``wavefunction.variational_widths: true``, the registry's part
``widths``): the block ``[delta_xy, delta_z]`` of theta multiplies the part by
``exp(-1/2 sum_i delta_i x_i^2)`` (``delta_i`` = delta_z for z coordinates in 3D,
delta_xy otherwise; delta_z is idle for D < 3), so |psi|^2's Gaussian has the inverse
variance ``2 c / sigma_i^2 + 2 delta_i`` per coordinate; both start at 0. It adds

* ``-delta_i x_i`` to ``d_i ln psi``, ``-delta_i`` to ``d_i^2 ln psi``;
* ``d ln psi / d delta_k = -1/2 sum_{i on axes k} x_i^2``.

It lives here (not in a part of its own) because it is the RBM's Gaussian; without it
(``width_offset`` -1) every branch below is skipped and the arithmetic is unchanged. Cache
per walker (``new_cache``, (8, N)): rows ``u``, ``exp(u)``, ``s`` and ``1/(1+exp(u))`` of
the current position, and the same four of the last proposed move. Moving one particle
changes ``u`` by O(D*N), and the hidden factor of the ratio, ``prod_j (1 + exp(u'_j)) / (1 +
exp(u_j))``, costs one exponential per unit and no division (the reciprocals are kept).

The operations follow the part contract of ``compose.py``; as the first part, the RBM
sets the gradient and Laplacian outputs that the other parts add to.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..jit.fastexp import exp as fast_exp
from ..jit.inline import inlined
from ..rng import normal, uniform
from .layout import psi_exponent


class RBMParams(NamedTuple):
    """Where the RBM block sits in theta, and the fixed numbers (scalars only: see
    ``compose.py`` on why parts take no arrays in their tuples)."""

    offset: int  # a = theta[offset : offset + M], then b (N), then W (M*N)
    n_visible: int  # M
    n_hidden: int  # N
    inv_s2: float  # 1 / sigma^2 (x, y)
    c: float  # psi = F^c
    dimensions: int  # D (coordinate i lies along axis i % D)
    inv_s2_z: float  # 1 / sigma_z^2 (the third axis; = inv_s2 for D < 3)
    z_ratio: float  # inv_s2_z / inv_s2 (exactly 1.0 in a round trap)
    width_offset: int  # [delta_xy, delta_z] = theta[width_offset:+2]; -1: fixed widths
    wide: object = None  # True for a wide layer (n_hidden >= WIDE_LAYER), else None: a
    # type, so numba compiles one move ratio or the other (the wide
    # one's code alone slowed a narrow kernel by 15-25 %)
    widest: object = None  # True from WIDEST_LAYER hidden units, else None: the kernel
    # is then compiled for 512-bit vectors (vector_width.py)


U, EU, S, UN, EUN, SN, R, RN = range(8)  # rows of the cache (see new_cache)
WIDE_LAYER = 8  # hidden units from which the vectorised ratio is faster (pvmc bench)
WIDEST_LAYER = 32  # from here 512-bit vectors pay (fermions, P = 20, H = 40: 6-8 % less
# time per move; H = 12, 20: 4-13 % more, a 4-unit remainder then
# runs scalar)
SATURATED = 1e300  # exp(u) above this counts as infinite: the sigmoid is then 1


def kernel_params(wf, offset: int) -> RBMParams:
    """The RBM's tuple for a ``WaveFunction`` whose RBM block starts at offset (with its
    variational widths, if present)."""
    lay = wf.layout
    widths = lay.part_offset("widths") if "widths" in lay.parts else -1
    return params(
        offset, lay.n_visible, lay.n_hidden, wf.sigma, wf.width_z, wf.psi, wf.dimensions, widths
    )


def params(
    offset: int,
    n_visible: int,
    n_hidden: int,
    sigma: float,
    sigma_z: float,
    psi: str,
    D: int,
    width_offset: int = -1,
) -> RBMParams:
    """The RBM's parameter tuple for widths sigma (x, y) and sigma_z (z, 3D only);
    width_offset: where the variational width shifts sit in theta (-1: none)."""
    inv_s2 = 1.0 / (sigma * sigma)
    inv_s2_z = 1.0 / (sigma_z * sigma_z) if D == 3 else inv_s2
    return RBMParams(
        offset,
        n_visible,
        n_hidden,
        inv_s2,
        psi_exponent(psi),
        D,
        inv_s2_z,
        inv_s2_z / inv_s2,
        width_offset,
        True if n_hidden >= WIDE_LAYER else None,
        True if n_hidden >= WIDEST_LAYER else None,
    )


# --------------------------------------------------------------------------- scalar math


@njit(cache=True, inline="always")
def sigmoid_from_exp(e):
    """sigmoid(u) from e = exp(u), exact also when e overflowed to inf."""
    if e < SATURATED:
        return e / (1.0 + e)
    return 1.0


@njit(cache=True, inline="always")
def inverse_and_sigmoid(cache, row_e, row_r, row_s, j):
    """From e = cache[row_e, j] = exp(u_j): 1 / (1 + e) into cache[row_r, j] and the
    sigmoid e / (1 + e) into cache[row_s, j], with one division and no branch (e
    clamped to SATURATED, where both are exact: 1e-300 and 1.0). The reciprocal turns
    the next move's hidden ratio (1 + e') / (1 + e) into a product."""
    e = min(cache[row_e, j], SATURATED)
    inv = 1.0 / (1.0 + e)
    cache[row_r, j] = inv
    cache[row_s, j] = e * inv


@njit(cache=True)
def softplus(u):
    """ln(1 + exp(u)) without overflow."""
    if u > 0.0:
        return u + np.log1p(np.exp(-u))
    return np.log1p(np.exp(u))


@njit(cache=True, inline="always")
def axis_inv_s2(prm, d):
    """1 / sigma^2 along axis d (0 .. D-1): sigma_z's for d = 2, sigma's otherwise."""
    return prm.inv_s2_z if d == 2 else prm.inv_s2


@njit(cache=True, inline="always")
def coordinate_inv_s2(prm, i):
    """1 / sigma_i^2 of coordinate i of the flat position vector."""
    return axis_inv_s2(prm, i % prm.dimensions)


@njit(cache=True, inline="always")
def width_shift(theta, prm, d):
    """delta along axis d: delta_z for d = 2, delta_xy otherwise (needs width_offset >= 0)."""
    return theta[np.uint64(prm.width_offset + (1 if d == 2 else 0))]


# The parameters are read from theta with unsigned indices: numba then skips its
# negative-index fix-up, which cost 5 ns of the 37 ns of a move ratio (P = 2, N = 4).
@njit(cache=True, inline="always")
def visible_bias(theta, prm, i):
    """a_i from theta."""
    return theta[np.uint64(prm.offset + i)]


@njit(cache=True, inline="always")
def hidden_bias(theta, prm, j):
    """b_j from theta."""
    return theta[np.uint64(prm.offset + prm.n_visible + j)]


@njit(cache=True, inline="always")
def weight_index(offset, n_visible, n_hidden, i, j):
    """Where W_ij lies in a flat vector whose RBM block ``[a (M), b (N), W (M*N)]``
    starts at offset, W row-major: the one home of this formula (the wave function's
    theta and d ln psi / d theta, the generative RBM's theta and its gradient sums).
    j = 0 gives the start of row i. Unsigned, as every read of theta here."""
    return np.uint64(offset + n_visible + n_hidden + i * n_hidden + j)


@njit(cache=True, inline="always")
def weight(theta, prm, i, j):
    """W_ij from theta."""
    return theta[weight_index(prm.offset, prm.n_visible, prm.n_hidden, i, j)]


@njit(cache=True, inline="always")
def coordinate_slopes(theta, prm, cache, row, i, xi):
    """(g, l) of coordinate i at value xi with the hidden sigmoids in cache[row] (N,):
    ``g = -(x_i - a_i) + sum_j W_ij s_j`` and ``l = sum_j W_ij^2 s_j (1 - s_j)``, so that
    ``d_i ln psi = c g / sigma^2`` and ``d_i^2 ln psi = c (-1/sigma^2 + l / sigma^4)``.
    The one home of the RBM's coordinate derivatives (l is dropped by the compiler
    where unused). A wide layer sums in four interleaved partial sums (``lane_sums``)."""
    if prm.wide is not None:
        g, l = lane_sums(theta, prm, cache, row, i)
        return -(xi - visible_bias(theta, prm, i)) + g, l
    return running_sums(theta, prm, cache, row, i, -(xi - visible_bias(theta, prm, i)))


@njit(cache=True, inline="always")
def running_sums(theta, prm, cache, row, i, g):
    """(g + sum_j W_ij s_j, sum_j W_ij^2 s_j (1 - s_j)) with s in cache[row] (N,),
    summed in the order of j."""
    l = 0.0
    for j in range(np.uint64(prm.n_hidden)):
        w = weight(theta, prm, i, j)
        sj = cache[row, j]
        ws = w * sj
        g += ws
        l += ws * w * (1.0 - sj)
    return g, l


@njit(cache=True, inline="always")
def lane_sums(theta, prm, cache, row, i):
    """(sum_j W_ij s_j, sum_j W_ij^2 s_j (1 - s_j)) with s in cache[row] (N,), summed
    in four partial sums over j mod 4 that LLVM keeps in one vector register: a
    running sum is a chain of dependent additions, which the compiler may not reorder
    (this changes the rounding by a few ulp)."""
    N = np.uint64(prm.n_hidden)
    base = weight_index(prm.offset, prm.n_visible, prm.n_hidden, i, 0)
    g0, g1, g2, g3 = 0.0, 0.0, 0.0, 0.0
    l0, l1, l2, l3 = 0.0, 0.0, 0.0, 0.0
    j = np.uint64(0)
    while j + np.uint64(4) <= N:
        w0, w1 = theta[base + j], theta[base + j + np.uint64(1)]
        w2, w3 = theta[base + j + np.uint64(2)], theta[base + j + np.uint64(3)]
        s0, s1 = cache[row, j], cache[row, j + np.uint64(1)]
        s2, s3 = cache[row, j + np.uint64(2)], cache[row, j + np.uint64(3)]
        g0 += w0 * s0
        g1 += w1 * s1
        g2 += w2 * s2
        g3 += w3 * s3
        l0 += w0 * s0 * w0 * (1.0 - s0)
        l1 += w1 * s1 * w1 * (1.0 - s1)
        l2 += w2 * s2 * w2 * (1.0 - s2)
        l3 += w3 * s3 * w3 * (1.0 - s3)
        j += np.uint64(4)
    while j < N:
        w0, s0 = theta[base + j], cache[row, j]
        g0 += w0 * s0
        l0 += w0 * s0 * w0 * (1.0 - s0)
        j += np.uint64(1)
    return (g0 + g1) + (g2 + g3), (l0 + l1) + (l2 + l3)


# forceinline: one copy of code that reorders its sums (see jit/inline.py)
@njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy", forceinline=True)
def wide_slopes(theta, prm, cache, x, g_out, l_out):
    """The (g, l) of ``coordinate_slopes`` of every coordinate at the current position
    into g_out and l_out (M,), for a wide layer: a function of its own, whose sums
    LLVM may reorder, and so vectorise (one running sum is a chain of dependent
    additions); once per local energy."""
    for i in range(prm.n_visible):
        g_out[i], l_out[i] = running_sums(theta, prm, cache, S, i, 0.0)
        g_out[i] += -(x[i] - visible_bias(theta, prm, i))


@njit(cache=True, inline="always")
def hidden_preactivations(theta, prm, x, out, row):
    """u_j = b_j + sum_i x_i W_ij / sigma_i^2 into out[row] (N,), for x (M,)."""
    M, N = prm.n_visible, prm.n_hidden
    for j in range(N):
        out[row, j] = hidden_bias(theta, prm, j)
    for i in range(M):
        xi = x[i] * coordinate_inv_s2(prm, i)
        for j in range(N):
            out[row, j] += xi * weight(theta, prm, i, j)


@njit(cache=True, inline="always")
def visible_mean_given_hidden(theta, prm, h, out):
    """out_i = a_i + sum_j W_ij h_j: the mean of x_i | h, which is Normal(mean, sigma_i^2)
    under the joint weight exp(-E(x, h)) (complete the square of E in x). With
    P(h_j = 1 | x) = sigmoid(u_j) this is the Gibbs sampler of F = |psi|^2 for
    psi = sqrt(F). h: (N,) of 0.0 / 1.0; out: (M,)."""
    for i in range(prm.n_visible):
        m = visible_bias(theta, prm, i)
        for j in range(prm.n_hidden):
            m += weight(theta, prm, i, j) * h[j]
        out[i] = m


# --------------------------------------------------------------------------- the contract


@njit(cache=True)
def log_psi(theta, prm, x, D):
    """ln of this part at one configuration x (M,)."""
    u = np.empty((1, prm.n_hidden))
    hidden_preactivations(theta, prm, x, u, 0)
    g = 0.0
    for i in range(prm.n_visible):
        t = x[i] - visible_bias(theta, prm, i)
        g += t * t * coordinate_inv_s2(prm, i)
    s = 0.0
    for j in range(prm.n_hidden):
        s += softplus(u[0, j])
    value = prm.c * (-0.5 * g + s)
    if prm.width_offset >= 0:
        for i in range(prm.n_visible):
            value -= 0.5 * width_shift(theta, prm, i % prm.dimensions) * x[i] * x[i]
    return value


@njit(cache=True, inline="always")
def new_cache(prm, D):
    """Per-walker cache (8, N): rows U (u), EU (exp u), S (sigmoid u), R (1 / (1 +
    exp u)) of the position, and UN, EUN, SN, RN the same of a proposed move."""
    return np.empty((8, prm.n_hidden))


@inlined
def refresh(theta, prm, cache, x):
    """Rebuild the cache for position x (M,) (after a parameter change or a jump)."""
    hidden_preactivations(theta, prm, x, cache, U)
    for j in range(prm.n_hidden):
        cache[EU, j] = np.exp(cache[U, j])
        inverse_and_sigmoid(cache, EU, R, S, j)


@njit(cache=True, inline="always")
def wide_hidden_ratio(theta, prm, cache, p, dx, D):
    """The hidden factor of ``move_ratio`` for a wide layer (N >= WIDE_LAYER), with u'
    and exp(u') of the proposal left in the cache: the same u' (the same sums in the
    same order), built in loops over j that LLVM vectorises, ``fastexp.exp`` instead of
    the C library's call, and the product in four interleaved partial products (their
    rounding differs from one running product by a few ulp). Unsigned indices: with
    numba's wrap-around of negative ones, the loops became gathers and scatters."""
    N = np.uint64(prm.n_hidden)
    for j in range(N):
        cache[UN, j] = 0.0  # du_j, summed over the particle's axes
    for d in range(D):
        step = dx[d] * prm.z_ratio if d == 2 else dx[d]
        row = weight_index(prm.offset, prm.n_visible, prm.n_hidden, p * D + d, 0)
        for j in range(N):
            cache[UN, j] += step * theta[row + j]
    for j in range(N):
        un = cache[U, j] + cache[UN, j] * prm.inv_s2
        cache[UN, j] = un
        cache[EUN, j] = fast_exp(un)
    r0, r1, r2, r3 = 1.0, 1.0, 1.0, 1.0
    j = np.uint64(0)
    while j + np.uint64(4) <= N:
        r0 *= (1.0 + cache[EUN, j]) * cache[R, j]
        r1 *= (1.0 + cache[EUN, j + np.uint64(1)]) * cache[R, j + np.uint64(1)]
        r2 *= (1.0 + cache[EUN, j + np.uint64(2)]) * cache[R, j + np.uint64(2)]
        r3 *= (1.0 + cache[EUN, j + np.uint64(3)]) * cache[R, j + np.uint64(3)]
        j += np.uint64(4)
    while j < N:
        r0 *= (1.0 + cache[EUN, j]) * cache[R, j]
        j += np.uint64(1)
    return (r0 * r1) * (r2 * r3)


@inlined
def move_ratio(theta, prm, cache, x, p, dx, D):
    """|psi(x')/psi(x)|^2 of this part for particle p moved by dx (D,), as
    (log_q, factor) with the ratio ``exp(log_q) * factor``: the Gaussian in log form,
    the hidden product as a factor (one exponential per hidden unit, no logarithm).
    Keeps u', exp(u') of the proposal in the cache for ``commit``. The z step enters u
    scaled by z_ratio = sigma^2 / sigma_z^2 (1.0 in a round trap: the same bits)."""
    inv_s2, c = prm.inv_s2, prm.c
    log_q = 0.0
    for d in range(D):
        i = p * D + d
        xo = x[i] - visible_bias(theta, prm, i)
        xn = xo + dx[d]
        log_q -= c * axis_inv_s2(prm, d) * (xn * xn - xo * xo)
        if prm.width_offset >= 0:
            xa = x[i] + dx[d]
            log_q -= width_shift(theta, prm, d) * (xa * xa - x[i] * x[i])
    if prm.wide is None:
        ratio = 1.0
        for j in range(prm.n_hidden):
            du = 0.0
            for d in range(D):
                step = dx[d] * prm.z_ratio if d == 2 else dx[d]
                du += step * weight(theta, prm, p * D + d, j)
            cache[UN, j] = cache[U, j] + du * inv_s2
            cache[EUN, j] = np.exp(cache[UN, j])
            ratio *= (1.0 + cache[EUN, j]) * cache[R, j]  # no division on this path
    else:
        ratio = wide_hidden_ratio(theta, prm, cache, p, dx, D)
    if c != 0.5:
        ratio = ratio ** (2.0 * c)
    return log_q, ratio


@inlined
def set_gradient(theta, prm, cache, x, p, D, out):
    """d ln psi / d x_p at the current position into out (D,) (the first part: sets)."""
    for d in range(D):
        i = p * D + d
        g, _ = coordinate_slopes(theta, prm, cache, S, i, x[i])
        out[d] = prm.c * g * axis_inv_s2(prm, d)
        if prm.width_offset >= 0:
            out[d] -= width_shift(theta, prm, d) * x[i]


@inlined
def set_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    """d ln psi / d x_p at the proposed position x_p + dx into out (D,); call after
    ``move_ratio`` (it fills s' of the proposal, which ``commit`` may then reuse)."""
    for j in range(np.uint64(prm.n_hidden)):  # unsigned: vectorised
        inverse_and_sigmoid(cache, EUN, RN, SN, j)
    for d in range(D):
        i = p * D + d
        g, _ = coordinate_slopes(theta, prm, cache, SN, i, x[i] + dx[d])
        out[d] = prm.c * g * axis_inv_s2(prm, d)
        if prm.width_offset >= 0:
            out[d] -= width_shift(theta, prm, d) * (x[i] + dx[d])


@inlined
def commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    """Take the proposal of ``move_ratio`` into the cache (x itself is moved by the
    caller). proposed_gradient_done: s' is already filled."""
    if not proposed_gradient_done:  # a loop of its own: the copies below vectorise
        for j in range(np.uint64(prm.n_hidden)):
            inverse_and_sigmoid(cache, EUN, RN, SN, j)
    for j in range(np.uint64(prm.n_hidden)):  # unsigned: vectorised
        cache[U, j] = cache[UN, j]
        cache[EU, j] = cache[EUN, j]
        cache[S, j] = cache[SN, j]
        cache[R, j] = cache[RN, j]


@inlined
def set_grad_lap(theta, prm, cache, x, D, grad, lap):
    """d_i ln psi into grad (M,) and d_i^2 ln psi into lap (M,); returns 0.0 (this
    part's Laplacian is all in lap)."""
    c = prm.c
    if prm.wide is not None:
        wide_slopes(theta, prm, cache, x, grad, lap)
    for i in range(prm.n_visible):
        inv_s2 = coordinate_inv_s2(prm, i)
        scale = c * inv_s2  # g * (c/sigma^2) here, (c g)/sigma^2 in the drift: the
        if prm.wide is None:  # rounding as before
            g, l = coordinate_slopes(theta, prm, cache, S, i, x[i])
        else:
            g, l = grad[i], lap[i]
        grad[i] = g * scale
        lap[i] = c * (-inv_s2 + l * inv_s2 * inv_s2)
        if prm.width_offset >= 0:
            delta = width_shift(theta, prm, i % prm.dimensions)
            grad[i] -= delta * x[i]
            lap[i] -= delta
    return 0.0


@inlined
def parameter_derivatives(theta, prm, cache, x, D, out):
    """d ln psi / d theta of this block into out[offset : offset + M + N + M*N] (and of
    the width shifts into out[width_offset : width_offset + 2])."""
    c = prm.c
    M, N = prm.n_visible, prm.n_hidden
    k0 = prm.offset
    for i in range(M):
        out[k0 + i] = c * (x[i] - visible_bias(theta, prm, i)) * coordinate_inv_s2(prm, i)
    for j in range(N):
        out[k0 + M + j] = c * cache[S, j]
    for i in range(M):
        xi = c * x[i] * coordinate_inv_s2(prm, i)
        for j in range(N):
            out[weight_index(k0, M, N, i, j)] = xi * cache[S, j]
    if prm.width_offset >= 0:
        out[prm.width_offset] = 0.0
        out[prm.width_offset + 1] = 0.0
        for i in range(M):
            k = prm.width_offset + (1 if i % prm.dimensions == 2 else 0)
            out[k] -= 0.5 * x[i] * x[i]


@inlined
def gibbs_sweep(theta, prm, cache, x, h, st):
    """One Gibbs update of all units: h_j | x ~ Bernoulli(s_j), then x | h ~
    Normal(a + W h, sigma_i^2) (``visible_mean_given_hidden``), and the cache rebuilt.
    Exact for |psi|^2 = F (psi: sqrt, RBM alone): nothing to accept or reject.
    h: (N,) work array; st: this walker's random stream."""
    for j in range(prm.n_hidden):
        h[j] = 1.0 if uniform(st) < cache[S, j] else 0.0
    visible_mean_given_hidden(theta, prm, h, x)
    for i in range(prm.n_visible):
        x[i] += 1.0 / np.sqrt(coordinate_inv_s2(prm, i)) * normal(st)
    refresh(theta, prm, cache, x)
