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

For chains that agree each check fires with probability about ``alpha`` (default
0.01) -- if the local energy has a finite variance that the chains' lengths have
reached. :func:`check_chains` is this plain check.

Heavy tails, and why the verdict winsorises. Without the electron-electron cusp (the
RBM alone) the local energy grows as ``1/r12`` where two electrons meet, while
``|psi|^2`` stays finite there: ``P(E_L > t) ~ P(r12 < 1/t) ~ t^-D``. In 2D the
variance of E_L diverges (logarithmically; in 3D the third moment does). The mean
still converges, but both limits above assume Gaussian chain means, and with a
``t^-2`` tail a single large E_L moves a chain's mean by ``k`` standard errors with a
probability ~``1/k^2`` per chain, not ``exp(-k^2/2)``; a chain that happens to draw
none of the tail has both a low mean and a low variance, so a large negative z. The
quick start (2 electrons in 2D, 32 chains of 32768) showed exactly that: two chains
at -4.6 and -4.1 standard errors and R-hat 1.000021 against its limit 1.000017,
chains that agree. Options weighed: a Bonferroni bound on the tail of the z's
measured from the E_L samples needs a model of that tail; rank-normalised R-hat
(Vehtari et al., Bayesian Analysis 16, 667 (2021)) needs the ranks of all samples
pooled, a global sort that the run's own summary cannot afford across ranks. We
winsorise instead: if every chain samples the same distribution, every *fixed*
function of the samples has the same mean in every chain, so the verdict tests the
means of ``min(max(x, lo), hi)`` with ``lo, hi = E -+ WINSOR_SD sd`` (mean and standard
deviation of all samples, the same bounds for every chain), with the autocorrelation
time of the winsorised series. Its variance is finite, so the chi-squared and
Bonferroni limits hold at a run's chain lengths; it needs only per-chain sums (the run
reduces them over ranks, :mod:`parallel_vmc.run.summary`); it changes nothing of a
light-tailed E_L (5 sd clip ~1e-6 of a Gaussian); and a chain that samples elsewhere
shifts the bulk and is still seen, with more power since the clipped variance is
smaller. What it cannot see, chains that differ only beyond 5 sd, the plain means
cannot judge at these lengths either. Measured on 60 sets of 32 chains x 8192 with a
1 % admixture of a ``t^-2`` tail: the plain z-check fired on 15 % of the agreeing sets,
the winsorised one on 2 %; with one chain shifted by 5 winsorised standard errors the
plain check found 20 % of them, the winsorised one 83 %.

:func:`chain_verdict` gives the one verdict that the run's summary and ``python -m
analysis`` print (:class:`ChainVerdict`): ``disagree`` when the winsorised R-hat is
beyond its limit or a winsorised chain mean is flagged; ``heavy_tail`` when only the
plain check fires (the tail, not the chains; the message says what removes the tail,
:func:`tail_cause`); else ``agree``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .autocorr import AutocorrResult, autocovariance_sums, integrated_time
from .blocking import BlockingResult, blocking, chi2_quantile
from .bootstrap import DEFAULT_SEED, BootstrapResult, bootstrap_mean

