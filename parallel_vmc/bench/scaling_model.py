"""The cost model of the per-iteration Allreduce at scale, and the parallel efficiency
it gives: the one home of these formulas (``pvmc bench --allreduce`` and ``pvmc bench
--scaling`` print from here, the table of docs/benchmarks.md comes from them). The model of a DMC
step at scale (its Allreduce, the transfers after the comb) is this docstring's end.

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

A DMC step (``dmc.walk.Diffusion.step``) costs the busiest of R ranks

    t(R) = t_fixed + n c + t_allreduce(8 (HEADER + R) bytes, R) + t_transfer(R)

with n its walkers (ceil(N / R) of a total N; for weak scaling a fixed n), c the
seconds per walker moved (its P single-particle moves, its reweighting, comb and
copies) and t_fixed what a step costs whatever n (Python, the kernel's call), both
from one rank timed at two populations (:func:`step_cost_fit`; t_fixed = 0 makes it
ns per move x P x n). The Allreduce buffer holds every rank's total weight, so it
grows with R.

Transfers (:func:`comb_traffic`, :func:`transfer_seconds`). The comb puts ceil(S_r -
u) teeth before rank r, S_r the weight of the ranks before it, so a rank's count after
the comb is its own total weight to within a walker: not a Poisson count of spread
sqrt(n). Every step starts from even counts, and ``balance.plan`` cuts the new
population T into even pieces again, the first T mod R ranks one walker more. The
walkers that cross boundary r are then B_r = C_r - r T / R (C_r the count before it)
plus that remainder: S_r - (r / R) S_R alone would be a Brownian bridge of scale
sigma_w sqrt(N) (sigma_w = std(w) / mean(w) of the weights after a step, about tau
std(E_L)), but the population is off a multiple of R by about sigma_w sqrt(N) or more
(E_T steers the weight, not the count) and the remainder on the first ranks unties
one end: B_r is about a random walk of R steps of variance n sigma_w^2, whose largest
|B_r| has the mean sqrt(pi / 2) sigma_w sqrt(N) (E sup |W| of a Brownian motion on [0,
1]). The busiest rank sends or receives at both its boundaries, twice that. On 2 ranks
the one boundary carries the bridge's E|B_1| = sqrt(2 / pi) sigma_w sqrt(N) / 2 and
the rounding of the teeth and of an odd T, under a walker. So the traffic grows as
sqrt(N), not with the walkers per rank, and stays small. Checked against a simulation
of the comb and ``balance.even_counts`` with independent weights (within 15 % from 2
to 1,000 ranks, tests/test_bench_dmc.py) and against the walkers measured crossing
between 2 ranks (``pvmc bench --dmc`` prints both). The time hardly depends on it:
the latency of the messages sets it.
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


WALK_MAX = math.sqrt(math.pi / 2)  # E sup |W| of a Brownian motion on [0, 1]


def dmc_allreduce_bytes(ranks: int, header: int) -> int:
    """Bytes of a DMC step's Allreduce: 8 (header + ranks), the header's sums and one
    weight slot per rank (``dmc.walk``)."""
    return 8 * (header + ranks)


def comb_traffic(total: float, spread: float, ranks: int) -> float:
    """Walkers the busiest rank sends plus receives per step after the comb (the
    module's docstring): 0 on one rank; sqrt(2 / pi) spread sqrt(total) / 2 on two
    (one boundary, without the rounding); 2 sqrt(pi / 2) spread sqrt(total) on more.
    total: N, the population; spread: sigma_w, the relative spread of the weights
    after a step."""
    if ranks <= 1:
        return 0.0
    if ranks == 2:
        return math.sqrt(2 / math.pi) * spread * math.sqrt(total) / 2
    return 2 * WALK_MAX * spread * math.sqrt(total)


def transfer_seconds(
    traffic: float,
    per_rank: float,
    row_bytes: float,
    ranks: int,
    alpha: float = HDR_LATENCY,
    bandwidth: float = HDR_BANDWIDTH,
) -> float:
    """Seconds of the busiest rank's transfers in a step: m alpha + traffic row_bytes /
    bandwidth, with m = k max(1, ceil(s / per_rank)) messages: s = traffic / k walkers
    cross each of its k sides (k = 1 on two ranks, else 2), one message a side (every
    step, an upper bound: the rounding of the teeth sends a walker most steps) unless
    s exceeds the walkers a rank holds, when they come from that many ranks.
    row_bytes: one walker, 8 (M + 5) (``dmc.walk.pack``)."""
    if ranks <= 1:
        return 0.0
    sides = 1 if ranks == 2 else 2
    messages = sides * max(1, math.ceil(traffic / sides / per_rank))
    return messages * alpha + traffic * row_bytes / bandwidth


def step_cost_fit(n_small: float, t_small: float, n_large: float, t_large: float):
    """(t_fixed, c) of t(n) = t_fixed + n c through a step's seconds at two populations
    per rank (one rank, no transfers); t_fixed is clipped at 0 (timing noise) and c
    is then t_large / n_large."""
    c = (t_large - t_small) / (n_large - n_small)
    fixed = t_small - n_small * c
    if fixed < 0.0 or c <= 0.0:
        return 0.0, t_large / n_large
    return fixed, c


def dmc_step_seconds(
    per_rank: float, c: float, fixed: float, t_allreduce: float, t_transfer: float
) -> float:
    """t(R) = t_fixed + n c + t_allreduce + t_transfer of the busiest rank holding n =
    per_rank walkers (module notes)."""
    return fixed + per_rank * c + t_allreduce + t_transfer


def dmc_strong_efficiency(
    total: int, ranks: int, c: float, fixed: float, t_allreduce: float, t_transfer: float
) -> float:
    """E = t(1) / (R t(R)) at a fixed total population N: t(1) = t_fixed + N c, the
    busiest of R ranks holds ceil(N / R)."""
    t1 = dmc_step_seconds(total, c, fixed, 0.0, 0.0)
    t_r = dmc_step_seconds(math.ceil(total / ranks), c, fixed, t_allreduce, t_transfer)
    return t1 / (ranks * t_r)


def dmc_weak_efficiency(
    per_rank: int, c: float, fixed: float, t_allreduce: float, t_transfer: float
) -> float:
    """E = t(1) / t(R) at a fixed population per rank n: t(1) = t_fixed + n c."""
    t1 = dmc_step_seconds(per_rank, c, fixed, 0.0, 0.0)
    return t1 / dmc_step_seconds(per_rank, c, fixed, t_allreduce, t_transfer)
