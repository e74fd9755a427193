"""RBMs as generative models trained on data (``pvmc train``): the model's math
(``model``), block Gibbs chains (``gibbs``), CD-k / PCD training under MPI (``train``),
deep belief nets (``dbn``), the train config (``gconfig``) and its HDF5 file (``gio``)."""
