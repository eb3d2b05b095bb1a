"""The one decoder against transformers on tiny random models of each architecture (Llama 3.x, Qwen2, Qwen3, Gemma 3).

The fixture (tests/fixtures/lm_arch/<name>/ folders + tests/fixtures/lm_arch_reference.json) was written by
tools/make_arch_reference.py under the reference environment (.venv-ref: torch 2.13.0 CPU + transformers 5.23.0);
the default tests need only the fixture. An independent float64 NumPy forward pass, written here from the
``config.json`` and the raw safetensors names, checks both sides. ``-m reference`` regenerates the fixture.
"""

import dataclasses
import json
import os
import shutil
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from sft_tilt.lm.config import ModelConfig, RopeScaling
from sft_tilt.lm.generate import generate_greedy
from sft_tilt.lm.hf_io import hf_config_to_model_config, load_hf_checkpoint, save_hf_checkpoint
from sft_tilt.lm.model import token_log_probs

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
REFERENCE = FIXTURES / "lm_arch_reference.json"
TOLERANCE_NATS = 1e-4  # agreement required of the JAX model in float32
ARCHS = ["llama3", "qwen2", "qwen3", "gemma3"]

_LOG_PROBS = jax.jit(token_log_probs, static_argnums=1)


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def models(reference):
    out = {}
    for name, entry in reference["models"].items():
        config, params = load_hf_checkpoint(FIXTURES / entry["folder"])
        out[name] = (config, jax.tree_util.tree_map(jnp.asarray, params))
    return out


def _jax_log_probs(config, params, texts):
    tokens = jnp.asarray([t["token_ids"] for t in texts], jnp.int32)
    out = np.asarray(_LOG_PROBS(params, config, tokens))
    assert out.dtype == np.float32
    return out


def _max_error(got, texts, key="log_probs_f32"):
    return max(float(np.abs(g - np.asarray(t[key])).max()) for g, t in zip(got, texts, strict=True))


# ------------------------------------------------------------------------------------------------------------
# An independent float64 NumPy forward pass, from config.json and the tensors under their Hugging Face names
# ------------------------------------------------------------------------------------------------------------


def _numpy_inv_freq(p, hd):
    """Rotary inverse frequencies, rounded to float32 as transformers keeps them (even in a float64 model)."""
    return np.float32(_numpy_inv_freq64(p, hd)).astype(np.float64)


def _numpy_inv_freq64(p, hd):
    f = np.float32(p["rope_theta"] ** (-np.arange(0, hd, 2) / hd)).astype(np.float64)
    kind = p.get("rope_type", "default")
    if kind == "linear":
        return f / p["factor"]
    if kind == "llama3":
        n, lo, hi, factor = (p["original_max_position_embeddings"], p["low_freq_factor"], p["high_freq_factor"],
                             p["factor"])
        out = []
        for fi in f:
            wavelength = 2 * np.pi / fi
            if wavelength < n / hi:
                out.append(fi)
            elif wavelength > n / lo:
                out.append(fi / factor)
            else:
                s = (n / wavelength - lo) / (hi - lo)
                out.append((1 - s) * fi / factor + s * fi)
        return np.array(out)
    assert kind == "default"
    return f


