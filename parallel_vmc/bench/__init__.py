"""``pvmc bench``: time per move against a plain-C reference (``kernel``), sampler
efficiency (``efficiency``), and weak/strong scaling measured (``scaling_run``) and
modelled for large rank counts (``scaling_model``)."""
