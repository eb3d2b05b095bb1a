"""Float64 for every computation that checks a bound.

The bounds of this package are checked to ~1e-15; in float32 the same identities hold only to ~1e-7 and
extreme inputs (``lam = 1e300``, ``q = 1e-40``) are not even representable. JAX computes in float32 unless
``jax_enable_x64`` is on (``JAX_ENABLE_X64=1`` before JAX is imported).

Policy
------
Two tools, for two kinds of caller:

* :func:`ensure_float64` is for whole programs (``sims``, ``figures``, the notebooks): called once at an entry
  point, it turns ``jax_enable_x64`` on for the process, so that the arrays the program creates itself, its
  ``jit``-compiled kernels and its caches are all float64.
* :func:`float64_computation` (internal) wraps every float64 formula of :mod:`theory`, so that a library call
  never computes silently in float32 and never changes the caller's global JAX setting:

  - ``jax_enable_x64`` on (the normal case, and every caller in this repository): the function runs unchanged,
    at no cost (one flag read); arrays are used in the dtype they come in.
  - ``jax_enable_x64`` off, called eagerly: the function runs inside ``jax.enable_x64(True)``, JAX's public
    thread-local context manager (``jax.experimental.enable_x64`` no longer exists in jax 0.10), so the flag is
    on for this call in this thread only and restored on exit. Inputs are read in float64: Python floats and
    NumPy float64 arrays keep their full precision, narrower floating arrays are widened exactly. The results are
    float64 ``jax.Array`` s (``np.asarray`` keeps every digit; JAX operations *outside* float64 mode would
    truncate them to float32 again).
  - ``jax_enable_x64`` off, traced (inside the caller's ``jit``/``vmap``/``grad``): ``RuntimeError`` saying to set
    ``JAX_ENABLE_X64=1``. A traced computation cannot switch precision safely: its inputs are already float32
    tracers and a float64 result would break the caller's float32 program (e.g. a ``lax.scan`` carry). Tracing
    inside ``with jax.enable_x64(True):`` is also fine: the flag is then on.

  Refusing every eager call instead would make the package unusable in a float32 program for no reason: the
  float64 evaluation costs nothing noticeable for these small problems and gives the documented precision.

The TALR weights (``talr_weights``, ``talr_weights_unnormalised``, ``talr_objective_value``, ``talr_loss``) and
``hard_token_mass`` are not float64 formulas: they are evaluated inside float32 training steps, so they follow
the dtype of their inputs (their validation still reads the inputs at full precision).
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

__all__ = ["ensure_float64", "float64_enabled"]

F = TypeVar("F", bound=Callable[..., Any])


def float64_enabled() -> bool:
    """Whether JAX currently creates float64 arrays by default.

    References: none in the paper: the toolkit's float64 policy (module docstring of `sft_tilt.theory._precision`).
    """
    import jax.numpy as jnp

    return jnp.zeros(()).dtype == jnp.float64


def ensure_float64() -> None:
    """Switch JAX to float64 if it is not already, and verify it took effect.

    ``JAX_ENABLE_X64=1`` should be set before JAX is imported (``tests/conftest.py`` and ``python -m sft_tilt.figures``
    do); if JAX was imported without it, this turns it on (arrays created afterwards are float64) and raises
    ``RuntimeError`` if that fails, so a float32 result can never be computed or cached as a float64 one.
    This changes the process-wide setting: it is meant for program entry points, not for library code
    (the formulas of :mod:`theory` use :func:`float64_computation` instead; module docstring).

    References: none in the paper: the toolkit's float64 policy (module docstring of `sft_tilt.theory._precision`).
    """
    import jax

    if not float64_enabled():
        jax.config.update("jax_enable_x64", True)
    if not float64_enabled():
        raise RuntimeError("float64 could not be enabled; run with JAX_ENABLE_X64=1")


def _is_tracer(x) -> bool:
    import jax

    return isinstance(x, jax.core.Tracer)


def _widen(x):
    """Floating arrays narrower than float64 -> float64 (exact); everything else unchanged."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    if isinstance(x, (jax.Array, np.ndarray, np.generic)):
        # jnp.issubdtype also understands JAX's extended dtypes (PRNG keys), which are not floating
        if jnp.issubdtype(x.dtype, jnp.floating) and x.dtype.itemsize < 8:
            return jnp.asarray(x, dtype=jnp.float64)
    return x


def float64_computation(fn: F) -> F:
    """Decorator: run ``fn`` in float64 without touching the caller's global JAX setting (module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        import jax

        if jax.config.jax_enable_x64:
            return fn(*args, **kwargs)
        message = (
            f"{fn.__name__}: computes in float64, but jax_enable_x64 is off and the call is traced "
            "(jit/vmap/grad), where theory cannot switch precision. Set JAX_ENABLE_X64=1 before importing JAX, "
            "trace the call inside `with jax.enable_x64(True):`, or call it eagerly."
        )
        if any(_is_tracer(x) for x in jax.tree.leaves((args, kwargs))):
            raise RuntimeError(message)
        with jax.enable_x64(True):
            args, kwargs = jax.tree.map(_widen, (args, kwargs))
            out = fn(*args, **kwargs)
        if any(_is_tracer(x) for x in jax.tree.leaves(out)):  # constant inputs inside the caller's trace
            raise RuntimeError(message)
        return out

    return wrapper  # type: ignore[return-value]
