"""Reading and validating pvmc run files (DESIGN.md section 4), read-only.

A file is a run file iff it is HDF5 and its root has the attributes
``format_version``, ``status`` and ``config``. Everything else is optional, because
a run that is still ``running`` or ended ``failed`` may have written only part of
it; what is there is read, and a group that is present must be well formed.

The file is opened read-only with HDF5 file locking off, so a file that ``pvmc``
still has open for writing can be analysed; the view is that of its last flush.
Format 2 allocates the growing datasets in full up front; only the first
``/optimization/rows_written`` rows and ``/production/samples_written`` columns are
data, and only those are read.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RunFileError", "RunData", "read_run", "config_value", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = (1, 2, 3)
OPT_FIELDS = ("iteration", "energy", "energy_error", "variance", "acceptance", "grad_norm",
              "learning_rate", "wall_time")
REQUIRED_ROOT = ("format_version", "status", "config")
# kinetic, trap, interaction: format 3; potential (= trap + interaction): formats 1-2
PRODUCTION_SERIES = ("local_energy", "kinetic", "trap", "interaction", "potential")
HISTOGRAMS = {"density": ("edges",), "pair_distance": ("edges",),
              "density_image": ("x_edges", "y_edges")}


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
    observables  : /production/observables (format 3): scalar name (local_energy,
                   kinetic, trap, interaction, r12) -> {"batch_means" (K,), "mean",
                   "error"}; histogram name (density, density_image, pair_distance) ->
                   {its arrays (edges or x_edges/y_edges, counts, density, error),
                   "attrs": {...}}. Formats 1-2: flat name -> array.
    observables_attrs : attrs of /production/observables (n_batches, samples, ...)
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


def _read_observables(path: str, grp) -> tuple:
    """(attrs, observables) of a /production/observables group, validated."""
    import h5py
    where = "/production/observables/"
    out = {}
    for name, item in grp.items():
        if isinstance(item, h5py.Dataset):
            value = np.asarray(item[()])
            if "mean" in item.attrs and "error" in item.attrs:      # a scalar observable
                if value.ndim != 1:
                    raise RunFileError(path, f"{where}{name} is not 1-D (batch means)")
                out[name] = {"batch_means": value, "mean": float(item.attrs["mean"]),
                             "error": float(item.attrs["error"])}
            else:                                                   # formats 1-2
                out[name] = value
        elif name in HISTOGRAMS:
            hist = {k: np.asarray(v[()]) for k, v in item.items()
                    if isinstance(v, h5py.Dataset)}
            missing = [k for k in HISTOGRAMS[name] + ("counts", "density", "error")
                       if k not in hist]
            if missing:
                raise RunFileError(path, f"{where}{name} lacks {', '.join(missing)}")
            shape = tuple(hist[e].size - 1 for e in HISTOGRAMS[name])
            for k in ("counts", "density", "error"):
                if hist[k].shape != shape:
                    raise RunFileError(path, f"{where}{name}/{k} has shape {hist[k].shape}, "
                                       f"its edges give {shape}")
            hist["attrs"] = {k: _plain(v) for k, v in item.attrs.items()}
            out[name] = hist
    return {k: _plain(v) for k, v in grp.attrs.items()}, out


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
                    path, grp["observables"])

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
