"""What the commands share about run files they are given: the error for bad input
that is not a config key, and reading a run file's root and stored config."""

from __future__ import annotations

import os

from ..runfile import schema as S


class InputError(Exception):
    """Bad input that is not a config key (files, paths)."""


class NoCheckpoint(InputError):
    """A run file without a usable checkpoint (killed before its first one)."""


def read_root(path: str) -> dict:
    """The root attributes of a run file; InputError if it cannot be read."""
    import h5py

    from ..runfile import checkpoint as ckpt
    from ..runfile.hdf5io import one_line

    if os.path.isdir(path):
        runs = sorted(name for name in os.listdir(path) if name.endswith(".h5"))
        shown = f" (it holds {', '.join(runs[:3])}{', ...' if len(runs) > 3 else ''})"
        raise InputError(f"{path}: is a directory{shown if runs else ''}; give one run file")
    if not os.path.isfile(path):
        raise InputError(f"run file not found: {path}")
    try:
        if not h5py.is_hdf5(path):
            raise InputError(f"{path}: not an HDF5 file")
        with h5py.File(path, "r", locking=False) as h5:
            attrs = dict(h5.attrs)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises many kinds on damaged files
        raise InputError(
            f"{path}: not a readable HDF5 run file, or its header is damaged ({one_line(exc, 200)})"
        ) from None
    if attr_text(attrs.get("kind", "")) == ckpt.KIND:
        run = os.path.join(os.path.dirname(path), attr_text(attrs.get("run_file", "RUN.h5")))
        raise InputError(
            f"{path}: a checkpoint of the run file {run}, not a run file; give {run} "
            "(its checkpoint is read from beside it)"
        )
    if any(name not in attrs for name in S.REQUIRED_ROOT):
        raise InputError(f"{path}: not a pvmc run file (no {'/'.join(S.REQUIRED_ROOT)} attributes)")
    return attrs


def stored_config(path: str, attrs: dict) -> dict:
    from ..config.fields import ConfigError, parse_yaml

    try:
        stored = parse_yaml(attr_text(attrs[S.CONFIG]), f"{path} (stored config)")
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(stored, dict):
        raise InputError(f"{path}: its stored config is not a mapping")
    return stored


def attr_text(value) -> str:
    """A text attribute; fixed-length HDF5 strings end at their first NUL."""
    if isinstance(value, bytes):
        return value.split(b"\0", 1)[0].decode("utf-8", "replace")
    return str(value)
