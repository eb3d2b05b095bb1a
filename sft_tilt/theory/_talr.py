"""Token-Adaptive Loss Reweighting (TALR): Lin et al., ICLR 2026, Secs. 4.1-4.3.

Per-token losses ``l_i = -log p_i`` (last axis) are reweighted by the solution of the entropy-
regularised problem on the simplex

    min_{w in simplex}  sum_i w_i l_i + tau sum_i w_i log w_i,     tau > 0.

KKT (stationarity ``l_i + tau (1 + log w_i) + nu = 0``) gives the closed form

    w_i = exp(-l_i / tau) / sum_j exp(-l_j / tau) = softmax(-l / tau)_i  ∝  p_i^(1/tau),

and the optimal value ``-tau log sum_j exp(-l_j / tau)``. Limits: ``tau -> inf`` gives uniform weights
(plain SFT) and ``tau -> 0`` puts all the weight on the smallest loss (split equally among ties).
A token with loss ``l_min + k tau`` has weight ``e^{-k}`` relative to the easiest token.

Conventions
-----------
* ``tau = +inf`` is allowed and returns exactly uniform weights over the (masked) tokens, including
  tokens with infinite loss; ``tau <= 0`` or NaN is a ``ValueError`` (eagerly).
* Losses may be ``+inf`` (zero-probability tokens): weight 0 for finite ``tau``.
* ``mask`` (optional, boolean, broadcastable to ``losses``): tokens with ``mask = False`` (padding)
  get weight exactly 0 and do not enter the normaliser.
* ``floor`` (optional, ``>= 0``): ``w <- max(w, floor)`` on the masked tokens, then renormalised to the
  simplex. After renormalisation the smallest weight is ``floor / sum_j max(w_j, floor)``, which lies in
  ``[floor / (1 + n floor), floor]`` for ``n`` tokens: the floor guarantees every token a minimum share
  and is reached exactly only if no renormalisation is needed.
* Computed as ``softmax(-(l - l_min)/tau)`` so tiny ``tau`` (1e-300) never overflows; the easiest tokens have
  logit exactly 0 for every ``tau``, so a subnormal ``tau`` (1e-320, which XLA flushes to 0) gives the
  ``tau -> 0`` limit (equal split over the minimum-loss tokens), never NaN.
* Precision: these are training-time weights, evaluated in the dtype of ``losses`` (float32 inside a float32
  training step); they are not float64 formulas (:mod:`sft_tilt.theory._precision`).
* :func:`talr_weights_unnormalised` is the variant of the public DiSC re-implementation:
  ``max(p^(1/tau), floor)`` with no normalisation; without floor it equals ``talr_weights`` times the
  per-row constant ``sum_j exp(-l_j/tau)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from sft_tilt.theory._validate import check_outcome_shapes, check_real, check_temperature, is_concrete

__all__ = [
    "talr_weights",
    "talr_weights_unnormalised",
    "talr_objective_value",
    "talr_loss",
]


def _prepare(losses, tau, mask):
    losses = check_real("losses", losses, allow_posinf=True)
    if losses.ndim == 0:
        raise ValueError("losses: needs a token axis (last axis), got a scalar")
    if losses.shape[-1] == 0:
        raise ValueError("losses: the token axis is empty (no token to weight)")
    tau = check_temperature("tau", tau)
    vectors = {"losses": losses}
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.dtype != jnp.bool_:
            raise ValueError(f"mask: must be boolean, got dtype {mask.dtype}")
        if mask.ndim == 0:
            mask = jnp.broadcast_to(mask, losses.shape)
        vectors["mask"] = mask
    batch = check_outcome_shapes(vectors, {"tau": tau})
    if mask is None:
        mask = jnp.ones(batch + losses.shape[-1:], dtype=bool)
    n = losses.shape[-1]
    losses = jnp.broadcast_to(losses, batch + (n,))
    mask = jnp.broadcast_to(mask, batch + (n,))
    tau = jnp.broadcast_to(tau, batch).astype(losses.dtype)
    if is_concrete(mask) and not bool(np.asarray(mask).any(axis=-1).all()):
        raise ValueError("mask: some row has no token selected")
    return losses, tau, mask


def _shifted_logits(losses, tau, mask):
    """``-(l - l_min)/tau`` on the mask (-inf off it); 0 on the mask when ``tau = inf``."""
    l_min = jnp.min(jnp.where(mask, losses, jnp.inf), axis=-1, keepdims=True)
    inf_tau = jnp.isinf(tau)[..., None]
    finite_min = jnp.isfinite(l_min)
    gap = jnp.where(mask & finite_min, losses - jnp.where(finite_min, l_min, 0.0), jnp.inf)
    tau_safe = jnp.where(jnp.isinf(tau), 1.0, tau)[..., None]
    # gap = 0 (the easiest tokens) has z = 0 for every tau > 0. Spelled out because XLA flushes a subnormal tau
    # (1e-320) to 0, where 0/tau would be NaN; gap > 0 then gives -inf, the tau -> 0 limit.
    z = jnp.where(inf_tau | (gap == 0), 0.0, -gap / tau_safe)
    return jnp.where(mask, z, -jnp.inf), l_min[..., 0]


def _check_some_finite(losses, tau, mask):
    if is_concrete(losses) and is_concrete(tau):
        ok = np.isfinite(np.where(np.asarray(mask), np.asarray(losses), np.inf)).any(axis=-1) | np.isinf(np.asarray(tau))
        if not ok.all():
            raise ValueError("losses: every selected loss of some row is +inf (no token has positive probability)")


def talr_weights(losses: ArrayLike, tau: ArrayLike, floor: ArrayLike | None = None, mask: ArrayLike | None = None) -> jax.Array:
    """``w = softmax(-losses / tau)`` over the last axis (``w_i ∝ p_i^(1/tau)``), optionally floored.

    Args:
      losses: per-token losses ``-log p`` (reals, ``+inf`` allowed), tokens on the last axis.
      tau: temperature ``> 0`` or ``+inf``, scalar or broadcastable to ``losses.shape[:-1]``.
      floor: ``None`` or a minimum weight ``>= 0`` applied before renormalisation (module docstring).
      mask: optional boolean array, ``False`` = padding (weight 0).
    Returns:
      weights on the simplex over the last axis (exactly 0 off the mask).

    References: Lin et al. (ICLR 2026), Sec. 4.1 (TALR problem and closed form softmax(-l/tau)) and Sec. 4.3
      (weight floor); toolkit derivation `sft_tilt.theory.derivations.talr`.
    """
    losses, tau, mask = _prepare(losses, tau, mask)
    _check_some_finite(losses, tau, mask)
    z, _ = _shifted_logits(losses, tau, mask)
    e = jnp.where(mask, jnp.exp(z), 0.0)  # the easiest token has z = 0, so the sum is >= 1
    w = e / jnp.sum(e, axis=-1, keepdims=True)
    if floor is not None:
        floor = check_real("floor", floor)
        if is_concrete(floor) and bool(np.any(np.asarray(floor) < 0)):
            raise ValueError(f"floor: must be >= 0, got {np.asarray(floor).min():.3g}")
        floor = jnp.asarray(floor)[..., None] if jnp.ndim(floor) else floor
        w = jnp.where(mask, jnp.maximum(w, floor), 0.0)
        w = w / jnp.sum(w, axis=-1, keepdims=True)
    return w


def talr_weights_unnormalised(
    losses: ArrayLike, tau: ArrayLike, floor: ArrayLike | None = None, mask: ArrayLike | None = None
) -> jax.Array:
    """DiSC-style weights ``max(exp(-losses / tau), floor)`` (= ``p^(1/tau)`` floored), not normalised.

    ``tau = inf`` gives 1 for every masked token; masked-out tokens get 0.

    References: Lin et al. (ICLR 2026), Sec. 4.1 (weights p^(1/tau)) and Sec. 4.3 (weight floor), in the
      unnormalised form of the DiSC re-implementation; toolkit derivation `sft_tilt.theory.derivations.talr`.
    """
    losses, tau, mask = _prepare(losses, tau, mask)
    tau_safe = jnp.where(jnp.isinf(tau), 1.0, tau)[..., None]
    # loss 0 (p = 1) has weight 1 for every tau > 0, also when XLA flushes a subnormal tau to 0 (0/0 would be NaN)
    w = jnp.where(jnp.isinf(tau)[..., None] | (losses == 0), 1.0, jnp.exp(-losses / tau_safe))
    if floor is not None:
        floor = check_real("floor", floor)
        if is_concrete(floor) and bool(np.any(np.asarray(floor) < 0)):
            raise ValueError(f"floor: must be >= 0, got {np.asarray(floor).min():.3g}")
        floor = jnp.asarray(floor)[..., None] if jnp.ndim(floor) else floor
        w = jnp.maximum(w, floor)
    return jnp.where(mask, w, 0.0)


def talr_objective_value(losses: ArrayLike, tau: ArrayLike, mask: ArrayLike | None = None) -> jax.Array:
    """Optimal value ``-tau log sum_i exp(-l_i / tau)`` of the entropy-regularised problem.

    Evaluated as ``l_min - tau log sum_i exp(-(l_i - l_min)/tau)`` (stable for tiny ``tau``; tends to
    ``l_min``). For ``tau = +inf`` the value is ``-inf`` (it behaves like ``mean(l) - tau log n``), returned as such.

    References: Lin et al. (ICLR 2026), Sec. 4.1 (TALR optimisation problem); toolkit derivation
      `sft_tilt.theory.derivations.talr`.
    """
    losses, tau, mask = _prepare(losses, tau, mask)
    _check_some_finite(losses, tau, mask)
    z, l_min = _shifted_logits(losses, tau, mask)
    tau_safe = jnp.where(jnp.isinf(tau), 1.0, tau)
    lse = jnp.log(jnp.sum(jnp.where(mask, jnp.exp(z), 0.0), axis=-1))
    return jnp.where(jnp.isinf(tau), -jnp.inf, l_min - tau_safe * lse)


def talr_loss(losses: ArrayLike, tau: ArrayLike, floor: ArrayLike | None = None, mask: ArrayLike | None = None) -> jax.Array:
    """TALR training loss ``sum_i stopgrad(w_i) l_i`` with ``w = talr_weights(losses, tau, floor, mask)``.

    Its gradient is ``sum_i w_i grad l_i`` (weights are constants for differentiation). Tokens with
    weight 0 contribute 0 even if their loss is ``+inf``. Reduces over the last axis.

    References: Lin et al. (ICLR 2026), Sec. 4.3 (stop-gradient and weight floor), with tau fixed or chosen per
      batch as in Sec. 4.2 (dynamic tau); toolkit derivation `sft_tilt.theory.derivations.talr`.
    """
    w = jax.lax.stop_gradient(talr_weights(jax.lax.stop_gradient(losses), tau, floor=floor, mask=mask))
    losses = jnp.asarray(losses)
    return jnp.sum(jnp.where(w > 0, w * jnp.where(w > 0, losses, 0.0), 0.0), axis=-1)
