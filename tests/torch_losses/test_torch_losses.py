"""The PyTorch losses of ``torch_losses`` equal the toolkit's JAX weightings (``sft_tilt.methods.weighting``) to 1e-6.

The JAX side runs here (the toolkit's environment); the PyTorch side runs in the reference environment
(.venv-ref, torch + transformers, no JAX) as a subprocess, ``tools/torch_losses_reference.py``, on the same inputs
written to a JSON file. Compared per case, in float64: the loss (with ``num_items_in_batch`` None and given), its
gradient with respect to the logits, the detached token weights, the per-token log-probabilities, the dynamic
temperature and FLOW's sequence weights. The batches include rows without any target (all labels -100), prompts
and padding. The same run checks ``sft_loss()`` against transformers' own causal-LM loss and one ``Trainer`` run
with ``compute_loss_func=talr_loss()``.

The mapping from a case to the JAX weighting is :func:`_jax_weighting`, the one place that knows the API of
``sft_tilt.methods.weighting``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.methods.weighting import LossWeighting, dynamic_tau, flow_sequence_weights, token_nll, token_weights, weighted_loss

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
TOLERANCE = 1e-6
IGNORE = -100

# (method, tau, floor, normalization): tau is "dynamic" or a number; the torch_losses arguments
WEIGHTINGS = [
    ("sft", "dynamic", 0.0, "none"),
    ("sft", "dynamic", 0.0, "mean"),
    ("sft", "dynamic", 0.0, "simplex"),
    ("talr", "dynamic", 0.01, "none"),
    ("talr", "dynamic", 0.01, "mean"),
    ("talr", "dynamic", 0.01, "simplex"),
    ("talr", "dynamic", 0.0, "none"),
    ("talr", 0.5, 0.2, "none"),
    ("talr", 0.5, 0.2, "mean"),
    ("talr", 2.0, 0.0, "simplex"),
    ("talr", 0.3, 0.04, "simplex"),
    ("dft", "dynamic", 0.0, "none"),
    ("dft", "dynamic", 0.0, "mean"),
    ("dft", "dynamic", 0.0, "simplex"),
    ("flow", "dynamic", 0.0, "none"),
    ("flow", "dynamic", 0.0, "mean"),
    ("flow", "dynamic", 0.0, "simplex"),
]


def _jax_weighting(method, tau, floor, normalization) -> LossWeighting:
    """The ``sft_tilt.methods.weighting`` configuration that a ``torch_losses`` weighting stands for."""
    if tau == "dynamic":
        return LossWeighting(method, tau_mode="dynamic", floor=floor, normalization=normalization)
    return LossWeighting(method, tau_mode="fixed", tau=float(tau), floor=floor, normalization=normalization)


def _batches(rng) -> list[tuple[np.ndarray, np.ndarray]]:
    """Float64 logits [B, T, V] and labels [B, T]: prompts and padding (-100), rows without any target, an even
    number of rows with targets (the median is a midpoint), peaked logits (so floors bind) and a single row."""
    out = []
    for B, T, V, scale, empty_rows in ((4, 7, 11, 3.0, (2,)), (5, 6, 9, 1.0, (0,)), (3, 8, 13, 6.0, ()), (1, 5, 7, 2.0, ())):
        logits = rng.normal(scale=scale, size=(B, T, V))
        labels = rng.integers(0, V, size=(B, T))
        for b in range(B):
            start, stop = rng.integers(0, 3), T - rng.integers(0, 3)
            labels[b, :start] = IGNORE
            labels[b, stop:] = IGNORE
        for b in empty_rows:
            labels[b] = IGNORE
        out.append((logits, labels))
    return out


def _jax_side(logits, labels, weighting: LossWeighting, num_items, sequence_weights) -> dict:
    targets = labels[:, 1:]
    mask = jnp.asarray(targets != IGNORE, jnp.float64)
    safe = jnp.asarray(np.where(targets != IGNORE, targets, 0))
    seq_w = None if sequence_weights is None else jnp.asarray(sequence_weights)
    n_batch = max(float(mask.sum()), 1.0)
    scale = 1.0 if num_items is None else n_batch / num_items  # weighted_loss divides by this batch's count

    def loss_fn(lg):
        losses = token_nll(lg[:, :-1], safe)
        return scale * weighted_loss(losses, mask, token_weights(weighting, losses, mask, seq_w))

    x = jnp.asarray(logits)
    loss, grad = jax.value_and_grad(loss_fn)(x)
    losses = token_nll(x[:, :-1], safe)
    return {
        "loss": float(loss),
        "grad": np.asarray(grad),
        "weights": np.asarray(token_weights(weighting, losses, mask, seq_w)),
        "log_probs": np.asarray(jnp.where(mask > 0, -losses, 0.0)),
        "tau": float(dynamic_tau(losses, mask)),
    }


def _cases():
    rng = np.random.default_rng(20260301)
    cases, expected = [], []
    for logits, labels in _batches(rng):
        n_targets = int((labels[:, 1:] != IGNORE).sum())
        seq_w = rng.uniform(0.05, 1.0, size=logits.shape[0])
        initial = rng.uniform(0.1, 3.0, size=6)
        for method, tau, floor, normalization in WEIGHTINGS:
            for num_items in (None, n_targets + 5):
                weighting = _jax_weighting(method, tau, floor, normalization)
                sw = seq_w if method == "flow" else None
                cases.append({"logits": logits.tolist(), "labels": labels.tolist(), "method": method, "tau": tau,
                              "floor": floor, "normalization": normalization, "num_items_in_batch": num_items,
                              "sequence_weights": None if sw is None else sw.tolist(),
                              "initial_sequence_losses": initial.tolist() if method == "flow" else None})
                exp = _jax_side(logits, labels, weighting, num_items, sw)
                if method == "flow":
                    exp["flow_weights"] = np.asarray(flow_sequence_weights(jnp.asarray(initial)))
                exp["label"] = f"{weighting.label} B={logits.shape[0]} num_items={num_items}"
                expected.append(exp)
    # a batch without any target: SFT's loss is 0 with a zero gradient (the JAX weighting's convention)
    logits, labels = _batches(rng)[0]
    labels[:] = IGNORE
    cases.append({"logits": logits.tolist(), "labels": labels.tolist(), "method": "sft", "tau": "dynamic", "floor": 0.0,
                  "normalization": "none", "num_items_in_batch": None, "sequence_weights": None,
                  "initial_sequence_losses": None})
    exp = _jax_side(logits, labels, _jax_weighting("sft", "dynamic", 0.0, "none"), None, None)
    exp["label"] = "sft, no target in the batch"
    expected.append(exp)
    return cases, expected


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    if not REFERENCE_PYTHON.exists():
        pytest.skip("needs the reference environment .venv-ref (make reference-env)")
    tmp = tmp_path_factory.mktemp("torch_losses")
    cases, expected = _cases()
    (tmp / "cases.json").write_text(json.dumps({"cases": cases}))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(REFERENCE_PYTHON), str(ROOT / "tools" / "torch_losses_reference.py"),
                           str(tmp / "cases.json"), str(tmp / "out.json")],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return expected, json.loads((tmp / "out.json").read_text())


def _max_differences(expected, got) -> dict:
    worst = {k: (0.0, "") for k in ("loss", "grad", "weights", "log_probs", "tau", "flow_weights")}
    for exp, res in zip(expected, got, strict=True):
        for key in worst:
            if key not in exp:
                continue
            diff = float(np.max(np.abs(np.asarray(exp[key]) - np.asarray(res[key]))))
            if not diff <= worst[key][0]:  # also catches NaN
                worst[key] = (diff, exp["label"])
    return worst


@pytest.mark.reference
def test_torch_losses_equal_the_jax_weightings(reference_run, record_property):
    expected, out = reference_run
    worst = _max_differences(expected, out["cases"])
    for key, (diff, label) in worst.items():
        record_property(f"max_abs_diff_{key}", diff)
        print(f"torch vs JAX, max |difference| of {key}: {diff:.2e} ({label})")
    for key, (diff, label) in worst.items():
        assert diff <= TOLERANCE, f"{key}: torch and JAX differ by {diff:.3e} on {label}"
    assert len(out["cases"]) == len(expected) >= 4 * len(WEIGHTINGS) * 2


@pytest.mark.reference
def test_the_comparison_has_teeth(reference_run):
    """Guard: a different weighting (the neighbouring case) is far from each case, so the 1e-6 bound means something."""
    expected, out = reference_run
    shifted = out["cases"][1:] + out["cases"][:1]
    far = sum(abs(e["loss"] - r["loss"]) > 1e-3 for e, r in zip(expected, shifted))
    assert far >= len(expected) // 2


@pytest.mark.reference
def test_torch_losses_import_nothing_from_the_toolkit(reference_run):
    _, out = reference_run
    assert out["imported_toolkit_modules"] == []


@pytest.mark.reference
def test_sft_loss_is_transformers_causal_lm_loss_and_the_trainer_hook_works(reference_run):
    _, out = reference_run
    tr = out["transformers"]
    print(f"transformers {tr['transformers']}, torch {tr['torch']}: {tr}")
    # transformers computes its loss from float32 logits (it casts with .float()); ours keeps the model's float64
    assert tr["sft_vs_model_loss"] < TOLERANCE and tr["sft_vs_model_loss_num_items"] < TOLERANCE
    calls = tr["trainer_calls"]
    assert len(calls) == 4  # 2 optimiser steps x 2 accumulated micro-batches
    for step in (calls[:2], calls[2:]):
        accumulated = sum(c["shifted_targets"] for c in step)
        assert all(c["num_items_in_batch"] == accumulated for c in step)
    assert np.isfinite(tr["trainer_loss"]) and tr["trainer_max_param_change"] > 0
