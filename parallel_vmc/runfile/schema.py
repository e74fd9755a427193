"""The names of the HDF5 run file (docs/runfile.md): one home for the writer
(``output``, ``driver``) and the reader (``analysis``).

Pure constants and three small helpers; imports only the standard library and numpy,
never numba, so ``analysis`` can use it (importing ``parallel_vmc`` itself only points
numba's cache directory, see ``jit_cache``).

Layout of format 6 (see ``output`` for what each dataset holds and when)::

    /                root attrs ROOT_ATTRS (REQUIRED_ROOT always present)
    /optimization/   ITERATION, OPT_FIELDS, PARAMS, ROWS_WRITTEN
    /production/     PRODUCTION_SERIES, SAMPLES_WRITTEN; attrs WRITER, PRODUCTION_ATTRS
      observables/   SCALAR_OBSERVABLES (batch means, attrs MEAN, ERROR), the
                     histogram groups HISTOGRAMS (edges + HISTOGRAM_ARRAYS)
    /wavefunction/   WAVEFUNCTION_ARRAYS (+ JASTROW_ARRAYS, + SLATER_ARRAYS); attrs
                     WAVEFUNCTION_ATTRS (+ INVERSE_DRIFT with the Slater part, +
                     SIGMA_Z with a width of its own along z)
    /checkpoint/     the final state
    /segments/       SEGMENT_FIELDS, one row per launch
    /summary/        attrs SUMMARY_ATTRS, ...

Names of datasets are given relative to their group (they are also the keys of the
dicts that carry their data, e.g. ``observables.summarize``); :func:`path` joins them.
"""

from __future__ import annotations

import math

import numpy as np

FORMAT_VERSION = 6  # bumped with every change of this schema; history: CHANGELOG.md
# Formats ``pvmc resume`` continues: a format 3 file differs only in what /wavefunction
# gets at the end, a format 4 file in the optional axial densities (off in its config),
# a format 5 file in the writer's attribute, so they are resumed and end as a format 6
# file.
RESUMABLE_FORMATS = (3, 4, 5, FORMAT_VERSION)


def path(*parts: str) -> str:
    """The HDF5 path of a group's member, e.g. path(PRODUCTION, LOCAL_ENERGY)."""
    return "/".join(parts)


# ----------------------------------------------------------------------------- root
FORMAT = "format_version"
STATUS = "status"
CONFIG = "config"
CHECKPOINT_FILE = "checkpoint_file"
RUN_ID = "run_id"
REQUIRED_ROOT = (FORMAT, STATUS, CONFIG)  # what makes an HDF5 file a run file
ROOT_ATTRS = REQUIRED_ROOT + (
    "package_version",
    "created",
    "mpi_size",
    "walkers_per_rank",
    "seed",
    "hostname",
    "mpi_library",
    "numba_version",
    "numpy_version",
    "mpi4py_version",
    CHECKPOINT_FILE,
    RUN_ID,
)

# values of the status attribute; a failure is FAILED + ": " + reason
RUNNING = "running"
COMPLETED = "completed"
INTERRUPTED = "interrupted"
FAILED = "failed"

# ----------------------------------------------------------------------------- groups
OPTIMIZATION = "optimization"
PRODUCTION = "production"
OBSERVABLES = "observables"  # inside PRODUCTION
WAVEFUNCTION = "wavefunction"
CHECKPOINT = "checkpoint"
SEGMENTS = "segments"
SUMMARY = "summary"

# ----------------------------------------------------------------------------- /optimization
ITERATION = "iteration"
OPT_FIELDS = (
    "energy",
    "energy_error",
    "variance",
    "acceptance",
    "grad_norm",
    "learning_rate",
    "wall_time",
)  # float64 (iterations,), beside ITERATION
PARAMS = "params"  # (iterations, n_params)
ROWS_WRITTEN = "rows_written"  # (1,): rows 0..rows_written-1 are valid

# ----------------------------------------------------------------------------- /production
LOCAL_ENERGY = "local_energy"
KINETIC = "kinetic"
TRAP = "trap"
INTERACTION = "interaction"
COMPONENTS = (KINETIC, TRAP, INTERACTION)  # stored with production.store_components
PRODUCTION_SERIES = (LOCAL_ENERGY,) + COMPONENTS  # each (n_chains, n_samples)
POTENTIAL = "potential"  # formats 1-2: trap + interaction
SAMPLES_WRITTEN = "samples_written"  # (1,): columns filled so far
WRITER = "writer"  # attr: who wrote the samples, "gather" | "mpio" (comma-joined, in order)
PRODUCTION_ATTRS = (
    "samples_per_chain",
    "acceptance",
    "step",
    "sampler",
    "energy_allreduced",
    "variance_allreduced",
    "stuck_walkers",
)

# ----------------------------------------------------------------------------- /dmc
# One entry per time step of dmc.time_steps (in the config's order), and per time step
# k a group STEP_GROUP % k with its per-step series (one value per step, warm-up first).
DMC = "dmc"
# bias_window: the T_p of each time step's population-control correction (steps).
DMC_FIELDS = (
    "time_step",
    "energy",
    "error",
    "acceptance",
    "tau_eff",
    "population",
    "bias_window",
)
# tau_eff here: the one each step reweighted with (the estimate before its moves), so
# that the corrected energy can be recomputed from the series alone.
DMC_SERIES = ("weighted_energy", "total_weight", "population", "trial_energy", "tau_eff")
DMC_ATTRS = ("energy_extrapolated", "error_extrapolated", "warmup_steps")
# Root attributes of a file made by ``pvmc dmc`` from a completed VMC run: that file's
# absolute path and run_id.
DMC_SOURCE = "dmc_source"
DMC_SOURCE_RUN_ID = "dmc_source_run_id"
STEP_GROUP = "series_%d"

