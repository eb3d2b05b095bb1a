"""A Llama-family decoder-only transformer as pure JAX functions (Llama 2/3.x, SmolLM2, Qwen2, Qwen3, Gemma 3).

Architecture, top to bottom (x is the residual stream, [B, T, D]; bracketed steps are config flags, see
``sft_tilt.lm.config``):

    x_0 = E[tokens]  [* sqrt(D)  embed_scale]                    token embedding, E: [V, D]
    for each of the L blocks:
        h   = RMSNorm(x; g_attn)                                 x / sqrt(mean(x^2) + eps) * g  [* (1 + g) norm_unit_offset]
        q   = h Wq (+ bq),  k = h Wk (+ bk),  v = h Wv (+ bv)     H query heads, K <= H key/value heads
        [q,k = RMSNorm per head (g_q, g_k)                       qk_norm]
        q,k = RoPE(q, pos), RoPE(k, pos)                        rotate pairs (i, i + hd/2) by pos * f_i; f_i from the
                                                                layer's base (rope_theta / rope_local_theta) and rope_scaling
        s   = q k^T * scale                                      scale = hd^-1/2  [query_pre_attn_scalar^-1/2]
        [s  = c tanh(s / c)                                      attn_logit_softcap]
        a   = softmax(s + mask) v                                causal; sliding layers also hide keys >= W positions back
        o   = a Wo  [-> RMSNorm(o; g_attn_post)  post_norms]
        x   = x + o
        h   = RMSNorm(x; g_mlp)
        m   = (act(h Wg) * (h Wu)) Wd                            act = silu (SwiGLU) or gelu_tanh (GeGLU)
        x   = x + m  [m -> RMSNorm(m; g_mlp_post) first, post_norms]
    logits = RMSNorm(x; g_final) @ (E^T if tied else W_head)  [-> c tanh(logits / c)  final_logit_softcap]

Parameters are a plain dict (a pytree). Per-layer weights are stacked along a leading axis of length L so the
blocks run under one ``jax.lax.scan`` (one compiled block, fast compilation for deep models). Weight matrices
are stored ``[in, out]`` (``y = x @ W``); loaders transpose from the ``[out, in]`` layout of checkpoints.

The rotary convention is Hugging Face's "rotate half" (pairs (i, i + head_dim/2)); GGUF files store Q/K rows
in Meta's interleaved order, which ``sft_tilt.lm.gguf_io`` undoes on load.

    params = {
      "embed":      [V, D],
      "layers": {"attn_norm": [L, D], "wq": [L, D, H*hd], "wk": [L, D, K*hd], "wv": [L, D, K*hd],
                 "wo": [L, H*hd, D], ("bq": [L, H*hd], "bk": [L, K*hd], "bv": [L, K*hd],  attention_bias)
                 ("q_norm": [L, hd], "k_norm": [L, hd],  qk_norm)
                 ("attn_post_norm": [L, D], "mlp_post_norm": [L, D],  post_norms)
                 "mlp_norm": [L, D], "w_gate": [L, D, F], "w_up": [L, D, F], "w_down": [L, F, D]},
      "final_norm": [D],
      ("lm_head":   [D, V]  only when not tie_embeddings)
    }
"""

from __future__ import annotations

import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.lm.config import ModelConfig

__all__ = [
    "param_shapes",
    "validate_params",
    "init_params",
    "rms_norm",
    "rope_cos_sin",
    "apply_rope",
    "attention",
    "ATTENTION_CHUNK",
    "swiglu",
    "gated_mlp",
    "rope_inv_freq",
    "forward",
    "forward_hidden",
    "output_logits",
    "init_kv_cache",
    "forward_cached",
    "forward_cached_hidden",
    "remat_policy",
    "token_log_probs",
    "per_token_losses",
]

Params = dict[str, Any]


#: Environment variable choosing what a block keeps for its backward pass (read when a step is traced).
REMAT_ENV = "SFT_REMAT"


