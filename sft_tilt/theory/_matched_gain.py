"""Multi-step matched-gain bound (the shape of the paper's Theorem 3.1), every constant measurable.

Setting. A model is fine-tuned by steps of size ``lam > 0``; every step changes the logits of every
context ``h`` by ``lam * s_t(h)`` (for any logit model this *is* an exact exponential tilt,
``q_{t+1}(.|h) = q_t(.|h) exp(lam s_t(h)) / Z``, with ``s_t(h) = (z_{t+1}(h) - z_t(h)) / lam``).
General data ``P1`` and domain data ``P2`` are mixtures over contexts (weights ``w_h``) of conditional
next-token distributions. Per step ``t`` (all sums weighted by ``w_h``):

* first-order domain gain rate     ``g_t   = sum_h w_h (E_{P2|h} s_t - E_{q_t|h} s_t)``
* first-order general loss rate    ``l_t   = sum_h w_h (E_{q_t|h} s_t - E_{P1|h} s_t)``, leakage ``rho_t = l_t / g_t``
* second-order remainders          ``V1_t, V2_t = sum_h w_h KL(q_t(.|h) || q_{t+1}(.|h))`` over general / domain contexts
* exact per-step changes           ``D_t = lam l_t + V1_t`` (general degradation), ``G_t = lam g_t - V2_t`` (domain gain)

and, by Hoeffding's lemma per context, ``0 <= V_t <= lam^2 c_t`` with ``c_t = sum_h w_h range(s_t(h))^2 / 8``.

Theorem (constant gain rate). Let ``c2 = s_range^2 / 8`` bound ``c_t`` on the domain side, ``c1`` on the
general side, and assume along the trajectory, up to the step ``T`` at which the cumulative domain gain
``Gamma_T = sum_{t<T} G_t`` first reaches ``Delta* > 0``:

    rho_t <= rho_max,   g_min <= g_t <= g_max,   g_min > lam c2.

Then every ``G_t >= lam (g_min - lam c2) > 0``, ``T <= N = ceil(Delta* / (lam a))`` with ``a = g_min - lam c2``,
``Gamma_T <= Delta* + lam g_max`` (last-step overshoot), and the cumulative general degradation obeys

    D = sum_{t<T} D_t <= rho_max Delta* + max(rho_max, 0) lam g_max + N lam^2 C                       (exact)
                      <= k1 Delta* + k2 lam,                                                            (relaxed)
    k1 = rho_max,   k2 = max(rho_max, 0) g_max + C Delta* / a + C lam,

with ``C = c1 + max(rho_max, 0) c2`` for separate general/domain contexts, and ``C = max(1 + rho_max, 0) c``
when general and domain data share the tilted distribution (same ``q_t``, same ``s_t``; then
``V1_t = V2_t = V_t`` and ``D_t = rho_t G_t + (1 + rho_t) V_t``, the leakage form). Proof:
``D_t = lam l_t + V1_t <= rho_max lam g_t + V1_t = rho_max (G_t + V2_t) + V1_t``; sum over ``t < T``.
Negative leakage is allowed: ``rho_max < 0`` then uses ``Gamma_T >= Delta*`` and drops the overshoot term.

Dependence on ``Delta*``: ``k2`` is *linear* in ``Delta*`` (``C Delta* / g_min`` to first order), not the
``k2 Delta*^2 lam`` of the paper's Theorem 3.1. A ``Delta*^2 lam`` term appears under the extra assumption
that the gain rate decays with accumulated gain, ``g_t >= g_0 - beta Gamma_t`` (``gain_decay = beta``): then
``a - beta Gamma`` shrinks geometrically, ``Gamma_n >= (a/beta)(1 - (1 - lam beta)^n)`` with ``a = g_0 - lam c2``,

    T <= N = ceil( log(a / (a - beta Delta*)) / (-log(1 - lam beta)) ),      (needs a > beta Delta*, lam beta < 1)
    N lam <= Delta*/a + beta Delta*^2 / (2 a (a - beta Delta*)) + lam,

so ``k2 = max(rho_max,0) g_max + C Delta*/a + C beta Delta*^2 / (2 a (a - beta Delta*)) + C lam``: the
``Delta*^2 lam`` coefficient is ``k2_quadratic = C beta / (2 a (a - beta Delta*)) ~ C beta / (2 g_0^2)``.
With ``beta = 0`` this reduces to the constant-rate theorem.

Variant with growing leakage (``leakage_growth = gamma``): ``rho_t <= rho_0 + gamma Gamma_t`` (leakage grows with
drift; ``rho_max`` is then ``rho_0``). Since ``sum_{t<T} Gamma_t G_t = (Gamma_T^2 - sum_t G_t^2)/2 <= Gamma_T^2 / 2``,

    D <= rho_0 Delta* + (rho_0)_+ lam g_max + gamma (Delta* + lam g_max)^2 / 2 + N lam^2 C(rho_0 + gamma Delta*),

a ``gamma Delta*^2 / 2`` term at order ``lam^0`` (the floor itself becomes quadratic) and, through ``C`` and the
overshoot, ``Delta*^2 lam`` terms (``gamma c2 Delta*^2 / a + gamma g_max Delta*``). The two variants compose.
The SymPy checks of each step live in
``sft_tilt.theory.derivations.matched_gain`` (``python -m sft_tilt.theory``).

``matched_gain_constants_from_trajectory`` measures every quantity above from recorded logits, so a
simulator can evaluate the bound along each of its trajectories.

Under ``jit`` the eager ``ValueError`` checks are skipped; a failed premise (``g_min <= lam c2``,
``a <= beta Delta*``, ``lam beta >= 1``, ``lam == 0`` with ``Delta* > 0``) gives ``bound = inf``
(no guarantee), never NaN.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._validate import check_real
from sft_tilt.theory._validate import is_concrete as _concrete

__all__ = [
    "MatchedGainBound",
    "TrajectoryConstants",
    "matched_gain_bound",
    "matched_gain_constants_from_trajectory",
    "steps_to_reach_gain",
]


def _check_scalar(name: str, value, *, low=None, strict=False, allow_none=False) -> None:
    """Eager validation of a scalar or array argument (skipped for jit tracers): a finite real array.

    Infinite constants are refused: ``rho_max = inf`` (unbounded leakage) or ``g_max = inf`` leave no guarantee
    and would give ``inf - inf`` / ``0 * inf`` = NaN in the coefficients; under ``jit`` they give ``bound = inf``.
    """
    if value is None:
        if allow_none:
            return
        raise ValueError(f"{name}: must not be None")
    if not _concrete(value):
        return
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:  # a string, a ragged list, ...
        raise ValueError(f"{name}: cannot be converted to a float array ({exc})") from None
    if np.any(np.isnan(arr)):
        raise ValueError(f"{name}: contains NaN")
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name}: must be finite, got {value}")
    if low is not None:
        bad = arr <= low if strict else arr < low
        if np.any(bad):
            raise ValueError(f"{name}: must be {'>' if strict else '>='} {low}, got {value}")


class MatchedGainBound(NamedTuple):
    """Result of :func:`matched_gain_bound` (a pytree of arrays; broadcast shape of the inputs).

    ``bound``: exact-count bound ``rho_max Delta* + max(rho_max,0) lam g_max + gamma (Delta* + lam g_max)^2 / 2 + N lam^2 C``.
    ``bound_relaxed = k1 Delta* + k1_quadratic Delta*^2 + k2 lam`` (>= ``bound``), with
    ``k2 = k2_const + k2_linear Delta* + k2_quadratic Delta*^2``; the ``k``'s are evaluated at the given ``Delta*``
    (``C`` involves ``rho_max + gamma Delta*``), ``k1_quadratic = gamma / 2``.
    ``n_steps_max``: ``N``, the bound on the number of steps to reach ``Delta*``.
    ``second_order``: ``C``, so the per-step second-order excess is at most ``lam^2 C``.

    References: Lin et al. (ICLR 2026), Theorem 3.1 (Sec. 3.4: matched-gain bound D <= k1 Delta* + k2 Delta*^2
      lam), in the toolkit's form of toolkit derivation `sft_tilt.theory.derivations.matched_gain`.
    """

    bound: jax.Array
    bound_relaxed: jax.Array
    k1: jax.Array
    k1_quadratic: jax.Array
    k2: jax.Array
    k2_const: jax.Array
    k2_linear: jax.Array
    k2_quadratic: jax.Array
    n_steps_max: jax.Array
    second_order: jax.Array


@float64_computation
def matched_gain_bound(
    delta_star: ArrayLike,
    lam: ArrayLike,
    rho_max: ArrayLike,
    g_min: ArrayLike,
    s_range: ArrayLike,
    *,
    g_max: ArrayLike | None = None,
    s_range_general: ArrayLike | None = None,
    gain_decay: ArrayLike = 0.0,
    leakage_growth: ArrayLike = 0.0,
) -> MatchedGainBound:
    """Bound on cumulative general degradation after fine-tuning to domain gain ``delta_star`` (module docstring).

    Args:
      delta_star: required cumulative domain gain ``Delta* >= 0`` (nats).
      lam: step size ``lam >= 0``.
      rho_max: upper bound on the per-step leakage ``rho_t = l_t / g_t`` (may be negative).
      g_min: lower bound on the first-order gain rate ``g_t`` (with ``gain_decay > 0``: the initial rate ``g_0``
        in ``g_t >= g_0 - gain_decay * Gamma_t``); must be > 0.
      s_range: bound on the (weighted-RMS over contexts) range ``max s - min s`` of the domain-side tilt.
      g_max: upper bound on ``g_t``; default ``s_range`` (always valid: ``g_t <= range(s_t)``).
      s_range_general: range bound of the general-side tilt for separate contexts;
        ``None`` means general and domain data share the tilted distribution (leakage form, ``C = (1+rho_max)_+ c``).
      gain_decay: ``beta >= 0`` of the decaying-gain-rate variant (the ``Delta*^2 lam`` term).
      leakage_growth: ``gamma >= 0`` of the growing-leakage variant ``rho_t <= rho_max + gamma Gamma_t``
        (``rho_max`` is then the initial leakage bound ``rho_0``).

    Every argument must be finite (eagerly a ``ValueError`` naming it: ``rho_max = inf`` would mean no leakage
    bound at all, and ``inf`` constants make the coefficients ``0 * inf`` = NaN).

    Returns:
      :class:`MatchedGainBound`; ``bound = inf`` where the premise fails (under ``jit``, also for non-finite inputs).

    References: Lin et al. (ICLR 2026), Theorem 3.1 (Sec. 3.4: matched-gain bound D <= k1 Delta* + k2 Delta*^2
      lam), in the toolkit's form of toolkit derivation `sft_tilt.theory.derivations.matched_gain`.
    """
    _check_scalar("delta_star", delta_star, low=0.0)
    _check_scalar("lam", lam, low=0.0)
    _check_scalar("rho_max", rho_max)
    _check_scalar("g_min", g_min, low=0.0, strict=True)
    _check_scalar("s_range", s_range, low=0.0)
    _check_scalar("g_max", g_max, low=0.0, allow_none=True)
    _check_scalar("s_range_general", s_range_general, low=0.0, allow_none=True)
    _check_scalar("gain_decay", gain_decay, low=0.0)
    _check_scalar("leakage_growth", leakage_growth, low=0.0)

    delta_star, lam, rho_max, g_min, s_range, beta, gamma = (
        jnp.asarray(v, dtype=float) for v in (delta_star, lam, rho_max, g_min, s_range, gain_decay, leakage_growth)
    )
    g_max = s_range if g_max is None else jnp.asarray(g_max, dtype=float)
    c2 = s_range**2 / 8.0
    rho_pos = jnp.maximum(rho_max, 0.0)
    rho_end = rho_max + gamma * delta_star  # leakage bound over every step before the target is reached
    if s_range_general is None:
        second = jnp.maximum(1.0 + rho_end, 0.0) * c2
    else:
        second = jnp.asarray(s_range_general, dtype=float) ** 2 / 8.0 + jnp.maximum(rho_end, 0.0) * c2

    a = g_min - lam * c2
    slack = a - beta * delta_star  # a - beta Delta*: must stay > 0
    finite = jnp.isfinite(delta_star) & jnp.isfinite(lam) & jnp.isfinite(rho_max) & jnp.isfinite(g_min)
    finite = finite & jnp.isfinite(s_range) & jnp.isfinite(g_max) & jnp.isfinite(second) & jnp.isfinite(beta) & jnp.isfinite(gamma)
    ok = finite & (lam > 0) & (slack > 0) & (lam * beta < 1.0)
    safe_lam = jnp.where(ok, lam, 1.0)
    safe_a = jnp.where(ok, a, 1.0)
    safe_slack = jnp.where(ok, slack, 1.0)
    safe_beta = jnp.where(beta > 0, beta, 1.0)
    # constant rate: Delta*/(lam a); decaying rate: log(a/(a - beta D)) / (-log(1 - lam beta)).
    n_const = delta_star / (safe_lam * safe_a)
    decays = ok & (beta > 0)
    n_decay = -jnp.log1p(-jnp.where(decays, beta * delta_star / safe_a, 0.0)) / -jnp.log1p(-jnp.where(decays, safe_lam * safe_beta, 0.5))
    n_real = jnp.where(beta > 0, n_decay, n_const)
    # Round a value within float64 error of an integer *up*, so N stays a valid upper bound on T.
    n_steps = jnp.ceil(n_real * (1.0 + 8 * jnp.finfo(n_real.dtype).eps))
    n_steps = jnp.maximum(n_steps, 0.0)

    k1 = rho_max
    k1_quadratic = gamma / 2.0
    k2_const = rho_pos * g_max + second * lam + gamma * lam * g_max**2 / 2.0
    k2_linear = second / safe_a + gamma * g_max
    k2_quadratic = second * beta / (2.0 * safe_a * safe_slack)
    k2 = k2_const + k2_linear * delta_star + k2_quadratic * delta_star**2
    overshoot = delta_star + lam * g_max  # Gamma_T <= Delta* + lam g_max
    exact = rho_max * delta_star + rho_pos * lam * g_max + gamma * overshoot**2 / 2.0 + n_steps * lam**2 * second
    relaxed = k1 * delta_star + k1_quadratic * delta_star**2 + k2 * lam
    inf = jnp.inf
    zero_gain = (delta_star == 0) & finite  # nothing to do: T = 0 steps, D = 0 exactly
    bound = jnp.where(zero_gain, 0.0, jnp.where(ok, exact, inf))
    bound_relaxed = jnp.where(zero_gain, 0.0, jnp.where(ok, relaxed, inf))
    n_steps = jnp.where(zero_gain, 0.0, jnp.where(ok, n_steps, inf))
    nan_to_inf = lambda x: jnp.where(ok | zero_gain, x, inf)  # noqa: E731
    return MatchedGainBound(
        bound=bound,
        bound_relaxed=bound_relaxed,
        k1=jnp.broadcast_to(k1, bound.shape),
        k1_quadratic=jnp.broadcast_to(k1_quadratic, bound.shape),
        k2=nan_to_inf(k2),
        k2_const=nan_to_inf(k2_const),
        k2_linear=nan_to_inf(k2_linear),
        k2_quadratic=nan_to_inf(k2_quadratic),
        n_steps_max=n_steps,
        second_order=jnp.broadcast_to(second, bound.shape),
    )


class TrajectoryConstants(NamedTuple):
    """Per-step quantities of a recorded trajectory and the constants of :func:`matched_gain_bound`.

    Per step ``t`` (length ``T``): ``gain`` ``G_t``, ``degradation`` ``D_t``, ``gain_rate`` ``g_t``,
    ``loss_rate`` ``l_t``, ``rho`` ``l_t / g_t``, ``v_general`` ``V1_t``, ``v_domain`` ``V2_t``,
    ``range_general`` / ``range_domain`` (weighted RMS over contexts of ``max s - min s``),
    ``cumulative_gain`` ``Gamma_t`` (before step ``t``).
    Summaries over the steps: ``rho_max``, ``g_min``, ``g_max``, ``s_range`` (max ``range_domain``),
    ``s_range_general`` (max ``range_general``), ``g_initial`` (``g_0``), ``gain_decay`` (smallest ``beta >= 0``
    with ``g_t >= g_0 - beta Gamma_t`` for all steps), ``rho_initial`` (``rho_0``), ``leakage_growth`` (smallest
    ``gamma >= 0`` with ``rho_t <= rho_0 + gamma Gamma_t``), ``total_gain``, ``total_degradation``.

    References: Lin et al. (ICLR 2026), Theorem 3.1 (Sec. 3.4); the constants of toolkit derivation
      `sft_tilt.theory.derivations.matched_gain`.
    """

    gain: jax.Array
    degradation: jax.Array
    gain_rate: jax.Array
    loss_rate: jax.Array
    rho: jax.Array
    v_general: jax.Array
    v_domain: jax.Array
    range_general: jax.Array
    range_domain: jax.Array
    cumulative_gain: jax.Array
    rho_max: jax.Array
    g_min: jax.Array
    g_max: jax.Array
    s_range: jax.Array
    s_range_general: jax.Array
    g_initial: jax.Array
    gain_decay: jax.Array
    rho_initial: jax.Array
    leakage_growth: jax.Array
    total_gain: jax.Array
    total_degradation: jax.Array


def _side(logits, data, weights, lam):
    """Per-step (data-weighted code-length change, first-order rate, KL remainder, RMS range) for one side."""
    logq = jax.nn.log_softmax(logits, axis=-1)  # [T+1, H, V]
    q = jnp.exp(logq[:-1])
    dlogq = logq[:-1] - logq[1:]  # log q_t - log q_{t+1}
    s = (logits[1:] - logits[:-1]) / lam  # exact tilt direction per context
    s = s - jnp.max(s, axis=-1, keepdims=True)  # shift-invariant; keeps ranges and differences exact
    dl = jnp.sum(data * dlogq, axis=-1)  # code-length change on the data, per context
    e_q = jnp.sum(q * s, axis=-1)
    e_data = jnp.sum(data * s, axis=-1)
    kl = jnp.sum(q * dlogq, axis=-1)  # V = K(lam) - lam E_q s = KL(q_t || q_{t+1}) >= 0
    rng = jnp.max(s, axis=-1) - jnp.min(s, axis=-1)
    w = weights / jnp.sum(weights)
    return dl @ w, (e_q - e_data) @ w, kl @ w, jnp.sqrt((rng**2) @ w)


def _float_input(name: str, x) -> jax.Array:
    try:
        return jnp.asarray(x, dtype=float)
    except (TypeError, ValueError) as exc:  # a string, a ragged list, ...
        raise ValueError(f"{name}: cannot be converted to a float array ({exc})") from None


def _as_trajectory(name, logits, data, weights):
    logits = _float_input(f"logits_{name}", logits)
    data = _float_input(f"p_{name}", data)
    if _concrete(logits) and _concrete(data):
        if logits.ndim not in (2, 3):
            raise ValueError(f"logits_{name}: expected shape [T+1, V] or [T+1, H, V], got {logits.shape}")
        if logits.shape[0] < 2:
            raise ValueError(f"logits_{name}: need at least two recorded states (T+1 >= 2), got {logits.shape[0]}")
        if not np.all(np.isfinite(np.asarray(logits))):
            raise ValueError(f"logits_{name}: must be finite (no NaN or inf)")
        if data.shape[-1] != logits.shape[-1] or data.ndim != logits.ndim - 1:
            raise ValueError(f"p_{name}: shape {data.shape} does not match logits_{name} {logits.shape} (expected [H, V] or [V])")
        d = np.asarray(data)
        if np.any(np.isnan(d)) or np.any(d < -1e-12) or np.any(np.abs(d.sum(-1) - 1.0) > 1e-6):
            raise ValueError(f"p_{name}: each row must be a probability distribution (>= 0, sums to 1 within 1e-6)")
    if logits.ndim == 2:
        logits, data = logits[:, None, :], data[None, :]
    h = logits.shape[1]
    weights = jnp.ones(h) if weights is None else _float_input(f"weights_{name}", weights)
    if _concrete(weights):
        wn = np.asarray(weights)
        if wn.shape != (h,) or np.any(np.isnan(wn)) or np.any(wn < 0) or wn.sum() <= 0:
            raise ValueError(f"weights_{name}: expected {h} non-negative context weights with a positive sum")
    return logits, data, weights


@float64_computation
def matched_gain_constants_from_trajectory(
    logits_general: ArrayLike,
    logits_domain: ArrayLike,
    p_general: ArrayLike,
    p_domain: ArrayLike,
    lam: ArrayLike,
    *,
    weights_general: ArrayLike | None = None,
    weights_domain: ArrayLike | None = None,
    n_steps: int | ArrayLike | None = None,
) -> TrajectoryConstants:
    """Measure ``G_t, D_t, g_t, l_t, rho_t, V1_t, V2_t`` and ranges from recorded logits (module docstring).

    Args:
      logits_general: ``[T+1, H1, V]`` (or ``[T+1, V]``) logits at the general contexts, states ``0..T``.
      logits_domain: ``[T+1, H2, V]`` (or ``[T+1, V]``) logits at the domain contexts.
      p_general, p_domain: ``[H, V]`` (or ``[V]``) conditional data distributions per context.
      lam: the step size used to define ``s_t = (z_{t+1} - z_t) / lam`` (> 0). Only the products ``lam s_t``
        are observed, so ``g_t, l_t`` and ranges scale as ``1/lam`` while ``rho_t`` and the bound do not depend
        on how the step is split between ``lam`` and ``s``.
      weights_general, weights_domain: context weights (default uniform), normalised internally.
      n_steps: if given, the summaries (``rho_max``, ``g_min``, ..., totals) use only steps ``t < n_steps``
        (the per-step arrays stay full length); lets trajectories of different stopping times share one
        array shape under ``vmap``. Must be >= 1.

    Pass the trajectory up to the stopping step ``T`` (first ``t`` with ``Gamma_t >= Delta*``);
    :func:`steps_to_reach_gain` finds it from ``gain``. Identities: ``D_t = lam l_t + V1_t`` and
    ``G_t = lam g_t - V2_t`` hold exactly (``V = KL(q_t || q_{t+1})``).

    References: Lin et al. (ICLR 2026), Theorem 3.1 (Sec. 3.4); the constants of toolkit derivation
      `sft_tilt.theory.derivations.matched_gain`.
    """
    _check_scalar("lam", lam, low=0.0, strict=True)
    zg, pg, wg = _as_trajectory("general", logits_general, p_general, weights_general)
    zd, pd, wd = _as_trajectory("domain", logits_domain, p_domain, weights_domain)
    if _concrete(zg) and _concrete(zd) and zg.shape[0] != zd.shape[0]:
        raise ValueError(f"logits_domain: {zd.shape[0]} states but logits_general has {zg.shape[0]}")
    lam = jnp.asarray(lam, dtype=float)
    d_t, l_t, v1, r1 = _side(zg, pg, wg, lam)
    neg_g, minus_g, v2, r2 = _side(zd, pd, wd, lam)
    gain = -neg_g  # G_t = E_P2[log q_{t+1} - log q_t]
    g_t = -minus_g  # g_t = E_P2 s - E_q s
    rho = l_t / g_t
    n_total = gain.shape[0]
    if n_steps is None:
        n_steps = n_total
    elif _concrete(n_steps) and not 1 <= int(n_steps) <= n_total:
        raise ValueError(f"n_steps: must be in [1, {n_total}], got {n_steps}")
    mask = jnp.arange(n_total) < n_steps
    cum = jnp.concatenate([jnp.zeros(1), jnp.cumsum(gain)[:-1]])
    g0 = g_t[0]
    use = mask & (cum > 0)
    beta = jnp.max(jnp.where(use, (g0 - g_t) / jnp.where(use, cum, 1.0), 0.0))
    gamma = jnp.max(jnp.where(use, (rho - rho[0]) / jnp.where(use, cum, 1.0), 0.0))
    masked_max = lambda x: jnp.max(jnp.where(mask, x, -jnp.inf))  # noqa: E731
    return TrajectoryConstants(
        gain=gain,
        degradation=d_t,
        gain_rate=g_t,
        loss_rate=l_t,
        rho=rho,
        v_general=v1,
        v_domain=v2,
        range_general=r1,
        range_domain=r2,
        cumulative_gain=cum,
        rho_max=masked_max(rho),
        g_min=-masked_max(-g_t),
        g_max=masked_max(g_t),
        s_range=masked_max(r2),
        s_range_general=masked_max(r1),
        g_initial=g0,
        gain_decay=jnp.maximum(beta, 0.0),
        rho_initial=rho[0],
        leakage_growth=jnp.maximum(gamma, 0.0),
        total_gain=jnp.sum(jnp.where(mask, gain, 0.0)),
        total_degradation=jnp.sum(jnp.where(mask, d_t, 0.0)),
    )


@float64_computation
def steps_to_reach_gain(gain: ArrayLike, delta_star: ArrayLike) -> jax.Array:
    """Smallest ``T`` with ``sum_{t<T} gain_t >= delta_star`` (``len(gain) + 1`` if never reached).

    ``gain``: per-step domain gains ``[..., T]``; returns an integer array of the batch shape.
    A NaN gain (a diverged step) leaves the stopping time undefined, so it is a ``ValueError`` naming ``gain``
    when called eagerly, as is ``-inf``; ``+inf`` reaches every target. Under ``jit`` (no value checks) a NaN
    makes every later cumulative sum NaN, which never counts as reaching ``delta_star``.

    References: Lin et al. (ICLR 2026), Theorem 3.1 (Sec. 3.4: fine-tuning until the domain gain reaches
      Delta*); toolkit derivation `sft_tilt.theory.derivations.matched_gain`.
    """
    _check_scalar("delta_star", delta_star, low=0.0)
    gain = check_real("gain", gain, allow_posinf=True)
    if gain.ndim == 0:
        raise ValueError("gain: needs a step axis (last axis), got a scalar")
    cum = jnp.concatenate([jnp.zeros(gain.shape[:-1] + (1,), gain.dtype), jnp.cumsum(gain, axis=-1)], axis=-1)
    reached = cum >= jnp.asarray(delta_star)[..., None]
    first = jnp.argmax(reached, axis=-1)
    return jnp.where(jnp.any(reached, axis=-1), first, gain.shape[-1] + 1)
