"""Input validation shared by every numerical export of :mod:`theory`.

Contract
--------
* Called **eagerly** (concrete arrays), a bad input raises :class:`ValueError` whose message starts
  with the argument's name, e.g. ``"q: probabilities must be >= 0 (min -0.1)"``.
* Called **under** ``jax.jit`` / ``jax.vmap`` / ``jax.grad`` the values are tracers and cannot be
  inspected without a host round-trip, so *value* checks (NaN, sign, normalisation) are skipped;
  *shape* checks (outcome-axis sizes, broadcastability) still apply because shapes are static.
  A traced call with bad values returns whatever the arithmetic gives (possibly NaN); validate
  eagerly once outside the jitted region if in doubt.
* Probability vectors live on the last axis and must sum to 1 within
  ``PROBABILITY_TOLERANCE`` (absolute deviation of the sum from 1, i.e. relative to the total mass 1);
  functions then renormalise them exactly, so such rounding differences never matter.
  Log-space inputs (``log_tilt``) are logits: any per-row constant is allowed and removed.

Checks are cheap: one host copy and a few vectorised reductions per argument.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "PROBABILITY_TOLERANCE",
    "is_concrete",
    "check_probabilities",
    "check_log_probabilities",
    "check_logits",
    "check_real",
    "check_step",
    "check_temperature",
    "check_outcome_shapes",
]

PROBABILITY_TOLERANCE = 1e-6


def is_concrete(x) -> bool:
    """True when ``x`` holds values we can inspect now (not a JAX tracer inside jit/vmap/grad)."""
    return not isinstance(x, jax.core.Tracer)


def _float_array(name: str, x) -> jax.Array:
    try:
        arr = jnp.asarray(x)
    except (TypeError, ValueError) as exc:  # e.g. a string, or a ragged list ("inhomogeneous shape")
        raise ValueError(f"{name}: cannot be converted to an array ({exc})") from None
    if not (jnp.issubdtype(arr.dtype, jnp.floating) or jnp.issubdtype(arr.dtype, jnp.integer) or arr.dtype == jnp.bool_):
        raise ValueError(f"{name}: must be real-valued, got dtype {arr.dtype}")
    if not jnp.issubdtype(arr.dtype, jnp.floating):
        arr = arr.astype(jnp.result_type(float))
    return arr


def _host(x) -> np.ndarray | None:
    return np.asarray(x) if is_concrete(x) else None


def _host_value(original, arr) -> np.ndarray | None:
    """Host copy of the values as given, before any narrowing to JAX's float32 default.

    In float32 mode ``jnp.asarray(1e-320)`` is 0 and ``jnp.asarray(1e300)`` is inf; validating the converted
    array would then blame the caller for values they never passed. Python numbers and NumPy arrays are read
    at float64; JAX arrays (and tracers: None) as they are.
    """
    if not is_concrete(arr):
        return None
    if isinstance(original, jax.Array):
        return np.asarray(arr)
    try:
        host = np.asarray(original, dtype=np.float64)
    except (TypeError, ValueError):
        return np.asarray(arr)
    return host if host.shape == arr.shape else np.asarray(arr)


def check_probabilities(name: str, p, *, tol: float = PROBABILITY_TOLERANCE) -> jax.Array:
    """Validate probability vectors on the last axis: no NaN/inf, ``p >= 0``, ``|sum p - 1| <= tol``."""
    p = _float_array(name, p)
    if p.ndim == 0:
        raise ValueError(f"{name}: needs an outcome axis (last axis), got a scalar")
    if p.shape[-1] == 0:
        raise ValueError(f"{name}: the outcome axis is empty")
    a = _host(p)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: contains inf; probabilities must be finite")
        if (a < 0).any():
            raise ValueError(f"{name}: probabilities must be >= 0 (min {a.min():.3g})")
        dev = np.abs(a.sum(axis=-1) - 1.0)
        if (dev > tol).any():
            raise ValueError(f"{name}: must sum to 1 over the last axis within {tol:g} (worst deviation {dev.max():.3g})")
    return p


def check_log_probabilities(name: str, log_p, *, tol: float = PROBABILITY_TOLERANCE) -> jax.Array:
    """Validate log-probability vectors: no NaN, no ``+inf`` (``-inf`` = zero probability), ``|log sum e^log_p| <= tol``."""
    log_p = _float_array(name, log_p)
    if log_p.ndim == 0:
        raise ValueError(f"{name}: needs an outcome axis (last axis), got a scalar")
    a = _host(log_p)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if np.isposinf(a).any():
            raise ValueError(f"{name}: contains +inf; log-probabilities must be <= 0")
        if np.isneginf(a).all(axis=-1).any():
            raise ValueError(f"{name}: a distribution with every log-probability -inf has no mass")
        m = a.max(axis=-1, keepdims=True)
        lse = (m + np.log(np.exp(a - m).sum(axis=-1, keepdims=True)))[..., 0]
        if (np.abs(lse) > tol).any():
            raise ValueError(f"{name}: log-probabilities must be normalised (|logsumexp| <= {tol:g}, worst {np.abs(lse).max():.3g})")
    return log_p


def check_logits(name: str, z) -> jax.Array:
    """Validate logits (unnormalised log-probabilities): no NaN, no ``+inf``, not every entry ``-inf``."""
    z = _float_array(name, z)
    if z.ndim == 0:
        raise ValueError(f"{name}: needs an outcome axis (last axis), got a scalar")
    a = _host(z)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if np.isposinf(a).any():
            raise ValueError(f"{name}: contains +inf")
        if np.isneginf(a).all(axis=-1).any():
            raise ValueError(f"{name}: a row with every entry -inf has no mass")
    return z


def check_real(name: str, x, *, allow_posinf: bool = False) -> jax.Array:
    """Validate a real array: no NaN, finite (``+inf`` allowed only if ``allow_posinf``)."""
    original = x
    x = _float_array(name, x)
    a = _host_value(original, x)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if np.isneginf(a).any() or (np.isposinf(a).any() and not allow_posinf):
            raise ValueError(f"{name}: must be finite")
    return x


def check_step(name: str, lam) -> jax.Array:
    """Validate a step size: finite, ``>= 0`` (scalar or batch array)."""
    original = lam
    lam = _float_array(name, lam)
    a = _host_value(original, lam)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if not np.isfinite(a).all():
            raise ValueError(f"{name}: must be finite")
        if (a < 0).any():
            raise ValueError(f"{name}: must be >= 0 (min {a.min():.3g})")
    return lam


def check_temperature(name: str, tau) -> jax.Array:
    """Validate a temperature: ``> 0``; ``+inf`` is allowed (the uniform limit)."""
    original = tau
    tau = _float_array(name, tau)
    a = _host_value(original, tau)
    if a is not None:
        if np.isnan(a).any():
            raise ValueError(f"{name}: contains NaN")
        if (a <= 0).any():
            raise ValueError(f"{name}: must be > 0 (min {a.min():.3g})")
    return tau


def check_outcome_shapes(vectors: dict[str, jax.Array], batch: dict[str, jax.Array] | None = None) -> tuple[int, ...]:
    """Check outcome-axis sizes agree and batch shapes broadcast; return the broadcast batch shape.

    ``vectors`` carry outcomes on their last axis; ``batch`` entries (step sizes, temperatures,
    scalars per instance) have no outcome axis and broadcast against the vectors' batch shapes.
    """
    sizes = {name: v.shape[-1] for name, v in vectors.items()}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{n} has {k}" for n, k in sizes.items())
        raise ValueError(f"{', '.join(sizes)}: outcome axes (last) differ: {desc}")
    shapes = {name: v.shape[:-1] for name, v in vectors.items()}
    shapes.update({name: jnp.shape(b) for name, b in (batch or {}).items()})
    try:
        return tuple(np.broadcast_shapes(*shapes.values()))
    except ValueError:
        desc = ", ".join(f"{n}: {s}" for n, s in shapes.items())
        raise ValueError(f"{', '.join(shapes)}: batch shapes do not broadcast ({desc})") from None
