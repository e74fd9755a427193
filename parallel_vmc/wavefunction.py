"""Gaussian-binary RBM trial wave function: parameter layout, ln psi and its derivatives.

The marginal of the RBM over its ``N`` binary hidden units is
``F(x) = exp(-|x-a|^2 / (2 sigma^2)) prod_j (1 + exp(u_j))``,
``u_j = b_j + sum_i x_i W_ij / sigma^2``, and the trial function is ``psi = F^c``:
``c = 1/2`` for ``psi: sqrt`` (then ``|psi|^2 = F`` is the RBM marginal) and ``c = 1``
for ``psi: full``. With ``s_j = sigmoid(u_j)`` (DESIGN section 1):

* ``ln psi        = c [ -|x-a|^2/(2 sigma^2) + sum_j softplus(u_j) ]``
* ``d_i ln psi    = c [ -(x_i-a_i) + sum_j W_ij s_j ] / sigma^2``
* ``d_i^2 ln psi  = c [ -1/sigma^2 + sum_j W_ij^2 s_j (1-s_j) / sigma^4 ]``
* ``d ln psi / d a_i = c (x_i-a_i)/sigma^2``, ``d/d b_j = c s_j``,
  ``d/d W_ij = c x_i s_j / sigma^2``.

This module is the one home of these formulas. The jitted functions here are called
by the Monte Carlo kernels (``kernels.py``) and by the tests; they take ``inv_s2 =
1/sigma^2`` and the cached sigmoids ``s`` so the kernels can update ``u`` incrementally.
The variational parameters form one flat vector ``theta = [a (M), b (N), W (M*N)]``
(``W`` row-major, ``W[i, j]`` couples visible ``i`` to hidden ``j``); ``sigma`` is fixed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit


def psi_exponent(psi: str) -> float:
    """c in psi = F^c: 0.5 for 'sqrt', 1.0 for 'full'."""
    return {"sqrt": 0.5, "full": 1.0}[psi]


def exact_sigma(omega: float, psi: str) -> float:
    """The width that makes a = W = 0 the exact non-interacting ground state.

    |psi|^2 = F^{2c} = exp(-c |x|^2 / sigma^2) must equal exp(-omega |x|^2), so
    sigma^2 = c / omega: 1/(2 omega) for sqrt, 1/omega for full.
    """
    return float(np.sqrt(psi_exponent(psi) / omega))


@dataclass(frozen=True)
class Layout:
    """Where a, b and W sit in the flat parameter vector theta."""

    n_visible: int   # M = P*D
    n_hidden: int    # N

    @property
    def n_params(self) -> int:
        return self.n_visible + self.n_hidden + self.n_visible * self.n_hidden

    def split(self, theta: np.ndarray):
        """Views (a (M,), b (N,), W (M, N)) into theta; writing them writes theta."""
        M, N = self.n_visible, self.n_hidden
        return theta[:M], theta[M:M + N], theta[M + N:].reshape(M, N)

    def join(self, a, b, W) -> np.ndarray:
        return np.concatenate([np.ravel(a), np.ravel(b), np.ravel(W)]).astype(np.float64)

    def initial(self, scale: float, rng: np.random.Generator) -> np.ndarray:
        """Random start: every parameter ~ Normal(0, scale^2)."""
        return scale * rng.standard_normal(self.n_params)


@dataclass(frozen=True)
class WaveFunction:
    """The fixed (non-variational) description of the trial function."""

    layout: Layout
    sigma: float
    psi: str            # "sqrt" | "full"

    @property
    def c(self) -> float:
        return psi_exponent(self.psi)

    @property
    def inv_s2(self) -> float:
        return 1.0 / (self.sigma * self.sigma)

    @classmethod
    def from_config(cls, wf_cfg, system) -> "WaveFunction":
        sigma = wf_cfg.sigma if wf_cfg.sigma is not None else exact_sigma(system.omega, wf_cfg.psi)
        return cls(Layout(system.n_coords, wf_cfg.hidden), float(sigma), wf_cfg.psi)


# --------------------------------------------------------------------------- jitted math

@njit(cache=True, inline="always")
def sigmoid_from_exp(e):
    """sigmoid(u) from e = exp(u), exact also when e overflowed to inf."""
    if e < 1e300:
        return e / (1.0 + e)
    return 1.0


@njit(cache=True)
def softplus(u):
    """ln(1 + exp(u)) without overflow."""
    if u > 0.0:
        return u + np.log1p(np.exp(-u))
    return np.log1p(np.exp(u))


@njit(cache=True)
def hidden_preactivations(x, b, W, inv_s2, u):
    """u_j = b_j + sum_i x_i W_ij / sigma^2 into u (shape (N,))."""
    M, N = W.shape
    for j in range(N):
        u[j] = b[j]
    for i in range(M):
        xi = x[i] * inv_s2
        for j in range(N):
            u[j] += xi * W[i, j]


@njit(cache=True)
def log_psi(x, a, b, W, inv_s2, c):
    """ln psi(x) for one configuration x (shape (M,))."""
    M, N = W.shape
    u = np.empty(N)
    hidden_preactivations(x, b, W, inv_s2, u)
    g = 0.0
    for i in range(M):
        t = x[i] - a[i]
        g += t * t
    s = 0.0
    for j in range(N):
        s += softplus(u[j])
    return c * (-0.5 * g * inv_s2 + s)


@njit(cache=True)
def grad_lap_log_psi(x, a, W, s, inv_s2, c, grad, lap):
    """Gradient d_i ln psi and diagonal second derivatives d_i^2 ln psi.

    x, a: (M,); W: (M, N); s: sigmoid(u), (N,); grad, lap: outputs of shape (M,).
    """
    M, N = W.shape
    for i in range(M):
        g = -(x[i] - a[i])
        l = 0.0
        for j in range(N):
            w = W[i, j]
            g += w * s[j]
            l += w * w * s[j] * (1.0 - s[j])
        grad[i] = c * g * inv_s2
        lap[i] = c * (-inv_s2 + l * inv_s2 * inv_s2)


@njit(cache=True, inline="always")
def particle_gradient(x, a, W, s, inv_s2, c, p, D, out):
    """d ln psi / d x for the D coordinates of particle p only (out: shape (D,))."""
    N = W.shape[1]
    for d in range(D):
        i = p * D + d
        g = -(x[i] - a[i])
        for j in range(N):
            g += W[i, j] * s[j]
        out[d] = c * g * inv_s2


@njit(cache=True)
def kinetic_energy(x, a, W, s, inv_s2, c):
    """-1/2 (nabla^2 psi)/psi = -1/2 sum_i [ d_i^2 ln psi + (d_i ln psi)^2 ]."""
    M, N = W.shape
    t = 0.0
    for i in range(M):
        g = -(x[i] - a[i])
        l = 0.0
        for j in range(N):
            w = W[i, j]
            ws = w * s[j]
            g += ws
            l += ws * w * (1.0 - s[j])
        g *= c * inv_s2
        t += c * (-inv_s2 + l * inv_s2 * inv_s2) + g * g
    return -0.5 * t


@njit(cache=True)
def parameter_derivatives(x, a, s, inv_s2, c, out):
    """O_k = d ln psi / d theta_k in the layout [a (M), b (N), W (M*N)] into out."""
    M = x.shape[0]
    N = s.shape[0]
    for i in range(M):
        out[i] = c * (x[i] - a[i]) * inv_s2
    for j in range(N):
        out[M + j] = c * s[j]
    k = M + N
    for i in range(M):
        xi = c * x[i] * inv_s2
        for j in range(N):
            out[k] = xi * s[j]
            k += 1


def sigmoids(x, b, W, inv_s2) -> np.ndarray:
    """sigmoid(u(x)) for one configuration (non-jitted convenience for tests/tools)."""
    u = np.empty(W.shape[1])
    hidden_preactivations(x, b, W, inv_s2, u)
    return 1.0 / (1.0 + np.exp(-u))
