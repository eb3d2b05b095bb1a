"""Per-token losses at supervised positions only: project to the vocabulary where the loss mask is set, in chunks.

``sft_tilt.lm.model.per_token_losses`` computes logits ``[B, T, V]`` (float32) at every position and then masks most of
them away: in chat fine-tuning only the response tokens are targets, and for SmolLM2 (V = 49152) the output head
and its log-softmax are a fifth of the model's forward FLOPs and most of its activation memory. Here

    h      = forward_hidden(tokens)[:, :-1]                       [B, T-1, D], position t predicts token t+1
    S      = {(b, t) : loss_mask[b, t+1] != 0}                    the supervised targets, |S| = n <= C
    z_i    = RMSNorm(h_{s_i}; g_final) @ head                      [C, V], only for the C slots s_1..s_C (chunked)
    l_i    = logsumexp(z_i) - z_i[y_i]                             y_i = tokens[b, t+1]
    out[b, t] = l_i * loss_mask[b, t+1]   at s_i = (b, t),   0 elsewhere

which is ``per_token_losses`` up to float32 round-off (the same arithmetic on a differently shaped matmul), with
the same shape ``[B, T-1]`` and the same zeros. The slots have a *static* count ``capacity`` (jit needs static
shapes): the first n hold the supervised positions in row-major order, the rest are padding (position 0, loss
discarded). ``supervised_capacity`` picks a capacity from a data set's mask, rounded up to a bucket so one compiled
program serves every batch. A batch with more targets than slots raises ``ValueError`` when its mask is concrete;
under ``jit`` (where it cannot raise) every target's loss in such a batch is NaN, never silently dropped.

The slots are split into chunks of ``chunk_size`` positions; with more than one chunk each chunk's logits are
recomputed in the backward pass (``jax.checkpoint``), so at most ``chunk_size x V`` logits are alive at a time
(at the price of one more head matmul per chunk); with one chunk nothing is recomputed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import forward_hidden, output_logits

__all__ = ["DEFAULT_BUCKET", "DEFAULT_CHUNK_SIZE", "supervised_capacity", "supervised_token_losses",
           "supervised_token_scores"]

#: Capacities are rounded up to a multiple of this many slots (fewer distinct programs to compile).
DEFAULT_BUCKET = 64
#: Positions projected to the vocabulary at once: 1024 x 49152 float32 logits are 201 MB.
DEFAULT_CHUNK_SIZE = 1024


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive int, got {value!r}")
    return int(value)


def supervised_capacity(loss_mask, batch_size: int | None = None, bucket: int = DEFAULT_BUCKET) -> int:
    """Slots enough for any batch of ``batch_size`` rows of ``loss_mask`` [N, T] (default: all N rows at once).

        n = sum of the batch_size largest row counts #{t >= 1 : loss_mask[r, t] != 0}
        capacity = min(bucket * ceil(max(n, 1) / bucket), batch_size * (T - 1))

    (targets are tokens 1..T-1: ``loss_mask[:, 0]`` is never a target, as in ``per_token_losses``).
    """
    mask = np.asarray(loss_mask)
    if mask.ndim != 2 or mask.shape[0] < 1 or mask.shape[1] < 2:
        raise ValueError(f"loss_mask: must have shape [N >= 1, T >= 2], got {mask.shape}")
    batch_size = mask.shape[0] if batch_size is None else _positive_int("batch_size", batch_size)
    bucket = _positive_int("bucket", bucket)
    counts = np.sort(np.count_nonzero(mask[:, 1:], axis=1))[::-1]
    n = int(counts[:batch_size].sum())
    return int(min(bucket * -(-max(n, 1) // bucket), batch_size * (mask.shape[1] - 1)))


def supervised_token_losses(params, config: ModelConfig, tokens, loss_mask, capacity: int,
                            chunk_size: int = DEFAULT_CHUNK_SIZE, positions=None) -> jax.Array:
    """Per-token negative log-likelihood [B, T-1], equal to ``per_token_losses`` up to float32 round-off, with the
    output head applied only at the supervised positions (formula in the module docstring).

    Args:
      tokens: int [B, T]; loss_mask: [B, T] aligned with tokens (``loss_mask[b, t] != 0``: token t is a target).
      capacity: static number of slots (>= the batch's number of targets; ``supervised_capacity``).
      chunk_size: slots projected to the vocabulary at once (static).
      positions: as in ``forward`` (rotary positions).
    """
    return supervised_token_scores(params, config, tokens, loss_mask, capacity, chunk_size, positions)[0]


def supervised_token_scores(params, config: ModelConfig, tokens, loss_mask, capacity: int,
                            chunk_size: int = DEFAULT_CHUNK_SIZE, positions=None) -> tuple[jax.Array, jax.Array]:
    """``(losses, top1)``, both [B, T-1]: the losses of :func:`supervised_token_losses` and, at every target,
    whether the target is the model's greedy choice there,

        top1[b, t] = 1  iff  z[y] >= max_v z[v]        (z: the logits predicting token t+1; ties count as top-1)

    (0 off the mask). Teacher-forced accuracies are means of ``top1`` over a set of targets; one forward pass gives
    both.
    """
    capacity = _positive_int("capacity", capacity)
    chunk_size = _positive_int("chunk_size", chunk_size)
    tokens = jnp.asarray(tokens)
    loss_mask = jnp.asarray(loss_mask)
    if loss_mask.shape != tokens.shape:
        raise ValueError(f"loss_mask: must have the shape of tokens {tuple(tokens.shape)}, got {tuple(loss_mask.shape)}")
    if tokens.ndim != 2 or tokens.shape[1] < 2:
        raise ValueError(f"tokens: must have shape [B, T >= 2], got {tuple(tokens.shape)}")
    if not isinstance(loss_mask, jax.core.Tracer):
        n = int(np.count_nonzero(np.asarray(loss_mask)[:, 1:]))
        if n > capacity:
            raise ValueError(f"capacity: the batch has {n} supervised targets, more than capacity={capacity}")

    B, T = tokens.shape
    hidden = forward_hidden(params, config, tokens, positions)[:, :-1]
    D = hidden.shape[-1]
    hidden = hidden.reshape(B * (T - 1), D)
    mask = loss_mask[:, 1:]
    selected = mask.reshape(-1) != 0
    targets = tokens[:, 1:].reshape(-1)

    n_chunks = -(-capacity // chunk_size)
    size = capacity if n_chunks == 1 else n_chunks * chunk_size
    (index,) = jnp.nonzero(selected, size=size, fill_value=0)
    count = jnp.sum(selected)
    valid = jnp.arange(size) < count

    def chunk_scores(h, y):
        logits = output_logits(params, config, h)  # [c, V]
        picked = jnp.take_along_axis(logits, y[:, None], axis=-1)[:, 0]
        # top-1 is not differentiable; stop_gradient keeps it out of the backward pass of a training loss
        top1 = jax.lax.stop_gradient(picked >= jnp.max(logits, axis=-1)).astype(logits.dtype)
        return jax.nn.logsumexp(logits, axis=-1) - picked, top1

    h, y = hidden[index], targets[index]
    if n_chunks == 1:
        nll, top1 = chunk_scores(h, y)
    else:
        nll, top1 = jax.lax.map(lambda hy: jax.checkpoint(chunk_scores)(*hy),
                                (h.reshape(n_chunks, chunk_size, D), y.reshape(n_chunks, chunk_size)))
        nll, top1 = nll.reshape(size), top1.reshape(size)
    mask = mask.astype(nll.dtype)

    def scatter(values):
        values = jnp.where(valid, values, 0.0)
        out = jnp.zeros(B * (T - 1), values.dtype).at[index].add(values).reshape(B, T - 1)
        return jnp.where(count > size, jnp.nan, out)  # under jit: a batch that does not fit is NaN, never truncated

    return jnp.where(mask != 0, scatter(nll) * mask, 0.0), jnp.where(mask != 0, scatter(top1), 0.0)
