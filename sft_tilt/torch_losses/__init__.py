"""Token-weighted fine-tuning losses for PyTorch trainers: SFT, TALR, DFT and FLOW.

A self-contained PyTorch implementation (it imports only ``torch``) of the token weightings studied in
*SFT Doesn't Always Hurt General Capabilities* (Lin et al., ICLR 2026), with the signature of a trainer's
custom-loss hook, ``loss(outputs_or_logits, labels, num_items_in_batch=None)``:

    from sft_tilt.torch_losses import talr_loss
    trainer = Trainer(model=model, args=args, train_dataset=ds, compute_loss_func=talr_loss())

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
  ``tau = max(median_b f_b, 1e-6)`` with ``f_b = sum_t l_bt m_bt / sum_t m_bt`` the per-sequence mean loss
  (sequences without a supervised token are skipped).
* DFT: ``w = p`` (``tau = 1``, no floor).
* FLOW: ``w_bt = s_b``, static per-sequence weights ``s_b = exp(-f_b(theta_0) / tau)`` computed once from the
  initial model (:func:`sft_tilt.torch_losses.flow_sequence_weights`).

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
    token_log_probs,
    token_losses,
    weighted_loss,
)
from sft_tilt.torch_losses.weights import (
    METHODS,
    NORMALIZATIONS,
    TAU_MIN,
    dynamic_tau,
    flow_sequence_weights,
    sequence_mean_losses,
    token_weights,
)

__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "TAU_MIN",
    "TokenWeightedLoss",
    "dft_loss",
    "dynamic_tau",
    "flow_loss",
    "flow_sequence_weights",
    "logits_of",
    "sequence_mean_losses",
    "sft_loss",
    "talr_loss",
    "token_log_probs",
    "token_losses",
    "token_weights",
    "weighted_loss",
]
