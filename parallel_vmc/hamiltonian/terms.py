"""The registry of the Hamiltonian's terms (numba-free: config validation reads it).

``H = sum_p ( -1/2 nabla_p^2 + V_ext(r_p) ) + sum_{p<q} V_int(r_pq)``. A term fills a
role: ``external`` (one per run: the one-body potential, ``system.trap`` selects it) or
``interaction`` (``system.interaction`` selects it: Coulomb, hard spheres or none).

The contract of an external term: its module holds a parameter ``NamedTuple`` (scalars
only, as the kernels take it), ``params(system)`` building it from a ``System``, and a
plain function ``energy(prm, x, D)``, its contribution to the local energy at x
(P*D,), which numba compiles inline where the kernel asks for the external term
(``hamiltonian.compose.external_energy``, chosen by the parameters' type). VMC needs no
gradient of a potential; a term whose sampler would (DMC's drift needs none either)
adds it to this contract. The interactions are spelled out in the kernel (Coulomb
from the pair part's distance table where there is one; a hard core rejects moves).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """A registered term: name (its config value), role ("external" |
    "interaction"), the module (under ``parallel_vmc.hamiltonian``) holding its
    parameters and formulas, its label in the summary given a ``System``, and the
    dimensions D it is offered in, with why not in the others (the config refuses
    the term there, saying so)."""

    name: str
    role: str
    module: str
    label: object
    dimensions: tuple = (1, 2, 3)
    why_not: str = ""  # why the term is not offered in the other dimensions

    def offered_in(self, dimensions: int) -> bool:
        return dimensions in self.dimensions

    def implementation(self):
        """The term's module (imported on first use: it compiles with numba)."""
        return importlib.import_module(f"{__package__}.{self.module}")


TERMS = (
    Term("harmonic", "external", "trap", lambda sy: _trap_label(sy)),
    Term(
        "coulomb",
        "interaction",
        "coulomb",
        lambda sy: "coulomb",
        dimensions=(2, 3),
        # <1/|x_p - x_q|> = int |psi|^2 / |x| dx diverges at x = 0 unless psi vanishes
        # there, as no trial function of this program does for every pair
        why_not="1/|x| is not integrable in 1D, so the energy of any wave function that "
        "does not vanish at contact diverges",
    ),
    Term(
        "hard_sphere",
        "interaction",
        "hard_core",
        lambda sy: f"hard spheres a={sy.hard_sphere_radius:g}",
    ),
    Term("none", "interaction", "", lambda sy: "no interaction"),
)


def _trap_label(sy) -> str:
    """'omega=1' or 'omega=1 omega_z=2.83'."""
    z = sy.omega_z is not None and sy.omega_z != sy.omega
    return f"omega={sy.omega:g}" + (f" omega_z={sy.omega_z:g}" if z else "")


def names(role: str) -> tuple:
    """The config values of the terms of a role, in registry order."""
    return tuple(t.name for t in TERMS if t.role == role)


def offered(role: str, dimensions: int) -> tuple:
    """The config values of the terms of a role offered in that dimension."""
    return tuple(t.name for t in TERMS if t.role == role and t.offered_in(dimensions))


def term(role: str, name: str) -> Term:
    """The registered term of that role and name."""
    return next(t for t in TERMS if t.role == role and t.name == name)
