"""The project's plain-C speed references for ``pvmc bench --reference``.

The C files beside this module are installed with the package:

* ``rbm`` (``rbm_vmc_ref.c``): the Gaussian-binary RBM alone, the problem of ``pvmc
  bench`` without a config (bosons, or two fermions in one orbital);
* ``slater`` (``slater_vmc_ref.c``): Slater determinants x RBM x Padé-Jastrow with
  Coulomb, the fermion problem (closed shells).

Each is one C99 file written for this project with the kernel's algorithm and work per
move (``sampling/kernels.py`` and the parts in ``wavefunction/``), Metropolis and
importance sampling, an error bar on ``<E>``, and a self-test (``--selftest``: derivatives
of ln psi against finite differences, updated caches and inverses against fresh ones, the
exact energy of the non-interacting problem; exit status 1 on failure). Their opening
comments give the command lines and the printed fields; ``tests/test_reference_c.py``
checks them against the kernel.

This module: where they are, and how the bench compiles them (``gcc`` or ``cc`` from
PATH with ``FLAGS``). No numba: the command line's checks read it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import BenchInputError

DIRECTORY = os.path.dirname(os.path.abspath(__file__))
NAMES = {"rbm": "rbm_vmc_ref.c", "slater": "slater_vmc_ref.c"}
FLAGS = ("-O3", "-march=native", "-ffast-math")
ALLOWED = (
    f"{' or '.join(NAMES)} (the project's C references: {', '.join(NAMES.values())}), "
    "or the path of a C source file FILE.c"
)


def path(name: str) -> str:
    """The installed source of the reference called name (a key of NAMES)."""
    return os.path.join(DIRECTORY, NAMES[name])


def resolve(value: str) -> str:
    """The C source that ``--reference value`` names: a packaged reference by name, else
    the path of a C file; BenchInputError (exit code 2) naming what is allowed."""
    if value in NAMES:
        source = path(value)
        if not os.path.isfile(source):
            raise BenchInputError(
                f"--reference {value}: {source} is missing from this installation "
                f"(reinstall parallel_vmc); allowed: {ALLOWED}"
            )
        return source
    if not value.endswith(".c"):
        raise BenchInputError(f"--reference {value!r}: allowed: {ALLOWED}")
    if not os.path.isfile(value):
        raise BenchInputError(f"--reference {value!r}: file not found; allowed: {ALLOWED}")
    return value


def compiler() -> str:
    """The C compiler on PATH (gcc, else cc); BenchInputError if there is none."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise BenchInputError(
            "--reference: no C compiler on PATH (looked for gcc and cc); allowed: a "
            "machine with one (e.g. apt-get install gcc), or pvmc bench without --reference"
        )
    return cc


def compile_source(source: str, exe: str) -> None:
    """Compile the C file source into the executable exe as the bench does (the C
    library's math linked); BenchInputError with the compiler's first error line if
    it does not compile."""
    res = subprocess.run(
        [compiler(), *FLAGS, "-x", "c", "-o", exe, source, "-lm"],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if res.returncode != 0:
        lines = [line.strip() for line in res.stderr.splitlines() if line.strip()]
        first = next(
            (line for line in lines if "error" in line),
            lines[0] if lines else f"exit code {res.returncode}",
        )
        raise BenchInputError(f"--reference {source!r}: does not compile: {first}")
