"""The options of ``pvmc bench`` and their checks before any work. No numba here: the
command line's parser is built from this module for every command."""

from __future__ import annotations

from ..wavefunction.layout import PAIR_PARTS
from .errors import BenchInputError

SAMPLERS = ("metropolis", "importance", "gibbs")
DEFAULT_SAMPLES = 2**22
DEFAULT_WALKERS = 16  # per rank; --dmc: dmc.walkers over the ranks


def add_arguments(p) -> None:
    p.add_argument(
        "config",
        nargs="?",
        help="take system/wave function/sampler from this "
        "config (default: the C reference's problem)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config key",
    )
    p.add_argument("-P", "--particles", type=int, help="particles (default 2)")
    p.add_argument("-D", "--dimensions", type=int, help="dimensions (default 2)")
    p.add_argument("-H", "--hidden", type=int, help="hidden units (default 4; P*D in a scan)")
    p.add_argument(
        "--statistics",
        choices=("fermions", "bosons"),
        help="particle statistics (default: the config's, else fermions)",
    )
    p.add_argument(
        "--sampler",
        choices=("metropolis", "importance", "gibbs"),
        help="sampler (default metropolis)",
    )
    p.add_argument(
        "--jastrow",
        choices=("none",) + PAIR_PARTS,
        help="correlation factor (default: the config's, else none)",
    )
    p.add_argument(
        "--walkers",
        type=int,
        help=f"walkers per rank (default {DEFAULT_WALKERS}; with --dmc dmc.walkers / ranks)",
    )
    p.add_argument(
        "--moves",
        type=float,
        default=4e6,
        help="Monte Carlo moves per timed run and rank (default 4e6)",
    )
    p.add_argument("--repeats", type=int, default=5, help="timed runs (default 5)")
    p.add_argument(
        "--reference",
        metavar="rbm|slater|FILE.c",
        help="compile a plain-C reference and compare alternately: rbm (the RBM alone) or "
        "slater (Slater x RBM x Pade-Jastrow), the project's own in "
        "parallel_vmc/bench/reference/, or the path of a C file",
    )
    p.add_argument(
        "--scan-particles",
        metavar="P1,P2,...",
        help="time the kernel for each particle count (H = P*D unless -H) and "
        "fit the growth exponent of ns/move with P, e.g. 2,6,12,20",
    )
    p.add_argument(
        "--efficiency",
        action="store_true",
        help="production at fixed parameters per sampler: tau_int, kappa = "
        "1/(err^2 T) and effective samples per second, each with its error "
        "over --repeats",
    )
    p.add_argument(
        "--samplers",
        default=",".join(SAMPLERS),
        metavar="S1,S2,...",
        help="with --efficiency: the samplers compared (default: every one the config allows)",
    )
    p.add_argument(
        "--samples",
        type=float,
        default=DEFAULT_SAMPLES,
        help="with --efficiency: production samples per repeat, all ranks (default 2^22)",
    )
    p.add_argument(
        "--allreduce",
        metavar="N1,N2,...",
        help="only time the Allreduce of buffers of these lengths (doubles) "
        "on the running ranks, e.g. 63,2835870; no kernel",
    )
    p.add_argument(
        "--allreduce-repeats",
        type=int,
        default=100,
        help="timed Allreduces per length (default 100)",
    )
    p.add_argument(
        "--weak-scaling",
        type=int,
        metavar="R",
        help="alternate runs of CONFIG on 1 and on R ranks (mpiexec) at the "
        "config's samples_per_iteration per rank; --repeats pairs",
    )
    p.add_argument(
        "--production-at",
        type=int,
        metavar="R",
        help="time the config's production kernel here and print rank 0's "
        "memory, the file size and the write rate of production on R ranks",
    )
    p.add_argument(
        "--scaling",
        action="store_true",
        help="time the config's optimization iteration on one rank and print "
        "the modelled parallel efficiency on 100, 1000, 10000 ranks (with a dmc "
        "section: also of a DMC step)",
    )
    p.add_argument(
        "--dmc",
        action="store_true",
        help="alternate importance-sampling VMC sweeps and DMC steps of the config "
        "(dmc.time_steps[0]) on the same walkers: ns per walker move of each, their "
        "ratio and the parts of a DMC step",
    )


# Bench options that set a config key: (argument, flag, section, key).
OPTION_KEYS = (
    ("particles", "-P", "system", "particles"),
    ("dimensions", "-D", "system", "dimensions"),
    ("hidden", "-H", "wavefunction", "hidden"),
    ("statistics", "--statistics", "system", "statistics"),
    ("sampler", "--sampler", "sampler", "method"),
    ("jastrow", "--jastrow", "wavefunction", "jastrow"),
)
SCAN_ALLOWED = (
    "allowed: comma-separated particle counts, at least two different ones, "
    "closed shells for fermions (2D: 2,6,12,20,...; 3D: 2,8,20,...), e.g. "
    "2,6,12,20"
)


