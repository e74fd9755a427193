"""What the numba kernels are built with, and nothing of the physics: the on-disk cache
keyed by the jitted sources (``cache``, with ``locator``: one directory per module
closure, and ``cache_file``: safe when processes compile at once), how the kernel's
parts are compiled and inlined (``inline``, ``literal``), the inlined exponential
(``fastexp``), borrowed array views (``borrow``), the vector width (``vector_width``)
and unsigned indices (``unsigned``). Importing this package compiles nothing."""
