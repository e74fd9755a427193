"""Deep belief nets: a stack of RBMs, bottom (on the data) first.

Greedy layer-wise training (``runner.Session`` trains the layers in turn, with
checkpoints) gives layer l+1 the hidden probabilities ``p(h | v)`` of layer l for the
training rows as its data (:func:`propagate_up`). Samples come from the top down
(:func:`sample`): block Gibbs chains in the top RBM (an undirected model over the two
top layers), then one draw per layer down through ``p(v | h)`` of the layers below,
which act as a directed (sigmoid belief) net.
"""

from __future__ import annotations

import numpy as np

from .gibbs import bernoulli_rows, sweeps
from .model import RBM, p_hidden, visible_mean


def propagate_up(layers: list, V: np.ndarray, upto: int) -> np.ndarray:
    """The data of layer `upto`: p(h | v) applied through layers 0 .. upto-1 to V
    (n, n_v) -> (n, n_h of layer upto-1) (V itself for upto = 0)."""
    for rbm in layers[:upto]:
        V = p_hidden(rbm, V)
    return V


def sample(layers: list[RBM], states: np.ndarray, top_sweeps: int) -> tuple:
    """Top-down samples of a DBN, one per row of states (n, 4) (chain r uses stream r).

    The top RBM's chains start from fair coin flips and run top_sweeps block Gibbs
    sweeps; then each lower layer draws its visibles given the hiddens above. Returns
    (samples (n, n_v) of 0/1, their means p(v = 1 | h) (n, n_v)) at the bottom."""
    top = layers[-1]
    n = states.shape[0]
    V = bernoulli_rows(np.full((n, top.n_visible), 0.5), states)
    sweeps(top, V, top_sweeps, states)
    mean = V
    for rbm in reversed(layers[:-1]):
        mean = visible_mean(rbm, V)
        V = bernoulli_rows(mean, states)
    return V, mean
