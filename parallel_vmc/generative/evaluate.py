"""Honest numbers for generative RBMs: exact log Z, log-likelihood and KL by enumeration,
annealed importance sampling (AIS) with an error bar for larger models, and the cheap
progress numbers (pseudo-likelihood, reconstruction error).

All formulas of the model (free energy, conditionals) come from :mod:`.model`; this module
only adds the sums over states and the annealing.

* Binary RBM: ``log Z`` enumerates the smaller side. Over v it is
  ``logsumexp_v(-F(v))``; over h it is the same sum for the *transposed* RBM
  (a <-> b, W -> W^T), whose free energy over h is the binary RBM's F with the roles
  swapped - so both use :func:`.model.free_energy`.
* Gaussian-binary RBM: the v-integral is Gaussian. For fixed h, with ``m = W h``,
  ``int dv exp(-|v-a|^2/(2 s2) + v.m/s2) = (2 pi s2)^(n_v/2) exp((|a+m|^2 - |a|^2)/(2 s2))``,
  so ``log Z = n_v/2 log(2 pi s2) + logsumexp_h [ b.h + (|a + W h|^2 - |a|^2) / (2 s2) ]``.
* AIS: the chain of RBMs ``a_k = (1-beta_k) a0 + beta_k a``, ``b_k = beta_k b``,
  ``W_k = beta_k W`` (sigma fixed) from the base-rate model (a0, 0, 0) at beta = 0, whose
  log Z is closed-form, to the model at beta = 1; each intermediate is itself an RBM, so
  the weights are free-energy differences and the transitions are its block Gibbs steps.
"""

from __future__ import annotations

import math

import numpy as np

from .model import RBM, free_energy, p_hidden, visible_bias_from_mean, visible_mean

__all__ = [
    "enumerate_states",
    "log_z_exact",
    "log_prob",
    "log_likelihood",
    "kl_divergence",
    "model_expectations",
    "AISResult",
    "ais_log_z",
    "base_rate_visible_bias",
    "pseudo_likelihood",
    "reconstruction_error",
    "MAX_ENUMERATE",
]

MAX_ENUMERATE = 26  # 2^26 states ~ 67M: a few seconds to a minute; beyond, use AIS
CHUNK = 1 << 15  # states per block of the enumeration (bounded memory)
LOG2PI = math.log(2.0 * math.pi)