def remat_policy():
    """What each block saves under differentiation; the rest is recomputed in the backward pass.

    ``SFT_REMAT=dots``: the outputs of the weight matmuls (norms, rotary, attention and activations are recomputed);
    ``SFT_REMAT=none``: nothing but the block's input (the whole block is recomputed; least memory, what
    ``sft_tilt.lm.memory_plan`` plans for); ``auto`` (default): ``dots`` on CPU, ``none`` on accelerators, where memory
    bounds the mesh. ``dots`` trades some peak memory for not recomputing the matmuls (the step times and peak
    memory of each policy are on the documentation's performance page).
    """
    choice = os.environ.get(REMAT_ENV, "auto")
    if choice not in ("auto", "dots", "none"):
        raise ValueError(f"{REMAT_ENV}: must be 'auto', 'dots' or 'none', got {choice!r}")
    if choice == "auto":
        choice = "dots" if jax.default_backend() == "cpu" else "none"
    policies = jax.checkpoint_policies
    return policies.dots_with_no_batch_dims_saveable if choice == "dots" else policies.nothing_saveable


def _scan_unroll(config: ModelConfig) -> int | bool:
    """Layers run under ``lax.scan``; shallow models (<= 4 layers) are fully unrolled (faster to compile and run)."""
    return True if config.n_layers <= 4 else 1


# ---------------------------------------------------------------------------------------------------------------
# Parameter layout
# ---------------------------------------------------------------------------------------------------------------


def param_shapes(config: ModelConfig) -> dict[str, Any]:
    """The expected shape of every parameter, as a pytree of tuples with the same structure as the params."""
    V, D, L, F = config.vocab_size, config.dim, config.n_layers, config.hidden_dim
    Q, KV = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    layers = {
        "attn_norm": (L, D),
        "wq": (L, D, Q),
        "wk": (L, D, KV),
        "wv": (L, D, KV),
        "wo": (L, Q, D),
        "mlp_norm": (L, D),
        "w_gate": (L, D, F),
        "w_up": (L, D, F),
        "w_down": (L, F, D),
    }
    if config.attention_bias:
        layers.update(bq=(L, Q), bk=(L, KV), bv=(L, KV))
    if config.qk_norm:
        layers.update(q_norm=(L, config.head_dim), k_norm=(L, config.head_dim))
    if config.post_norms:
        layers.update(attn_post_norm=(L, D), mlp_post_norm=(L, D))
    shapes: dict[str, Any] = {"embed": (V, D), "layers": layers, "final_norm": (D,)}
    if not config.tie_embeddings:
        shapes["lm_head"] = (D, V)
    return shapes


def validate_params(config: ModelConfig, params: Params, source: str = "params") -> None:
    """Raise ValueError naming ``source`` and the parameter when the pytree's keys or shapes disagree with config."""
    expected = param_shapes(config)

    def check(exp: dict, got: Any, prefix: str) -> None:
        if not isinstance(got, dict):
            raise ValueError(f"{source}: {prefix or 'params'} must be a dict, got {type(got).__name__}")
        missing = sorted(set(exp) - set(got))
        extra = sorted(set(got) - set(exp))
        if missing or extra:
            raise ValueError(f"{source}: parameter keys disagree with the config: missing {missing}, unexpected {extra}")
        for key, shape in exp.items():
            name = f"{prefix}{key}"
            if isinstance(shape, dict):
                check(shape, got[key], name + ".")
            elif tuple(np.shape(got[key])) != shape:
                raise ValueError(
                    f"{source}: parameter {name} has shape {tuple(np.shape(got[key]))}, the config implies {shape}"
                )

    check(expected, params, "")


