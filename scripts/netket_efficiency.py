#!/usr/bin/env python3
"""NetKet's effective samples per second on parallel_vmc's quick-start system (issue 16).

System (configs/quickstart.yaml): P = 2 particles in D = 2, hbar = m = 1,
    H = -1/2 sum_i nabla_i^2 + 1/2 omega^2 sum_i r_i^2 + 1/|r_1 - r_2|,  omega = 1.
Trial function: the project's RBM at a = b = W = 0 with psi: sqrt and
sigma = exact_sigma(omega, 'sqrt') = sqrt(1/(2 omega)):
    ln psi = 1/2 [ -|x|^2/(2 sigma^2) + N ln 2 ] = -omega |x|^2 / 2 + const,
i.e. the non-interacting ground state, so E_L(x) = 2 omega + 1/r_12 exactly
(checked against the project's own kernels by check_project_psi.py) and
<E> = 2 omega + sqrt(pi omega / 2) = 3.2533141 for omega = 1.

Sampler: NetKet's MetropolisGaussian (all-particle Gaussian moves, std sigma) on
nk.experimental.hilbert.Particle in free space (no periodic boundary), default sweep
size (= hilbert.size = 4 moves per stored sample).

Timed: ONLY drawing the samples (chains already thermalised, no discard) plus the
local-energy evaluation, each block_until_ready; jit compilation and thermalisation
are done in an untimed warm-up of exactly the same shapes. JAX runs on one CPU thread
(XLA_FLAGS set below before jax is imported, process pinned to one core).

tau_int and the error use the project's estimators (this repository's analysis/), on the
local energies stored per chain, shape (n_chains, n_steps):
    tau_int = analysis.autocorr.integrated_time(E)        (chain-averaged autocovariance)
    error   = analysis.blocking.blocking(E.mean(axis=0))  (chain-averaged series, as
                                                            analysis.chains.summarize_chains)
    effective samples / s = N / (tau_int T)   (N = n_chains * n_steps; the project's
        tau_int = 1 + 2 sum rho is twice Sokal's 1/2 + sum rho, so this is the issue's
        N / (2 tau T) with Sokal's tau, and what `pvmc bench --efficiency` prints)

Usage (one core, quiet machine; NetKet in a venv of its own, never the project's):
    python3 -m venv /tmp/netket && /tmp/netket/bin/pip install netket
    taskset -c 0 /tmp/netket/bin/python scripts/netket_efficiency.py
    ... --log2-samples 16                   (quick check)
    ... --log2-samples 20 --chains 64 256 1024 --sigma 0.3 0.4 0.6   (scan)
"""

from __future__ import annotations

import argparse
import os
import sys

# --- one CPU thread for XLA: must happen before jax is imported --------------------
ONE_THREAD_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ONE_THREAD_FLAGS).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import math  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

PROJECT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--log2-samples", type=int, default=22, help="N = 2^k samples (default 22)")
    p.add_argument("--chains", type=int, nargs="+", default=[256], help="n_chains (default 256)")
    p.add_argument(
        "--sigma",
        type=float,
        nargs="+",
        default=[0.4],
        help="std of the Gaussian all-particle move (default 0.4)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="timed repeats per setting (chains continue; default 1)",
    )
    p.add_argument(
        "--thermalize",
        type=int,
        default=1000,
        help="samples per chain discarded in the warm-up before the warm-up chain (default 1000)",
    )
    p.add_argument("--omega", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=2026)
    p.add_argument(
        "--cpu", type=int, default=0, help="pin the process to this core (-1: leave affinity alone)"
    )
    p.add_argument(
        "--save",
        default=None,
        help="save the local energies (n_chains, n_steps) of the last run to .npy",
    )
    return p.parse_args()