# ----------------------------------------------------------------------------- observables
R12 = "r12"
SCALAR_OBSERVABLES = (LOCAL_ENERGY,) + COMPONENTS + (R12,)  # batch means (n_batches,)
MEAN = "mean"  # attrs of a scalar's batch means
ERROR = "error"
DENSITY = "density"  # radial one-body density
DENSITY_IMAGE = "density_image"  # D = 2: rho(x, y)
PAIR_DISTANCE = "pair_distance"  # P > 1
DENSITY_XY = "density_xy"  # D = 3, production.axial_density: column density vs rho
DENSITY_Z = "density_z"  # D = 3, production.axial_density: linear density vs z
# histogram group -> its bin edges (one dataset per axis)
HISTOGRAMS = {
    DENSITY: ("edges",),
    DENSITY_IMAGE: ("x_edges", "y_edges"),
    PAIR_DISTANCE: ("edges",),
    DENSITY_XY: ("edges",),
    DENSITY_Z: ("edges",),
}
HISTOGRAM_ARRAYS = ("counts", "density", "error")  # bins' shape, in every histogram

# ----------------------------------------------------------------------------- others
WAVEFUNCTION_ARRAYS = ("a", "b", "W", "sigma")
JASTROW_ARRAYS = ("jastrow_beta", "jastrow_cusp")
WIDTH_SHIFT = "width_shift"  # variational widths [delta_xy, delta_z] (format >= 6)
ORBITALS = "orbitals"  # (n, D) int64: quantum numbers of the n = P/2
# orbitals occupied by each spin, in column order
ORBITAL_SCALE = "orbital_scale"  # (): the optimized orbital scale alpha
SLATER_ARRAYS = (ORBITALS, ORBITAL_SCALE)  # with Slater determinants (format >= 4)
STATISTICS = "statistics"  # "fermions" | "bosons" (format >= 4)
WAVEFUNCTION_ATTRS = ("kind", "psi", "jastrow", STATISTICS)
SIGMA_Z = "sigma_z"  # attr: the RBM's width along z where it has its own (3D,
# wavefunction.sigma_z or an elliptical trap); absent in older format 6 files
INVERSE_DRIFT = "inverse_drift"  # attr with the Slater part: the largest max |D Dinv -
# I| of an updated inverse at its rebuild, over all
# ranks, during the last segment (not checkpointed)
# one row per launch: name -> dtype ("str": fixed-length text)
SEGMENT_FIELDS = {
    "mpi_size": "i8",
    "first_iteration": "i8",
    "last_iteration": "i8",
    "hostname": "str",
    "start_time": "str",
    "end_time": "str",
    "ended": "str",
    "progress": "str",
    "reseeded": "i8",
    "seconds": "f8",
}
SUMMARY_ATTRS = ("energy", "error", "variance", "tau_int", "n_samples")

# ----------------------------------------------------------------------------- formulas
NOT_MEASURED = -1.0  # inverse_drift when no rebuild was checked (kernel calls shorter
# than determinant_refresh sweeps)


def stored_series(components: bool) -> tuple:
    """The production series a run stores: local_energy, and its parts with
    production.store_components."""
    return PRODUCTION_SERIES if components else PRODUCTION_SERIES[:1]


def inverse_drift_text(drift: float) -> str:
    """The largest max |D Dinv - I| seen at a rebuild, or why there is none."""
    if drift < 0:
        return "not measured (no kernel call reached determinant_refresh sweeps)"
    return f"{drift:.3g}"


def widths_text(shift) -> str:
    """The variational widths as the summary and the analysis show them: shift
    [delta_xy, delta_z] (``WIDTH_SHIFT``) -> 'delta_xy=0.0123, delta_z=-0.0456'."""
    d_xy, d_z = (float(v) for v in np.asarray(shift).ravel()[:2])
    return f"delta_xy={d_xy:.6g}, delta_z={d_z:.6g}"


def orbitals_text(quantum_numbers) -> str:
    """The orbitals of one spin as the summary, ``pvmc info`` and the analysis show
    them: quantum_numbers (n, D) ints -> '3 per spin: (0,0) (1,0) (0,1)'."""
    rows = np.asarray(quantum_numbers).reshape(len(quantum_numbers), -1)
    return f"{len(rows)} per spin: " + " ".join(
        "(" + ",".join(str(int(v)) for v in row) + ")" for row in rows
    )


# Volume of the unit ball; exact constants for the dimensions pvmc runs in (the radial
# densities of existing files were normalised with these very numbers).
_UNIT_BALL = {1: 2.0, 2: math.pi, 3: 4.0 * math.pi / 3.0}


def shell_volumes(edges, dimensions: int) -> np.ndarray:
    """Volumes of the D-dimensional shells between consecutive radii: the
    normalisation of the radial density (2 dr in 1D, pi (r2^2 - r1^2) in 2D,
    4/3 pi (r2^3 - r1^3) in 3D).

    edges: (n_bins + 1,) increasing radii. Returns (n_bins,) float64.
    """
    d = int(dimensions)
    unit_ball = _UNIT_BALL.get(d)
    if unit_ball is None:
        unit_ball = math.pi ** (d / 2) / math.gamma(d / 2 + 1)
    return unit_ball * np.diff(np.asarray(edges, dtype=np.float64) ** d)
