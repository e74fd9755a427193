"""``python -m analysis`` on training files of ``pvmc train`` (written here through
gio.write): the report, the exact log Z recheck, JSON, the plots, bad input."""

import json
import os

import h5py
import numpy as np
import pytest

from analysis.cli import main
from analysis.generative import is_training_file, read_training
from parallel_vmc.generative import config as gconfig
from parallel_vmc.generative import evaluate, gio
from parallel_vmc.generative.model import RBM


def _write(path, data: dict, model: dict, rbm: RBM, epochs: int = 4, upper=()) -> str:
    """A completed training file of rbm (and the DBN layers `upper` above it)."""
    cfg = gconfig.from_dict(
        {
            "data": data,
            "model": model,
            "training": {"epochs": epochs},
            "dbn": {"layers": [r.n_hidden for r in upper]},
        }
    )
    history = {
        "layer": [0] * epochs,
        "epoch": list(range(1, epochs + 1)),
        "reconstruction_error": list(np.linspace(2.0, 1.0, epochs)),
        "pseudo_likelihood": list(np.linspace(-6.0, -4.0, epochs)),
        "log_likelihood": list(np.linspace(-5.0, -3.0, epochs)),
        "learning_rate": [0.05] * epochs,
        "wall_time": list(range(epochs)),
    }
    log_z = evaluate.log_z_exact(rbm)
    evaluation = {
        "method": "exact",
        "log_z": log_z,
        "log_z_error": 0.0,
        "log_likelihood": -3.0,
        "held_out_log_likelihood": float("nan"),
        "kl": 0.5,
        "train_seconds": 1.0,
    }
    attrs = gio.root_attrs(cfg, 1)
    attrs["status"] = gio.COMPLETED
    gio.write(str(path), attrs, [rbm, *upper], history, evaluation, None)
    return str(path)


@pytest.fixture
def bas_file(tmp_path):
    rbm = RBM.init("binary", 9, 6, np.random.default_rng(0), scale=1.0)
    return _write(tmp_path / "bas.h5", {"name": "bars_stripes", "size": 3}, {"hidden": 6}, rbm)


def test_report_of_a_training_file(bas_file, capsys):
    assert is_training_file(bas_file)
    assert main([bas_file]) == 0
    out = capsys.readouterr().out
    assert "binary RBM, 9 visible x 6 hidden" in out
    assert "log_z recomputed (exact)" in out and "MISMATCH" not in out
    assert f"optimum (-ln patterns)     {-np.log(14):.6g}" in out
    assert read_training(bas_file).image_shape == (3, 3)


def test_json_and_log_z_recheck(bas_file, capsys):
    assert main([bas_file, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["evaluation"]["log_z"] == pytest.approx(report["log_z_recomputed"])
    with h5py.File(bas_file, "r+") as h5:  # an edited file is flagged
        h5["evaluation"].attrs["log_z"] += 0.01
    assert main([bas_file]) == 0
    assert "LOG Z MISMATCH" in capsys.readouterr().out


def test_plots_of_an_image_model(bas_file, tmp_path, capsys):
    out_dir = tmp_path / "plots"
    assert main([bas_file, "--plots", str(out_dir)]) == 0
    out = capsys.readouterr().out
    for name in ("learning", "filters", "samples", "reconstructions"):
        path = out_dir / f"bas_{name}.png"
        assert path.stat().st_size > 1000, name
        assert f"wrote {path}" in out


def test_deep_belief_net_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    bottom, top = RBM.init("binary", 9, 6, rng, 1.0), RBM.init("binary", 6, 4, rng, 1.0)
    path = _write(
        tmp_path / "dbn.h5", {"name": "bars_stripes", "size": 3}, {"hidden": 6}, bottom, upper=[top]
    )
    run = read_training(path)
    assert [r.n_hidden for r in run.layers] == [6, 4]
    np.testing.assert_array_equal(run.layers[1].W, top.W)
    assert main([path, "--plots", str(tmp_path)]) == 0
    assert "deep belief net, hidden sizes bottom up: 9 -> 6 -> 4" in capsys.readouterr().out
    assert os.path.getsize(tmp_path / "dbn_samples.png") > 1000


def test_density_plot_of_a_2d_gaussian_model(tmp_path):
    rbm = RBM(
        "gaussian", np.zeros(2), np.array([-1.0, -0.3]), np.array([[1.5, -1.5], [0.6, 0.6]]), 0.8
    )
    path = _write(
        tmp_path / "mix.h5",
        {"name": "mixture2d", "samples": 50},
        {"kind": "gaussian", "hidden": 2, "sigma": 0.8},
        rbm,
    )
    assert main([path, "--plots", str(tmp_path)]) == 0
    assert os.path.getsize(tmp_path / "mix_density.png") > 1000
    assert os.path.getsize(tmp_path / "mix_filters.png") > 1000  # W as a heat map
    assert not (tmp_path / "mix_samples.png").exists()  # no image shape


def test_bad_input(bas_file, tmp_path, capsys):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as h5:
        h5.attrs["format_version"] = 5
    assert main([bas_file, str(other)]) == 2
    assert "not a training file" in capsys.readouterr().err
    broken = tmp_path / "broken.h5"
    with h5py.File(broken, "w") as h5:  # /model without W: no training file
        h5.create_group("model").create_dataset("a", data=np.zeros(2))
    assert not is_training_file(str(broken))
    assert main([str(broken)]) == 2
    fifo = tmp_path / "fifo"  # must not block on opening it
    os.mkfifo(fifo)
    assert not is_training_file(str(fifo))
    assert main([str(fifo)]) == 2


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions would save, by file name."""
    from analysis import plots

    saved = {}

    def keep(fig, path):
        saved[os.path.basename(path)] = fig
        return path

    monkeypatch.setattr(plots, "save", keep)
    return saved


def _texts(fig) -> list:
    """Every text of a figure and its subfigures (titles included)."""
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


def test_filters_share_one_colour_scale_with_its_bar(bas_file, tmp_path, capsys, figures):
    assert main([bas_file, "--plots", str(tmp_path)]) == 0
    fig = figures["bas_filters.png"]
    images = [
        im for ax in fig.findobj(lambda a: hasattr(a, "get_images")) for im in ax.get_images()
    ]
    assert len(images) == 6  # the 6 hidden units' columns of W
    W = read_training(bas_file).rbm.W
    top = float(np.abs(W).max())
    assert {im.get_clim() for im in images} == {(-top, top)}  # one scale for all
    bars = [a for a in fig.findobj(lambda a: hasattr(a, "get_ylabel")) if a.get_ylabel() == "W_ij"]
    assert len(bars) == 1  # the colour bar, labelled


def test_the_sample_plot_counts_the_valid_patterns(bas_file, tmp_path, capsys, figures):
    from analysis.generative import N_JUDGED, valid_patterns
    from parallel_vmc.generative import sampling
    from parallel_vmc.generative.datasets import bars_and_stripes

    assert main([bas_file, "--plots", str(tmp_path)]) == 0
    title = next(t for t in _texts(figures["bas_samples.png"]) if t.startswith("Gibbs samples"))
    rbm = read_training(bas_file).rbm
    drawn = sampling.gibbs_chains(rbm, N_JUDGED, 1, thin=1, burn_in=1000, seed=0)[:, 0]
    valid = valid_patterns(drawn, 3)
    assert f": {valid} of {N_JUDGED} samples" in title and "3x3 bars-and-stripes" in title
    patterns = bars_and_stripes(3)[0]
    assert valid_patterns(patterns, 3) == 14
    assert valid_patterns(np.eye(9)[:3], 3) == 0  # single pixels are no pattern
