"""Offline statistics of parallel_vmc run files.

Blocking (automated, Jonsson 2018), integrated autocorrelation time (Sokal's window),
block bootstrap, many-chain summaries with split R-hat, and ``python -m analysis``.
Runtime dependencies: numpy, h5py, pyyaml (matplotlib only for plots).
"""

from parallel_vmc.stats.autocorr import AutocorrResult, autocorrelation, integrated_time
from parallel_vmc.stats.blocking import BlockingResult, blocking
from parallel_vmc.stats.bootstrap import (
    BootstrapResult,
    block_bootstrap,
    bootstrap_mean,
    bootstrap_ratio,
    bootstrap_variance,
)
from parallel_vmc.stats.chains import (
    ChainCheck,
    ChainSummary,
    check_chains,
    split_rhat,
    summarize_chains,
)

__all__ = [
    "AutocorrResult",
    "BlockingResult",
    "BootstrapResult",
    "ChainCheck",
    "ChainSummary",
    "autocorrelation",
    "blocking",
    "block_bootstrap",
    "bootstrap_mean",
    "bootstrap_ratio",
    "bootstrap_variance",
    "check_chains",
    "integrated_time",
    "split_rhat",
    "summarize_chains",
]
