"""The run state: everything besides the walkers that a run needs to continue
(:class:`State`), the checkpoint payload it makes with the walkers of every rank, and
its restoration from a checkpoint: exactly on the same chain count, or re-seeded on
another one (new chain streams from the saved configurations). Also how the work
divides over the chains (:class:`Chains`; the sweeps per walker: ``sizes.py``),
which ``preflight`` uses for its sizes without starting a run.

The sampler's step lives in ``samplers.Sampler.step`` alone; the payload stores it as
the attribute ``step`` and a restore sets it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import optimizers
from ..rng import chain_states, params_generator
from ..sampling import estimators
from ..sampling.packing import start_width
from ..sampling.samplers import Thermalization, Walkers

# Scalar attributes of a checkpoint that are State fields of the same name.
SCALARS = (
    "phase",
    "iteration",
    "opt_seconds",
    "lr_scale",
    "rewinds",
    "rewind_log",
    "prod_done",
    "reseeds",
    "stuck_total",
    "converged",
)
# What a checkpoint must have to be resumed (``pvmc resume`` checks before it starts).
REQUIRED_ATTRS = (
    ("run_id", "config", "n_chains", "mpi_size", "step", "therm_done", "tune_k")
    + SCALARS
    + ("progress", "written")
)
REQUIRED_ARRAYS = (
    "theta",
    "positions",
    "rng_states",
    "accepted",
    "stuck",
    "therm_acc",
    "prod_totals",
    "recent",
)


@dataclass(frozen=True)
class Chains:
    """This rank's share of the chains: chains first .. first + per_rank - 1 of
    n_chains."""

    n_chains: int
    first: int
    per_rank: int

    @classmethod
    def of(cls, comm, per_rank: int) -> "Chains":
        return cls(comm.size * per_rank, comm.rank * per_rank, per_rank)

    @property
    def rows(self) -> slice:
        """This rank's rows of an (n_chains, ...) array."""
        return slice(self.first, self.first + self.per_rank)


@dataclass
class State:
    """Everything besides the walkers that a run needs to continue; identical on all
    ranks (it only changes through reduced quantities).

    phase: "thermalize" | "optimize" | "produce" | "finish" (the phase to do next).
    good: the last iteration whose energy and gradient were finite, as
    {"iteration", "theta", "opt_state", "positions" (this rank's (W, M))}; None before.
    """

    theta: np.ndarray
    opt_state: dict
    therm: Thermalization
    phase: str = "thermalize"
    iteration: int = 0  # optimization iterations done
    opt_seconds: float = 0.0  # wall time spent optimizing, all segments
    lr_scale: float = 1.0  # product of the rewind factors applied so far
    rewinds: int = 0
    rewind_log: str = ""
    good: dict | None = None
    prod_done: int = 0  # production samples per chain written
    prod_totals: np.ndarray = field(  # production sums (estimators.P_*), all ranks
        default_factory=lambda: np.zeros(estimators.PRODUCTION_SIZE)
    )
    obs_totals: np.ndarray | None = None  # (n_batches, width) observable sums, all ranks
    reseeds: int = 0  # times the chain count changed on resume
    stuck_total: int = 0  # walkers that passed the stuck limit, all ranks
    converged: bool = False  # optimization stopped on a plateau
    recent: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (k, 2) last
    # energies and errors, for the plateau test

    def restart_production(self, obs_layout) -> None:
        """Production from its start: no samples, zero sums."""
        self.prod_done = 0
        self.prod_totals = np.zeros(estimators.PRODUCTION_SIZE)
        self.obs_totals = no_observables(obs_layout)


def no_observables(obs_layout):
    """Empty observable sums of ``observables.Layout`` obs_layout (None: none kept)."""
    return None if obs_layout is None else obs_layout.zeros()


def fresh(cfg, system, wf, chains: Chains, obs_layout):
    """(State, this rank's Walkers, how many of them could not be placed) of a new
    run (a walker not placed is not usable: see ``Walkers.placed``)."""
    theta = wf.layout.initial(
        cfg.wavefunction.init_scale, params_generator(cfg.seed), cfg.wavefunction.jastrow_beta
    )
    # Start where |psi|^2 of the Gaussian part lives
    walkers, failed = Walkers.placed(
        cfg.seed,
        chains.first,
        chains.per_rank,
        system.n_coords,
        start_width(wf),
        system.dimensions,
        system.kernel_params().hard_core,
    )
    opt = optimizers.initial_state(cfg.optimizer.method, wf.layout.n_params)
    state = State(
        theta=theta,
        opt_state=opt,
        therm=Thermalization(cfg.sampler.thermalization),
        obs_totals=no_observables(obs_layout),
    )
    return state, walkers, failed


# ---------------------------------------------------------------------- payload
def gather_walkers(state: State, walkers: Walkers, comm) -> dict:
    """The walkers of every rank as (n_chains, ...) arrays on rank 0 (collective;
    other ranks get what ``comm.gather_rows`` gives them there)."""
    per_rank = {
        "positions": walkers.positions,
        "rng_states": walkers.rng,
        "accepted": walkers.accepted[:, None],
        "stuck": walkers.stuck[:, None],
    }
    if state.good is not None:
        per_rank["good/positions"] = state.good["positions"]
    return {k: comm.gather_rows(v) for k, v in per_rank.items()}


