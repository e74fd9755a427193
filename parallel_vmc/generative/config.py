"""The config of ``pvmc train``: one table of keys, checked like the VMC config.

The same rules as ``config.py`` (whose YAML loader, ``Field`` and value checks are used
here): unknown keys, wrong types and out-of-range values raise :class:`ConfigError`
naming ``section.key`` and what is allowed, before any work; ``--set section.key=value``
overrides. ``dbn.layers`` (a list of hidden sizes) is the one list-valued key.

``output.checkpoint_every`` counts seconds of wall time, as in the VMC config; train
configs before counted epochs with it (an integer). An integer there is refused with a
ConfigError that names both meanings, so an old config never silently changes meaning;
``output.checkpoint_epochs`` is the epoch count. A config stored in an older training
file is read in its own meaning (:func:`upgrade_stored`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import yaml

from ..config.fields import (
    REQUIRED,
    ConfigDumper,
    ConfigError,
    Field,
    check_value,
    got,
    parse_override,
    parse_yaml,
    read_config_file,
    refuse_unknown,
    show,
)

DATA_NAMES = ("bars_stripes", "digits", "mixture2d", "idx")
MAX_LAYERS = 8

SPEC: dict[str, dict[str, Field]] = {
    "model": {
        "kind": Field(
            "str",
            "binary",
            "binary-binary RBM, or gaussian-binary (real visibles of fixed width sigma)",
            choices=("binary", "gaussian"),
        ),
        "hidden": Field("int", 16, "hidden units", minimum=1, maximum=100000),
        "sigma": Field(
            "float",
            1.0,
            "gaussian: the visibles' fixed (untrained) width",
            minimum=0.0,
            min_exclusive=True,
        ),
        "init_scale": Field("float", 0.01, "std of the random initial weights", minimum=0.0),
        "visible_bias": Field(
            "str",
            "zero",
            "initial visible biases: zero, or data (the "
            "training rows' log-odds, binary; their mean, gaussian); "
            "hidden biases start at 0",
            choices=("zero", "data"),
        ),
    },
    "data": {
        "name": Field("str", REQUIRED, "data set", choices=DATA_NAMES),
        "size": Field("int", 3, "bars_stripes: side n of the n x n images", minimum=1, maximum=8),
        "samples": Field(
            "int",
            None,
            "bars_stripes: rows drawn from the exact "
            "distribution (null: each distinct pattern once); mixture2d: "
            "points (null: 2000)",
            minimum=1,
            nullable=True,
        ),
        "path": Field(
            "str", None, "idx: the images file (MNIST IDX, plain or gzipped)", nullable=True
        ),
        "limit": Field(
            "int", None, "idx: use only the first this many images", minimum=1, nullable=True
        ),
        "threshold": Field(
            "float",
            0.5,
            "digits, idx: a pixel is 1 above this fraction of full intensity",
            minimum=0.0,
            maximum=1.0,
            max_exclusive=True,
        ),
        "held_out": Field(
            "float",
            0.0,
            "fraction of the rows held out for evaluation (0: evaluate on the training data)",
            minimum=0.0,
            maximum=0.9,
        ),
    },
    "training": {
        "method": Field(
            "str",
            "pcd",
            "negative phase: cd (chains restart at the mini-batch) or pcd (persistent chains)",
            choices=("cd", "pcd"),
        ),
        "k": Field(
            "int", 1, "Gibbs sweeps per mini-batch (CD-k / PCD-k)", minimum=1, maximum=100000
        ),
        "batch_size": Field(
            "int",
            10,
            "rows per mini-batch, total over all ranks (a multiple of the rank count)",
            minimum=1,
        ),
        "epochs": Field("int", 100, "passes over the training data", minimum=1),
        "chains": Field(
            "int",
            100,
            "pcd: persistent chains, total over all ranks (a multiple of the rank count)",
            minimum=1,
            maximum=10**7,
        ),
        "optimizer": Field(
            "str", "sgd", "update rule (sgd with momentum, or adam)", choices=("sgd", "adam")
        ),
        "learning_rate": Field("float", 0.05, "step size", minimum=0.0, min_exclusive=True),
        "momentum": Field("float", 0.5, "sgd momentum", minimum=0.0, maximum=0.999),
        "weight_decay": Field(
            "float", 0.0, "L2 penalty on W added to the loss gradient (lambda W)", minimum=0.0
        ),
        "schedule": Field(
            "str",
            "constant",
            "learning rate over the mini-batches: "
            "constant, or exponential / cosine decay to lr_final_fraction",
            choices=("constant", "exponential", "cosine"),
        ),
        "lr_final_fraction": Field(
            "float", 0.1, "last learning rate / first", minimum=0.0, maximum=1.0, min_exclusive=True
        ),
    },
    "evaluation": {
        "every": Field("int", 1, "epochs between history rows", minimum=1),
        "exact_limit": Field(
            "int",
            20,
            "exact log Z by enumeration when min(visible, hidden) units <= this (2^limit terms)",
            minimum=1,
            maximum=26,
        ),
        "ais_runs": Field(
            "int", 100, "AIS runs of the final evaluation (larger models)", minimum=2
        ),
        "ais_steps": Field("int", 1000, "AIS intermediate distributions", minimum=1),
    },
    "output": {
        "path": Field(
            "str", "runs/train.h5", "HDF5 result file (never overwritten without --overwrite)"
        ),
        "checkpoint_every": Field(
            "float",
            300.0,
            "seconds of wall time between checkpoints, checked after every "
            "mini-batch (also at the end and on a stop; 0: after every mini-batch; "
            "null: none by time); written with a decimal point (an integer is the old "
            "epoch count, refused)",
            minimum=0.0,
            nullable=True,
        ),
        "checkpoint_epochs": Field(
            "int", 0, "epochs between checkpoints, at an epoch's end (0: none by count)", minimum=0
        ),
    },
}
SEED = Field("int", 2026, "root seed of every random stream", minimum=0, maximum=2**63 - 1)
LAYERS_DOC = (
    "hidden sizes of further binary RBMs stacked on model.hidden (a deep "
    "belief net trained greedily); [] or null: one RBM"
)
SECTIONS = list(SPEC) + ["dbn", "seed"]


@dataclass(frozen=True)
class TrainConfig:
    """A validated train config: sections as frozen namespaces, dbn_layers a tuple."""

    model: Any
    data: Any
    training: Any
    evaluation: Any
    output: Any
    dbn_layers: tuple
    seed: int

    def to_dict(self) -> dict:
        out = {name: dataclasses.asdict(getattr(self, name)) for name in SPEC}
        out["dbn"] = {"layers": list(self.dbn_layers)}
        out["seed"] = self.seed
        return out

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=ConfigDumper, sort_keys=False)

    def replace_output(self, path: str) -> "TrainConfig":
        return dataclasses.replace(self, output=dataclasses.replace(self.output, path=path))


_CLASSES = {
    name: dataclasses.make_dataclass(
        name.capitalize() + "Section", [(k, Any) for k in SPEC[name]], frozen=True
    )
    for name in SPEC
}


def _section(name: str, given: Any):
    """The frozen section ``name`` from its raw mapping (None: all defaults)."""
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ConfigError(f"{name}: expected a mapping of keys, {got(given)}")
    refuse_unknown(given, list(SPEC[name]), name)
    values = {}
    for key, field in SPEC[name].items():
        if key in given:
            values[key] = check_value(f"{name}.{key}", field, given[key])
        elif field.default is REQUIRED:
            raise ConfigError(f"{name}.{key}: required key is missing; allowed: {field.allowed()}")
        else:
            values[key] = field.default
    return _CLASSES[name](**values)


def _layers(given: Any) -> tuple:
    """dbn.layers as a tuple of positive ints."""
    given = {} if given is None else given
    if not isinstance(given, dict):
        raise ConfigError(f"dbn: expected a mapping of keys, {got(given)}")
    refuse_unknown(given, ["layers"], "dbn")
    layers = given.get("layers") or []
    if not isinstance(layers, list) or len(layers) > MAX_LAYERS:
        raise ConfigError(
            f"dbn.layers: expected a list of at most {MAX_LAYERS} hidden sizes, {got(layers)}"
        )
    field = Field("int", None, LAYERS_DOC, minimum=1, maximum=100000)
    return tuple(check_value(f"dbn.layers[{i}]", field, n) for i, n in enumerate(layers))


def from_dict(raw: Any, source: str = "config") -> TrainConfig:
    """Validate a parsed YAML mapping; ConfigError naming the key otherwise."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({', '.join(SECTIONS)}), {got(raw)}"
        )
    refuse_unknown(raw, SECTIONS, "")
    if "data" not in raw:
        raise ConfigError(f"data: section is required (name: {', '.join(DATA_NAMES)})")
    _refuse_epoch_count(raw.get("output"))
    sections = {name: _section(name, raw.get(name)) for name in SPEC}
    cfg = TrainConfig(
        dbn_layers=_layers(raw.get("dbn")),
        seed=check_value("seed", SEED, raw.get("seed", SEED.default)),
        **sections,
    )
    _check_combinations(cfg)
    return cfg


