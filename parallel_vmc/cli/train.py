"""`pvmc train CONFIG` and `pvmc resume TRAINING.h5`: checks before any work, then the
run on every rank, with the exit codes of ``common.py`` (0 done, 1 failed, 2 bad input,
75 stopped with a checkpoint)."""

from __future__ import annotations

import os
import sys
import traceback

from ..config.fields import ConfigError
from ..generative import config as gconfig
from ..generative import gio
from ..generative.runner import Session, StopRequested, WriteFailed, preflight, summary_lines
from ..generative.train import Diverged
from .common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    bad_input,
    check_walltime,
    nothing_to_do,
    other_command,
    world,
)


def _output_problem(path: str, overwrite: bool) -> str | None:
    """Why the output path cannot be (re)written, or None."""
    if not path.strip():
        return "output.path: empty; allowed: a file name"
    if os.path.isdir(path):
        return f"output.path {path}: is a directory; give a file name"
    if os.path.exists(path) and not overwrite:
        return (
            f"output file {path} exists; choose another path (-o), continue it "
            f"(pvmc resume {path}) or replace it (--overwrite)"
        )
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):  # the nearest existing ancestor
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        return f"output.path {path}: {parent} is not a directory"
    if not os.access(parent, os.W_OK):
        return f"output.path {path}: directory {parent} is not writable"
    return None


def _prepare(comm, load):
    """Every rank: [cfg, data, held, extra] from load() -> (cfg, extra), with problems
    found on rank 0 first (files) and on every rank (data) reported once, then the
    memory of the ranks on rank 0's node and the disk of the file (``run.preflight``,
    as for a VMC run); (None, exit code) on bad input. No data and no resource check
    for a completed training (extra "completed")."""
    problem = None
    ranks_on_node = comm.ranks_on_node()  # collective
    try:
        cfg, extra = load()
        done = extra == gio.COMPLETED
        data, held = (None, None) if done else preflight(cfg, comm.size)
        if comm.rank == 0 and not done:
            problem = _resources_problem(cfg, data, held, comm.size, ranks_on_node)
    except ConfigError as exc:
        problem = str(exc)
    problem = comm.bcast(problem)
    if problem:
        return None, bad_input(problem, comm.rank)
    return [cfg, data, held, extra], None


def _resources_problem(cfg, data, held, n_ranks: int, ranks_on_node: int) -> str | None:
    """Why this node's memory or the output's disk cannot hold the training, or None.
    The file it replaces (--overwrite, resume) frees its space at the first rewrite."""
    from ..generative.sizes import TrainSizes
    from ..run.preflight import resources_problem

    path = cfg.output.path
    existing = os.path.getsize(path) if os.path.isfile(path) else 0
    n_held = 0 if held is None else len(held)
    sizes = TrainSizes(cfg, n_ranks, len(data), n_held, data.shape[1], existing)
    return resources_problem(cfg, n_ranks, ranks_on_node, new_file=True, sizes=sizes)


def _stop_problem(args) -> str | None:
    """Why --stop-after or --max-walltime is wrong, or None."""
    if args.stop_after is not None and args.stop_after < 1:
        return f"--stop-after: {args.stop_after} is out of range; allowed: integer >= 1"
    try:
        check_walltime(args.max_walltime)
    except ConfigError as exc:
        return str(exc)
    return None


def _walltime(args) -> float | None:
    from ..config.fields import walltime_seconds

    return None if args.max_walltime is None else float(walltime_seconds(args.max_walltime))


def _train(prepared: list, comm, args) -> int:
    """Train on every rank; the exit code. prepared: [cfg, data, held, resume] of
    :func:`_prepare` (resume None, or what ``gio.read_resumable`` gave), emptied here:
    the caller keeps no reference to the whole data, the Session only this rank's
    shard."""
    cfg, data, held, resume = prepared
    prepared.clear()
    session = Session(
        cfg,
        comm,
        data,
        held,
        not args.quiet,
        args.stop_after,
        resume=resume,
        max_walltime=_walltime(args),
    )
    del data, held
    return _execute(session, comm)


