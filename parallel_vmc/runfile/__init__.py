"""The run file (HDF5): its schema, the writer of the run and of the production series,
checkpoints, and the HDF5 helpers they share (atomic writes, locks, one-line errors)."""
