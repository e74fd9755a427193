"""Reading and validating pvmc run files (DESIGN.md section 4), read-only.

A file is a run file iff it is HDF5 and its root has the attributes
``format_version``, ``status`` and ``config``. Everything else is optional, because
a run that is still ``running`` or ended ``failed`` may have written only part of
it; what is there is read, and a group that is present must be well formed.

The file is opened read-only with HDF5 file locking off, so a file that ``pvmc``
still has open for writing can be analysed; the view is that of its last flush.
Formats 2 and 3 allocate the growing datasets in full up front; only the first
``/optimization/rows_written`` rows and ``/production/samples_written`` columns are
data, and only those are read. Format 3 stores the energy parts kinetic, trap and
interaction (formats 1-2: kinetic and potential) and the group
``/production/observables`` (batch means of scalars, histograms), read into
``RunData.observables``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RunFileError", "RunData", "read_run", "config_value", "shell_volumes",
           "SUPPORTED_FORMATS", "PRODUCTION_SERIES", "SCALAR_OBSERVABLES", "HISTOGRAMS"]

SUPPORTED_FORMATS = (1, 2, 3)
OPT_FIELDS = ("iteration", "energy", "energy_error", "variance", "acceptance", "grad_norm",
              "learning_rate", "wall_time")
REQUIRED_ROOT = ("format_version", "status", "config")
# kinetic, trap, interaction: format 3; potential (= trap + interaction): formats 1-2
PRODUCTION_SERIES = ("local_energy", "kinetic", "trap", "interaction", "potential")
SCALAR_OBSERVABLES = ("local_energy", "kinetic", "trap", "interaction", "r12")
# histogram groups of /production/observables -> their edges (one per axis)
HISTOGRAMS = {"density": ("edges",), "density_image": ("x_edges", "y_edges"),
              "pair_distance": ("edges",)}
HISTOGRAM_ARRAYS = ("counts", "density", "error")


class RunFileError(Exception):
    """A file that cannot be analysed; the message names the file and what is wrong."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.shape == ():
        return _text(value[()])
    return str(value)