# ------------------------------------------------------------------------- enumeration
def enumerate_states(n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Binary states number start..stop-1 of n units as rows: (stop-start, n) float64,
    bit i of the state number is unit i."""
    stop = 2**n if stop is None else stop
    idx = np.arange(start, stop, dtype=np.int64)[:, None]
    return ((idx >> np.arange(n, dtype=np.int64)) & 1).astype(np.float64)


def _logsumexp_chunks(n: int, log_weight) -> float:
    """log sum over all 2^n binary states s of exp(log_weight(S)), S a chunk (m, n) of
    states -> (m,), in chunks with a running maximum (no overflow, bounded memory)."""
    if n > MAX_ENUMERATE:
        raise ValueError(
            f"2^{n} states is too many to enumerate (max 2^{MAX_ENUMERATE}); use ais_log_z"
        )
    top, acc = -np.inf, 0.0
    for start in range(0, 2**n, CHUNK):
        lw = log_weight(enumerate_states(n, start, min(start + CHUNK, 2**n)))
        m = float(np.max(lw))
        if m > top:
            acc, top = acc * math.exp(top - m) if np.isfinite(top) else 0.0, m
        acc += float(np.sum(np.exp(lw - top)))
    return top + math.log(acc)


def _transposed(rbm: RBM) -> RBM:
    """The binary RBM with visibles and hiddens swapped: its F over h sums out v."""
    return RBM("binary", rbm.b, rbm.a, np.ascontiguousarray(rbm.W.T))


def _gaussian_hidden_log_weight(rbm: RBM, H: np.ndarray) -> np.ndarray:
    """log of int dv exp(-E(v, h)) without the (2 pi s2)^(n_v/2): (m, n_h) -> (m,)."""
    shifted = rbm.a + H @ rbm.W.T  # a + W h, (m, n_v)
    quad = np.einsum("ij,ij->i", shifted, shifted) - rbm.a @ rbm.a
    return H @ rbm.b + 0.5 * rbm.inv_s2 * quad


def log_z_exact(rbm: RBM, side: str = "auto") -> float:
    """Exact log Z. Binary: sum over 2^min(n_v, n_h) states (``side`` = "visible" or
    "hidden" forces one side, for tests). Gaussian: over the 2^n_h hidden states with
    v integrated analytically."""
    if rbm.kind == "gaussian":
        lz = _logsumexp_chunks(rbm.n_hidden, lambda H: _gaussian_hidden_log_weight(rbm, H))
        return lz + 0.5 * rbm.n_visible * (LOG2PI + 2.0 * math.log(rbm.sigma))
    if side == "auto":
        side = "visible" if rbm.n_visible <= rbm.n_hidden else "hidden"
    model = rbm if side == "visible" else _transposed(rbm)
    return _logsumexp_chunks(model.n_visible, lambda S: -free_energy(model, S))


def log_prob(rbm: RBM, V, log_z: float | None = None) -> np.ndarray:
    """log p(v) = -F(v) - log Z for the rows of V (n, n_v) -> (n,): the model's exact
    marginal (a density for gaussian visibles); log Z exact unless given."""
    log_z = log_z_exact(rbm) if log_z is None else log_z
    return -free_energy(rbm, V) - log_z


def log_likelihood(rbm: RBM, V, log_z: float | None = None) -> float:
    """Mean log p(v) over the rows of V (n, n_v); log Z exact unless given (e.g. from
    AIS)."""
    return float(np.mean(log_prob(rbm, V, log_z)))


def kl_divergence(rbm: RBM, patterns, probs, log_z: float | None = None) -> float:
    """Exact KL(data || model) = sum_x p(x) [log p(x) - log p_model(x)] for a data
    distribution given as patterns (K, n_v) with probabilities probs (K,)."""
    probs = np.asarray(probs, dtype=np.float64)
    log_model = log_prob(rbm, patterns, log_z)
    keep = probs > 0
    return float(np.sum(probs[keep] * (np.log(probs[keep]) - log_model[keep])))


def model_expectations(rbm: RBM) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact model averages <v> (n_v,), <h> (n_h,), <v h^T> (n_v, n_h) of a binary RBM
    by enumerating the visibles (the negative phase of the exact gradient)."""
    if rbm.kind != "binary":
        raise ValueError("model_expectations enumerates binary visibles only")
    V = enumerate_states(rbm.n_visible)
    logp = -free_energy(rbm, V)
    p = np.exp(logp - logp.max())
    p /= p.sum()
    P = p_hidden(rbm, V)
    return p @ V, p @ P, (V * p[:, None]).T @ P


# ---------------------------------------------------------------------------------- AIS
class AISResult(tuple):
    """(log_z, error, log_weights): the AIS estimate log Z0 + log mean exp(w), its
    delta-method standard error std(exp w) / (sqrt(M) mean(exp w)), and the M runs'
    log-weights w (M,) (their spread shows how reliable the estimate is)."""

    def __new__(cls, log_z, error, log_weights):
        return super().__new__(cls, (log_z, error, log_weights))

    log_z = property(lambda self: self[0])
    error = property(lambda self: self[1])
    log_weights = property(lambda self: self[2])


def base_rate_visible_bias(rbm: RBM, data=None, data_mean=None) -> np.ndarray:
    """The base-rate model's visible bias a0 (n_v,) from the data (n, n_v) or their
    column means data_mean (n_v,): ``model.visible_bias_from_mean`` (binary, the
    log-odds of the clipped means; gaussian, the means). Zeros without either."""
    if data_mean is None and data is None:
        return np.zeros(rbm.n_visible)
    if data_mean is None:
        data_mean = np.asarray(data, dtype=np.float64).mean(axis=0)
    return visible_bias_from_mean(rbm.kind, data_mean)


def _annealed(rbm: RBM, a0: np.ndarray, beta: float) -> RBM:
    """The intermediate RBM at inverse temperature beta between base and model."""
    return RBM(rbm.kind, (1.0 - beta) * a0 + beta * rbm.a, beta * rbm.b, beta * rbm.W, rbm.sigma)


def _base_log_z(rbm: RBM, a0: np.ndarray) -> float:
    """log Z of the base model (a0, b=0, W=0): hiddens free (2^n_h), visibles independent."""
    hidden = rbm.n_hidden * math.log(2.0)
    if rbm.kind == "gaussian":
        return hidden + 0.5 * rbm.n_visible * (LOG2PI + 2.0 * math.log(rbm.sigma))
    return hidden + float(np.sum(np.logaddexp(0.0, a0)))


def _sample_visible(model: RBM, H: np.ndarray, rng) -> np.ndarray:
    mean = visible_mean(model, H)
    if model.kind == "gaussian":
        return mean + model.sigma * rng.standard_normal(mean.shape)
    return (rng.random(mean.shape) < mean).astype(np.float64)


def _sample_base(rbm: RBM, a0: np.ndarray, runs: int, rng) -> np.ndarray:
    """Exact samples (runs, n_v) of the base model's visibles."""
    base = _annealed(rbm, a0, 0.0)
    return _sample_visible(base, np.zeros((runs, rbm.n_hidden)), rng)


def ais_log_z(
    rbm: RBM, runs: int = 100, betas=10_000, data=None, seed=0, data_mean=None
) -> AISResult:
    """Annealed importance sampling estimate of log Z, vectorised over ``runs``
    independent runs (numpy, one Python step per temperature).

    ``betas``: an int K (K+1 temperatures, linear in beta) or an increasing array from 0
    to 1. The base model is the base-rate model from ``data`` or ``data_mean`` (see
    :func:`base_rate_visible_bias`), or a0 = 0. Each step adds
    ``F_{k-1}(v) - F_k(v)`` to the log-weight and moves v by one block Gibbs step of the
    intermediate model k (which leaves it invariant). Returns :class:`AISResult`."""
    betas = (
        np.linspace(0.0, 1.0, int(betas) + 1)
        if np.ndim(betas) == 0
        else np.asarray(betas, dtype=np.float64)
    )
    if betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) <= 0):
        raise ValueError("betas must increase from 0 to 1")
    rng = np.random.default_rng(seed)
    a0 = base_rate_visible_bias(rbm, data, data_mean)
    V = _sample_base(rbm, a0, runs, rng)
    logw = np.zeros(runs)
    previous = _annealed(rbm, a0, 0.0)
    for beta in betas[1:]:
        current = _annealed(rbm, a0, beta)
        logw += free_energy(previous, V) - free_energy(current, V)
        H = (rng.random((runs, rbm.n_hidden)) < p_hidden(current, V)).astype(np.float64)
        V = _sample_visible(current, H, rng)
        previous = current
    return _ais_estimate(_base_log_z(rbm, a0), logw)


