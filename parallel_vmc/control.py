"""When to checkpoint and when to stop: signals, wall time, and rank-wide agreement.

Every rank catches SIGTERM, SIGUSR1 and SIGINT and only raises a flag; nothing is
decided inside a handler. After each unit of work (a thermalisation chunk, an
optimization iteration, a production chunk) every rank contributes a short vector of
flags to a reduction the driver performs anyway, so that all ranks take the same
decision at the same point:

    F_SIGNAL    this rank received a stop signal
    F_CKPT      rank 0's timer says a checkpoint is due
    F_WALLTIME  rank 0 estimates the next unit + checkpoint would overrun max_walltime
    F_FAIL      this rank raised an exception in its unit of work
    F_FAILRANK  rank + 1 of a failing rank (names it when exactly one rank fails)
    F_STUCK     walkers of this rank that just passed the stuck-walker limit
    F_BADTHETA  this rank's parameters are not finite

The wall-time margin is measured, not guessed: twice the longest unit and the longest
checkpoint seen so far, plus a fixed reserve for the final bookkeeping.

The first compile of the kernels is no unit of work and takes a minute or more with
an empty numba cache; a stop signal then still takes effect after the next unit, but
rank 0 says at once that it is noted (:meth:`Control.compiling`). Stopping inside the
compile would not be clean: the other ranks would wait in the first reduction.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

F_SIGNAL, F_CKPT, F_WALLTIME, F_FAIL, F_FAILRANK, F_STUCK, F_BADTHETA = range(7)
N_FLAGS = 7
STOP_SIGNALS = ("SIGTERM", "SIGUSR1", "SIGINT")
RESERVE_SECONDS = 2.0  # closing the file, the segment row, MPI finalisation
# Environment variable naming a file that rank 0 creates once every rank catches the
# stop signals (job scripts hold a signal until it exists).
READY_FILE_VARIABLE = "PVMC_READY_FILE"
# Set by the `pvmc` process entry: a run that ends leaves its stop signals ignored.
_IGNORE_AFTER_RUNS = [False]


def ignore_signals_after_runs() -> None:
    """Make :meth:`Control.uninstall` at the end of a run (VMC or training) ignore the
    stop signals instead of restoring the previous handlers, for the rest of this
    process (other users still get theirs back). For `pvmc` as a
    process of its own: a late copy of a stop signal (srun forwarding one to every
    task, SLURM's TERM) must not kill a rank whose run is over while the others wait
    for it in MPI's finalize. Restoring the default first, even briefly, leaves that
    window open.
    Called in-process (tests), a run leaves the caller's handlers as they were."""
    _IGNORE_AFTER_RUNS[0] = True


def announce_ready(comm, stream=None) -> None:
    """Create the file PVMC_READY_FILE names (if set) once every rank of comm takes
    stop signals (call it collectively after :meth:`Control.install`): a job script
    holds a signal until then, because one that arrives earlier would kill a rank (or
    the launcher) instead of stopping the run. A file that cannot be created is a
    warning on stream (default stderr): the script then holds the signal for at most
    PVMC_HOLD_MAX seconds."""
    # rank 0's environment decides for all: a launcher may not export it to all
    path = comm.bcast(os.environ.get(READY_FILE_VARIABLE))
    if not path:
        return
    comm.barrier()
    if comm.rank == 0:
        try:
            open(path, "a").close()
        except OSError as exc:
            print(
                f"pvmc: warning: cannot create {READY_FILE_VARIABLE} {path}: {exc}",
                file=stream or sys.stderr,
                flush=True,
            )


def _process_start() -> float:
    """time.monotonic() at which this process started (Linux /proc), else now; the
    wall-time limit counts from there, interpreter start-up and imports included."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        age = uptime - ticks / os.sysconf("SC_CLK_TCK")
        if 0.0 <= age < 3600.0 * 24 * 365:
            return time.monotonic() - age
    except (OSError, ValueError, IndexError):
        pass
    return time.monotonic()


PROCESS_START = _process_start()


@dataclass
class Decision:
    """What every rank does after a unit of work (identical on all ranks)."""

    stop: str | None = None  # why to stop cleanly (signal name / wall time)
    checkpoint: bool = False
    failed_ranks: str | None = None  # "rank 3" / "2 ranks" when a rank raised
    stuck: int = 0  # walkers newly stuck in this unit (all ranks)
    bad_theta: bool = False  # some rank's parameters are not finite


class Control:
    """Per-rank stop/checkpoint bookkeeping around the driver's reductions."""

    def __init__(
        self,
        rank: int,
        checkpoint_every: float,
        max_walltime: float | None,
        start: float = PROCESS_START,
    ):
        self.rank = rank
        self.checkpoint_every = checkpoint_every
        self.max_walltime = max_walltime
        self.start = start
        self.signal_name: str | None = None
        self.last_checkpoint = time.monotonic()
        self.unit_start = time.monotonic()
        self.longest_unit = 0.0
        self.longest_checkpoint = 0.0
        self._previous = {}

    # ------------------------------------------------------------------ signals
    def install(self) -> None:
        """Catch the stop signals (main thread only); restored by :meth:`uninstall`."""
        for name in STOP_SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                self._previous[sig] = signal.signal(sig, self._handler)

    def uninstall(self, run_over: bool = False) -> None:
        """Restore the handlers :meth:`install` replaced; with run_over (a VMC run that
        has ended) ignore the signals instead if this process asked for it (see
        :func:`ignore_signals_after_runs`)."""
        ignore = run_over and _IGNORE_AFTER_RUNS[0]
        for sig, handler in self._previous.items():
            signal.signal(sig, signal.SIG_IGN if ignore else handler)
        self._previous = {}

    def _handler(self, signum, frame) -> None:  # noqa: ARG002 - signal API
        self.signal_name = signal.Signals(signum).name

    @contextlib.contextmanager
    def compiling(self, stream=None):
        """The block compiles (or loads) the kernels, between units of work: a stop
        signal that arrives during it, or came before it and waits for the next unit,
        is noted at once by one line on rank 0's stderr (stream), saying that the stop
        comes after compiling.

        The line comes from a thread woken by the signal's byte on a wakeup fd
        (``signal.set_wakeup_fd``, written by the C-level handler the moment the signal
        arrives): Python runs its own handler only between bytecodes of the main
        thread, which can sit in one LLVM pass for seconds. Off the main thread (no
        wakeup fd possible) the block runs without the note."""
        stream = sys.stderr if stream is None else stream
        noted = [self.signal_name is not None]
        if self.rank != 0:
            yield
            return
        if noted[0]:
            self._note(self.signal_name, stream)
        read, write = os.pipe()
        os.set_blocking(write, False)  # the C handler must never block
        try:
            previous = signal.set_wakeup_fd(write, warn_on_full_buffer=False)
        except ValueError:  # not the main thread
            os.close(read)
            os.close(write)
            yield
            return
        watcher = threading.Thread(
            target=self._watch, args=(read, noted, stream), name="pvmc-stop-note", daemon=True
        )
        watcher.start()
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous)
            os.write(write, b"\0")  # no signal has number 0: the watcher's end
            watcher.join()
            os.close(read)
            os.close(write)

    def _watch(self, fd: int, noted: list, stream) -> None:
        """The watcher thread of :meth:`compiling`: the first stop signal's note, until
        the byte 0."""
        names = {getattr(signal, n) for n in STOP_SIGNALS if hasattr(signal, n)}
        while True:
            data = os.read(fd, 64)
            if not data:  # cannot happen while the write end is open
                return
            for signum in data:
                if signum == 0:
                    return
                if signum in names and not noted[0]:
                    noted[0] = True
                    self._note(signal.Signals(signum).name, stream)

    @staticmethod
    def _note(name: str, stream) -> None:
        print(
            f"pvmc: {name} noted while the kernels compile (a minute or more with an "
            "empty numba cache); the run stops with a checkpoint once they are compiled",
            file=stream,
            flush=True,
        )

    # ------------------------------------------------------------------ flags
    def begin_unit(self) -> None:
        self.unit_start = time.monotonic()

    def flags(self, failed: bool = False, stuck: int = 0, bad_theta: bool = False) -> np.ndarray:
        """This rank's flag vector for the reduction after a unit of work."""
        now = time.monotonic()
        self.longest_unit = max(self.longest_unit, now - self.unit_start)
        f = np.zeros(N_FLAGS)
        f[F_SIGNAL] = self.signal_name is not None
        f[F_FAIL] = failed
        f[F_FAILRANK] = (self.rank + 1) if failed else 0
        f[F_STUCK] = stuck
        f[F_BADTHETA] = bad_theta
        if self.rank == 0:
            f[F_CKPT] = now - self.last_checkpoint >= self.checkpoint_every
            f[F_WALLTIME] = self.walltime_exceeded(now)
        return f

    def walltime_exceeded(self, now: float | None = None) -> bool:
        """Would one more unit plus a checkpoint overrun the wall-time limit?"""
        if self.max_walltime is None:
            return False
        now = time.monotonic() if now is None else now
        margin = 2.0 * (self.longest_unit + self.longest_checkpoint) + RESERVE_SECONDS
        return now - self.start + margin >= self.max_walltime

    def decide(self, total: np.ndarray) -> Decision:
        """Turn the reduced flag vector into the common decision."""
        d = Decision(stuck=int(total[F_STUCK]), bad_theta=bool(total[F_BADTHETA]))
        n_fail = int(total[F_FAIL])
        if n_fail:
            d.failed_ranks = (
                f"rank {int(total[F_FAILRANK]) - 1}" if n_fail == 1 else f"{n_fail} ranks"
            )
        if total[F_SIGNAL]:
            d.stop = self.signal_name or "a stop signal (on another rank)"
        elif total[F_WALLTIME]:
            d.stop = "the wall-time limit"
        d.checkpoint = bool(total[F_CKPT]) or d.stop is not None
        return d

    def elapsed(self) -> float:
        """Seconds since the process started."""
        return time.monotonic() - self.start

    def checkpoint_written(self, seconds: float) -> None:
        self.longest_checkpoint = max(self.longest_checkpoint, seconds)
        self.last_checkpoint = time.monotonic()