def init_params(config: ModelConfig, key: jax.Array, dtype: Any = jnp.float32) -> Params:
    """Random initial parameters: weights ~ N(0, 0.02^2), norm gains 1 (stored as 0 under ``norm_unit_offset``),
    biases ~ N(0, 0.02^2).

    Biases are random rather than zero so tests exercise them. Deterministic given ``key``.
    """
    shapes = param_shapes(config)
    leaves, treedef = jax.tree_util.tree_flatten(shapes, is_leaf=lambda s: isinstance(s, tuple))
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(
        shapes, is_leaf=lambda s: isinstance(s, tuple))[0]]
    keys = jax.random.split(key, len(leaves))
    out = []
    for path, shape, k in zip(paths, leaves, keys):
        if "norm" in path:
            out.append((jnp.zeros if config.norm_unit_offset else jnp.ones)(shape, dtype))
        else:
            out.append((0.02 * jax.random.normal(k, shape, jnp.float32)).astype(dtype))
    return jax.tree_util.tree_unflatten(treedef, out)


# ---------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------


def rms_norm(x: jax.Array, gain: jax.Array, eps: float, unit_offset: bool = False) -> jax.Array:
    """RMSNorm: ``x / sqrt(mean(x^2, axis=-1) + eps) * gain``, computed in (at least) float32, returned in x's dtype.

    The normalised value is cast to x's dtype before the gain multiplies it (Llama/Qwen). With ``unit_offset``
    (Gemma) the gain is ``1 + gain`` and the product is taken in float32 before the cast.
    """
    acc = jnp.promote_types(x.dtype, jnp.float32)
    x32 = x.astype(acc)
    normed = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    if unit_offset:
        return (normed * (1.0 + gain.astype(acc))).astype(x.dtype)
    return gain * normed.astype(x.dtype)


def rope_inv_freq(head_dim: int, theta: float, scaling=None) -> jax.Array:
    """The ``head_dim / 2`` inverse frequencies ``theta^(-2i/head_dim)`` in float32, rescaled by ``scaling``
    (a ``sft_tilt.lm.config.RopeScaling``: ``linear`` or ``llama3``, formulas in its docstring), as Hugging Face's
    ``modeling_rope_utils`` computes them."""
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if scaling is None:
        return inv_freq
    if scaling.rope_type == "linear":
        return inv_freq / scaling.factor
    factor, low, high = scaling.factor, scaling.low_freq_factor, scaling.high_freq_factor
    old_len = scaling.original_max_position_embeddings
    wavelen = 2 * math.pi / inv_freq
    scaled = jnp.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
    smooth = (old_len / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < old_len / high) & ~(wavelen > old_len / low)
    return jnp.where(medium, smoothed, scaled)


def rope_cos_sin(positions: jax.Array, head_dim: int, theta: float, scaling=None) -> tuple[jax.Array, jax.Array]:
    """Rotary tables for integer ``positions`` [..., T]: cos/sin of ``pos * f_i``, shape [..., T, head_dim], with
    ``f = rope_inv_freq(head_dim, theta, scaling)`` (``theta^(-2i/head_dim)`` unless rescaled).

    The half-width frequencies are repeated (``concat(f, f)``) to match the rotate-half pairing (i, i + head_dim/2).
    Computed in float32 like the Hugging Face reference.
    """
    inv_freq = rope_inv_freq(head_dim, theta, scaling)
    angles = positions.astype(jnp.float32)[..., None] * inv_freq.astype(jnp.float32)
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x`` [B, T, heads, hd] by the tables [B, T, hd]: ``x * cos + rotate_half(x) * sin``,
    with ``rotate_half([x1, x2]) = [-x2, x1]``."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    cos, sin = cos[:, :, None, :].astype(x.dtype), sin[:, :, None, :].astype(x.dtype)
    return x * cos + rotated * sin


#: Query chunk of causal self-attention over a whole sequence (``attention``'s ``query_chunk``): at 8 x 320 tokens a
#: block's forward and backward took 513 ms unchunked; chunks of 64 skip the masked upper triangle of score blocks.
ATTENTION_CHUNK = 64


