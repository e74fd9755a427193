"""`pvmc run | resume | validate | info | bench | train`.

Exit codes (job scripts test them):

* 0  completed (``pvmc run --resume`` and ``pvmc resume`` on an already completed run:
  nothing to do);
* 1  the run failed while running (status "failed: ..." in the file);
* 2  bad input (config, command line, files), reported before any work and without
  touching existing files;
* 75 stopped cleanly by SIGTERM / SIGUSR1 / SIGINT or at the wall-time limit, with a
  checkpoint written: status "interrupted", continue with ``pvmc resume RUN.h5``
  (75 is EX_TEMPFAIL of sysexits.h, "try again later").
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from ..runfile import schema as S
from .common import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    LaunchMismatch,
    bad_input,
    check_walltime,
    closed_output,
    nothing_to_do,
    other_command,
    world,
)
from .runfiles import InputError, NoCheckpoint, attr_text, read_root, stored_config


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key (repeatable)",
    )
    p.add_argument("-o", "--output", help="output HDF5 file (overrides output.path)")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-walltime",
        metavar="HH:MM:SS",
        help="stop cleanly, checkpointed, before this wall time "
        "(overrides output.max_walltime); exit code 75",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pvmc",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keep the commands whole
        description=(
            "MPI-parallel variational Monte Carlo with an RBM trial wave function.\n"
            "Launch with\n"
            "  mpiexec -n R pvmc run CONFIG\n"
            "or under SLURM with the PMI plugin of this MPI library (a plain srun may\n"
            "start R independent runs):\n"
            "  srun $(pvmc mpi --srun-option) pvmc run CONFIG"
        ),
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"parallel_vmc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="thermalise, optimize, produce; write one HDF5 file")
    _config_args(p)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file (never done without this flag)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="if the output file exists, continue it from its checkpoint "
        "(nothing to do if it is completed); otherwise start it",
    )
    _run_options(p)

    p = sub.add_parser(
        "resume", help="continue an interrupted run (or training) from its checkpoint"
    )
    p.add_argument("run_file", help="HDF5 file of the run (its config is stored in it)")
    _run_options(p)
    from ..generative.config import add_train_parser, stop_option

    stop_option(p)

    p = sub.add_parser("validate", help="check a config and print it resolved; no work")
    _config_args(p)

    p = sub.add_parser("info", help="status, segments, checkpoint and the resume command")
    p.add_argument("run_file", help="HDF5 file written by pvmc run")
    p.add_argument(
        "--status",
        action="store_true",
        help="print only the status (running | interrupted | completed | "
        "failed: ...), for job scripts",
    )
    p.add_argument(
        "--progress",
        action="store_true",
        help="print only how far the run's latest checkpoint is (e.g. "
        "'optimize 3/50 iterations'; 'completed'; 'none'), for job scripts "
        "that check whether a segment made progress",
    )

    p = sub.add_parser("mpi", help="the MPI library mpi4py uses and how srun must start it")
    p.add_argument(
        "--srun-option",
        action="store_true",
        help="print only srun's --mpi option for this library (nothing "
        "when unknown), for job scripts",
    )

    from .dmc import add_parser as add_dmc_parser

    add_dmc_parser(sub)
    add_train_parser(sub)

    from ..bench.options import add_arguments

    p = sub.add_parser("bench", help="ns per Monte Carlo move, samples/s, Allreduce cost")
    add_arguments(p)
    return parser


def _load(args):
    from ..config.vmc import load_config

    return load_config(args.config, args.overrides, args.output)


def cmd_bench(args) -> int:
    """`pvmc bench` (``bench.kernel.run_bench``) with its bad input as exit code 2."""
    from ..bench.kernel import run_bench
    from ..bench.options import BenchInputError
    from ..config.fields import ConfigError

    comm = world()
    try:
        return run_bench(args, comm)
    except (BenchInputError, ConfigError) as exc:
        bad_input(str(exc), comm.rank)
        if getattr(exc, "one_rank", False) and comm.size > 1:
            comm.abort(EXIT_BAD_INPUT)
        return EXIT_BAD_INPUT


def cmd_validate(args) -> int:
    """The config check, and every check ``run`` makes before any work (output path,
    samples per chain, memory, disk) for the rank count validate itself runs on."""
    from ..generative.config import is_train_config

    if is_train_config(args.config):
        from .train import cmd_validate as validate_training

        return validate_training(args)
    from ..config.fields import ConfigError
    from ..run.preflight import all_problems

    comm = world()
    try:
        cfg = _load(args)
    except ConfigError as exc:
        return bad_input(str(exc), comm.rank)
    problem = all_problems(cfg, comm.size, overwrite=False, ranks_on_node=comm.ranks_on_node())
    if problem:
        return bad_input(problem, comm.rank)
    if comm.rank == 0:
        print(cfg.to_yaml(), end="")
        print(f"# {args.config}: valid for {comm.size} rank(s)", file=sys.stderr)
    return EXIT_OK


def _with_output(cfg, path: str, max_walltime: str | None):
    """cfg with output.path (and output.max_walltime, when given) replaced."""
    import dataclasses

    changes = {"path": path}
    if max_walltime is not None:
        changes["max_walltime"] = max_walltime
    return cfg.replace(output=dataclasses.replace(cfg.output, **changes))


def _run_problem(args, cfg, comm, ranks_on_node):
    """Rank 0: (problem, resume) for ``pvmc run``: resume is None (a new run), a
    checkpoint payload, "completed", or "restart" (killed before its first
    checkpoint)."""
    from ..run.preflight import all_problems, resume_problems

    path = cfg.output.path
    try:
        if args.resume and os.path.exists(path):
            try:
                resume = _read_resumable(path, cfg)
            except NoCheckpoint:
                if not _nothing_done(path):
                    raise
                return all_problems(cfg, comm.size, True, ranks_on_node), "restart"
            if resume == "completed":
                return None, resume
            return resume_problems(cfg, comm.size, ranks_on_node), resume
        return all_problems(cfg, comm.size, args.overwrite, ranks_on_node), None
    except InputError as exc:
        return str(exc), None


def cmd_run(args) -> int:
    from ..config.fields import ConfigError

    comm = world()
    ranks_on_node = comm.ranks_on_node()
    problem = resume = None
    try:
        check_walltime(args.max_walltime)
        problem = other_command(args.config, "run")
        if problem:
            return bad_input(problem, comm.rank)
        cfg = _load(args)
        if args.max_walltime is not None:
            cfg = _with_output(cfg, cfg.output.path, args.max_walltime)
    except ConfigError as exc:
        problem = str(exc)
    if comm.rank == 0 and problem is None:
        problem, resume = _run_problem(args, cfg, comm, ranks_on_node)
    problem, resume = comm.bcast((problem, resume))
    if problem:
        return bad_input(problem, comm.rank)
    if resume == "completed":
        return nothing_to_do(cfg.output.path, comm.rank)
    if resume == "restart":
        if comm.rank == 0:
            print(
                f"pvmc: {cfg.output.path} was stopped before its first checkpoint; "
                "starting it again"
            )
        args.overwrite, resume = True, None
    return _execute(cfg, comm, args, resume)


def _nothing_done(path: str) -> bool:
    """A run file with no iteration and no sample recorded (safe to start again)."""
    import h5py

    from ..runfile.hdf5io import in_use

    if in_use(path):
        return False
    try:
        with h5py.File(path, "r", locking=False) as h5:
            return (
                int(h5[S.path(S.OPTIMIZATION, S.ROWS_WRITTEN)][0]) == 0
                and int(h5[S.path(S.PRODUCTION, S.SAMPLES_WRITTEN)][0]) == 0
            )
    except Exception:  # noqa: BLE001 - any damage: not known to be empty
        return False


def cmd_resume(args) -> int:
    from ..generative.gio import is_training_file

    if is_training_file(args.run_file):
        from .train import cmd_resume as resume_training

        return resume_training(args)
    from ..config.fields import ConfigError
    from ..config.vmc import config_from_yaml_text
    from ..run.preflight import resume_problems

    comm = world()
    ranks_on_node = comm.ranks_on_node()
    path = args.run_file
    problem = payload = None
    try:
        check_walltime(args.max_walltime)
        if comm.rank == 0:
            payload = _read_resumable(path)
            if payload != "completed":
                cfg = config_from_yaml_text(payload[0]["config"])
                problem = resume_problems(cfg, comm.size, ranks_on_node)
    except InputError as exc:
        problem = str(exc)
    except ConfigError as exc:
        problem = f"{path}: stored config: {exc}" if payload else str(exc)
    problem, payload = comm.bcast((problem, payload))
    if problem:
        return bad_input(problem, comm.rank)
    if payload == "completed":  # as pvmc run --resume: a requeued job must not fail
        return nothing_to_do(path, comm.rank)
    cfg = _with_output(config_from_yaml_text(payload[0]["config"]), path, args.max_walltime)
    return _execute(cfg, comm, args, payload)


def _read_resumable(path: str, cfg=None):
    """Check that path is a run that can be continued and read its checkpoint.

    Returns (attrs, arrays) of the checkpoint, or "completed". cfg: when given (``run
    --resume``), the config must equal the stored one apart from ``output``. A damaged
    live checkpoint is passed over for the previous one (with a warning).
    Raises InputError naming what is wrong; never modifies anything.
    """
    from ..config.fields import differing_keys
    from ..runfile import checkpoint as ckpt
    from ..runfile.hdf5io import in_use, one_line
    from ..runfile.output import damaged_dataset

    attrs = read_root(path)
    status = attr_text(attrs[S.STATUS])
    if cfg is not None:
        stored = stored_config(path, attrs)
        keys = differing_keys(stored, cfg.to_dict(), ignore=("output",))
        if keys:
            raise InputError(
                f"{path} exists and was started with a different config "
                f"({', '.join(keys)}); resume it with its own config "
                f"(pvmc resume {path}) or choose another output path"
            )
    if status == S.COMPLETED:
        return "completed"
    if attr_text(attrs[S.FORMAT]) not in map(str, S.RESUMABLE_FORMATS):
        raise InputError(
            f"{path}: {S.FORMAT} {attr_text(attrs[S.FORMAT])!r} was "
            f"not written by this parallel_vmc version; it resumes formats "
            f"{', '.join(map(str, S.RESUMABLE_FORMATS))} only"
        )
    if in_use(path):  # a writer holds the lock of a run that is still going
        raise InputError(f"{path} is in use by another process; is the run still going?")
    try:
        c_attrs, arrays, note = ckpt.read_latest(ckpt.path_for(path))
    except ckpt.CheckpointError as exc:
        raise NoCheckpoint(
            f"{path}: status {status!r} but no usable checkpoint: {exc}. "
            "Start the run again (pvmc run CONFIG --overwrite)"
        ) from None
    problem = _checkpoint_problem(c_attrs, arrays, attrs) or _layout_problem(c_attrs, arrays)
    if problem:
        raise InputError(f"{path}: {problem}; it cannot be resumed")
    try:
        bad = damaged_dataset(path, int(c_attrs["iteration"]), int(c_attrs["prod_done"]))
    except Exception as exc:  # noqa: BLE001 - a file h5py cannot even walk
        bad = one_line(exc, 200)
    if bad:
        raise InputError(
            f"{path} is damaged: {bad}; the data up to its checkpoint "
            "cannot be read back, so it cannot be resumed"
        )
    if note:
        print(f"pvmc: warning: {note}", file=sys.stderr, flush=True)
    return c_attrs, arrays


def _checkpoint_problem(c_attrs: dict, arrays: dict, run_attrs: dict) -> str | None:
    """Why a checkpoint does not belong to this run file or is incomplete; None if fine."""
    from ..run.state import REQUIRED_ARRAYS, REQUIRED_ATTRS
    from ..runfile import checkpoint as ckpt

    if c_attrs.get("format_version") not in ckpt.READS:
        return (
            f"its checkpoint has format {c_attrs.get('format_version')}, this version "
            f"reads {', '.join(map(str, ckpt.READS))}"
        )
    missing = [k for k in REQUIRED_ATTRS if k not in c_attrs] + [
        k for k in REQUIRED_ARRAYS if k not in arrays
    ]
    if missing:
        return f"its checkpoint is incomplete (missing {', '.join(missing)})"
    if attr_text(c_attrs["run_id"]) != attr_text(run_attrs.get(S.RUN_ID, "")):
        return (
            "the checkpoint beside it belongs to another run (run_id differs); "
            "it was left behind by an earlier run of the same name"
        )
    return None


def _layout_problem(c_attrs: dict, arrays: dict) -> str | None:
    """Why the checkpoint's theta does not fit the parameters its stored config gives
    now, or None. A config stored before a key existed reads with the key's default,
    which may add a part: system.statistics (default fermions) adds the Slater part to
    a run of P > 2 from before fermions, whose theta has no orbital scale."""
    from ..config.fields import ConfigError
    from ..config.vmc import config_from_yaml_text
    from ..wavefunction import Layout

    try:
        cfg = config_from_yaml_text(attr_text(c_attrs["config"]))
    except ConfigError:
        return None  # reported where the config is read
    n = Layout.from_config(cfg.system, cfg.wavefunction).n_params
    if arrays["theta"].size == n:
        return None
    return (
        f"its checkpoint holds {arrays['theta'].size} parameters, but its stored "
        f"config now gives {n} (a run from before a key whose default adds "
        f"parameters, such as system.statistics: fermions)"
    )


def _execute(cfg, comm, args, resume) -> int:
    """Run or resume on every rank; the exit code."""
    from ..run.driver import Run, RunFailed, RunInterrupted, RunRefused
    from ..runfile.hdf5io import one_line

    try:
        run = Run(
            cfg,
            comm,
            overwrite=getattr(args, "overwrite", False),
            progress=not args.quiet,
            resume=resume,
        )
        run.execute()
    except RunInterrupted:
        return EXIT_INTERRUPTED
    except RunRefused as exc:  # decided on every rank together, nothing touched
        return bad_input(str(exc), comm.rank)
    except RunFailed as exc:  # decided on every rank together: a normal exit
        if comm.rank == 0:
            print(f"pvmc: run failed: {exc}", file=sys.stderr, flush=True)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_FAILED
    except OSError as exc:  # the machine's fault (disk full, I/O error): no traceback
        print(f"pvmc: rank {comm.rank}: run failed: {one_line(exc)}", file=sys.stderr, flush=True)
        if comm.size > 1:
            comm.abort(EXIT_FAILED)
        return EXIT_FAILED
    except Exception:  # noqa: BLE001 - report, mark the file, and stop every rank
        print(f"pvmc: rank {comm.rank}: run failed:", file=sys.stderr)
        traceback.print_exc()
        sys.stderr.flush()
        if comm.size > 1:
            comm.abort(EXIT_FAILED)
        return EXIT_FAILED
    return EXIT_OK


def cmd_info(args) -> int:
    from ..generative.gio import is_training_file

    if is_training_file(args.run_file):
        from .train import cmd_info as training_info

        return training_info(args)
    import h5py

    from ..runfile.hdf5io import one_line

    path = args.run_file
    try:
        read_root(path)
    except InputError as exc:
        return bad_input(str(exc))
    try:
        with h5py.File(path, "r", locking=False) as h5:
            if args.status:
                print(one_line(attr_text(h5.attrs[S.STATUS])))
                return EXIT_OK
            if args.progress:
                print(_checkpoint_progress(path, attr_text(h5.attrs[S.STATUS])))
                return EXIT_OK
            return _print_info(path, h5)
    except BrokenPipeError:
        raise  # not damage: the reader of stdout went away
    except Exception as exc:  # noqa: BLE001 - any damage becomes one message
        sys.stdout.flush()
        return bad_input(
            f"{path}: incomplete or damaged run file ({type(exc).__name__}: {one_line(exc, 200)})"
        )


def _system_lines(path, h5) -> list:
    """Info lines of the system with its statistics (/wavefunction's, else the
    config's) and, when the file has them (at the end of a fermion run), the orbitals
    each spin occupies, the orbital scale and the largest inverse drift."""
    try:
        system = stored_config(path, h5.attrs).get("system")
    except InputError as exc:  # info still shows the rest of the file
        return [f"system        unknown: {exc}"]
    system = system if isinstance(system, dict) else {}
    wf = h5[S.WAVEFUNCTION] if S.WAVEFUNCTION in h5 else None
    statistics = system.get(
        "statistics", "not recorded (a run from before fermions: no determinants)"
    )
    if wf is not None and S.STATISTICS in wf.attrs:
        statistics = attr_text(wf.attrs[S.STATISTICS])
    omega = system.get("omega")
    omega = f"{omega:g}" if isinstance(omega, (int, float)) else omega
    lines = [
        f"system        P={system.get('particles')} D={system.get('dimensions')} "
        f"omega={omega}, {system.get('interaction', 'coulomb')}, {statistics}"
    ]
    if wf is not None and S.ORBITALS in wf:
        drift = wf.attrs.get(S.INVERSE_DRIFT)
        lines.append(
            f"orbitals      {S.orbitals_text(wf[S.ORBITALS][()])}; orbital scale "
            f"alpha={float(wf[S.ORBITAL_SCALE][()]):.6g}"
            + ("" if drift is None else f"; inverse drift {S.inverse_drift_text(float(drift))}")
        )
    return lines


def _checkpoint_progress(path: str, status: str) -> str:
    """How far the latest usable checkpoint of an unfinished run is; 'completed' for
    a completed run, 'none' without a usable checkpoint."""
    from ..runfile import checkpoint as ckpt

    if status == S.COMPLETED:
        return S.COMPLETED
    try:
        c, _, _ = ckpt.read_latest(ckpt.path_for(path))
    except ckpt.CheckpointError:
        return "none"
    from ..runfile.hdf5io import one_line

    return one_line(attr_text(c["progress"]))


def cmd_mpi(args) -> int:
    """The MPI library (without initialising MPI) and the srun option it needs."""
    from ..parallel import library_name, srun_mpi_option

    library, option = library_name(initialize=False), srun_mpi_option(initialize=False)
    if args.srun_option:
        if option:
            print(option)
        return EXIT_OK
    print(f"library       {library}")
    print(f"srun option   {option or '(unknown library: the site default, MpiDefault)'}")
    return EXIT_OK


def _print_info(path, h5) -> int:
    """Print the info table of an open run file; exit code."""
    from ..runfile import checkpoint as ckpt
    from ..stats.text import estimate
    from .dmc import info_lines as dmc_info_lines

    a = h5.attrs
    status = attr_text(a[S.STATUS])
    print(f"file          {path}")
    print(f"status        {status}")
    print(
        f"created       {attr_text(a['created'])}  on {attr_text(a['hostname'])}, {a['mpi_size']} "
        f"rank(s) x {a['walkers_per_rank']} walkers, seed {a['seed']}"
    )
    for line in _system_lines(path, h5):
        print(line)
    if S.path(S.OPTIMIZATION, "energy") in h5:
        opt = h5[S.OPTIMIZATION]
        n = int(opt[S.ROWS_WRITTEN][0]) if S.ROWS_WRITTEN in opt else opt["energy"].shape[0]
        last = (
            f", last energy {estimate(opt['energy'][n - 1], opt['energy_error'][n - 1])}"
            if n
            else ""
        )
        print(f"iterations    {n} of {opt['energy'].shape[0]} done{last}")
    if S.path(S.PRODUCTION, S.LOCAL_ENERGY) in h5:
        prod = h5[S.PRODUCTION]
        done = (
            int(prod[S.SAMPLES_WRITTEN][0])
            if S.SAMPLES_WRITTEN in prod
            else prod.attrs.get("samples_per_chain", 0)
        )
        n_chains, per_chain = prod[S.LOCAL_ENERGY].shape
        print(f"production    {done} of {per_chain} samples per chain x {n_chains} chains")
    if S.SUMMARY in h5:
        s = h5[S.SUMMARY].attrs
        print(
            f"energy        {estimate(s['energy'], s['error'])} (blocking), "
            f"variance {s['variance']:.6g}"
        )
    for line in dmc_info_lines(h5):
        print(line)
    if S.path(S.SEGMENTS, "ended") in h5:
        seg = h5[S.SEGMENTS]
        n = seg["ended"].shape[0]
        for k in range(n):
            ended = attr_text(seg["ended"][k])
            at = attr_text(seg["progress"][k]) if "progress" in seg else ""
            # a completed segment's progress is "completed" too: say it once
            where = f", at {at}" if at and at != ended else ""
            if k == n - 1 and status == S.RUNNING and ended == S.RUNNING:
                # a live segment's row holds where it started until it ends
                written = _written_progress(h5)
                where = (f", started at {at}" if at else "") + (
                    f"; the file holds {written}" if written else ""
                )
            print(
                f"segment {k}     {seg['mpi_size'][k]} rank(s) on "
                f"{attr_text(seg['hostname'][k])}, {attr_text(seg['start_time'][k])} -> "
                f"{attr_text(seg['end_time'][k]) or '...'}: {ended}{where}"
            )
    if S.CHECKPOINT in h5:
        print(f"checkpoint    final state in /{S.CHECKPOINT} of this file")
    if status != S.COMPLETED:
        live = ckpt.path_for(path)
        try:
            c, _, note = ckpt.read_latest(live)
        except ckpt.CheckpointError as exc:
            print(f"checkpoint    none usable ({exc}); the run cannot be resumed")
            return EXIT_OK
        if note:
            print(f"warning       {note}")
            live += ckpt.PREVIOUS
        print(
            f"checkpoint    {live}, written {c['written']}: the run at {c['progress']}, "
            "where a resume starts"
        )
        if status.startswith(S.FAILED):
            print(
                "resume        possible from that checkpoint, but the run failed: "
                "read the status first"
            )
            return EXIT_OK
        if status == S.RUNNING:
            print(
                "note          status 'running': the run is still going, or was killed "
                "without a chance to record it"
            )
        print(
            f"resume with   mpiexec -n {c['mpi_size']} pvmc resume {path}"
            f"   (or: {_srun()} pvmc resume {path}; another rank count re-seeds the chains)"
        )
    return EXIT_OK


def _srun() -> str:
    """srun as it must start pvmc with this MPI library (``pvmc mpi --srun-option``):
    a plain srun may start independent runs."""
    from ..parallel import srun_mpi_option

    option = srun_mpi_option(initialize=False)
    return f"srun {option}" if option else "srun $(pvmc mpi --srun-option)"


def _written_progress(h5) -> str | None:
    """How far what the run has written into its file goes, from the counters the
    writer moves as it writes (in the words of the checkpoints' progress); None
    before its first iteration."""
    prod, opt = h5[S.PRODUCTION], h5[S.OPTIMIZATION]
    samples = int(prod[S.SAMPLES_WRITTEN][0]) if S.SAMPLES_WRITTEN in prod else 0
    if samples and S.LOCAL_ENERGY in prod:
        return f"produce {samples}/{prod[S.LOCAL_ENERGY].shape[1]} samples per chain"
    rows = int(opt[S.ROWS_WRITTEN][0]) if S.ROWS_WRITTEN in opt else 0
    if rows and "energy" in opt:
        return f"optimize {rows}/{opt['energy'].shape[0]} iterations"
    return None


def _cmd_train(args) -> int:
    from .train import cmd_train

    return cmd_train(args)


def _cmd_dmc(args) -> int:
    """pvmc dmc: the new file prepared (``cli/dmc.py``), then resumed like any run."""
    from .dmc import prepare

    code = prepare(args)
    return cmd_resume(args) if code is None else code


def entry() -> int:
    """The `pvmc` command and `python -m parallel_vmc`: main() in a process of its own,
    which ignores stop signals once a run is over (see
    control.ignore_signals_after_runs; not in main(), which tests call in-process)."""
    from ..control import ignore_signals_after_runs

    ignore_signals_after_runs()
    return main()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = {
        "run": cmd_run,
        "resume": cmd_resume,
        "validate": cmd_validate,
        "info": cmd_info,
        "mpi": cmd_mpi,
        "train": _cmd_train,
        "dmc": _cmd_dmc,
    }.get(args.command)
    if handler is None:
        handler = cmd_bench
    try:
        return handler(args)
    except BrokenPipeError:
        return closed_output()
    except LaunchMismatch as exc:
        from ..parallel import launch_leader

        return bad_input(str(exc), 0 if launch_leader(os.environ) else 1)


if __name__ == "__main__":
    sys.exit(main())
