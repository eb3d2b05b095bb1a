"""The token-weighted loss inside a trainer's ``compute_loss``: one forward pass, gradient accumulation exact.

:class:`TokenWeightedLossMixin` goes in front of transformers' ``Trainer`` (or TRL's ``SFTTrainer``, see
:mod:`sft_tilt.torch_losses.trl_trainer`) and replaces its ``compute_loss``. Per micro-batch it

1. runs the model once, without ``labels``, so the model computes no loss of its own, and reads the logits
   (the TRL subclass instead reads the target log-probabilities of ``SFTTrainer``'s fused LM head);
2. computes ``l, m = token_losses(logits, labels)`` and the loss ``sum_bt w_bt l_bt m_bt / n``
   (:meth:`~sft_tilt.torch_losses.TokenWeightedLoss.reduce`), with ``n = num_items_in_batch`` when the trainer
   passes it (the supervised-token count of the whole accumulated batch) and this micro-batch's count otherwise;
3. tells ``training_step`` whether that loss is already scaled for gradient accumulation
   (``loss_is_scaled_for_ga = num_items_in_batch is not None``), so that the accumulated gradient is that of
   ``sum over micro-batches of sum_bt w l m / n`` with the count, and the mean over micro-batches of the
   per-micro-batch means without it: transformers' own rule for a model that computes its loss;
4. multiplies by the number of processes that share ``num_items_in_batch`` under ``average_tokens_across_devices``,
   as ``Trainer.compute_loss`` does.

The dynamic temperature's sequences are the rows, except in a batch with ``position_ids`` and no
``attention_mask`` (padding-free batches, TRL's ``bfd`` packing): there the model's attention keeps apart the
sequences that ``position_ids`` mark, and so does the temperature (the median over those sequences,
:func:`sft_tilt.torch_losses.packed_sequence_ids`).

FLOW's static per-example weights travel in a dataset column named :data:`SEQUENCE_WEIGHT`; the mixin keeps that
column and collates it (:class:`SequenceWeightCollator`).

This module imports only torch; the trainers it is mixed into are the caller's.
"""

from __future__ import annotations

from typing import Any

import torch

from sft_tilt.torch_losses.losses import TokenWeightedLoss, target_sequence_ids, token_losses

__all__ = ["SEQUENCE_WEIGHT", "SequenceWeightCollator", "TokenWeightedLossMixin", "batch_sequence_ids"]

SEQUENCE_WEIGHT = "sequence_weight"  # dataset column and batch key of FLOW's static per-example weight


class SequenceWeightCollator:
    """Wraps a data collator: takes each example's :data:`SEQUENCE_WEIGHT` out before ``collator`` sees it and adds
    them to the batch as a float tensor ``[number of examples]``, in the order of the examples."""

    def __init__(self, collator, key: str = SEQUENCE_WEIGHT):
        if not callable(collator):
            raise ValueError(f"collator: expected a callable data collator, got {type(collator).__name__}")
        self.collator, self.key = collator, key

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        missing = sum(not isinstance(e, dict) or self.key not in e for e in examples)
        if missing:
            raise ValueError(
                f"{self.key}: {missing} of {len(examples)} examples have no {self.key!r} column. FLOW needs each "
                f"example's static weight (flow_sequence_weights) in the dataset; packing keeps only the token "
                f"columns, so FLOW cannot be combined with packing")
        weights = torch.tensor([float(e[self.key]) for e in examples])
        batch = self.collator([{k: v for k, v in e.items() if k != self.key} for e in examples])
        batch[self.key] = weights
        return batch


def batch_sequence_ids(inputs: dict[str, Any], target_shape) -> torch.Tensor | None:
    """The sequence of each target column ``[B, T-1]`` when the batch packs several sequences into a row, else
    ``None`` (each row is one sequence).

    A batch packs sequences when it has ``position_ids`` and no ``attention_mask``: that is when transformers'
    attention separates the sequences the positions mark (a restart, or any step other than ``+1``), and it is
    what padding-free collators and TRL's ``bfd`` packing produce.
    """
    position_ids = inputs.get("position_ids")
    if position_ids is None or inputs.get("attention_mask") is not None:
        return None
    return target_sequence_ids(position_ids, target_shape)


