"""The JAX SmolLM2-135M-Instruct against Hugging Face transformers (torch CPU) loading the same GGUF file.

The fixture tests/fixtures/lm_reference.json was written by tools/make_lm_reference.py under the reference
environment (.venv-ref: torch 2.13.0 CPU + transformers 5.23.0); these tests need only the fixture and the model.
"""

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.lm.generate import generate_greedy
from sft_tilt.lm.gguf_io import default_model_path, load_gguf
from sft_tilt.lm.model import token_log_probs

# Spends its time running compiled programs rather than compiling them: `make test` runs it at XLA's default
# optimisation (see tests/conftest.py).
pytestmark = pytest.mark.execution_bound


ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "lm_reference.json"
TOLERANCE_NATS = 1e-4  # agreement required of the JAX model in float32


@pytest.fixture(scope="module")
def reference():
    return json.loads(FIXTURE.read_text())


@pytest.fixture(scope="module")
def model():
    config, params = load_gguf()
    return config, jax.tree_util.tree_map(jnp.asarray, params)


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_LOG_PROBS = jax.jit(token_log_probs, static_argnums=1)


def _jax_log_probs(model, texts):
    """JAX log-probs of every fixture text, run as one right-padded batch (one compilation; causality makes the
    padding invisible to the real positions)."""
    config, params = model
    width = max(len(e["token_ids"]) for e in texts)
    batch = np.zeros((len(texts), width), np.int32)
    for i, e in enumerate(texts):
        batch[i, : len(e["token_ids"])] = e["token_ids"]
    out = np.asarray(_LOG_PROBS(params, config, jnp.asarray(batch)))
    assert out.dtype == np.float32
    return [out[i, : len(e["token_ids"]) - 1] for i, e in enumerate(texts)]


def _max_log_prob_error(got, texts, key="log_probs_f32"):
    worst = 0.0
    for g, entry in zip(got, texts, strict=True):
        want = np.asarray(entry[key])
        assert g.shape == want.shape
        worst = max(worst, float(np.abs(g - want).max()))
    return worst


def test_fixture_was_made_from_the_default_model_file(reference):
    path = default_model_path()
    assert path.name == reference["model_file"]
    assert _sha256(path) == reference["model_sha256"]


def test_loaded_config_matches_the_reference_config(model, reference):
    config, _ = model
    ref = reference["config"]
    assert (config.vocab_size, config.dim, config.n_layers, config.n_heads, config.n_kv_heads, config.hidden_dim) == (
        ref["vocab_size"], ref["hidden_size"], ref["num_hidden_layers"], ref["num_attention_heads"],
        ref["num_key_value_heads"], ref["intermediate_size"])
    assert config.rope_theta == ref["rope_parameters"]["rope_theta"]
    assert config.norm_eps == ref["rms_norm_eps"]
    assert config.tie_embeddings == ref["tie_word_embeddings"]


def test_log_probs_match_transformers_within_1e_4_nats(model, reference, record_property):
    got = _jax_log_probs(model, reference["texts"])
    worst32 = _max_log_prob_error(got, reference["texts"], "log_probs_f32")
    worst64 = _max_log_prob_error(got, reference["texts"], "log_probs_f64")
    record_property("max_abs_diff_vs_torch_f32", worst32)
    record_property("max_abs_diff_vs_torch_f64", worst64)
    print(f"max |log p_jax - log p_torch| = {worst32:.3g} (torch f32), {worst64:.3g} (torch f64) nats/token")
    assert worst32 <= TOLERANCE_NATS
    assert worst64 <= TOLERANCE_NATS


def test_log_probs_are_not_trivially_close(model, reference):
    """Guard: a different model (first two layers swapped) is far from the reference, so the bound has teeth."""
    config, params = model
    swapped = dict(params, layers=jax.tree_util.tree_map(lambda a: a.at[jnp.array([0, 1])].set(a[jnp.array([1, 0])]),
                                                         params["layers"]))
    got = _jax_log_probs((config, swapped), reference["texts"])
    assert _max_log_prob_error(got, reference["texts"]) > 100 * TOLERANCE_NATS


def test_greedy_generation_with_cache_matches_transformers(model, reference):
    config, params = model
    for entry in reference["greedy"]:
        got = generate_greedy(params, config, entry["prompt_ids"], len(entry["new_token_ids"]), use_cache=True)
        assert got.tolist() == entry["new_token_ids"], entry["prompt"]
    paris = reference["greedy"][0]
    assert paris["prompt"] == "The capital of France is" and paris["new_text"].startswith(" Paris")


def test_greedy_generation_without_cache_matches_transformers(model, reference):
    # One prompt suffices here: cache vs no-cache equality is tested at length on a tiny model (test_lm_generate).
    config, params = model
    entry = reference["greedy"][0]
    got = generate_greedy(params, config, entry["prompt_ids"], len(entry["new_token_ids"]), use_cache=False)
    assert got.tolist() == entry["new_token_ids"]


def _reference_python():
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        return sys.executable
    candidate = ROOT / ".venv-ref" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


@pytest.mark.reference
def test_regenerated_reference_equals_the_fixture_and_the_jax_model(model, reference, tmp_path):
    python = _reference_python()
    if python is None:
        pytest.fail("the reference test needs torch + transformers importable, or a .venv-ref/ with them")
    out = tmp_path / "lm_reference.json"
    subprocess.run([python, str(ROOT / "tools" / "make_lm_reference.py"), "--model", str(default_model_path()),
                    "--out", str(out)], check=True, env=dict(os.environ, PYTHONPATH=""))
    fresh = json.loads(out.read_text())
    assert fresh["model_sha256"] == reference["model_sha256"]
    for new, old in zip(fresh["texts"], reference["texts"], strict=True):
        assert new["token_ids"] == old["token_ids"]
        np.testing.assert_allclose(new["log_probs_f32"], old["log_probs_f32"], atol=1e-5, rtol=0)
    assert [g["new_token_ids"] for g in fresh["greedy"]] == [g["new_token_ids"] for g in reference["greedy"]]
    assert _max_log_prob_error(_jax_log_probs(model, fresh["texts"]), fresh["texts"]) <= TOLERANCE_NATS
