"""Samples from a trained RBM: block Gibbs chains, and MALA (Metropolis-adjusted
Langevin) for the continuous visibles of the Gaussian-binary model.

* :func:`gibbs_chains` runs the numba block Gibbs kernel of :mod:`.gibbs` (one jitted call
  per stretch of ``thin`` sweeps, one xoshiro stream per chain) and keeps every
  ``thin``-th state after ``burn_in`` sweeps.
* :func:`mala` samples ``p(v) = exp(-F(v)) / Z`` directly, hidden units summed out. With
  step ``eps``, the proposal is ``v' = v - (eps^2/2) dF/dv(v) + eps xi``, xi ~ N(0, I),
  accepted with probability
  ``min(1, exp(F(v) - F(v') + log q(v | v') - log q(v' | v)))``,
  ``log q(y | x) = -|y - x + (eps^2/2) dF/dv(x)|^2 / (2 eps^2)`` (+ a constant that
  cancels). F and dF/dv are :func:`.model.free_energy` and :func:`.model.free_energy_grad_v`
  (their one home), evaluated for all chains at once, so each step is a few array
  operations over the chains (vectorised numpy, no Python per chain).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..rng import chain_states
from .gibbs import sweeps
from .model import RBM, free_energy, free_energy_grad_v

__all__ = ["gibbs_chains", "MALAResult", "mala", "reconstructions"]


def _start(rbm: RBM, n_chains: int, start, rng: np.random.Generator) -> np.ndarray:
    """Initial visibles (n_chains, n_v), C-contiguous float64: ``start`` (n_chains, n_v)
    if given, else uniform 0/1 (binary) or standard normal around a (gaussian)."""
    if start is not None:
        V = np.array(start, dtype=np.float64, order="C")
        if V.shape != (n_chains, rbm.n_visible):
            raise ValueError(f"start: expected shape ({n_chains}, {rbm.n_visible}), got {V.shape}")
        return V
    if rbm.kind == "binary":
        return (rng.random((n_chains, rbm.n_visible)) < 0.5).astype(np.float64)
    return rbm.a + rng.standard_normal((n_chains, rbm.n_visible))


def _check_counts(n_chains: int, n_samples: int, thin: int, burn_in: int) -> None:
    if n_chains < 1 or n_samples < 1 or thin < 1 or burn_in < 0:
        raise ValueError(
            f"need n_chains, n_samples, thin >= 1 and burn_in >= 0, got "
            f"{n_chains}, {n_samples}, {thin}, {burn_in}"
        )


def gibbs_chains(
    rbm: RBM,
    n_chains: int,
    n_samples: int,
    thin: int = 1,
    burn_in: int = 0,
    seed: int = 0,
    start=None,
) -> np.ndarray:
    """``n_samples`` states of each of ``n_chains`` independent block Gibbs chains, every
    ``thin``-th sweep after ``burn_in`` sweeps: (n_chains, n_samples, n_v) float64.
    Chain c draws from stream c of ``seed`` (the training's stream convention)."""
    _check_counts(n_chains, n_samples, thin, burn_in)
    V = _start(rbm, n_chains, start, np.random.default_rng(seed))
    states = chain_states(seed, 0, n_chains)
    sweeps(rbm, V, burn_in, states)
    out = np.empty((n_chains, n_samples, rbm.n_visible))
    for t in range(n_samples):
        sweeps(rbm, V, thin, states)
        out[:, t] = V
    return out


def reconstructions(rbm: RBM, V, seed: int = 0) -> np.ndarray:
    """One Gibbs sweep from each row of V (n, n_v): sample h | v, then v | h
    (n, n_v): the stochastic reconstruction of the data."""
    V = np.array(V, dtype=np.float64, order="C")
    sweeps(rbm, V, 1, chain_states(seed, 0, len(V)))
    return V


@dataclass
class MALAResult:
    """samples (n_chains, n_samples, n_v); acceptance: fraction of accepted proposals
    over all chains and steps after burn-in; step: eps."""

    samples: np.ndarray
    acceptance: float
    step: float


def _proposal_log_ratio(v, v_new, g, g_new, step):
    """log q(v | v_new) - log q(v_new | v) of the Langevin proposal (per chain): the
    Hastings correction for the drift, which differs at the two ends."""
    half = 0.5 * step * step
    forward = v_new - v + half * g
    backward = v - v_new + half * g_new
    return (np.einsum("ij,ij->i", forward, forward) - np.einsum("ij,ij->i", backward, backward)) / (
        2.0 * step * step
    )


def _mala_step(rbm, V, F, G, step, rng, metropolis):
    """One MALA step of all chains, in place on V, F (n,), G (n, n_v); returns the
    number accepted. ``metropolis=False`` accepts everything (unadjusted Langevin,
    biased by O(step^2): for comparison only)."""
    V_new = V - 0.5 * step * step * G + step * rng.standard_normal(V.shape)
    F_new, G_new = free_energy(rbm, V_new), free_energy_grad_v(rbm, V_new)
    if metropolis:
        log_alpha = F - F_new + _proposal_log_ratio(V, V_new, G, G_new, step)
        accept = np.log(rng.random(len(V))) < log_alpha
    else:
        accept = np.ones(len(V), dtype=bool)
    V[accept], F[accept], G[accept] = V_new[accept], F_new[accept], G_new[accept]
    return int(np.count_nonzero(accept))


def mala(
    rbm: RBM,
    n_chains: int,
    n_samples: int,
    step: float,
    thin: int = 1,
    burn_in: int = 0,
    seed: int = 0,
    start=None,
    metropolis: bool = True,
) -> MALAResult:
    """MALA sampling of the visibles of a Gaussian-binary RBM from p(v) = exp(-F(v))/Z:
    ``n_chains`` independent chains, ``burn_in`` steps, then ``n_samples`` states each
    ``thin`` steps apart. Returns :class:`MALAResult`."""
    if rbm.kind != "gaussian":
        raise ValueError("MALA samples continuous visibles: it needs a gaussian RBM")
    if not step > 0:
        raise ValueError(f"MALA step = {step!r}: must be > 0")
    _check_counts(n_chains, n_samples, thin, burn_in)
    rng = np.random.default_rng(seed)
    V = _start(rbm, n_chains, start, rng)
    F, G = free_energy(rbm, V), free_energy_grad_v(rbm, V)
    for _ in range(burn_in):
        _mala_step(rbm, V, F, G, step, rng, metropolis)
    out = np.empty((n_chains, n_samples, rbm.n_visible))
    accepted = 0
    for t in range(n_samples):
        for _ in range(thin):
            accepted += _mala_step(rbm, V, F, G, step, rng, metropolis)
        out[:, t] = V
    return MALAResult(out, accepted / (n_chains * n_samples * thin), float(step))
