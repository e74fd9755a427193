"""The trial wave function psi as a product of parts.

Modules:

* ``rbm.py``: the Gaussian-binary RBM part (always present) and its Gibbs conditionals;
* ``pair_jastrow.py``: the Padé-Jastrow pair part (``wavefunction.jastrow: pade``);
* ``slater.py``: the Slater determinants of fermions (``system.statistics: fermions``,
  P > 2), with their orbital scale;
* ``compose.py``: the part contract and the jitted product of the parts;
* ``layout.py``: the registry of parts (``PARTS``) and the parameter layout;
* this file: :class:`WaveFunction`, the fixed description of psi for a run.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import compose, pair_jastrow, rbm, slater
from .layout import PARTS, Block, Layout, Part
from .pair_jastrow import N_PAIR_KINDS, pade_cusps
from .rbm import RBMParams, exact_sigma, psi_exponent

__all__ = ["PARTS", "Part", "Block", "Layout", "WaveFunction", "compose", "rbm",
           "pair_jastrow", "slater", "N_PAIR_KINDS", "exact_sigma", "psi_exponent",
           "pade_cusps"]


@dataclass(frozen=True)
class WaveFunction:
    """The fixed (non-variational) description of the trial function."""

    layout: Layout
    sigma: float
    psi: str                 # "sqrt" | "full"
    particles: int           # P
    dimensions: int          # D
    omega: float = 1.0       # the orbitals' frequency (Slater part)
    determinant_refresh: int = 100   # sweeps between fresh Slater inverses

    @property
    def jastrow(self) -> str:
        return "pade" if "pade" in self.layout.parts else "none"

    @property
    def has_determinants(self) -> bool:
        return "slater" in self.layout.parts

    def orbitals(self) -> np.ndarray:
        """(P/2, D) int64: the oscillator quantum numbers of the orbitals each spin
        occupies (the Slater part's columns)."""
        return slater.quantum_numbers(self.particles // 2, self.dimensions)

    def orbital_scale(self, theta: np.ndarray) -> float:
        """The orbital scale alpha in theta (Slater part)."""
        return float(self.layout.block(theta, "orbital_scale")[0])

    @property
    def c(self) -> float:
        return psi_exponent(self.psi)

    @property
    def inv_s2(self) -> float:
        return 1.0 / (self.sigma * self.sigma)

    @property
    def cusp(self) -> np.ndarray:
        """(P, P) Padé-Jastrow cusps A_pq (0 on the diagonal), for the run file."""
        return pade_cusps(self.particles, self.dimensions)[0]

    @classmethod
    def from_config(cls, wf_cfg, system) -> "WaveFunction":
        sigma = wf_cfg.sigma if wf_cfg.sigma is not None else exact_sigma(system.omega,
                                                                         wf_cfg.psi)
        return cls(Layout.from_config(system, wf_cfg), float(sigma), wf_cfg.psi,
                   system.particles, system.dimensions, float(system.omega),
                   wf_cfg.determinant_refresh)

    def kernel_parts(self):
        """(RBMParams, PadeParams or None, SlaterParams or None): where the parts find
        their blocks in theta and their fixed numbers, as the kernels take them."""
        lay = self.layout
        r = RBMParams(lay.part_offset("rbm"), lay.n_visible, lay.n_hidden, self.inv_s2,
                      self.c)
        j = None
        if "pade" in lay.parts:
            j = pair_jastrow.params(lay.part_offset("pade"), self.particles, self.dimensions)
        s = None
        if "slater" in lay.parts:
            s = slater.params(lay.part_offset("slater"), self.particles, self.dimensions,
                              self.omega, self.determinant_refresh)
        return r, j, s
