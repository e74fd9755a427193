"""`pvmc train` and `pvmc resume` of training files: the HDF5 file, bad input (exit 2
naming the key or file, nothing written or lost), bit-identical resume, and fuzzed
configs that load or name the key."""

import contextlib
import copy
import gzip
import io
import math
import struct

import h5py
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parallel_vmc.cli.main import main
from parallel_vmc.config.fields import ConfigError
from parallel_vmc.generative import config as gconfig

TINY = {
    "data": {"name": "bars_stripes", "size": 2},
    "model": {"hidden": 3},
    "training": {
        "method": "pcd",
        "k": 2,
        "batch_size": 2,
        "epochs": 6,
        "chains": 4,
        "optimizer": "adam",
        "learning_rate": 0.05,
    },
    "output": {"checkpoint_epochs": 2},
    "seed": 3,
}
FUZZ = dict(
    deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def run_cli(argv):
    """pvmc in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def write_config(tmp_path, raw, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return path


def model_arrays(path):
    with h5py.File(path, "r") as h5:
        return {k: h5["model"][k][()] for k in ("a", "b", "W")}, dict(h5.attrs)


def test_train_writes_model_history_and_evaluation(tmp_path):
    out = tmp_path / "t.h5"
    code, stdout, err = run_cli(["train", write_config(tmp_path, TINY), "-o", out])
    assert code == 0, err
    assert "epoch 6/6" in stdout and "KL(data || model)" in stdout
    with h5py.File(out, "r") as h5:
        assert h5.attrs["status"] == "completed" and h5.attrs["run_type"] == "train"
        assert h5["model"]["W"].shape == (4, 3) and h5["model"].attrs["kind"] == "binary"
        assert h5["model"].attrs["sigma"] == 1.0
        assert list(h5["history"]["epoch"][()]) == [1, 2, 3, 4, 5, 6]
        assert np.all(np.isfinite(h5["history"]["log_likelihood"][()]))
        ev = h5["evaluation"].attrs
        assert ev["method"] == "exact" and ev["kl"] > 0
        assert gconfig.from_yaml_text(h5.attrs["config"]).training.k == 2


def test_existing_output_is_never_overwritten(tmp_path):
    out = tmp_path / "t.h5"
    out.write_bytes(b"precious")
    code, _, err = run_cli(["train", write_config(tmp_path, TINY), "-o", out, "--quiet"])
    assert code == 2 and "exists" in err and out.read_bytes() == b"precious"
    code, _, err = run_cli(
        ["train", write_config(tmp_path, TINY), "-o", out, "--quiet", "--overwrite"]
    )
    assert code == 0, err


def write_idx(path, array, magic):
    with open(path, "wb") as fh:
        fh.write(struct.pack(">I", magic))
        fh.write(struct.pack(f">{array.ndim}I", *array.shape))
        fh.write(array.astype(">u1").tobytes())


def test_trains_on_a_small_idx_file(tmp_path):
    images = (np.random.default_rng(0).random((20, 3, 3)) < 0.5) * 255
    write_idx(tmp_path / "img.idx", images, 0x803)
    raw = copy.deepcopy(TINY)
    raw["data"] = {"name": "idx", "path": str(tmp_path / "img.idx"), "limit": 12}
    raw["training"].update(batch_size=4)
    code, _, err = run_cli(
        ["train", write_config(tmp_path, raw), "-o", tmp_path / "o.h5", "--quiet"]
    )
    assert code == 0, err
    assert model_arrays(tmp_path / "o.h5")[0]["W"].shape == (9, 3)


def idx_config(tmp_path, idx_path):
    """TINY on the IDX file idx_path, laid out for any row count >= 1."""
    raw = copy.deepcopy(TINY)
    raw["data"] = {"name": "idx", "path": str(idx_path)}
    raw["training"].update(batch_size=1, chains=1)
    return write_config(tmp_path, raw)


def test_an_idx_file_of_zero_images_exits_2_saying_so(tmp_path):
    (tmp_path / "empty.idx").write_bytes(struct.pack(">4I", 0x803, 0, 28, 28))
    out = tmp_path / "o.h5"
    code, stdout, err = run_cli(["train", idx_config(tmp_path, tmp_path / "empty.idx"), "-o", out])
    assert code == 2 and stdout == "" and not out.exists(), err
    assert err.strip().splitlines() == [
        f"pvmc: error: IDX file {tmp_path / 'empty.idx'}: no images (its header gives 0 "
        "images of 28 x 28 pixels); allowed: a file of at least one image"
    ]


def _idx_well_formed(raw: bytes) -> bool:
    """Is raw (the file's bytes) an IDX file of unsigned-byte images with at least one
    image of at least one pixel? An oracle of its own, from the format: magic 0x803,
    three big-endian sizes, then exactly their product of bytes."""
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except Exception:  # noqa: BLE001 - any damage: not well formed
            return False
    if len(raw) < 16 or struct.unpack(">I", raw[:4])[0] != 0x803:
        return False
    n, rows, cols = struct.unpack(">3I", raw[4:16])
    return n >= 1 and rows * cols >= 1 and len(raw) == 16 + n * rows * cols


SIZES = st.one_of(st.integers(0, 4), st.sampled_from([2**31, 2**32 - 1]))
DEFECTS = ("none", "magic", "sizes", "cut", "extra", "damaged gzip")


@st.composite
def idx_files(draw) -> bytes:
    """The bytes of IDX-like files: an images file of n x rows x cols sizes (0-4, or at
    the uint32 limit) with one defect or none: another magic number, 0-5 other sizes,
    cut anywhere, trailing bytes, a damaged gzip stream; plain or gzipped."""
    sizes, magic = draw(st.lists(SIZES, min_size=3, max_size=3)), 0x803
    defect = draw(st.sampled_from(DEFECTS))
    if defect == "magic":
        magic = draw(
            st.one_of(
                st.sampled_from([0x801, 0x802, 0x804, 0xC03, 0xD03, 0x10803, 0x800, 0]),
                st.integers(0, 2**32 - 1),
            )
        )
    if defect == "sizes":
        sizes = draw(st.lists(SIZES, min_size=0, max_size=5))
    need = math.prod(sizes[:3])
    raw = struct.pack(f">I{len(sizes)}I", magic, *sizes) + bytes(range(256)) * 16
    raw = raw[: 4 + 4 * len(sizes) + min(need, 4096)]
    if defect == "cut":
        raw = raw[: draw(st.integers(0, len(raw) - 1))]
    if defect == "extra":
        raw += bytes(draw(st.integers(1, 8)))
    if defect == "damaged gzip" or draw(st.booleans()):
        raw = bytearray(gzip.compress(raw, mtime=0))
        if defect == "damaged gzip":
            at = draw(st.integers(10, len(raw) - 1))  # past the gzip header
            raw[at] ^= draw(st.integers(1, 255))
        raw = bytes(raw)
    return raw


@settings(
    max_examples=300,
    **{
        **FUZZ,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    },
)
@given(raw=idx_files())
def test_malformed_idx_files_exit_2_with_one_line(tmp_path, raw):
    """Every IDX file the oracle calls malformed gets exit 2 and one line naming the
    file (never a traceback); a well-formed one validates."""
    idx = tmp_path / "x.idx"
    idx.write_bytes(raw)
    code, _, err = run_cli(["validate", idx_config(tmp_path, idx), "-o", tmp_path / "o.h5"])
    if _idx_well_formed(raw):
        assert code == 0, err
        return
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith(f"pvmc: error: IDX file {idx}: "), err


@pytest.mark.parametrize(
    "change,named",
    [
        ({"training": {"k": 0}}, "training.k: 0 is out of range"),
        ({"data": {"name": "idx", "path": "/nonexistent/x.idx"}}, "/nonexistent/x.idx"),
        ({"data": {"name": "mixture2d"}}, "binary model needs 0/1 data"),
        ({"data": {"name": "idx", "path": "LABELS"}}, "magic number"),
        ({"training": {"batch_size": 100}}, "training.batch_size: 100 is larger"),
        ({"model": {"kind": "gaussian"}, "dbn": {"layers": [2]}}, "dbn.layers"),
        ({"dbn": {"layers": [0]}}, "dbn.layers[0]: 0 is out of range"),
        (
            {"data": {"name": "digits", "threshold": 1.0}},
            "data.threshold: 1.0 is out of range; allowed: number >= 0, < 1",
        ),
        ({"model": {"hiden": 3}}, "model.hiden: unknown key"),
        ({"data": {"path": "x"}}, "data.path: used only with data.name idx"),
    ],
)
def test_bad_input_exits_2_naming_what_is_wrong(tmp_path, change, named):
    write_idx(tmp_path / "labels.idx", np.arange(5), 0x801)  # 1D: not images
    raw = copy.deepcopy(TINY)
    for section, keys in change.items():
        keys = {k: (str(tmp_path / "labels.idx") if v == "LABELS" else v) for k, v in keys.items()}
        raw[section] = {**raw.get(section, {}), **keys}
    out = tmp_path / "o.h5"
    code, stdout, err = run_cli(["train", write_config(tmp_path, raw), "-o", out])
    assert code == 2 and named in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and stdout == ""


def test_resume_continues_bit_identically(tmp_path):
    cfg = write_config(tmp_path, TINY)
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    assert run_cli(["train", cfg, "-o", whole, "--quiet"])[0] == 0
    code, _, err = run_cli(["train", cfg, "-o", parts, "--quiet", "--stop-after", "3"])
    assert code == 75 and f"pvmc resume {parts}" in err
    assert model_arrays(parts)[1]["status"] == "interrupted"
    assert run_cli(["info", "--status", parts])[1] == "interrupted\n"
    assert run_cli(["info", "--progress", parts])[1] == "layer 0 epoch 3 mini-batch 0\n"
    assert f"continue with: pvmc resume {parts}" in run_cli(["info", parts])[1]
    assert run_cli(["resume", parts, "--quiet", "--stop-after", "1"])[0] == 75
    assert run_cli(["resume", parts, "--quiet"])[0] == 0
    (a, _), (b, attrs_b) = model_arrays(whole), model_arrays(parts)
    assert attrs_b["status"] == "completed"
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    with h5py.File(whole, "r") as h1, h5py.File(parts, "r") as h2:
        for name in ("epoch", "log_likelihood", "pseudo_likelihood"):
            assert np.array_equal(h1["history"][name][()], h2["history"][name][()])
    code, out, _ = run_cli(["resume", parts])  # as pvmc run --resume: nothing to do
    assert code == 0 and out == f"pvmc: {parts} is already completed; nothing to do\n"


def test_train_resume_starts_continues_and_leaves_other_files_alone(tmp_path):
    """`pvmc train CONFIG -o OUT --resume` (what the job templates run): starts OUT when
    it does not exist, continues it when it does (to the bits of one uninterrupted
    run; an output setting may change), exits 0 when it is completed, and refuses
    (exit 2, one line, the file untouched) one started with another config or not a
    training file at all."""
    cfg = write_config(tmp_path, TINY)
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    assert run_cli(["train", cfg, "-o", whole, "--quiet"])[0] == 0
    resume = ["train", cfg, "-o", parts, "--quiet", "--resume"]
    assert run_cli([*resume, "--stop-after", "2"])[0] == 75
    kept = parts.read_bytes()
    code, _, err = run_cli([*resume, "--set", "model.hidden=4", "--set", "seed=4"])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "started with a different config (model.hidden, seed)" in err
    assert parts.read_bytes() == kept
    assert run_cli([*resume, "--stop-after", "2", "--set", "output.checkpoint_epochs=1"])[0] == 75
    assert run_cli(resume)[0] == 0
    (a, _), (b, attrs) = model_arrays(whole), model_arrays(parts)
    assert attrs["status"] == "completed" and all(np.array_equal(a[k], b[k]) for k in a)
    kept = parts.read_bytes()
    code, out, _ = run_cli(resume)
    assert code == 0 and "already completed; nothing to do" in out
    assert parts.read_bytes() == kept
    other = tmp_path / "other.h5"
    other.write_bytes(b"precious")
    code, _, err = run_cli(["train", cfg, "-o", other, "--resume"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "another output path" in err
    assert other.read_bytes() == b"precious"


def test_signals_are_taken_from_the_ready_file_to_the_end_of_the_evaluation(tmp_path, monkeypatch):
    """PVMC_READY_FILE (the job templates hold a stop signal until it exists) is
    created once the training catches stop signals, and the final evaluation still
    catches them (a signal there sets a flag; with the default action it killed the
    process, leaving the file 'running'). Afterwards, in-process, the caller's
    handlers are back."""
    import signal

    from parallel_vmc.control import Control
    from parallel_vmc.generative import runner

    ready, seen = tmp_path / "ready", {}
    monkeypatch.setenv("PVMC_READY_FILE", str(ready))
    evaluate = runner.final_evaluation

    def watched(*args, **kwargs):
        seen.update(ready=ready.exists(), handler=signal.getsignal(signal.SIGUSR1))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(runner, "final_evaluation", watched)
    before = signal.getsignal(signal.SIGUSR1)
    code, _, err = run_cli(["train", write_config(tmp_path, TINY), "-o", tmp_path / "t.h5"])
    assert code == 0, err
    assert seen["ready"]
    assert isinstance(getattr(seen["handler"], "__self__", None), Control), seen["handler"]
    assert signal.getsignal(signal.SIGUSR1) == before


def test_resume_of_a_deep_belief_net_between_layers(tmp_path):
    raw = copy.deepcopy(TINY)
    raw["dbn"] = {"layers": [2]}
    cfg = write_config(tmp_path, raw)
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    assert run_cli(["train", cfg, "-o", whole, "--quiet"])[0] == 0
    assert run_cli(["train", cfg, "-o", parts, "--quiet", "--stop-after", "8"])[0] == 75
    assert run_cli(["resume", parts, "--quiet"])[0] == 0
    with h5py.File(whole, "r") as h1, h5py.File(parts, "r") as h2:
        for group in ("model", "dbn/layer_1"):
            assert np.array_equal(h1[group]["W"][()], h2[group]["W"][()])


# --------------------------------------------------------------------------- fuzzing
KEYS = [(s, k) for s in gconfig.SPEC for k in gconfig.SPEC[s]] + [("dbn", "layers"), ("seed", None)]
NAMES = {f"{s}.{k}" for s, k in KEYS if k} | set(gconfig.SECTIONS)
ODD = [
    0,
    -1,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    10**30,
    True,
    None,
    "",
    "x",
    "yes",
    [],
    [1, 0],
    [1, -2],
    {},
    {"a": 1},
    "1e-3",
    2**63,
]


@st.composite
def mutated(draw):
    raw = copy.deepcopy(TINY)
    for _ in range(draw(st.integers(1, 3))):
        section, key = draw(st.sampled_from(KEYS))
        value = draw(st.one_of(st.sampled_from(ODD), st.integers(), st.text(max_size=6)))
        if section == "seed":
            raw["seed"] = value
        elif draw(st.booleans()) and draw(st.booleans()):
            raw[section] = value  # a section that is not a map
        else:
            target = raw.setdefault(section, {})
            if isinstance(target, dict):
                target[draw(st.sampled_from([key, key, "zz"]))] = value
    return raw


def names_something(message):
    subject = message.partition(": ")[0]
    return (
        subject in NAMES
        or subject.split(".")[0] in NAMES
        or subject.split("[")[0] in NAMES
        or subject.startswith(("config", "data "))
    )


@settings(max_examples=150, **FUZZ)
@given(raw=mutated())
def test_fuzzed_configs_load_or_name_the_key(raw):
    try:
        cfg = gconfig.from_dict(raw)
    except ConfigError as exc:
        assert len(str(exc).splitlines()) == 1 and names_something(str(exc)), str(exc)
        return
    assert gconfig.from_yaml_text(cfg.to_yaml()) == cfg


@settings(max_examples=12, **FUZZ)
@given(raw=mutated())
def test_fuzzed_cli_runs_complete_or_exit_2(raw, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    if isinstance(raw.get("training"), dict):  # keep the runs that do start short
        raw["training"]["epochs"] = 1
        raw["training"].pop("k", None)
    code, _, err = run_cli(["train", write_config(tmp, raw), "-o", tmp / "o.h5", "--quiet"])
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and not (tmp / "o.h5").exists()


def test_sigterm_stops_after_a_mini_batch_and_resume_matches(tmp_path):
    """A stop signal mid-run: exit 75, checkpoint at a mini-batch (maybe mid-epoch);
    resumed, the result equals the uninterrupted run's bit for bit."""
    import signal
    import subprocess
    import time

    from conftest import pvmc_argv, subprocess_env

    raw = copy.deepcopy(TINY)
    raw["data"]["size"] = 3
    raw["model"]["hidden"] = 8
    raw["training"].update(epochs=600, batch_size=7, chains=50, k=5)
    raw["output"] = {"checkpoint_epochs": 50}
    cfg = write_config(tmp_path, raw)
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    assert run_cli(["train", cfg, "-o", whole, "--quiet"])[0] == 0
    proc = subprocess.Popen(
        pvmc_argv(1, "train", cfg, "-o", parts, "--quiet"),
        env=subprocess_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not parts.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err
    assert "stopped by SIGTERM" in err
    assert model_arrays(parts)[1]["status"] == "interrupted"
    assert run_cli(["resume", parts, "--quiet"])[0] == 0
    a, b = model_arrays(whole)[0], model_arrays(parts)[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_final_evaluation_uses_ais_beyond_the_exact_limit(tmp_path):
    """With evaluation.exact_limit below the model's size the file gets AIS's log Z and
    error bar, which must agree with the exact log Z of the stored model."""
    from parallel_vmc.generative import evaluate, gio

    out = tmp_path / "ais.h5"
    code, _, err = run_cli(
        [
            "train",
            write_config(tmp_path, TINY),
            "-o",
            out,
            "--quiet",
            "--set",
            "evaluation.exact_limit=1",
            "--set",
            "evaluation.ais_runs=200",
            "--set",
            "evaluation.ais_steps=300",
        ]
    )
    assert code == 0, err
    with h5py.File(out, "r") as h5:
        ev = dict(h5["evaluation"].attrs)
        exact = evaluate.log_z_exact(gio.read_rbm(h5["model"]))
        assert np.all(np.isnan(h5["history"]["log_likelihood"][()]))
    assert ev["method"] == "ais" and 0 < ev["log_z_error"] < 0.1
    assert abs(ev["log_z"] - exact) < 4 * ev["log_z_error"] + 1e-3


def test_validate_checks_train_configs_and_their_data(tmp_path):
    code, out, err = run_cli(["validate", write_config(tmp_path, TINY)])
    assert code == 0 and "valid train config for 1 rank(s); 6 training rows" in err
    assert gconfig.from_yaml_text(out).model.hidden == 3
    code, _, err = run_cli(
        ["validate", write_config(tmp_path, TINY), "--set", "training.batch_size=7"]
    )
    assert code == 2 and "training.batch_size: 7 is larger than the 6" in err


def test_divergence_fails_cleanly_and_is_recorded(tmp_path):
    """Weights that blow up: exit 1 with one line and no traceback; a file written
    before says why in its status."""
    raw = copy.deepcopy(TINY)
    raw["training"].update(
        optimizer="sgd", learning_rate=1e10, weight_decay=1e300, momentum=0.0, epochs=4
    )
    raw["output"] = {"checkpoint_epochs": 1}
    out = tmp_path / "d.h5"
    code, _, err = run_cli(["train", write_config(tmp_path, raw), "-o", out, "--quiet"])
    assert code == 1 and "non-finite" in err and "Traceback" not in err
    if out.exists():  # diverged after a checkpoint
        assert model_arrays(out)[1]["status"].startswith("failed: non-finite")


@pytest.mark.parametrize(
    "output,named",
    [("", "output.path: empty"), (".", "is a directory"), ("FILE/sub/o.h5", "is not a directory")],
)
def test_unusable_output_paths_exit_2(tmp_path, output, named):
    (tmp_path / "FILE").write_text("x")
    output = str(tmp_path / output) if output.startswith("FILE") else output
    code, _, err = run_cli(["train", write_config(tmp_path, TINY), "-o", output])
    assert code == 2 and named in err and "Traceback" not in err


# ------------------------------------------------------------------ checkpoint_every
@pytest.mark.parametrize("how", ["file", "set"])
def test_an_epoch_count_in_checkpoint_every_exits_2_naming_both_meanings(tmp_path, how):
    """An integer checkpoint_every is the epoch count of train configs before it
    counted seconds: refused, never read as seconds."""
    raw = copy.deepcopy(TINY)
    extra = []
    if how == "file":
        raw["output"] = {"checkpoint_every": 10}
    else:
        extra = ["--set", "output.checkpoint_every=10"]
    out = tmp_path / "o.h5"
    for command in (["train", "-o", out], ["validate"]):
        code, _, err = run_cli(command[:1] + [write_config(tmp_path, raw)] + command[1:] + extra)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("pvmc: error: output.checkpoint_every: 10 is an integer"), err
        assert "seconds" in err and "output.checkpoint_epochs" in err
    assert not out.exists()
    assert (
        gconfig.from_dict({**TINY, "output": {"checkpoint_every": 10.0}}).output.checkpoint_every
        == 10.0
    )


def count_writes(monkeypatch) -> list:
    """The statuses of every training-file write from now on."""
    from parallel_vmc.generative import gio

    real, statuses = gio.write, []

    def write(path, attrs, *args):
        statuses.append(attrs["status"])
        return real(path, attrs, *args)

    monkeypatch.setattr(gio, "write", write)
    return statuses


def test_checkpoints_by_the_clock_come_after_mini_batches_and_change_nothing(tmp_path, monkeypatch):
    """checkpoint_every 0.0: one after every mini-batch (6 patterns / batch 2 = 3 per
    epoch, 6 epochs), the one of the last epoch and the completed file; null: those
    two only. The models are the same bits."""
    models = {}
    for every, expected in ((0.0, 18 + 2), (None, 2)):
        raw = copy.deepcopy(TINY)
        raw["output"] = {"checkpoint_every": every, "checkpoint_epochs": 0}
        statuses = count_writes(monkeypatch)
        out = tmp_path / f"{every}.h5"
        assert run_cli(["train", write_config(tmp_path, raw), "-o", out, "--quiet"])[0] == 0
        assert len(statuses) == expected and statuses[-1] == "completed", statuses
        monkeypatch.undo()
        models[every] = model_arrays(out)[0]
    for k in models[None]:
        assert np.array_equal(models[0.0][k], models[None][k]), k


def test_a_training_file_from_before_resumes_with_its_epoch_count(tmp_path):
    """A stored config from before checkpoint_every counted seconds (an integer count
    of epochs, no checkpoint_epochs) reads as that count of epochs, no checkpoints by
    time: info shows it and resume continues to the same bits."""
    cfg = write_config(tmp_path, TINY)
    whole, parts = tmp_path / "whole.h5", tmp_path / "parts.h5"
    assert run_cli(["train", cfg, "-o", whole, "--quiet"])[0] == 0
    assert run_cli(["train", cfg, "-o", parts, "--quiet", "--stop-after", "3"])[0] == 75
    with h5py.File(parts, "r+") as h5:
        stored = yaml.safe_load(h5.attrs["config"])
        stored["output"] = {"path": str(parts), "checkpoint_every": 2}
        h5.attrs["config"] = yaml.safe_dump(stored, sort_keys=False)
    old = gconfig.from_yaml_text(yaml.safe_dump(stored))
    assert (old.output.checkpoint_every, old.output.checkpoint_epochs) == (None, 2)
    assert run_cli(["info", parts])[0] == 0
    assert run_cli(["resume", parts, "--quiet"])[0] == 0
    a, b = model_arrays(whole)[0], model_arrays(parts)[0]
    assert all(np.array_equal(a[k], b[k]) for k in a)
