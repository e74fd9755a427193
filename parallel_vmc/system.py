"""The Hamiltonian of a run: its fixed description (:class:`System`) and what the kernels
take of it (:class:`SystemParams`); units hbar = m = e = 1. Numba-free: the terms'
formulas live in ``hamiltonian/`` (the trap, Coulomb, hard cores, the pair distance)
with their registry (``hamiltonian/terms.py``).

``H = sum_p ( -1/2 nabla_p^2 + V_ext(r_p) ) + sum_{p<q} V_int(r_pq)``: ``V_ext`` the
harmonic trap ``1/2 omega^2 r^2`` (round), or in 3D ``1/2 (omega^2 (x^2 + y^2) +
omega_z^2 z^2)`` (elliptical); ``V_int`` Coulomb ``1/r``, hard spheres (``inf`` for
``r <= a``, else 0: a move into an overlap is rejected) or none. Positions are flat
vectors ``x`` of length ``M = P*D``; particle ``p`` owns ``x[p*D:(p+1)*D]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .hamiltonian.terms import term


class SystemParams(NamedTuple):
    """What the jitted kernels need of the Hamiltonian (``System.kernel_params``).
    D = len(axis_omegas): the dimension is not a field of its own."""

    particles: int  # P
    external: object  # the external term's parameter tuple (hamiltonian/terms.py)
    coulomb: bool
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
    trap: str = "harmonic"  # the external term (system.trap; hamiltonian/terms.py)

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

    def external_term(self):
        """The module of the external term (``hamiltonian.trap`` for the trap)."""
        return term("external", self.trap).implementation()

    def kernel_params(self) -> "SystemParams":
        """The Hamiltonian as the kernels take it."""
        return SystemParams(
            particles=self.particles,
            external=self.external_term().params(self),
            coulomb=self.coulomb,
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
            cfg.trap,
        )


def potential_energy(x: np.ndarray, system: System) -> float:
    """Total potential energy of one configuration x (shape (M,)); for tests and tools."""
    from .hamiltonian.coulomb import coulomb_potential
    from .hamiltonian.geometry import min_pair_distance

    external = system.external_term()
    v = external.energy(external.params(system), x, system.dimensions)
    if system.coulomb:
        v += coulomb_potential(x, system.particles, system.dimensions)
    if (
        system.hard_core
        and min_pair_distance(x, system.particles, system.dimensions) <= system.hard_sphere_radius
    ):
        v = np.inf
    return v
