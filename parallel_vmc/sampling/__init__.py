"""Markov chains of one rank: the jitted hot loop (``kernels``), the sampler around it
(``samplers``: walkers, step tuning, thermalisation), the packed iteration sums
(``estimators``) and the production observables (``observables``)."""