def cmd_train(args) -> int:
    comm = world()
    problem = _stop_problem(args) or other_command(args.config, "train")
    if problem:
        return bad_input(problem, comm.rank)

    def load():
        cfg = gconfig.load(args.config, args.overrides, args.output)
        if args.resume and os.path.isfile(cfg.output.path):
            return cfg, _continued(cfg)  # read on every rank, as pvmc resume does
        if comm.rank == 0:
            problem = _output_problem(cfg.output.path, args.overwrite)
            if problem:
                raise ConfigError(problem)
        return cfg, None

    prepared, code = _prepare(comm, load)
    if prepared is None:
        return code
    cfg, resume = prepared[0], prepared[3]
    if resume == gio.COMPLETED:
        if comm.rank == 0:
            print(f"pvmc: {cfg.output.path} is already completed; nothing to do")
        return EXIT_OK
    if comm.rank == 0:
        os.makedirs(os.path.dirname(os.path.abspath(cfg.output.path)), exist_ok=True)
    return _train(prepared, comm, args)


def _continued(cfg):
    """For ``pvmc train --resume`` on an existing output file: "completed", or the
    payload of ``gio.read_resumable`` to continue; ConfigError when the file is not a
    resumable training file or was started with another config (``output`` aside),
    as ``pvmc run --resume`` refuses it."""
    from ..config.fields import differing_keys

    path = cfg.output.path
    try:
        attrs = gio.read_root(path)
    except gio.TrainFileError as exc:
        raise ConfigError(f"{exc}; choose another output path (-o)") from None
    stored = gconfig.from_yaml_text(str(attrs["config"]), f"{path} (stored config)")
    keys = differing_keys(stored.to_dict(), cfg.to_dict(), ignore=("output",))
    if keys:
        raise ConfigError(
            f"{path} exists and was started with a different config "
            f"({', '.join(keys)}); resume it with its own config "
            f"(pvmc resume {path}) or choose another output path"
        )
    if str(attrs["status"]) == gio.COMPLETED:
        return gio.COMPLETED
    try:
        return gio.read_resumable(path)
    except gio.TrainFileError as exc:
        raise ConfigError(str(exc)) from None


def cmd_resume(args) -> int:
    """Continue the training file args.run_file from its checkpoint."""
    comm = world()
    path = args.run_file
    problem = _stop_problem(args)
    if problem:
        return bad_input(problem, comm.rank)

    try:
        payload = gio.read_resumable(path)  # the same file on every rank
    except gio.TrainFileError as exc:
        return bad_input(str(exc), comm.rank)
    if payload == gio.COMPLETED:
        return nothing_to_do(path, comm.rank)

    def load():
        cfg = gconfig.from_yaml_text(payload["config"], f"{path} (stored config)")
        return cfg.replace_output(path), payload

    prepared, code = _prepare(comm, load)
    if prepared is None:
        return code
    return _train(prepared, comm, args)


def _write_failed_line(path: str, exc: WriteFailed) -> str:
    """The one line of a training stopped by a failed write: why, what the file on disk
    holds, and how to go on."""
    if exc.kept is None:
        return (
            f"training failed: cannot write {path}: {exc}; nothing of this training was "
            "written; start it again once the cause (e.g. a full disk) is removed"
        )
    return (
        f"training failed: cannot write {path}: {exc}; the file keeps its checkpoint at "
        f"{exc.kept}; once the cause (e.g. a full disk) is removed, continue with: "
        f"pvmc resume {path}"
    )


