"""Leakage form of the one-step trade-off (toolkit derivation `sft_tilt.theory.derivations.leakage`).

Write ``n = E_q s - E_P1 s`` (first-order general loss per unit step) and ``g = E_P2 s - E_q s``
(first-order domain gain per unit step). With ``V = K_q(lam) - lam E_q s`` (the tilt excess),

    D = dL(P1) = lam n + V,      G = -dL(P2) = lam g - V.

The **leakage** ``rho = n / g`` is the first-order general loss per unit of first-order domain gain.
Eliminating ``lam`` (``lam n = rho lam g = rho (G + V)``)::

    D = rho G + (1 + rho) V,     0 <= V <= lam^2 (b - a)^2 / 8,

(Jensen and Hoeffding, :mod:`sft_tilt.theory._bounds`), so given ``G``, ``rho``, ``lam`` and the range ``b - a`` of
``s`` on the support of ``q``, ``D`` lies between ``rho G + min(0, (1 + rho) V_max)`` and
``rho G + max(0, (1 + rho) V_max)`` with ``V_max = lam^2 (b - a)^2 / 8``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._single_step import _mean_under
from sft_tilt.theory._tilt import _prepare
from sft_tilt.theory._validate import check_outcome_shapes, check_real, check_step, is_concrete

__all__ = ["leakage", "degradation_given_gain_bounds"]  # the tilt excess V is sft_tilt.theory.tilt_excess


@float64_computation
def leakage(P1: ArrayLike, P2: ArrayLike, q: ArrayLike, s: ArrayLike) -> jax.Array:
    """``rho = (E_q s - E_P1 s) / (E_P2 s - E_q s)``.

    The three means are computed by one formula, so ``P1 = q`` gives a numerator of exactly 0 and
    ``P2 = q`` a denominator of exactly 0. When the denominator is 0 (no first-order domain gain) the
    ratio is ``+inf`` if the numerator is > 0 and ``-inf`` if < 0. ``0/0`` (``E_P1 s = E_P2 s = E_q s``)
    is undefined: ``ValueError`` naming ``P2`` when called eagerly; under ``jit``/``vmap``, where values
    cannot be checked, NaN (the only NaN it produces).

    References: toolkit derivation `sft_tilt.theory.derivations.leakage` (leakage form); Lin et al. (ICLR 2026), Sec. 3.3
      tilt model and the leakage constant of Theorem 3.1 (Sec. 3.4).
    """
    e1 = _mean_under("P1", P1, s)
    e2 = _mean_under("P2", P2, s)
    log_q, _, _ = _prepare(q, s, 0.0)  # validates q and s
    check_outcome_shapes({"P1": jnp.asarray(P1), "P2": jnp.asarray(P2), "q": log_q})
    # E_q s by the same formula as E_P1 s and E_P2 s, so that P1 = q (or P2 = q) gives exactly 0, not a rounding residual
    mu = _mean_under("q", q, s)
    num = mu - e1
    den = e2 - mu
    if is_concrete(num) and is_concrete(den) and bool(jnp.any((num == 0) & (den == 0))):
        raise ValueError(
            "P2: E_P2 s = E_q s (no first-order domain gain) and E_P1 s = E_q s in some row, so the leakage 0/0 is undefined"
        )
    safe = jnp.where(den == 0, 1.0, den)
    return jnp.where(den == 0, jnp.where(num == 0, jnp.nan, jnp.sign(num) * jnp.inf), num / safe)


@float64_computation
def degradation_given_gain_bounds(G: ArrayLike, rho: ArrayLike, lam: ArrayLike, s_range: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``(lower, upper)`` on ``D`` from ``D = rho G + (1 + rho) V``, ``0 <= V <= lam^2 s_range^2 / 8``.

    Args:
      G: observed one-step domain gain (any real).
      rho: leakage (finite real).
      lam: step size ``>= 0``.
      s_range: width ``b - a >= 0`` of ``s`` over the support of ``q``.

    References: toolkit derivation `sft_tilt.theory.derivations.leakage` (leakage form with the Jensen and Hoeffding
      bounds); Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    G = check_real("G", G)
    rho = check_real("rho", rho)
    lam = check_step("lam", lam)
    s_range = check_step("s_range", s_range)
    v_max = lam**2 * s_range**2 / 8.0
    extra = (1.0 + rho) * v_max
    base = rho * G
    return base + jnp.minimum(0.0, extra), base + jnp.maximum(0.0, extra)