def main():
    args = parse_args()
    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})  # same as taskset -c CPU; threads inherit

    import flax
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    import jaxlib
    import netket as nk
    import numpy as np

    sys.path.insert(0, PROJECT)
    from parallel_vmc.stats.autocorr import integrated_time
    from parallel_vmc.stats.blocking import blocking

    omega = float(args.omega)
    n_particles, dim = 2, 2
    n_total = 1 << args.log2_samples
    e_exact = 2.0 * omega + math.sqrt(math.pi * omega / 2.0)

    class ProjectRBMAtZero(nn.Module):
        """The project's RBM at a = b = W = 0, psi: sqrt, sigma^2 = 1/(2 omega):
        ln psi(x) = -omega |x|^2 / 2 (the constant N ln2 / 2 dropped). No parameters."""

        omega: float

        @nn.compact
        def __call__(self, x):
            return -0.5 * self.omega * jnp.sum(x * x, axis=-1)

    geometry = nk.experimental.geometry.FreeSpace(d=dim)
    hilbert = nk.experimental.hilbert.Particle(N=n_particles, geometry=geometry)

    def trap(x):  # x: (P*D,), particle-major (x1, y1, x2, y2)
        return 0.5 * omega**2 * jnp.sum(x * x)

    def coulomb(x):
        r = x.reshape(n_particles, dim)
        return 1.0 / jnp.linalg.norm(r[0] - r[1])

    H = (
        nk.operator.KineticEnergy(hilbert, mass=1.0)
        + nk.operator.PotentialEnergy(hilbert, trap)
        + nk.operator.PotentialEnergy(hilbert, coulomb)
    )
    model = ProjectRBMAtZero(omega=omega)

    try:
        cpu_name = next(
            l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")
        )
    except Exception:  # noqa: BLE001
        cpu_name = platform.processor()
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else "?"
    print("=" * 78)
    print("NetKet effective samples per second, parallel_vmc quick-start system (issue 16)")
    print(
        f"versions      netket {nk.__version__}  jax {jax.__version__}  "
        f"jaxlib {jaxlib.__version__}  flax {flax.__version__}  numpy {np.__version__}  "
        f"python {platform.python_version()}"
    )
    print(
        f"machine       {cpu_name}; os.cpu_count {os.cpu_count()}; affinity {affinity}; "
        f"jax devices {jax.devices()}; x64 {jax.config.jax_enable_x64}"
    )
    print(f"threads       XLA_FLAGS='{os.environ['XLA_FLAGS']}'")
    print(f"load          {open('/proc/loadavg').read().split()[:3]} (1/5/15 min) at start")
    print(
        f"system        P={n_particles} D={dim} omega={omega} coulomb; psi = exp(-omega |x|^2/2)"
        f" (project RBM, a=b=W=0, psi: sqrt, sigma^2=1/(2 omega)); exact <E> = {e_exact:.7f}"
    )
    print(f"operator      {H}")
    print("=" * 78)
    sys.stdout.flush()

    results = []
    for n_chains in args.chains:
        for sigma in args.sigma:
            results.append(
                run_one(
                    nk,
                    jax,
                    np,
                    integrated_time,
                    blocking,
                    hilbert,
                    H,
                    model,
                    n_chains,
                    sigma,
                    n_total,
                    args,
                    e_exact,
                )
            )

    r = results[0]
    print("=" * 78)
    print(f"FINAL (first setting; median of {r['repeats']} timed repeat(s) by wall-clock eff/s)")
    print(
        f"  netket {nk.__version__} / jax {jax.__version__} / jaxlib {jaxlib.__version__} / "
        f"flax {flax.__version__}; 1 XLA thread, affinity {affinity}"
    )
    print(
        f"  n_chains {r['n_chains']}, MetropolisGaussian sigma {r['sigma']}, "
        f"acceptance {r['acceptance']:.3f}, N = {r['n']} samples "
        f"({r['n_chains']} x {r['chain_length']})"
    )
    print(
        f"  T = {r['seconds']:.3f} s wall (sampling {r['t_sample']:.3f} + E_L "
        f"{r['t_eloc']:.3f}), {r['cpu_seconds']:.3f} s CPU"
    )
    print(
        f"  tau_int = {r['tau']:.3f} samples; effective samples / s = {r['eff_per_s']:.3e} "
        f"(per CPU second {r['eff_per_cpu_s']:.3e})"
    )
    print(f"  E = {r['E']:.5f} +- {r['err']:.5f} (blocking; exact for this psi {e_exact:.5f})")
    print("=" * 78)
    if len(results) > 1:
        print("\nsummary (best effective samples / s first; medians over repeats)")
        print(
            f"{'chains':>7} {'sigma':>6} {'accept':>7} {'seconds':>8} {'tau_int':>8} "
            f"{'samples/s':>10} {'eff/s':>10} {'eff/cpu-s':>10} {'E':>10} {'err':>8}"
        )
        for r in sorted(results, key=lambda r: -r["eff_per_s"]):
            print(
                f"{r['n_chains']:>7d} {r['sigma']:>6.3f} {r['acceptance']:>7.3f} "
                f"{r['seconds']:>8.3f} {r['tau']:>8.3f} {r['samples_per_s']:>10.3e} "
                f"{r['eff_per_s']:>10.3e} {r['eff_per_cpu_s']:>10.3e} {r['E']:>10.5f} "
                f"{r['err']:>8.5f}"
            )
    print(f"load          {open('/proc/loadavg').read().split()[:3]} (1/5/15 min) at end")
    try:
        print(
            "uptime        "
            + subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        )
    except OSError:
        pass


