"""Collapse: a run whose model predicts every token uniformly, reported as such rather than as a point.

A diverged run has non-finite numbers and stops. A collapsed run stays finite: a learning rate far too large can
throw the parameters to where every logit is equal (a normalisation weight driven to zero, say), and the model
then gives every token probability ``1 / V``. Its losses are finite and its domain gain and general change are
numbers like any others, but they measure a destroyed model, not a trade-off.

Definition. With ``V`` the model's vocabulary size, the uniform output has loss ``log V`` on every token. A run
*collapsed at evaluation step k* when, at that point, the mean per-token loss of the held-out domain set and of
every general set all lie within :data:`COLLAPSE_TOLERANCE` of it:

    |L_S(theta_k) - log V| <= COLLAPSE_TOLERANCE   for S = the held-out domain set and every general set,

and its ``collapsed_step`` is the first such ``k`` (None: it never did). A uniform output meets this up to float32
round-off of ``log V`` (about ``1e-6``) on every set at once; a model that still predicts anything lies further from
``log V`` than the tolerance on some set. (A randomly initialised model is near ``log V`` too, but not within the
tolerance on every set: it is not uniform.)

``V`` is read from the result's chance levels (the chance top-1 rate is ``1 / V``), so the flag is computed from a
result's stored points: results written before the flag existed are read with it too. A run writes
``collapsed`` / ``collapsed_step`` into its ``result.json`` for a reader of the file; the harness's own readers
(:func:`collapsed_step`) recompute them from the points.
"""

from __future__ import annotations

import math

__all__ = ["COLLAPSE_TOLERANCE", "uniform_loss", "is_collapsed_point", "collapsed_step"]

#: nats/token: how close to ``log V`` every set's mean loss must be for a point to count as the uniform output.
COLLAPSE_TOLERANCE = 1e-3


def uniform_loss(result: dict) -> float | None:
    """``log V``, the per-token loss of the uniform output, from the result's chance top-1 rate ``1 / V``; None when
    the result holds no chance levels."""
    top1 = (result.get("chance") or {}).get("top1")
    if not isinstance(top1, (int, float)) or isinstance(top1, bool) or not 0 < top1 < 1:
        return None
    return -math.log(top1)


def is_collapsed_point(point: dict, log_v: float, tolerance: float = COLLAPSE_TOLERANCE) -> bool:
    """Whether an evaluation point's held-out domain loss and every general set's loss lie within ``tolerance`` of
    ``log_v`` (a diverged point, without losses, is not collapsed: it is diverged)."""
    losses = [point.get("domain_loss"), *(point.get("general") or {}).values()]
    if point.get("diverged") or len(losses) < 2:
        return False
    return all(isinstance(x, (int, float)) and abs(x - log_v) <= tolerance for x in losses)


def collapsed_step(result: dict, tolerance: float = COLLAPSE_TOLERANCE) -> int | None:
    """The first evaluation step at which the run's model gives the uniform output (module docstring), else None."""
    log_v = uniform_loss(result)
    if log_v is None:
        return None
    return next((p["step"] for p in result.get("points", []) if is_collapsed_point(p, log_v, tolerance)), None)
