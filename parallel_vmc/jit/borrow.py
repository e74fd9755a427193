"""Borrowed array views: reference counting off for arrays a kernel already holds.

numba counts references to every array atomically. An array passed to an inlined
function is copied into the callee's argument, with an increment there and a decrement
after its last use; LLVM's reference-count pruning removes such pairs only when no
other decrement lies between them, so a callee with branches and loops (a commit that
updates several caches) keeps them: measured 6 atomic pairs per accepted move, 25 % of
a fermion move at P = 6.

``borrowed(a)`` is ``a`` without its owner (the NRT meminfo set to null): numba's
increments and decrements on the view become a call that returns at once, and none is
atomic. The view must not outlive ``a``: take it in the function that holds ``a`` and
use it only there (a kernel's own caches and work arrays, its arguments). Nothing is
copied; the view shares ``a``'s data, shape and strides.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def borrowed(typingctx, a):
    """A view of the array a (same type, same data) that owns no reference; None for
    None (an absent part's cache)."""
    if isinstance(a, types.NoneType):
        return a(a), lambda context, builder, signature, args: context.get_dummy_value()
    if not isinstance(a, types.Array):
        return None

    def codegen(context, builder, signature, args):
        view = cgutils.create_struct_proxy(a)(context, builder, value=args[0])
        null = cgutils.get_null_value(view.meminfo.type)
        view.meminfo = null
        view.parent = cgutils.get_null_value(view.parent.type)
        return view._getvalue()

    return a(a), codegen


@intrinsic
def release(typingctx, owners):
    """Mark where the borrowed views of the arrays in the tuple ``owners`` end: numba
    frees an array after its last use, and this call is one (it emits no
    instruction). Put it after the last use of the views."""
    if not isinstance(owners, types.BaseTuple):
        return None

    def codegen(context, builder, signature, args):
        return context.get_dummy_value()

    return types.none(owners), codegen
