"""GGUF and Hugging Face checkpoints: a tiny random model written to disk loads back to the same model."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import gguf
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.gguf_io import _permute, _unpermute, _write_gguf, default_model_path, load_gguf, save_gguf
from sft_tilt.lm.hf_io import load_hf_checkpoint, save_hf_checkpoint
from sft_tilt.lm.model import forward, init_params

LLAMA = ModelConfig.tiny()
QWEN2 = ModelConfig.tiny(architecture="qwen2", attention_bias=True, tie_embeddings=False, rope_theta=1e6)
ROOT = Path(__file__).resolve().parents[2]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves(tree)]


def _gguf_config(config):
    """GGUF stores norm_eps as float32."""
    return dataclasses.replace(config, norm_eps=float(np.float32(config.norm_eps)))


@pytest.mark.parametrize("config", [LLAMA, QWEN2], ids=["llama", "qwen2"])
def test_gguf_f32_round_trip_is_exact(tmp_path, config):
    params = init_params(config, jax.random.key(0))
    save_gguf(tmp_path / "m.gguf", config, params)
    loaded_config, loaded = load_gguf(tmp_path / "m.gguf")
    assert loaded_config == _gguf_config(config)
    for a, b in zip(_leaves(params), _leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("tensor_type, cast", [("F16", np.float16), ("BF16", ml_dtypes.bfloat16)])
def test_gguf_half_precision_equals_rounding_the_weights(tmp_path, tensor_type, cast):
    params = init_params(LLAMA, jax.random.key(1))
    save_gguf(tmp_path / "m.gguf", LLAMA, params, tensor_type)
    _, loaded = load_gguf(tmp_path / "m.gguf")
    for key in ("wq", "wk", "w_down"):
        want = np.asarray(params["layers"][key]).astype(cast).astype(np.float32)
        np.testing.assert_array_equal(loaded["layers"][key], want)
    np.testing.assert_array_equal(loaded["layers"]["attn_norm"], np.asarray(params["layers"]["attn_norm"]))


def _block_error_bound(w_in_out: np.ndarray, tensor_type: str) -> np.ndarray:
    """Worst-case dequantisation error per weight, from the ggml block formats (blocks of 32 along the input axis).

    Q8_0: d = max|x|/127, q = round(x/d)                      -> |err| <= d/2   (+ fp16 rounding of d: 127 d 2^-11)
    Q4_0: d = x_absmax_signed/-8, q = clip(round(x/d)+8, 0, 15) -> |err| <= |d| (the +max end is clipped at 7d)
    Q4_1: d = (max-min)/15, q = round((x-min)/d)               -> |err| <= d/2   (+ fp16 rounding of d and min)
    """
    w = w_in_out.T  # [out, in]: rows are contiguous in the file, blocks of 32 along "in"
    blocks = w.reshape(w.shape[0], -1, 32).astype(np.float64)
    fp16 = 2.0**-11
    if tensor_type == "Q8_0":
        d = np.abs(blocks).max(-1, keepdims=True) / 127
        bound = d / 2 + 127 * d * fp16
    elif tensor_type == "Q4_0":
        d = np.abs(blocks).max(-1, keepdims=True) / 8
        bound = d + 16 * d * fp16
    else:
        lo, hi = blocks.min(-1, keepdims=True), blocks.max(-1, keepdims=True)
        d = (hi - lo) / 15
        bound = d / 2 + 15 * d * fp16 + np.abs(lo) * fp16
    return np.broadcast_to(bound, blocks.shape).reshape(w.shape).T * (1 + 1e-6) + 1e-12


@pytest.mark.parametrize("tensor_type", ["Q8_0", "Q4_0", "Q4_1"])
def test_gguf_quantised_weights_are_within_the_block_format_error(tmp_path, tensor_type):
    params = init_params(QWEN2, jax.random.key(2))
    save_gguf(tmp_path / "m.gguf", QWEN2, params, tensor_type)
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    assert reader.get_tensor(1).tensor_type.name in (tensor_type, "F32")
    assert {t.tensor_type.name for t in reader.tensors} == {tensor_type, "F32"}
    _, loaded = load_gguf(tmp_path / "m.gguf")
    pairs = [(params["embed"].T, loaded["embed"].T), (params["lm_head"], loaded["lm_head"])]
    pairs += [(params["layers"][k][i], loaded["layers"][k][i]) for k in ("wq", "wk", "wv", "wo", "w_gate", "w_down")
              for i in range(QWEN2.n_layers)]
    for original, got in pairs:
        original = np.asarray(original)
        err = np.abs(got - original)
        assert np.all(err <= _block_error_bound(original, tensor_type))
        assert err.max() > 0  # it really was quantised
    np.testing.assert_array_equal(loaded["layers"]["bq"], np.asarray(params["layers"]["bq"]))  # biases stay F32


def test_gguf_quantised_model_logit_error_is_of_the_order_of_the_weight_error(tmp_path):
    """Relative RMS logit error vs relative RMS weight error e_w: same order (within 3x), ordered F16 < Q8_0 < Q4_1.

    Expected sizes (Gaussian weights, blocks of 32): F16 ~ 2^-12, Q8_0 ~ (2.5/127)/sqrt(12) ~ 0.6%,
    Q4_1 ~ (4.5/15)/sqrt(12) ~ 9%.
    """
    params = init_params(LLAMA, jax.random.key(3))
    tokens = jax.random.randint(jax.random.key(4), (2, 16), 0, LLAMA.vocab_size)
    fwd = jax.jit(forward, static_argnums=1)
    want = np.asarray(fwd(params, LLAMA, tokens))
    logit_errors = []
    for tensor_type in ("F16", "Q8_0", "Q4_1"):
        save_gguf(tmp_path / "m.gguf", LLAMA, params, tensor_type)
        config, loaded = load_gguf(tmp_path / "m.gguf")
        w0 = np.concatenate([np.asarray(params["layers"][k]).ravel() for k in ("wq", "wk", "wv", "wo", "w_up")])
        w1 = np.concatenate([np.asarray(loaded["layers"][k]).ravel() for k in ("wq", "wk", "wv", "wo", "w_up")])
        weight_error = np.sqrt(np.mean((w1 - w0) ** 2) / np.mean(w0**2))
        got = np.asarray(fwd(loaded, config, tokens))
        logit_error = np.sqrt(np.mean((got - want) ** 2) / np.mean(want**2))
        assert weight_error / 3 < logit_error < 3 * weight_error, (tensor_type, weight_error, logit_error)
        logit_errors.append(logit_error)
    assert logit_errors[0] < logit_errors[1] < logit_errors[2] < 0.3


def test_llama_qk_permutation_matches_llama_cpp_index_formula():
    n_head, hd, D = 3, 8, 5
    w = np.random.default_rng(0).normal(size=(n_head * hd, D))
    permuted = _permute(w, n_head)
    # llama.cpp: in head h, interleaved row 2i + s holds rotate-half row s * hd/2 + i
    for h in range(n_head):
        for i in range(hd // 2):
            for s in range(2):
                np.testing.assert_array_equal(permuted[h * hd + 2 * i + s], w[h * hd + s * hd // 2 + i])
    np.testing.assert_array_equal(_unpermute(permuted, n_head), w)


def test_gguf_llama_file_stores_query_rows_in_llama_cpp_order(tmp_path):
    params = init_params(LLAMA, jax.random.key(5))
    save_gguf(tmp_path / "m.gguf", LLAMA, params)
    reader = gguf.GGUFReader(str(tmp_path / "m.gguf"))
    stored = {t.name: np.asarray(t.data) for t in reader.tensors}
    wq_hf = np.asarray(params["layers"]["wq"][0]).T  # [out, in] in rotate-half order
    hd = LLAMA.head_dim
    rows = [h * hd + s * hd // 2 + i for h in range(LLAMA.n_heads) for i in range(hd // 2) for s in range(2)]
    np.testing.assert_array_equal(stored["blk.0.attn_q.weight"], wq_hf[rows])


@pytest.mark.parametrize("config", [LLAMA, QWEN2], ids=["llama", "qwen2"])
def test_hf_round_trip_is_exact(tmp_path, config):
    params = init_params(config, jax.random.key(6))
    save_hf_checkpoint(tmp_path / "ckpt", config, params)
    loaded_config, loaded = load_hf_checkpoint(tmp_path / "ckpt")
    assert loaded_config == config
    for a, b in zip(_leaves(params), _leaves(loaded), strict=True):
        np.testing.assert_array_equal(a, b)


def test_hf_bfloat16_sharded_checkpoint_loads_as_float32(tmp_path):
    params = init_params(LLAMA, jax.random.key(7))
    save_hf_checkpoint(tmp_path / "ckpt", LLAMA, params)
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    os.remove(tmp_path / "ckpt" / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    save_file({k: tensors[k].astype(ml_dtypes.bfloat16) for k in names[:half]},
              str(tmp_path / "ckpt" / "model-00001-of-00002.safetensors"))
    save_file({k: tensors[k].astype(ml_dtypes.bfloat16) for k in names[half:]},
              str(tmp_path / "ckpt" / "model-00002-of-00002.safetensors"))
    _, loaded = load_hf_checkpoint(tmp_path / "ckpt")
    for a, b in zip(_leaves(params), _leaves(loaded), strict=True):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a.astype(ml_dtypes.bfloat16).astype(np.float32), b)


def test_default_model_file_has_smollm2_shapes_and_parameter_count():
    path = default_model_path()
    reader = gguf.GGUFReader(str(path))
    n_in_file = sum(int(t.n_elements) for t in reader.tensors)
    expected = ModelConfig.smollm2_135m()
    assert expected.n_params() == n_in_file
    assert reader.fields["general.architecture"].contents() == "llama"


# --------------------------------------------------------------------------------------------------- bad input


def test_missing_gguf_file_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        load_gguf(tmp_path / "nope.gguf")


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_gguf_file_names_the_file(tmp_path, damage):
    path = tmp_path / "bad.gguf"
    if damage == "garbage":
        path.write_bytes(b"this is not a gguf file" * 10)
    else:
        save_gguf(path, LLAMA, init_params(LLAMA, jax.random.key(0)))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="bad.gguf"):
        load_gguf(path)


def test_unsupported_gguf_architecture_is_rejected(tmp_path):
    _write_gguf(tmp_path / "m.gguf", LLAMA, init_params(LLAMA, jax.random.key(0)), "F32", arch="phi3")
    with pytest.raises(ValueError, match=r"m\.gguf.*unsupported architecture 'phi3'"):
        load_gguf(tmp_path / "m.gguf")


def test_unsupported_gguf_tensor_type_is_rejected(tmp_path):
    _write_gguf(tmp_path / "m.gguf", LLAMA, init_params(LLAMA, jax.random.key(0)), "Q5_0")
    with pytest.raises(ValueError, match=r"m\.gguf.*unsupported type Q5_0"):
        load_gguf(tmp_path / "m.gguf")


def test_gguf_tensor_shapes_disagreeing_with_metadata_are_rejected(tmp_path):
    params = init_params(LLAMA, jax.random.key(0))
    _write_gguf(tmp_path / "m.gguf", dataclasses.replace(LLAMA, hidden_dim=128), params, "F32")
    with pytest.raises(ValueError, match=r"m\.gguf.*w_gate.*shape"):
        load_gguf(tmp_path / "m.gguf")


def test_save_gguf_rejects_unknown_tensor_type(tmp_path):
    with pytest.raises(ValueError, match="tensor_type"):
        save_gguf(tmp_path / "m.gguf", LLAMA, init_params(LLAMA, jax.random.key(0)), "Q3_K")


def test_missing_default_model_names_the_override(monkeypatch, tmp_path):
    monkeypatch.setenv("SFT_MODEL_PATH", str(tmp_path / "absent.gguf"))
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        default_model_path()


def test_hf_checkpoint_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        load_hf_checkpoint(tmp_path / "missing_dir")
    ckpt = tmp_path / "ckpt"
    save_hf_checkpoint(ckpt, LLAMA, init_params(LLAMA, jax.random.key(0)))
    config_json = json.loads((ckpt / "config.json").read_text())

    (ckpt / "config.json").write_text(json.dumps(dict(config_json, model_type="gpt2", architectures=["GPT2LMHeadModel"])))
    with pytest.raises(ValueError, match=r"config\.json.*unsupported architecture"):
        load_hf_checkpoint(ckpt)

    (ckpt / "config.json").write_text(json.dumps(dict(config_json, intermediate_size=128)))
    with pytest.raises(ValueError, match=r"model\.safetensors.*mlp\.gate_proj.*shape"):
        load_hf_checkpoint(ckpt)

    (ckpt / "config.json").write_text(json.dumps(dict(config_json, num_hidden_layers=3)))
    with pytest.raises(ValueError, match=r"layers\.2.*missing"):
        load_hf_checkpoint(ckpt)

    (ckpt / "config.json").write_text(json.dumps(dict(config_json, rope_scaling={"rope_type": "llama3"})))
    with pytest.raises(ValueError, match="rope scaling"):
        load_hf_checkpoint(ckpt)

    (ckpt / "config.json").write_text(json.dumps(config_json))
    (ckpt / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(ValueError, match=r"model\.safetensors.*not a readable"):
        load_hf_checkpoint(ckpt)


# ------------------------------------------------------------------------------- independent implementation


TRANSFORMERS_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    from transformers import AutoModelForCausalLM
    folder, tokens = sys.argv[1], json.loads(sys.argv[2])
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        print("RESULT" + json.dumps(model(torch.tensor(tokens)).logits.tolist()))
""")


