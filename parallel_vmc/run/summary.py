"""The production summary from reductions: every rank reduces its own chains, rank 0
makes the numbers of /summary out of the reduced sums.

Every figure the summary reports (those of ``analysis.summarize_chains`` for the
(n_chains, n) local energies x) decomposes over chains, so a rank needs only its own
rows (rows, n), three Allreduces of n + 2, n + 5 and n + 1 doubles and one gather of
a few numbers per chain:

1. the per-time-step sums of its chains (n,), the sum of all its samples and its
   number of chains: the chain-averaged series ``y_t = sum_c x_ct / n_chains``
   (blocking, bootstrap), the mean E and n_chains;
2. the sum over its chains of each chain's lag products (the autocovariance, so
   tau_int and n_eff), and, shifted by E against round-off, ``sum (x - E)^2``,
   ``sum (x - E)`` (the variance) and the half-chain sums of split R-hat;
3. for the verdict on the chains (``stats.chains.chain_verdict``: E_L winsorised at
   E -+ 5 standard deviations, which every rank knows after 2), the lag products of
   the winsorised chains and the number of samples outside the bounds, and each
   chain's moments (``chain_moments``: 8 numbers) gathered on rank 0.

Memory: the rank's rows and a few vectors of n doubles (one chain's FFT at a time),
whatever the number of chains, and on rank 0 8 doubles per chain. On one rank the
energy and the blocking error are the bits of ``summarize_chains`` (the same sums in
the same order); elsewhere every figure equals it to round-off.
"""

from __future__ import annotations

import numpy as np

from ..stats.autocorr import autocovariance_sums, time_from_autocovariance
from ..stats.blocking import blocking
from ..stats.bootstrap import bootstrap_mean
from ..stats.chains import (
    chain_moments,
    chain_verdict,
    rhat_from_half_sums,
    split_half_sums,
    tail_cause,
    winsor_bounds,
    winsorised_sums,
)

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


def summarize(comm, rows: np.ndarray, acceptance: float, config: dict | None = None):
    """The summary of all chains (collective): rows (r, n) this rank's chains (r may be
    0 on some ranks); config: the run's resolved config as a dict (the verdict's
    advice, the ranks it names). The summary dict on rank 0, None elsewhere."""
    n = rows.shape[1]
    first = comm.allreduce_sum(mean_sums(rows))
    n_chains = int(first[n + 1])
    energy = first[n] / (n_chains * n)
    second = comm.allreduce_sum(chain_sums(rows, energy))
    bounds = winsor_bounds(energy, variance(second[n : n + 2], n_chains * n))
    third = comm.allreduce_sum(winsorised_sums(rows, bounds))
    moments = comm.gather_uneven_rows(chain_moments(rows, bounds))
    if comm.rank != 0:
        return None
    s = figures(first[:n] / n_chains, energy, second, n_chains, acceptance)
    ac = time_from_autocovariance(third[:n] / (n_chains * n), n_chains)
    verdict = chain_verdict(moments, n, ac.tau, s["tau_int"], s["rhat"], bounds, int(third[n]))
    walkers = ((config or {}).get("sampler") or {}).get("walkers_per_rank")
    s.update(verdict.as_dict())
    s["chains"] = verdict.headline()
    s["chains_explanation"] = verdict.explanation(tail_cause(config), walkers) or ""
    return s


def variance(shifted: np.ndarray, n_total: int) -> float:
    """The variance (ddof=1) of n_total samples from [sum (x-E)^2, sum (x-E)]."""
    dev2, dev = shifted
    return float((dev2 - dev * dev / n_total) / (n_total - 1))


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
    return {
        "energy": float(energy),
        "error": b.error,
        "error_bootstrap": boot.error,
        "variance": variance(sums[n : n + 2], n_total),
        "tau_int": ac.tau,
        "n_eff": ac.n_eff,
        "n_samples": n_total,
        "rhat": rhat_from_half_sums(sums[n + 2 :], n_chains, n),
        "blocking_level": b.level,
        "n_chains": n_chains,
        "acceptance": acceptance,
    }