def run_one(
    nk,
    jax,
    np,
    integrated_time,
    blocking,
    hilbert,
    H,
    model,
    n_chains,
    sigma,
    n_total,
    args,
    e_exact,
):
    chain_length = n_total // n_chains
    if chain_length * n_chains != n_total or chain_length < 4:
        raise SystemExit(
            f"n_samples 2^{args.log2_samples} is not a multiple of n_chains "
            f"{n_chains} with >= 4 samples per chain"
        )
    sampler = nk.sampler.MetropolisGaussian(hilbert, sigma=sigma, n_chains=n_chains)
    vs = nk.vqs.MCState(
        sampler,
        model,
        n_samples=n_total,
        n_discard_per_chain=0,
        variables={"params": {}},  # the model has no parameters
        seed=args.seed,
        sampler_seed=args.seed + 1,
    )

    # ---- untimed warm-up: thermalise, compile the chain of this length and E_L ----
    t0 = time.perf_counter()
    s = vs.sample(chain_length=chain_length, n_discard_per_chain=args.thermalize)
    jax.block_until_ready(s)
    jax.block_until_ready(vs.local_estimators(H).data)
    t_warm = time.perf_counter() - t0

    runs = []
    for rep in range(args.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        s = vs.sample(chain_length=chain_length, n_discard_per_chain=0)  # continues chains
        jax.block_until_ready(s)
        t1 = time.perf_counter()
        el = vs.local_estimators(H).data
        jax.block_until_ready(el)
        t2 = time.perf_counter()
        cpu_seconds = time.process_time() - c0
        acceptance = float(vs.sampler_state.acceptance)
        e = np.asarray(el).real.astype(np.float64)
        if e.shape != (n_chains, chain_length):
            e = e.reshape(n_chains, chain_length)
        seconds = t2 - t0
        # sanity check (untimed): E_L must be 2 omega + 1/r12 exactly for this psi
        x = np.asarray(vs.samples).reshape(n_chains, chain_length, -1)
        r12 = np.linalg.norm(x[..., 0:2] - x[..., 2:4], axis=-1)
        el_check = float(np.max(np.abs(e - (2.0 * args.omega + 1.0 / r12))))
        ac = integrated_time(e)  # (n_chains, n_steps)
        b = blocking(e.mean(axis=0))  # chain-averaged series
        n = e.size
        eff = n / (ac.tau * seconds)
        r = dict(
            n_chains=n_chains,
            sigma=sigma,
            chain_length=chain_length,
            n=n,
            seconds=seconds,
            t_sample=t1 - t0,
            t_eloc=t2 - t1,
            tau=ac.tau,
            window=ac.window,
            tau_converged=ac.converged,
            acceptance=acceptance,
            E=float(e.mean()),
            err=b.error,
            level=b.level,
            blocking_converged=getattr(b, "converged", None),
            el_check=el_check,
            cpu_seconds=cpu_seconds,
            eff_per_cpu_s=n / (ac.tau * cpu_seconds),
            samples_per_s=n / seconds,
            eff_per_s=eff,
            warm=t_warm,
            rep=rep,
        )
        runs.append(r)
        print_block(r, vs, e_exact, args.repeats)
        if args.save:
            np.save(args.save, e)
    if len(runs) > 1:
        effs = sorted(x["eff_per_s"] for x in runs)
        print(
            f"repeats       eff/s per repeat {[f'{x:.3e}' for x in effs]}; "
            f"median {effs[len(effs) // 2]:.3e}"
        )
        effc = sorted(x["eff_per_cpu_s"] for x in runs)
        print(
            f"repeats       eff/CPU-s per repeat {[f'{x:.3e}' for x in effc]}; "
            f"median {effc[len(effc) // 2]:.3e}"
        )
    best = dict(sorted(runs, key=lambda x: x["eff_per_s"])[len(runs) // 2])  # median repeat
    best["eff_per_cpu_s"] = sorted(x["eff_per_cpu_s"] for x in runs)[len(runs) // 2]
    best["repeats"] = len(runs)
    return best


def print_block(r, vs, e_exact, repeats):
    print("-" * 78)
    print(
        f"RESULT  n_chains={r['n_chains']}  sigma={r['sigma']}  (repeat {r['rep'] + 1}/{repeats})"
    )
    print(f"  sampler        {vs.sampler}".replace("\n", " "))
    print(
        f"  samples        N = {r['n']} = {r['n_chains']} chains x {r['chain_length']} "
        f"(sweep size {vs.sampler.sweep_size} moves per sample, no discard in the timed run)"
    )
    print(f"  acceptance     {r['acceptance']:.4f}")
    print(
        f"  seconds        T = {r['seconds']:.4f} s  (sampling {r['t_sample']:.4f} s + "
        f"local energies {r['t_eloc']:.4f} s; warm-up/compile {r['warm']:.1f} s untimed)"
    )
    print(
        f"  cpu seconds    {r['cpu_seconds']:.4f} s process CPU time of the same interval "
        f"(wall/cpu = {r['seconds'] / r['cpu_seconds']:.2f}; >1 means the core was shared)"
    )
    print(f"  samples / s    {r['samples_per_s']:.4e}")
    print(
        f"  tau_int        {r['tau']:.4f} samples (Sokal window {r['window']}, "
        f"converged {r['tau_converged']})"
    )
    print(
        f"  effective / s  N / (tau_int T) = {r['eff_per_s']:.4e}   "
        f"(per CPU second: {r['eff_per_cpu_s']:.4e})"
    )
    print(
        f"  energy         E = {r['E']:.6f} +- {r['err']:.6f} (blocking level {r['level']}; "
        f"exact for this psi {e_exact:.6f}, deviation {(r['E'] - e_exact) / r['err']:+.2f} "
        f"error bars)"
    )
    print(f"  E_L check      max |E_L - (2 omega + 1/r12)| over the samples = {r['el_check']:.2e}")
    print("-" * 78)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