def numpy_log_probs(hf, w, ids):
    """log p(ids[t+1] | ids[:t+1]) by loops over heads, in float64, following transformers' modeling files."""
    gemma = hf["model_type"] == "gemma3_text"
    D, H, K, L = hf["hidden_size"], hf["num_attention_heads"], hf["num_key_value_heads"], hf["num_hidden_layers"]
    hd = hf.get("head_dim") or D // H
    eps = hf["rms_norm_eps"]
    types = hf.get("layer_types") or ["full_attention"] * L
    window = hf.get("sliding_window")
    if hf["model_type"] in ("qwen2", "qwen3") and not hf.get("use_sliding_window"):
        window = None
    scale = hf["query_pre_attn_scalar"] ** -0.5 if gemma else hd ** -0.5

    def norm(x, g):
        n = x / np.sqrt((x ** 2).mean(-1, keepdims=True) + eps)
        return n * (1 + g) if gemma else n * g

    def act(z):
        if gemma:
            return 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z ** 3)))
        return z / (1 + np.exp(-z))

    T = len(ids)
    pos = np.arange(T)
    x = w["model.embed_tokens.weight"][ids] * (np.sqrt(D) if gemma else 1.0)
    for i in range(L):
        def p(name, i=i):
            return w.get(f"model.layers.{i}.{name}")
        rope_p = hf["rope_parameters"][types[i]] if gemma else hf["rope_parameters"]
        # transformers forms the rotary angles and their cos/sin in float32 even in a float64 model
        angle = pos.astype(np.float32)[:, None] * _numpy_inv_freq(rope_p, hd).astype(np.float32)[None, :]
        phase = np.cos(angle).astype(np.float64) + 1j * np.sin(angle).astype(np.float64)

        def rope(v):
            z = (v[:, : hd // 2] + 1j * v[:, hd // 2:]) * phase
            return np.concatenate([z.real, z.imag], axis=-1)

        h = norm(x, p("input_layernorm.weight"))
        qkv = []
        for proj in "qkv":
            y = h @ p(f"self_attn.{proj}_proj.weight").T
            if p(f"self_attn.{proj}_proj.bias") is not None:
                y = y + p(f"self_attn.{proj}_proj.bias")
            qkv.append(y)
        q, k, v = qkv
        heads = []
        for head in range(H):
            kv = head // (H // K)
            qh, kh = q[:, head * hd:(head + 1) * hd], k[:, kv * hd:(kv + 1) * hd]
            if p("self_attn.q_norm.weight") is not None:
                qh, kh = norm(qh, p("self_attn.q_norm.weight")), norm(kh, p("self_attn.k_norm.weight"))
            s = rope(qh) @ rope(kh).T * scale
            if hf.get("attn_logit_softcapping"):  # Gemma 2 style; transformers' Gemma 3 never sets it
                s = hf["attn_logit_softcapping"] * np.tanh(s / hf["attn_logit_softcapping"])
            hidden = pos[None, :] > pos[:, None]
            if types[i] == "sliding_attention" and window is not None:
                hidden |= pos[:, None] - pos[None, :] >= window
            s[hidden] = -np.inf
            e = np.exp(s - s.max(-1, keepdims=True))
            heads.append(e / e.sum(-1, keepdims=True) @ v[:, kv * hd:(kv + 1) * hd])
        o = np.concatenate(heads, axis=-1) @ p("self_attn.o_proj.weight").T
        if gemma:
            x = x + norm(o, p("post_attention_layernorm.weight"))
            h = norm(x, p("pre_feedforward_layernorm.weight"))
        else:
            x = x + o
            h = norm(x, p("post_attention_layernorm.weight"))
        m = (act(h @ p("mlp.gate_proj.weight").T) * (h @ p("mlp.up_proj.weight").T)) @ p("mlp.down_proj.weight").T
        x = x + (norm(m, p("post_feedforward_layernorm.weight")) if gemma else m)
    logits = norm(x, w["model.norm.weight"]) @ w.get("lm_head.weight", w["model.embed_tokens.weight"]).T
    cap = hf.get("final_logit_softcapping")
    if cap:
        logits = cap * np.tanh(logits / cap)
    logits = logits[:-1]
    mx = logits.max(-1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(-1))
    return logits[np.arange(T - 1), ids[1:]] - lse


def _raw(folder):
    hf = json.loads((folder / "config.json").read_text())
    w = {k: v.astype(np.float64) for k, v in load_file(str(folder / "model.safetensors")).items()}
    return hf, w


@pytest.mark.parametrize("name", ARCHS)
def test_numpy_forward_matches_transformers_float64(reference, name):
    """The independent NumPy pass agrees with transformers' float64 run: both sides read the same model.

    transformers' "float64" model still computes RMSNorm (and the rotary tables) in float32, so agreement is to
    float32's relative precision (log-probs here reach -35 nats), far below what any modelling difference gives
    (``test_every_architecture_feature_matters``).
    """
    entry = reference["models"][name]
    hf, w = _raw(FIXTURES / entry["folder"])
    for text in entry["texts"]:
        got = numpy_log_probs(hf, w, np.asarray(text["token_ids"]))
        np.testing.assert_allclose(got, text["log_probs_f64"], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("name", ARCHS)
def test_jax_float32_matches_numpy_float64(reference, models, name):
    entry = reference["models"][name]
    hf, w = _raw(FIXTURES / entry["folder"])
    config, params = models[name]
    got = _jax_log_probs(config, params, entry["texts"])
    for g, text in zip(got, entry["texts"]):
        np.testing.assert_allclose(g, numpy_log_probs(hf, w, np.asarray(text["token_ids"])), atol=TOLERANCE_NATS, rtol=0)


def test_attention_logit_softcap_matches_numpy(reference, models):
    """The decoder's attention soft-cap (no transformers model applies it to Gemma 3, so NumPy is the reference)."""
    entry = reference["models"]["gemma3"]
    hf, w = _raw(FIXTURES / entry["folder"])
    config, params = models["gemma3"]
    capped = dataclasses.replace(config, attn_logit_softcap=0.5)
    got = _jax_log_probs(capped, params, entry["texts"])
    for g, text in zip(got, entry["texts"]):
        want = numpy_log_probs(dict(hf, attn_logit_softcapping=0.5), w, np.asarray(text["token_ids"]))
        np.testing.assert_allclose(g, want, atol=TOLERANCE_NATS, rtol=0)
    assert _max_error(got, entry["texts"]) > 100 * TOLERANCE_NATS


# ------------------------------------------------------------------------------------------------------------
# The JAX decoder against the transformers fixture
# ------------------------------------------------------------------------------------------------------------


def test_fixture_covers_every_architecture_and_is_small(reference):
    assert sorted(reference["models"]) == sorted(ARCHS)
    for entry in reference["models"].values():
        for f in (FIXTURES / entry["folder"]).iterdir():
            assert f.stat().st_size < 200_000, f
        assert len(entry["texts"][0]["token_ids"]) > 4 * 4  # several sliding windows long


def test_loaded_configs_use_the_architecture_flags(models):
    llama, qwen2, qwen3, gemma = (models[n][0] for n in ARCHS)
    assert llama.rope_scaling == RopeScaling("llama3", 8.0, 1.0, 4.0, 16) and not llama.tie_embeddings
    assert qwen2.attention_bias and qwen2.layer_types == ("full_attention", "sliding_attention")
    assert qwen2.sliding_window == 6 and qwen2.rope_local_theta is None
    assert qwen3.qk_norm and qwen3.head_dim == 16 and qwen3.n_heads * qwen3.head_dim != qwen3.dim
    assert not qwen3.attention_bias
    assert (gemma.qk_norm, gemma.norm_unit_offset, gemma.post_norms, gemma.embed_scale) == (True,) * 4
    assert gemma.mlp_activation == "gelu_tanh" and gemma.query_pre_attn_scalar == 24.0
    assert gemma.layer_types == ("sliding_attention", "full_attention") * 2 and gemma.sliding_window == 4
    assert (gemma.rope_theta, gemma.rope_local_theta, gemma.rope_scaling) == (1e4, 100.0, RopeScaling("linear", 4.0))
    assert gemma.final_logit_softcap == 8.0 and gemma.attn_logit_softcap is None


@pytest.mark.parametrize("name", ARCHS)
def test_log_probs_match_transformers_within_1e_4_nats(reference, models, name, record_property):
    entry = reference["models"][name]
    config, params = models[name]
    got = _jax_log_probs(config, params, entry["texts"])
    worst32, worst64 = _max_error(got, entry["texts"]), _max_error(got, entry["texts"], "log_probs_f64")
    record_property(f"max_abs_diff_vs_torch_f32_{name}", worst32)
    print(f"{name}: max |log p_jax - log p_torch| = {worst32:.3g} (torch f32), {worst64:.3g} (torch f64)")
    assert worst32 <= TOLERANCE_NATS and worst64 <= TOLERANCE_NATS


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_tokens_match_transformers(reference, models, name, use_cache):
    """Same tokens as transformers with and without its cache, past the sliding window (prompt 5 + 15 new)."""
    config, params = models[name]
    for g in reference["models"][name]["greedy"]:
        assert g["new_token_ids_cache"] == g["new_token_ids_no_cache"]
        got = generate_greedy(params, config, g["prompt_ids"], len(g["new_token_ids_cache"]), use_cache=use_cache)
        assert got.tolist() == g["new_token_ids_cache"]


def _without(config, params, **changes):
    return dataclasses.replace(config, **changes), params


# Each architecture feature, switched off, moves the log-probs far beyond the tolerance: the match has teeth.
_ABLATIONS = {
    "llama3: no rope scaling": ("llama3", lambda c, p: _without(c, p, rope_scaling=None)),
    "qwen2: no sliding window": ("qwen2", lambda c, p: _without(c, p, layer_types=None, sliding_window=None)),
    "qwen3: unit q/k norm gains": ("qwen3", lambda c, p: (c, dict(p, layers=dict(
        p["layers"], q_norm=jnp.ones_like(p["layers"]["q_norm"]), k_norm=jnp.ones_like(p["layers"]["k_norm"]))))),
    "gemma3: no sliding window": ("gemma3", lambda c, p: _without(c, p, layer_types=None, sliding_window=None)),
    "gemma3: one rope base": ("gemma3", lambda c, p: _without(c, p, rope_local_theta=None)),
    "gemma3: no rope scaling": ("gemma3", lambda c, p: _without(c, p, rope_scaling=None)),
    "gemma3: head_dim scaling": ("gemma3", lambda c, p: _without(c, p, query_pre_attn_scalar=None)),
    "gemma3: no soft-cap": ("gemma3", lambda c, p: _without(c, p, final_logit_softcap=None)),
    "gemma3: unscaled embeddings": ("gemma3", lambda c, p: _without(c, p, embed_scale=False)),
    "gemma3: silu": ("gemma3", lambda c, p: _without(c, p, mlp_activation="silu")),
}


@pytest.mark.parametrize("ablation", list(_ABLATIONS))
def test_every_architecture_feature_matters(reference, models, ablation):
    name, change = _ABLATIONS[ablation]
    config, params = change(*models[name])
    texts = reference["models"][name]["texts"]
    assert _max_error(_jax_log_probs(config, params, texts), texts) > 100 * TOLERANCE_NATS


# ------------------------------------------------------------------------------------------------------------
# Loading: round trips, the Gemma 3 image-text layout, transformers 4 configs, real configs, rejected fields
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARCHS)
def test_save_then_load_round_trips(models, name, tmp_path):
    config, params = models[name]
    save_hf_checkpoint(tmp_path, config, params)
    config2, params2 = load_hf_checkpoint(tmp_path)
    assert config2 == config
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), params, params2)


