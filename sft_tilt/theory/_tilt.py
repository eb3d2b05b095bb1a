"""One fine-tuning step as an exponential (log-space) tilt of a finite distribution.

For a model ``q`` on a finite outcome set (last axis), a real tilt direction ``s`` and a step
``lam >= 0``::

    q_lam(x) = q(x) exp(lam s(x)) / Z(lam),    Z(lam) = E_q[exp(lam s)],
    K_q(lam) = log Z(lam)                        (cumulant generating function of s under q)
    V(lam)   = K_q(lam) - lam E_q[s] = log E_q[exp(lam (s - E_q s))]    (tilt excess, V >= 0)

Numerics. Everything is computed from the centred direction ``d = s - E_q s`` over the support of
``q`` (outcomes with ``q = 0`` are ignored: they stay at probability zero for every ``lam``):

* while ``lam * max(d) <= 700`` (no overflow possible),
  ``V = log1p(sum_x q(x) phi(lam d(x)))`` with ``phi(x) = e^x - 1 - x >= 0`` evaluated by a
  series near 0; every term is non-negative, so ``V`` has full relative precision even for
  ``lam = 1e-12`` (where ``V ~ 1e-24``) and is never negative;
* beyond that, ``V = lam m + logsumexp(log q + lam (d - m))`` with ``m = max d`` (no overflow for
  any finite ``lam``).

``log q_lam`` is ``log q + lam d - V`` while ``lam max(d) <= 1`` and the log-softmax of
``log q + lam (d - max d)`` beyond, so it is exact to rounding in log space for tiny and huge ``lam``
alike, and keeps ``-inf`` entries at ``-inf`` (no NaN).
Inputs ``q`` are renormalised exactly (validation allows ``|sum q - 1| <= 1e-6``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import logsumexp
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._validate import (
    check_logits,
    check_outcome_shapes,
    check_probabilities,
    check_real,
    check_step,
)

__all__ = [
    "expm1mx",
    "expm1mx_over_square",
    "tilt",
    "log_tilt",
    "cumulant_generating_function",
    "tilt_excess",
    "centred_direction",
]

# Largest lam * max(d) for which exp(lam * d) is formed directly (exp(709.78) overflows float64).
_OVERFLOW_GUARD = 700.0
# Below this |x| the functions e^x - 1 - x and (e^x - 1 - x)/x^2 use their Taylor series.
_SERIES_RADIUS = 0.5
_SERIES_TERMS = 18  # x^k/k! for k = 2..19: truncation error < 0.5^18/20! ~ 1e-24 relative


def _series_over_square(x: jax.Array) -> jax.Array:
    """sum_{k>=2} x^(k-2)/k! by Horner (the Taylor series of (e^x - 1 - x)/x^2)."""
    acc = jnp.zeros_like(x)
    for k in range(_SERIES_TERMS + 1, 1, -1):
        acc = acc * x + 1.0 / _factorial(k)
    return acc


def _factorial(k: int) -> float:
    out = 1.0
    for i in range(2, k + 1):
        out *= i
    return out


@float64_computation
def expm1mx(x: ArrayLike) -> jax.Array:
    """``phi(x) = e^x - 1 - x`` (>= 0), accurate to rounding for all ``x`` (series for ``|x| < 1/2``).

    References: toolkit numerics of the tilt excess (the function phi of toolkit derivation
      `sft_tilt.theory.derivations.bennett`); Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    x = jnp.asarray(x)
    small = jnp.abs(x) < _SERIES_RADIUS
    xs = jnp.where(small, x, 0.0)
    xl = jnp.where(small, 1.0, x)
    return jnp.where(small, xs * xs * _series_over_square(xs), jnp.expm1(xl) - xl)


