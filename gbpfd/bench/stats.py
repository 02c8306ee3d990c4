"""Summaries of latency samples, shared by the cases and the plots."""
from __future__ import annotations

import numpy as np

#: quantile levels a CDF is kept at in a record: dense at the tail, where p99 lives
CDF_LEVELS = tuple(np.round(np.concatenate([np.linspace(0, 0.9, 91), np.linspace(0.901, 1.0, 100)]), 4))


def percentile(samples, q: float) -> float | None:
    """The ``q``-th percentile, or None for no samples (a figure that was not measured)."""
    return float(np.percentile(np.asarray(samples, np.float64), q)) if len(samples) else None


def quantiles(samples) -> list[float]:
    """``samples`` at ``CDF_LEVELS``: enough to draw the CDF without keeping every sample."""
    if not len(samples):
        return []
    return [round(float(v), 3) for v in np.quantile(np.asarray(samples, np.float64), CDF_LEVELS)]
