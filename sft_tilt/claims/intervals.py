"""Paired comparisons over seeds: the mean difference and its 95% Student-t interval, and the side of a
decision boundary the interval lies on.

Every comparison of two methods or two learning rates pairs them by seed (same seed: same world, features and
minibatches), so the seed-to-seed variation they share cancels. With n paired differences d_1..d_n the interval
is mean(d) +- t_{0.975, n-1} sd(d) / sqrt(n), sd with ddof = 1 (the one convention in :mod:`claims`). With n = 2
the t quantile is 12.71: the interval is about 6.4 times wider than mean +- 2 SE would say, and rarely excludes a
boundary; with n = 1 there is no interval (infinite), and the comparison is inconclusive.

The interval itself (:class:`Interval`, :func:`paired_interval`, :func:`sd`) is defined in :mod:`sft_tilt.analysis.intervals`,
where the run summaries of ``sft_tilt.harness`` use it too; this module re-exports it and adds the Welch interval of
stored summaries and the side of a boundary an interval lies on.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from sft_tilt.analysis.intervals import CONFIDENCE, DDOF, Interval, paired_interval, sd

__all__ = ["CONFIDENCE", "DDOF", "Interval", "sd", "paired_interval", "interval_from_summary", "side"]


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
