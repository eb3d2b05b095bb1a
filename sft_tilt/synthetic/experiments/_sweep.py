"""Cell-by-cell cached sweeps: resume after interruption without recomputing finished cells.

``run_cells(name, config, cells, compute)`` returns ``[compute(cell) for cell in cells]`` where each result is
memoised on disk (``sft_tilt.store.cached``) under the key
``{experiment, config, cell, code_key(experiment module), library_versions()}``: the code key covers the
experiment's module and every repository module it imports: a finished cell is read
back, an unfinished one computed and written atomically, and any change of code, libraries or configuration
misses the cache instead of returning a stale result. A tqdm bar counts the cells.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Callable, Sequence

from sft_tilt.theory import ensure_float64
from sft_tilt.store import cached, code_key, library_versions

__all__ = ["PRESETS", "key_material", "run_cells", "cached_result", "check_preset"]

PRESETS = ("ci", "default", "large")


def check_preset(name: str) -> str:
    if name not in PRESETS:
        raise ValueError(f"preset: {name!r} is not one of {PRESETS}")
    return name


def key_material(name: str, config: Any) -> dict:
    """What a cached result depends on: experiment, resolved config, code version, library versions."""
    if not is_dataclass(config):
        raise ValueError(f"config: expected a dataclass instance, got {type(config).__name__}")
    import jax

    return {
        "x64": bool(jax.config.jax_enable_x64),
        "experiment": name,
        "config": {f.name: getattr(config, f.name) for f in fields(config)},
        "source": code_key(f"sft_tilt.synthetic.experiments.{name}"),
        "libraries": library_versions(),
    }


def run_cells(name: str, config: Any, cells: Sequence[Any], compute: Callable[[Any], Any], *, progress: bool = True) -> list:
    """``[compute(cell) for cell in cells]``, each cell cached on disk as soon as it is done (module docstring)."""
    ensure_float64()
    material = key_material(name, config)
    it = cells
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(cells, desc=name, unit="cell")
    return [cached(f"sims_{name}_cells", {**material, "cell": cell}, lambda cell=cell: compute(cell)) for cell in it]


def cached_result(name: str, config: Any, compute: Callable[[], dict]) -> dict:
    """The whole experiment's result, cached under the same key material."""
    ensure_float64()
    return cached(f"sims_{name}", key_material(name, config), compute)
