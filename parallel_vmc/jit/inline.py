"""How the kernel's building blocks are compiled: each function on its own, with the
kernel's floating-point flags, then inlined into its callers by LLVM.

numba's own inlining (``inline="always"``) copies a callee's IR into every caller and
re-types it there; with the wave function's parts inlined through the compose layer
into the kernel, those passes were ~70 % of a kernel's compile (minutes per signature
with an empty cache). ``forceinline`` instead compiles each function once per
signature (and caches it on disk), and marks it ``alwaysinline`` for LLVM, which
inlines it into the kernel's module before the kernel is optimised: the kernel's
machine code keeps the same shape, and a second kernel over the same parts reuses them.

Used for the RBM's and the pair part's per-move operations (and the observables'
accumulation). The Slater part's stay with numba's inlining: compiled on their own, a
fermion move at P = 6 was ~8 % slower. The kernel passes D as a literal (``literal.py``)
so that each is compiled for the kernel's dimension, as if inlined by numba.

A function compiled this way keeps its own flags wherever it is inlined, so every such
function takes the kernel's: ``error_model="numpy"`` (a division by zero gives inf or
nan, which the driver's guards catch, instead of a Python exception whose checks
blocked LLVM's optimisation of the inlined Jastrow and kinetic-energy code, ~3x on the
Padé-Jastrow local energy) and ``fastmath={"contract"}`` (only the fusion of a * b + c
into one FMA: no reordering, no assumption about inf or nan; the vectorised exponential
of a wide hidden layer 30 % cheaper).

A function that lets LLVM reorder its sums (``fastmath`` with ``"reassoc"``: the Coulomb
sums, the wide layer's slopes) is ``forceinline`` too, with its own flags: called, it
exists twice, compiled on its own and again inside the kernel's module, and the two
copies may sum in other orders. Which copy a kernel called depended on whether the
kernel had just been compiled or was loaded from the cache: the same run gave other
last bits the first time than every later time.
"""

from __future__ import annotations

from numba import njit

# the flags of the Monte Carlo kernel and of everything inlined into it
KERNEL_FLAGS = {"error_model": "numpy", "fastmath": {"contract"}}
# an overload's implementation compiled as :func:`inlined` compiles a function
INLINED_OPTIONS = {"forceinline": True, **KERNEL_FLAGS}


def inlined(fn):
    """``fn`` jitted with the kernel's flags, cached, and always inlined by LLVM."""
    return njit(cache=True, **INLINED_OPTIONS)(fn)


def kernel(fn):
    """``fn`` jitted as a Monte Carlo kernel: cached, with the kernel's flags."""
    return njit(cache=True, **KERNEL_FLAGS)(fn)
