"""What a ``pvmc train`` run needs before it starts: the bytes of its training file on
disk and the memory of each rank, for the preflight rule that a VMC run uses too
(``run.preflight.resources_problem``: refuse at once, naming the numbers and, where one
size key alone is the cause, that key with the largest value that fits).

The training file is rewritten whole at each checkpoint through a temporary beside it
(``hdf5io.write_atomically``), so a new file needs twice its size free on its disk
while the old one stands; a resumed one needs its new size beyond what it already
takes. The memory counts every array that grows with a size of the config or of the
data (the data set as loaded, the layers' parameters with the optimizer and the
mini-batch's buffers, the Gibbs chains, the evaluation's blocks, rank 0's file image)
plus the interpreter's fixed allowance; upper bounds within a small factor.
"""

from __future__ import annotations

import math

from ..run.preflight import BASE_BYTES, DISK_MARGIN
from .config import SPEC
from .evaluate import CHUNK
from .gio import HISTORY_FIELDS
from .runner import layer_sizes

FILE_OVERHEAD = 64 * 1024  # HDF5 headers, the config text, the attributes (measured ~10 KB)


def _layers(cfg, n_visible: int) -> list:
    """(n_v, n_h) of every layer, bottom first."""
    dims = [n_visible, *layer_sizes(cfg)]
    return list(zip(dims[:-1], dims[1:]))


def _params(n_v: int, n_h: int) -> int:
    return n_v * n_h + n_v + n_h


class TrainSizes:
    """The sizes a training of ``cfg`` on ``n_ranks`` ranks works with, for data of
    n_rows training and n_held held-out rows of n_visible values; existing: bytes of
    the training file a resume replaces (0 for a new one)."""

    KEYS = {
        "model.hidden": lambda s: f"{s.n_params} parameters",
        "training.chains": lambda s: f"{s.n_streams} chains of {s.widest} units",
        "evaluation.ais_runs": lambda s: f"{s.cfg.evaluation.ais_runs} AIS chains",
        "training.epochs": lambda s: f"{s.history_rows()} history rows",
    }
    FILE = "the training file {path!r}"
    FILE_AND_COPIES = "the training file {path!r} and the copy it is rewritten through"

    def __init__(self, cfg, n_ranks: int, n_rows: int, n_held: int, n_visible: int, existing=0):
        self.cfg, self.n_ranks = cfg, n_ranks
        self.n_rows, self.n_held, self.n_visible = n_rows, n_held, n_visible
        self.existing = existing
        tr = cfg.training
        self.layers = _layers(cfg, n_visible)
        self.n_params = _params(*self.layers[0])
        self.largest = max(_params(v, h) for v, h in self.layers)
        self.widest = max(v + h for v, h in self.layers)
        self.n_streams = tr.batch_size if tr.method == "cd" else tr.chains
        self.local_chains = math.ceil(self.n_streams / n_ranks)
        self.n_opt = 2 if tr.optimizer == "adam" else 1

    def of(self, cfg) -> "TrainSizes":
        """The sizes of cfg (another value of a size key) for the same data and ranks."""
        return TrainSizes(
            cfg, self.n_ranks, self.n_rows, self.n_held, self.n_visible, self.existing
        )

    @staticmethod
    def lowest(key: str) -> int:
        """The smallest allowed value of the size key ``section.name``."""
        section, name = key.split(".")
        return int(SPEC[section][name].minimum)

    def detail(self) -> str:
        """What the file's size is made of, for the messages."""
        shapes = ", ".join(f"{v} x {h}" for v, h in self.layers)
        return (
            f"layers {shapes} with {self.n_opt} optimizer array(s), "
            f"{self.n_streams} chains, {self.history_rows()} history rows"
        )

    def history_rows(self) -> int:
        ev = self.cfg.evaluation
        return len(self.layers) * (self.cfg.training.epochs // ev.every + 1)

    def largest_file_bytes(self) -> int:
        """The training file at its largest: every layer, the checkpoint of the top one
        (parameters, optimizer arrays, streams, persistent chains) and the history."""
        layers = 8 * sum(_params(v, h) for v, h in self.layers)
        chains = 8 * self.n_streams * max(v for v, _ in self.layers)
        checkpoint = 8 * self.largest * (1 + self.n_opt) + 32 * self.n_streams
        if self.cfg.training.method == "pcd":
            checkpoint += chains
        history = 8 * len(HISTORY_FIELDS) * self.history_rows()
        return int(DISK_MARGIN * (layers + checkpoint + history + FILE_OVERHEAD))

    def file_bytes(self) -> int:
        """The free disk it needs: the file and the temporary of its next rewrite, less
        what the file it replaces takes already (freed at the first rewrite, which
        itself needs the whole file beside it)."""
        single = self.largest_file_bytes()
        return max(single, 2 * single - self.existing)

    def memory_per_rank(self) -> tuple[int, int]:
        """(bytes of rank 0, bytes of every other rank)."""
        n_v, widest = self.n_visible, self.widest
        local_rows = math.ceil(self.n_rows / self.n_ranks) + math.ceil(self.n_held / self.n_ranks)
        hidden = max(h for _, h in self.layers)
        # loading: the values read, converted and checked, on every rank
        data = 3 * 8 * (self.n_rows + self.n_held) * n_v + 8 * local_rows * (n_v + 4 * hidden)
        # theta, gradient, optimizer, the mini-batch buffer and its sum, layers done
        params = 8 * (8 + self.n_opt) * self.largest + 8 * sum(_params(*x) for x in self.layers)
        # V, H, V W, H W^T and the negative phase's p(h|v) of the chains; the batch
        chains = 8 * (self.local_chains + self.cfg.training.batch_size) * 3 * widest
        rank = BASE_BYTES + data + params + chains + self.evaluation_bytes()
        return rank + 3 * self.largest_file_bytes(), rank  # rank 0: the file image

    def evaluation_bytes(self) -> int:
        """The largest block of the evaluation: a chunk of the exact enumeration of a
        layer's history rows (the states and the other side's products), or the bottom
        RBM's AIS (a copy of the annealed parameters and its chains' arrays)."""
        ev, out = self.cfg.evaluation, 0
        for layer, (v, h) in enumerate(self.layers):
            gaussian = layer == 0 and self.cfg.model.kind == "gaussian"
            side = h if gaussian else min(v, h)
            if side <= ev.exact_limit:
                out = max(out, 8 * min(CHUNK, 2**side) * (side + 3 * (v + h - side)))
            elif layer == 0:
                out = max(out, 8 * (2 * _params(v, h) + 4 * ev.ais_runs * (v + h)))
        return out

    def node_memory(self, ranks_on_node: int) -> int:
        """Bytes of the ranks_on_node ranks of rank 0's node."""
        rank0, other = self.memory_per_rank()
        return rank0 + (ranks_on_node - 1) * other