@pytest.mark.parametrize("prefix", ["language_model.model.", "model.language_model."])
def test_gemma3_image_text_checkpoint_loads_as_its_text_model(models, tmp_path, prefix):
    """Gemma3ForConditionalGeneration folders (transformers 4 and 5 tensor names) give the same text model."""
    src = FIXTURES / "lm_arch" / "gemma3"
    text_config = json.loads((src / "config.json").read_text())
    tensors = {prefix + k[len("model."):]: v for k, v in load_file(str(src / "model.safetensors")).items()}
    vision = "vision_tower.vision_model.embeddings.patch_embedding.weight"
    tensors[vision if prefix.startswith("language") else "model." + vision] = np.ones((4, 3), np.float32)
    tensors["multi_modal_projector.mm_soft_emb_norm.weight"] = np.ones(4, np.float32)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    outer = {"architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3", "text_config": text_config,
             "vision_config": {"model_type": "siglip_vision_model"}, "mm_tokens_per_image": 256,
             "boi_token_index": 255999, "eoi_token_index": 256000, "image_token_index": 262144}
    (tmp_path / "config.json").write_text(json.dumps(outer))
    config, params = load_hf_checkpoint(tmp_path)
    want_config, want_params = models["gemma3"]
    assert config == want_config
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_array_equal(np.asarray(a), b), want_params, params)
    outer["text_config"] = dict(text_config, vision_thing=1)
    (tmp_path / "config.json").write_text(json.dumps(outer))
    with pytest.raises(ValueError, match=r"config\.json: unknown config field\(s\) \['text_config\.vision_thing'\]"):
        load_hf_checkpoint(tmp_path)


