"""Exact code-length change of one tilt step, the trade-off identity and the small-step expansion.

For ``q_lam = q e^{lam s} / E_q[e^{lam s}]`` the pointwise log-ratio is ``log q(x) - log q_lam(x) =
K_q(lam) - lam s(x)``, so for any data ``P`` (Prop. 3.1 of Lin et al.,
ICLR 2026, applied to the tilt of their Sec. 3.3)

    dL(P) = E_P[-log q_lam] - E_P[-log q] = -lam E_P[s] + K_q(lam)
          = lam (E_q s - E_P s) + V(lam),        V(lam) = K_q(lam) - lam E_q s >= 0.

With general data ``P1`` and domain data ``P2``, degradation ``D = dL(P1)`` and gain ``G = -dL(P2)``,
``K_q`` cancels (toolkit derivation ``sft_tilt.theory.derivations.single_step``) and

    D + G = lam (E_P2[s] - E_P1[s])     exactly, for every lam.

Expanding ``K_q`` in its cumulants (``kappa_1 = E_q s``, ``kappa_2 = Var_q s``,
``kappa_3 = E_q[(s - E_q s)^3]``) gives (toolkit derivation
``sft_tilt.theory.derivations.expansion``)

    dL(P) = lam (E_q s - E_P s) + lam^2/2 kappa_2 + lam^3/6 kappa_3 + O(lam^4).

Expectations under ``P`` are taken over all outcomes (the pointwise log-ratio is finite even where
``q = 0``: such outcomes keep probability 0, and the identity form assigns them the finite limit).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._tilt import _mean_and_excess, _prepare, _support_stats
from sft_tilt.theory._validate import check_outcome_shapes, check_probabilities, check_real, check_step

__all__ = ["single_step_code_length_change", "tradeoff_sum", "cumulants", "tilt_expansion", "data_mean"]


@float64_computation
def data_mean(P: ArrayLike, s: ArrayLike) -> jax.Array:
    """``E_P[s] = sum_x P(x) s(x)`` (``P`` renormalised exactly).

    References: Lin et al. (ICLR 2026), Sec. 3.3 (first-order term of one tilt step).
    """
    return _mean_under("P", P, s)


def _mean_under(name: str, P, s) -> jax.Array:
    P = check_probabilities(name, P)
    s = check_real("s", s)
    check_outcome_shapes({name: P, "s": s})
    return jnp.sum(P * s, axis=-1) / jnp.sum(P, axis=-1)


@float64_computation
def single_step_code_length_change(P: ArrayLike, q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """``dL(P) = -lam E_P[s] + K_q(lam)``, evaluated as ``lam (E_q s - E_P s) + V(lam)`` (no cancellation).

    References: Lin et al. (ICLR 2026), Prop. 3.1 (Sec. 3.2) applied to the tilt of Sec. 3.3; toolkit derivation
      `sft_tilt.theory.derivations.single_step`.
    """
    e_p = data_mean(P, s)
    log_q, s_b, lam_b = _prepare(q, s, lam)
    check_outcome_shapes({"P": jnp.asarray(P), "q": log_q})
    mu, v = _mean_and_excess(log_q, s_b, lam_b)
    return lam_b * (mu - e_p) + v


@float64_computation
def tradeoff_sum(P1: ArrayLike, P2: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """``D + G = lam (E_P2[s] - E_P1[s])`` for one tilt step (independent of the model ``q``).

    References: toolkit derivation `sft_tilt.theory.derivations.single_step`; Lin et al. (ICLR 2026), Sec. 3.3 tilt
      model.
    """
    lam = check_step("lam", lam)
    e1 = _mean_under("P1", P1, s)
    e2 = _mean_under("P2", P2, s)
    check_outcome_shapes({"P1": jnp.asarray(P1), "P2": jnp.asarray(P2)}, {"lam": lam})
    return lam * (e2 - e1)


@float64_computation
def cumulants(q: ArrayLike, s: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
    """First three cumulants of ``s`` under ``q``: ``(E_q s, Var_q s, E_q[(s - E_q s)^3])``.

    References: toolkit derivation `sft_tilt.theory.derivations.expansion` (third-order expansion); Lin et al. (ICLR
      2026), Sec. 3.3 tilt model.
    """
    log_q, s_b, _ = _prepare(q, s, 0.0)
    st = _support_stats(log_q, s_b)
    return st["mu"], st["var"], st["kappa3"]


@float64_computation
def tilt_expansion(P: ArrayLike, q: ArrayLike, s: ArrayLike, lam: ArrayLike, order: int = 3) -> jax.Array:
    """Truncated series ``lam (E_q s - E_P s) [+ lam^2/2 Var_q s [+ lam^3/6 kappa_3]]`` of ``dL(P)``.

    ``order`` in {1, 2, 3} is the highest power of ``lam`` kept; the remainder is ``O(lam^(order+1))``.

    References: toolkit derivation `sft_tilt.theory.derivations.expansion` (third-order expansion); Lin et al. (ICLR
      2026), Sec. 3.3 tilt model.
    """
    if order not in (1, 2, 3):
        raise ValueError(f"order: must be 1, 2 or 3, got {order!r}")
    lam = check_step("lam", lam)
    e_p = data_mean(P, s)
    mu, var, k3 = cumulants(q, s)
    check_outcome_shapes({"P": jnp.asarray(P), "q": jnp.asarray(q), "s": jnp.asarray(s)}, {"lam": lam})
    out = lam * (mu - e_p)
    if order >= 2:
        out = out + lam**2 / 2.0 * var
    if order >= 3:
        out = out + lam**3 / 6.0 * k3
    return out
