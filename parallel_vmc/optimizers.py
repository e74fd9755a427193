"""Parameter updates: pure functions of (theta, gradient, state, learning rate).

The state is a dict of numpy arrays and numbers, so it can be stored in a checkpoint
as plain datasets. Every rank applies the same update to the same allreduced gradient,
so parameters stay identical without a broadcast.
"""
from __future__ import annotations

import numpy as np

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


def sgd(theta, grad, state, lr, momentum=0.9):
    """Gradient descent with (heavy-ball) momentum: v <- mu v - lr g; theta <- theta + v."""
    velocity = momentum * state["velocity"] - lr * grad
    return theta + velocity, {"velocity": velocity, "step": state["step"] + 1}


def adam(theta, grad, state, lr):
    """Adam (Kingma & Ba) with bias-corrected first and second moments."""
    t = state["step"] + 1
    m = ADAM_BETA1 * state["m"] + (1.0 - ADAM_BETA1) * grad
    v = ADAM_BETA2 * state["v"] + (1.0 - ADAM_BETA2) * grad * grad
    m_hat = m / (1.0 - ADAM_BETA1 ** t)
    v_hat = v / (1.0 - ADAM_BETA2 ** t)
    return theta - lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS), {"m": m, "v": v, "step": t}


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


def update(method, theta, grad, state, lr, momentum=0.9, s_matrix=None, shift=1e-3,
           shift_relative=1e-2):
    """Dispatch to the named optimiser; returns (new theta, new state)."""
    if method == "sgd":
        return sgd(theta, grad, state, lr, momentum)
    if method == "adam":
        return adam(theta, grad, state, lr)
    if method == "sr":
        return sr(theta, grad, state, lr, s_matrix, shift, shift_relative)
    raise ValueError(f"unknown optimizer {method!r}")


def scheduled_rate(schedule: str, lr: float, t: int, n_iter: int,
                   final_fraction: float) -> float:
    """Learning rate of iteration t (0-based) of n_iter.

    constant: lr; exponential: lr * f^(t/(n_iter-1)); cosine: lr * (f + (1-f)(1 + cos(pi
    t/(n_iter-1)))/2), both going from lr at the first iteration to f*lr at the last.
    """
    if schedule == "constant" or n_iter < 2:
        return lr
    x = t / (n_iter - 1)
    if schedule == "exponential":
        return lr * final_fraction ** x
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
