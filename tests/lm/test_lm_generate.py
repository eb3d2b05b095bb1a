"""Greedy generation: KV cache against recomputation against an argmax loop over the plain forward pass."""

import dataclasses
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm import generate as generate_module
from sft_tilt.lm.generate import bucketed_length, generate_greedy, generate_greedy_many
from sft_tilt.lm.model import forward, forward_cached, init_kv_cache, init_params

# A sharper random model (larger init scale) so greedy choices are not near-ties.
CONFIG = ModelConfig.tiny(n_kv_heads=1)
PARAMS = jax.tree_util.tree_map(lambda a: a * 10 if a.ndim == 3 else a, init_params(CONFIG, jax.random.key(0)))
PARAMS["embed"] = PARAMS["embed"] * 10


def _naive_greedy(params, config, prompt, n):
    """Independent: append argmax of the plain forward pass over the whole sequence, one token at a time."""
    seq = [int(t) for t in prompt]
    fwd = jax.jit(forward, static_argnums=1)
    for _ in range(n):
        logits = np.asarray(fwd(params, config, jnp.asarray([seq])))[0, -1]
        seq.append(int(np.argmax(logits)))
    return seq[len(prompt):]


def test_cached_forward_equals_full_forward_chunk_by_chunk():
    tokens = jax.random.randint(jax.random.key(1), (2, 13), 0, CONFIG.vocab_size)
    full = np.asarray(forward(PARAMS, CONFIG, tokens))
    cache = init_kv_cache(CONFIG, 2, 20)
    pieces = []
    for start, stop in ((0, 5), (5, 6), (6, 13)):
        logits, cache = forward_cached(PARAMS, CONFIG, tokens[:, start:stop], cache, start)
        pieces.append(np.asarray(logits))
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_with_and_without_cache_equal_the_naive_loop():
    prompt = np.asarray(jax.random.randint(jax.random.key(2), (7,), 0, CONFIG.vocab_size))
    want = _naive_greedy(PARAMS, CONFIG, prompt, 8)
    cached = generate_greedy(PARAMS, CONFIG, prompt, 8, use_cache=True)
    uncached = generate_greedy(PARAMS, CONFIG, prompt, 8, use_cache=False)
    assert cached.shape == (8,) and cached.dtype == np.int32
    assert cached.tolist() == uncached.tolist() == want
    assert len(set(want)) > 1  # not a degenerate constant continuation


def test_bucketed_lengths_round_up_and_stop_at_the_cap():
    assert [bucketed_length(n, 32, 100) for n in (1, 31, 32, 33, 64, 65, 99, 100)] == [32, 32, 32, 64, 64, 96, 100, 100]


@pytest.mark.parametrize("use_cache", [True, False])
def test_prompts_of_one_bucket_share_compiled_programs_and_equal_the_naive_loop(use_cache):
    """Lengths 3..29 all pad to a 32-token prompt and a 64-position cache (the tiny model's whole context, so the
    padded cache is longer than prompt + new tokens): every continuation must still equal the unpadded argmax loop,
    and after the first length no new program may be compiled."""
    step = generate_module._cached_step if use_cache else generate_module._full_step
    key = jax.random.key(11)
    for i, length in enumerate((3, 17, 29)):
        prompt = np.asarray(jax.random.randint(jax.random.fold_in(key, length), (length,), 0, CONFIG.vocab_size))
        got = generate_greedy(PARAMS, CONFIG, prompt, 6, use_cache=use_cache)
        assert got.tolist() == _naive_greedy(PARAMS, CONFIG, prompt, 6), f"prompt length {length}"
        if i == 0:
            compiled = step._cache_size()
    assert step._cache_size() == compiled


def test_a_prompt_filling_its_bucket_exactly_and_a_cache_at_the_context_limit():
    """A 32-token prompt needs no padding; 32 + 8 new tokens fill a 40-token context exactly, so the cache is the
    context (capped below its 64-token bucket). The context length is not a parameter shape: same weights."""
    short = dataclasses.replace(CONFIG, max_seq_len=40)
    prompt = np.asarray(jax.random.randint(jax.random.key(12), (32,), 0, CONFIG.vocab_size))
    got = generate_greedy(PARAMS, short, prompt, 8, use_cache=True)
    assert got.tolist() == _naive_greedy(PARAMS, short, prompt, 8)
    with pytest.raises(ValueError, match="max_new_tokens 9"):  # one more would not fit
        generate_greedy(PARAMS, short, prompt, 9, use_cache=True)


