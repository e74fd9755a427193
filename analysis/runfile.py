"""Reading and validating pvmc run files (docs/runfile.md), read-only.

A file is a run file iff it is HDF5 and its root has the attributes
``format_version``, ``status`` and ``config``. Everything else is optional, because
a run that is still ``running`` or ended ``failed`` may have written only part of
it; what is there is read, and a group that is present must be well formed.

The file is opened read-only with HDF5 file locking off, so a file that ``pvmc``
still has open for writing can be analysed; the view is that of its last flush.
Formats 2 to 4 allocate the growing datasets in full up front; only the first
``/optimization/rows_written`` rows and ``/production/samples_written`` columns are
data, and only those are read. Formats 3-4 store the energy parts kinetic, trap and
interaction (formats 1-2: kinetic and potential) and the group
``/production/observables`` (batch means of scalars, histograms), read into
``RunData.observables``. Format 4 adds to ``/wavefunction`` the attribute
``statistics`` and, with Slater determinants, ``orbitals``, ``orbital_scale`` and the
attribute ``inverse_drift``.

Damaged files. Every read of the file goes through :func:`_reading`, which turns
whatever h5py or HDF5 raise on damaged bytes (see ``READ_ERRORS``) into a
:class:`RunFileError` naming the object being read; a dataset stored with the
Fletcher32 filter whose checksum fails is reported as such. What is read is then
checked for the types and ranges the analysis relies on (counters within the data,
numbers that are numbers, text that is UTF-8), so that damage the library does not
notice is an error too rather than a wrong number.
"""

from __future__ import annotations

import gc
import mmap
import numbers
import os
import pickle
import re
import select
import signal
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from parallel_vmc.runfile import schema as S
from parallel_vmc.runfile.schema import shell_volumes  # re-exported: the one formula

__all__ = [
    "RunFileError",
    "RunData",
    "read_run",
    "config_value",
    "shell_volumes",
    "SUPPORTED_FORMATS",
    "PRODUCTION_SERIES",
    "SCALAR_OBSERVABLES",
    "HISTOGRAMS",
    "READ_ERRORS",
    "is_number",
]

SUPPORTED_FORMATS = (1, 2, 3, 4, 5, 6)  # 4: format 3 + /wavefunction of fermions; 5: + the
# optional 3D densities along the axes; 6: + /production/writer (not read here)
OPT_FIELDS = (S.ITERATION,) + S.OPT_FIELDS
CONFIG_SECTIONS = ("system", "wavefunction", "sampler", "optimizer", "production", "output")
# the names of the file: parallel_vmc.schema (the writer's); formats 1-2 had potential
# (= trap + interaction) where format 3 has trap and interaction
REQUIRED_ROOT = S.REQUIRED_ROOT
PRODUCTION_SERIES = S.PRODUCTION_SERIES + (S.POTENTIAL,)
SCALAR_OBSERVABLES = S.SCALAR_OBSERVABLES
HISTOGRAMS = S.HISTOGRAMS  # histogram group -> its edges (one per axis)
HISTOGRAM_ARRAYS = S.HISTOGRAM_ARRAYS
_OBSERVABLES = f"/{S.PRODUCTION}/{S.OBSERVABLES}"
CHILD_TIMEOUT = 60.0  # s for the child to read a file's structure (healthy: ms)
# What h5py and HDF5 raise on damaged bytes: OSError (library errors, failed checksums,
# reads beyond the end), RuntimeError (damaged object headers; NotImplementedError for
# a garbled type), KeyError/IndexError (damaged links and messages), ValueError and
# TypeError (shapes and types h5py cannot map; UnicodeDecodeError for text),
# AttributeError, OverflowError (a garbled size).
READ_ERRORS = (
    OSError,
    RuntimeError,
    LookupError,
    ValueError,
    TypeError,
    AttributeError,
    ArithmeticError,
)


