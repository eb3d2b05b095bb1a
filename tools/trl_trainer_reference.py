"""Run the token-weighted trainers with real TRL and transformers, and an independent computation of their loss.

Run with .venv-ref's python (torch, transformers, trl, no JAX) and the repository root on ``PYTHONPATH``:

    .venv-ref/bin/python tools/trl_trainer_reference.py out.json

tests/torch_losses/test_trl_trainer.py runs it and holds the assertions; this script only measures. Every trainer
run uses a tiny random Llama built from a config (no download), a word-level tokenizer built in memory, SGD without
clipping, two optimiser steps of two accumulated micro-batches, and records per micro-batch the inputs the trainer
saw, the ``num_items_in_batch`` it got, the loss it returned and the number of forward passes of the model's
backbone; per optimiser step, the logged loss and the gradient before the update.

The independent side takes the initial weights into a float64 copy of the model, cuts each recorded micro-batch
into its training sequences *without* ``position_ids`` (padded rows by their attention mask, padding-free and
``bfd``-packed rows by the collator's ``cu_seq_lens_q``, ``wrapped`` packs as whole rows), runs the model on each
sequence alone, and computes the loss with ``statistics.median`` and ``math.exp``: none of ``sft_tilt``'s code.
Its gradient comes from autograd on that copy.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import sys
import tempfile
import warnings

import torch

FLOOR = 0.05
SEED_MODEL, SEED_DATA = 0, 1
VOCAB = 40


def _imports_of_the_package() -> list[str]:
    """Modules outside torch that ``import sft_tilt.torch_losses`` loads (run first, before anything else)."""
    before = set(sys.modules)
    import sft_tilt.torch_losses  # noqa: F401

    heavy = ("trl", "transformers", "jax", "jaxlib", "datasets", "accelerate", "numpy")
    return sorted(m for m in set(sys.modules) - before if m.split(".")[0] in heavy)


IMPORTED_WITH_THE_PACKAGE = _imports_of_the_package()

import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    MixtralConfig,
    PreTrainedTokenizerFast,
    TrainerCallback,
)
from transformers.masking_utils import find_packed_sequence_indices  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from sft_tilt.torch_losses import (  # noqa: E402
    TokenWeightedSFTTrainer,
    TokenWeightedTrainer,
    dft_loss,
    dynamic_tau,
    flow_loss,
    packed_sequence_ids,
    sequence_mean_losses,
    sft_loss,
    talr_loss,
    token_weights,
)

# a wide initialisation, so that the random model's token losses spread and TALR's weights differ between tokens
CONFIG = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                     num_key_value_heads=1, max_position_embeddings=64, pad_token_id=0, bos_token_id=2, eos_token_id=2,
                     initializer_range=0.5)


# a mixture of experts, whose router loss SFTTrainer adds to the loss
MOE_CONFIG = MixtralConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                           num_attention_heads=2, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2,
                           router_aux_loss_coef=0.5, max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                           eos_token_id=2)


def _tokenizer():
    vocab = {f"t{i}": i for i in range(VOCAB)}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t1")), pad_token="t0",
                                   eos_token="t2", unk_token="t1")


def _examples(count: int = 8, flow: bool = False) -> list[dict]:
    """Token ids 3..V-1, lengths 4..12, prompts (labels -100) of 1..7 tokens, so that micro-batches hold different
    numbers of targets; FLOW: a weight per example."""
    g = torch.Generator().manual_seed(SEED_DATA)
    rows = []
    for i in range(count):
        n = 4 + (i * 5) % 9
        prompt = 1 + (i * 2) % (n - 2)
        ids = torch.randint(3, VOCAB, (n,), generator=g).tolist()
        labels = [-100] * prompt + ids[prompt:]
        row = {"input_ids": ids, "labels": labels}
        if flow:
            row["sequence_weight"] = float(torch.rand((), generator=g)) * 0.9 + 0.1
        rows.append(row)
    return rows


# ---------------------------------------------------------------------------------------------------- recording
class _Recorder(TrainerCallback):
    def __init__(self):
        self.gradients: list[dict[str, torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.gradients.append({n: p.grad.detach().double().clone() for n, p in model.named_parameters()
                               if p.grad is not None})


def _recording(cls):
    """``cls`` with every ``compute_loss`` call recorded: inputs, ``num_items_in_batch``, loss, backbone forwards."""

    class Recording(cls):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            before = self._backbone_calls[0]
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            self.calls.append({
                "inputs": {k: v.detach().clone() if torch.is_tensor(v) else v for k, v in inputs.items()},
                "num_items_in_batch": None if num_items_in_batch is None else float(num_items_in_batch),
                "loss": float((loss[0] if return_outputs else loss).detach()),
                "backbone_forwards": self._backbone_calls[0] - before,
            })
            return loss

    return Recording


def _train(cls, extra: dict | None = None, examples=None, accepts_loss_kwargs: bool | None = None,
           model_config=CONFIG, **config):
    """Two SGD steps of two accumulated micro-batches of two examples; returns the run's records. In float32 unless
    ``config`` says ``bf16=True`` (SFTConfig's own default)."""
    torch.manual_seed(SEED_MODEL)
    model = AutoModelForCausalLM.from_config(model_config)
    initial = copy.deepcopy(model.state_dict())
    examples = _examples() if examples is None else examples
    recorder = _Recorder()
    calls: list[dict] = []
    counter = [0]
    model.model.register_forward_hook(lambda *_: counter.__setitem__(0, counter[0] + 1))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sft = issubclass(cls, SFTTrainer)
        args_cls = SFTConfig if sft else transformers.TrainingArguments
        common = dict(output_dir=tmp, per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=2,
                      optim="sgd", learning_rate=0.1, lr_scheduler_type="constant", max_grad_norm=0.0, report_to=[],
                      save_strategy="no", logging_steps=1, use_cpu=True, dataloader_num_workers=0, seed=7)
        common["bf16"] = config.pop("bf16", False)
        if not sft:
            common["remove_unused_columns"] = False
        args = args_cls(**common, **config)
        kwargs = dict(model=model, args=args, train_dataset=Dataset.from_list(examples) if sft else examples,
                      callbacks=[recorder], **(extra or {}))
        if sft:
            kwargs["processing_class"] = _tokenizer()
        else:
            kwargs["data_collator"] = _padding_collator
        trainer = _recording(cls)(**kwargs)
        trainer.calls, trainer._backbone_calls = calls, counter
        if accepts_loss_kwargs is not None:
            trainer.model_accepts_loss_kwargs = accepts_loss_kwargs
        trainer.train()
    logged = [h["loss"] for h in trainer.state.log_history if "loss" in h and "train_loss" not in h]
    return {"initial": initial, "calls": calls, "gradients": recorder.gradients, "logged": logged,
            "metrics": [h for h in trainer.state.log_history if "entropy" in h],
            "warnings": [str(w.message) for w in caught], "trainer": trainer}


def _padding_collator(examples):
    """Right padding for transformers' Trainer (labels -100, attention mask 0 on padding)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), width, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    attention = torch.zeros(len(examples), width, dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n], labels[i, :n], attention[i, :n] = torch.tensor(e["input_ids"]), torch.tensor(e["labels"]), 1
    batch = {"input_ids": ids, "labels": labels, "attention_mask": attention}
    if "sequence_weight" in examples[0]:
        batch["sequence_weight"] = torch.tensor([e["sequence_weight"] for e in examples])
    return batch


# ----------------------------------------------------------------------------------------- the independent side
def _sequences(inputs: dict) -> list[tuple[list[int], list[int], int]]:
    """(input ids, labels, index among the batch's examples) of each training sequence, without position_ids."""
    ids, labels = inputs["input_ids"], inputs["labels"]
    out = []
    if "cu_seq_lens_q" in inputs:  # padding-free or bfd-packed: one row, boundaries from the collator
        bounds = inputs["cu_seq_lens_q"].tolist()
        for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            out.append((ids[0, a:b].tolist(), labels[0, a:b].tolist(), k))
        return out
    for r in range(ids.shape[0]):
        keep = inputs["attention_mask"][r].bool()
        out.append((ids[r][keep].tolist(), labels[r][keep].tolist(), r))
    return out


def _token_losses_alone(model64, ids: list[int], labels: list[int]) -> torch.Tensor:
    """``-log p(labels[t+1] | ids[:t+1])`` on the targets of one sequence run alone, float64, differentiable."""
    logits = model64(input_ids=torch.tensor([ids])).logits[0].double()
    log_p = torch.log_softmax(logits[:-1], dim=-1)
    targets = [(t, y) for t, y in enumerate(labels[1:]) if y != -100]
    if not targets:
        return torch.zeros(0, dtype=torch.float64)
    rows, cols = zip(*targets)
    return -log_p[list(rows), list(cols)]


def _weights(method: str, losses: list[torch.Tensor], tau, flow_weights) -> list[torch.Tensor]:
    """Detached weights per sequence; ``tau`` a number or ``"dynamic"`` (median of the sequences' mean losses)."""
    if method == "sft":
        return [torch.ones_like(l) for l in losses]
    if method == "dft":
        return [torch.tensor([math.exp(-float(x)) for x in l], dtype=torch.float64) for l in losses]
    if method == "flow":
        return [torch.full_like(l, flow_weights[k]) for k, l in enumerate(losses)]
    if tau == "dynamic":
        tau = max(statistics.median(float(l.detach().mean()) for l in losses if l.numel()), 1e-6)
    return [torch.tensor([max(math.exp(-float(x) / tau), FLOOR) for x in l], dtype=torch.float64) for l in losses]


def independent(run: dict, method: str, tau="dynamic", rows_as_sequences: bool = False, step: int = 0,
                accumulation: int = 2) -> dict:
    """The first optimiser step's loss and gradient from the recorded micro-batches, in float64.

    ``num_items_in_batch`` given: ``sum_mb sum_i w_i l_i / N`` with ``N`` the step's target count; absent: the mean
    over micro-batches of ``sum_i w_i l_i / N_mb``. ``rows_as_sequences``: the median over rows, whatever the rows
    hold (the behaviour of a loss that only sees logits and labels).
    """
    model64 = LlamaForCausalLM(CONFIG).double()
    model64.load_state_dict({k: v.double() for k, v in run["initial"].items()})
    calls = run["calls"][step * accumulation:(step + 1) * accumulation]
    per_batch = []
    for call in calls:
        inputs = call["inputs"]
        sequences = _sequences(inputs)
        losses = [_token_losses_alone(model64, ids, labels) for ids, labels, _ in sequences]
        flow = inputs.get("sequence_weight")
        weights = _weights(method, losses, tau, None if flow is None else [float(flow[k]) for *_, k in sequences])
        if rows_as_sequences and method == "talr":
            everything = torch.cat(losses)
            tau_rows = max(float(everything.detach().mean()), 1e-6)  # one row: its token mean is the "median"
            weights = [torch.tensor([max(math.exp(-float(x) / tau_rows), FLOOR) for x in l], dtype=torch.float64)
                       for l in losses]
        weighted = sum((w * l).sum() for w, l in zip(weights, losses))
        per_batch.append((weighted, sum(l.numel() for l in losses)))
    total = sum(n for _, n in per_batch)
    by_total = sum(s for s, _ in per_batch) / total
    by_micro_batch = sum(s / n for s, n in per_batch) / len(per_batch)
    with_count = calls[0]["num_items_in_batch"] is not None
    loss, other = (by_total, by_micro_batch) if with_count else (by_micro_batch, by_total)
    model64.zero_grad()
    loss.backward()
    gradient = {n: p.grad.detach().clone() for n, p in model64.named_parameters()}
    return {"loss": float(loss), "gradient": gradient, "targets": total, "targets_per_micro_batch": [n for _, n in per_batch],
            "loss_other_normalisation": float(other)}


def _gradient_difference(run: dict, reference: dict, step: int = 0) -> float:
    """``max |g_trainer - g_reference| / max |g_reference|`` over all parameters."""
    got = run["gradients"][step]
    scale = max(float(g.abs().max()) for g in reference["gradient"].values())
    return max(float((got[n] - reference["gradient"][n]).abs().max()) for n in reference["gradient"]) / scale


def compare(run: dict, method: str, **kwargs) -> dict:
    ref = independent(run, method, **kwargs)
    return {
        "loss_trainer": run["logged"][0],
        "loss_independent": ref["loss"],
        "loss_independent_other_normalisation": ref["loss_other_normalisation"],
        "gradient_relative_difference": _gradient_difference(run, ref),
        "num_items_in_batch": [c["num_items_in_batch"] for c in run["calls"][:2]],
        "targets_in_step": ref["targets"],
        "targets_per_micro_batch": ref["targets_per_micro_batch"],
        "backbone_forwards": [c["backbone_forwards"] for c in run["calls"]],
        "rows": [int(c["inputs"]["input_ids"].shape[0]) for c in run["calls"]],
        "has_position_ids": ["position_ids" in c["inputs"] for c in run["calls"]],
        "compute_loss_func_warnings": sum("compute_loss_func" in w for w in run["warnings"]),
    }


# --------------------------------------------------------------------------------------------------------- checks
def check_against_trl_own_losses() -> dict:
    """SFT and DFT through the subclass against TRL's own ``loss_type="nll"`` and ``"dft"``: loss and gradient, with
    SFTConfig's default bfloat16 autocast; and SFT on a mixture of experts, router loss included."""
    out = {}
    for name, token_loss, loss_type, model_config in (("sft", sft_loss(), "nll", CONFIG),
                                                      ("dft", dft_loss(), "dft", CONFIG),
                                                      ("sft_moe", sft_loss(), "nll", MOE_CONFIG)):
        ours = _train(TokenWeightedSFTTrainer, {"token_loss": token_loss}, bf16=True, model_config=model_config)
        theirs = _train(SFTTrainer, loss_type=loss_type, bf16=True, model_config=model_config)
        out[name] = {
            "loss_difference": max(abs(a - b) for a, b in zip(ours["logged"], theirs["logged"])),
            "gradient_difference": max(float((ours["gradients"][s][n] - theirs["gradients"][s][n]).abs().max())
                                       for s in range(2) for n in ours["gradients"][s]),
            "gradient_scale": max(float(g.abs().max()) for g in theirs["gradients"][0].values()),
            "entropy_difference": max(abs(a["entropy"] - b["entropy"]) for a, b in zip(ours["metrics"], theirs["metrics"])),
            "accuracy_difference": max(abs(a["mean_token_accuracy"] - b["mean_token_accuracy"])
                                       for a, b in zip(ours["metrics"], theirs["metrics"])),
            "num_tokens": [[m["num_tokens"] for m in r["metrics"]] for r in (ours, theirs)],
            "aux_loss": [[m.get("aux_loss") for m in r["metrics"]] for r in (ours, theirs)],
        }
    return out


def check_the_deprecated_hook() -> dict:
    """TRL's ``compute_loss_func`` path with ``talr_loss()`` on padding-free batches: the same forward counter sees
    its second forward pass, and its loss takes the one row as one sequence (it sees no position_ids)."""
    run = _train(SFTTrainer, {"compute_loss_func": talr_loss(floor=FLOOR)}, padding_free=True, max_length=None)
    return {**compare(run, "talr", rows_as_sequences=True),
            "loss_independent_per_example": independent(run, "talr")["loss"]}


def check_talr_padded() -> dict:
    return {
        "with_num_items": compare(_train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)}), "talr"),
        "without_num_items": compare(_train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)},
                                            accepts_loss_kwargs=False), "talr"),
        "fixed_tau": compare(_train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(tau=0.7, floor=FLOOR)}),
                             "talr", tau=0.7),
    }


