"""`python -m parallel_vmc` is the same as the `pvmc` command."""

import sys

from .cli.main import entry

sys.exit(entry())
