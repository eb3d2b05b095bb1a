"""Run ``StepMonitorCallback`` in a real TRL ``SFTTrainer`` on a tiny random Llama, under the reference environment.

Run with .venv-ref's python (torch + transformers + TRL, no JAX) and the repository root on ``PYTHONPATH``:

    .venv-ref/bin/python tools/step_monitor_reference.py OUT_FOLDER

Nothing is downloaded: the tokenizer is a word-level one built here, the model a random ``LlamaForCausalLM``. The
trainer runs ``STEPS`` optimiser steps with the monitor every ``EVERY`` steps and a second callback that saves the
parameters before and after each monitored step (``<run>/before_<step>/``, ``<run>/after_<step>/``: Hugging Face
folders, float32 safetensors) with the step's training batch; twice: ``float32`` (float32 training, the monitor's
passes in float64) and ``mixed`` (TRL's default bf16 mixed precision, the monitor in float32). ``OUT_FOLDER/out.json``
holds per run the trainer's log history, the monitor's history, the probe, each monitored step's batch and learning
rate; the library versions; and the toolkit modules that importing the monitor pulled in (none is expected but
``sft_tilt.torch_losses``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import sft_tilt.torch_losses.step_monitor as step_monitor

STEPS = 4
EVERY = 2
LEARNING_RATE = 3e-2
VOCAB = 40
WORDS = [f"w{i}" for i in range(VOCAB - 2)]


def _toolkit_modules() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib")
                  or (m.startswith("sft_tilt.") and not m.startswith("sft_tilt.torch_losses")))


IMPORTED_WITH_THE_MONITOR = _toolkit_modules()


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(WORDS)} | {"<pad>": VOCAB - 2, "<eos>": VOCAB - 1}
    core = Tokenizer(models.WordLevel(vocab, unk_token=WORDS[0]))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="<eos>")


def _model():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    # a larger initial scale than the default 0.02, so the next-token distributions are far from uniform
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=64, initializer_range=0.3, tie_word_embeddings=False,
                         pad_token_id=VOCAB - 2, eos_token_id=VOCAB - 1, bos_token_id=None)
    return LlamaForCausalLM(config)


def _dataset():
    from datasets import Dataset

    rng = torch.Generator().manual_seed(1)
    prompts, completions = [], []
    for _ in range(16):
        n_prompt, n_completion = (int(x) for x in torch.randint(2, 6, (2,), generator=rng))
        prompts.append(" ".join(WORDS[int(i)] for i in torch.randint(0, 12, (n_prompt,), generator=rng)))
        completions.append(" " + " ".join(WORDS[int(i)] for i in torch.randint(12, 24, (n_completion,), generator=rng)))
    return Dataset.from_dict({"prompt": prompts, "completion": completions})


def _tensors(batch: dict) -> dict:
    return {k: v.tolist() for k, v in batch.items()}


def train_with_monitor(out: Path, mixed_precision: bool, compute_dtype) -> dict:
    """One SFTTrainer run with the monitor and the saver; ``mixed_precision``: TRL's default bf16 autocast, else
    float32 throughout. Returns the run's record (module docstring)."""
    import tempfile

    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _tokenizer()
    general = [" ".join(WORDS[(7 * i + 3 * j) % len(WORDS)] for j in range(10)) for i in range(3)]
    probe = step_monitor.probe_from_texts(tokenizer, general, max_length=12)
    saved: dict = {}

    class SaveAroundMonitoredSteps(TrainerCallback):
        """Added after the monitor: saves the parameters it measured and the batch it read."""

        def on_pre_optimizer_step(self, args, state, control, model=None, optimizer=None, **kwargs):
            if step_monitor.is_monitored_step(state.global_step, EVERY):
                k = state.global_step + 1
                model.save_pretrained(out / f"before_{k}")
                saved[k] = {"learning_rate": float(optimizer.param_groups[0]["lr"]),
                            "domain": [_tensors(b) for b in monitor._captured]}

        def on_optimizer_step(self, args, state, control, model=None, **kwargs):
            if step_monitor.is_monitored_step(state.global_step, EVERY):
                model.save_pretrained(out / f"after_{state.global_step + 1}")

    with tempfile.TemporaryDirectory() as scratch:
        args = SFTConfig(output_dir=scratch, max_steps=STEPS, per_device_train_batch_size=2, learning_rate=LEARNING_RATE,
                         lr_scheduler_type="linear", logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
                         max_length=16, seed=0, **({} if mixed_precision else {"bf16": False}))
        trainer = SFTTrainer(model=_model(), args=args, train_dataset=_dataset(), processing_class=tokenizer)
        monitor = step_monitor.StepMonitorCallback(trainer, probe, every=EVERY, compute_dtype=compute_dtype)
        trainer.add_callback(monitor)
        trainer.add_callback(SaveAroundMonitoredSteps())
        trainer.train()
    return {"log_history": trainer.state.log_history, "monitor_history": monitor.history, "probe": _tensors(probe),
            "saved": {str(k): v for k, v in saved.items()}, "bf16": bool(trainer.args.bf16),
            "compute_dtype": str(compute_dtype)}


def refused_inputs() -> dict:
    """``{argument: the ValueError message}`` of ``measure_step`` called with one bad argument at a time."""
    model = _model()
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    zero = {k: torch.zeros_like(v) for k, v in before.items()}
    probe = step_monitor.probe_from_texts(_tokenizer(), ["w1 w2 w3 w4"], max_length=8)
    unscored = dict(probe, labels=torch.full_like(probe["labels"], step_monitor.IGNORE_INDEX))
    good = dict(learning_rate=0.1, update=zero)
    cases = {
        "learning_rate": (probe, probe, dict(good, learning_rate=0.0)),
        "params_after, update": (probe, probe, dict(learning_rate=0.1)),
        "update": (probe, probe, dict(good, update={k: v[..., :1] for k, v in zero.items()})),
        "probe": (unscored, probe, good),
        "domain[0]": (probe, {"input_ids": probe["input_ids"]}, good),
        "tolerance": (probe, probe, dict(good, tolerance=-1.0)),
        "chunk": (probe, probe, dict(good, chunk=0)),
    }
    out = {}
    for name, (p, d, kwargs) in cases.items():
        try:
            step_monitor.measure_step(model, before, p, d, **kwargs)
            out[name] = "accepted"
        except ValueError as err:
            out[name] = str(err)
    return out


def main(out_folder: str) -> None:
    import transformers
    import trl

    out = Path(out_folder)
    result = {
        # float32 training, the monitor's passes in float64: the comparison with the JAX monitor
        "float32": train_with_monitor(out / "float32", mixed_precision=False, compute_dtype=torch.float64),
        # TRL's default mixed precision, the monitor in the parameters' float32 (the autocast bypassed)
        "mixed": train_with_monitor(out / "mixed", mixed_precision=True, compute_dtype=None),
        "refused": refused_inputs(),
        "every": EVERY,
        "steps": STEPS,
        "monitor_keys": list(step_monitor.MONITOR_KEYS),
        "hard_token_threshold": step_monitor.HARD_TOKEN_THRESHOLD,
        "imported_toolkit_modules": sorted(set(IMPORTED_WITH_THE_MONITOR) | set(_toolkit_modules())),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
    }
    (out / "out.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