def _ais_estimate(log_z0: float, logw: np.ndarray) -> AISResult:
    """log Z0 + log mean exp(w) and its delta-method error (see AISResult)."""
    top = float(np.max(logw))
    w = np.exp(logw - top)
    mean = float(np.mean(w))
    error = float(np.std(w, ddof=1) / (math.sqrt(len(w)) * mean)) if len(w) > 1 else math.inf
    return AISResult(log_z0 + top + math.log(mean), error, logw)


# ---------------------------------------------------------------------- progress numbers
def pseudo_likelihood(rbm: RBM, V, rng=None) -> float:
    """Mean log pseudo-likelihood per sample, sum_i log p(v_i | v_-i), of a binary RBM
    on V (n, n_v); ``p(v_i | v_-i) = sigmoid(F(v with bit i flipped) - F(v))``.

    Full version (rng None): all n_v flips, n_v free-energy evaluations per row.
    Stochastic version (rng given): one random bit per row, times n_v (an unbiased
    estimate of the full one, cost of one evaluation)."""
    if rbm.kind != "binary":
        raise ValueError("pseudo-likelihood is defined here for binary RBMs only")
    V = np.asarray(V, dtype=np.float64)
    F = free_energy(rbm, V)
    n, d = V.shape
    if rng is not None:
        bits = rng.integers(0, d, size=n)
        flipped = V.copy()
        flipped[np.arange(n), bits] = 1.0 - flipped[np.arange(n), bits]
        return float(d * np.mean(-np.logaddexp(0.0, F - free_energy(rbm, flipped))))
    total = 0.0
    for i in range(d):
        flipped = V.copy()
        flipped[:, i] = 1.0 - flipped[:, i]
        total += float(np.sum(-np.logaddexp(0.0, F - free_energy(rbm, flipped))))
    return total / n


def reconstruction_error(rbm: RBM, V) -> float:
    """Mean over rows of sum_i (v_i - r_i)^2, the deterministic reconstruction
    r = E[v | h = p(h | v)] (probabilities, no sampling): (n, n_v) -> float."""
    V = np.asarray(V, dtype=np.float64)
    R = visible_mean(rbm, p_hidden(rbm, V))
    return float(np.mean(np.sum((V - R) ** 2, axis=1)))