def attention(q: jax.Array, k: jax.Array, v: jax.Array, q_pos: jax.Array, k_pos: jax.Array, scale: float | None = None,
              softcap: float | None = None, window=None, query_chunk: int | None = None) -> jax.Array:
    """Grouped-query causal attention.

    q: [B, T, H, hd]; k, v: [B, S, K, hd] with H = K * G; q_pos [B, T], k_pos [B, S] integer positions.
    Query head ``h`` attends to key/value head ``h // G`` over keys with ``k_pos <= q_pos`` (and, when ``window``
    is given, ``q_pos - k_pos < window``; ``window`` may be a traced scalar, a huge value disabling it):

        s = q k^T * scale            (scale defaults to 1 / sqrt(hd))
        s = softcap * tanh(s / softcap)                  (only when softcap is set)
        a = softmax(s, masked) v                         (softmax in float32)

    With ``query_chunk`` = C the queries are taken C at a time and the chunk of queries [a, b) reads keys [0, b) only.
    That is exact when keys and queries are the same sequence in position order (key j > query t is masked), as in a
    whole-sequence forward pass; the scores of the masked upper triangle of C x C blocks are then never computed.

    Returns [B, T, H * hd].
    """
    B, T, H, hd = q.shape
    if query_chunk is not None and T > query_chunk:
        if k.shape[1] != T:
            raise ValueError(f"query_chunk: needs keys of the queries' own sequence, got {k.shape[1]} keys for {T} queries")
        return jnp.concatenate([
            attention(q[:, a:a + query_chunk], k[:, :a + query_chunk], v[:, :a + query_chunk],
                      q_pos[:, a:a + query_chunk], k_pos[:, :a + query_chunk], scale, softcap, window)
            for a in range(0, T, query_chunk)], axis=1)
    K = k.shape[2]
    G = H // K
    qg = q.reshape(B, T, K, G, hd)
    acc = jnp.promote_types(q.dtype, jnp.float32)  # float32 for float32/bfloat16 weights, float64 for float64
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=acc)
    scores = scores / math.sqrt(hd) if scale is None else scores * scale
    if softcap is not None:
        scores = jnp.tanh(scores / softcap) * softcap
    mask = k_pos[:, None, None, None, :] <= q_pos[:, None, None, :, None]
    if window is not None:
        mask &= (q_pos[:, None, None, :, None] - k_pos[:, None, None, None, :]) < window
    scores = jnp.where(mask, scores, jnp.finfo(acc).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v)
    return out.reshape(B, T, H * hd)


def swiglu(h: jax.Array, w_gate: jax.Array, w_up: jax.Array, w_down: jax.Array) -> jax.Array:
    """SwiGLU MLP: ``(silu(h Wg) * (h Wu)) Wd`` with ``silu(z) = z * sigmoid(z)``."""
    return (jax.nn.silu(h @ w_gate) * (h @ w_up)) @ w_down


def gated_mlp(h: jax.Array, w_gate: jax.Array, w_up: jax.Array, w_down: jax.Array, activation: str = "silu") -> jax.Array:
    """Gated MLP ``(act(h Wg) * (h Wu)) Wd``: SwiGLU for ``activation="silu"``, GeGLU for ``"gelu_tanh"``
    (``gelu(z) = z/2 (1 + tanh(sqrt(2/pi) (z + 0.044715 z^3)))``, torch's ``gelu(approximate="tanh")``)."""
    if activation == "silu":
        return swiglu(h, w_gate, w_up, w_down)
    if activation == "gelu_tanh":
        return (jax.nn.gelu(h @ w_gate, approximate=True) * (h @ w_up)) @ w_down
    raise ValueError(f"unknown MLP activation {activation!r}")


def _rope_tables(config: ModelConfig, pos: jax.Array):
    """(cos, sin) of the global layers and, when the model has sliding layers with their own base, of those."""
    tables = rope_cos_sin(pos, config.head_dim, config.rope_theta, config.rope_scaling)
    local = None
    if config.layer_types is not None and config.rope_local_theta is not None:
        local = rope_cos_sin(pos, config.head_dim, config.rope_local_theta)
    return tables, local


