"""The Hamiltonian: harmonic trap plus an optional pair interaction (units hbar = m = e = 1).

``H = sum_p ( -1/2 nabla_p^2 + V_trap(r_p) ) + sum_{p<q} V_int(r_pq)`` with
``V_trap = 1/2 omega^2 r^2`` (round), or in 3D ``1/2 (omega^2 (x^2 + y^2) + omega_z^2 z^2)``
(elliptical); ``V_int`` is Coulomb ``1/r``, hard spheres (``inf`` for ``r <= a``, else 0:
a move into an overlap is rejected, see ``overlaps``) or none.
Positions are flat vectors ``x`` of length ``M = P*D``; particle ``p`` owns
``x[p*D:(p+1)*D]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit


class SystemParams(NamedTuple):
    """What the jitted kernels need of the Hamiltonian (``System.kernel_params``).
    D = len(axis_omegas): the dimension is not a field of its own."""

    particles: int  # P
    omega: float
    coulomb: bool
    omega_z: float  # = omega in a round trap (and for D < 3)
    hard_core: float  # hard-sphere radius a; 0: no hard core
    # The trap frequency of each axis: D entries. numba knows a tuple's length when it
    # compiles, so a kernel that takes D = len(axis_omegas) has D as a constant: its
    # loops over the axes unroll and tests of d against D fold away (as for a C code
    # compiled per dimension); one kernel is compiled, and cached, per D.
    axis_omegas: tuple


@dataclass(frozen=True)
class System:
    """Parameters of the Hamiltonian."""

    particles: int
    dimensions: int
    omega: float
    coulomb: bool
    statistics: str = "bosons"  # "fermions" | "bosons"
    omega_z: float | None = None  # None: omega (round trap)
    hard_sphere_radius: float = 0.0  # a (system.hard_sphere_radius; 0: not given)
    hard_core: bool = False  # interaction hard_sphere: V = inf for r <= a

    @property
    def trap_z(self) -> float:
        """The trap frequency along z (omega itself in a round trap)."""
        return self.omega if self.omega_z is None else self.omega_z

    @property
    def interaction(self) -> str:
        """'coulomb' | 'hard_sphere' | 'none', as in the config."""
        return "coulomb" if self.coulomb else "hard_sphere" if self.hard_core else "none"

    @property
    def n_coords(self) -> int:
        """M = P*D, the number of visible units of the RBM."""
        return self.particles * self.dimensions

    def non_interacting_energy(self) -> float:
        """Exact ground-state energy without interaction: P*D*omega/2 for bosons, the
        closed-shell sum for fermions (``shells``)."""
        if self.statistics == "fermions":
            from .shells import non_interacting_energy

            return non_interacting_energy(self.particles, self.dimensions, self.omega)
        if self.dimensions == 3 and self.trap_z != self.omega:
            return 0.5 * self.particles * (2.0 * self.omega + self.trap_z)
        return 0.5 * self.particles * self.dimensions * self.omega

    def kernel_params(self) -> "SystemParams":
        """The Hamiltonian as the kernels take it."""
        return SystemParams(
            particles=self.particles,
            omega=self.omega,
            coulomb=self.coulomb,
            omega_z=float(self.trap_z),
            hard_core=float(self.hard_sphere_radius) if self.hard_core else 0.0,
            axis_omegas=tuple(
                float(self.omega) if d < 2 else float(self.trap_z) for d in range(self.dimensions)
            ),
        )

    @classmethod
    def from_config(cls, cfg) -> "System":
        """From a ``config.SystemConfig``."""
        omega_z = None if cfg.omega_z is None else float(cfg.omega_z)
        return cls(
            cfg.particles,
            cfg.dimensions,
            float(cfg.omega),
            cfg.interaction == "coulomb",
            cfg.statistics,
            omega_z,
            float(cfg.hard_sphere_radius or 0.0),
            cfg.interaction == "hard_sphere",
        )


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


@njit(cache=True, inline="always")
def distance(y, i, x, q, D):
    """|y[i:i+D] - x_q|: the distance of a point stored at y[i:i+D] from particle q of
    the flat position vector x (shape (P*D,)). The one home of the pair distance."""
    r2 = 0.0
    for d in range(D):
        t = y[i + d] - x[q * D + d]
        r2 += t * t
    return np.sqrt(r2)


@njit(cache=True, inline="always")
def pair_distance(x, p, q, D):
    """r_pq = |x_p - x_q| for the flat position vector x (shape (P*D,))."""
    return distance(x, p * D, x, q, D)


@njit(cache=True, inline="always")
def overlaps(y, i, x, p, a, P, D):
    """True if the point y[i:i+D] (a position of particle p) lies within a hard core of
    any other particle of x (P*D,): r <= a, where V = inf. The one home of the hard-core
    test: a move to such a point is rejected, an initial position redrawn."""
    for q in range(P):
        if q != p and distance(y, i, x, q, D) <= a:
            return True
    return False


@njit(cache=True)
def min_pair_distance(x, P, D):
    """min_{p<q} r_pq for x (P*D,) (inf for P < 2); for tests and tools."""
    r = np.inf
    for p in range(P):
        for q in range(p + 1, P):
            r = min(r, pair_distance(x, p, q, D))
    return r


@njit(cache=True, fastmath={"reassoc", "contract"})
def coulomb_potential(x, P, D):
    """sum_{p<q} 1/r_pq for x of shape (P*D,). The sum may be reordered (and
    vectorised); one pair's energy is exact as before."""
    v = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            v += 1.0 / pair_distance(x, p, q, D)
    return v


@njit(cache=True, fastmath={"reassoc", "contract"}, error_model="numpy")
def coulomb_from_table(table, offset, P):
    """sum_{p<q} 1/r_pq from a table of the current pair distances, r_pq at
    table[offset + p P + q] (the pair part's cache): the kernel's Coulomb energy where
    the table is kept anyway, with no square roots. The same sum as
    ``coulomb_potential``, reordered (and vectorised) as that one may be; unsigned
    indices, as the part's own loops (``wavefunction/unsigned.py``)."""
    v = 0.0
    for p in range(P):
        row = offset + p * P
        for q in range(p + 1, P):
            v += 1.0 / table[np.uint64(row + q)]
    return v


def potential_energy(x: np.ndarray, system: System) -> float:
    """Total potential energy of one configuration x (shape (M,)); for tests and tools."""
    v = trap_potential_axes(x, system.omega, system.trap_z, system.dimensions)
    if system.coulomb:
        v += coulomb_potential(x, system.particles, system.dimensions)
    if (
        system.hard_core
        and min_pair_distance(x, system.particles, system.dimensions) <= system.hard_sphere_radius
    ):
        v = np.inf
    return v
