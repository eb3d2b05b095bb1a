"""Adversarial search for the smallest slack of a one-step bound.

A bound ``B(P, q, s, lam)`` on a quantity ``A(P, q, s, lam)`` (e.g. ``dL(P)``) has slack

    upper bound:  slack = (B - A) / scale,        lower bound:  slack = (A - B) / scale,

(``scale = 1`` unless ``scale_fn`` is given), and is valid iff the slack is ``>= 0`` everywhere. This
module minimises the slack by gradient descent (optax Adam) over an unconstrained parametrisation

    P = softmax(z_P),  q = softmax(z_q),  s = s_scale * t,
    lam = lam_lo * (lam_hi / lam_lo) ** sigmoid(u)            (log-uniform in ``lam_range``),

from ``n_restarts`` random starts at once (``jax.vmap``; logit scales spread over restarts so some
starts are near one-hot), tracking the smallest slack seen along every trajectory. A negative result
is a counterexample; a small positive one measures the bound's tightness. Non-finite slacks (e.g. a
bound overflowing to ``+inf``) are treated as ``+inf`` and their gradients as 0.

The best instance is re-evaluated eagerly (un-jitted, with input validation) and that value is reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation

__all__ = ["AdversarialResult", "adversarial_slack_search", "slack"]

BoundFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


@dataclass(frozen=True)
class AdversarialResult:
    """Outcome of :func:`adversarial_slack_search` (arrays are NumPy copies).

    References: toolkit method (numerical search, no derivation module) probing the bounds of
      `sft_tilt.theory.derivations.jensen`, `sft_tilt.theory.derivations.hoeffding` and `sft_tilt.theory.derivations.bennett`; Lin et al.
      (ICLR 2026), Sec. 3.3 tilt model.
    """

    min_slack: float  # smallest slack found, re-evaluated eagerly on the instance below
    P: np.ndarray
    q: np.ndarray
    s: np.ndarray
    lam: float
    restart_slacks: np.ndarray  # smallest slack of each restart (as found under jit)
    kind: str
    config: dict = field(default_factory=dict)

    @property
    def violated(self) -> bool:
        return self.min_slack < 0


@float64_computation
def slack(
    bound_fn: BoundFn,
    actual_fn: BoundFn,
    P: ArrayLike,
    q: ArrayLike,
    s: ArrayLike,
    lam: ArrayLike,
    kind: str = "upper",
    scale_fn: BoundFn | None = None,
) -> jax.Array:
    """``(bound - actual)/scale`` for ``kind="upper"``, ``(actual - bound)/scale`` for ``kind="lower"``.

    References: toolkit method (numerical search, no derivation module) probing the bounds of
      `sft_tilt.theory.derivations.jensen`, `sft_tilt.theory.derivations.hoeffding` and `sft_tilt.theory.derivations.bennett`; Lin et al.
      (ICLR 2026), Sec. 3.3 tilt model.
    """
    if kind not in ("upper", "lower"):
        raise ValueError(f"kind: must be 'upper' or 'lower', got {kind!r}")
    b = bound_fn(P, q, s, lam)
    a = actual_fn(P, q, s, lam)
    out = b - a if kind == "upper" else a - b
    if scale_fn is not None:
        out = out / scale_fn(P, q, s, lam)
    return out


def _decode(params, log_lo, log_hi, s_scale):
    P = jax.nn.softmax(params["zP"])
    q = jax.nn.softmax(params["zq"])
    s = s_scale * params["t"]
    lam = jnp.exp(log_lo + (log_hi - log_lo) * jax.nn.sigmoid(params["u"]))
    return P, q, s, lam


@functools.lru_cache(maxsize=32)
def _compiled(bound_fn, actual_fn, kind, scale_fn, n, learning_rate, s_scale, lo, hi, dtype_name):
    """Jitted (init, run_chunk, objective) for one search problem, cached so repeated searches compile once."""
    dtype = jnp.dtype(dtype_name)
    log_lo, log_hi = jnp.log(jnp.asarray(lo, dtype)), jnp.log(jnp.asarray(hi, dtype))

    def objective(params):
        P, q, s, lam = _decode(params, log_lo, log_hi, s_scale)
        value = slack(bound_fn, actual_fn, P, q, s, lam, kind, scale_fn)
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def loss(params):
        value = objective(params)
        return jnp.where(jnp.isfinite(value), value, 0.0), value

    optimiser = optax.adam(learning_rate)

    def init(k):
        k1, k2, k3, k4, k5 = jax.random.split(k, 5)
        logit_scale = jnp.exp(jax.random.uniform(k5, (), dtype, jnp.log(0.3), jnp.log(30.0)))
        params = {
            "zP": logit_scale * jax.random.normal(k1, (n,), dtype),
            "zq": logit_scale * jax.random.normal(k2, (n,), dtype),
            "t": jax.random.normal(k3, (n,), dtype),
            "u": 2.0 * jax.random.normal(k4, (), dtype),
        }
        return params, optimiser.init(params), objective(params), params

    def step(carry, _):
        params, opt_state, best_value, best_params = carry
        (_, current), grads = jax.value_and_grad(loss, has_aux=True)(params)
        grads = jax.tree.map(lambda g: jnp.where(jnp.isfinite(g), g, 0.0), grads)
        better = current < best_value
        best_params = jax.tree.map(lambda new, old: jnp.where(better, new, old), params, best_params)
        best_value = jnp.where(better, current, best_value)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, opt_state, best_value, best_params), None

    def run_chunk(carry, length):
        carry, _ = jax.lax.scan(step, carry, None, length=length)
        return carry

    return (
        jax.jit(jax.vmap(init)),
        jax.jit(jax.vmap(run_chunk, in_axes=(0, None)), static_argnums=1),
        jax.jit(jax.vmap(objective)),
        log_lo,
        log_hi,
    )


@float64_computation
def adversarial_slack_search(
    bound_fn: BoundFn,
    actual_fn: BoundFn,
    key: jax.Array,
    n_outcomes: int,
    n_restarts: int = 64,
    n_steps: int = 300,
    lam_range: tuple[float, float] = (1e-3, 10.0),
    *,
    kind: str = "upper",
    scale_fn: BoundFn | None = None,
    learning_rate: float = 0.05,
    s_scale: float = 1.0,
    chunk: int = 100,
    progress: bool = False,
) -> AdversarialResult:
    """Minimise the slack of ``bound_fn`` against ``actual_fn`` over ``(P, q, s, lam)``.

    Args:
      bound_fn, actual_fn: ``f(P, q, s, lam) -> scalar`` for one instance (jax-traceable), e.g.
        ``sft_tilt.theory.hoeffding_upper_bound`` and ``sft_tilt.theory.single_step_code_length_change``.
      key: ``jax.random`` key (the only source of randomness).
      n_outcomes: size of the outcome set (>= 2).
      n_restarts, n_steps: vmapped random starts and Adam steps per start.
      lam_range: ``(lam_lo, lam_hi)`` with ``0 < lam_lo <= lam_hi``; ``lam`` is searched log-uniformly.
      kind: ``"upper"`` or ``"lower"`` bound.
      scale_fn: optional positive normaliser of the slack (e.g. the bound's second-order term), so the
        search is not drawn to the trivial ``lam -> 0`` where every slack vanishes.
      learning_rate, s_scale: Adam step; scale of the tilt direction values.
      chunk: steps per jitted chunk (progress is reported between chunks).
    Returns:
      :class:`AdversarialResult` with the smallest slack and its instance.

    References: toolkit method (numerical search, no derivation module) probing the bounds of
      `sft_tilt.theory.derivations.jensen`, `sft_tilt.theory.derivations.hoeffding` and `sft_tilt.theory.derivations.bennett`; Lin et al.
      (ICLR 2026), Sec. 3.3 tilt model.
    """
    if kind not in ("upper", "lower"):
        raise ValueError(f"kind: must be 'upper' or 'lower', got {kind!r}")
    if int(n_outcomes) != n_outcomes or n_outcomes < 2:
        raise ValueError(f"n_outcomes: must be an integer >= 2, got {n_outcomes!r}")
    if int(n_restarts) != n_restarts or n_restarts < 1:
        raise ValueError(f"n_restarts: must be an integer >= 1, got {n_restarts!r}")
    if int(n_steps) != n_steps or n_steps < 0:
        raise ValueError(f"n_steps: must be an integer >= 0, got {n_steps!r}")
    lo, hi = (float(v) for v in lam_range)
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"lam_range: must satisfy 0 < lam_lo <= lam_hi < inf, got {lam_range!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate: must be > 0, got {learning_rate!r}")
    if not s_scale > 0:
        raise ValueError(f"s_scale: must be > 0, got {s_scale!r}")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk: must be an integer >= 1, got {chunk!r}")

    dtype = jnp.result_type(float)
    n = int(n_outcomes)
    init, run_chunk, objective, log_lo, log_hi = _compiled(
        bound_fn, actual_fn, kind, scale_fn, n, float(learning_rate), float(s_scale), lo, hi, str(dtype)
    )
    keys = jax.random.split(key, int(n_restarts))
    carry = init(keys)

    lengths = [chunk] * (int(n_steps) // chunk) + ([int(n_steps) % chunk] if int(n_steps) % chunk else [])
    iterator = lengths
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(lengths, desc=f"adversarial {getattr(bound_fn, '__name__', 'bound')}", unit="chunk")
    for length in iterator:
        carry = run_chunk(carry, length)
    # Also score the final parameters (the loop scores each state before its update).
    params, _, best_value, best_params = carry
    final = objective(params)
    better = final < best_value
    best_params = jax.tree.map(lambda new, old: jnp.where(better.reshape(better.shape + (1,) * (new.ndim - 1)), new, old), params, best_params)
    best_value = jnp.where(better, final, best_value)

    i = int(jnp.argmin(best_value))
    P, q, s, lam = _decode(jax.tree.map(lambda x: x[i], best_params), log_lo, log_hi, s_scale)
    # Renormalise on the host so eager validation sees exactly-normalised inputs.
    P_np = np.asarray(P, dtype=np.float64)
    q_np = np.asarray(q, dtype=np.float64)
    P_np, q_np = P_np / P_np.sum(), q_np / q_np.sum()
    eager = float(slack(bound_fn, actual_fn, jnp.asarray(P_np), jnp.asarray(q_np), s, lam, kind, scale_fn))
    config = dict(
        n_outcomes=n,
        n_restarts=int(n_restarts),
        n_steps=int(n_steps),
        lam_range=(lo, hi),
        kind=kind,
        learning_rate=float(learning_rate),
        s_scale=float(s_scale),
        scaled=scale_fn is not None,
        dtype=str(dtype),
    )
    return AdversarialResult(
        min_slack=eager if np.isfinite(eager) else float(best_value[i]),
        P=P_np,
        q=q_np,
        s=np.asarray(s),
        lam=float(lam),
        restart_slacks=np.asarray(best_value),
        kind=kind,
        config=config,
    )
