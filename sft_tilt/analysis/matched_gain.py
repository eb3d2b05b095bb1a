"""The general change at a matched domain gain: where a training curve first reaches a domain gain, and the general
change there.

A curve is the sequence of evaluation points ``k = 0, 1, ...`` of one run with domain gain ``G_k`` and general change
``D_k`` (the paper's letters: G the fall of the held-out domain loss, D the rise of the general loss). The matched
value at a target gain ``Δ*`` is read at the first upward crossing,

    k = the first index with G_k >= Δ*,
    D(Δ*) = D_0                                                   when k = 0 (the curve starts at or above Δ*),
    D(Δ*) = D_{k-1} + (Δ* - G_{k-1}) / (G_k - G_{k-1}) (D_k - D_{k-1})   otherwise (linear interpolation),

and is undefined when no point reaches ``Δ*``. A curve that falls back below ``Δ*`` later is still read at its first
crossing; a point whose gain is not a number (a diverged evaluation) never reaches a target, and a crossing whose
bracketing values are not all finite is undefined rather than a NaN or infinite value. One interpolation
serves the synthetic simulations (arrays ``G``, ``D`` per epoch: :func:`matched_general_change`) and the real-LM runs
(trajectories of ``(step, G, D)`` from the base model on: :func:`gain_crossing`, :func:`general_change_at_gain`,
:func:`from_base`); :func:`matched_general_change_arrays` reads many curves at once (the bootstrap's resampled
curves, :mod:`sft_tilt.analysis.crossed_bootstrap`) by the same rule.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Crossing", "first_crossing", "matched_general_change", "matched_general_change_arrays", "gain_crossing",
           "general_change_at_gain", "from_base", "matched_targets"]


class Crossing(NamedTuple):
    """Where a curve first reaches a target gain: the interpolated general change and the indices of the two points
    it lies between (``before == after == 0`` when the first point already reaches the target)."""

    general_change: float
    before: int
    after: int


def _curve(domain_gain, general_change) -> tuple[np.ndarray, np.ndarray]:
    g = np.asarray(domain_gain, dtype=float)
    d = np.asarray(general_change, dtype=float)
    if g.ndim != 1 or d.ndim != 1:
        raise ValueError(f"domain_gain, general_change: must be 1-D curves, got shapes {g.shape} and {d.shape}")
    if g.shape != d.shape:
        raise ValueError(f"general_change: must have one value per point of domain_gain ({g.size}), got {d.size}")
    return g, d


def _target(target_gain) -> float:
    t = float(target_gain)
    if not np.isfinite(t):
        raise ValueError(f"target_gain: must be a finite number, got {target_gain!r}")
    return t


def first_crossing(domain_gain, general_change, target_gain) -> Crossing | None:
    """The first point of the curve ``(domain_gain[k], general_change[k])`` whose gain reaches ``target_gain``, with
    the general change interpolated there (module docstring); None when no point reaches it (an empty curve
    included) or the values around the crossing are not finite."""
    g, d = _curve(domain_gain, general_change)
    t = _target(target_gain)
    reached = np.nonzero(g >= t)[0]  # a NaN gain compares False: never reached there
    if reached.size == 0:
        return None
    k = int(reached[0])
    if k == 0:
        return Crossing(float(d[0]), 0, 0) if np.isfinite(d[0]) else None
    if not np.all(np.isfinite([g[k - 1], g[k], d[k - 1], d[k]])):
        return None
    frac = (t - g[k - 1]) / (g[k] - g[k - 1])
    return Crossing(float(d[k - 1] + frac * (d[k] - d[k - 1])), k - 1, k)


def matched_general_change(domain_gain, general_change, target_gain) -> float:
    """The general change where the curve first reaches ``target_gain`` (:func:`first_crossing`); NaN when it never
    does, so a grid of curves gives an array with NaN where a run fell short."""
    hit = first_crossing(domain_gain, general_change, target_gain)
    return float("nan") if hit is None else hit.general_change


def matched_general_change_arrays(domain_gain, general_change, target_gain) -> np.ndarray:
    """:func:`matched_general_change` of many curves at once: ``domain_gain`` and ``general_change`` of shape
    ``(..., points)`` (the curves along the last axis), ``target_gain`` broadcastable to ``(...)``; the matched value
    per curve, NaN where the curve never reaches its target or the values around the crossing are not finite (the
    module docstring's rule, with the same arithmetic as :func:`first_crossing`). A NaN target is reached nowhere; a
    curve may end in NaN points (padding of a shorter curve), which never reach a target."""
    g = np.asarray(domain_gain, dtype=np.float64)
    d = np.asarray(general_change, dtype=np.float64)
    if g.shape != d.shape or g.ndim < 1:
        raise ValueError(f"domain_gain, general_change: must have the same shape (..., points), got {g.shape} and {d.shape}")
    t = np.broadcast_to(np.asarray(target_gain, dtype=np.float64), g.shape[:-1])
    if g.shape[-1] == 0:
        return np.full(g.shape[:-1], np.nan)
    with np.errstate(invalid="ignore"):
        reached = g >= t[..., None]  # NaN on either side compares False
    hit = reached.any(-1)
    k = np.argmax(reached, -1)[..., None]
    before = np.maximum(k - 1, 0)
    g0, g1 = np.take_along_axis(g, before, -1)[..., 0], np.take_along_axis(g, k, -1)[..., 0]
    d0, d1 = np.take_along_axis(d, before, -1)[..., 0], np.take_along_axis(d, k, -1)[..., 0]
    at_start = k[..., 0] == 0
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(at_start, d1, d0 + (t - g0) / (g1 - g0) * (d1 - d0))
    finite = np.where(at_start, np.isfinite(d1), np.isfinite(g0) & np.isfinite(g1) & np.isfinite(d0) & np.isfinite(d1))
    return np.where(hit & finite, value, np.nan)


def _trajectory(trajectory) -> tuple[list, np.ndarray, np.ndarray]:
    points = [tuple(p) for p in trajectory]
    if any(len(p) != 3 for p in points):
        raise ValueError("trajectory: must hold (step, domain_gain, general_change) points")
    steps = [p[0] for p in points]
    return steps, np.array([p[1] for p in points], dtype=float), np.array([p[2] for p in points], dtype=float)


def gain_crossing(trajectory, target_gain):
    """Where the trajectory ``(step, G, D)`` first reaches domain gain ``target_gain``: ``(D, step_before,
    step_after)``, the general change interpolated between the evaluation points at those steps
    (:func:`first_crossing`); None if it never does. ``step_before`` is the trajectory's first step (the base model)
    when the target lies at or below the first evaluation point's gain: the value is then a chord from the base
    model, as coarse as that first interval."""
    steps, g, d = _trajectory(trajectory)
    hit = first_crossing(g, d, target_gain)
    return None if hit is None else (hit.general_change, steps[hit.before], steps[hit.after])


def general_change_at_gain(trajectory, target_gain):
    """General change where the trajectory ``(step, G, D)`` first reaches domain gain ``target_gain`` (linear
    interpolation between evaluation points); None if it never does."""
    hit = gain_crossing(trajectory, target_gain)
    return None if hit is None else hit[0]


def from_base(trajectory, target_gain) -> bool:
    """Whether ``target_gain`` is first reached between the trajectory's first point (the base model) and the next,
    so its matched value is a chord from the base model (:func:`gain_crossing`)."""
    steps, g, d = _trajectory(trajectory)
    hit = first_crossing(g, d, target_gain)
    return hit is not None and hit.after == 1


def matched_targets(trajectories, fractions) -> list[float]:
    """The matched domain gains ``f * reach`` for each fraction ``f``, ``reach`` being the smallest over the
    trajectories ``(step, G, D)`` of their largest gain, so every trajectory reaches every target; empty when some
    trajectory never gains."""
    trajectories = [list(t) for t in trajectories]
    if not trajectories or not all(trajectories):
        raise ValueError("trajectories: need at least one trajectory, each with at least one point")
    reach = min(max(g for _, g, _ in traj) for traj in trajectories)
    return [f * reach for f in fractions] if reach > 0 else []
