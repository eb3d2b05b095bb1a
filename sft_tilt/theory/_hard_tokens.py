"""Hard tokens and the safe step size (the paper's Theorem 3.2, in a precise, checkable form).

Update size of one token. For softmax cross-entropy on target ``y`` the logit gradient is ``q - e_y``, and

    ||e_y - q||_2^2 = (1 - p_y)^2 + sum_{x != y} q_x^2,   sum_{x != y} q_x = 1 - p_y,

so ``(1 - p_y)^2 / (V - 1) <= sum_{x != y} q_x^2 <= (1 - p_y)^2`` gives
``||e_y - q||_2 in [1 - p_y, sqrt(2) (1 - p_y)]`` (:func:`ce_update_norm_bounds`): easy tokens
(``p_y ~ 1``) barely move the model, hard ones (low ``p_y``) drive the update.

Hard-token mass (:func:`hard_token_mass`) of a batch of target tokens with probabilities ``p_i`` and
loss weights ``w_i >= 0`` (uniform for SFT, ``softmax(-l/tau)`` for TALR):

    m = sum_i w_i (1 - p_i) / sum_i w_i          (threshold variant: m_thr = sum_i w_i 1{p_i <= thr} / sum_i w_i).

How the mass controls the constants of the matched-gain bound (``sft_tilt.theory.matched_gain_bound``).
Assume logits linear in the parameters along the step, ``z_h = J_h theta + b_h`` (exact for a linear head on
frozen features; first order otherwise), and the step ``theta <- theta - lam grad sum_i w_i l_i`` with
``w`` on the simplex (stop-gradient). Then every context ``h`` is tilted by ``lam s(h)`` with
``s(h) = sum_i w_i J_h J_i^T (e_{y_i} - q_i)``. With the coupling ``kappa >= ||J_h J_i^T||_2`` (over general
and domain contexts ``h`` and target contexts ``i``):

    ||s(h)||_2 <= sqrt(2) kappa m,    range(s(h)) <= sqrt(2) ||s(h)||_2 <= 2 kappa m,
    l_t = sum_h w_h <q_h - P1_h, s(h)> <= sqrt(2) kappa delta1 m     (Cauchy-Schwarz),

where ``delta1 = sqrt(sum_h w_h ||q_h - P1_h||_2^2)`` is the general misfit (RMS over general contexts).
With ``g_t >= g_min`` this gives (:func:`hard_token_constants`)

    rho_max = sqrt(2) kappa delta1 m / g_min,   s_range = s_range_general = 2 kappa m,   g_max = 2 kappa m,

all non-decreasing in ``m``. These hold along a trajectory if ``m``, ``kappa`` and ``delta1`` bound their
values at every step (the mass usually falls as tokens are learned, so the initial mass typically does).

Safe step size (:func:`safe_step_size`). With ``B(lam, m)`` the relaxed matched-gain bound
``k1 Delta* + k2 lam`` under these constants (separate general/domain contexts),

    lam_safe(eps, Delta*, m) = sup { lam in (0, g_min / c2) : B(lam, m) <= eps },   c2 = (2 kappa m)^2 / 8.

``B`` is continuous and strictly increasing in ``lam`` on that interval (from ``k1 Delta*`` to ``+inf``), so
``lam_safe`` is the unique root of ``B = eps``, found by bisection; ``B`` is non-decreasing in ``m`` (every
constant is), so ``lam_safe`` is non-increasing in ``m`` (implicit function theorem:
``d lam_safe / dm = -(dB/dm)/(dB/dlam) <= 0``; SymPy check in ``sft_tilt.theory.derivations.hard_tokens``).
Conventions: ``lam_safe = 0`` when ``eps <= k1 Delta*`` (no positive step is guaranteed safe: the floor
``k1 Delta*`` is already at the tolerance); ``lam_safe = +inf`` when ``kappa m = 0`` (no update leaks).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from sft_tilt.theory._matched_gain import matched_gain_bound
from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._validate import check_real, check_step, is_concrete

__all__ = [
    "HARD_TOKEN_THRESHOLD",
    "ce_update_norm_bounds",
    "hard_token_mass",
    "HardTokenConstants",
    "hard_token_constants",
    "degradation_bound_from_mass",
    "safe_step_size",
]

#: A target token is "hard" when the model gives it probability at most this (the paper's token-level
#: analysis counts the fraction of target tokens with ``p > 0.2``). Every room of the toolkit uses this one value.
HARD_TOKEN_THRESHOLD = 0.2


def _check_unit_interval(name: str, p) -> jax.Array:
    p = check_real(name, p)
    if is_concrete(p):
        a = np.asarray(p)
        if (a < 0).any() or (a > 1).any():
            raise ValueError(f"{name}: probabilities must lie in [0, 1] (min {a.min():.3g}, max {a.max():.3g})")
    return p


@float64_computation
def ce_update_norm_bounds(p_y: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """``(1 - p_y, sqrt(2) (1 - p_y))``: bounds on ``||e_y - q||_2`` for target probability ``p_y = q_y``.

    The lower bound is approached as ``V -> inf`` with the remaining mass spread uniformly (for finite ``V``
    the sharp lower bound is ``(1 - p_y) sqrt(V / (V - 1))``); the upper bound is attained when the remaining
    mass sits on a single other token.

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5: hard tokens drive the update); toolkit derivation
      `sft_tilt.theory.derivations.hard_tokens`.
    """
    p_y = _check_unit_interval("p_y", p_y)
    hard = 1.0 - p_y
    return hard, jnp.sqrt(2.0) * hard


def hard_token_mass(p: ArrayLike, weights: ArrayLike | None = None, threshold: ArrayLike | None = None) -> jax.Array:
    """Weighted hard-token mass ``sum_i w_i (1 - p_i) / sum_i w_i`` over the last axis (module docstring).

    Args:
      p: target-token probabilities ``[..., n]`` in ``[0, 1]``.
      weights: non-negative loss weights ``[..., n]`` (default uniform: plain SFT); only their ratios matter.
      threshold: if given, the weighted fraction of tokens with ``p_i <= threshold`` instead.

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5: hard tokens); toolkit derivation
      `sft_tilt.theory.derivations.hard_tokens`.
    """
    p = _check_unit_interval("p", p)
    if p.ndim == 0:
        raise ValueError("p: needs a token axis (last axis), got a scalar")
    if p.shape[-1] == 0:
        raise ValueError("p: the token axis is empty, so the mass (a weighted mean over tokens) is undefined")
    if weights is None:
        weights = jnp.ones_like(p)
    else:
        weights = check_real("weights", weights)
        if is_concrete(weights):
            wa = np.asarray(weights)
            if (wa < 0).any():
                raise ValueError("weights: must be >= 0")
            if (np.broadcast_to(wa, np.broadcast_shapes(wa.shape, np.shape(p))).sum(-1) <= 0).any():
                raise ValueError("weights: must have a positive sum over the last axis")
        if jnp.shape(weights)[-1:] != jnp.shape(p)[-1:]:
            raise ValueError(f"weights: last axis {jnp.shape(weights)} does not match p {jnp.shape(p)}")
    if threshold is None:
        hard = 1.0 - p
    else:
        threshold = check_real("threshold", threshold)
        hard = (p <= jnp.asarray(threshold)[..., None]).astype(p.dtype)
    return jnp.sum(weights * hard, axis=-1) / jnp.sum(weights * jnp.ones_like(p), axis=-1)


class HardTokenConstants(NamedTuple):
    """Constants of the matched-gain bound implied by hard-token mass ``m`` (module docstring).

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5) feeding Theorem 3.1 (Sec. 3.4); toolkit
      derivation `sft_tilt.theory.derivations.hard_tokens`.
    """

    rho_max: jax.Array
    s_range: jax.Array
    s_range_general: jax.Array
    g_max: jax.Array


def _check_constants(coupling, general_misfit, g_min):
    coupling = check_step("coupling", coupling)
    general_misfit = check_step("general_misfit", general_misfit)
    g_min = check_real("g_min", g_min)
    if is_concrete(g_min) and (np.asarray(g_min) <= 0).any():
        raise ValueError("g_min: must be > 0")
    return coupling, general_misfit, g_min


@float64_computation
def hard_token_constants(
    hard_token_mass: ArrayLike, coupling: ArrayLike, general_misfit: ArrayLike, g_min: ArrayLike
) -> HardTokenConstants:
    """``rho_max = sqrt2 kappa delta1 m / g_min``, ``s_range = s_range_general = g_max = 2 kappa m``.

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5) feeding Theorem 3.1 (Sec. 3.4); toolkit
      derivation `sft_tilt.theory.derivations.hard_tokens`.
    """
    m = _check_unit_interval("hard_token_mass", hard_token_mass)
    kappa, delta1, g_min = _check_constants(coupling, general_misfit, g_min)
    rng = 2.0 * kappa * m
    return HardTokenConstants(
        rho_max=jnp.sqrt(2.0) * kappa * delta1 * m / g_min,
        s_range=rng,
        s_range_general=rng,
        g_max=rng,
    )


@float64_computation
def degradation_bound_from_mass(
    lam: ArrayLike, delta_star: ArrayLike, hard_token_mass: ArrayLike, *, coupling: ArrayLike, general_misfit: ArrayLike, g_min: ArrayLike
) -> jax.Array:
    """Relaxed matched-gain bound ``B(lam, m) = k1 Delta* + k2 lam`` under :func:`hard_token_constants`.

    ``+inf`` where the premise ``g_min > lam c2`` fails or ``lam = 0`` (with ``Delta* > 0``).

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5) and Theorem 3.1 (Sec. 3.4); toolkit derivation
      `sft_tilt.theory.derivations.hard_tokens`.
    """
    c = hard_token_constants(hard_token_mass, coupling, general_misfit, g_min)
    return matched_gain_bound(
        delta_star, lam, c.rho_max, g_min, c.s_range, g_max=c.g_max, s_range_general=c.s_range_general
    ).bound_relaxed


@float64_computation
def safe_step_size(
    eps: ArrayLike,
    delta_star: ArrayLike,
    hard_token_mass: ArrayLike,
    *,
    coupling: ArrayLike,
    general_misfit: ArrayLike,
    g_min: ArrayLike,
    iterations: int = 200,
) -> jax.Array:
    """Largest ``lam`` with ``B(lam, m) <= eps`` (module docstring): non-increasing in ``hard_token_mass``.

    Args:
      eps: tolerated cumulative general degradation (nats), ``>= 0``.
      delta_star: required domain gain ``Delta* > 0``.
      hard_token_mass: ``m`` in ``[0, 1]`` (:func:`hard_token_mass`), any batch shape (broadcasts).
      coupling: ``kappa >= ||J_h J_i^T||_2``; general_misfit: ``delta1``; g_min: gain-rate floor ``> 0``.
      iterations: bisection steps on ``(0, g_min / c2)`` (200 reach float64 resolution).

    Returns ``0`` when ``eps <= k1 Delta*``, ``+inf`` when ``kappa m = 0``.

    References: Lin et al. (ICLR 2026), Theorem 3.2 (Sec. 3.5: hard tokens and the safe step size); toolkit
      derivation `sft_tilt.theory.derivations.hard_tokens`.
    """
    eps = check_step("eps", eps)
    delta_star = check_real("delta_star", delta_star)
    if is_concrete(delta_star) and (np.asarray(delta_star) <= 0).any():
        raise ValueError("delta_star: must be > 0")
    c = hard_token_constants(hard_token_mass, coupling, general_misfit, g_min)
    if not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations: must be a positive int, got {iterations!r}")
    c2 = c.s_range**2 / 8.0
    g_min = jnp.asarray(g_min, dtype=c2.dtype)
    no_leak = c2 == 0
    hi0 = jnp.where(no_leak, 1.0, g_min / jnp.where(no_leak, 1.0, c2))
    shape = jnp.broadcast_shapes(jnp.shape(eps), jnp.shape(delta_star), jnp.shape(hi0))
    lo = jnp.zeros(shape, dtype=c2.dtype)
    hi = jnp.broadcast_to(hi0, shape)

    def bound(lam):
        return matched_gain_bound(
            delta_star, lam, c.rho_max, g_min, c.s_range, g_max=c.g_max, s_range_general=c.s_range_general
        ).bound_relaxed

    def body(_, carry):
        lo, hi = carry
        mid = 0.5 * (lo + hi)
        ok = bound(mid) <= eps
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    at_floor = eps <= c.rho_max * delta_star  # k1 Delta* already uses the whole tolerance
    return jnp.where(no_leak, jnp.inf, jnp.where(at_floor, 0.0, lo))