def check_logits_path() -> dict:
    """``compute_loss(..., return_outputs=True)`` (evaluation that wants the logits) reads the loss from the logits
    of one plain forward pass; it equals the fused path's loss on the same batch."""
    run = _train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)})
    trainer = run["trainer"]
    trainer.model.eval()
    batch = run["calls"][0]["inputs"]
    with torch.no_grad():
        fused = trainer.compute_loss(trainer.model, dict(batch))
        from_logits, outputs = trainer.compute_loss(trainer.model, dict(batch), return_outputs=True)
    return {"loss_difference": abs(float(fused) - float(from_logits)), "loss": float(fused),
            "logits_shape": list(outputs.logits.shape),
            "backbone_forwards": [c["backbone_forwards"] for c in run["calls"][-2:]]}


def check_talr_padding_free_and_packing() -> dict:
    padded = _train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)})
    free = _train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)}, padding_free=True, max_length=None)
    bfd = _train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)}, packing=True, max_length=16)
    wrapped = _train(TokenWeightedSFTTrainer, {"token_loss": talr_loss(floor=FLOOR)}, packing=True,
                     packing_strategy="wrapped", max_length=12)
    same_batches = all(torch.equal(a["inputs"]["input_ids"][a["inputs"]["attention_mask"].bool()],
                                   b["inputs"]["input_ids"][0]) for a, b in zip(padded["calls"], free["calls"]))
    return {
        "padding_free": compare(free, "talr"),
        "padding_free_rows_as_sequences": compare(free, "talr", rows_as_sequences=True),
        "padding_free_vs_padded": {
            "same_examples_in_each_micro_batch": same_batches,
            "loss_difference": abs(free["logged"][0] - padded["logged"][0]),
            "gradient_relative_difference": _gradient_difference(free, {"gradient": padded["gradients"][0]}),
        },
        "bfd_packing": compare(bfd, "talr"),
        "bfd_sequences_per_row": [len(c["inputs"]["cu_seq_lens_q"]) - 1 for c in bfd["calls"]],
        "bfd_rows_as_sequences": compare(bfd, "talr", rows_as_sequences=True),
        "wrapped_packing": compare(wrapped, "talr"),
    }