def test_gemma3_transformers_4_config_reads_like_transformers_5(models):
    v5 = json.loads((FIXTURES / "lm_arch" / "gemma3" / "config.json").read_text())
    v4 = {k: v for k, v in v5.items() if k not in ("rope_parameters", "layer_types", "_sliding_window_pattern")}
    v4.update(rope_theta=10000.0, rope_local_base_freq=100.0, rope_scaling={"factor": 4.0, "rope_type": "linear"})
    assert hf_config_to_model_config(v4) == models["gemma3"][0]
    with pytest.raises(ValueError, match=r"'layer_types' and 'sliding_window_pattern'=3 disagree"):
        hf_config_to_model_config(dict(v5, sliding_window_pattern=3, _sliding_window_pattern=3))


def test_released_configs_map_to_the_expected_shapes():
    """config.json of the paper's models (as published; shapes only, no weights) give the right ModelConfig."""
    qwen25_3b = {"architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
                 "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
                 "intermediate_size": 11008, "max_position_embeddings": 32768, "max_window_layers": 70,
                 "model_type": "qwen2", "num_attention_heads": 16, "num_hidden_layers": 36, "num_key_value_heads": 2,
                 "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
                 "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
                 "use_sliding_window": False, "vocab_size": 151936}
    c = hf_config_to_model_config(qwen25_3b)
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.attention_bias, c.layer_types) == (
        2048, 36, 16, 2, 128, True, None)
    qwen3_4b = {"architectures": ["Qwen3ForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                "bos_token_id": 151643, "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu",
                "hidden_size": 2560, "initializer_range": 0.02, "intermediate_size": 9728,
                "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
                "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
                "rope_scaling": None, "rope_theta": 1000000, "sliding_window": None, "tie_word_embeddings": True,
                "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": True,
                "use_sliding_window": False, "vocab_size": 151936}
    c = hf_config_to_model_config(qwen3_4b)
    assert (c.dim, c.n_heads, c.head_dim, c.qk_norm, c.tie_embeddings) == (2560, 32, 128, True, True)
    gemma3_4b = {"architectures": ["Gemma3ForConditionalGeneration"], "boi_token_index": 255999,
                 "eoi_token_index": 256000, "eos_token_id": [1, 106], "image_token_index": 262144,
                 "initializer_range": 0.02, "mm_tokens_per_image": 256, "model_type": "gemma3",
                 "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                                 "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                                 "sliding_window": 1024},
                 "torch_dtype": "bfloat16", "transformers_version": "4.50.0.dev0",
                 "vision_config": {"hidden_size": 1152, "model_type": "siglip_vision_model"}}
    c = hf_config_to_model_config(gemma3_4b)
    assert (c.vocab_size, c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim) == (262208, 2560, 34, 8, 4, 256)
    assert c.layer_types.count("full_attention") == 5 and c.layer_types[5] == "full_attention"
    assert (c.rope_theta, c.rope_local_theta, c.rope_scaling) == (1e6, 1e4, RopeScaling("linear", 8.0))
    assert (c.sliding_window, c.query_pre_attn_scalar, c.final_logit_softcap) == (1024, 256.0, None)
    llama32_1b = {"architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
                  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
                  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
                  "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama",
                  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1,
                  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0,
                                                          "low_freq_factor": 1.0,
                                                          "original_max_position_embeddings": 8192,
                                                          "rope_type": "llama3"},
                  "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
                  "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256}
    c = hf_config_to_model_config(llama32_1b)
    assert c.rope_scaling == RopeScaling("llama3", 32.0, 1.0, 4.0, 8192) and c.rope_theta == 500000.0


