"""Many chains: the combined estimate, its error, and the between-chain check.

A production run holds ``samples`` of shape ``(n_chains, n_samples)``; chain
``c = rank * walkers_per_rank + walker``, all chains of equal length, started
from independent random streams and sampled with the same parameters.

Combined estimate. The chains are independent and of equal length, so the
grand mean equals the mean of the *chain-averaged series*
``y_t = (1/n_chains) sum_c x_{c,t}``, and the standard error of the grand mean is
exactly the standard error of the mean of ``y``. ``y`` is a stationary series with
the same autocorrelation time as a single chain and ``1/n_chains`` of its
variance, so one blocking analysis of ``y`` (``n_samples`` long) gives the error
of all ``n_chains * n_samples`` samples without any assumption on how the chains
relate beyond independence -- and without the noise of combining many short,
separately blocked chains. The bootstrap error uses the same series with blocks
of the blocking level. ``tau_int`` is estimated from the chain-averaged
autocovariance (see :mod:`analysis.autocorr`; same expected value as the
autocorrelation time of ``y``, less noisy).

Between-chain check. Independence makes ``y`` blind to chains that disagree:
a chain stuck elsewhere only shifts ``y`` by a constant. Two complementary checks:

* split R-hat (Gelman et al., *Bayesian Data Analysis*, 3rd ed.): each chain
  cut in two halves, ``R = sqrt(((h-1)/h W + B/h) / W)`` over the ``2 n_chains``
  half-chains of length ``h``. Its value for agreeing chains is ``1 + O(tau/h)``,
  so a fixed threshold such as 1.01 says nothing about disagreement *at the
  level of the error bar* when chains are long. We therefore flag
  ``rhat > rhat_limit``, the ``1 - alpha`` point of R-hat for agreeing chains,
  ``rhat_limit^2 = (h-1)/h + tau_int q / ((m-1) h)`` with ``q`` the
  ``1-alpha`` chi-squared quantile with ``m - 1 = 2 n_chains - 1`` degrees of
  freedom (the half-chain means scatter by their standard error,
  ``variance * tau_int / h``).
* per-chain z-scores: each chain's mean against the mean of the others, in
  units of their combined standard error (``variance_c * tau_int / n_samples``
  per chain); flagged beyond the two-sided Bonferroni limit for ``alpha``. The
  worst chain beyond the limit is flagged and left out, and the scores of the
  rest recomputed, until none is beyond it (so one broken chain, which pulls the
  mean of the others, does not drag good chains with it). This names the chains
  (and so the MPI ranks, ``chain // walkers_per_rank``) that disagree.

``chains_ok`` is False when either check fires; for chains that agree each check
fires with probability about ``alpha`` (default 0.01). ``ChainCheck.rhat_ok`` and
``flagged_z`` (each flagged chain's z when it was flagged) tell which: the report
(:mod:`analysis.cli`) says the chains disagree only when R-hat is beyond its limit; a
flagged chain with R-hat within it is a note about that chain (a heavy-tailed local
energy makes the per-chain variances, and so the z-scores, noisy; or one walker stuck).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .autocorr import AutocorrResult, integrated_time
from .blocking import BlockingResult, blocking, chi2_quantile
from .bootstrap import DEFAULT_SEED, BootstrapResult, bootstrap_mean

__all__ = [
    "ChainCheck",
    "ChainSummary",
    "split_rhat",
    "split_half_sums",
    "rhat_from_half_sums",
    "check_chains",
    "summarize_chains",
]


def _as_2d(samples) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"samples must be 1-D or (n_chains, n_samples), got shape {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 4:
        raise ValueError(f"need at least 4 samples per chain, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"{bad} of {x.size} samples are not finite")
    return x


def split_rhat(samples) -> float:
    """Split R-hat of (n_chains, n_samples) samples; nan for one chain or constant data."""
    x = _as_2d(samples)
    if x.shape[0] < 2:
        return float("nan")
    h = x.shape[1] // 2
    halves = np.concatenate([x[:, :h], x[:, x.shape[1] - h :]], axis=0)
    return _rhat(halves.var(axis=1, ddof=1).mean(), halves.mean(axis=1).var(ddof=1), h)


def _rhat(w: float, b_over_h: float, h: int) -> float:
    """R-hat of half-chains of length h: mean within variance w, variance of the
    half-chain means b_over_h; nan when w is not positive."""
    if not w > 0.0:
        return float("nan")
    return float(math.sqrt(((h - 1) / h * w + b_over_h) / w))


def split_half_sums(samples, shift: float) -> np.ndarray:
    """What split R-hat needs of (n_chains, n) samples, as sums over half-chains that
    add up over groups of chains (MPI ranks): (3,) = [sum of the half-chains'
    variances (ddof=1), sum of (half mean - shift), sum of (half mean - shift)^2].
    shift: any number near the mean (the grand mean), against round-off."""
    x = _as_2d(samples)
    n = x.shape[1]
    h = n // 2
    sums = np.zeros(3)
    for half in (x[:, :h], x[:, n - h :]):
        dev = half.mean(axis=1) - shift
        sums += (half.var(axis=1, ddof=1).sum(), dev.sum(), (dev * dev).sum())
    return sums


def rhat_from_half_sums(sums, n_chains: int, n: int) -> float:
    """:func:`split_rhat` of n_chains chains of n samples from the total over all chains
    of :func:`split_half_sums` (with one shift); nan for one chain."""
    if n_chains < 2:
        return float("nan")
    m = 2 * n_chains
    var_sum, dev, dev2 = sums
    return _rhat(var_sum / m, (dev2 - dev * dev / m) / (m - 1), n // 2)


def _z_scores(means, se2, active):
    """z of each chain's mean against the mean of the other active chains."""
    k = int(active.sum())
    tot_m = means[active].sum()
    tot_s = se2[active].sum()
    others_mean = (tot_m - np.where(active, means, 0.0)) / np.where(active, k - 1, k)
    others_se2 = (tot_s - np.where(active, se2, 0.0)) / np.where(active, k - 1, k) ** 2
    denom = np.sqrt(se2 + others_se2)
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, (means - others_mean) / safe, 0.0)