def check_flow() -> dict:
    examples = _examples(flow=True)
    padded = _train(TokenWeightedSFTTrainer, {"token_loss": flow_loss()}, examples=examples)
    free = _train(TokenWeightedSFTTrainer, {"token_loss": flow_loss()}, examples=examples, padding_free=True,
                  max_length=None)
    try:
        _train(TokenWeightedSFTTrainer, {"token_loss": flow_loss()}, examples=examples, packing=True, max_length=16)
        packing_error = ""
    except ValueError as e:
        packing_error = str(e)
    return {"padded": compare(padded, "flow"), "padding_free": compare(free, "flow"), "packing_error": packing_error}


def check_transformers_trainer() -> dict:
    return {
        "talr": compare(_train(TokenWeightedTrainer, {"token_loss": talr_loss(floor=FLOOR)}), "talr"),
        "talr_without_num_items": compare(_train(TokenWeightedTrainer, {"token_loss": talr_loss(floor=FLOOR)},
                                                 accepts_loss_kwargs=False), "talr"),
        "flow": compare(_train(TokenWeightedTrainer, {"token_loss": flow_loss()}, examples=_examples(flow=True)),
                        "flow"),
    }


def check_refusals() -> dict:
    """The messages of the arguments the trainer refuses, raised before training."""
    cases = {
        "no_token_loss": (TokenWeightedSFTTrainer, {}, {}),
        "compute_loss_func": (TokenWeightedSFTTrainer, {"token_loss": talr_loss(), "compute_loss_func": talr_loss()}, {}),
        "loss_type_dft": (TokenWeightedSFTTrainer, {"token_loss": talr_loss()}, {"loss_type": "dft"}),
        "label_smoothing": (TokenWeightedSFTTrainer, {"token_loss": talr_loss()}, {"label_smoothing_factor": 0.1}),
        "transformers_no_token_loss": (TokenWeightedTrainer, {"token_loss": "talr"}, {}),
    }
    out = {}
    for name, (cls, extra, config) in cases.items():
        try:
            _train(cls, extra, **config)
            out[name] = ""
        except ValueError as e:
            out[name] = str(e)
    return out


