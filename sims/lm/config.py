"""Hyperparameters of a Llama-family decoder-only transformer (Llama, SmolLM2, Qwen2).

One frozen, validated dataclass describes every shape the model needs:

    head_dim  = dim / n_heads                 (query/key/value width per head)
    q width   = n_heads    * head_dim = dim
    kv width  = n_kv_heads * head_dim         (grouped-query attention: n_heads / n_kv_heads queries share a key)

The two architecture families differ only in flags: Qwen2 adds biases to the query/key/value projections
(``attention_bias=True``) and usually a larger ``rope_theta``; SmolLM2 ties the output head to the input
embedding (``tie_embeddings=True``).
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["ModelConfig", "SUPPORTED_ARCHITECTURES"]

#: Architectures the loaders accept (GGUF ``general.architecture`` / HF ``model_type``).
SUPPORTED_ARCHITECTURES = ("llama", "qwen2")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes and constants of the transformer.

    Attributes:
      vocab_size: number of token ids V.
      dim: residual stream width D.
      n_layers: number of transformer blocks L.
      n_heads: query heads H (``dim % n_heads == 0``).
      n_kv_heads: key/value heads K (``n_heads % n_kv_heads == 0``).
      hidden_dim: SwiGLU inner width F.
      rope_theta: RoPE base; frequency i is ``rope_theta ** (-2i / head_dim)``.
      norm_eps: epsilon inside RMSNorm, ``x / sqrt(mean(x^2) + eps)``.
      max_seq_len: longest sequence (context) the model accepts.
      tie_embeddings: output logits use the input embedding matrix transposed.
      attention_bias: query/key/value projections carry biases (Qwen2).
      architecture: ``"llama"`` or ``"qwen2"`` (only used when writing checkpoints).
    """

    vocab_size: int
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    hidden_dim: int
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    max_seq_len: int = 2048
    tie_embeddings: bool = True
    attention_bias: bool = False
    architecture: str = "llama"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        if self.dim % self.n_heads:
            raise ValueError(f"ModelConfig.dim={self.dim} must be divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"ModelConfig.n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig head_dim={self.head_dim} must be even for rotary embeddings")
        for name in ("rope_theta", "norm_eps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"ModelConfig.{name} must be a positive finite number, got {value!r}")
        for name in ("tie_embeddings", "attention_bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"ModelConfig.architecture must be one of {SUPPORTED_ARCHITECTURES}, got {self.architecture!r}"
            )

    @property
    def head_dim(self) -> int:
        """Width of one attention head, ``dim // n_heads``."""
        return self.dim // self.n_heads

    @property
    def n_groups(self) -> int:
        """Query heads per key/value head, ``n_heads // n_kv_heads``."""
        return self.n_heads // self.n_kv_heads

    def n_params(self) -> int:
        """Number of scalar parameters (embedding counted once when tied)."""
        d, f, hd = self.dim, self.hidden_dim, self.head_dim
        kv = self.n_kv_heads * hd
        per_layer = 2 * d + d * d + 2 * d * kv + d * d + 3 * d * f
        if self.attention_bias:
            per_layer += d + 2 * kv
        head = 0 if self.tie_embeddings else self.vocab_size * d
        return self.vocab_size * d + self.n_layers * per_layer + d + head

    @classmethod
    def tiny(cls, **overrides) -> "ModelConfig":
        """A small config for tests: every row length a multiple of 32 so GGUF block quantisation applies.

        Defaults: V=96, D=64, L=2, H=4, K=2 (head_dim 16, so grouped-query attention is exercised), F=96,
        max_seq_len=64. Any field can be overridden.
        """
        fields = dict(
            vocab_size=96,
            dim=64,
            n_layers=2,
            n_heads=4,
            n_kv_heads=2,
            hidden_dim=96,
            rope_theta=10000.0,
            norm_eps=1e-5,
            max_seq_len=64,
            tie_embeddings=True,
            attention_bias=False,
            architecture="llama",
        )
        fields.update(overrides)
        return cls(**fields)

    @classmethod
    def smollm2_135m(cls) -> "ModelConfig":
        """SmolLM2-135M's shapes (as in its GGUF metadata): V=49152, D=576, L=30, H=9, K=3, F=1536."""
        return cls(
            vocab_size=49152,
            dim=576,
            n_layers=30,
            n_heads=9,
            n_kv_heads=3,
            hidden_dim=1536,
            rope_theta=100000.0,
            norm_eps=1e-5,
            max_seq_len=8192,
            tie_embeddings=True,
            attention_bias=False,
            architecture="llama",
        )