def _is_epoch_count(value: Any) -> bool:
    """Is value what train configs gave output.checkpoint_every when it counted epochs
    (an integer; seconds are written with a decimal point)?"""
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_epoch_count(output: Any) -> None:
    """ConfigError if the output section gives checkpoint_every as an integer: the old
    epoch count, which read as seconds would silently change meaning."""
    value = output.get("checkpoint_every") if isinstance(output, dict) else None
    if _is_epoch_count(value):
        raise ConfigError(
            f"output.checkpoint_every: {show(value)} is an integer, which counted epochs "
            "in train configs before; it now counts seconds of wall time, as in VMC "
            "configs; allowed: seconds with a decimal point (e.g. 300.0) or null, or "
            "output.checkpoint_epochs: N for a checkpoint every N epochs"
        )


def upgrade_stored(raw: Any) -> Any:
    """A config stored in a training file, in today's keys: a file from before
    checkpoint_every counted seconds has it as an integer count of epochs, which
    becomes checkpoint_epochs (with no checkpoints by time, as that run had)."""
    output = raw.get("output") if isinstance(raw, dict) else None
    if not isinstance(output, dict) or not _is_epoch_count(output.get("checkpoint_every")):
        return raw
    epochs = output["checkpoint_every"]
    return {**raw, "output": {**output, "checkpoint_every": None, "checkpoint_epochs": epochs}}


