"""Float64 for every computation that checks a bound.

The bounds of this package are checked to ~1e-15; in float32 the same identities hold only to ~1e-7 and
extreme inputs (``lam = 1e300``, ``q = 1e-40``) are not even representable. JAX computes in float32 unless
``JAX_ENABLE_X64`` is set before it is imported, so every entry point that checks a bound calls
:func:`ensure_float64` first.
"""

from __future__ import annotations

__all__ = ["ensure_float64", "float64_enabled"]


def float64_enabled() -> bool:
    """Whether JAX currently creates float64 arrays by default."""
    import jax.numpy as jnp

    return jnp.zeros(()).dtype == jnp.float64


def ensure_float64() -> None:
    """Switch JAX to float64 if it is not already, and verify it took effect.

    ``JAX_ENABLE_X64=1`` should be set before JAX is imported (``tests/conftest.py`` and ``python -m figures``
    do); if JAX was imported without it, this turns it on (arrays created afterwards are float64) and raises
    ``RuntimeError`` if that fails, so a float32 result can never be computed or cached as a float64 one.
    """
    import jax

    if not float64_enabled():
        jax.config.update("jax_enable_x64", True)
    if not float64_enabled():
        raise RuntimeError("float64 could not be enabled; run with JAX_ENABLE_X64=1")
