"""The benchmark's problem: its parameters and walkers, as the C references set them
up, and the timing of one kernel call (shared by the ns-per-move and the efficiency
benchmarks)."""

from __future__ import annotations

import time

import numpy as np

from ..sampling import kernels as K
from .options import BenchInputError

FERMION_THERMALIZATION = 2000  # untimed sweeps, the first half tuning: as slater_vmc_ref.c
FERMION_TARGET = 0.5  # its target acceptance
REF_PARAM_SCALE = 0.01  # its RBM parameters ~ N(0, 0.01^2)
REF_JASTROW_BETA = 0.5  # its Padé-Jastrow beta (both pair kinds)


def theta_for(cfg, wf, fermion: bool) -> np.ndarray:
    """The benchmark's parameters (n_params,): the fermion reference's (RBM ~ N(0,
    0.01^2), betas 0.5) if fermion, else rbm_vmc_ref.c's (a = b = 0, W ~ U(-0.005,
    0.005)); the orbital scale 1."""
    rng = np.random.default_rng(cfg.seed)
    if fermion:
        return wf.layout.initial(REF_PARAM_SCALE, rng, REF_JASTROW_BETA)
    theta = wf.layout.initial(0.0, rng, cfg.wavefunction.jastrow_beta)
    M, N = wf.layout.n_visible, wf.layout.n_hidden
    wf.layout.block(theta, "W")[:] = 0.01 * (rng.random((M, N)) - 0.5)
    return theta


def time_kernel(sampler, theta, walkers, sweeps, mode, obs_layout=None) -> float:
    """Seconds for one call of `sweeps` sweeps of all walkers in the given mode (with
    obs_layout: production that also accumulates the observables, as a run does)."""
    if mode == K.PRODUCE:
        obs = spec = None
        if obs_layout is not None:
            obs, spec = obs_layout.zeros(), obs_layout.spec()
        t = time.perf_counter()
        sampler.produce(theta, walkers, sweeps, False, obs, spec, 0, sweeps)
        return time.perf_counter() - t
    t = time.perf_counter()
    sampler.accumulate(theta, walkers, sweeps)
    return time.perf_counter() - t


def fermion_setup(cfg, scan: bool, ref_fermions: bool) -> bool:
    """Whether ours runs the fermion reference's problem (see the module docstring)."""
    from ..wavefunction.layout import needs_determinants

    return cfg.system.statistics == "fermions" and (
        needs_determinants(cfg.system) or scan or ref_fermions
    )


def setup(args, comm, cfg, fermion: bool):
    """(theta, sampler, walkers) of the benchmark's problem cfg; BenchInputError if they
    do not fit in memory."""
    from ..sampling.samplers import Sampler, Walkers
    from ..system import System
    from ..wavefunction import WaveFunction

    try:
        system = System.from_config(cfg.system)
        wf = WaveFunction.from_config(cfg.wavefunction, system)
        theta = theta_for(cfg, wf, fermion)
        sampler = Sampler(
            cfg.sampler.method,
            cfg.sampler.step,
            system,
            wf,
            target=target_acceptance(cfg, fermion),
            drift_limit=cfg.sampler.drift_limit,
        )
        walkers = Walkers.start(
            cfg.seed,
            comm.rank * args.walkers,
            args.walkers,
            system.n_coords,
            wf.sigma,
            system.dimensions,
            system.kernel_params().hard_core,
        )
    except (MemoryError, ValueError) as exc:  # ValueError: numpy's 'array is too big'
        raise BenchInputError(
            f"the problem (particles, hidden units, --walkers "
            f"{args.walkers}) is too large for this machine ({exc})"
        ) from None
    return theta, sampler, walkers


def target_acceptance(cfg, fermion: bool) -> float:
    """Acceptance the step is tuned to: the fermion reference's 50 % for its Metropolis,
    else the config's sampler.target_acceptance, else the sampler's default."""
    from ..sampling.samplers import DEFAULT_TARGET

    method = cfg.sampler.method
    if fermion and method == "metropolis":
        return FERMION_TARGET
    target = cfg.sampler.target_acceptance
    return DEFAULT_TARGET[method] if target is None else target


def thermalize(args, comm, sampler, theta, walkers, fermion: bool) -> None:
    """Untimed sweeps before timing: the fermion reference's tuning of the step, else
    200 tuning sweeps with a config and none for rbm_vmc_ref.c's fixed step."""
    n = FERMION_THERMALIZATION if fermion else (200 if args.config else 0)
    sampler.thermalize(theta, walkers, n, comm)
