"""``pvmc dmc RUN.h5 [-o OUT.h5] [--set dmc.key=value ...]``: the DMC phase on the trial
function of a completed VMC run, into a new file.

The new file starts as a copy of the VMC run (its optimization, production, summary and
final state: the DMC result sits beside the VMC it came from) with a new run_id, the
config with the ``--set`` changes, the root attributes DMC_SOURCE (the VMC file's path)
and DMC_SOURCE_RUN_ID, and a checkpoint at the start of the DMC phase made from the VMC
file's final state (/checkpoint: parameters, walkers, production sums). From there it is
an ordinary run: ``pvmc resume`` continues it after a stop, ``pvmc info`` and
``python -m analysis`` read it. Only ``dmc.*`` and ``output.*`` keys may change: the
system and the trial function are the VMC run's.
"""

from __future__ import annotations

import os
import shutil
import uuid

from ..runfile import schema as S
from .common import bad_input, check_walltime, world
from .runfiles import InputError, attr_text, read_root, stored_config

CHANGEABLE = ("dmc", "output")  # sections --set may change


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dmc",
        help="fixed-node DMC on the trial function of a completed VMC run, into a new file",
    )
    p.add_argument("run_file", help="HDF5 file of a completed pvmc run (the VMC)")
    p.add_argument("-o", "--output", help="the new HDF5 file (default: RUN_dmc.h5 beside RUN.h5)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="dmc.KEY=VALUE",
        help="change one dmc.* or output.* key of the run's config (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument(
        "--max-walltime",
        metavar="HH:MM:SS",
        help="stop cleanly, checkpointed, before this wall time; exit code 75",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def default_output(run_file: str) -> str:
    stem = run_file[:-3] if run_file.endswith(".h5") else run_file
    return stem + "_dmc.h5"


def prepare(args) -> int | None:
    """Prepare the new file on rank 0 (nothing is written before every check
    passed): None, and args.run_file is the new file, which ``pvmc resume`` then
    continues on every rank; or the exit code of bad input."""
    from ..config.fields import ConfigError
    from ..run.preflight import all_problems
    from ..runfile.hdf5io import one_line

    comm = world()
    ranks_on_node = comm.ranks_on_node()  # collective: never inside rank 0's block
    out = args.output or default_output(args.run_file)
    problem = None
    if comm.rank == 0:
        try:  # every failure becomes the problem: the other ranks wait in the bcast
            check_walltime(args.max_walltime)
            cfg, state = _plan(args.run_file, out, args.overrides)
            problem = all_problems(cfg, comm.size, args.overwrite, ranks_on_node)
            if problem is None:
                _derive(args.run_file, out, cfg, state)
        except (InputError, ConfigError) as exc:
            problem = str(exc)
        except OSError as exc:  # the disk's or the directory's fault; nothing left behind
            problem = f"{out}: cannot be written ({one_line(exc, 200)})"
    problem = comm.bcast(problem)
    if problem:
        return bad_input(problem, comm.rank)
    args.run_file = out
    return None


def _plan(source: str, out: str, overrides: list):
    """(the new run's Config, the VMC file's final state (attrs, arrays)); InputError
    naming what is wrong."""
    from ..config.fields import ConfigError, parse_override
    from ..config.vmc import apply_overrides, from_dict, with_stored_defaults

    attrs = read_root(source)
    status = attr_text(attrs[S.STATUS])
    if status != S.COMPLETED:
        raise InputError(
            f"{source}: status {status!r}; pvmc dmc needs a completed VMC run "
            f"(finish it first: pvmc resume {source})"
        )
    if attr_text(attrs[S.FORMAT]) not in map(str, S.RESUMABLE_FORMATS):
        raise InputError(
            f"{source}: {S.FORMAT} {attr_text(attrs[S.FORMAT])} is not one this version "
            f"continues ({', '.join(map(str, S.RESUMABLE_FORMATS))})"
        )
    if os.path.realpath(out) == os.path.realpath(source):
        raise InputError(f"-o {out}: the output must be a new file, not the VMC run itself")
    for text in overrides:
        if parse_override(text)[0][0] not in CHANGEABLE:
            raise InputError(
                f"--set {text}: pvmc dmc changes only dmc.* and output.* keys (the "
                "system and the trial function are the VMC run's)"
            )
    stored = with_stored_defaults(stored_config(source, attrs))
    try:
        raw = apply_overrides(stored, [*overrides, f"output.path={out}"])
        cfg = from_dict(raw, source=f"{source} (stored config) with --set")
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    if cfg.dmc.time_steps is None:
        raise InputError(
            f"dmc.time_steps is null in {source}'s config; give the time steps, e.g. "
            "--set 'dmc.time_steps=[0.04, 0.02, 0.01]'"
        )
    return cfg, _final_state(source)


def _final_state(source: str) -> tuple[dict, dict]:
    """(attrs, arrays) of the VMC file's /checkpoint group (its final state)."""
    import h5py

    from ..run.state import REQUIRED_ARRAYS, REQUIRED_ATTRS
    from ..runfile.checkpoint import dataset_names, plain
    from ..runfile.hdf5io import one_line, read_array

    try:
        with h5py.File(source, "r", locking=False) as h5:
            grp = h5[S.CHECKPOINT]
            attrs = {k: plain(v) for k, v in grp.attrs.items()}
            arrays = {name: read_array(grp[name]) for name in dataset_names(grp)}
    except Exception as exc:  # noqa: BLE001 - a missing group or a damaged dataset
        raise InputError(
            f"{source}: its final state (/{S.CHECKPOINT}) cannot be read ({one_line(exc, 200)})"
        ) from None
    missing = [k for k in REQUIRED_ATTRS if k not in attrs and k != "progress"]
    missing += [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise InputError(f"{source}: its final state lacks {', '.join(missing)}")
    return attrs, arrays


def _derive(source: str, out: str, cfg, state) -> None:
    """Write the new file and its checkpoint at the start of the DMC phase: a copy of
    the source under a temporary name, edited, its checkpoint written, then renamed
    into place (an existing OUT is replaced only then, and only with --overwrite,
    which ``all_problems`` checked)."""
    import h5py

    from ..runfile import checkpoint as ckpt
    from ..runfile.hdf5io import now_iso
    from ..runfile.output import RunFile

    run_id = uuid.uuid4().hex
    parent = os.path.dirname(os.path.abspath(out))
    tmp = os.path.join(parent, f".{os.path.basename(out)}.dmc-new")
    try:
        os.makedirs(parent, exist_ok=True)  # as pvmc run makes its output's directory
        shutil.copyfile(source, tmp)
        f = RunFile(tmp, h5py.File(tmp, "r+"))
        try:
            if S.DMC in f.h5:  # the source's own DMC: not this file's results
                del f.h5[S.DMC]
            source_run_id = f.h5.attrs.get(S.RUN_ID, "")
            f.h5.attrs.modify(S.CONFIG, cfg.to_yaml())
            f.h5.attrs.modify(S.RUN_ID, run_id)
            f.h5.attrs[S.CHECKPOINT_FILE] = os.path.basename(ckpt.path_for(out))
            f.h5.attrs[S.DMC_SOURCE] = os.path.abspath(source)
            f.h5.attrs[S.DMC_SOURCE_RUN_ID] = source_run_id
            f.set_status(S.INTERRUPTED)
        finally:
            f.close()
        attrs, arrays = state
        attrs = dict(
            attrs,
            phase="dmc",
            run_id=run_id,
            config=cfg.to_yaml(),
            run_file=os.path.basename(out),
            progress="diffusion Monte Carlo (dmc.time_steps)",
            written=now_iso(),
        )
        for name in ckpt.siblings(ckpt.path_for(out)):  # another run's, if --overwrite
            if os.path.exists(name):
                os.remove(name)
        ckpt.write(ckpt.path_for(out), attrs, arrays)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def info_lines(h5) -> list:
    """``pvmc info``'s lines on DMC of an open run file: where a ``pvmc dmc`` file came
    from, and each finished time step and the extrapolated energy (none without
    /dmc; a live or stopped phase shows its progress in the checkpoint line)."""
    from ..stats.text import estimate

    lines = []
    if S.DMC_SOURCE in h5.attrs:
        run_id = h5.attrs.get(S.DMC_SOURCE_RUN_ID, "")
        run_id = run_id.decode() if isinstance(run_id, bytes) else str(run_id)
        lines.append(f"dmc from      {h5.attrs[S.DMC_SOURCE]} (run_id {run_id[:12]})")
    if S.DMC not in h5:
        return lines
    g = h5[S.DMC]
    try:
        shown = ("time_step", "energy", "error", "acceptance", "tau_eff", "population")
        rows = zip(*(g[name][()] for name in shown), strict=True)  # in every layout
        for tau, energy, error, acceptance, tau_eff, population in rows:
            lines.append(
                f"dmc tau {tau:<6g}{estimate(energy, error)}, tau_eff {tau_eff:.5g}, "
                f"acceptance {acceptance:.4f}, population {population:.0f}"
            )
        a = g.attrs
        lines.append(
            f"dmc energy    {estimate(a['energy_extrapolated'], a['error_extrapolated'])} "
            "(tau -> 0)"
        )
    except (KeyError, ValueError) as exc:
        lines.append(f"dmc           /{S.DMC} is incomplete ({exc})")
    return lines
