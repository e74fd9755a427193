"""Production observables besides the energy: accumulated in the kernels, summarised here.

Every production sample (one sweep of one walker) adds to one row of a float64
accumulator of shape (n_batches, width). The row is the sample's *batch*: the
production sweeps of every chain are cut into ``n_batches`` consecutive, equally long
stretches of time, and batch ``k`` holds sweeps ``t`` with ``t * K // n_samples == k``
of all chains. Batch means of long batches are nearly independent, so the spread of
the ``K`` batch means gives the error of every observable (the batch-means method);
the driver compares that error for the energy with the blocking error of the full
series, which would expose batches that are too short.

Columns of a row (:class:`Layout`):

* ``COUNT`` samples; ``E``, ``E2``, ``KINETIC``, ``TRAP``, ``INTERACTION``: sums of the
  local energy, its square and its three parts (``E_L = T + V_trap + V_int``);
* ``R12``: sum of the sample's mean pair distance ``(1/n_pairs) sum_{p<q} r_pq``;
* the radial histogram of ``|r_p|`` (``n_radial`` bins of ``[0, r_max)``, then one
  overflow bin), all particles;
* for D = 2, the image of ``(x_p, y_p)`` (``n_image^2`` pixels of
  ``[-r_max, r_max)^2``, index ``ix * n_image + iy``, then an overflow bin);
* for P > 1, the histogram of the pair distances ``r_pq`` (``n_pair`` bins of
  ``[0, pair_max)``, then an overflow bin);
* for D = 3 with ``production.axial_density``, the histograms of
  ``rho_p = sqrt(x_p^2 + y_p^2)`` (``n_axial`` bins of ``[0, r_max)`` and an overflow
  bin) and of ``z_p`` (``n_axial`` bins of ``[-z_max, z_max)`` and an overflow bin,
  ``z_max = r_max sqrt(omega / omega_z)``: the cloud's extent along z).

Counts are integers held in float64, exact up to 2^53, so their sums do not depend on
the order of the reduction.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..hamiltonian.geometry import pair_distance
from ..jit.inline import inlined
from ..runfile import schema as S
from ..runfile.schema import shell_volumes
from .obs_layout import (
    COUNT,
    E2,
    INTERACTION,
    KINETIC,
    R12,
    SCALARS,
    TRAP,
    E,
    Layout,
)

ERROR_METHOD = "batch means over n_batches consecutive time batches of all chains"


"""The spec passed with an empty accumulator (no observables): same type, no bins."""


@njit(cache=True, inline="always")
def _bin(value, n, scale):
    """Bin of value in n equal bins of [0, n / scale); n (the overflow bin) outside
    or NaN."""
    t = value * scale
    if t >= 0.0 and t < n:
        return int(t)
    return n


@njit(cache=True, inline="always")
def batch_of(t, n_batches, n_samples):
    """The batch of production sweep t (0-based, per chain) of n_samples."""
    return t * n_batches // n_samples


@njit(cache=True, inline="always")
def batch_start(b, n_batches, n_samples):
    """The first sweep t of batch b: the least t with ``batch_of(t) >= b``, i.e.
    ceil(b n_samples / n_batches). The kernels step through the batches with it
    instead of dividing once per sample (a 64-bit division costs ~20 ns)."""
    return (b * n_samples + n_batches - 1) // n_batches


@inlined
def accumulate(obs, b, x, P, D, e, kin, trap, inter, spec):
    """Add one sample (configuration x of shape (P*D,), local energy e = kin + trap +
    inter) to row b of the accumulator obs (shape (n_batches, width)); spec: a
    :class:`HistogramSpec`. (Indexing obs[b, k] rather than taking a row view spares a
    reference-counted array object per sample.)"""
    obs[b, COUNT] += 1.0
    obs[b, E] += e
    obs[b, E2] += e * e
    obs[b, KINETIC] += kin
    obs[b, TRAP] += trap
    obs[b, INTERACTION] += inter
    n_r, n_img, r_max = spec.n_radial, spec.n_image, spec.r_max
    for p in range(P):
        r2 = 0.0
        for d in range(D):
            r2 += x[p * D + d] * x[p * D + d]
        obs[b, spec.off_radial + _bin(np.sqrt(r2), n_r, spec.r_scale)] += 1.0
        if n_img > 0:
            ix = _bin(x[p * D] + r_max, n_img, spec.img_scale)
            iy = _bin(x[p * D + 1] + r_max, n_img, spec.img_scale)
            pixel = ix * n_img + iy if ix < n_img and iy < n_img else n_img * n_img
            obs[b, spec.off_image + pixel] += 1.0
    if spec.n_pair > 0:
        total = 0.0
        for p in range(P):
            for q in range(p + 1, P):
                r = pair_distance(x, p, q, D)
                total += r
                obs[b, spec.off_pair + _bin(r, spec.n_pair, spec.p_scale)] += 1.0
        obs[b, R12] += total * spec.inv_pairs
    n_ax = spec.n_axial
    if n_ax > 0:  # D = 3: rho = sqrt(x^2 + y^2) and z
        for p in range(P):
            rho = np.sqrt(x[p * 3] * x[p * 3] + x[p * 3 + 1] * x[p * 3 + 1])
            obs[b, spec.off_axial + _bin(rho, n_ax, spec.r_scale)] += 1.0  # n_ax = n_r
            obs[b, spec.off_axial + n_ax + 1 + _bin(x[p * 3 + 2] + r_max, n_ax, spec.z_scale)] += (
                1.0
            )


def _batch_estimate(values: np.ndarray, counts: np.ndarray):
    """Mean and batch-means error of a quantity from per-batch sums.

    values: (K, ...) per-batch sums of the quantity; counts: (K,) samples per batch.
    Returns (mean over all samples, error), each of shape values.shape[1:].
    """
    used = counts > 0
    values, counts = values[used], counts[used]
    mean = values.sum(axis=0) / counts.sum()
    k = counts.size
    if k < 2:
        return mean, np.full_like(mean, np.nan)
    means = values / counts.reshape((-1,) + (1,) * (values.ndim - 1))
    return mean, means.std(axis=0, ddof=1) / math.sqrt(k)


def summarize(totals: np.ndarray, layout: Layout) -> dict:
    """The observables of a finished production from the reduced accumulator.

    totals: (n_batches, width). Returns {"attrs": {...}, "scalars": {name: {"batch_means"
    (K,), "mean", "error"}}, and "density", "density_image" (D = 2), "pair_distance"
    (P > 1), "density_xy" and "density_z" (D = 3, axial_density): {dataset name: array,
    "attrs": {...}}} as written to
    /production/observables.
    """
    n = totals[:, COUNT]
    used = n > 0
    samples = float(n.sum())
    P, D = layout.particles, layout.dimensions
    out = {
        "attrs": {
            "n_batches": int(used.sum()),
            "samples": int(samples),
            "error_method": ERROR_METHOD,
        },
        "scalars": {},
    }
    for name, col in SCALARS.items():
        if name == S.R12 and P < 2:
            continue
        mean, err = _batch_estimate(totals[:, col], n)
        out["scalars"][name] = {
            "batch_means": totals[used, col] / n[used],
            "mean": float(mean),
            "error": float(err),
        }

    def histogram(offset, n_bins, norm):
        counts = totals[:, offset : offset + n_bins]
        density, error = _batch_estimate(counts / norm, n)
        hist = dict(zip(S.HISTOGRAM_ARRAYS, (counts.sum(axis=0), density, error)))
        hist["attrs"] = {"overflow": float(totals[:, offset + n_bins].sum())}
        return hist

    edges = np.linspace(0.0, layout.r_max, layout.n_radial + 1)
    dens = histogram(layout.off_radial, layout.n_radial, shell_volumes(edges, D))
    dens.update(zip(S.HISTOGRAMS[S.DENSITY], (edges,)))
    dens["attrs"].update(
        r_max=layout.r_max,
        dimensions=D,
        particles=P,
        normalization="integral over space = particles",
    )
    out[S.DENSITY] = dens
    if layout.n_image:
        m = layout.n_image
        xy = np.linspace(-layout.r_max, layout.r_max, m + 1)
        img = histogram(layout.off_image, m * m, (xy[1] - xy[0]) ** 2)
        for key in S.HISTOGRAM_ARRAYS:
            img[key] = img[key].reshape(m, m)
        img.update(zip(S.HISTOGRAMS[S.DENSITY_IMAGE], (xy, xy.copy())))
        img["attrs"].update(normalization="integral over the plane = particles", index="[ix, iy]")
        out[S.DENSITY_IMAGE] = img
    if layout.n_pair:
        n_pairs = P * (P - 1) // 2
        p_edges = np.linspace(0.0, layout.pair_max, layout.n_pair + 1)
        pair = histogram(layout.off_pair, layout.n_pair, n_pairs * np.diff(p_edges))
        pair.update(zip(S.HISTOGRAMS[S.PAIR_DISTANCE], (p_edges,)))
        r12 = out["scalars"][S.R12]
        pair["attrs"].update(
            {S.MEAN: r12["mean"], S.ERROR: r12["error"]},
            normalization="probability density of r_pq, integral 1",
        )
        out[S.PAIR_DISTANCE] = pair
    if layout.n_axial:
        m = layout.n_axial
        rho_edges = np.linspace(0.0, layout.r_max, m + 1)
        xy = histogram(layout.off_axial, m, shell_volumes(rho_edges, 2))
        xy.update(zip(S.HISTOGRAMS[S.DENSITY_XY], (rho_edges,)))
        xy["attrs"].update(
            normalization="column density: integral over the x-y plane = particles",
            axis="rho = sqrt(x^2 + y^2)",
        )
        out[S.DENSITY_XY] = xy
        z_edges = np.linspace(-layout.z_half, layout.z_half, m + 1)
        z = histogram(layout.off_axial + m + 1, m, np.diff(z_edges))
        z.update(zip(S.HISTOGRAMS[S.DENSITY_Z], (z_edges,)))
        z["attrs"].update(normalization="linear density: integral over z = particles", axis="z")
        out[S.DENSITY_Z] = z
    return out
