"""The production summary from reductions: every rank reduces its own chains, rank 0
makes the numbers of /summary out of the reduced sums.

Every figure the summary reports (those of ``analysis.summarize_chains`` for the
(n_chains, n) local energies x) decomposes over chains, so a rank needs only its own
rows (rows, n) and two Allreduces of n + 2 and n + 5 doubles:

1. the per-time-step sums of its chains (n,), the sum of all its samples and its
   number of chains: the chain-averaged series ``y_t = sum_c x_ct / n_chains``
   (blocking, bootstrap), the mean E and n_chains;
2. the sum over its chains of each chain's lag products (the autocovariance, so
   tau_int and n_eff), and, shifted by E against round-off, ``sum (x - E)^2``,
   ``sum (x - E)`` (the variance) and the half-chain sums of split R-hat.

Memory: the rank's rows and a few vectors of n doubles (one chain's FFT at a time),
whatever the number of chains. On one rank the energy and the blocking error are the
bits of ``summarize_chains`` (the same sums in the same order); elsewhere every figure
equals it to round-off.
"""

from __future__ import annotations

import numpy as np

from ..stats.autocorr import autocovariance_sums, time_from_autocovariance
from ..stats.blocking import blocking
from ..stats.bootstrap import bootstrap_mean
from ..stats.chains import rhat_from_half_sums, split_half_sums

SHIFTED = 5  # sum (x-E)^2, sum (x-E), the three half-chain sums


def mean_sums(rows: np.ndarray) -> np.ndarray:
    """Reduction 1 of rows (r, n): [sum over the rows at each time (n), sum of all,
    r] (n + 2,)."""
    return np.concatenate([rows.sum(axis=0), [rows.sum(), rows.shape[0]]])


def chain_sums(rows: np.ndarray, energy: float) -> np.ndarray:
    """Reduction 2 of rows (r, n), chain by chain: [lag products summed over the chains
    (n), sum (x - E)^2, sum (x - E), split R-hat's half sums (3)]; energy: E, the
    mean of all chains (from reduction 1)."""
    n = rows.shape[1]
    out = np.zeros(n + SHIFTED)
    for row in rows:
        chain = row[None, :]
        dev = row - energy
        out[:n] += autocovariance_sums(chain)
        out[n : n + 2] += (dev @ dev, dev.sum())
        out[n + 2 :] += split_half_sums(chain, energy)
    return out


def summarize(comm, rows: np.ndarray, acceptance: float) -> dict | None:
    """The summary of all chains (collective): rows (r, n) this rank's chains (r may be
    0 on some ranks). The summary dict on rank 0, None elsewhere."""
    n = rows.shape[1]
    first = comm.allreduce_sum(mean_sums(rows))
    n_chains = int(first[n + 1])
    energy = first[n] / (n_chains * n)
    second = comm.allreduce_sum(chain_sums(rows, energy))
    if comm.rank != 0:
        return None
    return figures(first[:n] / n_chains, energy, second, n_chains, acceptance)


def figures(
    y: np.ndarray, energy: float, sums: np.ndarray, n_chains: int, acceptance: float
) -> dict:
    """The summary's numbers: y (n,) the chain-averaged series, energy the mean of all
    samples, sums (n + 5,) reduction 2 of all chains (:func:`chain_sums`)."""
    n = y.size
    n_total = n_chains * n
    b = blocking(y)
    boot = bootstrap_mean(y, block_size=b.block_size)
    ac = time_from_autocovariance(sums[:n] / n_total, n_chains)
    dev2, dev = sums[n : n + 2]
    return {
        "energy": float(energy),
        "error": b.error,
        "error_bootstrap": boot.error,
        "variance": float((dev2 - dev * dev / n_total) / (n_total - 1)),
        "tau_int": ac.tau,
        "n_eff": ac.n_eff,
        "n_samples": n_total,
        "rhat": rhat_from_half_sums(sums[n + 2 :], n_chains, n),
        "blocking_level": b.level,
        "n_chains": n_chains,
        "acceptance": acceptance,
    }
