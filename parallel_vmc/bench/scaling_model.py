"""The cost model of the per-iteration Allreduce at scale, and the parallel efficiency
it gives: the one home of these formulas (``pvmc bench --allreduce`` and ``pvmc bench
--scaling`` print from here, the README's table comes from them).

Allreduce algorithms (Thakur, Rabenseifner & Gropp, "Optimization of Collective
Communication Operations in MPICH", IJHPCA 19(1), 2005: MPICH's classic choice by message
size; a given library may choose others, this is the model): with ``p = ceil(log2 R)``
steps, per-message latency alpha (s), inverse bandwidth beta (s/byte) and local reduction
cost gamma (s/byte),

* short messages (``n_bytes <= SHORT_MESSAGE_BYTES``): recursive doubling,
  ``t = p (alpha + n beta + n gamma)``;
* long messages: Rabenseifner's reduce-scatter (recursive halving) + allgather
  (recursive doubling), ``t = 2 p alpha + 2 (R-1)/R n beta + (R-1)/R n gamma``.

Non-powers of two cost one extra exchange in MPICH; ``ceil`` covers most of it.

Published interconnect figures (the constants below): InfiniBand HDR, NVIDIA
ConnectX-6: 200 Gb/s per port and sub-600 ns latency, user manual
https://docs.nvidia.com/networking/display/ConnectX6EN/Introduction (the same figures
in Lenovo's product guide https://lenovopress.lenovo.com/lp1195). An MPI ping-pong
adds software overhead: OSU osu_latency over HDR is about 1 us, e.g. Azure HBv3
(HDR) 1.2 us, https://docs.azure.cn/en-us/virtual-machines/hbv3-performance; the
table takes the MPI-level 1.2 us as alpha. gamma is this machine's: ``bench``
measures it (numpy adding two buffers).
"""

from __future__ import annotations

import math

SHORT_MESSAGE_BYTES = 2048  # MPICH's default switch to Rabenseifner (cvar
# MPIR_CVAR_ALLREDUCE_SHORT_MSG_SIZE)
HDR_LATENCY = 1.2e-6  # s, MPI-level osu_latency over HDR (Azure HBv3 page)
HDR_ADAPTER_LATENCY = 0.6e-6  # s, ConnectX-6 adapter (NVIDIA manual)
HDR_BANDWIDTH = 200e9 / 8  # bytes/s: 200 Gb/s per port (NVIDIA manual)
RANK_COUNTS = (100, 1000, 10000)


def allreduce_seconds(
    n_bytes: float,
    ranks: int,
    alpha: float = HDR_LATENCY,
    bandwidth: float = HDR_BANDWIDTH,
    gamma: float = 0.0,
) -> float:
    """Model time of one Allreduce of n_bytes over `ranks` ranks (module docstring);
    0 on one rank."""
    if ranks <= 1:
        return 0.0
    steps = math.ceil(math.log2(ranks))
    beta = 1.0 / bandwidth
    if n_bytes <= SHORT_MESSAGE_BYTES:
        return steps * (alpha + n_bytes * (beta + gamma))
    share = (ranks - 1) / ranks * n_bytes
    return 2 * steps * alpha + 2 * share * beta + share * gamma


def sweeps_per_walker(total: int, ranks: int, walkers: int) -> int:
    """Sweeps per walker when `total` samples are split over ranks x walkers chains
    (at least one: beyond total/walkers ranks the total grows)."""
    return max(1, math.ceil(total / (ranks * walkers)))


def weak_efficiency(t_sweeps: float, t_serial: float, t_allreduce: float) -> float:
    """E = T(1) / T(R) at fixed samples per rank: t_sweeps (this rank's sampling and
    O^T O, s), t_serial (what every rank repeats whole: decoding, SR solve, s)."""
    t1 = t_sweeps + t_serial
    return t1 / (t1 + t_allreduce)


def strong_efficiency(
    t_sweep: float, t_serial: float, t_allreduce: float, total: int, ranks: int, walkers: int
) -> float:
    """E = T(1) / (R T(R)) at a fixed total of samples per iteration. t_sweep: one sweep
    of one rank's walkers (s); the sampling divides over the ranks, t_serial does not
    (Amdahl), and the Allreduce is added."""
    t1 = t_sweep * sweeps_per_walker(total, 1, walkers) + t_serial
    t_r = t_sweep * sweeps_per_walker(total, ranks, walkers) + t_serial + t_allreduce
    return t1 / (ranks * t_r)