@float64_computation
def expm1mx_over_square(x: ArrayLike) -> jax.Array:
    """``h(x) = (e^x - 1 - x) / x^2`` with ``h(0) = 1/2``; increasing in ``x``; ``+inf`` once ``e^x`` overflows.

    References: toolkit derivation `sft_tilt.theory.derivations.bennett` (the increasing function h of Bennett's bound);
      Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    x = jnp.asarray(x)
    small = jnp.abs(x) < _SERIES_RADIUS
    xs = jnp.where(small, x, 0.0)
    xl = jnp.where(small, 1.0, x)
    return jnp.where(small, _series_over_square(xs), (jnp.expm1(xl) - xl) / (xl * xl))


def _safe_log(p: jax.Array) -> jax.Array:
    """log p with log 0 = -inf and no NaN gradient at 0."""
    pos = p > 0
    return jnp.where(pos, jnp.log(jnp.where(pos, p, 1.0)), -jnp.inf)


def _centre(log_q: jax.Array, s: jax.Array):
    """Normalised (log w, w, support mask, mean mu = E_w s, centred d = s - mu zeroed off the support)."""
    support = log_q > -jnp.inf
    log_w = log_q - logsumexp(log_q, axis=-1, keepdims=True)
    log_w = jnp.where(support, log_w, -jnp.inf)
    w = jnp.where(support, jnp.exp(jnp.where(support, log_w, 0.0)), 0.0)
    s_on = jnp.where(support, s, 0.0)
    mu = jnp.sum(w * s_on, axis=-1)
    d = jnp.where(support, s_on - mu[..., None], 0.0)
    return log_w, w, support, mu, d


def _excess(log_w, w, support, d, lam, *, exact_normaliser: bool = False):
    """V = log E_w exp(lam d) for centred d (see module docstring); lam has the batch shape.

    The series form drops the linear term ``lam E_w d``, which is 0 in exact arithmetic; the computed
    ``d = s - mu`` carries a rounding residual ``r = E_w d ~ 1e-16 |s|``. For ``V`` itself that keeps full
    relative precision (``tilt_excess``, ``K``). With ``exact_normaliser=True`` the residual is kept,
    ``V = log1p(E_w phi(lam d) + lam r)``, so that ``log w + lam d - V`` is normalised to rounding even at
    huge ``lam`` (``log_tilt``): there the normaliser must match the ``d`` actually used, not the ideal one.
    """
    m = jnp.max(jnp.where(support, d, -jnp.inf), axis=-1)  # >= 0 since E_w d = 0
    m = jnp.maximum(m, 0.0)
    small = lam * m <= _OVERFLOW_GUARD
    lam_small = jnp.where(small, lam, 0.0)
    series = jnp.sum(jnp.where(support, w * expm1mx(lam_small[..., None] * d), 0.0), axis=-1)
    if exact_normaliser:
        series = series + lam_small * jnp.sum(w * d, axis=-1)
    v_small = jnp.log1p(series)
    lam_large = jnp.where(small, 0.0, lam)
    shifted = jnp.where(support, log_w + lam_large[..., None] * (d - m[..., None]), -jnp.inf)
    v_large = lam_large * m + logsumexp(shifted, axis=-1)
    return jnp.where(small, v_small, v_large)


def _prepare(q, s, lam, *, log_space: bool = False):
    if log_space:
        log_q = check_logits("log_q", q)
    else:
        q = check_probabilities("q", q)
    s = check_real("s", s)
    lam = check_step("lam", lam)
    name = "log_q" if log_space else "q"
    if s.ndim == 0:
        raise ValueError("s: needs an outcome axis (last axis), got a scalar")
    batch = check_outcome_shapes({name: q if not log_space else log_q, "s": s}, {"lam": lam})
    n = s.shape[-1]
    if not log_space:
        log_q = _safe_log(q)
    dtype = jnp.result_type(log_q.dtype, s.dtype, lam.dtype)
    log_q = jnp.broadcast_to(log_q, batch + (n,)).astype(dtype)
    s = jnp.broadcast_to(s, batch + (n,)).astype(dtype)
    lam = jnp.broadcast_to(lam, batch).astype(dtype)
    return log_q, s, lam


@jax.jit
def _log_tilt_kernel(log_q, s, lam):
    """log q_lam. For lam max(d) <= 1: ``log w + lam d - V`` with the series V (the change ``lam d - V`` keeps
    full relative precision at tiny lam); beyond: the log-softmax ``a - logsumexp(a)``, ``a = log w + lam (d - m)``,
    which never forms large intermediates (``log w + lam d`` and ``V`` are both ~``lam m`` and would cancel)."""
    log_w, w, support, _, d = _centre(log_q, s)
    m = jnp.maximum(jnp.max(jnp.where(support, d, -jnp.inf), axis=-1), 0.0)
    small = lam * m <= 1.0
    lam_small = jnp.where(small, lam, 0.0)
    v = _excess(log_w, w, support, d, lam_small, exact_normaliser=True)
    out_small = log_w + lam_small[..., None] * d - v[..., None]
    lam_large = jnp.where(small, 0.0, lam)
    a = jnp.where(support, log_w + lam_large[..., None] * (d - m[..., None]), -jnp.inf)
    out_large = a - logsumexp(a, axis=-1, keepdims=True)
    return jnp.where(support, jnp.where(small[..., None], out_small, out_large), -jnp.inf)


@jax.jit
def _mean_and_excess(log_q, s, lam):
    """(E_q s, V(lam)) in one compiled kernel (eager calls then cost one dispatch)."""
    log_w, w, support, mu, d = _centre(log_q, s)
    return mu, _excess(log_w, w, support, d, lam)


@jax.jit
def _support_stats(log_q, s):
    """Moments of s under q and its range over the support: mu, var, kappa3, a = min, b = max, c = b - mu."""
    _, w, support, mu, d = _centre(log_q, s)
    a = jnp.min(jnp.where(support, s, jnp.inf), axis=-1)
    b = jnp.max(jnp.where(support, s, -jnp.inf), axis=-1)
    c = jnp.maximum(jnp.max(jnp.where(support, d, -jnp.inf), axis=-1), 0.0)
    return dict(mu=mu, var=jnp.sum(w * d * d, axis=-1), kappa3=jnp.sum(w * d * d * d, axis=-1), a=a, b=b, c=c)


@float64_computation
def centred_direction(q: ArrayLike, s: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Return ``(mu, d)``: ``mu = E_q[s]`` and ``d = s - mu`` on the support of ``q`` (0 elsewhere).

    References: Lin et al. (ICLR 2026), Sec. 3.3 (one SFT step as an exponential tilt).
    """
    log_q, s, _ = _prepare(q, s, 0.0)
    _, _, _, mu, d = _centre(log_q, s)
    return mu, d


