"""Automated blocking: the standard error of the mean of a correlated series.

Method (M. Jonsson, Phys. Rev. E 98, 043304 (2018)): the series is repeatedly
replaced by the averages of neighbouring pairs. At level ``k`` the data are
``n_k`` block means of ``2**k`` consecutive samples. For each level we record
the (1/n) variance ``s_k^2`` of the blocks and their lag-one autocovariance
``g_k``. Once the blocks are longer than the correlation time they are
uncorrelated, and then ``sqrt(n_k) g_k / s_k^2`` is approximately standard
normal. The statistic

    M_k = sum_{j >= k} n_j (g_j / s_j^2)^2

is therefore chi-squared with ``L - k`` degrees of freedom (``L`` levels in
total) when all levels from ``k`` on are uncorrelated. The chosen level is the
smallest ``k`` with ``M_k`` below the ``1 - alpha`` quantile of that
distribution; no look at the curve is needed.

Standard error at level ``k`` (the curve ``errors``): ``sqrt(s_k^2 / (n_k - 1))``
-- the blocks' sample variance with the unbiased ``n_k - 1`` divisor, divided by
``n_k`` (Jonsson's paper divides by ``n_k``; the two differ by the factor
``n_k / (n_k - 1)``, which matters only at high levels with few blocks).

Correction at the chosen level (``correct=True``, the default). The test accepts
a level once the correlation of neighbouring blocks is too small to be *detected*
with ``n_k`` blocks, not once it is zero: for a series with a long correlation
time the accepted blocks are typically only a few times longer than that time and
still correlated with their neighbours by ``r_k = g_k / s_k^2 ~ 0.1``, which makes
``errors[k]`` too small by several per cent (9 % for AR(1) with phi = 0.99 at
n = 2^18; 20 % at n = 2^14). Once blocks are longer than the correlation time,
only neighbouring blocks are still correlated (the correlation comes from the
samples near their common boundary), so the variance of the mean is
``s_k^2 / (n_k - 1) * (1 + 2 r_k)`` to first order. ``error`` carries that factor
(clipped to [0.5, 2]); ``error_uncorrected`` is ``errors[level]``, the plain
Jonsson value. On AR(1) series the corrected error is unbiased to about 1 %
(see tests/test_analysis_blocking.py), at a slightly larger scatter.

Lengths that are not a power of two
-----------------------------------
No data are thrown away up front. Level ``k`` consists of the
``n_k = floor(n / 2**k)`` complete blocks of ``2**k`` consecutive samples
counted from the start of the series; the fewer than ``2**k`` samples left over
at the end take no part in *that level's* variance and autocovariance
(equivalently: before each pairwise averaging an odd trailing element is
dropped). Levels run while ``n_k >= 2``. The reported mean is always the mean
of all ``n`` samples.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

MIN_BLOCKS = 16  # fewer blocks at the chosen level: result marked not converged
SHORT_BATCHES = 0.7  # batch-means error of E below this x its blocking error: batches
# shorter than the correlation time (the observables' errors too small)

__all__ = [
    "BlockingResult",
    "blocking",
    "blocking_levels",
    "chi2_quantile",
    "batches_too_short",
    "SHORT_BATCHES",
]


def batches_too_short(batch_error: float, blocking_error: float) -> bool:
    """Whether batch means of E give an error clearly below the blocking error of the
    same series: then the batches are correlated and every batch-means error (the
    observables') is underestimated. The one home of this rule."""
    return batch_error < SHORT_BATCHES * blocking_error


# ----------------------------------------------------------------------------
# chi-squared quantiles with the standard library only (no scipy at run time)
# ----------------------------------------------------------------------------
def _regularized_lower_gamma(a: float, x: float) -> float:
    """P(a, x) = gamma(a, x) / Gamma(a) by its power series or continued fraction."""
    if x <= 0.0:
        return 0.0
    log_pref = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        k = a
        for _ in range(10000):
            k += 1.0
            term *= x / k
            total += term
            if abs(term) < abs(total) * 1e-16:
                break
        return min(1.0, total * math.exp(log_pref))
    # Continued fraction for Q(a, x) (modified Lentz).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return max(0.0, 1.0 - math.exp(log_pref) * h)


@functools.lru_cache(maxsize=512)
def chi2_quantile(p: float, df: int) -> float:
    """The p-quantile of the chi-squared distribution with df degrees of freedom."""
    if not 0.0 < p < 1.0 or df < 1:
        raise ValueError(f"chi2_quantile needs 0 < p < 1 and df >= 1, got p={p}, df={df}")
    a = 0.5 * df
    lo, hi = 0.0, df + 20.0 * math.sqrt(2.0 * df) + 50.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _regularized_lower_gamma(a, 0.5 * mid) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


# ----------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockingResult:
    """Outcome of :func:`blocking`.

    mean      mean of all samples
    error     standard error of the mean at the chosen level (with the neighbour
              correction when correct=True; see the module docstring)
    error_uncorrected  errors[level], the plain blocking value
    level     chosen level k (blocks of 2**k samples)
    errors    standard error per level, the blocking curve (errors[0] is the naive one)
    n_blocks  blocks per level; block_sizes: 2**k per level
    statistic Jonsson's M_k per level; thresholds: its 1-alpha chi2 quantile per level
    converged False if no level passed the test (then the last level is used), or the
              chosen level has fewer than 16 blocks, or its neighbour correlation
              exceeds 0.5: the error is then at best a rough lower bound -- the
              series is too short for its correlation time; collect more data
    """

    mean: float
    error: float
    level: int
    errors: np.ndarray
    n: int
    variance: float
    n_blocks: np.ndarray = field(repr=False)
    block_sizes: np.ndarray = field(repr=False)
    statistic: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)
    converged: bool = True
    alpha: float = 0.01
    error_uncorrected: float = float("nan")
    neighbour_correlation: float = 0.0

    @property
    def block_size(self) -> int:
        return int(self.block_sizes[self.level])

    @property
    def tau(self) -> float:
        """Integrated autocorrelation time implied by the error: n error^2 / variance."""
        if self.variance <= 0.0:
            return 1.0
        return float(self.n * self.error**2 / self.variance)

    def as_dict(self) -> dict:
        return {
            "mean": float(self.mean),
            "error": float(self.error),
            "level": int(self.level),
            "block_size": self.block_size,
            "n": int(self.n),
            "error_uncorrected": float(self.error_uncorrected),
            "converged": bool(self.converged),
            "errors": [float(e) for e in self.errors],
        }