def _plain(value):
    """HDF5 attribute -> plain Python value."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.shape == ():
            return _plain(value[()])
        return [_plain(v) for v in value.tolist()] if value.dtype.kind in "OSU" else value.tolist()
    return value


def shell_volumes(edges, dimensions: int) -> np.ndarray:
    """Volumes of the D-dimensional shells between consecutive radii ``edges``: the
    normalisation of the radial density (2 dr in 1D, pi (r2^2 - r1^2) in 2D,
    4/3 pi (r2^3 - r1^3) in 3D)."""
    unit_ball = math.pi ** (dimensions / 2) / math.gamma(dimensions / 2 + 1)
    return unit_ball * np.diff(np.asarray(edges, dtype=np.float64) ** dimensions)


def config_value(config: dict, key: str):
    """``config['system']['omega']`` for key ``'system.omega'``; KeyError names the key."""
    node = config
    for i, part in enumerate(key.split(".")):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


@dataclass
class RunData:
    """Everything analysable in one run file (arrays loaded into memory).

    optimization : dict of 1-D arrays (+ 'params' 2-D), empty dict if absent/empty
    production   : dict name -> (n_chains, samples_per_chain) array, for the series
                   present (local_energy, kinetic, trap, interaction; potential in
                   formats 1-2); empty if absent
    production_attrs, summary, wavefunction_attrs : plain dicts (may be empty)
    observables  : /production/observables. Format 3: scalar name (local_energy,
                   kinetic, trap, interaction; r12 if particles > 1) ->
                   {"batch_means": (K,) array, "mean": float, "error": float};
                   histogram name (density; density_image if D = 2; pair_distance if
                   particles > 1) -> {"edges" (or "x_edges", "y_edges"), "counts",
                   "density", "error": arrays, "attrs": dict (overflow, ...)}.
                   Formats 1-2: flat name (density_counts, density_edges) -> array.
                   Empty if the group is absent.
    observables_attrs : attrs of /production/observables (n_batches, samples,
                   error_method, energy_error_batch_means, energy_error_blocking)
    segments     : list of dicts, one per launch
    """

    path: str
    attrs: dict
    config: dict
    config_text: str
    optimization: dict = field(default_factory=dict)
    production: dict = field(default_factory=dict)
    production_attrs: dict = field(default_factory=dict)
    observables: dict = field(default_factory=dict)
    observables_attrs: dict = field(default_factory=dict)
    wavefunction: dict = field(default_factory=dict)
    wavefunction_attrs: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    segments: list = field(default_factory=list)

    @property
    def status(self) -> str:
        return str(self.attrs.get("status", "unknown"))

    @property
    def n_iterations(self) -> int:
        e = self.optimization.get("energy")
        return 0 if e is None else int(e.shape[0])

    @property
    def name(self) -> str:
        return os.path.splitext(os.path.basename(self.path))[0]

    def value(self, key: str):
        """A config value by dotted key, or a root attribute by its name."""
        try:
            return config_value(self.config, key)
        except KeyError:
            if key in self.attrs:
                return self.attrs[key]
            raise


def _read_scalar(path: str, where: str, ds, n_batches) -> dict:
    """One scalar observable: its batch means (K,) and the attributes mean and error."""
    missing = [k for k in ("mean", "error") if k not in ds.attrs]
    if missing:
        raise RunFileError(path, f"{where} lacks the attribute(s) {', '.join(missing)}")
    value = np.asarray(ds[()])
    if value.ndim != 1 or value.dtype.kind not in "fiu":
        raise RunFileError(path, f"{where} is not a 1-D numeric dataset of batch means "
                           f"(shape {value.shape})")
    if n_batches is not None and value.size != n_batches:
        raise RunFileError(path, f"{where} holds {value.size} batch means, the group's "
                           f"n_batches is {n_batches}")
    try:
        mean, error = float(ds.attrs["mean"]), float(ds.attrs["error"])
    except (TypeError, ValueError):
        raise RunFileError(path, f"{where}: attributes mean and error are not "
                           "numbers") from None
    return {"batch_means": value.astype(np.float64), "mean": mean, "error": error}


def _edges(path: str, where: str, edges) -> None:
    if edges.ndim != 1 or edges.size < 2 or edges.dtype.kind not in "fiu":
        raise RunFileError(path, f"{where} is not a 1-D array of at least 2 bin edges "
                           f"(shape {edges.shape})")
    if not np.all(np.diff(edges) > 0):
        raise RunFileError(path, f"{where} is not strictly increasing")


def _read_histogram(path: str, where: str, grp) -> dict:
    """A histogram group: its edges, counts, density, error (shapes checked) and attrs."""
    import h5py
    hist = {k: np.asarray(v[()]) for k, v in grp.items() if isinstance(v, h5py.Dataset)}
    name = where.rsplit("/", 1)[-1]
    missing = [k for k in HISTOGRAMS[name] + HISTOGRAM_ARRAYS if k not in hist]
    if missing:
        raise RunFileError(path, f"{where} lacks {', '.join(missing)}")
    for e in HISTOGRAMS[name]:
        _edges(path, f"{where}/{e}", hist[e])
    shape = tuple(hist[e].size - 1 for e in HISTOGRAMS[name])
    for k in HISTOGRAM_ARRAYS:
        if hist[k].shape != shape:
            raise RunFileError(path, f"{where}/{k} has shape {hist[k].shape}, its edges "
                               f"give {shape}")
        if hist[k].dtype.kind not in "fiu":
            raise RunFileError(path, f"{where}/{k} is not numeric")
    hist["attrs"] = {k: _plain(v) for k, v in grp.attrs.items()}
    return hist


def _read_observables(path: str, grp, version: int) -> tuple:
    """(attrs, observables) of a /production/observables group, validated.

    Format 3: scalar name -> {"batch_means", "mean", "error"}; histogram name ->
    {arrays..., "attrs"}. Formats 1-2 (flat datasets such as density_counts and
    density_edges): name -> array. Other datasets are kept as arrays, other groups
    are ignored.
    """
    import h5py
    where = "/production/observables/"
    attrs = {k: _plain(v) for k, v in grp.attrs.items()}
    n_batches = attrs.get("n_batches")
    if n_batches is not None:
        try:
            n_batches = int(n_batches)
        except (TypeError, ValueError):
            raise RunFileError(path, f"{where[:-1]} attribute n_batches {n_batches!r} is not "
                               "an integer") from None
    out = {}
    for name, item in grp.items():
        if isinstance(item, h5py.Dataset):
            if name in HISTOGRAMS and version >= 3:
                raise RunFileError(path, f"{where}{name} is a dataset, not a group")
            if (version >= 3 and name in SCALAR_OBSERVABLES) or (
                    "mean" in item.attrs and "error" in item.attrs):
                out[name] = _read_scalar(path, where + name, item, n_batches)
            else:                                                   # formats 1-2
                out[name] = np.asarray(item[()])
        elif name in HISTOGRAMS:
            out[name] = _read_histogram(path, where + name, item)
    if "density_counts" in out or "density_edges" in out:          # formats 1-2
        if not ("density_counts" in out and "density_edges" in out):
            raise RunFileError(path, f"{where}density_counts and density_edges come "
                               "in pairs; one is missing")
        _edges(path, where + "density_edges", out["density_edges"])
        counts = out["density_counts"]
        if counts.ndim < 1 or counts.shape[-1] != out["density_edges"].size - 1:
            raise RunFileError(path, f"{where}density_counts has shape {counts.shape}, "
                               f"density_edges give {out['density_edges'].size - 1} bins")
    return attrs, out


def _open(path: str):
    import h5py
    if not os.path.exists(path):
        raise RunFileError(path, "no such file")
    if os.path.isdir(path):
        raise RunFileError(path, "is a directory, not a run file")
    try:
        is_hdf5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise RunFileError(path, f"cannot be read ({exc})") from None
    if not is_hdf5:
        raise RunFileError(path, "not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as exc:
        raise RunFileError(path, f"cannot open the HDF5 file ({exc})") from None


def read_run(path: str, series: tuple = PRODUCTION_SERIES, require: tuple = ()) -> RunData:
    """Read and validate one run file.

    series : production datasets to load when present.
    require : dataset paths that must be present (e.g. ``("production/local_energy",)``);
        a missing one raises :class:`RunFileError`.
    Raises RunFileError for a missing file, a non-HDF5 file, an HDF5 file that is not
    a run file, an unsupported format_version, or malformed groups.
    """
    import h5py
    import yaml

    path = str(path)
    with _open(path) as h5:
        missing = [k for k in REQUIRED_ROOT if k not in h5.attrs]
        if missing:
            raise RunFileError(path, "not a pvmc run file (root attribute(s) "
                               + ", ".join(missing) + " missing)")
        attrs = {k: _plain(v) for k, v in h5.attrs.items()}
        try:
            version = int(attrs["format_version"])
        except (TypeError, ValueError):
            raise RunFileError(path, f"format_version {attrs['format_version']!r} is not an "
                               "integer") from None
        if version not in SUPPORTED_FORMATS:
            raise RunFileError(path, f"format_version {version} is not supported by this "
                               f"analysis (supported: {', '.join(map(str, SUPPORTED_FORMATS))})")
        config_text = _text(h5.attrs["config"])
        try:
            config = yaml.safe_load(config_text) or {}
        except yaml.YAMLError as exc:
            raise RunFileError(path, f"root attribute config is not valid YAML ({exc})") from None
        if not isinstance(config, dict):
            raise RunFileError(path, "root attribute config is not a YAML mapping")
        for item in require:
            if item.strip("/") not in h5:
                raise RunFileError(path, f"missing dataset /{item.strip('/')}")
        run = RunData(path, attrs, config, config_text)

        # /optimization: equal-length 1-D datasets (+ params 2-D); may be empty or absent.
        if "optimization" in h5:
            grp = h5["optimization"]
            lengths = {}
            for name in OPT_FIELDS:
                if name in grp:
                    ds = grp[name]
                    if not isinstance(ds, h5py.Dataset) or ds.ndim != 1:
                        raise RunFileError(path, f"/optimization/{name} is not a 1-D dataset")
                    lengths[name] = ds.shape[0]
            if lengths:
                n_iter = min(lengths.values())   # a row being appended: use complete rows
                if "rows_written" in grp:        # format 2: preallocated, counted rows
                    n_iter = max(0, min(n_iter, int(grp["rows_written"][0])))
                for name in lengths:
                    run.optimization[name] = np.asarray(grp[name][:n_iter])
                if "params" in grp and grp["params"].ndim == 2:
                    run.optimization["params"] = np.asarray(grp["params"][:n_iter])

        # /production: (n_chains, n_samples), only the filled columns.
        if "production" in h5:
            grp = h5["production"]
            run.production_attrs = {k: _plain(v) for k, v in grp.attrs.items()}
            for name in series:
                if name not in grp:
                    continue
                ds = grp[name]
                if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
                    raise RunFileError(path, f"/production/{name} is not a 2-D "
                                       "(n_chains, n_samples) dataset")
                filled = (grp["samples_written"][0] if "samples_written" in grp
                          else run.production_attrs.get("samples_per_chain", ds.shape[1]))
                try:
                    filled = int(filled)
                except (TypeError, ValueError):
                    raise RunFileError(path, "/production attribute samples_per_chain is not "
                                       "an integer") from None
                filled = max(0, min(filled, ds.shape[1]))
                run.production[name] = np.asarray(ds[:, :filled], dtype=np.float64)
            if "observables" in grp and isinstance(grp["observables"], h5py.Group):
                run.observables_attrs, run.observables = _read_observables(
                    path, grp["observables"], version)

        if "wavefunction" in h5:
            grp = h5["wavefunction"]
            run.wavefunction_attrs = {k: _plain(v) for k, v in grp.attrs.items()}
            for name, ds in grp.items():
                if isinstance(ds, h5py.Dataset):
                    run.wavefunction[name] = np.asarray(ds[()])
        if "summary" in h5:
            run.summary = {k: _plain(v) for k, v in h5["summary"].attrs.items()}
        if "segments" in h5:
            grp = h5["segments"]
            cols = {}
            for name, ds in grp.items():
                if isinstance(ds, h5py.Dataset) and ds.ndim == 1:
                    cols[name] = [_plain(v) for v in ds[()]]
            n = min((len(v) for v in cols.values()), default=0)
            run.segments = [{k: v[i] for k, v in cols.items()} for i in range(n)]
    return run