def _check_combinations(cfg: TrainConfig) -> None:
    """Rules that involve more than one key."""
    data = cfg.data
    if data.name == "idx" and data.path is None:
        raise ConfigError(
            "data.path: required with data.name idx; allowed: the path of an MNIST IDX images file"
        )
    if data.name != "idx" and (data.path is not None or data.limit is not None):
        key = "data.path" if data.path is not None else "data.limit"
        raise ConfigError(f"{key}: used only with data.name idx (got {data.name}); allowed: null")
    if cfg.dbn_layers and cfg.model.kind != "binary":
        raise ConfigError(
            "dbn.layers: a deep belief net is built of binary RBMs here; "
            "allowed with model.kind gaussian: [] (one RBM)"
        )


def apply_overrides(raw: dict, overrides: list) -> dict:
    """raw with every ``--set section.key=value`` (or seed=...) applied."""
    raw = dict(raw)
    for text in overrides:
        parts, value = parse_override(text)
        if parts == ["seed"]:
            raw["seed"] = value
            continue
        section, key = parts
        if section not in SECTIONS or section == "seed":
            raise ConfigError(
                f"{section}: unknown section in --set {text!r}; allowed: {', '.join(SECTIONS)}"
            )
        current = raw.get(section) or {}
        if not isinstance(current, dict):
            raise ConfigError(f"{section}: expected a mapping of keys, {got(current)}")
        raw[section] = {**current, key: value}
    return raw


def load(path: str, overrides: list = (), output: str | None = None) -> TrainConfig:
    """Read, override and validate a train config file."""
    source = f"config file {path}"
    raw = parse_yaml(read_config_file(path), source)
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: expected a mapping of sections ({', '.join(SECTIONS)}), {got(raw)}"
        )
    raw = apply_overrides(raw, list(overrides))
    if output is not None:
        current = raw.get("output") or {}
        if not isinstance(current, dict):
            raise ConfigError(f"output: expected a mapping of keys, {got(current)}")
        raw["output"] = {**current, "path": output}
    return from_dict(raw, source=path)


def from_yaml_text(text: str, source: str = "stored config") -> TrainConfig:
    """The config stored in a training file (of any version: :func:`upgrade_stored`)."""
    return from_dict(upgrade_stored(parse_yaml(text, source)), source)


# ------------------------------------------------------------------ command line
def add_train_parser(sub) -> None:
    """The `train` subcommand's arguments."""
    p = sub.add_parser(
        "train",
        help="train an RBM (or a deep belief net) on data by CD-k / PCD; write one HDF5 file",
    )
    p.add_argument("config", help="YAML train config (see docs/generative.md)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config key (repeatable)",
    )
    p.add_argument("-o", "--output", help="output HDF5 file (overrides output.path)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file (never done without this flag)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="if the output file exists, continue it from its checkpoint (nothing to "
        "do if it is completed; its config must be this one); otherwise start it",
    )
    p.add_argument(
        "--max-walltime",
        metavar="HH:MM:SS",
        help="stop cleanly, checkpointed, before this wall time; exit code 75",
    )
    stop_option(p)


def stop_option(p) -> None:
    p.add_argument(
        "--stop-after",
        type=int,
        metavar="EPOCHS",
        help="(train) stop cleanly after this many epochs of this launch, "
        "checkpointed; exit code 75, continue with pvmc resume. A stop signal "
        "(SIGTERM, SIGUSR1, SIGINT) stops it after the current mini-batch",
    )
    if not any("--quiet" in a.option_strings for a in p._actions):
        p.add_argument("--quiet", action="store_true", help="no progress lines")


def is_train_config(path: str) -> bool:
    """Does the YAML file at path look like a train config (a data section and no
    system section)? False for anything unreadable: the VMC loader then reports it."""
    return command_for(path) == "train"


def command_for(path: str) -> str | None:
    """The command the config file at path is for: "train" (a data section and no
    system section), "run" (a system section and no data section), or None (neither,
    or unreadable: the loader of the command given reports it)."""
    try:
        raw = parse_yaml(read_config_file(path), path)
    except ConfigError:
        return None
    if not isinstance(raw, dict) or ("data" in raw) == ("system" in raw):
        return None
    return "train" if "data" in raw else "run"
