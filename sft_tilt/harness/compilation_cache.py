"""XLA's persistent compilation cache for the harness: a second cold run of a sweep skips compiling."""

from __future__ import annotations

__all__ = ["enable_compilation_cache"]


def enable_compilation_cache() -> None:
    """Persist XLA compilations under ``<cache>/jax_compile`` (``sft_tilt.store.cache_root()``).

    A process-wide JAX setting: the command line and the figure/claim entry points call it, library code does not.
    """
    import jax

    from sft_tilt.store import cache_root

    jax.config.update("jax_compilation_cache_dir", str(cache_root() / "jax_compile"))
