"""The benchmark's input error, apart so that every bench module can raise it without
importing another's (the options' checks use the C references', which raise it)."""

from __future__ import annotations


class BenchInputError(Exception):
    """Bad bench input (options, the C reference); exit code 2 with this message.
    one_rank: found by one rank after the ranks parted (the others must be stopped)."""

    one_rank = False