@dataclass(frozen=True)
class ChainCheck:
    rhat: float
    rhat_limit: float
    z: np.ndarray  # per-chain z-score of its mean against the others
    z_limit: float
    flagged: tuple  # indices of chains beyond z_limit
    ok: bool  # False if rhat > rhat_limit or any chain flagged
    alpha: float
    flagged_z: tuple = ()  # z of each flagged chain when it was flagged

    @property
    def rhat_ok(self) -> bool:
        """R-hat within its limit (True for a single chain, where it is undefined)."""
        return not (self.rhat > self.rhat_limit)


def check_chains(samples, tau: float | None = None, alpha: float = 0.01) -> ChainCheck:
    """Between-chain agreement of (n_chains, n_samples) samples (module docstring).

    tau : integrated autocorrelation time of the chains; estimated when None.
    """
    x = _as_2d(samples)
    n_chains, n = x.shape
    if n_chains < 2:
        return ChainCheck(
            float("nan"), float("nan"), np.zeros(n_chains), float("nan"), (), True, alpha
        )
    if tau is None:
        tau = integrated_time(x).tau
    tau = max(float(tau), 1e-12)
    rhat = split_rhat(x)
    h = n // 2
    m = 2 * n_chains
    q = chi2_quantile(1.0 - alpha, m - 1)
    rhat_limit = math.sqrt((h - 1) / h + tau * q / ((m - 1) * h))

    means = x.mean(axis=1)
    se2 = x.var(axis=1, ddof=1) * tau / n
    z_limit = math.sqrt(chi2_quantile(1.0 - alpha / n_chains, 1))
    z = _z_scores(means, se2, np.ones(n_chains, dtype=bool))
    # Flag the worst chain beyond the limit, drop it, repeat: one bad chain pulls the
    # mean of the others, which must not get good chains flagged with it.
    active = np.ones(n_chains, dtype=bool)
    flagged_z = {}
    zz = z
    while active.sum() > 2:
        worst = int(np.argmax(np.where(active, np.abs(zz), -1.0)))
        if not abs(zz[worst]) > z_limit:
            break
        flagged_z[worst] = float(zz[worst])
        active[worst] = False
        zz = _z_scores(means, se2, active)
    flagged = tuple(sorted(flagged_z))
    ok = not flagged and not (rhat > rhat_limit)
    return ChainCheck(
        rhat,
        rhat_limit,
        z,
        z_limit,
        flagged,
        ok,
        alpha,
        flagged_z=tuple(flagged_z[c] for c in flagged),
    )


