"""Greedy decoding, with a key/value cache or by recomputing the whole prefix.

    x_{t+1} = argmax_v  logits(x_1..x_t)[v]

With ``use_cache=True`` the prompt is run once (prefill), its keys/values stored per layer, and each new token
costs one single-position forward pass (``sft_tilt.lm.model.forward_cached``). With ``use_cache=False`` every step
reruns ``forward`` over the whole (right-padded, fixed-length, so compiled once) sequence and reads the logits at
the last real position; causality makes the padding invisible. The two give the same tokens (tested).

Shapes are bucketed so one compiled program serves many prompt lengths: the prompt is right-padded to a multiple of
``PROMPT_BUCKET`` tokens and the cache (or the recomputed sequence) to a multiple of ``LENGTH_BUCKET``, capped at the
model's context. Padding is never seen: the first token is read at the last real prompt position, and a padded cache
slot at position p holds junk only until the token generated for position p overwrites it, which happens before any
query at position >= p attends to it (keys at later positions are masked). Without buckets a harness decoding
prompts of a hundred different lengths compiled two programs per length.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import forward_cached_hidden, forward_hidden, init_kv_cache, output_logits

__all__ = ["PROMPT_BUCKET", "LENGTH_BUCKET", "bucketed_length", "generate_greedy", "generate_greedy_many"]

#: Prompts are right-padded to a multiple of this many tokens.
PROMPT_BUCKET = 32
#: Caches (and recomputed sequences) hold a multiple of this many positions.
LENGTH_BUCKET = 64


def bucketed_length(length: int, bucket: int, cap: int) -> int:
    """``min(bucket * ceil(length / bucket), cap)``: the padded size serving every length in the same bucket
    (``length <= cap`` is the caller's to check)."""
    return min(bucket * -(-int(length) // bucket), int(cap))


@functools.partial(jax.jit, static_argnums=(1,), donate_argnums=(3,))
def _cached_step(params, config: ModelConfig, tokens, cache, start, last):
    """Write ``tokens`` [B, T] at ``start`` (scalar or [B]) into the cache; row b's greedy next token after its
    position ``start + last[b]``."""
    hidden, cache = forward_cached_hidden(params, config, tokens, cache, start)
    logits = output_logits(params, config, hidden[jnp.arange(hidden.shape[0]), last])
    return jnp.argmax(logits, axis=-1).astype(jnp.int32), cache


@functools.partial(jax.jit, static_argnums=(1,))
def _full_step(params, config: ModelConfig, padded, last):
    hidden = forward_hidden(params, config, padded)
    logits = output_logits(params, config, jax.lax.dynamic_index_in_dim(hidden, last, axis=1, keepdims=False))
    return jnp.argmax(logits, axis=-1).astype(jnp.int32)


def _check_new_tokens(max_new_tokens) -> int:
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
    return int(max_new_tokens)


def _check_prompt(config: ModelConfig, prompt: np.ndarray, max_new_tokens: int, name: str) -> None:
    if not np.issubdtype(prompt.dtype, np.integer):
        raise ValueError(f"{name} must be integer token ids, got dtype {prompt.dtype}")
    if prompt.min() < 0 or prompt.max() >= config.vocab_size:
        raise ValueError(f"{name} must lie in [0, vocab_size={config.vocab_size})")
    total = prompt.shape[-1] + max_new_tokens
    if total > config.max_seq_len:
        raise ValueError(f"{name}: prompt length {prompt.shape[-1]} + max_new_tokens {max_new_tokens} = {total} "
                         f"exceeds max_seq_len={config.max_seq_len}")


class _Emitter:
    """Collects each step's tokens; with ``eos_id``, a row that has produced it keeps producing it."""

    def __init__(self, rows: int, eos_id: int | None):
        self.eos_id, self.done, self.out = eos_id, np.zeros(rows, dtype=bool), []

    def __call__(self, tok: np.ndarray) -> np.ndarray:
        if self.eos_id is not None:
            tok = np.where(self.done, self.eos_id, tok)
            self.done = self.done | (tok == self.eos_id)
        self.out.append(tok)
        return tok

    @property
    def finished(self) -> bool:
        return self.eos_id is not None and bool(self.done.all())

    def tokens(self) -> np.ndarray:
        return np.stack(self.out, axis=1).astype(np.int32)


def _decode_cached(params, config: ModelConfig, prompts: np.ndarray, lengths: np.ndarray, max_new_tokens: int,
                   eos_id: int | None) -> np.ndarray:
    """Greedy tokens [B, n] after right-padded ``prompts`` [B, T] whose row b holds ``lengths[b]`` real tokens."""
    B = prompts.shape[0]
    lengths = np.asarray(lengths, dtype=np.int32)
    cache_len = bucketed_length(int(lengths.max()) + max_new_tokens, LENGTH_BUCKET, config.max_seq_len)
    padded = np.zeros((B, bucketed_length(prompts.shape[1], PROMPT_BUCKET, cache_len)), dtype=np.int32)
    padded[:, : prompts.shape[1]] = prompts
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    cache = init_kv_cache(config, B, cache_len, dtype=dtype)
    emit = _Emitter(B, eos_id)
    tok, cache = _cached_step(params, config, jnp.asarray(padded), cache, 0, jnp.asarray(lengths - 1))
    tok = emit(np.asarray(tok))
    last = jnp.zeros(B, jnp.int32)
    for step in range(1, max_new_tokens):
        if emit.finished:
            break
        nxt, cache = _cached_step(params, config, jnp.asarray(tok[:, None]), cache, jnp.asarray(lengths + step - 1), last)
        tok = emit(np.asarray(nxt))
    return emit.tokens()


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
    max_new_tokens = _check_new_tokens(max_new_tokens)
    _check_prompt(config, prompt, max_new_tokens, "prompt_tokens")
    B, T = prompt.shape
    prompt = prompt.astype(np.int32)
    params = jax.tree_util.tree_map(jnp.asarray, params)  # NumPy weights would be copied to the device every step
    if use_cache:
        result = _decode_cached(params, config, prompt, np.full(B, T), max_new_tokens, eos_id)
    else:
        padded = np.zeros((B, bucketed_length(T + max_new_tokens, LENGTH_BUCKET, config.max_seq_len)), dtype=np.int32)
        padded[:, :T] = prompt
        emit = _Emitter(B, eos_id)
        for step in range(max_new_tokens):
            if emit.finished:
                break
            padded[:, T + step] = emit(np.asarray(_full_step(params, config, jnp.asarray(padded), T + step - 1)))
        result = emit.tokens()
    return result[0] if squeeze else result


def generate_greedy_many(params, config: ModelConfig, prompts, max_new_tokens: int, eos_id: int | None = None,
                         batch_size: int = 8, progress: str | None = None) -> list[list[int]]:
    """Greedy continuations of prompts of any lengths, decoded ``batch_size`` at a time.

    Prompts are sorted by length and decoded in batches of similar lengths (each row at its own positions: its
    cache writes and its rotary positions start where its own prompt ends), so the model's weights are read once
    per step for the whole batch instead of once per prompt. A short last batch is filled with copies of its
    first prompt, so every batch has the same shape. Returns, in the order given, each prompt's new tokens,
    ending before its first ``eos_id``. Each continuation equals ``generate_greedy`` on its prompt alone up to
    float32 round-off (tested). ``progress``, when given, labels a progress bar over the batches.
    """
    from tqdm.auto import tqdm

    prompts = [np.asarray(p) for p in prompts]
    max_new_tokens = _check_new_tokens(max_new_tokens)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    for i, prompt in enumerate(prompts):
        if prompt.ndim != 1 or prompt.shape[0] == 0:
            raise ValueError(f"prompts[{i}] must be a non-empty 1-D token array, got shape {prompt.shape}")
        _check_prompt(config, prompt, max_new_tokens, f"prompts[{i}]")
    params = jax.tree_util.tree_map(jnp.asarray, params)
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[int]] = [[] for _ in prompts]
    for first in tqdm(range(0, len(order), batch_size), desc=progress, disable=progress is None, leave=False):
        members = order[first:first + batch_size]
        rows = members + [members[0]] * (batch_size - len(members))
        lengths = np.array([len(prompts[i]) for i in rows])
        batch = np.zeros((len(rows), int(lengths.max())), dtype=np.int32)
        for r, i in enumerate(rows):
            batch[r, : lengths[r]] = prompts[i]
        tokens = _decode_cached(params, config, batch, lengths, max_new_tokens, eos_id)
        for r, i in enumerate(members):
            new = tokens[r].tolist()
            results[i] = new[: new.index(eos_id)] if eos_id is not None and eos_id in new else new
    return results
