"""The trial wave function psi as a product of parts.

Modules:

* ``rbm.py``: the Gaussian-binary RBM part (always present) and its Gibbs conditionals;
* ``pair_jastrow.py``: the pair parts: Padé-Jastrow (``wavefunction.jastrow: pade``) and
  hard-sphere (``wavefunction.jastrow: hard_sphere``), one skeleton with two u(r);
* ``slater.py``: the Slater determinants of fermions (``system.statistics: fermions``,
  P > 2), with their orbital scale;
* ``relative_gaussian.py``: exp(-g sum_{p<q} r_pq^2), a part of the generic slot
  (``wavefunction.extra_factor: relative_gaussian``);
* ``generic.py``: the generic slot, where a part that coexists with all the others
  registers its operations;
* ``compose.py``: the part contract and the jitted product of the parts;
* ``layout.py``: the registry of parts (``PARTS``) and the parameter layout;
* this file: :class:`WaveFunction`, the fixed description of psi for a run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import (
    GENERIC_PARTS,
    N_PAIR_KINDS,
    PAIR_PARTS,
    PARTS,
    Block,
    Layout,
    Part,
    exact_sigma,
    psi_exponent,
)

# The jitted part modules are imported where they are used, not here: the registry and
# the layout serve config validation, which runs without numba. Their names are still
# attributes of the package, imported on first use (PEP 562).
_LAZY = {
    "compose": ("compose", None),
    "rbm": ("rbm", None),
    "pair_jastrow": ("pair_jastrow", None),
    "slater": ("slater", None),
    "pade_cusps": ("pair_jastrow", "pade_cusps"),
}


def __getattr__(name):
    """The part modules and their names, imported on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module, attr = _LAZY[name]
    value = importlib.import_module(f"{__name__}.{module}")
    return value if attr is None else getattr(value, attr)


__all__ = [
    "PARTS",
    "PAIR_PARTS",
    "GENERIC_PARTS",
    "Part",
    "Block",
    "Layout",
    "WaveFunction",
    "N_PAIR_KINDS",
    "exact_sigma",
    "psi_exponent",
]


@dataclass(frozen=True)
class WaveFunction:
    """The fixed (non-variational) description of the trial function."""

    layout: Layout
    sigma: float
    psi: str  # "sqrt" | "full"
    particles: int  # P
    dimensions: int  # D
    omega: float = 1.0  # the orbitals' frequency (Slater part)
    determinant_refresh: int = 100  # sweeps between fresh Slater inverses
    sigma_z: float | None = None  # RBM width along z (3D); None: sigma
    hard_sphere_radius: float = 0.0  # a of the hard-sphere pair part

    @property
    def jastrow(self) -> str:
        """The pair part: 'pade', 'hard_sphere' or 'none'."""
        return next((p for p in PAIR_PARTS if p in self.layout.parts), "none")

    @property
    def width_z(self) -> float:
        """The RBM width along z (sigma itself in a round trap and for D < 3)."""
        return self.sigma if self.sigma_z is None else self.sigma_z

    @property
    def has_determinants(self) -> bool:
        return "slater" in self.layout.parts

    def orbitals(self) -> np.ndarray:
        """(P/2, D) int64: the oscillator quantum numbers of the orbitals each spin
        occupies (the Slater part's columns)."""
        from ..shells import quantum_numbers

        return quantum_numbers(self.particles // 2, self.dimensions)

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
        from .pair_jastrow import pade_cusps

        return pade_cusps(self.particles, self.dimensions)[0]

    @classmethod
    def from_config(cls, wf_cfg, system) -> "WaveFunction":
        sigma = wf_cfg.sigma if wf_cfg.sigma is not None else exact_sigma(system.omega, wf_cfg.psi)
        omega_z = system.omega if system.omega_z is None else system.omega_z
        sigma_z = wf_cfg.sigma_z
        if sigma_z is None and system.dimensions == 3 and omega_z != system.omega:
            sigma_z = exact_sigma(omega_z, wf_cfg.psi)  # elliptical trap: its own width
        radius = system.hard_sphere_radius if wf_cfg.jastrow == "hard_sphere" else 0.0
        return cls(
            Layout.from_config(system, wf_cfg),
            float(sigma),
            wf_cfg.psi,
            system.particles,
            system.dimensions,
            float(system.omega),
            wf_cfg.determinant_refresh,
            None if sigma_z is None else float(sigma_z),
            float(radius),
        )

    def kernel_parts(self):
        """``compose.Parts``: every present part's parameter tuple in the slot of its
        role (``Part.role``; None where no part fills it), built by the function its
        registry entry names (``Part.kernel_params``): where the parts find their blocks
        in theta and their fixed numbers, as the kernels take them. Importing a generic
        part's module here registers its operations before a kernel is compiled."""
        import importlib

        from . import compose

        slots = {}
        for part in self.layout.present():
            if part.role:
                module, function = part.kernel_params.rsplit(".", 1)
                build = getattr(importlib.import_module(f"{__name__}.{module}"), function)
                slots[part.role] = build(self, self.layout.part_offset(part.name))
        return compose.Parts(**slots)
