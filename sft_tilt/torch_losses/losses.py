"""Per-token log-probabilities from a causal LM's logits, and the token-weighted losses as callables
``loss(outputs_or_logits, labels, num_items_in_batch=None)``.

Shift (transformers' causal-LM convention): logits ``[B, T, V]`` at position ``t`` predict ``labels[:, t+1]``;
``labels == ignore_index`` (``-100``) is not a target. Outputs per token are ``[B, T-1]``: column ``t`` is the
target ``labels[:, t+1]``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from sft_tilt.torch_losses.weights import METHODS, NORMALIZATIONS, packed_sequence_ids, token_weights

__all__ = [
    "logits_of",
    "token_log_probs",
    "token_losses",
    "weighted_loss",
    "TokenWeightedLoss",
    "target_sequence_ids",
    "sft_loss",
    "talr_loss",
    "dft_loss",
    "flow_loss",
]


def logits_of(outputs_or_logits: Any) -> torch.Tensor:
    """The logits tensor ``[B, T, V]``: the argument itself, its ``.logits``, or its ``["logits"]``."""
    if torch.is_tensor(outputs_or_logits):
        return outputs_or_logits
    logits = getattr(outputs_or_logits, "logits", None)
    if logits is None and isinstance(outputs_or_logits, dict):
        logits = outputs_or_logits.get("logits")
    if logits is None and isinstance(outputs_or_logits, (tuple, list)) and outputs_or_logits:
        logits = outputs_or_logits[0]
    if not torch.is_tensor(logits):
        raise ValueError(f"outputs_or_logits: no logits tensor in a {type(outputs_or_logits).__name__}")
    return logits


def token_losses(outputs_or_logits: Any, labels: torch.Tensor, ignore_index: int = -100
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss ``l_bt = -log softmax(logits[b, t])[labels[b, t+1]]`` and mask ``m_bt`` (both ``[B, T-1]``).

    ``l = 0`` where ``m = 0`` (``labels[b, t+1] == ignore_index``). Half-precision logits are upcast to float32
    (as transformers does); float64 stays float64. Differentiable in the logits.
    """
    logits = logits_of(outputs_or_logits)
    if logits.ndim != 3:
        raise ValueError(f"logits: expected shape [B, T, V], got {tuple(logits.shape)}")
    labels = torch.as_tensor(labels, device=logits.device)
    if labels.shape != logits.shape[:2]:
        raise ValueError(f"labels: shape {tuple(labels.shape)} does not match logits' [B, T] = {tuple(logits.shape[:2])}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    B, T, V = logits.shape
    # shift the labels, not the logits (no copy of the [B, T, V] tensor); the last position predicts nothing
    targets = F.pad(labels.long(), (0, 1), value=ignore_index)[:, 1:]
    nll = F.cross_entropy(logits.reshape(B * T, V), targets.reshape(-1), ignore_index=ignore_index, reduction="none")
    return nll.view(B, T)[:, :-1], targets[:, :-1] != ignore_index


def token_log_probs(outputs_or_logits: Any, labels: torch.Tensor, ignore_index: int = -100
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``log p(labels[:, t+1] | tokens <= t)`` ``[B, T-1]`` (``0`` where not a target) and the target mask."""
    nll, mask = token_losses(outputs_or_logits, labels, ignore_index)
    return -nll, mask


def weighted_loss(losses: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor, num_items_in_batch=None
                  ) -> torch.Tensor:
    """``sum_bt w_bt l_bt m_bt / n``, ``n = num_items_in_batch`` or, when ``None``, ``max(N, 1)`` with ``N`` this
    batch's supervised-token count (a batch without one gives ``0``). The weights enter as constants.

    Dividing by a token count rather than by ``sum w`` keeps gradient accumulation exact for SFT and FLOW, makes
    ``w = 1`` the token-mean cross-entropy, and lets unnormalised weights shrink the step (their documented
    behaviour).
    """
    on = torch.as_tensor(mask, device=losses.device) > 0
    w = torch.as_tensor(weights, dtype=losses.dtype, device=losses.device).detach()
    total = torch.where(on, w * losses, torch.zeros_like(losses)).sum()
    if num_items_in_batch is None:
        n = on.sum().clamp_min(1).to(losses.dtype)
    else:
        n = torch.as_tensor(num_items_in_batch, device=losses.device).to(losses.dtype)
        n = torch.where(n > 0, n, torch.ones_like(n))
    return total / n


class TokenWeightedLoss:
    """A token weighting as a loss: ``loss(outputs_or_logits, labels, num_items_in_batch=None)``.

    Computes ``l, m = token_losses(logits, labels)``, ``w = token_weights(l, m, method, tau, floor, normalization)``
    and returns ``sum_bt w_bt l_bt m_bt / n`` (:func:`weighted_loss`). The gradient is
    ``(1/n) sum_bt w_bt grad l_bt``. :meth:`reduce` does the same from per-token losses a model already computed
    (TRL's fused LM head returns them without the ``[B, T, V]`` logits).

    The dynamic temperature and the ``"mean"``/``"simplex"`` normalisations are computed on the batch the loss
    sees (one micro-batch on one device under gradient accumulation or data parallelism). The dynamic temperature's
    sequences are the rows, or, given ``position_ids`` of a padding-free or packed batch, the sequences those mark
    (:func:`sft_tilt.torch_losses.packed_sequence_ids`).

    Args:
        method: ``"sft" | "talr" | "dft" | "flow"``.
        tau: TALR temperature, ``"dynamic"`` or a number ``> 0``.
        floor: TALR weight floor in ``[0, 1)``.
        normalization: ``"none" | "mean" | "simplex"``.
        ignore_index: the label value that marks a non-target token.
    """

    def __init__(self, method: str = "talr", tau="dynamic", floor: float = 0.01, normalization: str = "none",
                 ignore_index: int = -100):
        if method not in METHODS:
            raise ValueError(f"method: {method!r} is not one of {METHODS}")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization: {normalization!r} is not one of {NORMALIZATIONS}")
        if isinstance(tau, str) and tau != "dynamic":
            raise ValueError(f"tau: a number > 0 or 'dynamic', got {tau!r}")
        if not isinstance(tau, str) and not (float(tau) > 0 and float(tau) < float("inf")):
            raise ValueError(f"tau: must be a finite number > 0 or 'dynamic', got {tau!r}")
        if not (0.0 <= float(floor) < 1.0):
            raise ValueError(f"floor: must lie in [0, 1), got {floor!r}")
        self.method, self.tau, self.floor = method, tau, float(floor)
        self.normalization, self.ignore_index = normalization, ignore_index

    def __repr__(self) -> str:
        return (f"TokenWeightedLoss(method={self.method!r}, tau={self.tau!r}, floor={self.floor!r}, "
                f"normalization={self.normalization!r})")

    def weights(self, losses: torch.Tensor, mask: torch.Tensor, sequence_weights=None, sequence_ids=None
                ) -> torch.Tensor:
        """The detached token weights of this weighting (:func:`sft_tilt.torch_losses.token_weights`)."""
        return token_weights(losses, mask, self.method, self.tau, self.floor, self.normalization, sequence_weights,
                             sequence_ids)

    def reduce(self, losses: torch.Tensor, mask: torch.Tensor, num_items_in_batch=None, sequence_weights=None,
               sequence_ids=None) -> torch.Tensor:
        """``sum_bt w_bt l_bt m_bt / n`` from per-token losses ``l`` and mask ``m`` ``[B, T-1]`` (column ``t`` is the
        target ``labels[:, t+1]``); ``sequence_ids``, when given, are aligned with ``losses``."""
        return weighted_loss(losses, mask, self.weights(losses, mask, sequence_weights, sequence_ids),
                             num_items_in_batch)

    def __call__(self, outputs_or_logits: Any, labels: torch.Tensor, num_items_in_batch=None,
                 sequence_weights=None, position_ids=None) -> torch.Tensor:
        """The loss of a batch. ``position_ids`` ``[B, T]`` (optional) mark the sequences of a padding-free or
        packed batch; a target belongs to the sequence of the token it is (``labels[:, t+1]``)."""
        if labels is None:
            raise ValueError("labels: the loss needs the batch's labels (-100 = not a target)")
        losses, mask = token_losses(outputs_or_logits, labels, self.ignore_index)
        sequence_ids = None if position_ids is None else target_sequence_ids(position_ids, losses.shape)
        return self.reduce(losses, mask, num_items_in_batch, sequence_weights, sequence_ids)


def target_sequence_ids(position_ids: torch.Tensor, target_shape) -> torch.Tensor:
    """The sequence of each target column ``[B, T-1]``: column ``t`` (the target ``labels[:, t+1]``) belongs to the
    sequence of token ``t+1`` (:func:`sft_tilt.torch_losses.packed_sequence_ids`)."""
    position_ids = torch.as_tensor(position_ids)
    B, T_minus_1 = tuple(target_shape)
    if position_ids.ndim == 2 and position_ids.shape[0] == 1 and B > 1:  # one row of positions shared by the batch
        position_ids = position_ids.expand(B, -1)
    if tuple(position_ids.shape) != (B, T_minus_1 + 1):
        raise ValueError(f"position_ids: shape {tuple(position_ids.shape)} does not match the batch's "
                         f"[B, T] = {(B, T_minus_1 + 1)}")
    return packed_sequence_ids(position_ids)[:, 1:]


def sft_loss(ignore_index: int = -100) -> TokenWeightedLoss:
    """Plain SFT, ``sum l m / n``: transformers' default causal-LM loss."""
    return TokenWeightedLoss("sft", ignore_index=ignore_index)


def talr_loss(tau="dynamic", floor: float = 0.01, normalization: str = "none", ignore_index: int = -100
              ) -> TokenWeightedLoss:
    """TALR, ``w = max(p^(1/tau), floor)`` (dynamic ``tau`` = median per-sequence mean loss by default)."""
    return TokenWeightedLoss("talr", tau, floor, normalization, ignore_index)


def dft_loss(normalization: str = "none", ignore_index: int = -100) -> TokenWeightedLoss:
    """DFT, ``w = p`` (the target token's detached probability)."""
    return TokenWeightedLoss("dft", normalization=normalization, ignore_index=ignore_index)


def flow_loss(normalization: str = "none", ignore_index: int = -100) -> TokenWeightedLoss:
    """FLOW, ``w_bt = s_b``; call it with ``sequence_weights=`` the batch's entries of :func:`flow_sequence_weights`.
    In a trainer, give each example its weight in a ``sequence_weight`` column: :class:`TokenWeightedLossMixin`
    collates it and passes it on."""
    return TokenWeightedLoss("flow", normalization=normalization, ignore_index=ignore_index)
