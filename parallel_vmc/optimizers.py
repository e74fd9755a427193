"""Parameter updates: pure functions of (theta, gradient, state, learning rate).

The state is a dict of numpy arrays and numbers, so it can be stored in a checkpoint
as plain datasets. Every rank applies the same update to the same allreduced gradient,
so parameters stay identical without a broadcast.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def initial_state(method: str, n_params: int) -> dict:
    """Fresh optimiser state for 'sgd' or 'adam'."""
    if method == "sgd":
        return {"velocity": np.zeros(n_params), "step": 0}
    if method == "adam":
        return {"m": np.zeros(n_params), "v": np.zeros(n_params), "step": 0}
    if method == "sr":
        return {"step": 0, "fallbacks": 0}
    raise ValueError(f"unknown optimizer {method!r}")


@njit(cache=True)
def sgd_step(theta, grad, velocity, lr, momentum):
    """The SGD-with-momentum arithmetic, in place on theta and velocity (all (n,)):
    v <- mu v - lr g; theta <- theta + v. The one home of the formula (``sgd`` and
    the generative trainer's jitted update both call it)."""
    for q in range(theta.shape[0]):
        velocity[q] = momentum * velocity[q] - lr * grad[q]
        theta[q] = theta[q] + velocity[q]


def adam_corrections(step: int) -> tuple:
    """Adam's bias corrections (1 - beta1^t, 1 - beta2^t) of update t (1-based)."""
    return 1.0 - ADAM_BETA1**step, 1.0 - ADAM_BETA2**step


@njit(cache=True)
def adam_step(theta, grad, m, v, lr, c1, c2):
    """The Adam arithmetic, in place on theta, m, v (all (n,)), with the bias
    corrections c1, c2 of ``adam_corrections``: m <- b1 m + (1-b1) g, v <- b2 v +
    (1-b2) g^2, theta <- theta - lr (m/c1) / (sqrt(v/c2) + eps). The one home of the
    formula (``adam`` and the generative trainer's jitted update both call it)."""
    for q in range(theta.shape[0]):
        g = grad[q]
        m[q] = ADAM_BETA1 * m[q] + (1.0 - ADAM_BETA1) * g
        v[q] = ADAM_BETA2 * v[q] + (1.0 - ADAM_BETA2) * g * g
        theta[q] = theta[q] - lr * (m[q] / c1) / (np.sqrt(v[q] / c2) + ADAM_EPS)


def _vector(x) -> np.ndarray:
    """A fresh C-contiguous float64 copy of x (n,)."""
    return np.array(x, dtype=np.float64, order="C", copy=True)


def sgd(theta, grad, state, lr, momentum=0.9):
    """Gradient descent with (heavy-ball) momentum: v <- mu v - lr g; theta <- theta + v
    (``sgd_step`` on copies: the arguments are left alone)."""
    theta, velocity = _vector(theta), _vector(state["velocity"])
    sgd_step(
        theta, np.ascontiguousarray(grad, dtype=np.float64), velocity, float(lr), float(momentum)
    )
    return theta, {"velocity": velocity, "step": state["step"] + 1}


def adam(theta, grad, state, lr):
    """Adam (Kingma & Ba) with bias-corrected first and second moments (``adam_step``
    on copies: the arguments are left alone)."""
    t = state["step"] + 1
    theta, m, v = _vector(theta), _vector(state["m"]), _vector(state["v"])
    c1, c2 = adam_corrections(t)
    adam_step(theta, np.ascontiguousarray(grad, dtype=np.float64), m, v, float(lr), c1, c2)
    return theta, {"m": m, "v": v, "step": t}


def sr(theta, grad, state, lr, s_matrix, shift=1e-3, shift_relative=1e-2):
    """Stochastic reconfiguration: theta <- theta - lr (S + eps)^-1 g / 2.

    s_matrix: (n, n) covariance S = <O O^T> - <O><O>^T of d ln psi / d theta; g / 2 =
    <E O> - <E><O> is the force. eps = shift + shift_relative * diag(S) on the diagonal.
    Solved by Cholesky; if the shifted S is not numerically positive definite, by its
    eigen-decomposition keeping eigenvalues above 1e-12 of the largest (counted in
    state["fallbacks"]).
    """
    A = s_matrix + np.diag(shift + shift_relative * np.diag(s_matrix))
    force = 0.5 * grad
    fallbacks = state["fallbacks"]
    try:
        L = np.linalg.cholesky(A)
        delta = np.linalg.solve(L.T, np.linalg.solve(L, force))
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(A)
        keep = w > 1e-12 * max(w.max(), 1e-300)
        delta = V[:, keep] @ ((V[:, keep].T @ force) / w[keep])
        fallbacks += 1
    return theta - lr * delta, {"step": state["step"] + 1, "fallbacks": fallbacks}


def update(
    method, theta, grad, state, lr, momentum=0.9, s_matrix=None, shift=1e-3, shift_relative=1e-2
):
    """Dispatch to the named optimiser; returns (new theta, new state)."""
    if method == "sgd":
        return sgd(theta, grad, state, lr, momentum)
    if method == "adam":
        return adam(theta, grad, state, lr)
    if method == "sr":
        return sr(theta, grad, state, lr, s_matrix, shift, shift_relative)
    raise ValueError(f"unknown optimizer {method!r}")


def scheduled_rate(schedule: str, lr: float, t: int, n_iter: int, final_fraction: float) -> float:
    """Learning rate of iteration t (0-based) of n_iter.

    constant: lr; exponential: lr * f^(t/(n_iter-1)); cosine: lr * (f + (1-f)(1 + cos(pi
    t/(n_iter-1)))/2), both going from lr at the first iteration to f*lr at the last.
    """
    if schedule == "constant" or n_iter < 2:
        return lr
    x = t / (n_iter - 1)
    if schedule == "exponential":
        return lr * final_fraction**x
    if schedule == "cosine":
        return lr * (final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + np.cos(np.pi * x)))
    raise ValueError(f"unknown schedule {schedule!r}")


def plateaued(energies: np.ndarray, errors: np.ndarray) -> bool:
    """Has the energy stopped going down? Weighted least-squares line E = alpha + beta*i
    through the given iterations (weights 1/error^2); True when the slope is not
    significant: |beta| <= 2 sigma_beta.

    energies, errors: (k,) of the last k iterations.
    """
    k = energies.shape[0]
    if k < 3 or not (np.all(np.isfinite(errors)) and np.all(errors > 0)):
        return False
    i = np.arange(k, dtype=np.float64)
    w = 1.0 / np.square(errors)
    sw, swi, swii = w.sum(), (w * i).sum(), (w * i * i).sum()
    det = sw * swii - swi * swi
    slope = (sw * (w * i * energies).sum() - swi * (w * energies).sum()) / det
    sigma = np.sqrt(sw / det)
    return abs(slope) <= 2.0 * sigma
