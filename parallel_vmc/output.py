"""The HDF5 run file (DESIGN section 4), written by rank 0 only.

Layout (format_version 1)::

    /                root attrs: format_version, package_version, created, config,
                     mpi_size, walkers_per_rank, seed, numba/numpy/mpi4py versions,
                     hostname, mpi_library, status
    /optimization/   iteration, energy, energy_error, variance, acceptance, grad_norm,
                     learning_rate, wall_time: (n_iter,); params: (n_iter, n_params)
    /production/     local_energy (+ kinetic, potential): (n_chains, n_samples);
                     attrs samples_per_chain (columns filled so far), acceptance, step,
                     sampler, energy_allreduced, variance_allreduced
    /wavefunction/   a (M,), b (N,), W (M, N), sigma (); attrs kind, psi
    /checkpoint/     theta, optimizer state, iteration, step, positions (n_chains, M),
                     rng_states (n_chains, 4) uint64
    /segments/       one row per launch: mpi_size, first_iteration, last_iteration,
                     hostname, start_time, end_time, ended
    /summary/        attrs energy, error, variance, tau_int, n_samples, ...

The file is flushed at phase ends and at most every few seconds, so a run that dies
leaves everything written up to the last flush readable, with status "running".
"""
from __future__ import annotations

import datetime as _dt
import os
import socket
import time

import h5py
import numpy as np

FORMAT_VERSION = 1
OPT_FIELDS = ("energy", "energy_error", "variance", "acceptance", "grad_norm",
              "learning_rate", "wall_time")
SEGMENT_FIELDS = {"mpi_size": "i8", "first_iteration": "i8", "last_iteration": "i8",
                  "hostname": "str", "start_time": "str", "end_time": "str", "ended": "str"}
FLUSH_INTERVAL = 5.0   # seconds between flushes of the open file


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _versions() -> dict:
    import numba
    from . import __version__
    from .parallel import mpi4py_version
    return {"package_version": __version__, "numba_version": numba.__version__,
            "numpy_version": np.__version__, "mpi4py_version": mpi4py_version()}


