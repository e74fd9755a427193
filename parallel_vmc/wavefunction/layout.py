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

from ..runfile import schema as S


@dataclass(frozen=True)
class Part:
    """A registered part: everything the rest of the program needs to know of it.

    name: its registry name; selects(system, wf): whether a run has it (of the system
    and wavefunction config sections, or of ``System`` and the wavefunction section),
    ``selected_by`` saying it in config words for messages; min_dimensions: the smallest
    dimension it supports; blocks(M, N): the (name, shape) of its parameters; label: its
    name in the summary's product (``product_rank`` orders that product); start(theta,
    layout, scale, rng, beta): sets its block of a fresh theta; stored(wf, theta): the
    (name, value) pairs it stores in the run file's /wavefunction; drift_limit: Umrigar's
    drift limit it needs (the drift diverges at its nodes or cores; 0: none); role: the
    slot of ``compose.Parts`` it fills (one of :data:`ROLES`; empty for a block that
    another part reads, such as the RBM's widths); kernel_params: "module.function" in
    this package that builds its parameter tuple for the kernels, called as
    ``function(wave_function, offset of its block)`` (importing the module compiles
    nothing).
    """

    name: str
    selects: object
    selected_by: str
    min_dimensions: int
    blocks: object
    label: str
    product_rank: int
    start: object
    stored: object
    drift_limit: float = 0.0
    role: str = ""
    kernel_params: str = ""


# The slots of compose.Parts: one part at most per role ("rbm" always)
ROLES = ("rbm", "pair", "antisymmetric", "generic")

# Block sizes the part modules read too (one home: here, numba-free)
N_PAIR_KINDS = 2  # Padé betas: antiparallel, parallel
WIDTH_AXES = 2  # variational widths: [delta_xy, delta_z]


def psi_exponent(psi: str) -> float:
    """c in psi = F^c of the RBM part: 0.5 for 'sqrt', 1.0 for 'full'."""
    return {"sqrt": 0.5, "full": 1.0}[psi]


def exact_sigma(omega: float, psi: str) -> float:
    """The RBM width that makes a = W = 0 the exact non-interacting ground state.

    |psi|^2 = F^{2c} = exp(-c |x|^2 / sigma^2) must equal exp(-omega |x|^2), so
    sigma^2 = c / omega: 1/(2 omega) for sqrt, 1/omega for full.
    """
    return math.sqrt(psi_exponent(psi) / omega)


def needs_determinants(system) -> bool:
    """Fermions beyond two: for P = 2 the determinants of one orbital are constants."""
    return system.statistics == "fermions" and system.particles > 2


def _rbm_start(theta, layout, scale, rng, beta):
    """Every RBM parameter ~ Normal(0, scale^2), drawn in block order."""
    start = layout.part_offset("rbm")
    theta[start : start + layout.n_rbm] = scale * rng.standard_normal(layout.n_rbm)


def _set_block(name, value):
    """start(): the block ``name`` set to value (a number, or "beta" for beta)."""

    def start(theta, layout, scale, rng, beta):
        layout.block(theta, name)[:] = beta if value == "beta" else value

    return start


def _no_start(theta, layout, scale, rng, beta):
    """A part without parameters, or whose block starts at 0."""


def _rbm_stored(wf, theta):
    a, b, W = wf.layout.split(theta)
    return list(zip(S.WAVEFUNCTION_ARRAYS, (a, b, W, wf.sigma)))


PARTS = (  # each part's blocks: (name, shape) of its parameters, given (M, N)
    Part(
        "rbm",
        lambda sy, wf: True,
        "always",
        1,  # rbm.py
        lambda M, N: (("a", (M,)), ("b", (N,)), ("W", (M, N))),
        "RBM",
        1,
        _rbm_start,
        _rbm_stored,
        role="rbm",
        kernel_params="rbm.kernel_params",
    ),
    Part(
        "widths",
        lambda sy, wf: wf.variational_widths,  # rbm.py: the RBM's Gaussian
        "wavefunction.variational_widths: true",
        1,
        lambda M, N: ((S.WIDTH_SHIFT, (WIDTH_AXES,)),),
        "variational widths",
        2,
        _no_start,
        lambda wf, theta: [(S.WIDTH_SHIFT, wf.layout.block(theta, S.WIDTH_SHIFT))],
    ),
    Part(
        "pade",
        lambda sy, wf: wf.jastrow == "pade",
        "wavefunction.jastrow: pade",
        2,
        lambda M, N: (("jastrow_beta", (N_PAIR_KINDS,)),),  # pair_jastrow.py
        "Pade-Jastrow",
        3,
        _set_block("jastrow_beta", "beta"),
        lambda wf, theta: list(zip(S.JASTROW_ARRAYS, (wf.layout.betas(theta), wf.cusp))),
        role="pair",
        kernel_params="pair_jastrow.pade_kernel_params",
    ),
    Part(
        "hard_sphere",
        lambda sy, wf: wf.jastrow == "hard_sphere",
        "wavefunction.jastrow: hard_sphere",
        1,
        lambda M, N: (),  # pair_jastrow.py
        "hard-sphere (1 - a/r)",
        4,
        _no_start,
        lambda wf, theta: [],
        drift_limit=1.0,
        role="pair",
        kernel_params="pair_jastrow.hard_sphere_kernel_params",
    ),
    Part(
        "slater",
        lambda sy, wf: needs_determinants(sy),
        "system.statistics: fermions",
        1,
        lambda M, N: ((S.ORBITAL_SCALE, (1,)),),  # slater.py
        "Slater",
        0,
        _set_block(S.ORBITAL_SCALE, 1.0),
        lambda wf, theta: list(zip(S.SLATER_ARRAYS, (wf.orbitals(), wf.orbital_scale(theta)))),
        drift_limit=1.0,
        role="antisymmetric",
        kernel_params="slater.kernel_params",
    ),
    Part(
        "relative_gaussian",
        lambda sy, wf: wf.extra_factor == "relative_gaussian",
        "wavefunction.extra_factor: relative_gaussian",
        1,
        lambda M, N: (("relative_gaussian_g", (1,)),),  # relative_gaussian.py
        "relative Gaussian",
        5,
        _no_start,  # g = 0: psi as without it
        lambda wf, theta: [("relative_gaussian_g", wf.layout.block(theta, "relative_gaussian_g"))],
        role="generic",
        kernel_params="relative_gaussian.kernel_params",
    ),
)


# The pair parts: one of them at most (one key, wavefunction.jastrow, selects it); the
# kernels take the present one in the same argument.
PAIR_PARTS = tuple(p.name for p in PARTS if p.role == "pair")
# The parts of the generic slot: one of them at most (wavefunction.extra_factor)
GENERIC_PARTS = tuple(p.name for p in PARTS if p.role == "generic")


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
        """The start: every part sets its block (``Part.start``): the RBM's parameters
        ~ Normal(0, scale^2) in block order, the Jastrow betas = beta, the orbital scale
        1, any other block 0."""
        theta = np.zeros(self.n_params)
        for part in self.present():
            part.start(theta, self, scale, rng, beta)
        return theta

    def present(self) -> tuple:
        """The registered parts of this layout, in PARTS order."""
        return tuple(p for p in PARTS if p.name in self.parts)

    def product_label(self) -> str:
        """'Slater x RBM x Pade-Jastrow': the present parts as the product is written."""
        ordered = sorted(self.present(), key=lambda p: p.product_rank)
        return " x ".join(p.label for p in ordered)

    def drift_limit(self) -> float:
        """The drift limit the present parts need (0: none; see ``Part.drift_limit``)."""
        return max(p.drift_limit for p in self.present())
