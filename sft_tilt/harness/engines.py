"""How a run computes its numbers: the ``reference`` engine (every run committed so far) or the ``fast`` engine.

Both engines train the same trajectory (same batches, learning rates, objective and optimiser) and measure the same
quantities at the same points. The fast engine leaves out work that cannot change a number beyond float32 round-off:

* **Length trimming.** A training batch, and every evaluation batch, is cut to the positions its targets need,

      L = min(T, b * ceil(max_r e_r / b)),        e_r = 1 + max {t : loss_mask[r, t] != 0}

  (``b`` a length bucket, so that a few compiled programs serve every batch). The model is causal: the loss at
  target ``t`` reads tokens ``0..t`` only, so the positions after a batch's last target change no loss, no gradient
  and no top-1 flag. Cutting them changes the shapes of the matrix products, hence their summation order, and
  nothing else. A chain-of-thought window of the ``cpu`` preset is 320 tokens and its examples need 186-312.
* **Evaluation batches of rows of similar lengths.** A set's rows are sorted by ``e_r`` before they are cut into
  batches of ``eval_batch`` rows, so each batch is cut near its own longest row, and the last batch holds only the
  rows left (the reference engine fills it with masked copies of rows, computed and discarded).
* **Output-head chunks of equal size.** At evaluation the supervised positions' ``C`` slots are projected to the
  vocabulary in ``ceil(C / EVAL_CHUNK_LIMIT)`` chunks of equal size (rounded up to 64 slots); the reference engine
  rounds ``C`` up to whole chunks of 1024 slots, so a batch with a little over 1024 targets projects 2048.
* **The finite check inside the step.** Whether every trainable parameter is finite after the update is computed
  by the compiled training step (``make_train_step(check_finite=True)``), not by a second pass over the parameters.
* **Fewer checkpoints.** The checkpoint (trainable parameters and optimiser state: three copies of the model for
  full fine-tuning with Adam) is written at an evaluation point only once ``CHECKPOINT_INTERVAL_S`` seconds of
  compute have passed since the last one; a killed run resumes from the last checkpoint, as before.

Greedy generation (the final accuracy) and the base model's evaluation are the same code in both engines.

**Agreement.** A run computed by the two engines gives the same evaluation points to within :data:`TOLERANCE` nats
per token: every domain, general and unseen loss, and every training step's loss
(``tests/harness/test_run_engines.py``, on the ``tiny`` and ``smoke`` presets). Quantities that are decisions
(greedy answers, top-1 flags, histogram bins) can flip where two candidates are within round-off of each other.

**Run keys.** The reference engine is not part of a run's key, so the committed runs keep theirs. A fast-engine
run's key holds ``{"name": "fast", "version": FAST_ENGINE_VERSION}`` (:func:`key_material`): bump the version with
every change here that moves numbers, as ``TRAINING_VERSION`` is bumped for the code both engines share.
"""

from __future__ import annotations

from functools import partial

import jax
import numpy as np

from sft_tilt.harness.encoding import EncodedSet
from sft_tilt.harness.run_config import ENGINES, check_engine  # the configuration validates without this module
from sft_tilt.lm.supervised_loss import DEFAULT_BUCKET, supervised_capacity, supervised_token_scores

__all__ = ["ENGINES", "TOLERANCE", "FAST_ENGINE_VERSION", "TRAIN_LENGTH_BUCKET", "EVAL_LENGTH_BUCKET",
           "EVAL_CHUNK_LIMIT", "CHECKPOINT_INTERVAL_S", "check_engine", "key_material", "target_extents",
           "trimmed_length", "trim_batch", "trimmed_set_token_scores", "checkpoint_due"]

#: Largest difference (nats/token) between the two engines' evaluation points and training-step losses.
TOLERANCE = 1e-4
#: Part of a fast-engine run's key: bump it with every change in this module that moves numbers.
FAST_ENGINE_VERSION = 1
#: Training batches are cut to a multiple of this many positions (each length compiles one training step).
TRAIN_LENGTH_BUCKET = 32
#: Evaluation batches are cut to a multiple of this many positions (a forward pass compiles faster than a step).
EVAL_LENGTH_BUCKET = 16
#: At evaluation, at most this many supervised positions are projected to the vocabulary at once
#: (2048 x 49152 float32 logits are 403 MB).
EVAL_CHUNK_LIMIT = 2048
#: Seconds of compute between two checkpoints of a fast-engine run (each evaluation point, with the reference engine).
CHECKPOINT_INTERVAL_S = 600.0


def key_material(engine: str) -> dict | None:
    """What ``engine`` adds to a run's key: nothing for the reference engine (the committed runs' keys stay),
    its name and :data:`FAST_ENGINE_VERSION` for the fast one."""
    check_engine(engine)
    return None if engine == "reference" else {"name": engine, "version": FAST_ENGINE_VERSION}