def _layer_xs(config: ModelConfig, params: Params):
    """What ``lax.scan`` feeds each block: its weights and whether it is a sliding-window layer."""
    return params["layers"], jnp.asarray(config.sliding_layers)


def _block(config: ModelConfig, x, layer, rope, q_pos, sliding, kv=None, start=None, in_order=False):
    """One transformer block. ``rope`` is ``_rope_tables``'s pair and ``sliding`` this layer's (traced) flag;
    ``in_order`` says the positions are ``arange(T)`` in every row (attention may then skip masked blocks).
    With ``kv`` = (k_cache, v_cache) [B, S, K, hd] the new keys/values are written at ``start`` and attention
    reads the whole cache; returns (x, (k_cache, v_cache))."""
    B, T, _ = x.shape
    H, K, hd = config.n_heads, config.n_kv_heads, config.head_dim
    eps, unit = config.norm_eps, config.norm_unit_offset
    (cos, sin), local = rope
    if local is not None:
        cos, sin = jnp.where(sliding, local[0], cos), jnp.where(sliding, local[1], sin)
    window = None
    if config.layer_types is not None:
        window = jnp.where(sliding, config.sliding_window, jnp.iinfo(jnp.int32).max)

    # The matmuls see [B*T, D] rows, not [B, T, D]: with a batch-and-time activation, the weight gradient contracts
    # two axes and XLA's CPU backend runs the whole block's backward at half rate (measured: 2x on the MLP's vjp).
    x = x.reshape(B * T, x.shape[-1])
    h = rms_norm(x, layer["attn_norm"], eps, unit)
    q, k, v = h @ layer["wq"], h @ layer["wk"], h @ layer["wv"]
    if config.attention_bias:
        q, k, v = q + layer["bq"], k + layer["bk"], v + layer["bv"]
    q, k, v = q.reshape(B, T, H, hd), k.reshape(B, T, K, hd), v.reshape(B, T, K, hd)
    if config.qk_norm:
        q, k = rms_norm(q, layer["q_norm"], eps, unit), rms_norm(k, layer["k_norm"], eps, unit)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)

    if kv is None:
        k_all, v_all, k_pos = k, v, q_pos
    else:
        k_cache, v_cache = kv
        if jnp.ndim(start) == 0:
            k_all = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, start, 0, 0))
            v_all = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, start, 0, 0))
        else:  # row b's tokens go to positions start[b] .. start[b] + T - 1
            rows, cols = jnp.arange(B)[:, None], start[:, None] + jnp.arange(T)
            k_all = k_cache.at[rows, cols].set(k.astype(k_cache.dtype))
            v_all = v_cache.at[rows, cols].set(v.astype(v_cache.dtype))
        kv = (k_all, v_all)
        k_pos = jnp.broadcast_to(jnp.arange(k_all.shape[1]), (B, k_all.shape[1]))
    scale = None if config.query_pre_attn_scalar is None else config.query_pre_attn_scalar ** -0.5
    # a whole sequence in position order (positions not given) is attended chunk by chunk, skipping masked blocks
    chunk = ATTENTION_CHUNK if kv is None and in_order else None
    o = attention(q, k_all, v_all, q_pos, k_pos, scale, config.attn_logit_softcap, window, chunk).reshape(B * T, H * hd) @ layer["wo"]
    if config.post_norms:
        o = rms_norm(o, layer["attn_post_norm"], eps, unit)
    x = x + o

    h = rms_norm(x, layer["mlp_norm"], eps, unit)
    m = gated_mlp(h, layer["w_gate"], layer["w_up"], layer["w_down"], config.mlp_activation)
    if config.post_norms:
        m = rms_norm(m, layer["mlp_post_norm"], eps, unit)
    return (x + m).reshape(B, T, -1), kv


def _embed(params: Params, config: ModelConfig, tokens: jax.Array) -> jax.Array:
    """Embedding rows, times ``sqrt(dim)`` rounded to the embedding dtype under ``embed_scale`` (as HF Gemma)."""
    x = params["embed"][tokens]
    if config.embed_scale:
        x = x * jnp.asarray(np.float32(config.dim ** 0.5), dtype=params["embed"].dtype)
    return x


