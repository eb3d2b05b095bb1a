"""Detached token weights ``w`` ``[B, T]`` from per-token losses ``l`` and a supervision mask ``m`` (0/1).

Every function takes ``losses`` ``l_bt = -log p_bt`` (nats, ``>= 0`` on supervised tokens; anything, even NaN,
elsewhere) and ``mask`` ``m_bt`` of the same shape, and returns weights that are exactly ``0`` where ``m = 0`` and
never carry a gradient. ``N = sum_bt m_bt`` is the number of supervised tokens of the batch.
"""

from __future__ import annotations

import torch

__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "TAU_MIN",
    "sequence_mean_losses",
    "dynamic_tau",
    "flow_sequence_weights",
    "token_weights",
]

METHODS = ("sft", "talr", "dft", "flow")
NORMALIZATIONS = ("none", "mean", "simplex")
TAU_MIN = 1e-6  # lower clamp of the dynamic temperature


def _check(losses: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(losses) or losses.ndim != 2:
        raise ValueError(f"losses: expected a tensor of shape [B, T], got {getattr(losses, 'shape', type(losses))}")
    mask = torch.as_tensor(mask, device=losses.device)
    if mask.shape != losses.shape:
        raise ValueError(f"mask: shape {tuple(mask.shape)} does not match losses shape {tuple(losses.shape)}")
    on = mask > 0
    return losses.detach(), on


def sequence_mean_losses(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-sequence mean supervised loss ``f_b = sum_t l_bt m_bt / sum_t m_bt`` ``[B]``; ``NaN`` for a sequence
    with no supervised token."""
    losses, on = _check(losses, mask)
    count = on.sum(dim=-1)
    total = torch.where(on, losses, torch.zeros_like(losses)).sum(dim=-1)
    return torch.where(count > 0, total / count.clamp_min(1).to(losses.dtype), torch.full_like(total, float("nan")))


def dynamic_tau(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """TALR's dynamic temperature ``tau = max(median_b f_b, 1e-6)`` over the sequences with a supervised token.

    ``median`` is the midpoint of the two middle values for an even count (NumPy's convention, not
    ``torch.median``'s lower middle). A batch without any supervised token gets ``tau = 1e-6``. Detached.
    """
    f = sequence_mean_losses(losses, mask)
    f = f[~torch.isnan(f)]
    if f.numel() == 0:
        return torch.tensor(TAU_MIN, dtype=losses.dtype, device=losses.device)
    return torch.quantile(f, 0.5).clamp_min(TAU_MIN)


def flow_sequence_weights(initial_sequence_losses, tau=None) -> torch.Tensor:
    """FLOW's static sample weights ``s_b = exp(-f_b(theta_0) / tau)``, ``tau = max(median_b f_b(theta_0), 1e-6)``
    by default.

    ``f_b(theta_0)`` is each training sequence's mean supervised loss under the *initial* model, computed once
    before training (e.g. ``sequence_mean_losses(*token_losses(logits, labels))`` over the training set).

    Args:
        initial_sequence_losses: ``[N]`` finite, non-negative losses.
        tau: optional fixed temperature ``> 0``.
    Returns:
        ``[N]`` weights in ``(0, 1]``.
    """
    f = torch.as_tensor(initial_sequence_losses)
    if f.ndim != 1 or f.numel() == 0:
        raise ValueError(f"initial_sequence_losses: expected a non-empty 1-D tensor, got shape {tuple(f.shape)}")
    if not torch.is_floating_point(f):
        f = f.to(torch.get_default_dtype())
    if not bool(torch.isfinite(f).all()) or bool((f < 0).any()):
        raise ValueError("initial_sequence_losses: must be finite and non-negative")
    if tau is None:
        tau = torch.quantile(f, 0.5).clamp_min(TAU_MIN)
    elif not (float(tau) > 0 and float(tau) < float("inf")):
        raise ValueError(f"tau: must be a finite number > 0, got {tau!r}")
    return torch.exp(-f / tau)


def _rescale(w: torch.Tensor, on: torch.Tensor, normalization: str) -> torch.Tensor:
    """``"mean"``: ``N w / sum w``; ``"simplex"``: ``w / sum w``; ``"none"``: ``w`` (0 if ``sum w = 0``)."""
    if normalization == "none":
        return w
    total = w.sum()
    scale = on.sum().to(w.dtype) if normalization == "mean" else torch.ones((), dtype=w.dtype, device=w.device)
    return torch.where(total > 0, w * (scale / torch.where(total > 0, total, torch.ones_like(total))), torch.zeros_like(w))


def _exp_weights(losses, on, tau, floor: float, normalization: str) -> torch.Tensor:
    """``exp(-l / tau)`` on the supervised tokens: raw and floored (``"none"``, ``"mean"``), or on the simplex as
    ``softmax(-(l - l_min) / tau)`` with the floor applied to the simplex weight and renormalised (``"simplex"``)."""
    zero = torch.zeros_like(losses)
    if normalization == "simplex":
        if not bool(on.any()):
            return zero
        l_min = torch.where(on, losses, torch.full_like(losses, float("inf"))).min()
        e = torch.where(on, torch.exp(-(torch.where(on, losses, l_min) - l_min) / tau), zero)
        w = e / e.sum()
        if floor > 0:
            w = torch.where(on, torch.clamp_min(w, floor), zero)
            w = w / w.sum()
        return w
    w = torch.exp(-torch.where(on, losses, zero) / tau)
    if floor > 0:
        w = torch.clamp_min(w, floor)
    w = torch.where(on, w, zero)
    return _rescale(w, on, normalization)


def token_weights(
    losses: torch.Tensor,
    mask: torch.Tensor,
    method: str = "talr",
    tau="dynamic",
    floor: float = 0.01,
    normalization: str = "none",
    sequence_weights=None,
) -> torch.Tensor:
    """Detached weights ``w`` ``[B, T]`` of a token weighting, ``0`` where ``mask == 0``.

    * ``"sft"``:  ``w = 1``.
    * ``"talr"``: ``w = max(exp(-l / tau), floor)``; ``tau = "dynamic"`` (:func:`dynamic_tau`) or a number ``> 0``;
      ``floor`` in ``[0, 1)`` (``0``: none).
    * ``"dft"``:  ``w = exp(-l) = p`` (no floor).
    * ``"flow"``: ``w_bt = sequence_weights[b]`` (:func:`flow_sequence_weights`).

    ``normalization`` over the batch's supervised tokens: ``"none"``; ``"mean"``: ``w <- N w / sum w``;
    ``"simplex"``: ``w`` sums to 1 (TALR and DFT: ``softmax(-l / tau)``, floored then renormalised).
    """
    if method not in METHODS:
        raise ValueError(f"method: {method!r} is not one of {METHODS}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization: {normalization!r} is not one of {NORMALIZATIONS}")
    if not (0.0 <= float(floor) < 1.0):
        raise ValueError(f"floor: must lie in [0, 1), got {floor!r}")
    losses, on = _check(losses, mask)
    with torch.no_grad():
        zero = torch.zeros_like(losses)
        if method == "sft":
            w = _rescale(on.to(losses.dtype), on, normalization)
        elif method == "flow":
            if sequence_weights is None:
                raise ValueError("sequence_weights: FLOW needs the static per-sequence weights (flow_sequence_weights)")
            sw = torch.as_tensor(sequence_weights, dtype=losses.dtype, device=losses.device)
            if sw.shape != losses.shape[:1]:
                raise ValueError(f"sequence_weights: expected shape {tuple(losses.shape[:1])}, got {tuple(sw.shape)}")
            if not bool(torch.isfinite(sw).all()) or bool((sw < 0).any()):
                raise ValueError("sequence_weights: must be finite and non-negative")
            w = _rescale(torch.where(on, sw[:, None].expand_as(losses), zero), on, normalization)
        elif method == "dft":
            w = _exp_weights(losses, on, 1.0, 0.0, normalization)
        else:
            if isinstance(tau, str):
                if tau != "dynamic":
                    raise ValueError(f"tau: a number > 0 or 'dynamic', got {tau!r}")
                t = dynamic_tau(losses, on)
            else:
                if not (float(tau) > 0 and float(tau) < float("inf")):
                    raise ValueError(f"tau: must be a finite number > 0 or 'dynamic', got {tau!r}")
                t = float(tau)
            w = _exp_weights(losses, on, t, float(floor), normalization)
        return torch.where(on, w, zero)
