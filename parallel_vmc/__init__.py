"""parallel_vmc: MPI-parallel variational Monte Carlo with an RBM trial wave function."""
__version__ = "0.1.0"
