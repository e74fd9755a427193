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

With ``wavefunction.jastrow: pade`` the trial function is multiplied by a Padé–Jastrow
factor, ``psi = F^c exp(J)``, ``J = sum_{p<q} f(r_pq)``, ``f(r) = A r / (1 + beta r)``,
whose derivatives are

* ``f'(r) = A / (1 + beta r)^2``, ``f''(r) = -2 A beta / (1 + beta r)^3``;
* ``nabla_p J = sum_{q != p} f'(r_pq) (x_p - x_q) / r_pq``;
* ``nabla_p^2 J = sum_{q != p} [ f''(r_pq) + (D-1) f'(r_pq) / r_pq ]``;
* ``d J / d beta_k = - sum_{pairs of kind k} A r^2 / (1 + beta_k r)^2``.

The cusp ``A`` is fixed so that the kinetic energy cancels the ``1/r_pq`` of the
Coulomb repulsion at coalescence: ``A = 1/(D-1)`` for antiparallel spins and
``1/(D+1)`` for parallel ones (2D: 1 and 1/3; 3D: 1/2 and 1/4). Spins are those of a
closed-shell state: particles ``0 .. ceil(P/2)-1`` up, the rest down. ``beta`` is
variational, one value per kind of pair: ``[beta_antiparallel, beta_parallel]``.

This module is the one home of these formulas. The jitted functions here are called
by the Monte Carlo kernels (``kernels.py``) and by the tests; they take ``inv_s2 =
1/sigma^2`` and the cached sigmoids ``s`` so the kernels can update ``u`` incrementally.
The variational parameters form one flat vector ``theta = [a (M), b (N), W (M*N)]``
(``W`` row-major, ``W[i, j]`` couples visible ``i`` to hidden ``j``), followed by
``[beta_anti, beta_para]`` with the Jastrow factor; ``sigma`` is fixed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .system import pair_distance


def psi_exponent(psi: str) -> float:
    """c in psi = F^c: 0.5 for 'sqrt', 1.0 for 'full'."""
    return {"sqrt": 0.5, "full": 1.0}[psi]


def exact_sigma(omega: float, psi: str) -> float:
    """The width that makes a = W = 0 the exact non-interacting ground state.

    |psi|^2 = F^{2c} = exp(-c |x|^2 / sigma^2) must equal exp(-omega |x|^2), so
    sigma^2 = c / omega: 1/(2 omega) for sqrt, 1/omega for full.
    """
    return float(np.sqrt(psi_exponent(psi) / omega))


N_PAIR_KINDS = 2       # antiparallel, parallel


@dataclass(frozen=True)
class Layout:
    """Where a, b, W (and the Jastrow betas) sit in the flat parameter vector theta."""

    n_visible: int   # M = P*D
    n_hidden: int    # N
    n_jastrow: int = 0   # 0, or N_PAIR_KINDS with the Padé-Jastrow factor

    @property
    def n_rbm(self) -> int:
        return self.n_visible + self.n_hidden + self.n_visible * self.n_hidden

    @property
    def n_params(self) -> int:
        return self.n_rbm + self.n_jastrow

    def split(self, theta: np.ndarray):
        """Views (a (M,), b (N,), W (M, N)) into theta; writing them writes theta."""
        M, N = self.n_visible, self.n_hidden
        return theta[:M], theta[M:M + N], theta[M + N:self.n_rbm].reshape(M, N)

    def betas(self, theta: np.ndarray) -> np.ndarray:
        """View of the Jastrow betas (shape (n_jastrow,), empty without the factor)."""
        return theta[self.n_rbm:]

    def join(self, a, b, W, beta=()) -> np.ndarray:
        return np.concatenate([np.ravel(a), np.ravel(b), np.ravel(W),
                               np.ravel(beta)]).astype(np.float64)

    def initial(self, scale: float, rng: np.random.Generator,
                beta: float = 1.0) -> np.ndarray:
        """Random start: every RBM parameter ~ Normal(0, scale^2); the betas = beta."""
        theta = np.full(self.n_params, float(beta))
        theta[:self.n_rbm] = scale * rng.standard_normal(self.n_rbm)
        return theta


@dataclass(frozen=True)
class WaveFunction:
    """The fixed (non-variational) description of the trial function."""

    layout: Layout
    sigma: float
    psi: str            # "sqrt" | "full"
    jastrow: str = "none"   # "none" | "pade"
    cusp: np.ndarray = None       # (P, P) A_pq (0 on the diagonal), with pade
    pair_kind: np.ndarray = None  # (P, P) int64: 0 antiparallel, 1 parallel

    @property
    def c(self) -> float:
        return psi_exponent(self.psi)

    @property
    def inv_s2(self) -> float:
        return 1.0 / (self.sigma * self.sigma)

    @classmethod
    def from_config(cls, wf_cfg, system) -> "WaveFunction":
        sigma = wf_cfg.sigma if wf_cfg.sigma is not None else exact_sigma(system.omega, wf_cfg.psi)
        pade = wf_cfg.jastrow == "pade"
        layout = Layout(system.n_coords, wf_cfg.hidden, N_PAIR_KINDS if pade else 0)
        cusp, kind = (pade_cusps(system.particles, system.dimensions) if pade
                      else (np.zeros((0, 0)), np.zeros((0, 0), dtype=np.int64)))
        return cls(layout, float(sigma), wf_cfg.psi, wf_cfg.jastrow, cusp, kind)


def spins(P: int) -> np.ndarray:
    """Closed-shell spin assignment: 0 (up) for the first ceil(P/2) particles, 1 after."""
    return (np.arange(P) >= (P + 1) // 2).astype(np.int64)


def pade_cusps(P: int, D: int):
    """(A, kind): cusp A_pq of every pair (0 on the diagonal) and its kind (0 for
    antiparallel, 1 for parallel spins), both (P, P)."""
    if D < 2:
        raise ValueError("the Padé-Jastrow cusp 1/(D-1) needs D >= 2")
    s = spins(P)
    kind = (s[:, None] == s[None, :]).astype(np.int64)
    A = np.where(kind == 1, 1.0 / (D + 1), 1.0 / (D - 1))
    np.fill_diagonal(A, 0.0)
    return A, kind


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


@njit(cache=True, inline="always")
def visible_mean_given_hidden(a, W, h, out):
    """out_i = a_i + sum_j W_ij h_j: the mean of x_i | h, which is Normal(mean, sigma^2)
    under the joint weight exp(-E(x, h)) (complete the square of E in x). With
    P(h_j = 1 | x) = sigmoid(u_j) this is the Gibbs sampler of F = |psi|^2 for
    psi = sqrt(F). a, out: (M,); W: (M, N); h: (N,) of 0.0 / 1.0."""
    M, N = W.shape
    for i in range(M):
        m = a[i]
        for j in range(N):
            m += W[i, j] * h[j]
        out[i] = m


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


@njit(cache=True, inline="always")
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


@njit(cache=True, inline="always")
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


# --------------------------------------------------------------------------- Padé-Jastrow

@njit(cache=True, inline="always")
def _pair_distance(x, p, xp, q, D):
    """|x_p - x_q| with particle p at xp (shape (D,))."""
    r2 = 0.0
    for d in range(D):
        t = xp[d] - x[q * D + d]
        r2 += t * t
    return np.sqrt(r2)


@njit(cache=True)
def jastrow_log(x, P, D, beta, A, kind):
    """J = sum_{p<q} A_pq r_pq / (1 + beta_kind r_pq) for x of shape (P*D,)."""
    J = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            r = pair_distance(x, p, q, D)
            J += A[p, q] * r / (1.0 + beta[kind[p, q]] * r)
    return J


@njit(cache=True, inline="always")
def jastrow_move_delta(x, p, xp_new, P, D, beta, A, kind):
    """J(particle p at xp_new) - J(x): the O(P) change of one single-particle move."""
    dJ = 0.0
    for q in range(P):
        if q == p:
            continue
        rn2 = 0.0
        ro2 = 0.0
        for d in range(D):
            xq = x[q * D + d]
            tn = xp_new[d] - xq
            to = x[p * D + d] - xq
            rn2 += tn * tn
            ro2 += to * to
        rn = np.sqrt(rn2)
        ro = np.sqrt(ro2)
        bq = beta[kind[p, q]]
        # f(rn) - f(ro) over one common denominator: one division instead of two
        dJ += A[p, q] * (rn - ro) / ((1.0 + bq * rn) * (1.0 + bq * ro))
    return dJ


@njit(cache=True, inline="always")
def jastrow_particle_gradient(x, p, xp, P, D, beta, A, kind, out):
    """Add nabla_p J, with particle p at xp (shape (D,)), to out (shape (D,)); O(P)."""
    for q in range(P):
        if q == p:
            continue
        r = _pair_distance(x, p, xp, q, D)
        t = 1.0 + beta[kind[p, q]] * r
        fr = A[p, q] / (t * t * r)         # f'(r) / r
        for d in range(D):
            out[d] += fr * (xp[d] - x[q * D + d])


@njit(cache=True, inline="always")
def jastrow_grad_lap(x, P, D, beta, A, kind, grad):
    """Add nabla J to grad (shape (P*D,)); return sum_p nabla_p^2 J."""
    lap = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            r = pair_distance(x, p, q, D)
            a = A[p, q]
            inv_t = 1.0 / (1.0 + beta[kind[p, q]] * r)
            inv_r = 1.0 / r                          # two divisions per pair, not D + 3
            f1 = a * inv_t * inv_t                   # f'(r)
            f2 = -2.0 * beta[kind[p, q]] * f1 * inv_t     # f''(r)
            for d in range(D):
                g = f1 * inv_r * (x[p * D + d] - x[q * D + d])
                grad[p * D + d] += g
                grad[q * D + d] -= g
            lap += 2.0 * (f2 + (D - 1) * f1 * inv_r)     # the pair enters nabla_p^2, nabla_q^2
    return lap


@njit(cache=True)
def jastrow_beta_derivatives(x, P, D, beta, A, kind, out):
    """d J / d beta_k for every kind k of pair into out (shape (N_PAIR_KINDS,))."""
    for k in range(out.shape[0]):
        out[k] = 0.0
    for p in range(P):
        for q in range(p + 1, P):
            r = pair_distance(x, p, q, D)
            k = kind[p, q]
            t1 = 1.0 + beta[k] * r
            out[k] -= A[p, q] * r * r / (t1 * t1)


@njit(cache=True, inline="always")
def kinetic_energy_jastrow(x, a, W, s, inv_s2, c, P, D, beta, A, kind, grad, lap):
    """-1/2 (nabla^2 psi)/psi for psi = F^c exp(J); grad, lap: (M,) work arrays."""
    grad_lap_log_psi(x, a, W, s, inv_s2, c, grad, lap)
    t = jastrow_grad_lap(x, P, D, beta, A, kind, grad)
    for i in range(x.shape[0]):
        t += lap[i] + grad[i] * grad[i]
    return -0.5 * t
