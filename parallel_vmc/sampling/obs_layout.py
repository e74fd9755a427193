"""The shape of the production observables' accumulators: the slots of the scalar sums,
the histogram geometry the kernels read (:class:`HistogramSpec`) and the
:class:`Layout` of one run. Numba-free (the checks before any work size a run with
it); the accumulation itself is ``observables.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..runfile import schema as S

DEFAULT_PAIR_BINS = 100  # production.pair_bins null, no hard core
MAX_PAIR_BINS = 20000  # bins that divide a hard-sphere radius: more means a too small to show
COUNT, E, E2, KINETIC, TRAP, INTERACTION, R12 = range(7)
N_SCALARS = 7
SCALARS = {
    S.LOCAL_ENERGY: E,
    S.KINETIC: KINETIC,
    S.TRAP: TRAP,
    S.INTERACTION: INTERACTION,
    S.R12: R12,
}


class HistogramSpec(NamedTuple):
    """The accumulator geometry as the kernels read it: scalars only, so that numba
    keeps them in registers for a whole call (read from an array they were loaded
    again after every histogram increment, which may alias them). Offsets are columns
    of an accumulator row; scales are bins per unit length (multiplications in the hot
    loop, not divisions); every: a chain adds every ``every``-th production sweep."""

    r_max: float
    n_radial: int
    off_radial: int
    r_scale: float
    n_image: int
    off_image: int
    img_scale: float
    n_pair: int
    off_pair: int
    p_scale: float
    inv_pairs: float  # 1 / (P (P-1) / 2): <r12> of a sample is a mean over pairs
    n_axial: int
    off_axial: int
    z_scale: float
    every: int


@dataclass(frozen=True)
class Layout:
    """Shape of the observable accumulators of one run (fixed by config and system)."""

    particles: int
    dimensions: int
    n_batches: int
    n_radial: int
    r_max: float
    n_image: int  # 0 unless D == 2
    n_pair: int  # 0 unless P > 1
    pair_max: float
    n_axial: int = 0  # 0 unless D == 3 and production.axial_density
    z_max: float = 0.0  # the z histogram's half range (D = 3; 0: r_max)

    @classmethod
    def from_config(cls, prod, system, n_samples: int) -> "Layout":
        """prod: the ``production`` config section; system: ``config.SystemConfig`` or
        ``System``; n_samples: sweeps per chain."""
        r_max = float(prod.density_rmax or 4.0 / math.sqrt(system.omega))
        n_pair, pair_max = pair_geometry(prod, system, r_max)
        return cls(
            system.particles,
            system.dimensions,
            n_batches=max(1, min(prod.batches, n_samples)),
            n_radial=prod.density_bins,
            r_max=r_max,
            n_image=prod.image_bins if system.dimensions == 2 else 0,
            n_pair=n_pair if system.particles > 1 else 0,
            pair_max=pair_max,
            n_axial=prod.density_bins
            if system.dimensions == 3 and getattr(prod, "axial_density", False)
            else 0,
            # the cloud's extent along z scales as the oscillator length 1/sqrt(omega_z)
            z_max=r_max * math.sqrt(system.omega / (system.omega_z or system.omega)),
        )

    @property
    def z_half(self) -> float:
        """The z histogram's range is [-z_half, z_half)."""
        return self.z_max or self.r_max

    @property
    def off_radial(self) -> int:
        return N_SCALARS

    @property
    def off_image(self) -> int:
        return self.off_radial + self.n_radial + 1

    @property
    def off_pair(self) -> int:
        return self.off_image + (self.n_image * self.n_image + 1 if self.n_image else 0)

    @property
    def off_axial(self) -> int:
        """The rho histogram (n_axial + 1), then the z histogram (n_axial + 1)."""
        return self.off_pair + (self.n_pair + 1 if self.n_pair else 0)

    @property
    def width(self) -> int:
        return self.off_axial + (2 * (self.n_axial + 1) if self.n_axial else 0)

    def zeros(self) -> np.ndarray:
        """An empty accumulator, shape (n_batches, width)."""
        return np.zeros((self.n_batches, self.width))

    def spec(self, every: int = 1) -> HistogramSpec:
        """The geometry the kernels read (every: ``production.observables_every``).
        Its r_max is the offset of the centred histograms: the image's half width in
        2D, the z histogram's in 3D (the only one there)."""
        n_pairs = self.particles * (self.particles - 1) // 2
        return HistogramSpec(
            self.z_half if self.dimensions == 3 else self.r_max,
            self.n_radial,
            self.off_radial,
            self.n_radial / self.r_max,
            self.n_image,
            self.off_image,
            self.n_image / (2.0 * self.r_max),
            self.n_pair,
            self.off_pair,
            self.n_pair / self.pair_max,
            1.0 / max(n_pairs, 1),
            self.n_axial,
            self.off_axial,
            self.n_axial / (2.0 * self.z_half),
            every,
        )


def pair_geometry(prod, system, r_max: float) -> tuple:
    """(bins, outer edge) of the pair-distance histogram: production.pair_bins and
    pair_rmax (null: 2 r_max). pair_bins null: DEFAULT_PAIR_BINS, or, with a hard-sphere
    radius a, bins whose width divides a, the widest not wider than the default's (an
    edge lies at a, so the hard core's empty bins show), out to the first edge at or
    beyond the outer edge; the default when that takes more than MAX_PAIR_BINS."""
    pair_max = float(prod.pair_rmax or 2.0 * r_max)
    if prod.pair_bins is not None:
        return prod.pair_bins, pair_max
    a = float(getattr(system, "hard_sphere_radius", None) or 0.0)
    if a <= 0.0:
        return DEFAULT_PAIR_BINS, pair_max
    width = a / math.ceil(a * DEFAULT_PAIR_BINS / pair_max)
    n = math.ceil(pair_max / width * (1.0 - 1e-12))  # an edge at pair_max stays the last
    if n > MAX_PAIR_BINS:
        return DEFAULT_PAIR_BINS, pair_max
    return n, n * width


NO_HISTOGRAMS = HistogramSpec(1.0, 0, 0, 1.0, 0, 0, 1.0, 0, 0, 1.0, 1.0, 0, 0, 1.0, 1)
