"""`python -m parallel_vmc` is the same as the `pvmc` command."""
import sys

from .cli import main

sys.exit(main())