def check_sequence_functions() -> dict:
    """``sequence_mean_losses``, ``dynamic_tau`` and FLOW's ``token_weights`` with ``sequence_ids``, against loops
    over the tokens with ``statistics.median``; and the refusal of FLOW weights that miss a supervised sequence."""
    g = torch.Generator().manual_seed(5)
    worst = {"means": 0.0, "tau": 0.0, "flow": 0.0}
    for _ in range(50):
        B, T = int(torch.randint(1, 4, (1,), generator=g)), int(torch.randint(2, 12, (1,), generator=g))
        losses = torch.rand(B, T, generator=g, dtype=torch.float64) * 4
        mask = torch.rand(B, T, generator=g) < 0.7
        ids = torch.randint(0, 5, (B, T), generator=g) * 3  # unused indices in between
        groups: dict[int, list[float]] = {}
        for b in range(B):
            for t in range(T):
                groups.setdefault(int(ids[b, t]), [])
                if mask[b, t]:
                    groups[int(ids[b, t])].append(float(losses[b, t]))
        got = sequence_mean_losses(losses, mask, ids).tolist()
        for s, o in enumerate(got):
            e = statistics.fmean(groups[s]) if groups.get(s) else math.nan
            worst["means"] = max(worst["means"], 0.0 if math.isnan(e) and math.isnan(o) else abs(e - o))
        present = [statistics.fmean(v) for v in groups.values() if v]
        tau = max(statistics.median(present), 1e-6) if present else 1e-6
        worst["tau"] = max(worst["tau"], abs(tau - float(dynamic_tau(losses, mask, ids))))
        per_sequence = torch.rand(int(ids.max()) + 1, generator=g, dtype=torch.float64)
        w = token_weights(losses, mask, "flow", sequence_weights=per_sequence, sequence_ids=ids)
        for b in range(B):
            for t in range(T):
                want = float(per_sequence[int(ids[b, t])]) if mask[b, t] else 0.0
                worst["flow"] = max(worst["flow"], abs(want - float(w[b, t])))
    # four one-token sequences, two weights: sequences 2 and 3 (trailing padding) have no target
    losses, ids = torch.ones(1, 4, dtype=torch.float64), torch.tensor([[0, 1, 2, 3]])
    short = token_weights(losses, torch.tensor([[True, True, False, False]]), "flow",
                          sequence_weights=torch.tensor([0.5, 0.25]), sequence_ids=ids).tolist()
    try:  # sequence 3 has a target but no weight
        token_weights(losses, torch.tensor([[True, False, False, True]]), "flow",
                      sequence_weights=torch.tensor([0.5, 0.25]), sequence_ids=ids)
        refusal = ""
    except ValueError as e:
        refusal = str(e)
    return {"worst": worst, "trailing_sequences_weights": short, "missing_weight_refusal": refusal,
            "flattened_vs_padded": _flattened_vs_padded(g)}