_GEMMA = json.loads((FIXTURES / "lm_arch" / "gemma3" / "config.json").read_text())
_QWEN3 = json.loads((FIXTURES / "lm_arch" / "qwen3" / "config.json").read_text())
_LLAMA = json.loads((FIXTURES / "lm_arch" / "llama3" / "config.json").read_text())


@pytest.mark.parametrize(
    "hf, message",
    [
        (dict(_QWEN3, some_new_switch=True), r"unknown config field\(s\) \['some_new_switch'\]"),
        (dict(_GEMMA, attn_logit_softcapping=50.0), r"'attn_logit_softcapping' is set, but transformers' Gemma 3"),
        (dict(_GEMMA, use_bidirectional_attention=True), r"use_bidirectional_attention=True is not supported"),
        (dict(_GEMMA, hidden_activation="gelu"), r"'hidden_activation'='gelu' is not supported"),
        (dict(_GEMMA, rope_parameters={"full_attention": {"rope_type": "yarn", "factor": 2.0}}),
         r"rope scaling 'yarn' .*is not supported"),
        (dict(_GEMMA, rope_parameters={"global": {}}), r"unknown key\(s\) \['global'\]"),
        (dict(_QWEN3, attention_bias=True), r"attention_bias=True is not supported for qwen3"),
        (dict(_QWEN3, attention_dropout=0.1), r"attention dropout"),
        (dict(_QWEN3, hidden_act="gelu"), r"'hidden_act'='gelu' is not supported"),
        (dict(_LLAMA, rope_parameters=dict(_LLAMA["rope_parameters"], rope_type="dynamic")),
         r"rope scaling 'dynamic'"),
        (dict(_LLAMA, rope_parameters=dict(_LLAMA["rope_parameters"], beta_fast=32)),
         r"unknown field\(s\) \['rope_parameters\.beta_fast'\]"),
        (dict(_LLAMA, rope_parameters=dict(_LLAMA["rope_parameters"], high_freq_factor=0.5)),
         r"rope scaling 'llama3' in 'rope_parameters' is invalid .*high_freq_factor"),
        (dict(_LLAMA, rope_parameters=dict(_LLAMA["rope_parameters"], partial_rotary_factor=0.5)),
         r"partial rotary embeddings"),
        (dict(_LLAMA, rope_theta=10.0), r"'rope_theta'=10\.0 disagrees"),
        (dict(_QWEN3, layer_types=["full_attention"]), r"'layer_types' must list num_hidden_layers=2"),
        (dict(_LLAMA, final_logit_softcapping=30.0), r"unknown config field\(s\) \['final_logit_softcapping'\]"),
    ],
)
def test_unsupported_or_unknown_fields_are_rejected_by_name(hf, message):
    with pytest.raises(ValueError, match=r"^config\.json: .*" + message):
        hf_config_to_model_config(hf)


