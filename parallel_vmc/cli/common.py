"""What every command shares: the exit codes, the one-line report of bad input, the
communicator with its launch check, and the wall-time option's check."""

from __future__ import annotations

import os
import sys

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 75
EXIT_CLOSED_OUTPUT = 141  # 128 + SIGPIPE: what a shell tool dies with under `| head`


def closed_output() -> int:
    """The reader of stdout went away (``pvmc info RUN.h5 | head``): stop quietly, as
    a shell tool does, with stdout pointed at /dev/null so that Python's final flush
    does not fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return EXIT_CLOSED_OUTPUT


def nothing_to_do(path: str, rank: int = 0) -> int:
    """A run or training asked to continue is already completed: one line on rank 0,
    and success (exit 0), so that a requeued job resuming a finished run does not
    fail; the exit code."""
    if rank == 0:
        print(f"pvmc: {path} is already completed; nothing to do", flush=True)
    return EXIT_OK


def bad_input(text: str, rank: int = 0) -> int:
    """Report bad input on rank 0 as one 'pvmc: error:' line; the exit code (2)."""
    if rank == 0:
        print(f"pvmc: error: {text}", file=sys.stderr, flush=True)
    return EXIT_BAD_INPUT


class LaunchMismatch(Exception):
    """The launcher started more tasks than MPI connected (message in args[0])."""


def world():
    """The communicator; LaunchMismatch before anything is read or written when the
    launcher asked for more tasks than MPI connected."""
    from ..parallel import launch_problem
    from ..parallel import world as mpi_world

    comm = mpi_world()
    problem = launch_problem(comm.size, os.environ)
    if problem:
        raise LaunchMismatch(problem)
    return comm


def other_command(path: str, command: str) -> str | None:
    """Why the config file at path is not one for ``pvmc command`` but for the other
    of run and train (the message says which), or None."""
    from ..generative.config import command_for

    other = command_for(path)
    if other is None or other == command:
        return None
    kind = "a training config (a data section, no system section)"
    if other == "run":
        kind = "a VMC config (a system section, no data section)"
    return f"{path} is {kind}, not one for pvmc {command}; run it with: pvmc {other} {path}"


def check_walltime(text: str | None) -> None:
    """ConfigError naming --max-walltime if text (HH:MM:SS or None) is not a wall time."""
    if text is None:
        return
    from ..config.fields import check_value
    from ..config.vmc import SPEC

    check_value("--max-walltime", SPEC["output"]["max_walltime"], text)