def blocking_levels(x: np.ndarray):
    """Per level: number of blocks, (1/n) variance, lag-one autocovariance.

    Follows the rule for lengths that are not a power of two (module docstring).
    Pure numpy; the work is ~2n operations in total.
    """
    y = np.asarray(x, dtype=np.float64)
    sizes, variances, gammas = [], [], []
    while y.size >= 2:
        m = y.size
        d = y - y.mean()
        sizes.append(m)
        variances.append(float(d @ d) / m)
        gammas.append(float(d[:-1] @ d[1:]) / m)
        if m % 2:
            y = y[:-1]
        y = 0.5 * (y[0::2] + y[1::2])
    return np.array(sizes, dtype=np.int64), np.array(variances), np.array(gammas)


def blocking(x, alpha: float = 0.01, correct: bool = True) -> BlockingResult:
    """Mean and standard error of the mean of a correlated 1-D series by automated blocking.

    Parameters
    ----------
    x : 1-D array of at least 4 finite samples (a time series, in order).
    alpha : significance level of the test that picks the block level (default 0.01,
        as in Jonsson's paper).
    correct : apply the first-order correction for the correlation of neighbouring
        blocks at the chosen level (module docstring); False gives plain Jonsson.

    Returns a :class:`BlockingResult`: ``mean``, ``error``, ``level`` (blocks of
    ``2**level`` samples), ``errors`` (standard error for every level: the curve).

    Non-power-of-two lengths: level ``k`` uses the ``floor(n / 2**k)`` complete blocks
    of ``2**k`` samples from the start of the series; the leftover tail (< ``2**k``
    samples) is left out of that level only. The mean uses all samples.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"blocking needs a 1-D series, got shape {x.shape}")
    if x.size < 4:
        raise ValueError(f"blocking needs at least 4 samples, got {x.size}")
    if not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise ValueError(f"blocking: {bad} of {x.size} samples are not finite")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")

    n = x.size
    mean = float(x.mean())
    n_blocks, s2, gamma = blocking_levels(x)
    levels = n_blocks.size
    block_sizes = 2 ** np.arange(levels, dtype=np.int64)
    errors = np.sqrt(s2 / (n_blocks - 1))
    variance = float(s2[0] * n / (n - 1))

    if s2[0] == 0.0 or not np.all(s2 > 0.0):
        # Constant data (e.g. an exact wave function): the error is zero, level 0.
        zeros = np.zeros(levels)
        err = 0.0 if s2[0] == 0.0 else float(errors[0])
        return BlockingResult(
            mean,
            err,
            0,
            errors,
            n,
            variance,
            n_blocks,
            block_sizes,
            zeros,
            zeros,
            True,
            alpha,
            err,
            0.0,
        )

    terms = n_blocks * (gamma / s2) ** 2
    statistic = np.cumsum(terms[::-1])[::-1]  # M_k = sum_{j>=k} terms_j
    thresholds = np.array([chi2_quantile(1.0 - alpha, int(levels - k)) for k in range(levels)])
    passed = np.nonzero(statistic < thresholds)[0]
    if passed.size:
        level, converged = int(passed[0]), True
    else:
        level, converged = levels - 1, False
    r = float(gamma[level] / s2[level])
    if n_blocks[level] < MIN_BLOCKS or r > 0.5:
        # The test has no power with a handful of blocks, and a neighbour correlation
        # beyond 0.5 means the blocks are far from independent: do not trust the level.
        converged = False
    error = float(errors[level])
    if correct:
        error *= math.sqrt(min(2.0, max(0.5, 1.0 + 2.0 * r)))
    return BlockingResult(
        mean,
        error,
        level,
        errors,
        n,
        variance,
        n_blocks,
        block_sizes,
        statistic,
        thresholds,
        converged,
        alpha,
        float(errors[level]),
        r,
    )