def test_null_and_known_harmless_fields_are_accepted():
    base = hf_config_to_model_config(_QWEN3)
    assert hf_config_to_model_config(dict(_QWEN3, quantization_config=None, unsloth_version="x",
                                          cache_implementation="hybrid")) == base


def test_config_rejects_inconsistent_sliding_fields():
    with pytest.raises(ValueError, match="sliding_window is None"):
        ModelConfig.tiny(layer_types=("sliding_attention", "full_attention"))
    with pytest.raises(ValueError, match="no layer is 'sliding_attention'"):
        ModelConfig.tiny(sliding_window=4)
    with pytest.raises(ValueError, match="n_layers=2 entries"):
        ModelConfig.tiny(layer_types=("sliding_attention",), sliding_window=4)
    assert ModelConfig.tiny(head_dim_override=16) == ModelConfig.tiny()  # the implied width is canonicalised away


# ------------------------------------------------------------------------------------------------------------
# Regeneration under the reference environment
# ------------------------------------------------------------------------------------------------------------


def _reference_python():
    import importlib.util
    import sys

    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        return sys.executable
    candidate = ROOT / ".venv-ref" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


@pytest.mark.reference
def test_regenerated_reference_equals_the_fixture_and_the_jax_model(reference, tmp_path):
    python = _reference_python()
    if python is None:
        pytest.fail("the reference test needs torch + transformers importable, or a .venv-ref/ with them")
    subprocess.run([python, str(ROOT / "tools" / "make_arch_reference.py"), "--out-dir", str(tmp_path)], check=True,
                   env=dict(os.environ, PYTHONPATH=""))
    fresh = json.loads((tmp_path / "lm_arch_reference.json").read_text())
    assert sorted(fresh["models"]) == sorted(reference["models"])
    for name, new in fresh["models"].items():
        old = reference["models"][name]
        new_w = load_file(str(tmp_path / new["folder"] / "model.safetensors"))
        old_w = load_file(str(FIXTURES / old["folder"] / "model.safetensors"))
        assert sorted(new_w) == sorted(old_w)
        for k in new_w:
            np.testing.assert_array_equal(new_w[k], old_w[k])
        for a, b in zip(new["texts"], old["texts"], strict=True):
            assert a["token_ids"] == b["token_ids"]
            np.testing.assert_allclose(a["log_probs_f32"], b["log_probs_f32"], atol=1e-5, rtol=0)
        assert [g["new_token_ids_cache"] for g in new["greedy"]] == [g["new_token_ids_cache"] for g in old["greedy"]]
        config, params = load_hf_checkpoint(tmp_path / new["folder"])
        got = _jax_log_probs(config, jax.tree_util.tree_map(jnp.asarray, params), new["texts"])
        assert _max_error(got, new["texts"]) <= TOLERANCE_NATS
    shutil.rmtree(tmp_path / "lm_arch")