class RunFile:
    """Writer of one run's HDF5 file (open for the whole run on rank 0)."""

    def __init__(self, path: str, h5: h5py.File):
        self.path = path
        self.h5 = h5
        self._last_flush = time.monotonic()

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, path: str, cfg, mpi_size: int, mpi_library: str, n_params: int,
               overwrite: bool = False) -> "RunFile":
        """Create the file with its root attributes; refuses to replace an existing
        file unless overwrite (checked again here, after the CLI's early check)."""
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        h5 = h5py.File(path, "w" if overwrite else "w-")
        attrs = h5.attrs
        attrs["format_version"] = FORMAT_VERSION
        attrs["created"] = now_iso()
        attrs["config"] = cfg.to_yaml()
        attrs["mpi_size"] = mpi_size
        attrs["walkers_per_rank"] = cfg.sampler.walkers_per_rank
        attrs["seed"] = cfg.seed
        attrs["hostname"] = socket.gethostname()
        attrs["mpi_library"] = mpi_library
        for key, value in _versions().items():
            attrs[key] = value
        attrs["status"] = "running"
        opt = h5.create_group("optimization")
        opt.create_dataset("iteration", shape=(0,), maxshape=(None,), dtype="i8",
                           chunks=(1024,))
        for name in OPT_FIELDS:
            opt.create_dataset(name, shape=(0,), maxshape=(None,), dtype="f8",
                               chunks=(1024,))
        opt.create_dataset("params", shape=(0, n_params), maxshape=(None, n_params),
                           dtype="f8", chunks=(max(1, min(256, 2**16 // n_params)), n_params))
        seg = h5.create_group("segments")
        for name, dtype in SEGMENT_FIELDS.items():
            dt = h5py.string_dtype() if dtype == "str" else dtype
            seg.create_dataset(name, shape=(0,), maxshape=(None,), dtype=dt, chunks=(16,))
        h5.flush()
        return cls(path, h5)

    # ------------------------------------------------------------------ helpers
    def flush(self, force: bool = False) -> None:
        if force or time.monotonic() - self._last_flush > FLUSH_INTERVAL:
            self.h5.flush()
            self._last_flush = time.monotonic()

    def set_status(self, status: str) -> None:
        self.h5.attrs["status"] = status
        self.flush(force=True)

    @staticmethod
    def _append(ds, value) -> None:
        n = ds.shape[0]
        ds.resize(n + 1, axis=0)
        ds[n] = value

    # ------------------------------------------------------------------ records
    def append_iteration(self, iteration: int, record: dict, theta: np.ndarray) -> None:
        """One row of /optimization (record holds every OPT_FIELDS entry)."""
        opt = self.h5["optimization"]
        self._append(opt["iteration"], iteration)
        for name in OPT_FIELDS:
            self._append(opt[name], record[name])
        self._append(opt["params"], theta)
        self.flush()

    def begin_segment(self, mpi_size: int, first_iteration: int) -> None:
        seg = self.h5["segments"]
        row = {"mpi_size": mpi_size, "first_iteration": first_iteration,
               "last_iteration": first_iteration, "hostname": socket.gethostname(),
               "start_time": now_iso(), "end_time": "", "ended": "running"}
        for name, value in row.items():
            self._append(seg[name], value)
        self.flush(force=True)

    def end_segment(self, last_iteration: int, ended: str) -> None:
        seg = self.h5["segments"]
        k = seg["ended"].shape[0] - 1
        seg["last_iteration"][k] = last_iteration
        seg["end_time"][k] = now_iso()
        seg["ended"][k] = ended
        self.flush(force=True)

    def create_production(self, n_chains: int, n_samples: int, components: bool,
                          chunk: int) -> None:
        prod = self.h5.create_group("production")
        names = ["local_energy"] + (["kinetic", "potential"] if components else [])
        chunks = (n_chains, max(1, min(n_samples, chunk)))
        for name in names:
            prod.create_dataset(name, shape=(n_chains, n_samples), dtype="f8",
                                chunks=chunks)
        prod.attrs["samples_per_chain"] = 0
        self.flush(force=True)

    def write_production(self, start: int, blocks: dict) -> None:
        """Write columns start.. of each named (n_chains, k) block."""
        prod = self.h5["production"]
        for name, block in blocks.items():
            prod[name][:, start:start + block.shape[1]] = block
        prod.attrs["samples_per_chain"] = start + blocks["local_energy"].shape[1]
        self.flush()

    def set_attrs(self, group: str, values: dict) -> None:
        grp = self.h5.require_group(group)
        for key, value in values.items():
            grp.attrs[key] = value
        self.flush(force=True)

    def write_wavefunction(self, wf, theta: np.ndarray) -> None:
        grp = self.h5.require_group("wavefunction")
        a, b, W = wf.layout.split(theta)
        for name, value in (("a", a), ("b", b), ("W", W), ("sigma", wf.sigma)):
            if name in grp:
                del grp[name]
            grp[name] = value
        grp.attrs["kind"] = "rbm"
        grp.attrs["psi"] = wf.psi
        self.flush(force=True)

    def write_checkpoint(self, state: dict) -> None:
        """Replace /checkpoint with plain arrays and scalars (no pickle)."""
        if "checkpoint" in self.h5:
            del self.h5["checkpoint"]
        grp = self.h5.create_group("checkpoint")
        for key, value in state.items():
            if isinstance(value, dict):
                sub = grp.create_group(key)
                for k2, v2 in value.items():
                    sub[k2] = v2
            elif isinstance(value, str):
                grp.attrs[key] = value
            else:
                grp[key] = value
        self.flush(force=True)

    def close(self) -> None:
        try:
            self.h5.flush()
        finally:
            self.h5.close()