def _execute(session: Session, comm) -> int:
    """Run the session on every rank; the exit code."""
    path = session.cfg.output.path
    try:
        evaluation = session.execute()  # collective
        if comm.rank == 0:
            if session.progress:
                print("\n".join(summary_lines(evaluation)), flush=True)
                print(f"train: wrote {path}", flush=True)
    except StopRequested as exc:
        if comm.rank == 0:
            print(f"pvmc: {exc}; continue with: pvmc resume {path}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        return EXIT_FAILED
    except WriteFailed as exc:  # seen by every rank at the same write
        if comm.rank == 0:
            print(f"pvmc: {_write_failed_line(path, exc)}", file=sys.stderr, flush=True)
            if exc.kept is not None:
                gio.mark_failed(path, f"cannot write the file: {exc}")  # if there is room
        return EXIT_FAILED
    except Diverged as exc:  # seen by every rank at the same mini-batch
        if comm.rank == 0:
            print(f"pvmc: training failed: {exc}", file=sys.stderr, flush=True)
            if os.path.exists(path):
                gio.mark_failed(path, str(exc))
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - report, mark the file, stop every rank
        print(f"pvmc: rank {comm.rank}: training failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        if comm.rank == 0 and os.path.exists(path):
            gio.mark_failed(path, f"{type(exc).__name__}: {exc}")
        if comm.size > 1:
            comm.abort(EXIT_FAILED)
        return EXIT_FAILED
    return EXIT_OK


__all__ = ["cmd_train", "cmd_resume", "EXIT_BAD_INPUT"]


def cmd_info(args) -> int:
    """`pvmc info TRAINING.h5` (--status, --progress): what a training file holds."""
    import h5py

    path = args.run_file
    try:
        with h5py.File(path, "r", locking=False) as h5:
            a = dict(h5.attrs)
            hist = {k: h5["history"][k][()] for k in ("layer", "epoch")}
            ck = dict(h5["checkpoint"].attrs) if "checkpoint" in h5 else None
            ev = dict(h5["evaluation"].attrs) if "evaluation" in h5 else None
            shapes = [h5["model"]["W"].shape] + [
                h5[f"dbn/layer_{k}"]["W"].shape for k in range(1, 1 + len(h5.get("dbn", {})))
            ]
    except Exception as exc:  # noqa: BLE001 - any damage: one message
        return bad_input(
            f"{path}: incomplete or damaged training file ({' '.join(str(exc).split())[:200]})"
        )
    status = str(a["status"])
    where = (
        gio.COMPLETED
        if status == gio.COMPLETED
        else "none"
        if ck is None
        else f"layer {ck['layer']} epoch {ck['epoch']} mini-batch {ck['batch']}"
    )
    if args.status or args.progress:
        print(status if args.status else where)
        return EXIT_OK
    cfg = gconfig.from_yaml_text(str(a["config"]))
    print(f"file          {path} (pvmc train)")
    print(f"status        {status}")
    print(
        f"created       {a['created']} on {a['hostname']}, {a['mpi_size']} rank(s), "
        f"seed {a['seed']}"
    )
    print(
        f"model         {cfg.model.kind} RBM, layers (visible, hidden) "
        f"{', '.join(map(str, shapes))}; data {cfg.data.name}"
    )
    print(
        f"history       {len(hist['epoch'])} rows, last epoch "
        f"{int(hist['epoch'][-1]) if len(hist['epoch']) else 0} of "
        f"{cfg.training.epochs}"
    )
    if ev is not None:
        print("\n".join(summary_lines(ev)))
    if ck is not None and status != gio.COMPLETED:
        print(f"checkpoint    {where}; continue with: pvmc resume {path}")
    return EXIT_OK


def cmd_validate(args) -> int:
    """`pvmc validate TRAIN_CONFIG`: the train config's checks, the data and the batch
    layout for the rank count it runs on; prints the resolved config. No work."""
    comm = world()

    def load():
        return gconfig.load(args.config, args.overrides, args.output), None

    prepared, code = _prepare(comm, load)
    if prepared is None:
        return code
    cfg, data, _, _ = prepared
    if comm.rank == 0:
        print(cfg.to_yaml(), end="")
        print(
            f"# {args.config}: valid train config for {comm.size} rank(s); "
            f"{len(data)} training rows of {data.shape[1]} values",
            file=sys.stderr,
        )
    return EXIT_OK
