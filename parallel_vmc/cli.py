"""`pvmc run | validate | info | bench`.

Exit codes: 0 success; 1 the run failed while running (status "failed: ..." in the
file); 2 bad input (config, command line, files), reported before any work and without
touching existing files.
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class InputError(Exception):
    """Bad input that is not a config key (files, paths)."""


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="YAML config file")
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("-o", "--output", help="output HDF5 file (overrides output.path)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pvmc", description=(
        "MPI-parallel variational Monte Carlo with an RBM trial wave function. "
        "Launch with `mpiexec -n R pvmc run CONFIG` or `srun pvmc run CONFIG`."))
    from . import __version__
    parser.add_argument("--version", action="version", version=f"parallel_vmc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="thermalise, optimise, produce; write one HDF5 file")
    _config_args(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output file (never done without this flag)")
    p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = sub.add_parser("validate", help="check a config and print it resolved; no work")
    _config_args(p)

    p = sub.add_parser("info", help="status, segments and energies of a run file")
    p.add_argument("run_file", help="HDF5 file written by pvmc run")

    from .bench import add_arguments
    p = sub.add_parser("bench", help="ns per Monte Carlo move, samples/s, Allreduce cost")
    add_arguments(p)
    return parser


def _error(text: str, rank: int = 0) -> int:
    if rank == 0:
        print(f"pvmc: error: {text}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def _load(args):
    from .config import load_config
    return load_config(args.config, args.overrides, args.output)


def _check_output(path: str, overwrite: bool) -> None:
    """Refuse to touch an existing file (or a directory) before any work is done."""
    if not path.strip():
        raise InputError("output.path is empty; give a file name")
    if os.path.isdir(path):
        raise InputError(f"output.path {path!r} is a directory; give a file name")
    if os.path.exists(path) and not overwrite:
        raise InputError(f"output file {path!r} exists; choose another output.path "
                         "(-o PATH) or pass --overwrite to replace it")
    parent = os.path.dirname(os.path.abspath(path))
    probe = parent
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK):
        raise InputError(f"output.path {path!r}: directory {probe!r} is not writable")


def cmd_validate(args) -> int:
    from .config import ConfigError
    try:
        cfg = _load(args)
    except ConfigError as exc:
        return _error(str(exc))
    print(cfg.to_yaml(), end="")
    print(f"# {args.config}: valid", file=sys.stderr)
    return EXIT_OK


def cmd_run(args) -> int:
    from .config import ConfigError
    from .parallel import world
    comm = world()
    try:
        cfg = _load(args)
        problem = None
        n_chains = comm.size * cfg.sampler.walkers_per_rank
        if -(-cfg.production.samples // n_chains) < 4:
            problem = (f"production.samples: {cfg.production.samples} gives fewer than 4 "
                       f"samples per chain for {n_chains} chains; allowed: >= {4 * n_chains}")
        if comm.rank == 0 and problem is None:
            try:
                _check_output(cfg.output.path, args.overwrite)
            except InputError as exc:
                problem = str(exc)
        problem = comm.bcast(problem)
        if problem:
            return _error(problem, comm.rank)
    except ConfigError as exc:
        return _error(str(exc), comm.rank)

    from .driver import Run
    try:
        run = Run(cfg, comm, overwrite=args.overwrite, progress=not args.quiet)
        run.execute()
    except KeyboardInterrupt:
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
    import h5py
    path = args.run_file
    if not os.path.isfile(path):
        return _error(f"run file not found: {path}")
    try:
        h5 = h5py.File(path, "r", locking=False)
    except OSError as exc:
        return _error(f"{path}: not an HDF5 file ({exc})")
    try:
        with h5:
            return _print_info(path, h5)
    except (KeyError, OSError, ValueError) as exc:
        return _error(f"{path}: incomplete or damaged run file ({exc})")


def _print_info(path, h5) -> int:
    """Print the info table of an open run file; exit code."""
    if "format_version" not in h5.attrs or "status" not in h5.attrs:
        return _error(f"{path}: not a pvmc run file (no format_version/status attributes)")
    a = h5.attrs
    print(f"file          {path}")
    print(f"status        {a['status']}")
    print(f"created       {a['created']}  on {a['hostname']}, {a['mpi_size']} rank(s) x "
          f"{a['walkers_per_rank']} walkers, seed {a['seed']}")
    if "optimization/energy" in h5:
        e = h5["optimization/energy"]
        n = e.shape[0]
        last = (f", last energy {e[n - 1]:.6f} +- {h5['optimization/energy_error'][n - 1]:.6f}"
                if n else "")
        print(f"iterations    {n}{last}")
    if "production" in h5:
        print(f"production    {h5['production'].attrs.get('samples_per_chain', 0)} samples "
              f"per chain x {h5['production/local_energy'].shape[0]} chains")
    if "summary" in h5:
        s = h5["summary"].attrs
        print(f"energy        {s['energy']:.6f} +- {s['error']:.6f} (blocking), "
              f"variance {s['variance']:.6g}")
    if "segments/ended" in h5:
        seg = h5["segments"]
        for k in range(seg["ended"].shape[0]):
            print(f"segment {k}     {seg['mpi_size'][k]} rank(s) on "
                  f"{seg['hostname'][k].decode()}, {seg['start_time'][k].decode()} -> "
                  f"{seg['end_time'][k].decode() or '...'}: {seg['ended'][k].decode()}")
    print(f"checkpoint    {'/checkpoint in this file' if 'checkpoint' in h5 else 'none'}")
    return EXIT_OK


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"run": cmd_run, "validate": cmd_validate, "info": cmd_info}.get(args.command)
    if handler is None:
        from .bench import cmd_bench
        handler = cmd_bench
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
