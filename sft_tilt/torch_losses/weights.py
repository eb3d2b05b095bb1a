"""Detached token weights ``w`` ``[B, T]`` from per-token losses ``l`` and a supervision mask ``m`` (0/1).

Every function takes ``losses`` ``l_bt = -log p_bt`` (nats, ``>= 0`` on supervised tokens; anything, even NaN,
elsewhere) and ``mask`` ``m_bt`` of the same shape, and returns weights that are exactly ``0`` where ``m = 0`` and
never carry a gradient. ``N = sum_bt m_bt`` is the number of supervised tokens of the batch.

A *sequence* is one training example. By default each row ``b`` is one; a padding-free or packed batch holds several
in one row, told apart by ``sequence_ids`` ``[B, T]``: the index of the sequence each token belongs to, as
:func:`packed_sequence_ids` derives them from ``position_ids``.
"""

from __future__ import annotations

import torch

__all__ = [
    "METHODS",
    "NORMALIZATIONS",
    "TAU_MIN",
    "packed_sequence_ids",
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


def packed_sequence_ids(position_ids: torch.Tensor) -> torch.Tensor:
    """The sequence each token belongs to in a padding-free or packed batch, ``[B, T]`` integers.

    A new sequence starts at the start of a row and wherever the position does not advance by one,
    ``position_ids[b, t] - position_ids[b, t-1] != 1`` (transformers' rule for the sequences its attention keeps apart
    when a batch comes with ``position_ids`` and no attention mask). The sequences are numbered ``0, 1, ...`` in
    reading order (row by row, left to right), so a padding-free batch numbers its examples in the order they were
    flattened. Padding with position ``0`` after the last example forms sequences of its own.
    """
    position_ids = torch.as_tensor(position_ids)
    if position_ids.ndim == 1:
        position_ids = position_ids[None]
    if position_ids.ndim != 2 or position_ids.shape[-1] == 0 or torch.is_floating_point(position_ids):
        raise ValueError(f"position_ids: expected integers of shape [B, T] with T > 0, got "
                         f"{position_ids.dtype} {tuple(position_ids.shape)}")
    starts = torch.ones_like(position_ids, dtype=torch.bool)
    starts[:, 1:] = position_ids[:, 1:] - position_ids[:, :-1] != 1
    return torch.cumsum(starts.reshape(-1).long(), 0).view(position_ids.shape) - 1


def _checked_sequence_ids(sequence_ids, losses: torch.Tensor) -> torch.Tensor:
    """``sequence_ids`` as non-negative integers of the shape of ``losses``."""
    ids = torch.as_tensor(sequence_ids, device=losses.device)
    if ids.shape != losses.shape or torch.is_floating_point(ids) or ids.dtype == torch.bool:
        raise ValueError(f"sequence_ids: expected integers of shape {tuple(losses.shape)}, got {ids.dtype} "
                         f"{tuple(ids.shape)}")
    if ids.numel() and int(ids.min()) < 0:
        raise ValueError(f"sequence_ids: must be >= 0 (indices of sequences), got {int(ids.min())}")
    return ids.long()


def sequence_mean_losses(losses: torch.Tensor, mask: torch.Tensor, sequence_ids=None) -> torch.Tensor:
    """Per-sequence mean supervised loss ``f_s = sum_{bt in s} l_bt m_bt / sum_{bt in s} m_bt`` ``[S]``; ``NaN`` for
    a sequence with no supervised token.

    The sequences are the rows (``S = B``) when ``sequence_ids`` is ``None``; else sequence ``s`` is the set of
    tokens with ``sequence_ids == s`` (``S = max(sequence_ids) + 1``, an unused index gets ``NaN``).
    """
    losses, on = _check(losses, mask)
    masked = torch.where(on, losses, torch.zeros_like(losses))
    if sequence_ids is None:
        count, total = on.sum(dim=-1).to(losses.dtype), masked.sum(dim=-1)
    else:
        ids = _checked_sequence_ids(sequence_ids, losses).reshape(-1)
        size = int(ids.max()) + 1 if ids.numel() else 0
        count = torch.zeros(size, dtype=losses.dtype, device=losses.device).index_add_(0, ids, on.reshape(-1).to(losses.dtype))
        total = torch.zeros(size, dtype=losses.dtype, device=losses.device).index_add_(0, ids, masked.reshape(-1))
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def dynamic_tau(losses: torch.Tensor, mask: torch.Tensor, sequence_ids=None) -> torch.Tensor:
    """TALR's dynamic temperature ``tau = max(median_s f_s, 1e-6)`` over the sequences with a supervised token
    (:func:`sequence_mean_losses`: the rows, or the sequences of ``sequence_ids``).

    ``median`` is the midpoint of the two middle values for an even count (NumPy's convention, not
    ``torch.median``'s lower middle). A batch without any supervised token gets ``tau = 1e-6``. Detached.
    """
    f = sequence_mean_losses(losses, mask, sequence_ids)
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


def _per_token(sequence_weights: torch.Tensor, sequence_ids, on: torch.Tensor) -> torch.Tensor:
    """``sequence_weights[s(b, t)]`` ``[B, T]``; ``0`` on a token whose sequence lies past the end of the weights."""
    if sequence_ids is None:
        if sequence_weights.shape != on.shape[:1]:
            raise ValueError(f"sequence_weights: expected one per row, shape {tuple(on.shape[:1])}, "
                             f"got {tuple(sequence_weights.shape)}")
        return sequence_weights[:, None].expand(on.shape)
    if sequence_weights.ndim != 1:
        raise ValueError(f"sequence_weights: expected one per sequence, a 1-D tensor, got shape {tuple(sequence_weights.shape)}")
    ids = _checked_sequence_ids(sequence_ids, on)
    beyond = ids >= sequence_weights.shape[0]
    if bool((beyond & on).any()):
        raise ValueError(f"sequence_weights: {sequence_weights.shape[0]} weights, but sequence "
                         f"{int(ids[beyond & on].min())} has supervised tokens")
    zero_past_the_end = torch.cat([sequence_weights, sequence_weights.new_zeros(1)])
    return zero_past_the_end[ids.clamp_max(sequence_weights.shape[0])]


def token_weights(
    losses: torch.Tensor,
    mask: torch.Tensor,
    method: str = "talr",
    tau="dynamic",
    floor: float = 0.01,
    normalization: str = "none",
    sequence_weights=None,
    sequence_ids=None,
) -> torch.Tensor:
    """Detached weights ``w`` ``[B, T]`` of a token weighting, ``0`` where ``mask == 0``.

    * ``"sft"``:  ``w = 1``.
    * ``"talr"``: ``w = max(exp(-l / tau), floor)``; ``tau = "dynamic"`` (:func:`dynamic_tau`, the median over the
      sequences) or a number ``> 0``; ``floor`` in ``[0, 1)`` (``0``: none).
    * ``"dft"``:  ``w = exp(-l) = p`` (no floor).
    * ``"flow"``: ``w_bt = sequence_weights[s(b, t)]`` (:func:`flow_sequence_weights`), one weight per sequence.

    The sequences are the rows, or those of ``sequence_ids`` ``[B, T]`` (non-negative indices: token ``bt`` belongs
    to sequence ``sequence_ids[b, t]``). FLOW's ``sequence_weights`` then has one entry per index; it may stop
    early when no sequence past its end has a supervised token (trailing padding).

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
            if not bool(torch.isfinite(sw).all()) or bool((sw < 0).any()):
                raise ValueError("sequence_weights: must be finite and non-negative")
            w = _rescale(torch.where(on, _per_token(sw, sequence_ids, on), zero), on, normalization)
        elif method == "dft":
            w = _exp_weights(losses, on, 1.0, 0.0, normalization)
        else:
            if isinstance(tau, str):
                if tau != "dynamic":
                    raise ValueError(f"tau: a number > 0 or 'dynamic', got {tau!r}")
                t = dynamic_tau(losses, on, sequence_ids)
            else:
                if not (float(tau) > 0 and float(tau) < float("inf")):
                    raise ValueError(f"tau: must be a finite number > 0 or 'dynamic', got {tau!r}")
                t = float(tau)
            w = _exp_weights(losses, on, t, float(floor), normalization)
        return torch.where(on, w, zero)
