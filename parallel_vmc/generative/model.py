"""Restricted Boltzmann machines as generative models: parameters, energies, conditionals.

The one home of the generative RBM's math. Two kinds, ``n_v`` visible and ``n_h``
binary hidden units, ``p(v, h) = exp(-E(v, h)) / Z``:

* ``binary``:   ``E = -a.v - b.h - v.W.h``, ``v in {0, 1}^n_v``;
* ``gaussian``: ``E = |v - a|^2 / (2 sigma^2) - b.h - v.W.h / sigma^2``, ``v in R^n_v``
  (sigma is fixed, one for all visibles: it is not trained).

With the hidden input ``u = b + v.W / s2`` (``s2 = sigma^2`` for gaussian, 1 for binary)
the hidden units are independent given v, ``p(h_j = 1 | v) = sigmoid(u_j)``, and summing
them out gives the free energy ``F(v)``, ``p(v) = exp(-F(v)) / Z``:

* binary:   ``F = -a.v - sum_j softplus(u_j)``;
* gaussian: ``F = |v - a|^2 / (2 sigma^2) - sum_j softplus(u_j)``.

Given h, the visibles are independent: binary ``p(v_i = 1 | h) = sigmoid(a_i + W_i.h)``;
gaussian ``v_i | h ~ Normal(a_i + W_i.h, sigma^2)`` (the same conditionals as the VMC
side's Gibbs sampler, ``wavefunction/rbm.py``, whose scalar ``softplus`` is used
here).

Signatures (V: (n, n_v) visible rows; H: (n, n_h) hidden rows; all float64):

    RBM(kind, a, b, W, sigma); RBM.init(kind, n_v, n_h, rng, scale=0.01, sigma=1.0)
    rbm.n_visible, rbm.n_hidden, rbm.copy(), rbm.theta() -> (n_v + n_h + n_v n_h,)
    RBM.from_theta(kind, theta, n_v, n_h, sigma)
    visible_bias_from_mean(kind, mean) -> (n_v,)   a matching the data's mean
    hidden_input(rbm, V) -> (n, n_h)         u = b + V W / s2
    p_hidden(rbm, V) -> (n, n_h)             sigmoid(u)
    visible_mean(rbm, H) -> (n, n_v)         binary sigmoid(a + H W^T); gaussian a + H W^T
    free_energy(rbm, V) -> (n,)
    energy(rbm, V, H) -> (n,)
    free_energy_grad_v(rbm, V) -> (n, n_v)   dF/dv (v treated as continuous)
    sigmoid(U), softplus_rows(U)             numba kernels on (n, m) arrays
    sigmoid_scalar(u)                        the same for one number (in jitted code)

The parameter vector ``theta = [a, b, W.ravel()]`` (W row-major) is what the optimisers
update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from ..wavefunction.rbm import softplus

KINDS = ("binary", "gaussian")


@dataclass
class RBM:
    """Parameters of one RBM: a (n_v,), b (n_h,), W (n_v, n_h); sigma fixed (1.0 for
    binary, where it is not used)."""

    kind: str
    a: np.ndarray
    b: np.ndarray
    W: np.ndarray
    sigma: float = 1.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown RBM kind {self.kind!r}; allowed: {', '.join(KINDS)}")

    @property
    def n_visible(self) -> int:
        return self.a.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.b.shape[0]

    @property
    def inv_s2(self) -> float:
        """1 / sigma^2 for gaussian, 1 for binary: the scale of v in the hidden input."""
        return 1.0 / (self.sigma * self.sigma) if self.kind == "gaussian" else 1.0

    def copy(self) -> "RBM":
        return RBM(self.kind, self.a.copy(), self.b.copy(), self.W.copy(), self.sigma)

    def theta(self) -> np.ndarray:
        """[a, b, W.ravel()]: (n_v + n_h + n_v n_h,)."""
        return np.concatenate([self.a, self.b, self.W.ravel()])

    @classmethod
    def from_theta(
        cls, kind: str, theta: np.ndarray, n_v: int, n_h: int, sigma: float = 1.0
    ) -> "RBM":
        """The RBM whose parameter vector is theta (copied)."""
        theta = np.asarray(theta, dtype=np.float64)
        return cls(
            kind,
            theta[:n_v].copy(),
            theta[n_v : n_v + n_h].copy(),
            theta[n_v + n_h :].reshape(n_v, n_h).copy(),
            float(sigma),
        )

    @classmethod
    def init(
        cls,
        kind: str,
        n_v: int,
        n_h: int,
        rng: np.random.Generator,
        scale: float = 0.01,
        sigma: float = 1.0,
    ) -> "RBM":
        """Small random weights Normal(0, scale^2), zero biases."""
        W = scale * rng.standard_normal((n_v, n_h))
        return cls(
            kind, np.zeros(n_v), np.zeros(n_h), W, float(sigma) if kind == "gaussian" else 1.0
        )


VISIBLE_PROB_FLOOR = 1e-3  # the data's mean is clipped to [floor, 1 - floor] (binary)


def visible_bias_from_mean(kind: str, mean: np.ndarray) -> np.ndarray:
    """Visible biases (n_v,) under which a model with W = 0 has the data's mean (n_v,)
    as its mean: binary the log-odds ln(p / (1 - p)), p clipped to [1e-3, 1 - 1e-3]
    (a pixel never or always on would need an infinite bias); gaussian the mean itself.
    (Hinton, "A practical guide to training RBMs", 2010, section 8.)"""
    mean = np.asarray(mean, dtype=np.float64)
    if kind == "gaussian":
        return mean.copy()
    p = np.clip(mean, VISIBLE_PROB_FLOOR, 1.0 - VISIBLE_PROB_FLOOR)
    return np.log(p) - np.log1p(-p)


# ------------------------------------------------------------------ array kernels


@njit(cache=True, inline="always")
def sigmoid_scalar(u):
    """The logistic function of one number, safe for any u: where exp(-u) overflows
    (u < -709.78) the result is 0 instead of a number below 1e-308. One exp and one
    division, no branch: the Gibbs sweeps' and the phases' inner loops spend most of
    their time here."""
    return 1.0 / (1.0 + np.exp(-u))


@njit(cache=True)
def sigmoid(U):
    """Elementwise logistic function of U (n, m)."""
    out = np.empty_like(U)
    for r in range(U.shape[0]):
        for c in range(U.shape[1]):
            out[r, c] = sigmoid_scalar(U[r, c])
    return out


@njit(cache=True)
def softplus_rows(U):
    """sum_j softplus(U[r, j]) for each row r: (n, m) -> (n,)."""
    out = np.zeros(U.shape[0])
    for r in range(U.shape[0]):
        acc = 0.0
        for c in range(U.shape[1]):
            acc += softplus(U[r, c])
        out[r] = acc
    return out


def _rows(X, n: int, name: str) -> np.ndarray:
    """X as a C-contiguous float64 (rows, n) array (a single row becomes (1, n))."""
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[None, :]
    if X.ndim != 2 or X.shape[1] != n:
        raise ValueError(f"{name}: expected shape (rows, {n}), got {X.shape}")
    return X


# ------------------------------------------------------------------ the model's math


def hidden_input(rbm: RBM, V) -> np.ndarray:
    """u = b + V W / s2: (n, n_v) -> (n, n_h) (one BLAS product)."""
    V = _rows(V, rbm.n_visible, "V")
    return rbm.b + (V @ rbm.W) * rbm.inv_s2


def p_hidden(rbm: RBM, V) -> np.ndarray:
    """p(h_j = 1 | v) = sigmoid(u_j): (n, n_v) -> (n, n_h)."""
    return sigmoid(hidden_input(rbm, V))


def visible_mean(rbm: RBM, H) -> np.ndarray:
    """E[v | h]: (n, n_h) -> (n, n_v). Binary: p(v_i = 1 | h) = sigmoid(a + W h);
    gaussian: the mean a + W h of Normal(., sigma^2)."""
    H = _rows(H, rbm.n_hidden, "H")
    m = rbm.a + H @ rbm.W.T
    return sigmoid(m) if rbm.kind == "binary" else m


def _visible_term(rbm: RBM, V: np.ndarray) -> np.ndarray:
    """The v-only part of E and F: -a.v (binary), |v - a|^2 / (2 sigma^2) (gaussian)."""
    if rbm.kind == "binary":
        return -(V @ rbm.a)
    d = V - rbm.a
    return 0.5 * rbm.inv_s2 * np.einsum("ij,ij->i", d, d)


def free_energy(rbm: RBM, V) -> np.ndarray:
    """F(v) with p(v) = exp(-F(v)) / Z: (n, n_v) -> (n,)."""
    V = _rows(V, rbm.n_visible, "V")
    return _visible_term(rbm, V) - softplus_rows(hidden_input(rbm, V))


def energy(rbm: RBM, V, H) -> np.ndarray:
    """E(v, h): (n, n_v), (n, n_h) -> (n,)."""
    V = _rows(V, rbm.n_visible, "V")
    H = _rows(H, rbm.n_hidden, "H")
    coupling = np.einsum("ij,ij->i", V @ rbm.W, H) * rbm.inv_s2
    return _visible_term(rbm, V) - H @ rbm.b - coupling


def free_energy_grad_v(rbm: RBM, V) -> np.ndarray:
    """dF/dv: (n, n_v) -> (n, n_v). Binary: -a - W s(u) (v as if continuous);
    gaussian: ((v - a) - W s(u)) / sigma^2 (the Langevin / MALA force is its negative)."""
    V = _rows(V, rbm.n_visible, "V")
    pulled = p_hidden(rbm, V) @ rbm.W.T
    if rbm.kind == "binary":
        return -rbm.a - pulled
    return (V - rbm.a - pulled) * rbm.inv_s2
