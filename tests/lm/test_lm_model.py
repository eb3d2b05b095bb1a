"""The JAX transformer against an independent float64 NumPy forward pass, plus its loss conventions and errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import (
    forward,
    init_params,
    param_shapes,
    per_token_losses,
    token_log_probs,
    validate_params,
)


def numpy_forward(params, config, tokens):
    """Independent reference: float64 NumPy, per-head loops, RoPE as complex rotation of (x_i, x_{i+hd/2})."""
    p = jax.tree_util.tree_map(lambda a: np.asarray(a, dtype=np.float64), params)
    tokens = np.asarray(tokens)
    B, T = tokens.shape
    H, K, hd = config.n_heads, config.n_kv_heads, config.head_dim
    half = hd // 2
    freqs = config.rope_theta ** (-np.arange(half) * 2.0 / hd)
    phase = np.exp(1j * np.arange(T)[:, None] * freqs[None, :])  # [T, half]

    def norm(x, g):
        return x / np.sqrt((x**2).mean(-1, keepdims=True) + config.norm_eps) * g

    def rope(x):  # x [T, hd]
        z = (x[:, :half] + 1j * x[:, half:]) * phase
        return np.concatenate([z.real, z.imag], axis=-1)

    logits = np.zeros((B, T, config.vocab_size))
    for b in range(B):
        x = p["embed"][tokens[b]]
        for layer in range(config.n_layers):
            lp = {k: v[layer] for k, v in p["layers"].items()}
            h = norm(x, lp["attn_norm"])
            q, k, v = h @ lp["wq"], h @ lp["wk"], h @ lp["wv"]
            if config.attention_bias:
                q, k, v = q + lp["bq"], k + lp["bk"], v + lp["bv"]
            heads = []
            for head in range(H):
                kv_head = head * K // H
                qh = rope(q[:, head * hd:(head + 1) * hd])
                kh = rope(k[:, kv_head * hd:(kv_head + 1) * hd])
                vh = v[:, kv_head * hd:(kv_head + 1) * hd]
                s = qh @ kh.T / np.sqrt(hd)
                s[np.triu_indices(T, 1)] = -np.inf
                w = np.exp(s - s.max(-1, keepdims=True))
                heads.append((w / w.sum(-1, keepdims=True)) @ vh)
            x = x + np.concatenate(heads, axis=-1) @ lp["wo"]
            h = norm(x, lp["mlp_norm"])
            g = h @ lp["w_gate"]
            x = x + (g / (1 + np.exp(-g)) * (h @ lp["w_up"])) @ lp["w_down"]
        head_w = p["embed"].T if config.tie_embeddings else p["lm_head"]
        logits[b] = norm(x, p["final_norm"]) @ head_w
    return logits


def numpy_log_softmax(logits):
    m = logits.max(-1, keepdims=True)
    return logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))


CONFIGS = {
    "llama_tied": ModelConfig.tiny(),
    "qwen2_bias_untied": ModelConfig.tiny(attention_bias=True, tie_embeddings=False, architecture="qwen2",
                                          rope_theta=1e6, n_kv_heads=1),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("jit", [False, True])
def test_forward_matches_independent_numpy_forward(name, jit):
    config = CONFIGS[name]
    params = init_params(config, jax.random.key(0))
    tokens = jax.random.randint(jax.random.key(1), (2, 11), 0, config.vocab_size)
    fn = jax.jit(forward, static_argnums=1) if jit else forward
    got = fn(params, config, tokens)
    assert got.dtype == jnp.float32 and got.shape == (2, 11, config.vocab_size)
    want = numpy_forward(params, config, tokens)
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=0)


def test_token_log_probs_are_log_softmax_at_the_next_token():
    config = CONFIGS["qwen2_bias_untied"]
    params = init_params(config, jax.random.key(2))
    tokens = jax.random.randint(jax.random.key(3), (3, 9), 0, config.vocab_size)
    logp = numpy_log_softmax(numpy_forward(params, config, tokens))
    want = np.take_along_axis(logp[:, :-1], np.asarray(tokens)[:, 1:, None], axis=-1)[..., 0]
    got = token_log_probs(params, config, tokens)
    assert got.shape == (3, 8) and got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5, rtol=0)


def test_per_token_losses_mask_targets_and_ignore_first_column():
    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(4))
    tokens = jax.random.randint(jax.random.key(5), (2, 8), 0, config.vocab_size)
    mask = np.array([[1, 0, 0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 0, 0, 1, 1]], dtype=np.float32)
    losses = np.asarray(per_token_losses(params, config, tokens, mask))
    nll = -numpy_log_softmax(numpy_forward(params, config, tokens))
    want = np.take_along_axis(nll[:, :-1], np.asarray(tokens)[:, 1:, None], axis=-1)[..., 0] * mask[:, 1:]
    np.testing.assert_allclose(losses, want, atol=2e-5, rtol=0)
    assert np.all(losses[mask[:, 1:] == 0] == 0.0)
    assert np.all(losses[mask[:, 1:] == 1] > 0.0)


def test_forward_is_causal():
    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(6))
    tokens = np.asarray(jax.random.randint(jax.random.key(7), (1, 12), 0, config.vocab_size))
    changed = tokens.copy()
    changed[0, 7:] = (changed[0, 7:] + 1) % config.vocab_size
    a, b = forward(params, config, tokens), forward(params, config, changed)
    np.testing.assert_array_equal(np.asarray(a[:, :7]), np.asarray(b[:, :7]))
    assert np.abs(np.asarray(a[:, 7:] - b[:, 7:])).max() > 1e-4


def test_init_params_matches_declared_shapes_and_parameter_count():
    for config in CONFIGS.values():
        params = init_params(config, jax.random.key(0))
        validate_params(config, params)
        n = sum(int(np.prod(s)) for s in jax.tree_util.tree_leaves(
            param_shapes(config), is_leaf=lambda s: isinstance(s, tuple)))
        assert n == config.n_params() == sum(x.size for x in jax.tree_util.tree_leaves(params))
        assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(params))


def test_sequence_longer_than_context_is_rejected():
    config = ModelConfig.tiny(max_seq_len=8)
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match="max_seq_len"):
        forward(params, config, jnp.zeros((1, 9), jnp.int32))


@pytest.mark.parametrize("tokens, match", [
    (jnp.zeros((4,), jnp.int32), "batch, time"),
    (jnp.zeros((1, 4), jnp.float32), "integer"),
])
def test_malformed_tokens_are_rejected(tokens, match):
    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match=match):
        forward(params, config, tokens)


def test_loss_mask_of_wrong_shape_is_rejected():
    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(0))
    with pytest.raises(ValueError, match="loss_mask"):
        per_token_losses(params, config, jnp.zeros((1, 4), jnp.int32), jnp.ones((1, 3)))


def test_params_with_wrong_shapes_are_rejected_with_the_parameter_name():
    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(0))
    params["layers"]["wk"] = params["layers"]["wk"][:, :, :-1]
    with pytest.raises(ValueError, match=r"layers\.wk"):
        validate_params(config, params, source="ckpt")
    del params["final_norm"]
    with pytest.raises(ValueError, match="final_norm"):
        validate_params(config, params, source="ckpt")


@pytest.mark.parametrize("overrides, match", [
    ({"dim": 30}, "n_heads"),
    ({"n_kv_heads": 3}, "n_kv_heads"),
    ({"vocab_size": 0}, "vocab_size"),
    ({"norm_eps": -1.0}, "norm_eps"),
    ({"architecture": "gpt2"}, "architecture"),
    ({"tie_embeddings": 1}, "tie_embeddings"),
])
def test_invalid_config_is_rejected(overrides, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig.tiny(**overrides)


@pytest.mark.parametrize("choice, saves_dots", [("dots", True), ("none", False), ("auto", jax.default_backend() == "cpu")])
def test_rematerialisation_policy_follows_the_environment(monkeypatch, choice, saves_dots):
    from sft_tilt.lm.model import REMAT_ENV, remat_policy

    monkeypatch.setenv(REMAT_ENV, choice)
    policy = remat_policy()
    want = jax.checkpoint_policies.dots_with_no_batch_dims_saveable if saves_dots else jax.checkpoint_policies.nothing_saveable
    assert policy is want


def test_a_rematerialisation_policy_outside_the_choices_is_refused(monkeypatch):
    from sft_tilt.lm.model import REMAT_ENV, remat_policy

    monkeypatch.setenv(REMAT_ENV, "everything")
    with pytest.raises(ValueError, match="SFT_REMAT: must be 'auto', 'dots' or 'none'"):
        remat_policy()


def test_gradients_do_not_depend_on_the_rematerialisation_policy(monkeypatch):
    from sft_tilt.lm.model import REMAT_ENV, per_token_losses

    config = ModelConfig.tiny()
    params = init_params(config, jax.random.key(5))
    tokens = jax.random.randint(jax.random.key(6), (2, 16), 0, config.vocab_size)
    batch = {"tokens": tokens, "loss_mask": jnp.ones((2, 16), jnp.float32)}
    grads = {}
    for choice in ("dots", "none"):
        monkeypatch.setenv(REMAT_ENV, choice)
        grads[choice] = jax.grad(lambda p: per_token_losses(p, config, batch["tokens"], batch["loss_mask"]).mean())(params)
    for a, b in zip(jax.tree_util.tree_leaves(grads["dots"]), jax.tree_util.tree_leaves(grads["none"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_a_sequence_longer_than_the_attention_chunk_matches_the_numpy_forward():
    """150 tokens: queries in chunks of ATTENTION_CHUNK (64, 64, 22), each reading only the keys up to its end."""
    from sft_tilt.lm.model import ATTENTION_CHUNK

    config = ModelConfig.tiny(max_seq_len=160, n_kv_heads=1)
    params = init_params(config, jax.random.key(3))
    tokens = jax.random.randint(jax.random.key(4), (1, 150), 0, config.vocab_size)
    assert 150 > 2 * ATTENTION_CHUNK
    got = jax.jit(forward, static_argnums=1)(params, config, tokens)
    np.testing.assert_allclose(np.asarray(got), numpy_forward(params, config, tokens), atol=2e-5, rtol=0)


@pytest.mark.parametrize("window, softcap", [(None, None), (5, None), (None, 3.0), (4, 2.0)])
def test_attention_by_query_chunks_equals_the_whole_and_refuses_a_foreign_cache(window, softcap):
    from sft_tilt.lm.model import attention

    q = jax.random.normal(jax.random.key(5), (2, 13, 4, 8))
    k, v = (jax.random.normal(jax.random.key(s), (2, 13, 2, 8)) for s in (6, 7))
    pos = jnp.broadcast_to(jnp.arange(13), (2, 13))
    # jitted: eagerly, every chunk's operations compile one by one (20 s for these shapes)
    run = jax.jit(attention, static_argnames=("softcap", "window", "query_chunk"))
    whole = run(q, k, v, pos, pos, softcap=softcap, window=window)
    for chunk in (1, 4, 12, 13, 64):
        chunked = run(q, k, v, pos, pos, softcap=softcap, window=window, query_chunk=chunk)
        np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="query_chunk"):
        attention(q, k[:, :5], v[:, :5], pos, pos[:, :5], query_chunk=4)
