"""The harmonic trap: ``V = 1/2 omega^2 r^2`` (round), or in 3D ``1/2 (omega^2 (x^2 + y^2)
+ omega_z^2 z^2)`` (elliptical). An external term: its parameters :class:`HarmonicTrap`
and its :func:`energy` (the kernel's term of E_L, chosen by the parameters' type)."""

from __future__ import annotations

from typing import NamedTuple

from numba import njit


class HarmonicTrap(NamedTuple):
    """The trap's frequencies as the kernels take them."""

    omega: float
    omega_z: float  # = omega in a round trap (and for D < 3)


def params(system) -> HarmonicTrap:
    """The kernels' parameters of the trap of a ``System``."""
    return HarmonicTrap(float(system.omega), float(system.trap_z))


@njit(cache=True, fastmath=False)
def trap_potential(x, omega):
    """1/2 omega^2 |x|^2 for the flat position vector x (shape (M,))."""
    r2 = 0.0
    for i in range(x.shape[0]):
        r2 += x[i] * x[i]
    return 0.5 * omega * omega * r2


@njit(cache=True, fastmath=False)
def trap_potential_axes(x, omega, omega_z, D):
    """1/2 sum_p (omega^2 (x_p^2 + y_p^2) + omega_z^2 z_p^2) for x (P*D,) (omega_z enters
    only in 3D); a round trap (omega_z == omega) is ``trap_potential``, bit for bit."""
    if omega_z == omega or D != 3:
        return trap_potential(x, omega)
    r2 = 0.0
    z2 = 0.0
    for p in range(x.shape[0] // 3):
        r2 += x[3 * p] * x[3 * p] + x[3 * p + 1] * x[3 * p + 1]
        z2 += x[3 * p + 2] * x[3 * p + 2]
    return 0.5 * (omega * omega * r2 + omega_z * omega_z * z2)


def energy(prm, x, D):
    """The trap's potential energy at x (P*D,), compiled inline where the kernel asks
    for the external term (``hamiltonian.compose.external_energy``)."""
    return trap_potential_axes(x, prm.omega, prm.omega_z, D)
