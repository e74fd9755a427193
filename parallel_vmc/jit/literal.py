"""A tuple's length as a compile-time constant that the functions it is passed to see.

The kernel takes the dimension D as the length of a tuple (``SystemParams``), which
numba knows when it compiles. ``len(t)`` gives an ordinary integer, though, and a
function compiled on its own (``inline.py``) that is passed that integer is compiled
for any D: its loops over the axes are optimised, vectorised and unrolled before LLVM
inlines it, and stay bigger and slower than the kernel's own (measured 20-50 % per
move), with other fused multiply-adds. ``length(t)`` is typed as the literal D, so
every function that receives it is compiled for that D, as the kernel is.
"""

from __future__ import annotations

from numba import types
from numba.extending import intrinsic


@intrinsic
def length(typingctx, t):
    """len(t) of the tuple t, typed as a literal integer."""
    if not isinstance(t, types.BaseTuple):
        return None
    n = len(t)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.intp, n)

    return types.literal(n)(t), codegen
