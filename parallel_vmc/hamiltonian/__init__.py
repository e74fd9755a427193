"""The Hamiltonian's terms: the trap (``trap``), the interactions (``coulomb``,
``hard_core``), the one pair distance (``geometry``), the registry of terms
(``terms``: numba-free) and the kernel's dispatch to a term by its parameters' type
(``compose``). ``System`` (``parallel_vmc.system``) is the fixed description of a run's
Hamiltonian built from these."""
