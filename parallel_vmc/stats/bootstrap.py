"""Block bootstrap for means and for functions of means.

The series is cut into non-overlapping blocks of ``block_size`` consecutive
samples (the block size of the blocking analysis: blocks that long are
effectively independent). A bootstrap replicate draws ``n_blocks`` blocks with
replacement; its estimate is ``func`` of the replicate's means. The error is the
standard deviation of the replicates, the interval their percentiles.

Derived quantities are functions of means of one or more series, evaluated
vectorised over replicates:

* variance: series ``(x - c, (x - c)**2)`` with ``func = lambda m1, m2: m2 - m1**2``
  (:func:`bootstrap_variance` does this, ``c`` = the sample mean for accuracy);
* a ratio ``<A>/<B>``: series ``(A, B)`` with ``func = lambda a, b: a / b``.

Leftover samples: a tail of fewer than ``block_size`` samples at the end is not
used by the replicates (the reported ``estimate`` uses all samples). When there
would be more than ``max_blocks`` blocks, neighbouring blocks are merged (block
size multiplied by a power of two) -- longer blocks are still independent, and
more blocks than replicates do not sharpen the error (its own relative precision
is about ``1/sqrt(2 n_boot)`` either way); this bounds memory and time.

Deterministic: the generator is ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

__all__ = ["BootstrapResult", "block_bootstrap", "bootstrap_mean", "bootstrap_variance"]

DEFAULT_SEED = 20180430


@dataclass(frozen=True)
class BootstrapResult:
    estimate: float  # func of the means of all samples
    error: float  # standard deviation of the replicates
    bias: float  # mean of replicates minus estimate
    ci_low: float  # percentile interval of the replicates
    ci_high: float
    block_size: int
    n_blocks: int
    n_boot: int
    seed: int
    replicates: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "estimate": float(self.estimate),
            "error": float(self.error),
            "bias": float(self.bias),
            "ci_low": float(self.ci_low),
            "ci_high": float(self.ci_high),
            "block_size": int(self.block_size),
            "n_blocks": int(self.n_blocks),
            "n_boot": int(self.n_boot),
            "seed": int(self.seed),
        }


def _stack(series) -> np.ndarray:
    if isinstance(series, np.ndarray) and series.ndim == 1:
        arr = series[None, :]
    elif isinstance(series, np.ndarray) and series.ndim == 2:
        arr = series
    else:
        arr = np.array([np.asarray(s, dtype=np.float64) for s in series])
        if arr.ndim != 2:
            raise ValueError("series of a bootstrap must all be 1-D and of equal length")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.shape[1] < 2:
        raise ValueError(f"bootstrap needs at least 2 samples, got {arr.shape[1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("bootstrap: series contain non-finite values")
    return arr


def block_bootstrap(
    series,
    func: Callable | None = None,
    block_size: int | None = None,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    ci: float = 0.68,
    max_blocks: int = 4096,
) -> BootstrapResult:
    """Block bootstrap of ``func(mean of series_1, ..., mean of series_k)``.

    series : one 1-D array, a 2-D array (k, n), or a sequence of k 1-D arrays of
        equal length n (sampled together: the same blocks are drawn for all).
    func : called with k arrays of shape (n_boot,) (the replicate means) and must
        return an array of shape (n_boot,); also called once with k floats for the
        estimate. Default: the mean of the single series.
    block_size : samples per block; None takes the level chosen by automated
        blocking of the first series (``2**level``).
    n_boot, seed : number of replicates, seed of ``numpy.random.default_rng``.
    ci : central probability of the percentile interval.
    """
    data = _stack(series)
    k, n = data.shape
    if func is None:
        if k != 1:
            raise ValueError("give func when bootstrapping more than one series")
        func = lambda m: m  # noqa: E731
    if n_boot < 2:
        raise ValueError(f"n_boot must be at least 2, got {n_boot}")
    if block_size is None:
        from .blocking import blocking

        block_size = blocking(data[0]).block_size
    block_size = int(block_size)
    if not 1 <= block_size <= n // 2:
        raise ValueError(f"block_size must lie in [1, n/2] = [1, {n // 2}], got {block_size}")
    while n // block_size > max_blocks:
        block_size *= 2
    nb = n // block_size
    block_means = data[:, : nb * block_size].reshape(k, nb, block_size).mean(axis=2)

    rng = np.random.default_rng(seed)
    reps = np.empty((k, n_boot))
    chunk = max(1, (1 << 22) // nb)  # bound the index array to ~4M entries
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, nb, size=(stop - start, nb))
        for j in range(k):
            reps[j, start:stop] = block_means[j][idx].mean(axis=1)
    replicates = np.asarray(func(*reps), dtype=np.float64).reshape(n_boot)
    estimate = float(func(*[float(m) for m in data.mean(axis=1)]))
    lo, hi = np.quantile(replicates, [0.5 - ci / 2, 0.5 + ci / 2])
    return BootstrapResult(
        estimate,
        float(replicates.std(ddof=1)),
        float(replicates.mean() - estimate),
        float(lo),
        float(hi),
        block_size,
        nb,
        n_boot,
        seed,
        replicates,
    )


def bootstrap_mean(
    x, block_size: int | None = None, n_boot: int = 1000, seed: int = DEFAULT_SEED, **kw
) -> BootstrapResult:
    """Block-bootstrap error of the mean of a 1-D series."""
    return block_bootstrap(np.asarray(x, dtype=np.float64), None, block_size, n_boot, seed, **kw)


def bootstrap_variance(
    x, block_size: int | None = None, n_boot: int = 1000, seed: int = DEFAULT_SEED, **kw
) -> BootstrapResult:
    """Block-bootstrap of the (1/n) variance ``<x^2> - <x>^2`` of a 1-D series."""
    x = np.asarray(x, dtype=np.float64)
    if block_size is None:
        from .blocking import blocking

        block_size = blocking(x).block_size
    d = x - x.mean()
    return block_bootstrap((d, d * d), lambda m1, m2: m2 - m1 * m1, block_size, n_boot, seed, **kw)


def bootstrap_ratio(
    a: Sequence[float],
    b: Sequence[float],
    block_size: int | None = None,
    n_boot: int = 1000,
    seed: int = DEFAULT_SEED,
    **kw,
) -> BootstrapResult:
    """Block-bootstrap of ``<a> / <b>`` (a and b sampled together)."""
    return block_bootstrap((a, b), lambda ma, mb: ma / mb, block_size, n_boot, seed, **kw)


__all__.append("bootstrap_ratio")