__all__ = [
    "ChainCheck",
    "ChainSummary",
    "ChainVerdict",
    "split_rhat",
    "split_half_sums",
    "rhat_from_half_sums",
    "check_chains",
    "chain_verdict",
    "chain_moments",
    "winsor_bounds",
    "winsorised_sums",
    "tail_cause",
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


def rhat_limit(tau: float, n_chains: int, n: int, alpha: float = 0.01) -> float:
    """The 1 - alpha point of split R-hat for n_chains agreeing chains of n samples
    with autocorrelation time tau (module docstring)."""
    h = n // 2
    m = 2 * n_chains
    q = chi2_quantile(1.0 - alpha, m - 1)
    return math.sqrt((h - 1) / h + max(float(tau), 1e-12) * q / ((m - 1) * h))


def z_limit(n_chains: int, alpha: float = 0.01) -> float:
    """Two-sided Bonferroni limit of n_chains z-scores at family-wise level alpha."""
    return math.sqrt(chi2_quantile(1.0 - alpha / n_chains, 1))


def flag_chains(means, variances, tau: float, n: int, alpha: float = 0.01) -> tuple:
    """(z (n_chains,), {chain: its z when flagged}) of chains of n samples with
    means and variances (ddof=1) of shape (n_chains,): each chain's z against the
    others, then the worst chain beyond :func:`z_limit` flagged and left out and the
    rest scored again, until none is beyond it."""
    means = np.asarray(means, dtype=np.float64)
    se2 = np.asarray(variances, dtype=np.float64) * max(float(tau), 1e-12) / n
    active = np.ones(means.size, dtype=bool)
    z = zz = _z_scores(means, se2, active)
    limit = z_limit(means.size, alpha)
    flagged = {}
    # Drop the worst and score again: one bad chain pulls the mean of the others,
    # which must not get good chains flagged with it.
    while active.sum() > 2:
        worst = int(np.argmax(np.where(active, np.abs(zz), -1.0)))
        if not abs(zz[worst]) > limit:
            break
        flagged[worst] = float(zz[worst])
        active[worst] = False
        zz = _z_scores(means, se2, active)
    return z, flagged


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


def _check(rhat: float, means, variances, tau: float, n: int, alpha: float) -> ChainCheck:
    """Both checks of chains of n samples from their split R-hat, their means and
    variances (n_chains,) and their autocorrelation time tau."""
    n_chains = len(means)
    if n_chains < 2:
        nan = float("nan")
        return ChainCheck(nan, nan, np.zeros(n_chains), nan, (), True, alpha)
    limit = rhat_limit(tau, n_chains, n, alpha)
    z, flagged_z = flag_chains(means, variances, tau, n, alpha)
    flagged = tuple(sorted(flagged_z))
    return ChainCheck(
        rhat,
        limit,
        z,
        z_limit(n_chains, alpha),
        flagged,
        not flagged and not (rhat > limit),
        alpha,
        flagged_z=tuple(flagged_z[c] for c in flagged),
    )


def check_chains(samples, tau: float | None = None, alpha: float = 0.01) -> ChainCheck:
    """The plain between-chain check of (n_chains, n_samples) samples, which assumes
    a finite variance (module docstring; :func:`chain_verdict` is what judges).

    tau : integrated autocorrelation time of the chains; estimated when None.
    """
    x = _as_2d(samples)
    if tau is None:
        tau = integrated_time(x).tau
    return _check(split_rhat(x), x.mean(axis=1), x.var(axis=1, ddof=1), tau, x.shape[1], alpha)


# ----------------------------------------------------------------------- the verdict
WINSOR_SD = 5.0  # the verdict's bounds: the mean -+ this many standard deviations
# What the verdict needs of each chain (chain_moments), in this order: of the
# winsorised samples the mean and variance, those of the first and of the second half;
# of the plain samples the mean and variance (every variance with ddof=1).
MOMENTS = (
    "mean",
    "variance",
    "half1_mean",
    "half1_variance",
    "half2_mean",
    "half2_variance",
    "plain_mean",
    "plain_variance",
)
AGREE, HEAVY_TAIL, DISAGREE = "agree", "heavy_tail", "disagree"


def winsor_bounds(mean: float, variance: float) -> tuple:
    """(lo, hi) = mean -+ WINSOR_SD standard deviations of all samples."""
    half = WINSOR_SD * math.sqrt(max(float(variance), 0.0))
    return float(mean) - half, float(mean) + half


def chain_moments(rows, bounds: tuple) -> np.ndarray:
    """The MOMENTS of each chain of rows (r, n) with the winsorised samples clipped to
    bounds (lo, hi): (r, len(MOMENTS)). One chain at a time (the work space of one
    chain), so that chains split over ranks give the numbers of all chains."""
    x = np.asarray(rows, dtype=np.float64)
    n = x.shape[1]
    h = n // 2
    out = np.empty((x.shape[0], len(MOMENTS)))
    for c, row in enumerate(x):
        w = np.clip(row, *bounds)
        for k, part in enumerate((w, w[:h], w[n - h :], row)):
            out[c, 2 * k : 2 * k + 2] = part.mean(), part.var(ddof=1)
    return out


def winsorised_sums(rows, bounds: tuple) -> np.ndarray:
    """What the verdict needs of rows (r, n) besides their moments, as sums that add
    up over groups of chains: [the chains' lag products of the winsorised samples
    (``autocovariance_sums``, n), the number of samples outside bounds] (n + 1,). One
    chain at a time."""
    x = np.asarray(rows, dtype=np.float64)
    out = np.zeros(x.shape[1] + 1)
    for row in x:
        out[:-1] += autocovariance_sums(np.clip(row, *bounds)[None, :])
        out[-1] += outside(row, bounds)
    return out


def outside(x, bounds: tuple) -> int:
    """How many samples of x lie outside bounds (lo, hi): those winsorising clips."""
    return int(np.count_nonzero((x < bounds[0]) | (x > bounds[1])))


@dataclass(frozen=True)
class ChainVerdict:
    """The one verdict on the chains (module docstring): level AGREE | HEAVY_TAIL |
    DISAGREE, the winsorised check that decides it and the plain one that would
    have, tau: the winsorised series' autocorrelation time, bounds (lo, hi), beyond:
    the samples outside them of n_samples in all."""

    level: str
    check: ChainCheck
    plain: ChainCheck
    tau: float
    bounds: tuple
    beyond: int
    n_samples: int

    def headline(self) -> str:
        """One line: the verdict and the numbers it rests on."""
        c = self.check
        if len(c.z) < 2:
            return "one chain: nothing to compare"
        rhat = "split R-hat {} (limit {})".format(*_pair(c.rhat, c.rhat_limit))
        if self.level == DISAGREE:
            return f"CHAINS DISAGREE: E_L winsorised, {rhat}; see the warning"
        worst = float(np.max(np.abs(c.z)))
        numbers = (
            f"E_L winsorised, {rhat} and every chain mean within {worst:.1f} standard "
            f"errors of the others' (limit {c.z_limit:.1f})"
        )
        if self.level == HEAVY_TAIL:
            return f"agree: {numbers}; a heavy tail misleads the plain check, see the note"
        return f"agree: {numbers}"

    def explanation(self, cause: str | None = None, walkers_per_rank=None) -> str | None:
        """The note (HEAVY_TAIL) or warning (DISAGREE) that says why and what to do;
        cause: :func:`tail_cause` of the run's config. None when the chains agree."""
        lo, hi = self.bounds
        share = 100.0 * self.beyond / max(self.n_samples, 1)
        tail = (
            f"{self.beyond} of {self.n_samples} samples ({share:.2g} %) lie beyond "
            f"[{lo:.6g}, {hi:.6g}], the mean -+ {WINSOR_SD:g} standard deviations"
        )
        if self.level == DISAGREE:
            return (
                "chains disagree: "
                + _fired(self.check, walkers_per_rank)
                + f" (E_L winsorised to [{lo:.6g}, {hi:.6g}], so not a heavy tail): the "
                "chains do not sample one distribution, and the error bar understates "
                "the error. Let them relax longer (raise sampler.thermalization) and look "
                "for walkers stuck on the ranks named; then run again"
            )
        if self.level == HEAVY_TAIL:
            return (
                "heavy tail of E_L, not disagreeing chains: the plain check, which assumes "
                "a finite variance, finds "
                + _fired(self.plain, walkers_per_rank)
                + f", but {tail}, and with those clipped to the bounds the chains agree "
                "(a chain that draws none of the rare large values has a low mean and a "
                "low variance). "
                + (cause or "The energy and its error bar stand; the error converges slowly.")
            )
        return None

    def as_dict(self) -> dict:
        """The verdict's numbers and level (JSON-able; in /summary too)."""
        return {
            "chains_verdict": self.level,
            "rhat_winsorised": float(self.check.rhat),
            "rhat_winsorised_limit": float(self.check.rhat_limit),
            "tau_winsorised": float(self.tau),
            "winsor_bounds": [float(b) for b in self.bounds],
            "beyond_bounds": int(self.beyond),
            "flagged_chains": [int(c) for c in self.check.flagged],
            "flagged_z": [float(z) for z in self.check.flagged_z],
            "z_limit": float(self.check.z_limit),
            "rhat_limit": float(self.plain.rhat_limit),
            "plain_flagged_chains": [int(c) for c in self.plain.flagged],
            "plain_flagged_z": [float(z) for z in self.plain.flagged_z],
        }


def _pair(a: float, b: float) -> tuple:
    """a and b as text, with the decimals that tell them apart when both are finite."""
    if all(isinstance(v, float) and math.isfinite(v) for v in (a, b)):
        return distinct(a, b)
    return f"{a:.5f}", f"{b:.5f}"


def distinct(a: float, b: float, digits: int = 5) -> tuple:
    """a and b with enough decimals to show that they differ (up to 12)."""
    while digits < 12 and f"{a:.{digits}f}" == f"{b:.{digits}f}" and a != b:
        digits += 1
    return f"{a:.{digits}f}", f"{b:.{digits}f}"


def _rank(chain: int, walkers_per_rank) -> str:
    if isinstance(walkers_per_rank, (int, np.integer)) and walkers_per_rank > 0:
        return f" (rank {chain // walkers_per_rank})"
    return ""


def _fired(c: ChainCheck, walkers_per_rank) -> str:
    """What a check found: R-hat beyond its limit and the chains it flagged."""
    parts = []
    if not c.rhat_ok:
        parts.append("split R-hat {} above its limit {}".format(*_pair(c.rhat, c.rhat_limit)))
    if c.flagged:
        chains = ", ".join(
            f"chain {k}{_rank(k, walkers_per_rank)} at {z:+.1f}"
            for k, z in zip(c.flagged, c.flagged_z)
        )
        parts.append(f"{chains} standard errors from the other chains (limit {c.z_limit:.1f})")
    return " and ".join(parts)


def chain_verdict(
    moments,
    n: int,
    tau: float,
    plain_tau: float,
    plain_rhat: float,
    bounds: tuple,
    beyond: int,
    alpha: float = 0.01,
) -> ChainVerdict:
    """The verdict on chains of n samples from their :func:`chain_moments` (n_chains,
    len(MOMENTS)) at bounds (lo, hi): tau, the winsorised series' autocorrelation
    time; plain_tau and plain_rhat, the plain samples' tau and split R-hat; beyond,
    the samples outside bounds. The run's summary gets these from reductions over
    ranks, ``summarize_chains`` from the whole array: one verdict."""
    m = np.asarray(moments, dtype=np.float64)
    rhat = float("nan")
    if m.shape[0] > 1:  # split_rhat's formula, the half-chains in its order
        half_means = np.concatenate([m[:, 2], m[:, 4]])
        half_vars = np.concatenate([m[:, 3], m[:, 5]])
        rhat = _rhat(half_vars.mean(), half_means.var(ddof=1), n // 2)
    check = _check(rhat, m[:, 0], m[:, 1], tau, n, alpha)
    plain = _check(plain_rhat, m[:, 6], m[:, 7], plain_tau, n, alpha)
    level = DISAGREE if not check.ok else HEAVY_TAIL if not plain.ok else AGREE
    return ChainVerdict(level, check, plain, float(tau), tuple(bounds), int(beyond), m.shape[0] * n)


def tail_cause(config) -> str | None:
    """Where a heavy tail of E_L comes from in the system of config (a run's resolved
    config as a dict) and what removes it; None when the config names no such cause.

    Coulomb without the Padé factor: E_L ~ 1/r12 at contact (no cusp), ``P(E_L > t) ~
    t^-D``. Fermions beyond two: E_L ~ 1/d at distance d from a node of the
    determinants, ``P(E_L > t) ~ t^-3``, a tail no factor removes. 1D Coulomb has an
    infinite mean, reported on its own."""
    config = config if isinstance(config, dict) else {}
    sy, wf = config.get("system") or {}, config.get("wavefunction") or {}
    dims, particles = sy.get("dimensions"), sy.get("particles")
    if not (isinstance(dims, int) and isinstance(particles, int)) or dims < 2:
        return None
    if sy.get("interaction") == "coulomb" and particles > 1 and wf.get("jastrow") != "pade":
        return (
            "The trial function has no electron-electron cusp: E_L grows as 1/r12 where "
            "two particles meet, so its variance diverges"
            + (" (logarithmically in 2D)" if dims == 2 else " (in 3D its third moment)")
            + ". Add the cusp-exact Pade-Jastrow factor, wavefunction.jastrow: pade (or "
            "--set wavefunction.jastrow=pade): E_L stays finite, and the variance and "
            "the error bar shrink"
        )
    if sy.get("statistics") == "fermions" and particles > 2:
        return (
            "Near the nodes of the Slater determinants E_L grows as 1/(distance to the "
            "node): a tail that no factor removes. The energy and its error bar stand"
        )
    return None


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
    rhat: float  # split R-hat of the plain samples (nan for a single chain)
    rhat_limit: float  # its limit for a finite variance (the plain check's)
    chains_ok: bool  # the verdict is not DISAGREE
    flagged_chains: tuple  # chains the verdict (winsorised) flags
    error_chains: float  # std of chain means / sqrt(n_chains) (nan for one chain)
    blocking: BlockingResult = field(repr=False)
    bootstrap: BootstrapResult = field(repr=False)
    autocorr: AutocorrResult = field(repr=False)
    verdict: ChainVerdict = field(repr=False)

    @property
    def check(self) -> ChainCheck:
        """The plain check (no allowance for heavy tails)."""
        return self.verdict.plain

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
            **self.verdict.as_dict(),
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
    The chains are judged by :func:`chain_verdict` (``verdict``, ``chains_ok``).

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
    variance = float(x.var(ddof=1)) if x.size > 1 else 0.0
    bounds = winsor_bounds(x.mean(), variance)
    verdict = chain_verdict(
        chain_moments(x, bounds),
        n,
        integrated_time(np.clip(x, *bounds)).tau,
        ac.tau,
        split_rhat(x),
        bounds,
        outside(x, bounds),
        alpha,
    )
    check = verdict.plain
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
        chains_ok=verdict.level != DISAGREE,
        flagged_chains=verdict.check.flagged,
        error_chains=error_chains,
        blocking=b,
        bootstrap=boot,
        autocorr=ac,
        verdict=verdict,
    )
    return summary
