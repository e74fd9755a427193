"""Fixed-node diffusion Monte Carlo on the optimised trial function.

The walkers move as in importance-sampled VMC (``sampling/kernels.py``, mode
``DIFFUSE``: a move across a node of psi is rejected), carry weights that grow or shrink
with their local energy (:mod:`.weights`), and are combed into a new population of equal
weights over the whole population (:mod:`.weights`), whose copies get fresh random
streams (:mod:`.streams`). :mod:`.estimate` turns the per-step series into the energy
with the population-control bias removed, and extrapolates over the time steps;
:mod:`.walk` runs the steps.
"""