def payload(state: State, gathered: dict, step: float, chains: Chains, run_attrs: dict):
    """(attrs, arrays) of a checkpoint: the state, the walkers gathered by
    :func:`gather_walkers`, the sampler's step and the run's own attrs (run_id,
    config, ...)."""
    attrs = {name: getattr(state, name) for name in SCALARS}
    attrs.update(
        therm_done=state.therm.done,
        tune_k=state.therm.tuned,
        step=step,
        walkers_per_rank=chains.per_rank,
        n_chains=chains.n_chains,
        **run_attrs,
    )
    arrays = dict(
        gathered,
        theta=state.theta,
        therm_acc=state.therm.frozen,
        recent=state.recent,
        prod_totals=state.prod_totals,
        **_opt_arrays("optimizer", state.opt_state),
    )
    if state.obs_totals is not None:
        arrays["obs_totals"] = state.obs_totals
    if state.good is not None:
        attrs["good_iteration"] = state.good["iteration"]
        arrays["good/theta"] = state.good["theta"]
        arrays.update(_opt_arrays("good/optimizer", state.good["opt_state"]))
    return attrs, arrays


def _opt_arrays(prefix: str, opt_state: dict) -> dict:
    return {f"{prefix}/{k}": np.asarray(v) for k, v in opt_state.items()}


def _opt_state(arrays: dict, prefix: str) -> dict:
    """Optimizer state back from checkpoint arrays (0-d arrays -> Python numbers, so
    the resumed arithmetic is the uninterrupted one)."""
    out = {}
    for key, value in arrays.items():
        if key.startswith(prefix + "/"):
            value = np.asarray(value)
            out[key[len(prefix) + 1 :]] = value.item() if value.ndim == 0 else value.copy()
    return out


# ---------------------------------------------------------------------- restore
@dataclass
class Restored:
    """A run state back from a checkpoint, with this rank's walkers.

    reseeded: the chain count changed, so the chains got new streams;
    production_reset: ... and production, already begun, starts again.
    """

    state: State
    walkers: Walkers
    reseeded: bool = False
    production_reset: bool = False


def restore(attrs: dict, arrays: dict, cfg, chains: Chains, sampler, obs_layout) -> Restored:
    """The state of checkpoint (attrs, arrays) for this rank's chains; sets the
    sampler's step. The same chain count continues every walker exactly; on another
    one the chains get fresh streams (rng.py) and start from the saved configurations,
    chain k from old chain k mod n_old."""
    sampler.step = float(attrs["step"])
    st = _state_from(attrs, arrays, cfg)
    if st.phase in ("thermalize", "optimize") or st.obs_totals is None:
        # Nothing accumulated yet: take the shape of this run's layout (another
        # chain count can give another number of batches).
        st.obs_totals = no_observables(obs_layout)
    n_old = int(attrs["n_chains"])
    reseeded = production_reset = False
    if n_old == chains.n_chains:
        rows = chains.rows
        walkers = Walkers(
            arrays["positions"][rows],
            arrays["rng_states"][rows],
            arrays["accepted"][rows, 0],
            arrays["stuck"][rows, 0],
        )
    else:
        reseeded = True
        st.reseeds += 1
        rows = (chains.first + np.arange(chains.per_rank)) % n_old
        walkers = Walkers(
            arrays["positions"][rows],
            chain_states(cfg.seed, chains.first, chains.per_rank, st.reseeds),
        )
        if st.phase == "produce":
            # Production series are per chain: the old chains' samples cannot be
            # continued by other chains, so production starts again.
            st.restart_production(obs_layout)
            production_reset = True
    if (
        st.phase == "produce"
        and obs_layout is not None
        and st.obs_totals.shape != obs_layout.zeros().shape
    ):
        # Histograms of another geometry (a checkpoint of an earlier pvmc, e.g. before
        # production.pair_bins null matched a hard core): their sums cannot be
        # continued, and the kernels would write past the rows.
        st.restart_production(obs_layout)
        production_reset = True
    if "good/theta" in arrays:
        st.good = {
            "iteration": int(attrs["good_iteration"]),
            "theta": np.array(arrays["good/theta"]),
            "opt_state": _opt_state(arrays, "good/optimizer"),
            "positions": np.array(arrays["good/positions"][rows]),
        }
    return Restored(st, walkers, reseeded, production_reset)


def _state_from(attrs: dict, arrays: dict, cfg) -> State:
    """The State fields stored in a checkpoint (not yet ``good``)."""
    therm = Thermalization(
        cfg.sampler.thermalization,
        int(attrs["therm_done"]),
        int(attrs["tune_k"]),
        np.array(arrays["therm_acc"]),
    )
    st = State(
        theta=np.array(arrays["theta"]),
        opt_state=_opt_state(arrays, "optimizer"),
        therm=therm,
        prod_totals=np.array(arrays["prod_totals"]),
        obs_totals=(np.array(arrays["obs_totals"]) if "obs_totals" in arrays else None),
        recent=np.array(arrays.get("recent", np.zeros((0, 2)))).reshape(-1, 2),
    )
    for name in SCALARS:
        setattr(st, name, type(getattr(st, name))(attrs[name]))
    return st