class RunFileError(Exception):
    """A file that cannot be analysed; the message names the file and what is wrong."""

    def __init__(self, path: str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# ----------------------------------------------------------------------------- damage
def _one_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's message on one line, at most ``limit`` characters."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _has_fletcher32(ds) -> bool:
    try:
        return ds is not None and bool(ds.fletcher32)
    except READ_ERRORS:
        return False


def _checksum_failed(exc: BaseException, ds) -> bool:
    """Whether ``exc`` is a failed Fletcher32 checksum. HDF5 1.x names it in the
    message; HDF5 2.0 only says that a filter failed during the read, which for a
    dataset with the Fletcher32 filter (pvmc uses no other) is the same thing."""
    text = str(exc).lower()
    if "fletcher32" in text or "checksum" in text:
        return True
    return isinstance(exc, OSError) and "filter" in text and _has_fletcher32(ds)


def _damage(path: str, where: str, exc: BaseException, ds=None) -> RunFileError:
    """The RunFileError for an exception raised while reading ``where``."""
    if isinstance(exc, UnicodeDecodeError):
        return RunFileError(path, f"{where}: is not valid UTF-8 text: the file is damaged")
    if _checksum_failed(exc, ds):
        return RunFileError(path, f"{where}: failed its checksum: the file is damaged")
    return RunFileError(path, f"{where}: cannot be read, the file is damaged ({_one_line(exc)})")


_progress = None  # in the guard's child: told each object before it is read
_structure_only = False  # in the guard's child: bulk datasets are deferred (_bulk)


@contextmanager
def _reading(path: str, where: str, ds=None):
    """Turn any exception h5py/HDF5 raise inside the block into a RunFileError naming
    ``where`` (``ds``: the dataset being read, for the checksum diagnosis)."""
    if _progress is not None:
        _progress(where)
    try:
        yield
    except RunFileError:
        raise
    except READ_ERRORS as exc:
        raise _damage(path, where, exc, ds) from None


# ----------------------------------------------------------------------------- values
def _decode(raw: bytes, field_size: int | None = None) -> str:
    """UTF-8 text, strictly (damaged text is an error, not replacement characters).
    A fixed-length field that its writer filled to the brim may end in a character
    cut in two; only that tail is dropped."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut = (
            field_size is not None
            and exc.reason == "unexpected end of data"
            and exc.end == len(raw)
            and len(raw) >= field_size - 4
        )
        if not cut:
            raise
        return raw[: exc.start].decode("utf-8")


def _field_size(dtype) -> int | None:
    """Bytes per value of fixed-length text, else None."""
    return dtype.itemsize if dtype.kind == "S" else None


def _plain(value, field_size: int | None = None):
    """HDF5 attribute or dataset value -> plain Python value (text decoded strictly:
    UnicodeDecodeError for bytes that are not UTF-8)."""
    if isinstance(value, bytes):
        return _decode(bytes(value), field_size)
    if isinstance(value, np.generic):
        item = value.item()
        if isinstance(item, np.generic):  # e.g. long double: no type pvmc writes
            raise TypeError(f"unexpected HDF5 type {value.dtype}")
        return item
    if isinstance(value, np.ndarray):
        if value.shape == ():
            return _plain(value[()], field_size)
        return [_plain(v, field_size) for v in value]
    return value


def _integer(value) -> int | None:
    """value as an int if it is a whole number (not a bool), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def is_number(value) -> bool:
    """A real number (int or float, not bool or text)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _label(where: str, name: str) -> str:
    return f"root attribute {name}" if where == "/" else f"{where} attribute {name}"


def _require_numbers(path: str, where: str, attrs: dict, names=(), whole=()) -> None:
    """The attributes ``names`` (numbers) and ``whole`` (whole numbers) of ``where``,
    where present, are what they should be."""
    for name in (*names, *whole):
        if name not in attrs:
            continue
        value = attrs[name]
        ok = _integer(value) is not None if name in whole else is_number(value)
        if not ok:
            kind = "a whole number" if name in whole else "a number"
            raise RunFileError(
                path, f"{_label(where, name)} is {value!r:.60}, not {kind}: the file is damaged"
            )


def _counter(path: str, where: str, value, limit: int) -> int:
    """A count of valid rows or columns: a whole number from 0 to ``limit`` (the length
    allocated for them), else the file is damaged."""
    n = _integer(value)
    if n is None or not 0 <= n <= limit:
        raise RunFileError(
            path,
            f"{where} is {value!r:.60}, not a whole number from 0 to "
            f"{limit} (the length of the data): the file is damaged",
        )
    return n


# ----------------------------------------------------------------------------- objects
def _kind(item) -> str:
    import h5py

    if isinstance(item, h5py.Dataset):
        return "dataset"
    return "group" if isinstance(item, h5py.Group) else "named datatype"


def _names(path: str, grp, where: str) -> list:
    """Names of the members of a group."""
    with _reading(path, where):
        return list(grp)


def _child(path: str, parent, name: str, where: str):
    """parent[name], or None if the group lists no such member. (Not ``name in
    parent``: h5py answers False for a damaged link too, which would hide the damage.)"""
    if name not in _names(path, parent, where.rsplit("/", 1)[0] or "/"):
        return None
    with _reading(path, where):
        return parent[name]


def _member(path: str, h5, item: str):
    """The object at the path ``item`` (e.g. "production/kinetic"), or None."""
    import h5py

    node, where = h5, ""
    for part in item.strip("/").split("/"):
        where += "/" + part
        if not isinstance(node, h5py.Group):
            return None
        node = _child(path, node, part, where)
        if node is None:
            return None
    return node


def _group(path: str, parent, name: str, where: str):
    """The group parent[name], or None if absent."""
    import h5py

    item = _child(path, parent, name, where)
    if item is not None and not isinstance(item, h5py.Group):
        raise RunFileError(path, f"{where} is a {_kind(item)}, not a group")
    return item


def _dataset(
    path: str,
    parent,
    name: str,
    where: str,
    ndim: int | None = None,
    numeric: bool = True,
    shape_text: str = "",
):
    """The dataset parent[name] (``ndim`` dimensions, numeric unless told), or None."""
    import h5py

    item = _child(path, parent, name, where)
    if item is None:
        return None
    if not isinstance(item, h5py.Dataset):
        raise RunFileError(path, f"{where} is a {_kind(item)}, not a dataset")
    with _reading(path, where):
        shape, dtype = item.shape, item.dtype
    if ndim is not None and len(shape) != ndim:
        raise RunFileError(path, f"{where} is not a {ndim}-D {shape_text}dataset (shape {shape})")
    if numeric and dtype.kind not in "fiu":
        raise RunFileError(path, f"{where} is not numeric (type {dtype})")
    return item


def _values(path: str, ds, where: str, selection=()):
    """ds[selection] as an array."""
    with _reading(path, where, ds):
        return np.asarray(ds[selection])


@dataclass(frozen=True)
class _Deferred:
    """A bulk dataset that the guard's child leaves to the parent to read."""

    where: str
    selection: tuple
    float64: bool


def _bulk(path: str, ds, where: str, selection: tuple, float64: bool = False):
    """A large dataset (the samples, the optimization rows) as an array (float64 if
    asked). The guard's child walks its chunk index and reads one element (what can
    crash HDF5 is the layout, not the data bytes) and returns a _Deferred for the
    parent to read."""
    if _structure_only:
        with _reading(path, where, ds):
            if ds.chunks is not None and hasattr(ds.id, "chunk_iter"):  # HDF5 >= 1.14
                ds.id.chunk_iter(lambda info: None)
            if ds.size:
                ds[(0,) * ds.ndim]
        return _Deferred(where, selection, float64)
    values = _values(path, ds, where, selection)
    return values.astype(np.float64, copy=False) if float64 else values


def _attrs(path: str, obj, where: str) -> dict:
    """All attributes of obj as plain Python values."""
    with _reading(path, "root attributes" if where == "/" else f"{where} attributes"):
        names = list(obj.attrs)
    out = {}
    for name in names:
        with _reading(path, _label(where, name)):
            size = _field_size(obj.attrs.get_id(name).dtype)
            out[name] = _plain(obj.attrs[name], size)
    return out


def config_value(config: dict, key: str):
    """``config['system']['omega']`` for key ``'system.omega'``; KeyError names the key."""
    node = config
    for part in key.split("."):
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
    dmc          : /dmc of a run with a DMC phase (:func:`_read_dmc`): {"table":
                   {field: (n_time_steps,) float64} of DMC_FIELDS, "attrs": dict of
                   DMC_ATTRS, "series": [{name: (steps,) float64} of DMC_SERIES] one
                   per time step, warm-up steps first}; empty if the group is absent
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
    dmc: dict = field(default_factory=dict)
    dmc_note: str = ""  # why a /dmc group present was not read (an earlier layout)

    @property
    def status(self) -> str:
        return str(self.attrs.get(S.STATUS, "unknown"))

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
    attrs = _attrs(path, ds, where)
    missing = [k for k in (S.MEAN, S.ERROR) if k not in attrs]
    if missing:
        raise RunFileError(path, f"{where} lacks the attribute(s) {', '.join(missing)}")
    value = _values(path, ds, where)
    if value.ndim != 1 or value.dtype.kind not in "fiu":
        raise RunFileError(
            path, f"{where} is not a 1-D numeric dataset of batch means (shape {value.shape})"
        )
    if n_batches is not None and value.size != n_batches:
        raise RunFileError(
            path, f"{where} holds {value.size} batch means, the group's n_batches is {n_batches}"
        )
    if not (is_number(attrs[S.MEAN]) and is_number(attrs[S.ERROR])):
        raise RunFileError(path, f"{where}: attributes mean and error are not numbers")
    return {
        "batch_means": value.astype(np.float64),
        "mean": float(attrs[S.MEAN]),
        "error": float(attrs[S.ERROR]),
    }


def _edges(path: str, where: str, edges) -> None:
    if edges.ndim != 1 or edges.size < 2 or edges.dtype.kind not in "fiu":
        raise RunFileError(
            path, f"{where} is not a 1-D array of at least 2 bin edges (shape {edges.shape})"
        )
    if not np.all(np.diff(edges) > 0):
        raise RunFileError(path, f"{where} is not strictly increasing")


def _read_histogram(path: str, where: str, grp) -> dict:
    """A histogram group: its edges, counts, density, error (shapes checked) and attrs."""
    name = where.rsplit("/", 1)[-1]
    hist = {}
    for key in HISTOGRAMS[name] + HISTOGRAM_ARRAYS:
        ds = _dataset(path, grp, key, f"{where}/{key}", numeric=False)
        if ds is not None:
            hist[key] = _values(path, ds, f"{where}/{key}")
    missing = [k for k in HISTOGRAMS[name] + HISTOGRAM_ARRAYS if k not in hist]
    if missing:
        raise RunFileError(path, f"{where} lacks {', '.join(missing)}")
    for e in HISTOGRAMS[name]:
        _edges(path, f"{where}/{e}", hist[e])
    shape = tuple(hist[e].size - 1 for e in HISTOGRAMS[name])
    for k in HISTOGRAM_ARRAYS:
        if hist[k].shape != shape:
            raise RunFileError(
                path, f"{where}/{k} has shape {hist[k].shape}, its edges give {shape}"
            )
        if hist[k].dtype.kind not in "fiu":
            raise RunFileError(path, f"{where}/{k} is not numeric")
    hist["attrs"] = _attrs(path, grp, where)
    _require_numbers(
        path,
        where,
        hist["attrs"],
        ("overflow", "r_max", "mean", "error"),
        whole=("dimensions", "particles"),
    )
    return hist


def _read_observables(path: str, grp, version: int) -> tuple:
    """(attrs, observables) of a /production/observables group, validated.

    Format 3: scalar name -> {"batch_means", "mean", "error"}; histogram name ->
    {arrays..., "attrs"}. Formats 1-2 (flat datasets such as density_counts and
    density_edges): name -> array. Other datasets are kept as arrays, other groups
    are ignored.
    """
    import h5py

    where = _OBSERVABLES
    attrs = _attrs(path, grp, where)
    _require_numbers(
        path,
        where,
        attrs,
        ("samples", "energy_error_batch_means", "energy_error_blocking"),
        whole=("n_batches",),
    )
    n_batches = _integer(attrs.get("n_batches"))
    out = {}
    for name in _names(path, grp, where):
        here = f"{where}/{name}"
        item = _child(path, grp, name, here)
        if isinstance(item, h5py.Dataset):
            if name in HISTOGRAMS and version >= 3:
                raise RunFileError(path, f"{here} is a dataset, not a group")
            with _reading(path, here):
                has_attrs = S.MEAN in item.attrs and S.ERROR in item.attrs
            if (version >= 3 and name in SCALAR_OBSERVABLES) or has_attrs:
                out[name] = _read_scalar(path, here, item, n_batches)
            else:  # formats 1-2
                out[name] = _values(path, item, here)
        elif name in HISTOGRAMS and isinstance(item, h5py.Group):
            out[name] = _read_histogram(path, here, item)
    if "density_counts" in out or "density_edges" in out:  # formats 1-2
        if not ("density_counts" in out and "density_edges" in out):
            raise RunFileError(
                path, f"{where}/density_counts and density_edges come in pairs; one is missing"
            )
        _edges(path, f"{where}/density_edges", out["density_edges"])
        counts = out["density_counts"]
        if counts.ndim < 1 or counts.shape[-1] != out["density_edges"].size - 1:
            raise RunFileError(
                path,
                f"{where}/density_counts has shape {counts.shape}, "
                f"density_edges give {out['density_edges'].size - 1} bins",
            )
        if counts.dtype.kind not in "fiu":
            raise RunFileError(path, f"{where}/density_counts is not numeric")
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
        raise RunFileError(path, f"cannot be read ({_one_line(exc)})") from None
    if not is_hdf5:
        raise RunFileError(path, "not an HDF5 file")
    try:
        return h5py.File(path, "r", locking=False)
    except READ_ERRORS as exc:
        raise RunFileError(
            path, f"cannot open the HDF5 file: it is damaged or unreadable ({_one_line(exc)})"
        ) from None


def _parse_config(path: str, text: str) -> dict:
    """The root attribute config: a YAML mapping whose sections are mappings."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser if built
    try:
        config = yaml.load(text, Loader=loader) or {}
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        raise RunFileError(
            path, f"root attribute config is not valid YAML ({_one_line(exc)})"
        ) from None
    if not isinstance(config, dict):
        raise RunFileError(path, "root attribute config is not a YAML mapping")
    for name in CONFIG_SECTIONS:
        if config.get(name) is not None and not isinstance(config[name], dict):
            raise RunFileError(path, f"root attribute config: section {name} is not a mapping")
    return config


def _read_root(path: str, h5) -> RunData:
    """The root attributes and the parsed config, validated."""
    attrs = _attrs(path, h5, "/")
    missing = [k for k in REQUIRED_ROOT if k not in attrs]
    if missing:
        raise RunFileError(
            path, "not a pvmc run file (root attribute(s) " + ", ".join(missing) + " missing)"
        )
    version = _integer(attrs[S.FORMAT])
    if version is None:
        raise RunFileError(path, f"format_version {attrs[S.FORMAT]!r:.60} is not an integer")
    if version not in SUPPORTED_FORMATS:
        raise RunFileError(
            path,
            f"format_version {version} is not supported by this "
            f"analysis (supported: {', '.join(map(str, SUPPORTED_FORMATS))})",
        )
    for key in (S.STATUS, S.CONFIG):
        if not isinstance(attrs[key], str):
            raise RunFileError(path, f"root attribute {key} is not text: the file is damaged")
    _require_numbers(path, "/", attrs, whole=("mpi_size", "walkers_per_rank", "seed"))
    return RunData(path, attrs, _parse_config(path, attrs[S.CONFIG]), attrs[S.CONFIG])


def _read_optimization(path: str, h5, run: RunData) -> None:
    """/optimization: equal-length 1-D datasets (+ params 2-D); may be empty or absent.
    Format 1 appends rows (the shortest dataset counts: a row may be half written);
    formats 2-3 allocate them and count the valid ones in rows_written."""
    grp = _group(path, h5, S.OPTIMIZATION, f"/{S.OPTIMIZATION}")
    if grp is None:
        return
    fields = {}
    for name in OPT_FIELDS + (S.PARAMS,):
        where = f"/{S.OPTIMIZATION}/{name}"
        ds = _dataset(path, grp, name, where, ndim=2 if name == S.PARAMS else 1)
        if ds is not None:
            fields[name] = ds
    if not set(fields) - {S.PARAMS}:
        return
    n_iter = min(ds.shape[0] for ds in fields.values())
    rows = _read_counter(path, grp, S.ROWS_WRITTEN, f"/{S.OPTIMIZATION}/{S.ROWS_WRITTEN}", n_iter)
    if rows is not None:
        n_iter = rows
    for name, ds in fields.items():
        run.optimization[name] = _bulk(path, ds, f"/{S.OPTIMIZATION}/{name}", np.s_[:n_iter])


def _read_counter(path: str, grp, name: str, where: str, limit: int) -> int | None:
    """A one-element counter dataset (rows_written, samples_written), or None."""
    ds = _dataset(path, grp, name, where)
    if ds is None:
        return None
    values = _values(path, ds, where).ravel()
    if values.size != 1:
        raise RunFileError(path, f"{where} holds {values.size} values, not 1: the file is damaged")
    return _counter(path, where, _plain(values[0]), limit)


def _filled(path: str, grp, attrs: dict, columns: int) -> int:
    """Columns of /production that hold data: samples_written (formats 2-3, counted
    while running), the attribute samples_per_chain (set at the end; format 1's only
    count), else all. Both present must agree."""
    written = _read_counter(
        path, grp, S.SAMPLES_WRITTEN, f"/{S.PRODUCTION}/{S.SAMPLES_WRITTEN}", columns
    )
    per_chain = attrs.get("samples_per_chain")
    if per_chain is not None:
        per_chain = _counter(path, "/production attribute samples_per_chain", per_chain, columns)
    if written is not None and per_chain is not None and written != per_chain:
        raise RunFileError(
            path,
            f"/production/samples_written ({written}) and the attribute "
            f"samples_per_chain ({per_chain}) disagree: the file is damaged",
        )
    return next((n for n in (written, per_chain) if n is not None), columns)


def _read_production(path: str, h5, run: RunData, series: tuple, version: int) -> None:
    """/production: the (n_chains, n_samples) series (only the filled columns), its
    attributes and /production/observables."""
    grp = _group(path, h5, S.PRODUCTION, f"/{S.PRODUCTION}")
    if grp is None:
        return
    run.production_attrs = _attrs(path, grp, f"/{S.PRODUCTION}")
    _require_numbers(path, f"/{S.PRODUCTION}", run.production_attrs, ("acceptance", "step"))
    datasets = {}
    for name in series:
        ds = _dataset(
            path, grp, name, f"/{S.PRODUCTION}/{name}", ndim=2, shape_text="(n_chains, n_samples) "
        )
        if ds is not None:
            datasets[name] = ds
    if datasets:
        shapes = {name: ds.shape for name, ds in datasets.items()}
        first = next(iter(shapes))
        odd = [name for name, shape in shapes.items() if shape != shapes[first]]
        if odd:
            raise RunFileError(
                path,
                f"/production/{odd[0]} has shape {shapes[odd[0]]}, "
                f"/production/{first} {shapes[first]}: the file is damaged",
            )
        filled = _filled(path, grp, run.production_attrs, shapes[first][1])
        for name, ds in datasets.items():
            run.production[name] = _bulk(
                path, ds, f"/{S.PRODUCTION}/{name}", np.s_[:, :filled], float64=True
            )
    obs = _group(path, grp, S.OBSERVABLES, _OBSERVABLES)
    if obs is not None:
        run.observables_attrs, run.observables = _read_observables(path, obs, version)


def _read_wavefunction(path: str, h5, run: RunData) -> None:
    """/wavefunction: its datasets (sigma and orbital_scale single numbers, orbitals
    (n, D) whole numbers) and attributes (inverse_drift a number)."""
    import h5py

    grp = _group(path, h5, S.WAVEFUNCTION, f"/{S.WAVEFUNCTION}")
    if grp is None:
        return
    run.wavefunction_attrs = _attrs(path, grp, f"/{S.WAVEFUNCTION}")
    for name in _names(path, grp, f"/{S.WAVEFUNCTION}"):
        where = f"/{S.WAVEFUNCTION}/{name}"
        item = _child(path, grp, name, where)
        if isinstance(item, h5py.Dataset):
            run.wavefunction[name] = _values(path, item, where)
    for name in ("sigma", S.ORBITAL_SCALE):
        value = run.wavefunction.get(name)
        if value is not None and (value.size != 1 or value.dtype.kind not in "fiu"):
            raise RunFileError(
                path,
                f"/wavefunction/{name} is not a single number (shape "
                f"{value.shape}, type {value.dtype}): the file is damaged",
            )
    orbitals = run.wavefunction.get(S.ORBITALS)
    if orbitals is not None and (orbitals.ndim != 2 or orbitals.dtype.kind not in "iu"):
        raise RunFileError(
            path,
            f"/wavefunction/{S.ORBITALS} is not a 2-D array of "
            f"quantum numbers (shape {orbitals.shape}, type "
            f"{orbitals.dtype}): the file is damaged",
        )
    _require_numbers(path, f"/{S.WAVEFUNCTION}", run.wavefunction_attrs, (S.INVERSE_DRIFT,))


def _read_summary(path: str, h5, run: RunData) -> None:
    grp = _group(path, h5, S.SUMMARY, f"/{S.SUMMARY}")
    if grp is not None:
        run.summary = _attrs(path, grp, f"/{S.SUMMARY}")
        _require_numbers(
            path, f"/{S.SUMMARY}", run.summary, ("energy", "error"), whole=("n_samples",)
        )


def _read_segments(path: str, h5, run: RunData) -> None:
    """/segments: one dict per launch from the 1-D datasets (columns)."""
    import h5py

    grp = _group(path, h5, S.SEGMENTS, f"/{S.SEGMENTS}")
    if grp is None:
        return
    cols = {}
    for name in _names(path, grp, f"/{S.SEGMENTS}"):
        where = f"/{S.SEGMENTS}/{name}"
        item = _child(path, grp, name, where)
        if isinstance(item, h5py.Dataset) and item.ndim == 1:
            values = _values(path, item, where)
            with _reading(path, where):
                cols[name] = [_plain(v, _field_size(values.dtype)) for v in values]
    n = min((len(v) for v in cols.values()), default=0)
    run.segments = [{k: v[i] for k, v in cols.items()} for i in range(n)]


def _dmc_vectors(path: str, grp, where: str, names: tuple, counts: str) -> dict:
    """The 1-D numeric datasets ``names`` of a /dmc group as float64, all of the first
    one's length (``counts``: what one value stands for, for the message)."""
    absent = [n for n in names if n not in _names(path, grp, where)]
    if absent:
        raise RunFileError(
            path,
            f"{where} lacks {', '.join(absent)}: the file is damaged or incomplete (the "
            "DMC phase writes them all at once)",
        )
    out = {}
    for name in names:
        here = f"{where}/{name}"
        ds = _dataset(path, grp, name, here, ndim=1)
        out[name] = _values(path, ds, here).astype(np.float64)
        n = out[names[0]].size
        if out[name].size != n:
            raise RunFileError(
                path,
                f"{here} holds {out[name].size} value(s), {where}/{names[0]} {n} (one per "
                f"{counts}): the file is damaged",
            )
    return out


def _read_dmc(path: str, h5, run: RunData) -> None:
    """/dmc: the table DMC_FIELDS (one value per time step), the attributes DMC_ATTRS
    and per time step k the group STEP_GROUP % k of DMC_SERIES, of equal length and
    longer than the warm-up. Anything missing or of the wrong length is a RunFileError
    naming it."""
    where = f"/{S.DMC}"
    grp = _group(path, h5, S.DMC, where)
    if grp is None:
        return
    attrs = _attrs(path, grp, where)
    if "bias_window" in attrs and "bias_window" not in _names(path, grp, where):
        # the first layout (parallel_vmc 0e5512d..af4696c): one window for all time
        # steps and no per-step tau_eff, so its energies cannot be recomputed
        run.dmc_note = (
            f"{where} has the first DMC layout (no per-step tau_eff): not recomputed; "
            "pvmc info shows its stored table"
        )
        return
    absent = [a for a in S.DMC_ATTRS if a not in attrs]
    if absent:
        raise RunFileError(
            path, f"{where} lacks the attribute(s) {', '.join(absent)}: the file is damaged"
        )
    _require_numbers(
        path, where, attrs, ("energy_extrapolated", "error_extrapolated"), ("warmup_steps",)
    )
    warmup = _integer(attrs["warmup_steps"])
    if warmup < 0:
        raise RunFileError(path, f"{where} attribute warmup_steps is {warmup}, below 0")
    table = _dmc_vectors(path, grp, where, S.DMC_FIELDS, "time step")
    n = table[S.DMC_FIELDS[0]].size
    if n == 0:
        raise RunFileError(path, f"{where}/{S.DMC_FIELDS[0]} holds no time step")
    windows = table["bias_window"]
    if not np.all((windows >= 0) & (windows == np.round(windows))):
        raise RunFileError(
            path, f"{where}/bias_window holds values that are not whole numbers >= 0"
        )
    # one series group per time step, no more and no fewer
    pattern = re.escape(S.STEP_GROUP).replace("%d", "[0-9]+")
    groups = [S.STEP_GROUP % k for k in range(n)]
    found = [m for m in _names(path, grp, where) if re.fullmatch(pattern, m)]
    absent = [g for g in groups if g not in found]
    if absent:
        raise RunFileError(
            path,
            f"{where} lacks the series group(s) {', '.join(absent)} (one per time step: "
            f"{n} in {where}/{S.DMC_FIELDS[0]}): the file is damaged or incomplete",
        )
    extra = sorted(set(found) - set(groups))
    if extra:
        raise RunFileError(
            path,
            f"{where}/{extra[0]} belongs to no time step ({n} in {where}/{S.DMC_FIELDS[0]}): "
            "the file is damaged",
        )
    series = []
    for name in groups:
        here = f"{where}/{name}"
        per_step = _dmc_vectors(path, _group(path, grp, name, here), here, S.DMC_SERIES, "step")
        steps = per_step[S.DMC_SERIES[0]].size
        if steps <= warmup:
            raise RunFileError(
                path,
                f"{here} holds {steps} steps, not more than the {warmup} warm-up steps "
                "(no step counted): the file is damaged",
            )
        series.append(per_step)
    run.dmc = {"table": table, "attrs": attrs, "series": series}


def _read(path: str, series: tuple, require: tuple) -> RunData:
    """read_run without the guard."""
    with _reading(path, "/"):  # the net under the named reads below (e.g. the close)
        with _open(path) as h5:
            run = _read_root(path, h5)
            for item in require:
                if _member(path, h5, item) is None:
                    raise RunFileError(path, f"missing dataset /{item.strip('/')}")
            version = _integer(run.attrs[S.FORMAT])
            with _live(run):
                _read_optimization(path, h5, run)
                _read_production(path, h5, run, series, version)
                _read_wavefunction(path, h5, run)
                _read_summary(path, h5, run)
                _read_segments(path, h5, run)
                _read_dmc(path, h5, run)
    return run


@contextmanager
def _live(run: RunData):
    """A checksum failure in a file whose run is still going may be a chunk read while
    pvmc was writing it rather than damage: say so."""
    try:
        yield
    except RunFileError as exc:
        if run.status != S.RUNNING or "failed its checksum" not in exc.problem:
            raise
        raise RunFileError(
            run.path, exc.problem + " (or it was read while the running run wrote it: try again)"
        ) from None


# ----------------------------------------------------------------------------- the guard
def _child_reads(fd: int, where_now, path: str, series: tuple, require: tuple) -> None:
    """In the forked child: read the file but its bulk datasets, keeping the object
    being read in the shared memory ``where_now``, then send the parent through ``fd``
    "ok <n>" and the pickled RunData (n bytes), or "error <problem>"."""
    global _progress, _structure_only

    def at(where: str) -> None:
        text = where.encode("utf-8", "replace")[: len(where_now) - 2]
        where_now[: 2 + len(text)] = len(text).to_bytes(2, "little") + text

    def send(line: str, payload: bytes = b"") -> None:
        data = memoryview(" ".join(line.split()).encode("utf-8", "replace") + b"\n" + payload)
        while data:
            data = data[os.write(fd, data) :]

    _progress, _structure_only = at, True
    try:
        payload = pickle.dumps(_read(path, series, require), pickle.HIGHEST_PROTOCOL)
        send(f"ok {len(payload)}", payload)
    except RunFileError as exc:
        send("error " + exc.problem)
    except BaseException:  # a bug, not damage: the parent's own read shows it
        send("unexpected")


def _wait_for_child(path: str, pid: int, fd: int, where_now) -> RunData | None:
    """The child's RunData, or None if it met an unexpected error; RunFileError for its
    error, or for a crash or hang naming the object it was reading."""
    buffer = b""
    deadline = time.monotonic() + CHILD_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise RunFileError(
                path,
                f"{_where_now(where_now)}: reading it does not finish "
                f"(HDF5 still busy after {CHILD_TIMEOUT:g} s): the file is "
                "damaged",
            )
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        buffer += chunk
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise RunFileError(
            path,
            f"{_where_now(where_now)}: reading it crashed the HDF5 "
            f"library ({name}): the file is damaged",
        )
    line, _, payload = buffer.partition(b"\n")
    kind, _, text = line.decode("utf-8", "replace").partition(" ")
    if kind == "error":
        raise RunFileError(path, text)
    return pickle.loads(payload) if kind == "ok" and len(payload) == int(text) else None


def _where_now(where_now) -> str:
    n = int.from_bytes(where_now[:2], "little")
    return bytes(where_now[2 : 2 + n]).decode("utf-8", "replace") or "/"


def _read_deferred(path: str, run: RunData) -> RunData:
    """Read the bulk datasets that the guard's child left as _Deferred."""
    todo = [
        (group, name)
        for group in (run.optimization, run.production)
        for name, value in group.items()
        if isinstance(value, _Deferred)
    ]
    with _reading(path, "/"), _live(run):
        with _open(path) as h5:
            for group, name in todo:
                item = group[name]
                with _reading(path, item.where):
                    ds = h5[item.where]
                group[name] = _bulk(path, ds, item.where, item.selection, item.float64)
    return run


def _read_in_child(path: str, series: tuple, require: tuple) -> RunData | None:
    """The RunData as read by a forked child (POSIX), bulk datasets deferred; None
    where there is no fork or the child met an unexpected error.

    HDF5 itself can crash or loop forever on damaged metadata (a garbled string in its
    global heap); in the child that becomes a RunFileError naming the object being
    read, and this process never touches those bytes."""
    if not hasattr(os, "fork"):
        return None
    read_end, write_end = os.pipe()
    where_now = mmap.mmap(-1, 4096)  # shared with the child: what it is reading
    with warnings.catch_warnings():  # 3.12+ warns about forking with threads; the
        warnings.simplefilter("ignore", DeprecationWarning)  # child runs none of them
        pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read_end)
            gc.disable()  # a collection would touch (copy) every page of the parent
            # an orphan (parent killed) must not loop forever: SIGALRM ends it
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.alarm(int(CHILD_TIMEOUT) + 5)
            _child_reads(write_end, where_now, path, series, require)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        return _wait_for_child(path, pid, read_end, where_now)
    finally:
        os.close(read_end)
        _reap(pid)
        where_now.close()


def _reap(pid: int) -> None:
    """Make sure the child is gone (killed if still running) and reaped."""
    try:
        if os.waitpid(pid, os.WNOHANG) == (0, 0):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    except ChildProcessError:
        pass  # already reaped


def read_run(path: str, series: tuple = PRODUCTION_SERIES, require: tuple = ()) -> RunData:
    """Read and validate one run file.

    series : production datasets to load when present.
    require : dataset paths that must be present (e.g. ``("production/local_energy",)``);
        a missing one raises :class:`RunFileError`.
    Raises RunFileError for a missing file, a non-HDF5 file, an HDF5 file that is not
    a run file, an unsupported format_version, malformed groups, or a damaged file
    (naming the object that cannot be read; also when reading it crashes or hangs
    HDF5, caught by reading the structure in a child process first).
    """
    path = str(path)
    run = _read_in_child(path, series, require)
    return _read(path, series, require) if run is None else _read_deferred(path, run)
