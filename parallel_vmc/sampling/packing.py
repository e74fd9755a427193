"""Where fresh walkers start, and whether hard spheres can be placed there. Numba-free:
config validation asks it before any work (``kernels.init_positions`` places them, with
``placement.MAX_PLACEMENTS``).

A fresh walker's P*D coordinates are drawn from Normal(0, s^2), s = sigma / sqrt(2c):
the spread of |psi|^2 = F^{2c} of the RBM's Gaussian at its start (:func:`start_width`).
With a hard core (``system.interaction: hard_sphere``, no two particles closer than a:
spheres of diameter a) a particle drawn into the core of one placed before it is drawn
again, at most ``MAX_PLACEMENTS`` times; then the walker cannot start.

The packing criterion. The draws fall beyond the radius ``R = s sqrt(2 ln
MAX_PLACEMENTS)``, where the density of the draws is 1/MAX_PLACEMENTS of its peak, too
rarely for the last particles to be placed there: the spheres have to fit within the
ball of radius R. Their packing fraction in it, ``eta = P (a/2)^D / R^D``
(:func:`packing_fraction`), is what placement is limited by. Random sequential addition,
which this placement is, jams at eta 0.748 (1D), 0.547 (2D), 0.38 (3D) in a uniform
region; in the Gaussian cloud it fails earlier. Measured by bisection in eta with 64
walkers (``init_positions``, P = 2, 3, 5, 10, 30, 100, 300, 1000), placement first fails at

    1D  eta 0.75-0.78 (P = 2, 3), 0.54-0.59 (P = 5 ... 1000)
    2D  eta 0.42-0.52 (P = 2, 3), 0.34-0.43 (P = 5 ... 1000, 0.34 at 1000)
    3D  eta 0.33-0.37 (P = 2 ... 10), 0.24-0.29 (P = 30 ... 1000, 0.24 at 1000)

(lower for more particles: each placement is another chance to fail). The limit
``PACKING_LIMIT`` is 3/4 of the lowest of these; at it every one of 2048 walkers of
P = 2 ... 300, and of 256 walkers of P = 1000, started in each dimension. The config
check refuses a config beyond it; one within it that still fails to start (far more
particles or walkers than measured) is refused at the start of the run, before
anything is written, in one line naming the key as well.
"""

from __future__ import annotations

import math

from .placement import MAX_PLACEMENTS

REACH = math.sqrt(2.0 * math.log(MAX_PLACEMENTS))  # R / s: the draws' density 1/1000 of peak
PACKING_LIMIT = {1: 0.40, 2: 0.25, 3: 0.17}  # largest packing fraction eta accepted, by D


def start_width(wf) -> float:
    """s: the standard deviation of every start coordinate, that of |psi|^2 =
    exp(-c |x|^2 / sigma^2) of the RBM's Gaussian (a ``WaveFunction``)."""
    return wf.sigma / math.sqrt(2.0 * wf.c)


def packing_fraction(particles: int, dimensions: int, radius: float, width: float) -> float:
    """eta = P (a/2)^D / R^D: the fraction of the ball of radius R = REACH * width that
    P hard spheres of diameter a (the hard-core radius: no two centres closer) fill."""
    return particles * (0.5 * radius / (REACH * width)) ** dimensions


def largest_radius(particles: int, dimensions: int, width: float) -> float:
    """The hard-core radius at which P particles reach ``PACKING_LIMIT``."""
    return 2.0 * REACH * width * (PACKING_LIMIT[dimensions] / particles) ** (1.0 / dimensions)


def packing_problem(particles: int, dimensions: int, radius: float, width: float) -> str | None:
    """Why P particles with hard-core radius a cannot all start without overlaps in a
    cloud of this width (a message about ``system.hard_sphere_radius``), or None."""
    eta = packing_fraction(particles, dimensions, radius, width)
    limit = PACKING_LIMIT[dimensions]
    if eta <= limit * (1.0 + 1e-12):  # the bound itself, whatever its rounding
        return None
    most = math.floor(limit / eta * particles)
    return (
        f"system.hard_sphere_radius: {radius:g} is too large for {particles} particles in "
        f"{dimensions}D: {_density(particles, dimensions, radius, width)}, but they can be "
        f"placed without overlaps only up to a packing fraction of {limit:g}; allowed: "
        f"up to {_down(largest_radius(particles, dimensions, width))}"
        + (f", or at most {most} particles" if most >= 2 else "")
    )


def placement_failure(
    particles: int, dimensions: int, radius: float, width: float, failed: int, walkers: int
) -> str:
    """The message of a start that failed although the config passed
    :func:`packing_problem`: failed of walkers could not place their particles."""
    return (
        f"system.hard_sphere_radius: {radius:g}: {failed} of {walkers} walkers could not "
        f"place their {particles} particles without overlaps ({MAX_PLACEMENTS} draws "
        f"each); {_density(particles, dimensions, radius, width)}; allowed: a smaller "
        "radius or fewer particles"
    )


def _density(particles: int, dimensions: int, radius: float, width: float) -> str:
    """What the spheres fill of the starting cloud, in words."""
    eta = packing_fraction(particles, dimensions, radius, width)
    return (
        f"their hard spheres (diameter a) have a packing fraction of {eta:.3g} in the "
        f"ball of radius {REACH * width:.3g} where the walkers start (Gaussian width "
        f"{width:.3g})"
    )


def _down(x: float) -> str:
    """x rounded down to 3 significant digits: an allowed value as a bound."""
    digits = 2 - math.floor(math.log10(x))
    return f"{math.floor(x * 10**digits) / 10**digits:.{max(digits, 0)}f}"
