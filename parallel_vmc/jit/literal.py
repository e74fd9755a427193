"""A tuple's length as a compile-time constant that the functions it is passed to see.

The kernel takes the dimension D as the length of a tuple (``SystemParams``), which
numba knows when it compiles. ``len(t)`` gives an ordinary integer, though, and a
function compiled on its own (``inline.py``) that is passed that integer is compiled
for any D: its loops over the axes are optimised before LLVM inlines it, and its
multiply-adds fuse otherwise than in the kernel's own code (the Padé-Jastrow runs'
local energies changed in the last bits). ``length(t)`` is typed as the literal D,
so every function that receives it is compiled for that D, as the kernel is.
``plain(n)`` is the opposite, for the functions that must keep being compiled for
any D (the Hamiltonian's terms, see ``sampling/kernels.py``).
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


@intrinsic
def plain(typingctx, n):
    """The integer n typed as a plain intp, not a literal: a function passed it is
    compiled once for every value (``sampling/kernels.py`` says where and why)."""
    if not isinstance(n, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return context.cast(builder, args[0], n, types.intp)

    return types.intp(n), codegen
