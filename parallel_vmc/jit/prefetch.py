"""A hint to the CPU to bring memory into its cache before it is used.

DMC moves every walker once per kernel call, each with its own row of kept caches
(about 2 kB at P = 6; a population's rows are megabytes, beyond the core's own cache).
Asking for the next walker's row while the current one moves hides the memory's
latency behind the moves; the hardware's own prefetching does not guess the walk
through a row's parts.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

LINE = 8  # float64 per cache line (64 bytes)


@intrinsic
def prefetch(typingctx, a, i, k):
    """Prefetch the cache line of a[i, k] (a: a C-contiguous 2D array) for reading,
    into every level of the cache (LLVM's ``llvm.prefetch``). No effect on values."""
    if not (isinstance(a, types.Array) and a.ndim == 2 and a.layout == "C"):
        return None
    sig = types.void(a, i, k)

    def codegen(context, builder, signature, args):
        aty = signature.args[0]
        ary = context.make_array(aty)(context, builder, args[0])
        inds = [
            context.cast(builder, args[1], signature.args[1], types.intp),
            context.cast(builder, args[2], signature.args[2], types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aty, ary, inds, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        # the name mangled for this llvmlite's pointers (p0i8 typed, p0 opaque)
        fn = builder.module.declare_intrinsic("llvm.prefetch", [i8p], fnty)
        # read (0), high temporal locality (3), data (1)
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return sig, codegen
