"""Deep belief nets (dbn.py, runner.Session): greedy training of a 2-layer stack on
bars-and-stripes, and top-down samples that are mostly valid patterns."""

import numpy as np

from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import datasets, dbn
from parallel_vmc.generative.model import RBM, p_hidden
from parallel_vmc.generative.runner import Session, preflight
from parallel_vmc.parallel import SerialComm
from parallel_vmc.rng import chain_states


def valid_fraction(samples, patterns):
    known = {tuple(p) for p in patterns.astype(int)}
    return np.mean([tuple(s) in known for s in samples.astype(int)])


def test_propagate_up_feeds_each_layer_the_probabilities_below():
    rng = np.random.default_rng(0)
    layers = [RBM.init("binary", 4, 3, rng, 1.0), RBM.init("binary", 3, 2, rng, 1.0)]
    V = (rng.random((5, 4)) < 0.5).astype(float)
    assert np.array_equal(dbn.propagate_up(layers, V, 0), V)
    assert np.allclose(dbn.propagate_up(layers, V, 2), p_hidden(layers[1], p_hidden(layers[0], V)))


def test_two_layer_dbn_on_bars_and_stripes_samples_valid_patterns(tmp_path):
    cfg = gconfig.from_dict(
        {
            "data": {"name": "bars_stripes", "size": 3},
            "model": {"hidden": 16},
            "dbn": {"layers": [16]},
            "training": {
                "method": "pcd",
                "k": 5,
                "batch_size": 14,
                "epochs": 2000,
                "chains": 200,
                "optimizer": "adam",
                "learning_rate": 0.01,
                "schedule": "cosine",
            },
            "evaluation": {"every": 500},
            "output": {"path": str(tmp_path / "dbn.h5"), "checkpoint_every": None},
        }
    )
    data, held = preflight(cfg, 1)
    layers = Session(cfg, SerialComm(), data, held, progress=False).run()
    assert [(r.n_visible, r.n_hidden) for r in layers] == [(9, 16), (16, 16)]
    samples, mean = dbn.sample(layers, chain_states(3, 0, 2000), top_sweeps=200)
    patterns = datasets.bars_and_stripes(3)[0]
    fraction = valid_fraction(samples, patterns)
    chance = len(patterns) / 2**9  # 14 / 512 at random
    print(f"valid DBN samples: {fraction:.3f} (chance {chance:.3f})")
    assert fraction > 0.6
    assert mean.shape == (2000, 9) and np.all((mean >= 0) & (mean <= 1))