class TokenWeightedLossMixin:
    """``compute_loss`` with a token weighting, for transformers' ``Trainer`` and its subclasses.

    Put it first among the bases: ``class MyTrainer(TokenWeightedLossMixin, Trainer)``, then
    ``MyTrainer(model=..., args=..., train_dataset=..., token_loss=talr_loss())``. The module docstring gives the
    loss, its normalisation and the sequences of the dynamic temperature.

    Args:
        token_loss: the weighting, a :class:`~sft_tilt.torch_losses.TokenWeightedLoss` (``talr_loss()``,
            ``dft_loss()``, ``flow_loss()``, ``sft_loss()``). Required.
        *args, **kwargs: the trainer's own arguments; ``compute_loss_func`` is refused (this is its replacement),
            and so is ``label_smoothing_factor > 0`` (the weighting replaces the loss it would smooth).
    """

    token_loss: TokenWeightedLoss

    def __init__(self, *args, token_loss: TokenWeightedLoss | None = None, **kwargs):
        if not isinstance(token_loss, TokenWeightedLoss):
            raise ValueError(f"token_loss: expected a TokenWeightedLoss such as talr_loss(), got "
                             f"{type(token_loss).__name__}")
        if kwargs.get("compute_loss_func") is not None:
            raise ValueError("compute_loss_func: this trainer computes the token-weighted loss itself; pass the "
                             "weighting as token_loss= and leave compute_loss_func unset")
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        if float(getattr(training_args, "label_smoothing_factor", 0.0) or 0.0) > 0:
            raise ValueError("label_smoothing_factor: must be 0 with a token-weighted loss (the weighting replaces "
                             "the loss that label smoothing would change)")
        self.token_loss = token_loss
        super().__init__(*args, **kwargs)
        if token_loss.method == "flow":
            self.data_collator = SequenceWeightCollator(self.data_collator)

    def _set_signature_columns_if_needed(self):
        # the trainer drops dataset columns that the model's forward does not take; FLOW's weight must survive
        super()._set_signature_columns_if_needed()
        if self.token_loss.method == "flow" and SEQUENCE_WEIGHT not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, SEQUENCE_WEIGHT]

    def _per_token_losses(self, model, inputs: dict[str, Any], labels: torch.Tensor, return_outputs: bool):
        """One forward pass: ``(l, m, outputs)`` with ``l``, ``m`` ``[B, T-1]``. The model gets no labels, so it
        computes no loss of its own; the losses come from its logits."""
        outputs = model(**inputs)
        losses, mask = token_losses(outputs, labels, self.token_loss.ignore_index)
        return losses, mask, outputs

    def _processes_sharing_the_count(self) -> int:
        """How many processes' tokens ``num_items_in_batch`` counts (``Trainer.compute_loss``'s factor)."""
        if self.args.n_gpu > 1:
            return self.args.n_gpu
        tp_size = self.get_tp_size() if hasattr(self, "get_tp_size") else 1
        return self.accelerator.num_processes // tp_size

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        if labels is None:
            raise ValueError("labels: the batch has no 'labels' (-100 = not a target); the token-weighted loss needs "
                             "them")
        sequence_weights = inputs.pop(SEQUENCE_WEIGHT, None)
        losses, mask, outputs = self._per_token_losses(model, inputs, labels, return_outputs)
        sequence_ids = batch_sequence_ids(inputs, losses.shape)
        loss = self.token_loss.reduce(losses, mask, num_items_in_batch, sequence_weights, sequence_ids)
        loss = loss + self._extra_loss(outputs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self._processes_sharing_the_count()
        # divided by the accumulated batch's token count, the loss needs no further division by the number of
        # accumulation steps; divided by this micro-batch's count it does (read by Trainer.training_step)
        self.loss_is_scaled_for_ga = num_items_in_batch is not None
        return (loss, outputs) if return_outputs else loss

    def _extra_loss(self, outputs, num_items_in_batch) -> torch.Tensor | float:
        """A term added to the weighted loss (none here; TRL's trainer adds a mixture-of-experts router loss)."""
        return 0.0
