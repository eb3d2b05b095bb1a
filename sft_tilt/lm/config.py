"""Hyperparameters of a decoder-only transformer of the Llama family (Llama 2/3.x, SmolLM2, Qwen2, Qwen3, Gemma 3).

One frozen, validated dataclass describes every shape the model needs:

    head_dim  = head_dim_override or dim / n_heads   (query/key/value width per head)
    q width   = n_heads    * head_dim
    kv width  = n_kv_heads * head_dim                 (grouped-query attention: n_heads / n_kv_heads queries share a key)

The families are one decoder with flags (Hugging Face ``config.json`` field -> flag):

  * Llama / SmolLM2: the defaults. Llama 3.x adds ``rope_scaling`` of type ``"llama3"``.
  * Qwen2: ``attention_bias=True`` (biases on the query/key/value projections).
  * Qwen3: ``qk_norm=True`` (RMSNorm over each query/key head, ``q_norm``/``k_norm``), ``head_dim_override``
    (``head_dim``, independent of ``hidden_size``).
  * Gemma 3 (text): ``qk_norm``, ``norm_unit_offset`` (RMSNorm gain ``1 + w``), ``post_norms`` (norms after the
    attention and the MLP as well as before: 4 per layer), ``mlp_activation="gelu_tanh"`` (GeGLU),
    ``embed_scale`` (embeddings times sqrt(dim)), ``query_pre_attn_scalar``, ``sliding_window`` with
    ``layer_types`` (local and global layers interleaved), ``rope_local_theta`` (``rope_local_base_freq``), and
    optional ``final_logit_softcap`` / ``attn_logit_softcap``.
"""

from __future__ import annotations

import dataclasses
import math

__all__ = ["ModelConfig", "RopeScaling", "SUPPORTED_ARCHITECTURES", "LAYER_TYPES", "MLP_ACTIVATIONS"]

#: Architectures the loaders accept (GGUF ``general.architecture``; HF ``model_type``, ``gemma3_text`` for gemma3).
SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")

#: Per-layer attention kinds (HF ``layer_types`` entries).
LAYER_TYPES = ("full_attention", "sliding_attention")

#: MLP gate activations: ``silu`` (SwiGLU; HF ``hidden_act="silu"``) and ``gelu_tanh`` (GeGLU with the tanh
#: approximation of GELU; HF ``hidden_activation="gelu_pytorch_tanh"``).
MLP_ACTIVATIONS = ("silu", "gelu_tanh")


