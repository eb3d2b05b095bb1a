"""Evaluate ``torch_losses`` on the cases written by tests/torch_losses/test_torch_losses.py, under the reference environment.

Run with .venv-ref's python (torch + transformers, no JAX) and the repository root on ``PYTHONPATH``:

    .venv-ref/bin/python tools/torch_losses_reference.py cases.json out.json

For every case (float64 logits ``[B, T, V]``, labels ``[B, T]`` with -100, a weighting, ``num_items_in_batch``)
it writes the loss, its gradient with respect to the logits, the token weights, the per-token log-probabilities and
the dynamic temperature. It also checks, with transformers itself, that ``sft_loss()`` equals a causal LM's own loss
(with and without ``num_items_in_batch``) and that a ``Trainer`` with ``compute_loss_func=talr_loss()`` trains
under gradient accumulation, receiving ``num_items_in_batch`` = the shifted-label count of the accumulated batch.
It fails if importing ``torch_losses`` pulled in JAX or the toolkit.
"""

from __future__ import annotations

import json
import sys
import tempfile

import torch

import sft_tilt.torch_losses
from sft_tilt.torch_losses import TokenWeightedLoss, dynamic_tau, flow_sequence_weights, token_losses


def _independence() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib")
                  or (m.startswith("sft_tilt.") and not m.startswith("sft_tilt.torch_losses")))


def evaluate(case: dict) -> dict:
    logits = torch.tensor(case["logits"], dtype=torch.float64, requires_grad=True)
    labels = torch.tensor(case["labels"], dtype=torch.long)
    loss_fn = TokenWeightedLoss(case["method"], case["tau"], case["floor"], case["normalization"])
    n_items = case["num_items_in_batch"]
    n_items = None if n_items is None else torch.tensor(n_items)
    seq_w = case.get("sequence_weights")
    loss = loss_fn(logits, labels, num_items_in_batch=n_items, sequence_weights=seq_w)
    (grad,) = torch.autograd.grad(loss, logits)
    losses, mask = token_losses(logits.detach(), labels)
    out = {
        "loss": float(loss),
        "grad": grad.tolist(),
        "weights": loss_fn.weights(losses, mask, seq_w).tolist(),
        "log_probs": sft_tilt.torch_losses.token_log_probs(logits.detach(), labels)[0].tolist(),
        "tau": float(dynamic_tau(losses, mask)),
    }
    if case.get("initial_sequence_losses") is not None:
        out["flow_weights"] = flow_sequence_weights(torch.tensor(case["initial_sequence_losses"], dtype=torch.float64)).tolist()
    return out


def transformers_checks() -> dict:
    """sft_loss() against a tiny Llama's own loss, and one Trainer run with compute_loss_func=talr_loss()."""
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, max_position_embeddings=32)
    model = LlamaForCausalLM(config).double()
    ids = torch.randint(0, 40, (3, 9))
    labels = ids.clone()
    labels[0, :4] = -100  # a prompt
    labels[1, 6:] = -100  # padding
    labels[2, :] = -100  # a row without any target
    out = model(input_ids=ids)
    own = model(input_ids=ids, labels=labels).loss
    own_n = model(input_ids=ids, labels=labels, num_items_in_batch=torch.tensor(23)).loss
    ours = sft_tilt.torch_losses.sft_loss()(out, labels)
    ours_n = sft_tilt.torch_losses.sft_loss()(out, labels, num_items_in_batch=torch.tensor(23))

    seen: list = []

    class Recording(TokenWeightedLoss):
        def __call__(self, outputs, labels, num_items_in_batch=None, sequence_weights=None):
            seen.append({"num_items_in_batch": None if num_items_in_batch is None else float(num_items_in_batch),
                         "shifted_targets": int((labels[:, 1:] != -100).sum())})
            return super().__call__(outputs, labels, num_items_in_batch)

    rows = []
    for i in range(8):
        x = torch.randint(0, 40, (10,))
        y = x.clone()
        y[: 2 + i % 4] = -100
        rows.append({"input_ids": x, "labels": y, "attention_mask": torch.ones(10, dtype=torch.long)})
    before = [p.detach().clone() for p in model.parameters()]
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=2, gradient_accumulation_steps=2,
                                 max_steps=2, learning_rate=1e-2, report_to=[], save_strategy="no", logging_steps=1,
                                 use_cpu=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=rows, compute_loss_func=Recording("talr"))
        result = trainer.train()
    moved = max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before))
    return {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "sft_vs_model_loss": abs(float(ours) - float(own)),
        "sft_vs_model_loss_num_items": abs(float(ours_n) - float(own_n)),
        "trainer_calls": seen,
        "trainer_loss": float(result.training_loss),
        "trainer_max_param_change": moved,
    }


def main(argv: list[str]) -> None:
    if len(argv) != 3:
        raise SystemExit("usage: torch_losses_reference.py CASES.json OUT.json")
    cases = json.loads(open(argv[1]).read())
    out = {"imported_toolkit_modules": _independence(), "cases": [evaluate(c) for c in cases["cases"]]}
    out["transformers"] = transformers_checks()
    with open(argv[2], "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv)
