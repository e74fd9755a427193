"""The Hamiltonian: harmonic trap plus optional Coulomb repulsion (units hbar = m = e = 1).

``H = sum_p ( -1/2 nabla_p^2 + 1/2 omega^2 r_p^2 ) + sum_{p<q} 1/r_pq``.
Positions are flat vectors ``x`` of length ``M = P*D``; particle ``p`` owns
``x[p*D:(p+1)*D]``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numba import njit


class SystemParams(NamedTuple):
    """What the jitted kernels need of the Hamiltonian (``System.kernel_params``)."""

    particles: int      # P
    dimensions: int     # D
    omega: float
    coulomb: bool


@dataclass(frozen=True)
class System:
    """Parameters of the Hamiltonian."""

    particles: int
    dimensions: int
    omega: float
    coulomb: bool
    statistics: str = "bosons"      # "fermions" | "bosons"

    @property
    def n_coords(self) -> int:
        """M = P*D, the number of visible units of the RBM."""
        return self.particles * self.dimensions

    def non_interacting_energy(self) -> float:
        """Exact ground-state energy without interaction: P*D*omega/2 for bosons, the
        closed-shell sum for fermions (``wavefunction.slater``)."""
        if self.statistics == "fermions":
            from .wavefunction.slater import non_interacting_energy
            return non_interacting_energy(self.particles, self.dimensions, self.omega)
        return 0.5 * self.particles * self.dimensions * self.omega

    def kernel_params(self) -> "SystemParams":
        """The Hamiltonian as the kernels take it."""
        return SystemParams(self.particles, self.dimensions, self.omega, self.coulomb)

    @classmethod
    def from_config(cls, cfg) -> "System":
        """From a ``config.SystemConfig``."""
        return cls(cfg.particles, cfg.dimensions, float(cfg.omega),
                   cfg.interaction == "coulomb", cfg.statistics)


@njit(cache=True, fastmath=False)
def trap_potential(x, omega):
    """1/2 omega^2 |x|^2 for the flat position vector x (shape (M,))."""
    r2 = 0.0
    for i in range(x.shape[0]):
        r2 += x[i] * x[i]
    return 0.5 * omega * omega * r2


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


@njit(cache=True)
def coulomb_potential(x, P, D):
    """sum_{p<q} 1/r_pq for x of shape (P*D,)."""
    v = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            v += 1.0 / pair_distance(x, p, q, D)
    return v


def potential_energy(x: np.ndarray, system: System) -> float:
    """Total potential energy of one configuration x (shape (M,)); for tests and tools."""
    v = trap_potential(x, system.omega)
    if system.coulomb:
        v += coulomb_potential(x, system.particles, system.dimensions)
    return v
