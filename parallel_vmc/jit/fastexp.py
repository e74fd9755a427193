"""An exponential that numba inlines and vectorises: ``exp(x)`` for the hot loops.

numba lowers ``np.exp`` to a call of the C library's scalar ``exp``: every call spills
the live floating-point registers (all are caller-saved) and keeps LLVM from
vectorising the loop around it. The RBM's move ratio takes one exponential per hidden
unit, so with 40 hidden units those calls were most of a fermion move (``pvmc bench
--scan-particles``). This one is plain arithmetic, inlined and vectorised with the loop.

Method: ``x = n ln2 + r`` with ``n = round(x / ln2)`` and ``|r| <= ln2 / 2``;
``exp(r)`` by its Taylor series to ``r^13 / 13!`` (truncation below 1e-17 relative),
evaluated by Estrin's scheme (a short dependency chain); ``2^n`` by writing the
exponent bits, in two factors so that every ``n`` from overflow to underflow is
exact. The error is a few units in the last place (``tests/test_fastexp.py`` measures
it against ``np.exp``); ``exp(+inf) = inf``, ``exp(-inf) = 0``, ``exp(nan) = nan``.
"""

from __future__ import annotations

import math
from decimal import Decimal, getcontext

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic


def _ln2_split() -> tuple:
    """(hi, lo): ln 2 = hi + lo with hi's last 11 bits zero, so that n * hi is exact
    for |n| < 2^11 (every n of a finite, non-zero result)."""
    getcontext().prec = 50
    ln2 = Decimal(2).ln()
    mantissa, exponent = math.frexp(float(ln2))
    hi = math.ldexp(math.floor(math.ldexp(mantissa, 42)), exponent - 42)
    return hi, float(ln2 - Decimal(hi))


LN2_HI, LN2_LO = _ln2_split()
INV_LN2 = 1.0 / math.log(2.0)
ROUND_SHIFT = 6755399441055744.0  # 1.5 * 2^52: x + this rounds x to an integer
X_MAX, X_MIN = 710.0, -746.0  # beyond: inf and 0 (exp(709.79) overflows,
# exp(-745.14) underflows); keeps n in range
C = tuple(1.0 / math.factorial(k) for k in range(14))  # a tuple: numba freezes it


@intrinsic
def _double_from_bits(typingctx, bits):
    """The float64 whose IEEE-754 bit pattern is the int64 ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, inline="always")
def pow2(n):
    """2.0^n for an integer n with -1022 <= n <= 1023 (int64)."""
    return _double_from_bits((n + 1023) << 52)


@njit(cache=True, inline="always")
def exp(x):
    """e^x for a float64 x (see the module docstring)."""
    x = max(min(x, X_MAX), X_MIN)  # nan stays nan
    t = x * INV_LN2 + ROUND_SHIFT
    nf = t - ROUND_SHIFT  # round(x / ln2), as a double
    r = (x - nf * LN2_HI) - nf * LN2_LO
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    p01 = C[0] + C[1] * r
    p23 = C[2] + C[3] * r
    p45 = C[4] + C[5] * r
    p67 = C[6] + C[7] * r
    p89 = C[8] + C[9] * r
    p1011 = C[10] + C[11] * r
    p1213 = C[12] + C[13] * r
    p03 = p01 + p23 * r2
    p47 = p45 + p67 * r2
    p811 = p89 + p1011 * r2
    p07 = p03 + p47 * r4
    p813 = p811 + p1213 * r4
    p = p07 + p813 * r8
    n = int(nf)
    half = n >> 1  # 2^n = 2^half * 2^(n - half): both in
    return p * pow2(half) * pow2(n - half)  # range for every clamped x