@float64_computation
def log_tilt(log_q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Log-probabilities of the tilted model: ``log q_lam = log q + lam s - K_q(lam)``.

    Args:
      log_q: log-probabilities or unnormalised logits, outcomes on the last axis (``-inf`` = probability
        zero). A constant added to a row does not change the result (``q = softmax(log_q)``).
      s: tilt direction (finite reals), broadcastable to ``log_q``.
      lam: step size(s) ``>= 0``, broadcastable to the batch shape ``log_q.shape[:-1]``.
    Returns:
      ``log q_lam``, same shape as the broadcast of ``log_q`` and ``s``; ``-inf`` stays ``-inf``.

    References: Lin et al. (ICLR 2026), Sec. 3.3 (one SFT step as an exponential, log-space tilt).
    """
    return _log_tilt_kernel(*_prepare(log_q, s, lam, log_space=True))


@float64_computation
def tilt(q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Tilted distribution ``q_lam = q exp(lam s) / E_q[exp(lam s)]`` (see :func:`log_tilt`).

    References: Lin et al. (ICLR 2026), Sec. 3.3 (one SFT step as an exponential, log-space tilt).
    """
    log_out = _log_tilt_kernel(*_prepare(q, s, lam))
    finite = log_out > -jnp.inf
    return jnp.where(finite, jnp.exp(jnp.where(finite, log_out, 0.0)), 0.0)


@float64_computation
def cumulant_generating_function(q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """``K_q(lam) = log E_q[exp(lam s)] = lam E_q[s] + V(lam)`` (log-sum-exp over the support of ``q``).

    References: Lin et al. (ICLR 2026), Sec. 3.3 (the tilt's normaliser); toolkit derivation
      `sft_tilt.theory.derivations.single_step`.
    """
    log_q, s, lam = _prepare(q, s, lam)
    mu, v = _mean_and_excess(log_q, s, lam)
    return lam * mu + v


@float64_computation
def tilt_excess(q: ArrayLike, s: ArrayLike, lam: ArrayLike) -> jax.Array:
    """Tilt excess ``V(lam) = K_q(lam) - lam E_q[s] = log E_q[exp(lam (s - E_q s))]``.

    ``V >= 0`` (Jensen) and ``V <= lam^2 (b - a)^2 / 8`` (Hoeffding's lemma), where ``[a, b]`` is the
    range of ``s`` over the support of ``q``. Computed without cancellation (module docstring).

    References: toolkit derivations `sft_tilt.theory.derivations.jensen` (V >= 0) and `sft_tilt.theory.derivations.hoeffding`
      (upper bound); Lin et al. (ICLR 2026), Sec. 3.3 tilt model.
    """
    return _mean_and_excess(*_prepare(q, s, lam))[1]
