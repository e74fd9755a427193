"""What the numba kernels are built with, and nothing of the physics: the on-disk cache
keyed by the jitted sources (``cache``), the inlined exponential (``fastexp``), borrowed
array views (``borrow``), the vector width (``vector_width``) and unsigned indices
(``unsigned``). Importing this package compiles nothing."""
