"""transformers' ``Trainer`` with a token-weighted loss: ``TokenWeightedTrainer(..., token_loss=talr_loss())``.

The loss is :class:`~sft_tilt.torch_losses.trainer.TokenWeightedLossMixin`'s, from the logits of one forward pass
per micro-batch. This module imports ``transformers``; :mod:`sft_tilt.torch_losses` imports it only when
``TokenWeightedTrainer`` is used.
"""

from __future__ import annotations

from transformers import Trainer

from sft_tilt.torch_losses.trainer import TokenWeightedLossMixin

__all__ = ["TokenWeightedTrainer"]


class TokenWeightedTrainer(TokenWeightedLossMixin, Trainer):
    """``Trainer`` whose loss is ``token_loss`` (a :class:`~sft_tilt.torch_losses.TokenWeightedLoss`). Takes
    ``Trainer``'s arguments plus ``token_loss``."""
