"""Oscillator shells of fermions in a D-dimensional harmonic trap: which electron
counts close a shell, the quantum numbers of the occupied orbitals and their energy.
Plain numpy (config validation uses it without numba); the Slater part compiles
:func:`quantum_numbers` for its kernels."""

from __future__ import annotations

import numpy as np


def shell_size(shell: int, D: int) -> int:
    """Orbitals in oscillator shell ``shell`` (n_1 + ... + n_D = shell)."""
    return {1: 1, 2: shell + 1, 3: (shell + 1) * (shell + 2) // 2}[D]


def closed_shells(D: int, limit: int) -> tuple:
    """The closed-shell electron counts up to limit in D dimensions (two spins):
    2D 2, 6, 12, 20, ...; 3D 2, 8, 20, 40, ...; 1D every even count."""
    out, filled, shell = [], 0, 0
    while True:
        filled += shell_size(shell, D)
        if 2 * filled > limit:
            return tuple(out)
        out.append(2 * filled)
        shell += 1


def quantum_numbers(n, D):
    """(n, D) int64: the oscillator quantum numbers of the n lowest orbitals, shell by
    shell, within a shell n_1 descending, then n_2 (2D: (0,0), (1,0), (0,1), (2,0),
    (1,1), (0,2), ...)."""
    out = np.zeros((n, D), dtype=np.int64)
    j, shell = 0, 0
    while j < n:
        for n1 in range(shell, -1, -1):
            rest = shell - n1
            if D == 1 and rest > 0:
                continue
            for n2 in range(rest if D >= 2 else 0, -1, -1):
                if D == 2 and n2 != rest:
                    continue
                if j < n:
                    out[j, 0] = n1
                    if D >= 2:
                        out[j, 1] = n2
                    if D == 3:
                        out[j, 2] = rest - n2
                    j += 1
        shell += 1
    return out


def non_interacting_energy(P: int, D: int, omega: float) -> float:
    """Closed-shell energy of P non-interacting fermions in D dimensions: 2 omega
    sum_j (|n_j| + D/2) over the P/2 orbitals per spin."""
    q = quantum_numbers(P // 2, D)
    return float(2.0 * omega * (q.sum() + 0.5 * D * len(q)))