def output_logits(params: Params, config: ModelConfig, x: jax.Array) -> jax.Array:
    """Final RMSNorm and the output head (and soft-cap) of hidden states ``x`` [..., D] (any leading shape: every
    position is independent): ``RMSNorm(x; g_final) @ head`` [..., V], in float32 (float64 only for float64 weights).
    """
    x = rms_norm(x, params["final_norm"], config.norm_eps, config.norm_unit_offset)
    head = params["embed"].T if config.tie_embeddings else params["lm_head"]
    acc = jnp.promote_types(head.dtype, jnp.float32)
    # as rows [N, D] (see _block: a weight gradient contracting batch and time axes runs at half rate on CPU)
    logits = jnp.matmul(x.reshape(-1, x.shape[-1]), head, preferred_element_type=acc).astype(acc)
    logits = logits.reshape(*x.shape[:-1], logits.shape[-1])
    if config.final_logit_softcap is not None:
        logits = jnp.tanh(logits / config.final_logit_softcap) * config.final_logit_softcap
    return logits


def _check_tokens(config: ModelConfig, tokens: jax.Array, name: str = "tokens") -> None:
    if tokens.ndim != 2:
        raise ValueError(f"{name} must have shape [batch, time], got shape {tuple(tokens.shape)}")
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise ValueError(f"{name} must be integer token ids, got dtype {tokens.dtype}")
    if tokens.shape[1] > config.max_seq_len:
        raise ValueError(
            f"{name} has length {tokens.shape[1]}, longer than the model's context max_seq_len={config.max_seq_len}"
        )


def _positions(tokens: jax.Array, positions) -> jax.Array:
    B, T = tokens.shape
    if positions is None:
        return jnp.broadcast_to(jnp.arange(T), (B, T))
    positions = jnp.asarray(positions)
    if positions.ndim == 1:
        positions = jnp.broadcast_to(positions, (B, T))
    if positions.shape != (B, T):
        raise ValueError(f"positions must have shape [T] or [B, T] = {(B, T)}, got {tuple(positions.shape)}")
    return positions


# ---------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------


def forward_hidden(params: Params, config: ModelConfig, tokens: jax.Array, positions=None) -> jax.Array:
    """The residual stream after the last block (before the final norm), [B, T, D]."""
    tokens = jnp.asarray(tokens)
    _check_tokens(config, tokens)
    pos = _positions(tokens, positions)
    rope = _rope_tables(config, pos)
    x = _embed(params, config, tokens)

    def body(x, layer_and_kind):
        layer, sliding = layer_and_kind
        x, _ = _block(config, x, layer, rope, pos, sliding, in_order=positions is None)
        return x, None

    # Rematerialisation (policy and measurements at remat_policy): same results, less activation memory.
    body = jax.checkpoint(body, policy=remat_policy(), prevent_cse=False)
    x, _ = jax.lax.scan(body, x, _layer_xs(config, params), unroll=_scan_unroll(config))
    return x


def forward(params: Params, config: ModelConfig, tokens: jax.Array, positions=None) -> jax.Array:
    """Logits [B, T, V] (float32; float64 only when the weights are float64) of the next token at every position of ``tokens`` [B, T] (causal).

    ``positions`` ([T] or [B, T] integers, default ``arange(T)``) only enter the rotary embedding; the
    attention mask is causal in ``positions`` (key j visible from query i iff pos_j <= pos_i).
    """
    return output_logits(params, config, forward_hidden(params, config, tokens, positions))


def init_kv_cache(config: ModelConfig, batch: int, length: int, dtype: Any = jnp.float32):
    """Empty key/value cache: a pair of zeros [L, B, length, K, hd] (sliding-window layers keep every position
    too and mask by distance, so the cache is exact, not a ring buffer)."""
    if length > config.max_seq_len:
        raise ValueError(f"cache length {length} exceeds max_seq_len={config.max_seq_len}")
    shape = (config.n_layers, batch, length, config.n_kv_heads, config.head_dim)
    return jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)