@dataclass(frozen=True)
class ChainSummary:
    """Summary of (n_chains, n_samples) samples; see :func:`summarize_chains`."""

    mean: float
    error: float  # blocking error of the grand mean
    error_bootstrap: float  # block-bootstrap error of the grand mean
    variance: float  # sample variance of all samples (ddof=1)
    tau_int: float  # integrated autocorrelation time, samples
    n_eff: float  # n_samples / tau_int
    n_samples: int  # total samples used
    n_chains: int
    samples_per_chain: int
    rhat: float  # split R-hat (nan for a single chain)
    rhat_limit: float
    chains_ok: bool
    flagged_chains: tuple
    error_chains: float  # std of chain means / sqrt(n_chains) (nan for one chain)
    blocking: BlockingResult = field(repr=False)
    bootstrap: BootstrapResult = field(repr=False)
    autocorr: AutocorrResult = field(repr=False)
    check: ChainCheck = field(repr=False)

    @property
    def tau_blocking(self) -> float:
        """Autocorrelation time implied by the blocking error: n_samples error^2 / variance."""
        if not self.variance > 0.0:
            return 1.0
        return float(self.n_samples * self.error**2 / self.variance)

    def as_dict(self) -> dict:
        """Plain dict of the scalar fields (JSON-able; nan stays a float nan)."""
        return {
            "mean": float(self.mean),
            "error": float(self.error),
            "error_bootstrap": float(self.error_bootstrap),
            "error_uncorrected": float(self.blocking.error_uncorrected),
            "error_chains": float(self.error_chains),
            "variance": float(self.variance),
            "tau_int": float(self.tau_int),
            "tau_blocking": self.tau_blocking,
            "n_eff": float(self.n_eff),
            "n_samples": int(self.n_samples),
            "n_chains": int(self.n_chains),
            "samples_per_chain": int(self.samples_per_chain),
            "rhat": float(self.rhat),
            "rhat_limit": float(self.rhat_limit),
            "chains_ok": bool(self.chains_ok),
            "rhat_ok": bool(self.check.rhat_ok),
            "flagged_chains": [int(c) for c in self.flagged_chains],
            "flagged_z": [float(z) for z in self.check.flagged_z],
            "z_limit": float(self.check.z_limit),
            "blocking_level": int(self.blocking.level),
            "block_size": int(self.blocking.block_size),
            "blocking_converged": bool(self.blocking.converged),
            "tau_converged": bool(self.autocorr.converged),
        }


def summarize_chains(
    samples, n_boot: int = 1000, seed: int = DEFAULT_SEED, alpha: float = 0.01
) -> ChainSummary:
    """Combined mean, errors, tau_int, n_eff and between-chain check of MCMC chains.

    samples : (n_chains, n_samples) array (equal-length independent chains) or a
        1-D array (one chain). At least 4 finite samples per chain.
    n_boot, seed : bootstrap replicates and seed (deterministic).
    alpha : significance of the blocking test and of the chain checks.

    The error is the blocking error of the chain-averaged series; see the module
    docstring for why that is the error of the grand mean. ``tau_blocking`` in
    :meth:`ChainSummary.as_dict` is the autocorrelation time that error implies,
    a cross-check of ``tau_int``.
    """
    x = _as_2d(samples)
    n_chains, n = x.shape
    y = x.mean(axis=0)
    b = blocking(y, alpha=alpha)
    boot = bootstrap_mean(y, block_size=b.block_size, n_boot=n_boot, seed=seed)
    ac = integrated_time(x)
    check = check_chains(x, tau=ac.tau, alpha=alpha)
    variance = float(x.var(ddof=1)) if x.size > 1 else 0.0
    error_chains = (
        float(x.mean(axis=1).std(ddof=1) / math.sqrt(n_chains)) if n_chains > 1 else float("nan")
    )
    summary = ChainSummary(
        mean=float(x.mean()),
        error=b.error,
        error_bootstrap=boot.error,
        variance=variance,
        tau_int=ac.tau,
        n_eff=ac.n_eff,
        n_samples=int(x.size),
        n_chains=n_chains,
        samples_per_chain=n,
        rhat=check.rhat,
        rhat_limit=check.rhat_limit,
        chains_ok=check.ok,
        flagged_chains=check.flagged,
        error_chains=error_chains,
        blocking=b,
        bootstrap=boot,
        autocorr=ac,
        check=check,
    )
    return summary
