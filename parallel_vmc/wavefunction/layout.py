"""The registry of wave-function parts and the layout of their parameters.

The variational parameters form one flat vector theta: the blocks of the present parts in
the order of :data:`PARTS` (``[a (M), b (N), W (M*N)]``, then ``[beta_anti, beta_para]``
with the Padé-Jastrow factor (the hard-sphere factor has no parameters), then ``[alpha]``
with the Slater determinants). :class:`Layout` is the one home of the blocks' names, offsets
and sizes (and so of ``n_params``). Numba-free: config validation reads the registry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Part:
    """A registered part: its name, what selects it (``selects(system, wf)`` of the
    system and wavefunction config sections, or of ``System`` and the wavefunction
    section; ``selected_by`` says it in config words for messages), the smallest
    dimension it supports, and its blocks (a function of (n_visible, n_hidden))."""

    name: str
    selects: object
    selected_by: str
    min_dimensions: int
    blocks: object


# Block sizes the part modules read too (one home: here, numba-free)
N_PAIR_KINDS = 2  # Padé betas: antiparallel, parallel
WIDTH_AXES = 2  # variational widths: [delta_xy, delta_z]


def needs_determinants(system) -> bool:
    """Fermions beyond two: for P = 2 the determinants of one orbital are constants."""
    return system.statistics == "fermions" and system.particles > 2


PARTS = (  # each part's blocks: (name, shape) of its parameters, given (M, N)
    Part(
        "rbm",
        lambda sy, wf: True,
        "always",
        1,  # rbm.py
        lambda M, N: (("a", (M,)), ("b", (N,)), ("W", (M, N))),
    ),
    Part(
        "widths",
        lambda sy, wf: wf.variational_widths,  # rbm.py: the
        "wavefunction.variational_widths: true",
        1,  # RBM's Gaussian
        lambda M, N: (("width_shift", (WIDTH_AXES,)),),
    ),
    Part(
        "pade",
        lambda sy, wf: wf.jastrow == "pade",
        "wavefunction.jastrow: pade",
        2,
        lambda M, N: (("jastrow_beta", (N_PAIR_KINDS,)),),
    ),  # pair_jastrow.py
    Part(
        "hard_sphere",
        lambda sy, wf: wf.jastrow == "hard_sphere",
        "wavefunction.jastrow: hard_sphere",
        1,
        lambda M, N: (),
    ),  # pair_jastrow.py
    Part(
        "slater",
        lambda sy, wf: needs_determinants(sy),
        "system.statistics: fermions",
        1,
        lambda M, N: (("orbital_scale", (1,)),),
    ),  # slater.py
)


# The pair parts: one of them at most (one key, wavefunction.jastrow, selects it); the
# kernels take the present one in the same argument.
PAIR_PARTS = ("pade", "hard_sphere")


@dataclass(frozen=True)
class Block:
    """One named parameter array: theta[offset : offset + size].reshape(shape)."""

    part: str
    name: str
    offset: int
    shape: tuple

    @property
    def size(self) -> int:
        return math.prod(self.shape)  # exact: no int64 wrap for an absurd config


@dataclass(frozen=True)
class Layout:
    """Where every part's parameters sit in the flat vector theta."""

    n_visible: int  # M = P*D
    n_hidden: int  # N
    parts: tuple = ("rbm",)  # names of the present parts, in PARTS order

    @classmethod
    def from_config(cls, system, wf_cfg) -> "Layout":
        """The layout asked for by a system (``config.SystemConfig`` or ``System``) and
        a ``config.WaveFunctionConfig``."""
        names = tuple(p.name for p in PARTS if p.selects(system, wf_cfg))
        return cls(system.particles * system.dimensions, wf_cfg.hidden, names)

    @property
    def blocks(self) -> tuple:
        out, offset = [], 0
        for part in PARTS:
            if part.name in self.parts:
                for name, shape in part.blocks(self.n_visible, self.n_hidden):
                    out.append(Block(part.name, name, offset, tuple(shape)))
                    offset += out[-1].size
        return tuple(out)

    def part_offset(self, part: str) -> int:
        """Where the part's block starts in theta (a part without parameters: where it
        would start)."""
        offset = 0
        for p in PARTS:
            if p.name == part:
                return offset
            if p.name in self.parts:
                offset += self.part_size(p.name)
        raise KeyError(part)

    def part_size(self, part: str) -> int:
        return sum(b.size for b in self.blocks if b.part == part)

    @property
    def n_params(self) -> int:
        return sum(b.size for b in self.blocks)

    @property
    def n_rbm(self) -> int:
        return self.part_size("rbm")

    @property
    def n_jastrow(self) -> int:
        return self.part_size("pade")

    def block(self, theta: np.ndarray, name: str) -> np.ndarray:
        """View of one named block of theta (writing it writes theta)."""
        b = next(b for b in self.blocks if b.name == name)
        return theta[b.offset : b.offset + b.size].reshape(b.shape)

    def split(self, theta: np.ndarray):
        """Views (a (M,), b (N,), W (M, N)) into theta."""
        return tuple(self.block(theta, name) for name in ("a", "b", "W"))

    def betas(self, theta: np.ndarray) -> np.ndarray:
        """View of the Jastrow betas ((n_jastrow,), empty without the factor)."""
        return self.block(theta, "jastrow_beta") if "pade" in self.parts else theta[:0]

    def join(self, *arrays, **named) -> np.ndarray:
        """theta from its blocks, given in block order (a, b, W, jastrow_beta) or by
        name (a=..., b=..., W=..., jastrow_beta=...)."""
        named.update(zip((b.name for b in self.blocks), arrays))
        return np.concatenate([np.ravel(named[b.name]) for b in self.blocks]).astype(np.float64)

    def initial(self, scale: float, rng: np.random.Generator, beta: float = 1.0) -> np.ndarray:
        """The start: every RBM parameter ~ Normal(0, scale^2), drawn in block order;
        the Jastrow betas = beta; the orbital scale 1; the blocks of any other part 0."""
        theta = np.zeros(self.n_params)
        rbm_start = self.part_offset("rbm")
        theta[rbm_start : rbm_start + self.n_rbm] = scale * rng.standard_normal(self.n_rbm)
        if "pade" in self.parts:
            self.betas(theta)[:] = beta
        if "slater" in self.parts:
            self.block(theta, "orbital_scale")[:] = 1.0
        return theta
