"""Autocorrelation function, integrated autocorrelation time, effective sample size.

``tau_int = 1 + 2 sum_{t>=1} rho(t)``, so that the variance of the mean of ``n``
correlated samples is ``variance * tau_int / n`` and ``n_eff = n / tau_int``
(an independent series has ``tau_int = 1``; AR(1) with coefficient ``phi`` has
``(1 + phi) / (1 - phi)``).

The sum is cut at a window ``M`` chosen self-consistently (A. D. Sokal, *Monte
Carlo methods in statistical mechanics*, 1996): the smallest ``M`` with
``M >= c * tau_int(M)``, ``c = 5`` by default. Summing the noisy tail of the
estimated ``rho`` would add variance without signal; stopping too early would
cut off correlation that is really there -- with ``c = 5`` the cut-off part is
``~exp(-c)`` for an exponential decay.

Several chains (a 2-D array, one chain per row) share one estimate: every chain
is centred on its own mean, the autocovariances are averaged over chains, and
``rho`` is that average normalised at lag 0. This is much less noisy than the
autocorrelation of the chain-averaged series (which has the same expected
``tau_int`` when the chains are independent copies of one process) because the
random cross-chain terms are left out.

A warning sign is kept in ``converged``: chains shorter than 50 tau_int give
biased (too small) estimates, because subtracting the sample mean forces the
estimated ``rho`` to sum to about zero; such results are marked not converged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

MIN_LENGTH_IN_TAU = 50  # chains shorter than this many tau: estimate marked not converged

__all__ = [
    "AutocorrResult",
    "autocovariance",
    "autocovariance_sums",
    "autocorrelation",
    "integrated_time",
    "time_from_autocovariance",
]


def _as_chains(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(
            f"expected a 1-D series or a 2-D (chains, samples) array, got shape {x.shape}"
        )
    if x.shape[1] < 2:
        raise ValueError(f"need at least 2 samples per chain, got {x.shape[1]}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{int(np.count_nonzero(~np.isfinite(x)))} samples are not finite")
    return x


def autocovariance(x) -> np.ndarray:
    """Chain-averaged autocovariance ``c(t)``, ``t = 0 .. n-1`` (divisor ``n``, FFT).

    The ``1/n`` divisor (not ``1/(n-t)``) keeps the estimate positive definite and
    its large-lag tail small.
    """
    x = _as_chains(x)
    n = x.shape[1]
    return _lag_products(x - x.mean(axis=1, keepdims=True)).mean(axis=0) / n


def _lag_products(d: np.ndarray) -> np.ndarray:
    """``sum_i d_i d_{i+t}``, t = 0 .. n-1, of each row of centred d (..., n), by FFT."""
    n = d.shape[-1]
    n_fft = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(d, n=n_fft, axis=-1)
    return np.fft.irfft(f.real**2 + f.imag**2, n=n_fft, axis=-1)[..., :n]


def autocovariance_sums(x) -> np.ndarray:
    """Sum over the chains of x (n_chains, n) of each chain's lag products
    ``sum_i d_i d_{i+t}``, ``t = 0 .. n-1`` (d: the chain less its own mean): (n,).

    One chain at a time, so the work space is that of one chain whatever their number;
    sums of groups of chains add up, and ``autocovariance`` of all of them is the total
    over ``n_chains * n`` (to round-off: the sum is taken in another order)."""
    x = _as_chains(x)
    total = np.zeros(x.shape[1])
    for row in x:
        total += _lag_products(row - row.mean())
    return total


def autocorrelation(x) -> np.ndarray:
    """Normalised autocorrelation ``rho(t) = c(t) / c(0)`` (all zeros but rho(0)=1 if constant)."""
    return _normalised(autocovariance(x))


def _normalised(c: np.ndarray) -> np.ndarray:
    """rho (n,) of the chain-averaged autocovariance c (n,)."""
    if c[0] <= 0.0:
        rho = np.zeros_like(c)
        rho[0] = 1.0
        return rho
    return c / c[0]


@dataclass(frozen=True)
class AutocorrResult:
    """tau: integrated autocorrelation time (samples); window: Sokal's M;
    n_eff: total effective samples (all chains); converged: False when no window
    satisfied M >= c tau or the chains are shorter than 50 tau (series too short:
    tau is then likely underestimated)."""

    tau: float
    window: int
    n_eff: float
    n_samples: int
    converged: bool
    rho: np.ndarray = field(repr=False)

    def as_dict(self) -> dict:
        return {
            "tau_int": float(self.tau),
            "window": int(self.window),
            "n_eff": float(self.n_eff),
            "converged": bool(self.converged),
        }


def integrated_time(x, c: float = 5.0) -> AutocorrResult:
    """Integrated autocorrelation time with Sokal's self-consistent window.

    x : 1-D series or 2-D (n_chains, n_samples); c : window factor (default 5).
    ``n_eff = n_chains * n_samples / tau``.
    """
    _check_window(c)
    x = _as_chains(x)
    return time_from_autocovariance(autocovariance(x), x.shape[0], c)


def _check_window(c: float) -> None:
    if c <= 0:
        raise ValueError(f"window factor c must be positive, got {c}")


def time_from_autocovariance(acov: np.ndarray, n_chains: int, c: float = 5.0) -> AutocorrResult:
    """:func:`integrated_time` of chains whose chain-averaged autocovariance (n,) is
    acov (``autocovariance``, or ``autocovariance_sums`` of all chains over
    ``n_chains * n``): what chains summed over groups (MPI ranks) need."""
    _check_window(c)
    acov = np.asarray(acov, dtype=np.float64)
    n = acov.size
    n_total = n_chains * n
    rho = _normalised(acov)
    if rho.size > 1 and np.all(rho[1:] == 0.0) and acov[0] <= 0.0:
        return AutocorrResult(1.0, 0, float(n_total), n_total, True, rho)
    taus = 2.0 * np.cumsum(rho) - 1.0  # tau(M) = 1 + 2 sum_{t=1}^{M} rho(t)
    lags = np.arange(rho.size)
    ok = np.nonzero(lags >= c * taus)[0]
    if ok.size:
        window, converged = int(ok[0]), True
    else:
        window, converged = int(rho.size - 1), False
    tau = float(taus[window])
    if n < MIN_LENGTH_IN_TAU * tau:
        # The estimated rho of a short series is pulled to zero (the mean is subtracted),
        # so a window is always found; below ~50 tau per chain tau is underestimated.
        converged = False
    tau_pos = max(tau, 1.0 / n_total)
    return AutocorrResult(tau, window, float(n_total / tau_pos), n_total, converged, rho)
