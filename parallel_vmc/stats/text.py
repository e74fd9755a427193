"""How an estimate is written for a reader. A mean that is not a finite number (a
divergent expectation value, or a failed one) has no error bar: ``inf +- 0.13`` would
claim a precision that does not exist, so such a mean is written alone."""

from __future__ import annotations

import math


def estimate(mean, error, digits: int = 6) -> str:
    """'mean +- error' with digits decimals; the mean alone when it is not finite
    (``inf``, ``nan``) or when the error is missing or not finite; '-' without a
    mean."""
    if mean is None:
        return "-"
    if not math.isfinite(mean):
        return str(float(mean))  # inf, -inf, nan
    if error is None or not math.isfinite(error):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} +- {error:.{digits}f}"
