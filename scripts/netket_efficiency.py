#!/usr/bin/env python3
"""NetKet against parallel_vmc on the same RBM trial function, alternating in one session.

System (configs/quickstart.yaml): P = 2 particles in D = 2, hbar = m = 1,
    H = -1/2 sum_i nabla_i^2 + 1/2 omega^2 sum_i r_i^2 + 1/|r_1 - r_2|,  omega = 1.
Trial function, in both codes: the project's Gaussian-binary RBM with its N = 4 hidden
units, psi: sqrt (c = 1/2), sigma = exact_sigma(omega, 'sqrt') = sqrt(1/(2 omega)):
    ln psi(x) = c [ -|x-a|^2/(2 sigma^2) + sum_j softplus(b_j + sum_i x_i W_ij / sigma^2) ]
at the parameters `pvmc bench --efficiency` uses (bench.problem.theta_for: a = b = 0,
W ~ U(-0.005, 0.005) from the config's seed), read from the project and passed to
NetKet as the model's parameters. NetKet evaluates the network, its gradient and its
Laplacian (nk.operator.KineticEnergy) at every sample; nothing is optimised away.
Checked before timing: NetKet's ln psi equals the project's (compose.log_psi_at) at
random points for random nonzero a, b, W to 1e-10, and after timing NetKet's local
energies equal the project's (its kinetic energy plus the trap and Coulomb terms) at
NetKet's own samples.

Samplers. Ours (`pvmc bench --efficiency`, observables on as in a run): `metropolis`
moves one particle at a time uniformly in a box, `importance` one particle at a time by
a Langevin (Fokker-Planck) step; one stored sample per sweep of all particles; 16
walkers; step tuned to the config's target acceptance. NetKet: MetropolisGaussian
(all particles at once, Gaussian of std --sigma) and MetropolisAdjustedLangevin (all
particles at once, MALA with step --dt), --chains chains, one stored sample every
--sweep-size moves (Gaussian; NetKet's default hilbert.size = P*D = 4) or
--langevin-sweep-size moves (MALA, 2). The defaults (1024 chains, sigma 0.5, dt 0.4)
were the best of short scans over chains 256/1024, sigma 0.5-0.9, dt 0.3-0.7 and sweep
sizes 1, 2, 4 (NetKet's own default, 256 chains, is not faster); --chunk-size 2^16
(MCState chunk_size) made NetKet's 2^20-sample runs about 25 % faster than one batch.

Timed. Ours: the production kernel (`sampler.produce`, local energy and observables)
of --samples samples, as `pvmc bench --efficiency` times it. NetKet: vs.sample (chains
continue, no discard) plus vs.local_estimators(H), each block_until_ready. Both are
warmed up untimed first (numba/XLA compilation, thermalisation), in two long-lived
processes; the script alternates runs of the two codes: ours-metropolis, NetKet
Gaussian, ours-importance, NetKet MALA, repeated --repeats times. Each process is
pinned to the same core, one thread (XLA_FLAGS below, OMP/NUMBA threads 1), and only
one of them runs at a time.

Convention. The same estimator, the project's, on both codes' local-energy series of
shape (chains, samples per chain), run in the project's process:
    tau_int = 1 + 2 sum_t rho(t)   (parallel_vmc.stats.autocorr.integrated_time,
                                    chain-averaged autocovariance, Sokal window c = 5)
    effective samples / s = N / (tau_int T)  (N all samples, T the timed wall time)
The project's tau_int is twice Sokal's tau = 1/2 + sum rho, so this is N / (2 tau T).

Usage (NetKet in a venv of its own, never a dependency of the project):
    python3 -m venv /tmp/nkvenv && /tmp/nkvenv/bin/pip install netket
    /tmp/nkvenv/bin/python scripts/netket_efficiency.py              (2^22, 3 repeats)
    /tmp/nkvenv/bin/python scripts/netket_efficiency.py --log2-samples 18 --repeats 1
The project's interpreter is --project-python (default .venv/bin/python of this
checkout); the script starts it as a worker (`--worker`) that imports no NetKet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "quickstart.yaml")
LOGPSI_TOLERANCE = 1e-10
ELOC_TOLERANCE = 1e-8  # relative


def one_thread_environment() -> None:
    """One thread for XLA, BLAS and numba; before jax or numba is imported."""
    flags = os.environ.get("XLA_FLAGS", "")
    if ONE_THREAD_FLAGS not in flags:
        os.environ["XLA_FLAGS"] = (flags + " " + ONE_THREAD_FLAGS).strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    for var in THREAD_VARS:
        os.environ[var] = "1"


# ============================================================ the project's worker


def worker() -> int:
    """Answer JSON requests, one a line on stdin, on the original stdout (the project's
    printing goes to stderr). Runs under the project's interpreter."""
    import numpy as np

    sys.path.insert(0, ROOT)
    import numba

    import parallel_vmc
    from parallel_vmc.bench import efficiency
    from parallel_vmc.bench.kernel import _config
    from parallel_vmc.bench.options import check_options
    from parallel_vmc.cli.main import build_parser
    from parallel_vmc.parallel import SerialComm
    from parallel_vmc.stats.autocorr import integrated_time
    from parallel_vmc.stats.blocking import blocking
    from parallel_vmc.wavefunction import compose

    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else printed goes to stderr
    comm = SerialComm()
    state = {}

    def reply(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        req = json.loads(line)
        cmd = req["cmd"]
        if cmd == "quit":
            break
        if cmd == "setup":
            argv = ["bench", CONFIG, "--efficiency", "--samplers", ",".join(req["samplers"])]
            argv += ["--samples", str(req["samples"]), "--repeats", "1"]
            argv += ["--walkers", str(req["walkers"])]
            args = build_parser().parse_args(argv)
            check_options(args)  # as pvmc bench does: e.g. --samplers becomes a tuple
            cfg = _config(args)
            say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
            t0 = time.perf_counter()
            setups = {u.name: u for u in efficiency.prepare(args, comm, cfg, say)}
            state["setups"] = setups
            u = next(iter(setups.values()))
            wf = u.sampler.wf
            state["wf"], state["D"] = wf, cfg.system.dimensions
            state["walkers"] = req["walkers"]
            a, b, W = wf.layout.split(u.theta)
            reply(
                dict(
                    versions=dict(
                        python=platform.python_version(),
                        numpy=np.__version__,
                        numba=numba.__version__,
                        parallel_vmc=parallel_vmc.__version__,
                    ),
                    omega=cfg.system.omega,
                    particles=cfg.system.particles,
                    dimensions=cfg.system.dimensions,
                    interaction=cfg.system.interaction,
                    hidden=cfg.wavefunction.hidden,
                    psi=wf.psi,
                    sigma=wf.sigma,
                    c=wf.c,
                    observables=bool(cfg.production.observables),
                    a=list(map(float, a)),
                    b=list(map(float, b)),
                    W=np.asarray(W).tolist(),
                    walkers=req["walkers"],
                    samplers={
                        n: dict(step=s.sampler.step, acceptance=s.acceptance, sweeps=s.n_sweeps)
                        for n, s in setups.items()
                    },
                    warmup_seconds=time.perf_counter() - t0,
                )
            )
        elif cmd == "logpsi":  # random nonzero parameters, ln psi at the given points
            wf, D = state["wf"], state["D"]
            rng = np.random.default_rng(req["seed"])
            theta = np.zeros(wf.layout.n_params)
            for name in ("a", "b", "W"):
                block = wf.layout.block(theta, name)
                block[...] = req["scale"] * rng.standard_normal(block.shape)
            parts = wf.kernel_parts()
            x = np.asarray(req["points"], dtype=np.float64)
            reply(
                dict(
                    a=wf.layout.block(theta, "a").tolist(),
                    b=wf.layout.block(theta, "b").tolist(),
                    W=wf.layout.block(theta, "W").tolist(),
                    logpsi=[float(compose.log_psi_at(theta, parts, xi, D)) for xi in x],
                )
            )
        elif cmd == "eloc":  # the project's local energy at the bench's parameters
            wf, D = state["wf"], state["D"]
            u = next(iter(state["setups"].values()))
            parts = wf.kernel_parts()
            x = np.asarray(req["points"], dtype=np.float64)
            omega, P = req["omega"], x.shape[1] // D
            energies = []
            for xi in x:
                kin = compose.local_terms_at(u.theta, parts, xi, D)[0]
                r = xi.reshape(P, D)
                pot = 0.5 * omega**2 * float(np.sum(xi * xi))
                pot += sum(
                    1.0 / float(np.linalg.norm(r[i] - r[j]))
                    for i in range(P)
                    for j in range(i + 1, P)
                )
                energies.append(float(kin) + pot)
            reply(dict(eloc=energies))
        elif cmd == "run":  # one timed production, as pvmc bench --efficiency times it
            u = state["setups"][req["sampler"]]
            rep = efficiency.run_once(comm, u)
            reply(dict(rep._asdict(), n=u.n_sweeps * state["walkers"]))
        elif cmd == "stats":  # the project's estimators on a series saved as .npy
            e = np.load(req["path"])
            ac = integrated_time(e)
            b = blocking(e.mean(axis=0))
            reply(dict(tau=float(ac.tau), error=float(b.error), energy=float(e.mean())))
        else:
            reply(dict(error=f"unknown command {cmd}"))
    return 0


class Worker:
    """The project's process, driven over a pipe."""

    def __init__(self, python: str):
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT
        self.proc = subprocess.Popen(
            [python, os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sys.stderr,
            text=True,
            env=env,
            cwd=ROOT,
        )

    def ask(self, **req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the project's worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        self.proc.stdin.write(json.dumps(dict(cmd="quit")) + "\n")
        self.proc.stdin.close()
        self.proc.wait()


# ============================================================ NetKet's side


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log2-samples", type=int, default=22, help="N = 2^k samples (default 22)")
    p.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    p.add_argument("--chains", type=int, default=1024, help="NetKet's chains (default 1024)")
    p.add_argument("--sigma", type=float, default=0.5, help="MetropolisGaussian std (0.5)")
    p.add_argument("--dt", type=float, default=0.4, help="MetropolisAdjustedLangevin dt (0.4)")
    p.add_argument(
        "--sweep-size",
        type=int,
        default=None,
        help="MetropolisGaussian's moves per stored sample (default: NetKet's, hilbert.size = 4)",
    )
    p.add_argument(
        "--langevin-sweep-size",
        type=int,
        default=2,
        help="MetropolisAdjustedLangevin's moves per stored sample (default 2)",
    )
    p.add_argument(
        "--chunk-size",
        type=int,
        default=65536,
        help="MCState chunk_size of NetKet (default 2^16: faster than one batch of 2^22)",
    )
    p.add_argument("--walkers", type=int, default=16, help="our walkers (pvmc's default 16)")
    p.add_argument(
        "--netket-samplers",
        default="gaussian,langevin",
        help="NetKet samplers timed: gaussian, langevin (default both)",
    )
    p.add_argument("--thermalize", type=int, default=1000, help="NetKet warm-up discards")
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument("--cpu", type=int, default=0, help="core for both codes (-1: no pinning)")
    p.add_argument(
        "--project-python",
        default=os.path.join(ROOT, ".venv", "bin", "python"),
        help="the project's interpreter (default .venv/bin/python)",
    )
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "?"


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def main() -> int:
    args = parse_args()
    one_thread_environment()
    if args.worker:
        return worker()
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})  # as taskset -c CPU; the worker inherits it

    n_total = 1 << args.log2_samples
    ours = Worker(args.project_python)  # started first: it warms up while jax imports
    ours.proc.stdin.write(
        json.dumps(
            dict(
                cmd="setup",
                samplers=["metropolis", "importance"],
                samples=n_total,
                walkers=args.walkers,
            )
        )
        + "\n"
    )
    ours.proc.stdin.flush()

    import flax
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import jaxlib
    import netket as nk
    import numpy as np

    info = json.loads(ours.proc.stdout.readline())
    P, D, N = info["particles"], info["dimensions"], info["hidden"]
    M = P * D
    omega, sigma2, c = info["omega"], info["sigma"] ** 2, info["c"]

    class GaussianBinaryRBM(nn.Module):
        """The project's ln psi (wavefunction/rbm.py), with a, b, W as parameters."""

        @nn.compact
        def __call__(self, x):
            a = self.param("a", nn.initializers.zeros, (M,), jnp.float64)
            b = self.param("b", nn.initializers.zeros, (N,), jnp.float64)
            W = self.param("W", nn.initializers.zeros, (M, N), jnp.float64)
            u = b + x @ W / sigma2
            gauss = -jnp.sum((x - a) ** 2, axis=-1) / (2.0 * sigma2)
            return c * (gauss + jnp.sum(jax.nn.softplus(u), axis=-1))

    model = GaussianBinaryRBM()

    def params_of(d):
        return {
            "a": jnp.asarray(d["a"], dtype=jnp.float64),
            "b": jnp.asarray(d["b"], dtype=jnp.float64),
            "W": jnp.asarray(d["W"], dtype=jnp.float64).reshape(M, N),
        }

    # ---- check: NetKet's ln psi = the project's at random points, random a, b, W ----
    rng = np.random.default_rng(args.seed)
    points = 1.5 * rng.standard_normal((64, M))
    theirs = ours.ask(cmd="logpsi", seed=args.seed, scale=0.3, points=points.tolist())
    mine = np.asarray(model.apply({"params": params_of(theirs)}, jnp.asarray(points)))
    logpsi_dev = float(np.max(np.abs(mine - np.asarray(theirs["logpsi"]))))
    if not logpsi_dev <= LOGPSI_TOLERANCE:
        raise SystemExit(f"ln psi differs from the project's by {logpsi_dev:.2e}")

    geometry = nk.experimental.geometry.FreeSpace(d=D)
    hilbert = nk.experimental.hilbert.Particle(N=P, geometry=geometry)

    def trap(x):  # x: (P*D,), particle-major (x1, y1, x2, y2), as in the project
        return 0.5 * omega**2 * jnp.sum(x * x)

    def coulomb(x):
        r = x.reshape(P, D)
        return sum(1.0 / jnp.linalg.norm(r[i] - r[j]) for i in range(P) for j in range(i + 1, P))

    H = (
        nk.operator.KineticEnergy(hilbert, mass=1.0)
        + nk.operator.PotentialEnergy(hilbert, trap)
        + nk.operator.PotentialEnergy(hilbert, coulomb)
    )
    timing_params = params_of(info)
    chain_length = n_total // args.chains
    if chain_length * args.chains != n_total:
        raise SystemExit("2^log2-samples must be a multiple of --chains")
    extra = {} if args.sweep_size is None else {"sweep_size": args.sweep_size}
    factories = {
        "gaussian": lambda: nk.sampler.MetropolisGaussian(
            hilbert, sigma=args.sigma, n_chains=args.chains, **extra
        ),
        "langevin": lambda: nk.sampler.MetropolisAdjustedLangevin(
            hilbert, dt=args.dt, n_chains=args.chains, sweep_size=args.langevin_sweep_size
        ),
    }
    nk_names = [s for s in args.netket_samplers.split(",") if s]
    states, warm = {}, {}
    for name in nk_names:
        vs = nk.vqs.MCState(
            factories[name](),
            model,
            n_samples=n_total,
            n_discard_per_chain=0,
            variables={"params": timing_params},
            chunk_size=args.chunk_size,
            seed=args.seed,
            sampler_seed=args.seed + 1,
        )
        t0 = time.perf_counter()
        jax.block_until_ready(vs.sample(chain_length=chain_length, n_discard_per_chain=0))
        jax.block_until_ready(
            vs.sample(chain_length=args.thermalize, n_discard_per_chain=0)
        )  # thermalise (compiles that length too)
        jax.block_until_ready(vs.sample(chain_length=chain_length, n_discard_per_chain=0))
        jax.block_until_ready(vs.local_estimators(H).data)
        warm[name] = time.perf_counter() - t0
        states[name] = vs

    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    v = info["versions"]
    print("=" * 78)
    print("NetKet and parallel_vmc on the same RBM, alternating runs in one session")
    print(
        f"versions   python {platform.python_version()} (NetKet side), {v['python']} (ours); "
        f"netket {nk.__version__}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, "
        f"flax {flax.__version__}, numpy {np.__version__} (NetKet side); parallel_vmc "
        f"{v['parallel_vmc']}, numpy {v['numpy']}, numba {v['numba']} (ours)"
    )
    print(f"machine    {cpu_model()}; {os.cpu_count()} CPUs; both pinned to {affinity}")
    print(
        f"threads    XLA_FLAGS='{os.environ['XLA_FLAGS']}'; "
        + ", ".join(f"{var}={os.environ[var]}" for var in THREAD_VARS)
        + f"; jax devices {jax.devices()}; x64 {jax.config.jax_enable_x64}"
    )
    print(f"load       {loadavg()} (1/5/15 min) at the start")
    print(
        f"system     P={P} D={D} omega={omega} {info['interaction']}; RBM N={N} hidden, psi: "
        f"{info['psi']} (c={c}), sigma={info['sigma']:.6f}; parameters of pvmc bench: "
        f"|a|max={np.max(np.abs(info['a'])):.1e} |b|max={np.max(np.abs(info['b'])):.1e} "
        f"|W|max={np.max(np.abs(info['W'])):.2e}"
    )
    print(
        f"check      max |ln psi_NetKet - ln psi_project| at 64 random points, random a, b, W "
        f"(std 0.3) = {logpsi_dev:.1e} (tolerance {LOGPSI_TOLERANCE:.0e})"
    )
    for name, s in info["samplers"].items():
        print(
            f"ours       {name}: {args.walkers} walkers x {s['sweeps']} sweeps, step "
            f"{s['step']:.3f}, acceptance {s['acceptance']:.3f}, observables "
            f"{'on' if info['observables'] else 'off'}"
        )
    for name, vs in states.items():
        print(
            f"NetKet     {name}: {type(vs.sampler.rule).__name__}"
            f"({args.sigma if name == 'gaussian' else args.dt}), {args.chains} chains x "
            f"{chain_length}, sweep_size {vs.sampler.sweep_size}; warm-up {warm[name]:.1f} s"
        )
    print(f"ours warm-up (compile, thermalise, tune) {info['warmup_seconds']:.1f} s, untimed")
    print(
        "convention tau_int = 1 + 2 sum rho (project's integrated_time, = 2 tau_Sokal); "
        "eff/s = N / (tau_int T)"
    )
    print(f"operator   {H}")
    print("=" * 78)
    sys.stdout.flush()

    order = []
    for k, name in enumerate(["metropolis", "importance"]):
        order.append(("ours", name))
        if nk_names:
            order.append(("netket", nk_names[k % len(nk_names)]))
    results = {key: [] for key in order}
    header = (
        f"{'round':>5} {'code':<7} {'sampler':<11} {'T [s]':>8} {'tau_int':>8} "
        f"{'eff/s':>10} {'E':>9} {'err':>8} {'acc.':>5} {'load':>5}"
    )
    print(header)
    with tempfile.TemporaryDirectory(prefix="nk-eff-") as tmp:
        path = os.path.join(tmp, "e.npy")
        for rnd in range(args.repeats):
            for code, name in order:
                if code == "ours":
                    r = ours.ask(cmd="run", sampler=name)
                    row = dict(T=r["seconds"], tau=r["tau"], E=r["energy"], err=r["error"])
                    row["eff"] = r["n"] / (r["tau"] * r["seconds"])
                    row["acc"] = info["samplers"][name]["acceptance"]
                else:
                    vs = states[name]
                    t0 = time.perf_counter()
                    s = vs.sample(chain_length=chain_length, n_discard_per_chain=0)
                    jax.block_until_ready(s)
                    el = vs.local_estimators(H).data
                    jax.block_until_ready(el)
                    seconds = time.perf_counter() - t0
                    e = np.asarray(el).real.astype(np.float64).reshape(args.chains, -1)
                    np.save(path, e)
                    st = ours.ask(cmd="stats", path=path)
                    row = dict(T=seconds, tau=st["tau"], E=st["energy"], err=st["error"])
                    row["eff"] = e.size / (st["tau"] * seconds)
                    row["acc"] = float(vs.sampler_state.acceptance)
                row["load"] = float(loadavg().split()[0])
                results[(code, name)].append(row)
                print(
                    f"{rnd + 1:>5} {code:<7} {name:<11} {row['T']:8.3f} {row['tau']:8.3f} "
                    f"{row['eff']:10.3e} {row['E']:9.5f} {row['err']:8.5f} "
                    f"{row['acc']:5.2f} {row['load']:5.2f}"
                )
                sys.stdout.flush()

    # ---- check: NetKet's local energies = the project's at NetKet's samples ----
    el_dev = 0.0
    for vs in states.values():
        x = np.asarray(vs.samples).reshape(-1, M)[:200]
        el_nk = np.asarray(vs.local_estimators(H).data).real.reshape(-1)[:200]
        el_ours = np.asarray(ours.ask(cmd="eloc", points=x.tolist(), omega=omega)["eloc"])
        el_dev = max(el_dev, float(np.max(np.abs(el_nk - el_ours) / np.abs(el_ours))))
    ours.close()

    print("=" * 78)
    print(
        f"check      max relative |E_L NetKet - E_L project| at 200 NetKet samples = {el_dev:.1e}"
    )
    print(f"summary    median over {args.repeats} round(s) [min, max]; N = {n_total} per run")
    med = {}
    for (code, name), rows in results.items():
        effs = [r["eff"] for r in rows]
        med[(code, name)] = statistics.median(effs)
        print(
            f"  {code:<7} {name:<11} T {statistics.median(r['T'] for r in rows):7.3f} s  "
            f"tau_int {statistics.median(r['tau'] for r in rows):6.3f}  eff/s "
            f"{med[(code, name)]:.3e} [{min(effs):.3e}, {max(effs):.3e}]"
        )
    best_nk = max((v, k[1]) for k, v in med.items() if k[0] == "netket") if nk_names else None
    if best_nk:
        for name in ("metropolis", "importance"):
            ratios = ", ".join(
                f"{med[('ours', name)] / v:.2f} vs {k[1]}"
                for k, v in med.items()
                if k[0] == "netket"
            )
            print(f"ratio      ours {name} / NetKet (medians): {ratios}")
    print(f"load       {loadavg()} (1/5/15 min) at the end")
    if not el_dev <= ELOC_TOLERANCE:
        print(f"FAILED: the local energies differ by {el_dev:.1e} (relative)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