@pytest.mark.reference
@pytest.mark.parametrize("config", [LLAMA, QWEN2], ids=["llama", "qwen2"])
def test_transformers_reads_our_hf_checkpoint_to_the_same_logits(tmp_path, config):
    python = ROOT / ".venv-ref" / "bin" / "python"
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401

        python = Path(sys.executable)
    except ImportError:
        if not python.exists():
            pytest.fail("needs torch + transformers importable, or a .venv-ref/ with them")
    params = init_params(config, jax.random.key(8))
    save_hf_checkpoint(tmp_path / "ckpt", config, params)
    tokens = np.asarray(jax.random.randint(jax.random.key(9), (2, 10), 0, config.vocab_size)).tolist()
    proc = subprocess.run([str(python), "-c", TRANSFORMERS_SCRIPT, str(tmp_path / "ckpt"), json.dumps(tokens)],
                          capture_output=True, text=True, timeout=600, env=dict(os.environ, PYTHONPATH=""))
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = np.asarray(json.loads(proc.stdout.split("RESULT", 1)[1]))
    got = np.asarray(forward(params, config, jnp.asarray(tokens)))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_gguf_metadata_reads_the_written_hyperparameters(tmp_path):
    from sft_tilt.lm.gguf_io import gguf_metadata

    save_gguf(tmp_path / "m.gguf", QWEN2, init_params(QWEN2, jax.random.key(0)), metadata={"general.note": "x"})
    meta = gguf_metadata(tmp_path / "m.gguf")
    assert meta["general.architecture"] == "qwen2" and meta["general.note"] == "x"
    assert (meta["qwen2.block_count"], meta["qwen2.attention.head_count_kv"]) == (QWEN2.n_layers, QWEN2.n_kv_heads)
    assert meta["qwen2.rope.freq_base"] == QWEN2.rope_theta
