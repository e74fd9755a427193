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


def update(method, theta, grad, state, lr, momentum=0.9):
    """Dispatch to the named optimiser; returns (new theta, new state)."""
    if method == "sgd":
        return sgd(theta, grad, state, lr, momentum)
    if method == "adam":
        return adam(theta, grad, state, lr)
    raise ValueError(f"unknown optimizer {method!r}")
