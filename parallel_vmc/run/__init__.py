"""The life of a VMC run across ranks: the driver (optimize, then produce), the state a
checkpoint holds, recovery from a bad step, the collective calls, the production
segments, the checks before any work (``preflight``), the progress report and the
production summary."""
