"""The PyTorch step monitor in a real TRL ``SFTTrainer``, and the same step measured by the JAX monitor.

The trainer runs in the reference environment (.venv-ref: torch, transformers, TRL; no JAX) as a subprocess,
``tools/step_monitor_reference.py``: a tiny random Llama, a word-level tokenizer built there, four optimiser steps
with the monitor every second step, once in float32 (the monitor's passes in float64) and once in TRL's default bf16
mixed precision (the monitor in float32). It saves the parameters before and after each monitored step and the batch
the monitor read. Here the toolkit's JAX model loads those parameters (``sft_tilt.lm.load_hf_checkpoint``) and
``sft_tilt.monitor.measure_step`` measures the same step on the same probe and batch, in float64.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.monitor import MONITOR_KEYS, measure_step
from sft_tilt.theory import HARD_TOKEN_THRESHOLD

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_PYTHON = ROOT / ".venv-ref" / "bin" / "python"
PREFIX = "step_monitor/"
# float64 passes on both sides; what is left is transformers' float32 normalisation and rotary tables
AGREEMENT = 1e-5
# the mixed-precision run's monitor computes in the parameters' float32 (bf16, the trainer's own precision, would
# differ from float64 by about 1e-2 relative)
AGREEMENT_FLOAT32 = 1e-4
IGNORE = -100


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    if not REFERENCE_PYTHON.exists():
        pytest.skip("needs the reference environment .venv-ref (make reference-env)")
    out = tmp_path_factory.mktemp("step_monitor")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([str(REFERENCE_PYTHON), str(ROOT / "tools" / "step_monitor_reference.py"), str(out)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return out, json.loads((out / "out.json").read_text())


def _batch(tensors: dict) -> dict:
    """A transformers batch (labels -100 where not scored) in the JAX monitor's form."""
    labels = np.asarray(tensors["labels"])
    tokens = np.asarray(tensors["input_ids"])
    scored = labels != IGNORE
    assert (labels[scored] == tokens[scored]).all()  # SFT: every label is the token itself
    return {"tokens": tokens, "loss_mask": scored.astype(np.float64)}


def _jax_measurements(folder: Path, run: dict) -> dict:
    from sft_tilt.lm import load_hf_checkpoint
    from sft_tilt.lm.model import forward

    out = {}
    for step, saved in run["saved"].items():
        config, before = load_hf_checkpoint(folder / f"before_{step}")
        _, after = load_hf_checkpoint(folder / f"after_{step}")
        widen = lambda p: jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p)  # noqa: E731  (exact)
        assert len(saved["domain"]) == 1  # no gradient accumulation: the step read one batch
        logits_fn = lambda p, tokens: forward(p, config, tokens)  # noqa: E731
        out[int(step)] = measure_step(logits_fn, widen(before), _batch(run["probe"]), _batch(saved["domain"][0]),
                                      learning_rate=saved["learning_rate"], params_after=widen(after))
    return out


@pytest.fixture(scope="module")
def both_sides(reference_run):
    folder, result = reference_run
    return {name: (_jax_measurements(folder / name, result[name]), {h["step"]: h for h in result[name]["monitor_history"]})
            for name in ("float32", "mixed")}


def _logged(run: dict) -> dict:
    """step -> the monitor's numbers as the trainer logged them (prefix removed)."""
    out = {}
    for entry in run["log_history"]:
        mine = {k[len(PREFIX):]: v for k, v in entry.items() if k.startswith(PREFIX)}
        if mine:
            assert entry["step"] not in out
            out[entry["step"]] = mine
    return out


@pytest.mark.reference
def test_the_callback_logs_every_nth_step_through_the_trainer(reference_run):
    _, result = reference_run
    every, steps = result["every"], result["steps"]
    assert tuple(result["monitor_keys"]) == MONITOR_KEYS
    for name in ("float32", "mixed"):
        run = result[name]
        logged = _logged(run)
        assert sorted(logged) == list(range(every, steps + 1, every)), name
        for step, numbers in logged.items():
            assert tuple(numbers) == MONITOR_KEYS
            assert all(isinstance(v, float) and math.isfinite(v) for v in numbers.values()), (name, step, numbers)
            assert numbers == {k: v for k, v in next(h for h in run["monitor_history"] if h["step"] == step).items()
                               if k != "step"}
        # the trainer's own log of every step is kept (the monitor's log does not replace it)
        own = sorted(e["step"] for e in run["log_history"] if "loss" in e)
        assert own == list(range(1, steps + 1)), name
    assert result["mixed"]["bf16"] and not result["float32"]["bf16"]


@pytest.mark.reference
def test_the_callback_measures_the_steps_own_batch(reference_run):
    """The domain loss the monitor read from the captured batch before the step is the loss the trainer logged for
    that step (float32 training, one batch per step)."""
    _, result = reference_run
    run = result["float32"]
    trainer_loss = {e["step"]: e["loss"] for e in run["log_history"] if "loss" in e}
    for step, numbers in _logged(run).items():
        assert numbers["domain_loss"] == pytest.approx(trainer_loss[step], rel=AGREEMENT), step


@pytest.mark.reference
def test_the_jax_function_and_the_torch_callback_agree(both_sides):
    for name, tolerance in (("float32", AGREEMENT), ("mixed", AGREEMENT_FLOAT32)):
        jax_side, torch_side = both_sides[name]
        assert sorted(jax_side) == sorted(torch_side)
        for step in jax_side:
            a, b = jax_side[step], torch_side[step]
            for key in MONITOR_KEYS:
                if key == "identity_residual":  # rounding on both sides
                    assert abs(a[key]) <= 1e-12 and abs(b[key]) <= 1e-12, (name, step, a[key], b[key])
                elif key == "measurement_resolution" and name == "mixed":  # float32 passes against float64 ones
                    assert b[key] > a[key] > 0
                elif key == "left_band":
                    assert a[key] == b[key], (name, step)
                else:
                    assert abs(a[key] - b[key]) <= tolerance * max(abs(a[key]), abs(b[key])), (name, step, key, a[key], b[key])


@pytest.mark.reference
def test_the_comparison_has_teeth(both_sides):
    """Guard: another step's numbers are far from each step's, so the tolerance means something."""
    jax_side, torch_side = both_sides["float32"]
    first, second = sorted(jax_side)
    varying = [k for k in MONITOR_KEYS if k not in ("identity_residual", "probe_tokens", "left_band", "safe_learning_rate")]
    far = [k for k in varying if abs(jax_side[first][k] - torch_side[second][k]) > 1e-3 * abs(jax_side[first][k])]
    assert len(far) >= len(varying) - 2, sorted(set(varying) - set(far))


@pytest.mark.reference
def test_the_torch_monitor_uses_the_toolkits_threshold_and_imports_nothing_else(reference_run):
    _, result = reference_run
    assert result["hard_token_threshold"] == HARD_TOKEN_THRESHOLD
    assert result["imported_toolkit_modules"] == []
    print("reference versions:", result["versions"])


@pytest.mark.reference
def test_bad_input_is_refused_naming_the_argument(reference_run):
    _, result = reference_run
    for name, message in result["refused"].items():
        assert message.startswith(name + ":"), (name, message)
