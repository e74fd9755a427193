"""The generic slot of psi: a fourth part beside the RBM, the correlation part and the
antisymmetric part, coexisting with all of them.

A part for this slot is a module that defines its parameter tuple (a NamedTuple of
scalars, see ``compose.py``), its operations with the argument names of the stubs below,
and ``kernel_params(wf, offset)``, and registers the operations with :func:`implement`.
The kernel calls the stubs; numba compiles, per kernel, the implementation registered
for the type of the tuple in the slot (an absent part, None, prunes every call). The
registry (``layout.PARTS``) names the module; ``WaveFunction.kernel_parts`` imports it,
which registers it, before a kernel is compiled.

The operations are those of the part contract in ``compose.py``; ``new_cache(None, D)``
is None (no part in the slot: no cache, see ``compose.empty_caches``).
"""

from __future__ import annotations

from numba.core import types
from numba.extending import overload

# Read by jit/cache.py: the modules importing this one register implementations of its
# stubs, so every kernel that reaches the slot depends on their sources too (without
# importing them): they belong to this module's closure key.
EXTENDED_BY_IMPORTERS = True

# operation name -> {parameter tuple class: implementation}
_IMPLEMENTATIONS: dict = {}

OPERATIONS = (
    "log_psi",
    "new_cache",
    "refresh",
    "move_ratio",
    "add_gradient",
    "add_proposed_gradient",
    "commit",
    "add_grad_lap",
    "parameter_derivatives",
)


def implement(params_class, **operations) -> None:
    """Register a generic part: its parameter tuple's class and every operation of
    :data:`OPERATIONS` (plain Python functions, compiled where a kernel uses them)."""
    missing = sorted(set(OPERATIONS) - set(operations))
    unknown = sorted(set(operations) - set(OPERATIONS))
    if missing or unknown:
        raise TypeError(
            f"generic part {params_class.__name__}: missing {missing}, unknown {unknown}"
        )
    for name, function in operations.items():
        _IMPLEMENTATIONS.setdefault(name, {})[params_class] = function


def _pick(operation: str, prm):
    """The implementation for the numba type of prm, or None (numba then tries no other
    and reports the missing implementation)."""
    if isinstance(prm, types.BaseNamedTuple):
        return _IMPLEMENTATIONS.get(operation, {}).get(prm.instance_class)
    return None


def _no_cache(prm, D):
    """The cache of an empty slot. By overload, not by a branch on None in one
    function: its return type would be Optional(array) where the branch is not pruned."""
    return None


# The stubs: called only from jitted code.
def _jitted_only(*args):
    raise NotImplementedError("a generic part's operations run in jitted code only")


def log_psi(theta, prm, x, D):
    """ln |part| at x (P*D,)."""
    _jitted_only()


def new_cache(prm, D):
    """The part's per-walker cache, not yet filled."""
    _jitted_only()


def refresh(theta, prm, cache, x):
    """Fill the cache for position x."""
    _jitted_only()


def move_ratio(theta, prm, cache, x, p, dx, D):
    """(log_q, factor) of particle p moved by dx (D,)."""
    _jitted_only()


def add_gradient(theta, prm, cache, x, p, D, out):
    """Add nabla_p ln part at x to out (D,)."""
    _jitted_only()


def add_proposed_gradient(theta, prm, cache, x, p, dx, D, out):
    """Add nabla_p ln part at the proposal to out (D,)."""
    _jitted_only()


def commit(theta, prm, cache, x, p, dx, D, proposed_gradient_done):
    """Accept the proposal (before the caller moves x)."""
    _jitted_only()


def add_grad_lap(theta, prm, cache, x, D, grad, lap):
    """Add d_i ln part to grad (M,); add d_i^2 to lap (M,) or return their sum."""
    _jitted_only()


def parameter_derivatives(theta, prm, cache, x, D, out):
    """d ln part / d theta of the part's block into out (n_params,)."""
    _jitted_only()


# numba checks that an implementation's arguments are named as the typing function's:
# one typing function per stub, with the stub's names.
overload(log_psi, inline="always")(lambda theta, prm, x, D: _pick("log_psi", prm))
overload(new_cache, inline="always")(
    lambda prm, D: _no_cache if isinstance(prm, types.NoneType) else _pick("new_cache", prm)
)
overload(refresh, inline="always")(lambda theta, prm, cache, x: _pick("refresh", prm))
overload(move_ratio, inline="always")(
    lambda theta, prm, cache, x, p, dx, D: _pick("move_ratio", prm)
)
overload(add_gradient, inline="always")(
    lambda theta, prm, cache, x, p, D, out: _pick("add_gradient", prm)
)
overload(add_proposed_gradient, inline="always")(
    lambda theta, prm, cache, x, p, dx, D, out: _pick("add_proposed_gradient", prm)
)
overload(commit, inline="always")(
    lambda theta, prm, cache, x, p, dx, D, proposed_gradient_done: _pick("commit", prm)
)
overload(add_grad_lap, inline="always")(
    lambda theta, prm, cache, x, D, grad, lap: _pick("add_grad_lap", prm)
)
overload(parameter_derivatives, inline="always")(
    lambda theta, prm, cache, x, D, out: _pick("parameter_derivatives", prm)
)