def check_options(args) -> None:
    """Options the config cannot check, before any work."""
    if args.overrides and not args.config:
        raise BenchInputError(
            "--set needs a CONFIG to override (pvmc bench CONFIG --set "
            "section.key=value); without one the C reference's problem "
            "is used, set with -P, -D, -H, --statistics, --sampler, "
            "--jastrow"
        )
    if args.walkers is None and not args.dmc:  # --dmc takes its default from the config
        args.walkers = DEFAULT_WALKERS
    for flag, value in (
        ("--walkers", args.walkers),
        ("--repeats", args.repeats),
        ("--allreduce-repeats", args.allreduce_repeats),
    ):
        if value is not None and value < 1:
            raise BenchInputError(f"{flag} {value}: allowed: an integer >= 1")
    if not 1 <= args.moves < 1e15:
        raise BenchInputError(f"--moves {args.moves:g}: allowed: a number >= 1, < 1e15")
    check_efficiency_options(args)
    modes = [
        flag
        for flag, on in (
            ("--efficiency", args.efficiency),
            ("--dmc", args.dmc),
            ("--allreduce", args.allreduce is not None),
            ("--scaling", args.scaling),
            ("--weak-scaling", args.weak_scaling is not None),
            ("--production-at", args.production_at is not None),
            ("--scan-particles", args.scan_particles is not None),
            ("--reference", bool(args.reference)),
        )
        if on
    ]
    # each parallel figure is a mode of its own; only a scan may have a reference
    if len(modes) > 1 and modes != ["--scan-particles", "--reference"]:
        raise BenchInputError(f"{' and '.join(modes)}: allowed: one of them")
    if args.dmc and not args.config:
        raise BenchInputError(
            "--dmc needs a CONFIG with a dmc section, e.g. pvmc bench "
            "configs/dmc_dot2d_N2_omega1.0.yaml --dmc"
        )
    if args.weak_scaling is not None:
        if not args.config:
            raise BenchInputError(
                "--weak-scaling needs a CONFIG to run, e.g. pvmc bench "
                "configs/quickstart.yaml --weak-scaling 2"
            )
        if args.weak_scaling < 2:
            raise BenchInputError(f"--weak-scaling {args.weak_scaling}: allowed: a rank count >= 2")
    if args.production_at is not None and not 1 <= args.production_at <= 10**7:
        raise BenchInputError(
            f"--production-at {args.production_at}: allowed: a rank count 1 .. 10000000"
        )
    if args.allreduce is not None:
        from .scaling_run import parse_sizes

        try:
            parse_sizes(args.allreduce)
        except ValueError as exc:
            raise BenchInputError(str(exc)) from None
    if args.scan_particles is not None and args.particles is not None:
        raise BenchInputError(
            f"--scan-particles {args.scan_particles} and -P {args.particles}: allowed: one of them"
        )
    if args.reference:
        from .reference import resolve

        args.reference = resolve(args.reference)  # a name becomes the packaged file


def dmc_population(args, cfg, ranks: int) -> int:
    """The DMC population of --dmc over all ranks: --walkers per rank, else the
    config's dmc.walkers; BenchInputError without a dmc section or with fewer walkers
    than ranks."""
    if cfg.dmc.time_steps is None:
        raise BenchInputError(
            "--dmc: dmc.time_steps is null in CONFIG (no DMC); allowed: a config with a "
            "dmc section, e.g. configs/dmc_dot2d_N2_omega1.0.yaml"
        )
    if args.walkers is not None:
        return args.walkers * ranks
    if cfg.dmc.walkers < ranks:
        raise BenchInputError(
            f"dmc.walkers {cfg.dmc.walkers} on {ranks} ranks: allowed: at least one "
            f"walker per rank (or --walkers W per rank)"
        )
    return cfg.dmc.walkers


def check_efficiency_options(args) -> None:
    """--efficiency's options; args.samplers becomes a tuple of names."""
    names = tuple(n.strip() for n in args.samplers.split(",") if n.strip())
    if not names or any(n not in SAMPLERS for n in names):
        raise BenchInputError(
            f"--samplers {args.samplers!r}: allowed: a comma-separated "
            f"list of {', '.join(SAMPLERS)}"
        )
    args.samplers = names
    if not 1 <= args.samples < 1e12:
        raise BenchInputError(f"--samples {args.samples:g}: allowed: a number >= 1, < 1e12")
    args.samples = int(args.samples)


def scan_counts(text: str) -> list:
    """The particle counts of ``--scan-particles``, ascending; BenchInputError unless at
    least two different positive integers (the config checks closed shells)."""
    try:
        counts = sorted({int(value) for value in text.split(",")})
    except ValueError:
        counts = []
    if len(counts) < 2 or counts[0] < 1:
        raise BenchInputError(f"--scan-particles {text!r}: {SCAN_ALLOWED}")
    return counts