def _positive_number(value) -> bool:
    return (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0)


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Rescaled rotary frequencies (HF ``rope_scaling`` / ``rope_parameters`` with a ``rope_type`` other than default).

    ``rope_type="linear"``: every inverse frequency divided by ``factor`` (Gemma 3's global layers).
    ``rope_type="llama3"`` (Llama 3.1+; HF ``_compute_llama3_parameters``), with wavelength ``w = 2 pi / f`` and
    ``N = original_max_position_embeddings``:

        f' = f                       if w < N / high_freq_factor
        f' = f / factor              if w > N / low_freq_factor
        f' = (1 - s) f / factor + s f  otherwise, s = (N / w - low_freq_factor) / (high_freq_factor - low_freq_factor)

    Both leave the cos/sin amplitude at 1 (HF ``attention_factor = 1``).
    """

    rope_type: str
    factor: float
    low_freq_factor: float | None = None
    high_freq_factor: float | None = None
    original_max_position_embeddings: int | None = None

    def __post_init__(self) -> None:
        if self.rope_type not in ("linear", "llama3"):
            raise ValueError(f"RopeScaling.rope_type must be 'linear' or 'llama3', got {self.rope_type!r}")
        if not _positive_number(self.factor):
            raise ValueError(f"RopeScaling.factor must be a positive finite number, got {self.factor!r}")
        llama3 = ("low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
        if self.rope_type == "linear":
            given = [n for n in llama3 if getattr(self, n) is not None]
            if given:
                raise ValueError(f"RopeScaling of type 'linear' takes no {given}")
            return
        for name in llama3:
            if not _positive_number(getattr(self, name)):
                raise ValueError(f"RopeScaling.{name} must be a positive finite number, got {getattr(self, name)!r}")
        if isinstance(self.original_max_position_embeddings, float) or not isinstance(
                self.original_max_position_embeddings, int):
            raise ValueError("RopeScaling.original_max_position_embeddings must be an int, got "
                             f"{self.original_max_position_embeddings!r}")
        if not self.high_freq_factor > self.low_freq_factor:
            raise ValueError(f"RopeScaling.high_freq_factor={self.high_freq_factor} must exceed "
                             f"low_freq_factor={self.low_freq_factor}")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shapes and constants of the transformer.

    Attributes:
      vocab_size: number of token ids V.
      dim: residual stream width D.
      n_layers: number of transformer blocks L.
      n_heads: query heads H.
      n_kv_heads: key/value heads K (``n_heads % n_kv_heads == 0``).
      hidden_dim: gated-MLP inner width F.
      rope_theta: RoPE base of the global (full-attention) layers; frequency i is ``rope_theta ** (-2i / head_dim)``.
      norm_eps: epsilon inside RMSNorm, ``x / sqrt(mean(x^2) + eps)``.
      max_seq_len: longest sequence (context) the model accepts.
      tie_embeddings: output logits use the input embedding matrix transposed.
      attention_bias: query/key/value projections carry biases (Qwen2).
      architecture: one of SUPPORTED_ARCHITECTURES (names the checkpoint format when writing files).
      head_dim_override: width of a head when it is not ``dim // n_heads`` (Qwen3, Gemma 3); a value equal to
        ``dim // n_heads`` is stored as None, so equal models compare equal.
      qk_norm: RMSNorm (eps ``norm_eps``, gains ``q_norm``/``k_norm`` of width head_dim) over every query and key
        head before the rotary embedding (Qwen3, Gemma 3).
      norm_unit_offset: every RMSNorm gain is ``1 + w`` and the product is taken in float32 before casting back
        (Gemma's ``Gemma3RMSNorm``); parameters then initialise to 0.
      post_norms: two more RMSNorms per layer, on the attention output and on the MLP output before each residual
        add (Gemma 3's ``post_attention_layernorm`` / ``post_feedforward_layernorm``).
      mlp_activation: gate activation of the MLP, one of MLP_ACTIVATIONS.
      embed_scale: the embedding rows are multiplied by ``sqrt(dim)`` rounded to the embedding dtype (Gemma).
      query_pre_attn_scalar: attention scores are scaled by ``query_pre_attn_scalar ** -0.5`` instead of
        ``head_dim ** -0.5`` (Gemma 3).
      attn_logit_softcap: when set, scores become ``c * tanh(scores / c)`` before the mask (Gemma 2 style).
      final_logit_softcap: when set, output logits become ``c * tanh(logits / c)``.
      sliding_window: window W of the ``"sliding_attention"`` layers: query i sees keys j with ``i - W < j <= i``.
      layer_types: per-layer attention kind (entries of LAYER_TYPES), or None for all ``"full_attention"``.
      rope_local_theta: RoPE base of the sliding-window layers (Gemma 3's ``rope_local_base_freq``, never
        rescaled); None: they use ``rope_theta`` and ``rope_scaling`` like the global layers (Qwen).
      rope_scaling: rescaling of the global layers' frequencies (``RopeScaling``), or None.
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
    head_dim_override: int | None = None
    qk_norm: bool = False
    norm_unit_offset: bool = False
    post_norms: bool = False
    mlp_activation: str = "silu"
    embed_scale: bool = False
    query_pre_attn_scalar: float | None = None
    attn_logit_softcap: float | None = None
    final_logit_softcap: float | None = None
    sliding_window: int | None = None
    layer_types: tuple[str, ...] | None = None
    rope_local_theta: float | None = None
    rope_scaling: RopeScaling | None = None

    def __post_init__(self) -> None:
        for name in ("vocab_size", "dim", "n_layers", "n_heads", "n_kv_heads", "hidden_dim", "max_seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ModelConfig.{name} must be a positive int, got {value!r}")
        for name in ("head_dim_override", "sliding_window"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"ModelConfig.{name} must be None or a positive int, got {value!r}")
        if self.head_dim_override is not None and self.head_dim_override * self.n_heads == self.dim:
            object.__setattr__(self, "head_dim_override", None)  # canonical form: the implied width is not stored
        if self.head_dim_override is None and self.dim % self.n_heads:
            raise ValueError(f"ModelConfig.dim={self.dim} must be divisible by n_heads={self.n_heads} "
                             "(or set head_dim_override)")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"ModelConfig.n_heads={self.n_heads} must be divisible by n_kv_heads={self.n_kv_heads}")
        if self.head_dim % 2:
            raise ValueError(f"ModelConfig head_dim={self.head_dim} must be even for rotary embeddings")
        for name in ("rope_theta", "norm_eps"):
            if not _positive_number(getattr(self, name)):
                raise ValueError(f"ModelConfig.{name} must be a positive finite number, got {getattr(self, name)!r}")
        for name in ("query_pre_attn_scalar", "attn_logit_softcap", "final_logit_softcap", "rope_local_theta"):
            value = getattr(self, name)
            if value is not None and not _positive_number(value):
                raise ValueError(f"ModelConfig.{name} must be None or a positive finite number, got {value!r}")
        for name in ("tie_embeddings", "attention_bias", "qk_norm", "norm_unit_offset", "post_norms", "embed_scale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.architecture not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"ModelConfig.architecture must be one of {SUPPORTED_ARCHITECTURES}, got {self.architecture!r}"
            )
        if self.mlp_activation not in MLP_ACTIVATIONS:
            raise ValueError(f"ModelConfig.mlp_activation must be one of {MLP_ACTIVATIONS}, got {self.mlp_activation!r}")
        if self.rope_scaling is not None and not isinstance(self.rope_scaling, RopeScaling):
            raise ValueError(f"ModelConfig.rope_scaling must be None or a RopeScaling, got {self.rope_scaling!r}")
        if self.layer_types is not None:
            if isinstance(self.layer_types, list):
                object.__setattr__(self, "layer_types", tuple(self.layer_types))
            if not isinstance(self.layer_types, tuple) or len(self.layer_types) != self.n_layers or any(
                    t not in LAYER_TYPES for t in self.layer_types):
                raise ValueError(f"ModelConfig.layer_types must be None or n_layers={self.n_layers} entries of "
                                 f"{LAYER_TYPES}, got {self.layer_types!r}")
            if all(t == "full_attention" for t in self.layer_types):
                object.__setattr__(self, "layer_types", None)  # canonical form of "no sliding layer"
        if self.layer_types is not None and self.sliding_window is None:
            raise ValueError("ModelConfig.layer_types has sliding_attention layers but sliding_window is None")
        if self.layer_types is None and self.sliding_window is not None:
            raise ValueError(f"ModelConfig.sliding_window={self.sliding_window} is set but no layer is "
                             "'sliding_attention' (set layer_types)")

    @property
    def head_dim(self) -> int:
        """Width of one attention head: ``head_dim_override`` if set, else ``dim // n_heads``."""
        return self.head_dim_override if self.head_dim_override is not None else self.dim // self.n_heads

    @property
    def n_groups(self) -> int:
        """Query heads per key/value head, ``n_heads // n_kv_heads``."""
        return self.n_heads // self.n_kv_heads

    @property
    def sliding_layers(self) -> tuple[bool, ...]:
        """Per layer, whether it attends within ``sliding_window`` only."""
        if self.layer_types is None:
            return (False,) * self.n_layers
        return tuple(t == "sliding_attention" for t in self.layer_types)

    def n_params(self) -> int:
        """Number of scalar parameters (embedding counted once when tied)."""
        d, f, hd = self.dim, self.hidden_dim, self.head_dim
        q, kv = self.n_heads * hd, self.n_kv_heads * hd
        per_layer = 2 * d + d * q + 2 * d * kv + q * d + 3 * d * f
        if self.attention_bias:
            per_layer += q + 2 * kv
        if self.qk_norm:
            per_layer += 2 * hd
        if self.post_norms:
            per_layer += 2 * d
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
