"""How many times a fresh walker's particle is drawn before its start is given up
(``kernels.init_positions``). Numba-free and on its own, so that the config's packing
check (``packing``) reads the number without numba, and editing that check does not
change the sources the compiled kernels are cached under (``jit/cache.py``)."""

MAX_PLACEMENTS = 1000  # draws of one particle's start before the density is refused
