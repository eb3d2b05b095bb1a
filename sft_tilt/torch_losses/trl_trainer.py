"""TRL's ``SFTTrainer`` with a token-weighted loss (TALR, DFT, FLOW, SFT), in place of ``compute_loss_func``.

    from trl import SFTConfig
    from sft_tilt.torch_losses import TokenWeightedSFTTrainer, talr_loss

    trainer = TokenWeightedSFTTrainer(model=model, args=SFTConfig(...), train_dataset=ds, token_loss=talr_loss())
    trainer.train()

``SFTTrainer`` gives its model a fused LM head: called with ``fused_lm_head=True`` and the labels, the model returns
each target token's log-probability ``log p_bt`` (and its entropy, and whether it is the most likely token) without
building the ``[B, T, V]`` logits. Every weighting here needs only ``l_bt = -log p_bt``, so one such forward pass per
micro-batch gives the loss ``sum_bt w_bt l_bt m_bt / n`` and TRL's metrics (``entropy``, ``mean_token_accuracy``,
``num_tokens``). The deprecated ``compute_loss_func`` hook needs the full logits and runs a second forward pass.

Gradient accumulation, ``average_tokens_across_devices`` and the dynamic temperature's sequences (per original
example in padding-free batches and TRL's ``bfd`` packing) are those of :class:`TokenWeightedLossMixin`. A
mixture-of-experts model adds its router loss as ``SFTTrainer`` does.

Refused, with a message: ``loss_type`` other than ``"nll"`` (use ``dft_loss()`` for DFT), ``label_smoothing_factor``,
``compute_loss_func``, and context or sequence parallelism (they shard a sequence across processes, so no process
sees a whole sequence's mean loss).

This module imports ``trl``; :mod:`sft_tilt.torch_losses` imports it only when ``TokenWeightedSFTTrainer`` is used.
"""

from __future__ import annotations

from typing import Any

import torch
from trl import SFTTrainer

from sft_tilt.torch_losses.losses import token_losses
from sft_tilt.torch_losses.trainer import TokenWeightedLossMixin

__all__ = ["TokenWeightedSFTTrainer"]


def _has_fused_lm_head() -> bool:
    import trl.trainer.utils

    return hasattr(trl.trainer.utils, "add_fused_lm_head")


class TokenWeightedSFTTrainer(TokenWeightedLossMixin, SFTTrainer):
    """``SFTTrainer`` whose loss is ``token_loss`` (a :class:`~sft_tilt.torch_losses.TokenWeightedLoss`), computed
    from one forward pass per micro-batch. Takes ``SFTTrainer``'s arguments plus ``token_loss``."""

    def __init__(self, *args, token_loss=None, **kwargs):
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        loss_type = getattr(training_args, "loss_type", "nll")
        if loss_type != "nll":
            raise ValueError(f"args.loss_type: must be 'nll' with a token-weighted loss, got {loss_type!r} "
                             f"(for DFT pass token_loss=dft_loss())")
        super().__init__(*args, token_loss=token_loss, **kwargs)
        parallelism = getattr(self.accelerator, "parallelism_config", None)
        if parallelism is not None and (getattr(parallelism, "cp_enabled", False)
                                        or getattr(parallelism, "sp_enabled", False)):
            raise ValueError("parallelism_config: context and sequence parallelism split a sequence across "
                             "processes; the token-weighted loss needs each sequence whole on one process")
        self._fused = _has_fused_lm_head()

    def _per_token_losses(self, model, inputs: dict[str, Any], labels: torch.Tensor, return_outputs: bool):
        inputs["use_cache"] = False
        if self.aux_loss_enabled:
            inputs["output_router_logits"] = True
        mode = "train" if self.model.training else "eval"
        if self._fused and not return_outputs:
            outputs = model(**inputs, labels=labels, fused_lm_head=True)
            losses, mask = -outputs.log_probs, outputs.label_mask
            if losses.dtype in (torch.float16, torch.bfloat16):
                losses = losses.float()
            entropy, is_top1 = outputs.entropy.detach(), outputs.is_top1
        else:
            # the caller wants the logits (evaluation with compute_metrics): the model's plain forward gives them,
            # and the loss and metrics are read from them
            outputs = model(**inputs)
            losses, mask = token_losses(outputs, labels, self.token_loss.ignore_index)
            entropy, is_top1 = _entropy_and_top1(outputs.logits, labels, mask)
        self._record_metrics(mode, inputs, entropy, is_top1, mask, getattr(outputs, "aux_loss", None))
        return losses, mask, outputs

    def _extra_loss(self, outputs, num_items_in_batch):
        if not self.aux_loss_enabled:
            return 0.0
        # SFTTrainer's rule: a per-micro-batch mean, averaged over the accumulation steps when the main loss is
        # normalised by the accumulated batch's token count
        steps = self.current_gradient_accumulation_steps if num_items_in_batch is not None else 1
        return self.router_aux_loss_coef * outputs.aux_loss / steps

    def _record_metrics(self, mode: str, inputs: dict[str, Any], entropy, is_top1, mask, aux_loss) -> None:
        """SFTTrainer's metrics: mean entropy and top-1 accuracy on the targets, tokens seen, the router loss."""
        gather = self.accelerator.gather_for_metrics
        num_valid = gather(mask.sum()).sum()
        entropy_sum = gather(torch.where(mask, entropy, torch.zeros_like(entropy)).sum()).sum()
        num_correct = gather((is_top1 & mask).sum()).sum()
        self._metrics[mode]["entropy"].append((entropy_sum / num_valid).item() if num_valid > 0 else 0.0)
        self._metrics[mode]["mean_token_accuracy"].append((num_correct / num_valid).item() if num_valid > 0 else 0.0)
        if mode == "train":
            if inputs.get("attention_mask") is not None:
                tokens = gather(inputs["attention_mask"].sum()).sum().item()
            else:  # padding-free: one row of real tokens
                positions = inputs["position_ids"]
                tokens = gather(torch.tensor(positions.size(1), device=positions.device)).sum().item()
            self._total_train_tokens += tokens // self._tp_size
        self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        if self.aux_loss_enabled and aux_loss is not None:
            self._metrics[mode]["aux_loss"].append(gather(aux_loss.detach()).mean().item())


def _entropy_and_top1(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor):
    """Entropy of each next-token distribution and whether the target is its most likely token, ``[B, T-1]``."""
    with torch.no_grad():
        shifted = logits[:, :-1].float()
        log_p = torch.log_softmax(shifted, dim=-1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        is_top1 = (shifted.argmax(-1) == labels[:, 1:].to(shifted.device)) & mask
    return entropy, is_top1
