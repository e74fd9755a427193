"""Let LLVM use the machine's widest vectors in a hot numba function.

On CPUs with AVX-512 LLVM vectorises with 256-bit registers by default (its tuning
``prefer-256-bit``, chosen for early AVX-512 chips that lowered their clock on 512-bit
work). The RBM's move ratio over a wide hidden layer (one inlined exponential per
unit, ``fastexp.py``) is bounded by arithmetic throughput, so twice the lanes pay off
there on current chips; a loop shorter than 8 lanes, or its remainder, then runs
scalar, so narrow layers keep 256 bits (``rbm.WIDEST_LAYER``).

``prefer_wide_vectors(flag)`` in a jitted function sets LLVM's per-function attribute
``"prefer-vector-width"="512"`` on it when ``flag`` is ``True`` and does nothing when it
is ``None``: the choice is by type, so numba compiles (and caches) one kernel for each.
Vectorising changes no result: loops without ``fastmath`` reassociation keep their
order of operations. On a machine without AVX-512 the attribute changes nothing.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic

WIDTH_ATTRIBUTE = '"prefer-vector-width"="512"'


@intrinsic
def prefer_wide_vectors(typingctx, flag):
    """With flag True (a bool): mark the calling jitted function (after numba's
    inlining, the function whose code this is) for 512-bit vectors; with flag None:
    nothing. Emits no instruction."""
    if not isinstance(flag, (types.NoneType, types.Boolean)):
        return None
    wide = isinstance(flag, types.Boolean)

    def codegen(context, builder, signature, args):
        if wide:
            # llvmlite's attribute set admits only its list of keywords; a string
            # attribute goes in through the set's own add (printed as given).
            set.add(builder.function.attributes, WIDTH_ATTRIBUTE)
        return context.get_dummy_value()

    return types.none(flag), codegen
