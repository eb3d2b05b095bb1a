"""Two-sided bounds on the code-length change of one tilt step (toolkit derivations `sft_tilt.theory.derivations.jensen`,
`sft_tilt.theory.derivations.hoeffding`, `sft_tilt.theory.derivations.bennett`; the tilt model of Lin et al., ICLR 2026, Sec. 3.3).

Exact form (see :mod:`sft_tilt.theory._single_step`): ``dL(P) = lam (E_q s - E_P s) + V(lam)`` with
``V(lam) = log E_q[exp(lam X)]``, ``X = s - E_q s`` (under ``q``), ``lam >= 0``. Each bound below bounds
``V`` and adds the first-order term. Throughout, ``a = min s``, ``b = max s`` over the **support** of ``q``,
``mu = E_q s``, ``sigma^2 = Var_q s``, ``c = b - mu`` (the largest value of ``X``).

Jensen (lower), any ``lam`` (even negative):
    ``V >= 0`` since ``log E e^{lam X} >= E[lam X] = 0`` (log convex/Jensen on exp). Hence
    ``dL(P) >= lam (E_q s - E_P s)``. Tight to ``O(lam^2)``; equality iff ``s`` is ``q``-a.s. constant.

Hoeffding (upper), ``lam >= 0`` (any ``lam`` in fact), ``a <= s <= b`` on the support:
    Hoeffding's lemma: ``V <= lam^2 (b - a)^2 / 8``. Proof: ``psi(t) = log E e^{tX}`` has ``psi(0) = psi'(0) = 0``
    and ``psi''(t) = Var_{q_t}(s) <= (b - a)^2 / 4`` (a variance of a variable in ``[a, b]``); integrate twice.
    Tight as ``lam -> 0`` for the symmetric two-point law on ``{a, b}`` (``V = log cosh(lam (b-a)/2)``).

Bennett (upper, variance-sensitive), ``lam >= 0``, ``X <= c`` on the support:
    ``V <= (sigma^2 / c^2) (e^{lam c} - 1 - lam c) = sigma^2 lam^2 h(lam c)``, ``h(x) = (e^x - 1 - x)/x^2``.
    Proof: ``h`` is increasing on R, so for ``lam >= 0`` and ``X <= c``,
    ``e^{lam X} = 1 + lam X + lam^2 X^2 h(lam X) <= 1 + lam X + lam^2 X^2 h(lam c)``; take ``E_q`` (``E X = 0``,
    ``E X^2 = sigma^2``) and use ``log(1 + u) <= u``. Evaluated as ``sigma^2 lam^2 h(lam c)`` with a series for
    ``h`` near 0, so ``c -> 0`` (then ``sigma -> 0`` too) is stable; ``+inf`` once ``e^{lam c}`` overflows
    (``lam c > ~709``). Beats Hoeffding when ``sigma^2`` is small compared with ``(b-a)^2/4`` and ``lam c`` is
    moderate; as ``lam -> 0`` it is ``lam^2 sigma^2/2 + O(lam^3)``, which matches ``V`` to second order.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._single_step import data_mean
from sft_tilt.theory._tilt import _prepare, _support_stats, expm1mx_over_square
from sft_tilt.theory._validate import check_outcome_shapes, check_real, is_concrete

__all__ = ["support_range", "jensen_lower_bound", "hoeffding_upper_bound", "bennett_upper_bound"]


def _first_order(P, q, s, lam):
    """(lam (E_q s - E_P s), support statistics of s under q, broadcast lam)."""
    e_p = data_mean(P, s)
    log_q, s_b, lam_b = _prepare(q, s, lam)
    check_outcome_shapes({"P": jnp.asarray(P), "q": log_q})
    st = _support_stats(log_q, s_b)
    return lam_b * (st["mu"] - e_p), st, lam_b


@float64_computation
def support_range(q: ArrayLike, s: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``(a, b) = (min s, max s)`` over the support ``{x : q(x) > 0}``.

    References: toolkit derivation `sft_tilt.theory.derivations.hoeffding` (the range b - a); Lin et al. (ICLR 2026),
      Sec. 3.3 tilt model.
    """
    log_q, s_b, _ = _prepare(q, s, 0.0)
    st = _support_stats(log_q, s_b)
    return st["a"], st["b"]


@float64_computation
def jensen_lower_bound(P: ArrayLike, q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """``dL(P) >= lam (E_q s - E_P s)`` (module docstring).

    References: toolkit derivation `sft_tilt.theory.derivations.jensen`; Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    first, *_ = _first_order(P, q, s, lam)
    return first


@float64_computation
def hoeffding_upper_bound(P: ArrayLike, q: ArrayLike, s: ArrayLike, lam: ArrayLike, s_range: ArrayLike | None = None) -> jax.Array:
    """``dL(P) <= lam (E_q s - E_P s) + lam^2 (b - a)^2 / 8``.

    ``s_range`` is the width ``b - a``: by default the range of ``s`` over the support of ``q``; a given
    width must be at least that (checked eagerly; a smaller one would not be a valid bound).

    References: toolkit derivation `sft_tilt.theory.derivations.hoeffding`; Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    first, st, lam_b = _first_order(P, q, s, lam)
    a, b = st["a"], st["b"]
    if s_range is None:
        width = b - a
    else:
        width = check_real("s_range", s_range)
        if is_concrete(width) and is_concrete(a) and bool(jnp.any(width < (b - a) * (1 - 1e-12))):
            raise ValueError("s_range: is smaller than the range of s over the support of q, so the bound would be invalid")
    return first + lam_b**2 * width**2 / 8.0


@float64_computation
def bennett_upper_bound(P: ArrayLike, q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """``dL(P) <= lam (E_q s - E_P s) + sigma^2 lam^2 h(lam c)``, ``h(x) = (e^x - 1 - x)/x^2`` (module docstring).

    References: toolkit derivation `sft_tilt.theory.derivations.bennett`; Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    first, st, lam_b = _first_order(P, q, s, lam)
    return first + st["var"] * lam_b**2 * expm1mx_over_square(lam_b * st["c"])