def test_prompts_of_different_lengths_decoded_together_equal_the_naive_loop_in_the_order_given():
    """Five prompts (lengths 9, 2, 20, 5, 14) in batches of two: the batches mix lengths, the last is filled."""
    key = jax.random.key(13)
    prompts = [np.asarray(jax.random.randint(jax.random.fold_in(key, n), (n,), 0, CONFIG.vocab_size))
               for n in (9, 2, 20, 5, 14)]
    got = generate_greedy_many(PARAMS, CONFIG, prompts, 7, batch_size=2)
    assert got == [_naive_greedy(PARAMS, CONFIG, p, 7) for p in prompts]


def test_many_prompts_stop_each_at_its_own_eos():
    key = jax.random.key(14)
    prompts = [np.asarray(jax.random.randint(jax.random.fold_in(key, n), (n,), 0, CONFIG.vocab_size)) for n in (4, 11)]
    free = [_naive_greedy(PARAMS, CONFIG, p, 10) for p in prompts]
    eos = free[0][3]  # the first prompt's fourth new token
    got = generate_greedy_many(PARAMS, CONFIG, prompts, 10, eos_id=eos, batch_size=4)
    for row, want in zip(got, free):
        assert row == (want[: want.index(eos)] if eos in want else want)
    assert len(got[0]) <= 3


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompts=[np.zeros((2, 3), np.int32)]), r"prompts\[0\] must be a non-empty 1-D"),
    (dict(prompts=[np.array([1, 2]), np.array([], np.int32)]), r"prompts\[1\] must be a non-empty 1-D"),
    (dict(prompts=[np.array([1, 999])]), r"prompts\[0\] must lie in"),
    (dict(prompts=[np.arange(60) % 90]), r"prompts\[0\]: prompt length 60 \+ max_new_tokens 8"),
    (dict(prompts=[np.array([1])], batch_size=0), "batch_size must be a positive int"),
])
def test_bad_many_prompt_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_greedy_many(PARAMS, CONFIG, max_new_tokens=8, **kwargs)


def test_batched_greedy_equals_row_by_row():
    prompts = np.asarray(jax.random.randint(jax.random.key(3), (2, 5), 0, CONFIG.vocab_size))
    batched = generate_greedy(PARAMS, CONFIG, prompts, 6)
    assert batched.shape == (2, 6)
    for row, prompt in zip(batched, prompts):
        assert row.tolist() == generate_greedy(PARAMS, CONFIG, prompt, 6).tolist()


@pytest.mark.parametrize("use_cache", [True, False])
def test_eos_stops_generation_and_pads_finished_rows(use_cache):
    prompts = np.asarray(jax.random.randint(jax.random.key(4), (2, 4), 0, CONFIG.vocab_size))
    free = generate_greedy(PARAMS, CONFIG, prompts, 12, use_cache=use_cache)
    eos = int(free[0, 2])  # the token row 0 emits third
    got = generate_greedy(PARAMS, CONFIG, prompts, 12, use_cache=use_cache, eos_id=eos)
    for row, free_row in zip(got, free):
        hits = np.flatnonzero(free_row == eos)
        stop = hits[0] if hits.size else None
        if stop is not None:
            assert row[: stop + 1].tolist() == free_row[: stop + 1].tolist()
            assert np.all(row[stop:] == eos)
        else:
            assert row.tolist() == free_row[: len(row)].tolist()
    stops = [np.flatnonzero(r == eos)[0] if np.any(r == eos) else 11 for r in free]
    assert got.shape[1] == max(stops) + 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt_tokens=np.zeros(60, np.int32), max_new_tokens=5), "max_seq_len"),
    (dict(prompt_tokens=np.zeros((1, 0), np.int32), max_new_tokens=5), "non-empty"),
    (dict(prompt_tokens=np.zeros(3, np.float32), max_new_tokens=5), "integer"),
    (dict(prompt_tokens=np.array([1, 2, 96]), max_new_tokens=5), "vocab_size"),
    (dict(prompt_tokens=np.array([1, 2]), max_new_tokens=0), "max_new_tokens"),
])
def test_bad_generation_arguments_are_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate_greedy(PARAMS, CONFIG, **kwargs)
