"""Means over seeds with their 95% Student-t intervals, and the side of a decision boundary an interval lies on:
the one interval convention of the project.

Every comparison of two methods or two learning rates pairs them by seed (same seed: same data order, world and
initialisation), so the seed-to-seed variation they share cancels. With n values d_1..d_n (per-seed results, or
paired differences of two settings run with the same seeds) the interval is

    mean(d) +- t_{(1 + c)/2, n-1} sd(d) / sqrt(n),        sd at ddof = 1,

at coverage ``c`` = :data:`CONFIDENCE`. With n = 2 the t quantile is 12.71: the interval is about 6.4 times wider than
mean +- 2 SE would say, and rarely excludes a boundary; with n = 1 there is no interval (infinite bounds), and a
comparison is inconclusive; with n = 0 there is no mean either. Results stored as summaries, whose seeds cannot be
paired, get the Welch interval (:func:`interval_from_summary`).

The run summaries of :mod:`sft_tilt.harness` and the decision rules of :mod:`sft_tilt.claims` both read it here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CONFIDENCE", "DDOF", "Interval", "sd", "paired_interval", "interval_from_summary", "side", "paired_p_value",
           "holm_adjusted"]

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


def interval_from_summary(mean_a, sd_a, n_a, mean_b, sd_b, n_b, confidence: float = CONFIDENCE) -> Interval:
    """Welch t interval of mean_a - mean_b from per-group mean, sd (ddof = 1) and count, for results stored as
    summaries where the seeds cannot be paired. n is the smaller group's size."""
    n = int(min(n_a, n_b))
    diff = float(mean_a - mean_b)
    if n < 2 or not (np.isfinite(sd_a) and np.isfinite(sd_b)):
        return Interval(diff, -np.inf, np.inf, n)
    va, vb = sd_a ** 2 / n_a, sd_b ** 2 / n_b
    se = float(np.sqrt(va + vb))
    if se == 0:
        return Interval(diff, diff, diff, n)
    dof = (va + vb) ** 2 / (va ** 2 / (n_a - 1) + vb ** 2 / (n_b - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return Interval(diff, diff - half, diff + half, n)


def side(interval: Interval, boundary: float = 0.0) -> str:
    """``"above"`` when the whole interval lies above ``boundary``, ``"below"`` when below, ``"crosses"`` when it
    contains it, has no width to decide with (n < 2) or no pairs."""
    if interval.n < 2 or not np.isfinite(interval.mean):
        return "crosses"
    if interval.lo > boundary:
        return "above"
    if interval.hi < boundary:
        return "below"
    return "crosses"


def paired_p_value(a, b=None, alternative: str = "two-sided") -> float:
    """One-sample t test p value of mean(a - b) against 0 over the finite pairs (``b`` None: of mean(a)); the
    alternative is ``"two-sided"``, ``"greater"`` (mean > 0) or ``"less"`` (mean < 0). NaN with fewer than two
    pairs; when every difference is the same number (no spread) 0 if that number lies on the alternative's side, 1
    otherwise."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative: must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    a = np.asarray(a, float).ravel()
    d = a if b is None else a - np.asarray(b, float).ravel()
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    if np.std(d, ddof=DDOF) == 0:
        on_side = {"two-sided": d[0] != 0, "greater": d[0] > 0, "less": d[0] < 0}[alternative]
        return 0.0 if on_side else 1.0
    return float(stats.ttest_1samp(d, 0.0, alternative=alternative).pvalue)


def holm_adjusted(p_values) -> np.ndarray:
    """Holm's step-down adjusted p values for a family of m tests: with p_(1) <= ... <= p_(m) sorted,

        p~_(i) = min(1, max_{j <= i} (m - j + 1) p_(j)),

    so rejecting where ``p~ < 1 - CONFIDENCE`` keeps the chance of any false rejection in the family below
    ``1 - CONFIDENCE``. NaN p values (tests without two pairs) are not counted in m and stay NaN."""
    p = np.asarray(p_values, float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out