def _flattened_vs_padded(g) -> float:
    """``talr_loss()(logits, labels, position_ids=...)`` on examples flattened into one row against the same loss on
    the examples padded into rows: the worst |difference| over random batches."""
    worst = 0.0
    for _ in range(20):
        lengths = torch.randint(2, 7, (int(torch.randint(2, 5, (1,), generator=g)),), generator=g).tolist()
        logits = [torch.randn(n, 11, generator=g, dtype=torch.float64) * 3 for n in lengths]
        labels = [torch.randint(0, 11, (n,), generator=g) for n in lengths]
        for lab in labels:
            lab[0] = -100
        width = max(lengths)
        padded_logits = torch.stack([torch.cat([x, torch.zeros(width - len(x), 11, dtype=torch.float64)]) for x in logits])
        padded_labels = torch.stack([torch.cat([y, torch.full((width - len(y),), -100)]) for y in labels])
        positions = torch.cat([torch.arange(n) for n in lengths])[None]
        flat = talr_loss(floor=FLOOR)(torch.cat(logits)[None], torch.cat(labels)[None], position_ids=positions)
        rows = talr_loss(floor=FLOOR)(padded_logits, padded_labels)
        worst = max(worst, abs(float(flat) - float(rows)))
    return worst


def check_packed_sequence_ids() -> dict:
    """``packed_sequence_ids`` against transformers' ``find_packed_sequence_indices`` on random position ids:
    the same partition of each row (transformers numbers per row from 0, ours across rows)."""
    g = torch.Generator().manual_seed(3)
    mismatches, cases = 0, 0
    for _ in range(200):
        rows, parts = [], int(torch.randint(1, 5, (1,), generator=g))
        for _ in range(int(torch.randint(1, 4, (1,), generator=g))):
            lengths = torch.randint(1, 6, (parts,), generator=g).tolist()
            row = torch.cat([torch.arange(n) for n in lengths])
            rows.append(row)
        width = max(len(r) for r in rows)
        pos = torch.stack([torch.cat([r, torch.zeros(width - len(r), dtype=torch.long)]) for r in rows])
        theirs = find_packed_sequence_indices(pos)
        theirs = torch.zeros_like(pos) if theirs is None else theirs
        ours = packed_sequence_ids(pos)
        for r in range(pos.shape[0]):
            same_theirs = theirs[r][:, None] == theirs[r][None, :]
            same_ours = ours[r][:, None] == ours[r][None, :]
            mismatches += int(not torch.equal(same_theirs, same_ours))
            cases += 1
        rows_disjoint = all(set(ours[a].tolist()).isdisjoint(ours[b].tolist())
                            for a in range(pos.shape[0]) for b in range(a))
        mismatches += int(not rows_disjoint)
    return {"rows_compared": cases, "mismatches": mismatches}


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: trl_trainer_reference.py OUT.json")
    out = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__},
        "imported_with_the_package": IMPORTED_WITH_THE_PACKAGE,
        "packed_sequence_ids": check_packed_sequence_ids(),
        "refusals": check_refusals(),
        "trl_own_losses": check_against_trl_own_losses(),
        "deprecated_hook": check_the_deprecated_hook(),
        "sequence_functions": check_sequence_functions(),
        "talr_padded": check_talr_padded(),
        "logits_path": check_logits_path(),
        "talr_packed": check_talr_padding_free_and_packing(),
        "flow": check_flow(),
        "transformers_trainer": check_transformers_trainer(),
    }
    with open(argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main(sys.argv)