def target_extents(loss_mask) -> np.ndarray:
    """``e_r = 1 + max{t : loss_mask[r, t] != 0}`` for every row of ``loss_mask`` [N, T] (the tokens the row's
    targets read; 1 for a row without a target)."""
    mask = np.asarray(loss_mask)
    if mask.ndim != 2 or mask.shape[1] < 2:
        raise ValueError(f"loss_mask: must have shape [N, T >= 2], got {mask.shape}")
    nonzero = mask != 0
    last = mask.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last + 1, 1).astype(np.int64)


def trimmed_length(extent: int, bucket: int, seq_len: int) -> int:
    """``min(seq_len, bucket * ceil(extent / bucket))``, at least 2 (a window has a first token and a target)."""
    for name, value in (("extent", extent), ("bucket", bucket), ("seq_len", seq_len)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: must be a positive int, got {value!r}")
    if extent > seq_len:
        raise ValueError(f"extent: {extent} exceeds seq_len={seq_len}")
    return max(2, min(int(seq_len), int(bucket) * -(-int(extent) // int(bucket))))


def trim_batch(batch: dict, bucket: int = TRAIN_LENGTH_BUCKET) -> dict:
    """``batch`` with ``tokens`` and ``loss_mask`` [B, T] cut to :func:`trimmed_length` of their last target; every
    other entry (per-row arrays such as ``sequence_weights``) unchanged."""
    mask = np.asarray(batch["loss_mask"])
    if np.shape(batch["tokens"]) != mask.shape:
        raise ValueError(f"batch: tokens {np.shape(batch['tokens'])} and loss_mask {mask.shape} differ in shape")
    length = trimmed_length(int(target_extents(mask).max()), bucket, mask.shape[1])
    if length == mask.shape[1]:
        return batch
    return dict(batch, tokens=batch["tokens"][:, :length], loss_mask=batch["loss_mask"][:, :length])


_SCORE_FNS: dict = {}


def _scores_fn(model_config, capacity: int, chunk_size: int):
    key = (model_config, capacity, chunk_size)
    if key not in _SCORE_FNS:
        _SCORE_FNS[key] = jax.jit(partial(supervised_token_scores, config=model_config, capacity=capacity,
                                          chunk_size=chunk_size))
    return _SCORE_FNS[key]


def _equal_chunks(capacity: int) -> tuple[int, int]:
    """``(slots, chunk)``: ``n = ceil(capacity / EVAL_CHUNK_LIMIT)`` chunks of ``chunk`` slots (``capacity / n``
    rounded up to a multiple of 64), ``slots = n * chunk``."""
    n = -(-capacity // EVAL_CHUNK_LIMIT)
    chunk = DEFAULT_BUCKET * -(-capacity // (n * DEFAULT_BUCKET))
    return n * chunk, chunk


def trimmed_set_token_scores(params, model_config, enc: EncodedSet, batch_size: int,
                             bucket: int = EVAL_LENGTH_BUCKET) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`sft_tilt.harness.measure.set_token_scores` returns (per-token NLL, top-1 flags and target mask,
    each ``[N, T-1]``, zeros off the mask), computed on batches of rows of similar lengths, each cut to its last
    target (module docstring)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: must be a positive int, got {batch_size!r}")
    slots, chunk = _equal_chunks(supervised_capacity(enc.loss_mask, batch_size))
    fn = _scores_fn(model_config, slots, chunk)
    extents = target_extents(enc.loss_mask)
    order = np.argsort(extents, kind="stable")
    out = np.zeros((enc.n, enc.seq_len - 1))
    top1 = np.zeros((enc.n, enc.seq_len - 1))
    for start in range(0, enc.n, batch_size):
        rows = order[start:start + batch_size]
        length = trimmed_length(int(extents[rows].max()), bucket, enc.seq_len)
        losses, first = fn(params, tokens=jax.numpy.asarray(enc.tokens[rows, :length]),
                           loss_mask=jax.numpy.asarray(enc.loss_mask[rows, :length]))
        out[rows, : length - 1] = np.asarray(losses, dtype=np.float64)
        top1[rows, : length - 1] = np.asarray(first, dtype=np.float64)
    return out, top1, enc.loss_mask[:, 1:].astype(np.float64)


def checkpoint_due(engine: str, seconds_since_last: float) -> bool:
    """Whether a run computed by ``engine`` writes its checkpoint at this evaluation point: always with the
    reference engine; with the fast one once :data:`CHECKPOINT_INTERVAL_S` seconds of compute have passed since the
    run's last checkpoint (or its start)."""
    return check_engine(engine) == "reference" or seconds_since_last >= CHECKPOINT_INTERVAL_S
