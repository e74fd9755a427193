"""The kernel's access to the Hamiltonian's terms, compiled at compile time: the
external term is the registered one whose parameter tuple the kernel was given
(numba overloads on the tuple's type, as the pair laws of the wave function), so a
kernel pays only for its own term and no jitted function is passed as an argument."""

from __future__ import annotations

from numba.extending import overload

from .terms import TERMS


def external_energy(prm, x, D):
    """The external term's potential energy at x (P*D,) (jitted only)."""
    raise NotImplementedError("jitted only")


def _external_implementation(prm, x, D):
    """The ``energy`` of the registered external term whose parameter tuple has the
    numba type prm."""
    cls = getattr(prm, "instance_class", None)
    for t in TERMS:
        if t.role == "external":
            module = t.implementation()
            if cls is not None and cls.__module__ == module.__name__:
                return module.energy
    return None


overload(external_energy, inline="always")(_external_implementation)
