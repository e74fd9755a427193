"""The DMC phase in a checkpoint, and back.

Beside the run's own state a checkpoint written during the phase holds, under
``dmc/`` (arrays) and ``dmc_`` (attributes):

    dmc_k                     the live time step's index (len(time_steps): all done)
    dmc_e_est, dmc_e_trial,   the live time step's running estimate, trial energy and
    dmc_e_sum                 sum of the steps' weighted energies
    dmc/walkers (N, M + 5)    the whole population in its global order, one
                              ``walk.pack`` row per walker (coordinates, E_L, stream)
    dmc/chi2 (2,), dmc/moves (2,)   the live time step's tau_eff sums and move counts
    dmc/live/<name> (T,)      its per-step series (``walk.Series``)
    dmc/table/<field> (k,)    the finished time steps' rows (schema.DMC_FIELDS)
    dmc/done_<j>/<name> (T,)  their series (schema.DMC_SERIES)

On the same number of ranks every rank takes back exactly the walkers it held (after
each step the counts are ``balance.even_counts``), so the run continues bit for bit. On
another number the population is cut anew the same way: every walker keeps its stream,
only the order of the sums changes, and which walkers' caches are rebuilt within a
block (walkers that change rank are), both in the last bits.
"""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from ..runfile import schema as S
from . import balance
from .walk import Series, pack, unpack

SCALARS = ("e_est", "e_trial", "e_sum")  # of the live Diffusion, as dmc_<name>


def snapshot(phase, comm):
    """(attrs, arrays) of the phase on rank 0, None elsewhere (collective: the
    population is gathered)."""
    walk = phase.walk
    rows = None if walk is None else comm.gather_uneven_rows(pack(walk.walkers, walk.e_prev))
    if comm.rank != 0:
        return None
    attrs = {"dmc_k": phase.k}
    arrays = {f"dmc/table/{name}": np.asarray(phase.table[name], float) for name in S.DMC_FIELDS}
    for j, per_step in enumerate(phase.series):
        for name in S.DMC_SERIES:
            arrays[f"dmc/done_{j}/{name}"] = np.asarray(per_step[name], float)
    if walk is not None:
        attrs.update({f"dmc_{name}": float(getattr(walk, name)) for name in SCALARS})
        arrays.update({"dmc/walkers": rows, "dmc/chi2": walk.chi2, "dmc/moves": walk.moves})
        for f in fields(Series):
            arrays[f"dmc/live/{f.name}"] = np.asarray(getattr(walk.series, f.name), float)
    return attrs, arrays


def holds_phase(attrs: dict) -> bool:
    """Was the checkpoint written during the DMC phase?"""
    return "dmc_k" in attrs


def restore(phase, attrs: dict, arrays: dict) -> None:
    """Put a :func:`snapshot` back into a new ``phase.Phase``: its finished time steps
    and, if one was live, that time step with this rank's share of the population."""
    phase.k = int(attrs["dmc_k"])
    phase.table = {name: arrays[f"dmc/table/{name}"].tolist() for name in S.DMC_FIELDS}
    phase.series = [
        {name: arrays[f"dmc/done_{j}/{name}"].tolist() for name in S.DMC_SERIES}
        for j in range(phase.k)
    ]
    if phase.k == len(phase.cfg.dmc.time_steps):
        return
    rows = arrays["dmc/walkers"]
    counts = balance.even_counts(rows.shape[0], phase.comm.size)
    first = int(counts[: phase.comm.rank].sum())
    walkers, e_prev = unpack(rows[first : first + counts[phase.comm.rank]])
    phase.begin(walkers, float(attrs["dmc_e_est"]), e_prev)
    walk = phase.walk
    for name in SCALARS:
        setattr(walk, name, float(attrs[f"dmc_{name}"]))
    walk.chi2, walk.moves = np.array(arrays["dmc/chi2"]), np.array(arrays["dmc/moves"])
    for f in fields(Series):
        setattr(walk.series, f.name, arrays[f"dmc/live/{f.name}"].tolist())
