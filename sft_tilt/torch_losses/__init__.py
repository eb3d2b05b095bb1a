"""Token-weighted fine-tuning losses for PyTorch trainers: SFT, TALR, DFT and FLOW.

A self-contained PyTorch implementation (importing this package imports only ``torch``) of the token weightings
studied in *SFT Doesn't Always Hurt General Capabilities* (Lin et al., ICLR 2026). In TRL, the trainer subclass
computes the loss inside ``compute_loss`` from one forward pass per micro-batch:

    from trl import SFTConfig
    from sft_tilt.torch_losses import TokenWeightedSFTTrainer, talr_loss

    trainer = TokenWeightedSFTTrainer(model=model, args=SFTConfig(...), train_dataset=ds, token_loss=talr_loss())

``TokenWeightedTrainer`` is the same for transformers' ``Trainer``, and :class:`TokenWeightedLossMixin` puts the
loss in front of any ``Trainer`` subclass. The two trainers are imported on first use (they import ``trl`` and
``transformers``). The losses themselves are plain callables, ``loss(outputs_or_logits, labels,
num_items_in_batch=None)``, for a training loop of your own.

Conventions (those of transformers' causal-LM loss):

* ``labels`` ``[B, T]`` are aligned with ``input_ids``; position ``t`` of the logits predicts ``labels[:, t+1]``
  (the loss shifts them), and ``-100`` marks a token that is not a target (prompt, padding).
* The per-token loss is ``l_bt = -log softmax(logits[b, t])[labels[b, t+1]]`` on the ``N`` supervised tokens
  (``m_bt = 1``); ``p_bt = exp(-l_bt)`` is the target token's probability.
* The loss is ``sum_bt w_bt l_bt m_bt / n`` with the weights ``w`` detached (constants for the gradient), and
  ``n = num_items_in_batch`` (the supervised-token count of the whole accumulated batch, as the Trainer passes
  it), or ``n = N`` of this batch when it is ``None``. With ``w = 1`` this is exactly transformers' default
  causal-LM loss.

Weightings (``w`` before the mask; see :func:`sft_tilt.torch_losses.token_weights`):

* SFT: ``w = 1``.
* TALR: ``w = max(p^(1/tau), floor) = max(exp(-l / tau), floor)``; ``tau`` fixed, or dynamic:
  ``tau = max(median_s f_s, 1e-6)`` with ``f_s = sum_{t in s} l_t m_t / sum_{t in s} m_t`` the mean loss of
  sequence ``s`` (sequences without a supervised token are skipped).
* DFT: ``w = p`` (``tau = 1``, no floor).
* FLOW: ``w_bt = s_b``, static per-sequence weights ``s_b = exp(-f_b(theta_0) / tau)`` computed once from the
  initial model (:func:`sft_tilt.torch_losses.flow_sequence_weights`).

A sequence is one training example: a row of a padded batch; in a padding-free or packed batch (``position_ids``
and no attention mask), each stretch of positions that ``position_ids`` mark (:func:`packed_sequence_ids`). Where
a packing keeps no boundaries (TRL's ``wrapped`` strategy), a row is a pack and the median is over packs.

Normalisation over the batch's supervised tokens: ``"none"`` (the raw weights), ``"mean"`` (``w <- N w / sum w``,
mean weight one) or ``"simplex"`` (``w`` sums to one: TALR's ``softmax(-l / tau)``, the solution of
``min_{w in simplex} sum_i w_i l_i + tau sum_i w_i log w_i``; a floor is applied to the simplex weight, then the
weights are renormalised).

The step monitor for Hugging Face trainers (what one optimiser step cost a probe of general text, against the band
the single-step theory predicted) is :mod:`sft_tilt.torch_losses.step_monitor`; it is not imported here, so importing
the losses stays as light as before.
"""

from sft_tilt.torch_losses.losses import (
    TokenWeightedLoss,
    dft_loss,
    flow_loss,
    logits_of,
    sft_loss,
    talr_loss,
    target_sequence_ids,
    token_log_probs,
    token_losses,
    weighted_loss,
)
from sft_tilt.torch_losses.trainer import SEQUENCE_WEIGHT, SequenceWeightCollator, TokenWeightedLossMixin
from sft_tilt.torch_losses.weights import (
    METHODS,
    NORMALIZATIONS,
    TAU_MIN,
    dynamic_tau,
    flow_sequence_weights,
    packed_sequence_ids,
    sequence_mean_losses,
    token_weights,
)

# the trainers import trl or transformers, so they load on first use (and stay out of __all__, so that a star
# import needs only torch)
_LAZY = {
    "TokenWeightedSFTTrainer": "sft_tilt.torch_losses.trl_trainer",
    "TokenWeightedTrainer": "sft_tilt.torch_losses.transformers_trainer",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "SEQUENCE_WEIGHT",
    "SequenceWeightCollator",
    "TAU_MIN",
    "TokenWeightedLoss",
    "TokenWeightedLossMixin",
    "dft_loss",
    "dynamic_tau",
    "flow_loss",
    "flow_sequence_weights",
    "logits_of",
    "packed_sequence_ids",
    "sequence_mean_losses",
    "sft_loss",
    "talr_loss",
    "target_sequence_ids",
    "token_log_probs",
    "token_losses",
    "token_weights",
    "weighted_loss",
]
