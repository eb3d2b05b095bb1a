"""LoRA and model averaging as transforms of the parameter pytree.

LoRA (Hu et al., 2021): a target weight ``W`` ``[..., d_in, d_out]`` (``y = x @ W``; a leading layer
axis is allowed) is replaced by

    W' = W + (alpha / r) A B,      A: [..., d_in, r] ~ N(0, 1/d_in),  B: [..., r, d_out] = 0,

so ``W' = W`` at initialisation and only ``A, B`` are trained (the base stays frozen).

Model averaging (WiSE-FT, Wortsman et al., 2022): ``theta(alpha) = (1 - alpha) theta_0 + alpha theta_ft``,
evaluated over a grid of mixing weights; it costs evaluations only.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

__all__ = ["LoraConfig", "init_lora", "merge_lora", "lora_param_count", "interpolate_params"]


@dataclass(frozen=True)
class LoraConfig:
    """Rank ``r``, scale ``alpha`` and the names of the target weights (keys of ``params["layers"]``)."""

    rank: int = 8
    alpha: float = 16.0
    targets: tuple[str, ...] = ("wq", "wv")

    def __post_init__(self):
        if not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"rank: must be a positive int, got {self.rank!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise ValueError(f"alpha: must be > 0, got {self.alpha!r}")
        if not self.targets or not all(isinstance(t, str) for t in self.targets):
            raise ValueError(f"targets: must be a non-empty tuple of weight names, got {self.targets!r}")

    @property
    def scale(self) -> float:
        return float(self.alpha) / self.rank


def init_lora(params: dict, lora: LoraConfig, key: jax.Array) -> dict:
    """Adapters ``{name: {"A": [..., d_in, r], "B": [..., r, d_out]}}`` for every target in ``params["layers"]``."""
    layers = params.get("layers", {})
    missing = [t for t in lora.targets if t not in layers]
    if missing:
        raise ValueError(f"targets: {missing} are not weights of params['layers'] (have {sorted(layers)})")
    out = {}
    for i, name in enumerate(lora.targets):
        w = layers[name]
        if w.ndim < 2:
            raise ValueError(f"targets: {name!r} has shape {w.shape}, not a matrix")
        if lora.rank > min(w.shape[-2:]):
            raise ValueError(f"rank: {lora.rank} exceeds the smaller side of {name!r} {w.shape[-2:]}")
        d_in, d_out = w.shape[-2], w.shape[-1]
        lead = w.shape[:-2]
        a = jax.random.normal(jax.random.fold_in(key, i), lead + (d_in, lora.rank), jnp.float32) / jnp.sqrt(d_in)
        out[name] = {"A": a, "B": jnp.zeros(lead + (lora.rank, d_out), jnp.float32)}
    return out


def merge_lora(params: dict, adapters: dict, lora: LoraConfig) -> dict:
    """``params`` with each target ``W`` replaced by ``W + (alpha/r) A @ B`` (differentiable in ``A, B``)."""
    layers = dict(params["layers"])
    for name, ab in adapters.items():
        w = layers[name]
        layers[name] = (w + lora.scale * jnp.matmul(ab["A"], ab["B"])).astype(w.dtype)
    return {**params, "layers": layers}


def lora_param_count(adapters: dict) -> int:
    """Number of trainable scalars in the adapters."""
    return int(sum(x.size for x in jax.tree_util.tree_leaves(adapters)))


def interpolate_params(params0, params1, alpha: float):
    """``(1 - alpha) params0 + alpha params1`` leaf by leaf (``alpha`` in [0, 1]: WiSE-FT mixing weight)."""
    if not (0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha: must lie in [0, 1], got {alpha!r}")
    if jax.tree_util.tree_structure(params0) != jax.tree_util.tree_structure(params1):
        raise ValueError("params1: pytree structure differs from params0")
    return jax.tree_util.tree_map(lambda a, b: ((1.0 - alpha) * a + alpha * b).astype(a.dtype), params0, params1)
