"""The supervised-positions fast path against the plain full-logits path and an independent NumPy computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import forward, init_params, per_token_losses
from sft_tilt.lm.supervised_loss import supervised_capacity, supervised_token_losses

CONFIG = ModelConfig.tiny(n_layers=1)
# float32 round-off. Measured on this model (5 batches): the losses are bit-identical, the gradients identical with
# one chunk and within 9.5e-7 (max abs, 8 float32 ulps of the largest entries) with chunks of 7 slots, whose head
# gradients are summed chunk by chunk in another order.
LOSS_TOL = 1e-6
GRAD_TOL = 4e-6


def _batch(B=4, T=12, seed=1):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, CONFIG.vocab_size, (B, T)).astype(np.int32)
    mask = (rng.uniform(size=(B, T)) > 0.6).astype(np.float32)
    mask[0] = 0.0  # an all-masked row
    mask[1] = 1.0  # every position supervised
    mask[2, 1:] = 0.0
    mask[2, -1] = 0.5  # a fractional weight on the last token only
    return jnp.asarray(tokens), jnp.asarray(mask)


PARAMS = init_params(CONFIG, jax.random.key(0))
plain = jax.jit(per_token_losses, static_argnums=1)
fast = jax.jit(supervised_token_losses, static_argnums=(1, 4, 5))


def test_capacity_is_the_largest_batch_count_rounded_up_to_the_bucket():
    mask = np.zeros((5, 10))
    mask[:, 0] = 1  # token 0 is never a target
    mask[0, 1:] = 1  # 9
    mask[1, 1:4] = 1  # 3
    mask[2, 5] = 1  # 1
    assert supervised_capacity(mask, 2, bucket=4) == 12  # 9 + 3
    assert supervised_capacity(mask, 2, bucket=64) == 18  # capped at 2 x 9 positions
    assert supervised_capacity(mask, bucket=1) == 13
    assert supervised_capacity(np.zeros((2, 3)), bucket=8) == 4  # at least one slot, capped at 2 x 2
    for bad, match in [(dict(batch_size=0), "batch_size"), (dict(bucket=0), "bucket"), (dict(bucket=True), "bucket")]:
        with pytest.raises(ValueError, match=match):
            supervised_capacity(mask, **bad)
    with pytest.raises(ValueError, match="loss_mask"):
        supervised_capacity(np.zeros(4))


@pytest.mark.parametrize("chunk_size", [1024, 7])  # one chunk; several chunks (recomputed in the backward pass)
def test_fast_losses_equal_the_plain_path_and_an_independent_numpy_computation(chunk_size):
    tokens, mask = _batch()
    capacity = supervised_capacity(mask, bucket=8)
    got = np.asarray(fast(PARAMS, CONFIG, tokens, mask, capacity, chunk_size))
    want = np.asarray(plain(PARAMS, CONFIG, tokens, mask))
    assert got.shape == want.shape == (4, 11)
    m = np.asarray(mask)[:, 1:]
    assert np.all(got[m == 0] == 0.0) and np.all(got[0] == 0.0)
    assert np.max(np.abs(got - want)) <= LOSS_TOL
    # independent: float64 log-softmax of the model's logits in NumPy
    logits = np.asarray(forward(PARAMS, CONFIG, tokens), np.float64)[:, :-1]
    z = logits.max(-1, keepdims=True)
    logp = logits - z - np.log(np.exp(logits - z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, np.asarray(tokens)[:, 1:, None], axis=-1)[..., 0] * m
    np.testing.assert_allclose(got, nll, atol=LOSS_TOL, rtol=0)


@pytest.mark.parametrize("chunk_size", [1024, 7])
def test_fast_gradients_equal_the_plain_path(chunk_size):
    tokens, mask = _batch(seed=2)
    capacity = supervised_capacity(mask, bucket=8)
    weights = jnp.asarray(np.random.default_rng(3).uniform(0.5, 2.0, (4, 11)), jnp.float32)

    def objective(params, fn):
        return jnp.sum(weights * fn(params))  # a per-token weighting, as TALR's (detached) weights

    g_fast = jax.jit(jax.grad(lambda p: objective(p, lambda q: supervised_token_losses(
        q, CONFIG, tokens, mask, capacity, chunk_size))))(PARAMS)
    g_plain = jax.jit(jax.grad(lambda p: objective(p, lambda q: per_token_losses(q, CONFIG, tokens, mask))))(PARAMS)
    diffs = [float(jnp.max(jnp.abs(a - b))) for a, b in zip(jax.tree_util.tree_leaves(g_fast),
                                                            jax.tree_util.tree_leaves(g_plain))]
    assert max(diffs) <= GRAD_TOL
    assert max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(g_plain)) > 1e-3


def test_a_batch_larger_than_the_capacity_is_refused_eagerly_and_its_targets_are_nan_under_jit():
    tokens, mask = _batch()
    n = int(np.count_nonzero(np.asarray(mask)[:, 1:]))
    with pytest.raises(ValueError, match="capacity"):
        supervised_token_losses(PARAMS, CONFIG, tokens, mask, n - 1)
    out = fast(PARAMS, CONFIG, tokens, mask, n - 1, 1024)
    m = np.asarray(mask)[:, 1:] != 0
    assert np.all(np.isnan(np.asarray(out)[m])) and np.all(np.asarray(out)[~m] == 0.0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(capacity=0), "capacity"), (dict(capacity=2.0), "capacity"), (dict(chunk_size=0), "chunk_size"),
])
def test_bad_arguments_name_themselves(kwargs, match):
    tokens, mask = _batch()
    args = dict(capacity=64, chunk_size=8) | kwargs
    with pytest.raises(ValueError, match=match):
        supervised_token_losses(PARAMS, CONFIG, tokens, mask, **args)
    with pytest.raises(ValueError, match="loss_mask"):
        supervised_token_losses(PARAMS, CONFIG, tokens, mask[:, 1:], 64)


def test_top1_marks_exactly_the_targets_the_full_logits_rank_first():
    """``supervised_token_scores``' top-1 flags against an independent argmax of ``forward``'s logits at every
    target (a batch whose targets are the model's own greedy tokens at some positions, so both values occur)."""
    from sft_tilt.lm.model import forward
    from sft_tilt.lm.supervised_loss import supervised_token_scores

    tokens, mask = _batch(3, 24, seed=5)
    tokens = np.asarray(tokens).copy()
    for t in range(1, 24, 2):  # every other token becomes the greedy continuation of its (edited) prefix
        tokens[:, t] = np.asarray(forward(PARAMS, CONFIG, jnp.asarray(tokens)))[:, t - 1].argmax(-1)
    logits = np.asarray(forward(PARAMS, CONFIG, jnp.asarray(tokens)), np.float64)
    losses, top1 = supervised_token_scores(PARAMS, CONFIG, jnp.asarray(tokens), mask, supervised_capacity(np.asarray(mask)))
    target_logit = np.take_along_axis(logits[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    expected = (target_logit >= logits[:, :-1].max(-1)) & (np.asarray(mask)[:, 1:] != 0)
    np.testing.assert_array_equal(np.asarray(top1) != 0, expected)
    assert 0 < expected.sum() < (np.asarray(mask)[:, 1:] != 0).sum()
    ref = fast(PARAMS, CONFIG, jnp.asarray(tokens), mask, supervised_capacity(np.asarray(mask)), 1024)
    np.testing.assert_allclose(np.asarray(losses), np.asarray(ref), rtol=0, atol=1e-6)
