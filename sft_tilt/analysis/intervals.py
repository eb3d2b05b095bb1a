"""Means over seeds with their 95% Student-t intervals: the one interval convention of the project.

With n values d_1..d_n (per-seed results, or paired differences of two settings run with the same seeds) the
interval is

    mean(d) +- t_{(1 + c)/2, n-1} sd(d) / sqrt(n),        sd at ddof = 1,

at coverage ``c`` = :data:`CONFIDENCE`. With n = 2 the t quantile is 12.71: the interval is about 6.4 times wider than
mean +- 2 SE would say; with n = 1 there is no interval (infinite bounds); with n = 0 no mean either.

It lives in ``sims`` because both the run summaries of :mod:`sft_tilt.harness` and the decision rules of ``claims``
need it, and data flows from ``sims`` to ``claims``, never back; ``sft_tilt.claims.intervals`` re-exports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CONFIDENCE", "DDOF", "Interval", "sd", "paired_interval"]

CONFIDENCE = 0.95  # the interval's coverage; a verdict is inconclusive when this interval crosses the boundary
DDOF = 1  # sample standard deviations everywhere (unbiased variance over seeds)


@dataclass(frozen=True)
class Interval:
    """Mean of n values (or paired differences) with its two-sided ``CONFIDENCE`` t interval ``[lo, hi]``."""

    mean: float
    lo: float
    hi: float
    n: int

    def text(self, fmt: str = "+.4f") -> str:
        if self.n == 0:
            return "no pairs"
        if not np.isfinite(self.lo):
            return f"{self.mean:{fmt}} (n = {self.n}, no interval)"
        return f"{self.mean:{fmt}} [{self.lo:{fmt}}, {self.hi:{fmt}}] (n = {self.n})"


def sd(x, axis=None) -> np.ndarray:
    """Sample standard deviation (ddof = DDOF); NaN with fewer than two values."""
    x = np.asarray(x, float)
    n = x.size if axis is None else x.shape[axis]
    if n < 2:
        return np.full(np.shape(np.mean(x, axis=axis)), np.nan) if axis is not None else np.float64(np.nan)
    return np.std(x, axis=axis, ddof=DDOF)


def paired_interval(a, b=None, confidence: float = CONFIDENCE) -> Interval:
    """Interval of mean(a - b) over paired values (``b`` None: of mean(a)). Pairs where either value is None or not
    finite are dropped (a seed that never reached a matched gain has no value)."""
    a = np.asarray(a, float).ravel()  # None reads as NaN
    d = a if b is None else a - np.asarray(b, float).ravel()
    d = d[np.isfinite(d)]
    n = int(d.size)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(d.mean())
    if n == 1:
        return Interval(mean, -np.inf, np.inf, 1)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * np.std(d, ddof=DDOF) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)