def forward_cached(params: Params, config: ModelConfig, tokens: jax.Array, cache, start):
    """Incremental forward pass: ``tokens`` [B, T] sit at positions ``start .. start+T-1``; their keys/values are
    written into ``cache`` (from ``init_kv_cache``) and they attend to every cached position <= their own.
    ``start`` is a scalar or, for rows at different positions (prompts of different lengths decoded together), a
    vector [B] of per-row starts.

    Returns (logits [B, T, V] float32, updated cache). Equals ``forward`` on the full prefix (tested).
    """
    x, cache = forward_cached_hidden(params, config, tokens, cache, start)
    return output_logits(params, config, x), cache


def forward_cached_hidden(params: Params, config: ModelConfig, tokens: jax.Array, cache, start):
    """``forward_cached`` without the output head: (the last block's residual stream [B, T, D], updated cache), so
    a caller that needs the logits of a few positions projects only those (``output_logits``)."""
    tokens = jnp.asarray(tokens)
    _check_tokens(config, tokens)
    B, T = tokens.shape
    start = jnp.asarray(start)
    if start.ndim not in (0, 1) or (start.ndim == 1 and start.shape[0] != B):
        raise ValueError(f"start must be a scalar or a vector of {B} row starts, got shape {tuple(start.shape)}")
    pos = jnp.broadcast_to(start[..., None] + jnp.arange(T), (B, T))
    rope = _rope_tables(config, pos)
    x = _embed(params, config, tokens)
    k_cache, v_cache = cache

    def body(x, layer_and_cache):
        (layer, sliding), kc, vc = layer_and_cache
        x, (kc, vc) = _block(config, x, layer, rope, pos, sliding, kv=(kc, vc), start=start)
        return x, (kc, vc)

    x, (k_cache, v_cache) = jax.lax.scan(body, x, (_layer_xs(config, params), k_cache, v_cache),
                                         unroll=_scan_unroll(config))
    return x, (k_cache, v_cache)


# ---------------------------------------------------------------------------------------------------------------
# Log-probabilities and losses
# ---------------------------------------------------------------------------------------------------------------


def token_log_probs(params: Params, config: ModelConfig, tokens: jax.Array, positions=None) -> jax.Array:
    """``log p(tokens[:, t+1] | tokens[:, :t+1])`` for t = 0..T-2, shape [B, T-1], float32.

    Computed as ``logit[target] - logsumexp(logits)`` (the log-softmax at the target, without materialising the
    full log-softmax).
    """
    logits = forward(params, config, tokens, positions)[:, :-1]
    targets = jnp.asarray(tokens)[:, 1:]
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


def per_token_losses(params: Params, config: ModelConfig, tokens: jax.Array, loss_mask: jax.Array,
                     positions=None) -> jax.Array:
    """Per-token negative log-likelihood [B, T-1]: ``-log p(tokens[:, t] | tokens[:, :t]) * loss_mask[:, t]`` for t = 1..T-1.

    ``loss_mask`` [B, T] is aligned with ``tokens``: ``loss_mask[b, t] = 1`` makes token t a *target* (its
    probability given the prefix before it is scored); ``loss_mask[:, 0]`` is ignored because the first token has
    no prefix. Output column j corresponds to target token j + 1. Entries where the mask is 0 are exactly 0.
    """
    tokens = jnp.asarray(tokens)
    loss_mask = jnp.asarray(loss_mask)
    if loss_mask.shape != tokens.shape:
        raise ValueError(f"loss_mask must have the shape of tokens {tuple(tokens.shape)}, got {tuple(loss_mask.shape)}")
    mask = loss_mask[:, 1:].astype(jnp.float32)
    nll = -token_log_probs(params, config, tokens, positions)
    return jnp.where(mask != 0, nll * mask, 0.0)
