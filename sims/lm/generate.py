"""Greedy decoding, with a key/value cache or by recomputing the whole prefix.

    x_{t+1} = argmax_v  logits(x_1..x_t)[v]

With ``use_cache=True`` the prompt is run once (prefill), its keys/values stored per layer, and each new token
costs one single-position forward pass (``sims.lm.model.forward_cached``). With ``use_cache=False`` every step
reruns ``forward`` over the whole (right-padded, fixed-length, so compiled once) sequence and reads the logits at
the last real position; causality makes the padding invisible. The two give the same tokens (tested).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sims.lm.config import ModelConfig
from sims.lm.model import forward, forward_cached, init_kv_cache

__all__ = ["generate_greedy"]


@functools.partial(jax.jit, static_argnums=(1,), donate_argnums=(3,))
def _cached_step(params, config: ModelConfig, tokens, cache, start):
    logits, cache = forward_cached(params, config, tokens, cache, start)
    return jnp.argmax(logits[:, -1], axis=-1).astype(jnp.int32), cache


@functools.partial(jax.jit, static_argnums=(1,))
def _full_step(params, config: ModelConfig, padded, last):
    logits = forward(params, config, padded)
    return jnp.argmax(logits[:, last], axis=-1).astype(jnp.int32)


def generate_greedy(
    params,
    config: ModelConfig,
    prompt_tokens,
    max_new_tokens: int,
    use_cache: bool = True,
    eos_id: int | None = None,
) -> np.ndarray:
    """Greedy continuation of ``prompt_tokens`` ([T] or [B, T] ints, all rows the same length).

    Returns the new tokens only, as a NumPy int32 array [B, n] (or [n] for a 1-D prompt), n <= max_new_tokens.
    With ``eos_id``, generation stops once every row has produced it; a row's positions after its own eos are
    filled with ``eos_id``. Raises ValueError if ``T + max_new_tokens`` exceeds ``config.max_seq_len``.
    """
    prompt = np.asarray(prompt_tokens)
    squeeze = prompt.ndim == 1
    if squeeze:
        prompt = prompt[None]
    if prompt.ndim != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt_tokens must be a non-empty [T] or [B, T] array, got shape {prompt.shape}")
    if not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"prompt_tokens must be integer token ids, got dtype {prompt.dtype}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    if prompt.min() < 0 or prompt.max() >= config.vocab_size:
        raise ValueError(f"prompt_tokens must lie in [0, vocab_size={config.vocab_size})")
    B, T = prompt.shape
    total = T + int(max_new_tokens)
    if total > config.max_seq_len:
        raise ValueError(
            f"prompt length {T} + max_new_tokens {max_new_tokens} = {total} exceeds max_seq_len={config.max_seq_len}"
        )
    prompt = prompt.astype(np.int32)
    params = jax.tree_util.tree_map(jnp.asarray, params)  # NumPy weights would be copied to the device every step
    done = np.zeros(B, dtype=bool)
    out: list[np.ndarray] = []

    def emit(tok: np.ndarray) -> np.ndarray:
        nonlocal done
        if eos_id is not None:
            tok = np.where(done, eos_id, tok)
            done = done | (tok == eos_id)
        out.append(tok)
        return tok

    if use_cache:
        dtype = jax.tree_util.tree_leaves(params)[0].dtype
        cache = init_kv_cache(config, B, total, dtype=dtype)
        tok, cache = _cached_step(params, config, jnp.asarray(prompt), cache, 0)
        tok = emit(np.asarray(tok))
        for step in range(1, int(max_new_tokens)):
            if eos_id is not None and done.all():
                break
            nxt, cache = _cached_step(params, config, jnp.asarray(tok[:, None]), cache, T + step - 1)
            tok = emit(np.asarray(nxt))
    else:
        padded = np.zeros((B, total), dtype=np.int32)
        padded[:, :T] = prompt
        for step in range(int(max_new_tokens)):
            if eos_id is not None and done.all():
                break
            tok = emit(np.asarray(_full_step(params, config, jnp.asarray(padded), T + step - 1)))
            padded[:, T + step] = tok
    result = np.stack(out, axis=1).astype(np.int32)
    return result[0] if squeeze else result