# ------------------------------------------------------------------------------------------------------------
# GGUF (llama.cpp's metadata keys and tensor names for qwen3 / gemma3)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["qwen3", "gemma3"])
def test_gguf_round_trip_keeps_the_model(reference, models, name, tmp_path):
    import gguf
    from gguf.constants import MODEL_ARCH_NAMES, MODEL_TENSORS, TENSOR_NAMES

    from sft_tilt.lm.gguf_io import gguf_metadata, load_gguf, save_gguf

    config, params = models[name]
    path = save_gguf(tmp_path / f"{name}.gguf", config, params, "F32")
    arch = next(a for a, n in MODEL_ARCH_NAMES.items() if n == name)
    allowed = {TENSOR_NAMES[t].format(bid=i) + ".weight" for t in MODEL_TENSORS[arch] for i in range(config.n_layers)}
    names = {t.name for t in gguf.GGUFReader(str(path)).tensors}
    assert names <= allowed, sorted(names - allowed)  # llama.cpp's names for this architecture
    meta = gguf_metadata(path)
    assert meta[f"{name}.attention.key_length"] == config.head_dim
    loaded_config, loaded = load_gguf(path)
    f32 = float(np.float32(config.norm_eps))
    if name == "gemma3":
        assert meta["gemma3.attention.sliding_window"] == 4 and meta["gemma3.rope.freq_base_swa"] == 100.0
        assert loaded_config.query_pre_attn_scalar == pytest.approx(24.0, rel=1e-6)
        loaded_config = dataclasses.replace(loaded_config, query_pre_attn_scalar=24.0)
        # llama.cpp stores Gemma norm gains as 1 + w
        raw = {t.name: np.asarray(t.data) for t in gguf.GGUFReader(str(path)).tensors}
        np.testing.assert_allclose(raw["blk.0.attn_q_norm.weight"], np.asarray(params["layers"]["q_norm"][0]) + 1,
                                   rtol=0, atol=1e-6)
    assert loaded_config == dataclasses.replace(config, norm_eps=f32)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(np.asarray(a), b, rtol=0, atol=1e-6), params, loaded)
    texts = reference["models"][name]["texts"]
    got = _jax_log_probs(loaded_config, jax.tree_util.tree_map(jnp.asarray, loaded), texts)
    assert _max_error(got, texts) <= TOLERANCE_NATS


def test_gguf_without_gemma3_swa_keys_uses_llama_cpp_defaults(models, tmp_path, monkeypatch):
    """Files from converters that write only the sliding window get llama.cpp's fixed pattern 6 and base 10000."""
    import gguf

    from sft_tilt.lm.gguf_io import gguf_metadata, load_gguf, save_gguf

    monkeypatch.setattr(gguf.GGUFWriter, "add_sliding_window_pattern", lambda self, value: None)
    monkeypatch.setattr(gguf.GGUFWriter, "add_rope_freq_base_swa", lambda self, value: None)
    config, params = models["gemma3"]
    config = dataclasses.replace(config, n_layers=1, rope_local_theta=10000.0, layer_types=("sliding_attention",))
    params = dict(params, layers={k: v[:1] for k, v in params["layers"].items()})
    path = save_gguf(tmp_path / "g.gguf", config, params, "F32")
    assert "gemma3.attention.sliding_window_pattern" not in gguf_metadata(path)
    loaded, _ = load_gguf(path)
    assert loaded.layer_types == ("sliding_attention",) and loaded.rope_local_theta == 10000.0


@pytest.mark.parametrize("name, message", [("llama3", r"rope_scaling"), ("qwen2", r"layer_types")])
def test_gguf_refuses_what_llama_cpp_files_cannot_express(models, name, message, tmp_path):
    from sft_tilt.lm.gguf_io import save_gguf

    config, params = models[name]
    with pytest.raises(ValueError, match=rf"a {config.architecture} GGUF file cannot express .*{message}"):
        save_gguf(tmp_path / "x.gguf", config, params)


_READ_BACK = """
import json, sys, torch
from transformers import AutoModelForCausalLM
out = {}
for folder, ids in json.loads(sys.argv[1]):
    m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager").eval()
    with torch.no_grad():
        lp = torch.log_softmax(m(torch.tensor([ids])).logits[0, :-1], -1)
    out[folder] = lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()
print("RESULT" + json.dumps(out))
"""


@pytest.mark.reference
def test_transformers_reads_the_checkpoints_we_write(reference, models, tmp_path):
    """save_hf_checkpoint's folders load in transformers as the same model (same log-probs as the fixture)."""
    python = _reference_python()
    if python is None:
        pytest.fail("the reference test needs torch + transformers importable, or a .venv-ref/ with them")
    jobs = []
    for name in ARCHS:
        save_hf_checkpoint(tmp_path / name, *models[name])
        jobs.append((str(tmp_path / name), reference["models"][name]["texts"][0]["token_ids"]))
    run = subprocess.run([python, "-c", _READ_BACK, json.dumps(jobs)], check=True, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=""))
    got = json.loads(run.stdout.split("RESULT", 1)[1])
    for name in ARCHS:
        np.testing.assert_allclose(got[str(tmp_path / name)], reference["models"][name]["texts"][0]["log_probs_f32"],
                                   atol=1e-5, rtol=0)
