"""Token windows of fixed length: the arrays every training and evaluation call sees.

An :class:`EncodedSet` holds ``tokens`` ``[N, T]`` (int32) and ``loss_mask`` ``[N, T]`` (float32,
aligned with the tokens as in :func:`sft_tilt.lm.model.per_token_losses`: ``loss_mask[n, t] = 1`` makes
token ``t`` a scored target). Sequences are right-padded with ``pad_id`` under mask 0, so a causal
model's scores of the real tokens do not depend on the padding. One fixed ``T`` per set keeps one
compiled program per shape.

* chat examples (domain problems, self-generated general responses): the model's chat template via
  ``Tokenizer.encode_chat_example``; loss only on response tokens.
* plain texts (English documentation, code): the first ``T`` tokens of each text; loss on every
  token (the first token is never a target: it has no prefix).

Data text never produces control tokens: an added token's spelling (``<|im_end|>``, ``<|fim_prefix|>``) inside a
prompt, response or document is encoded as ordinary text, whatever the tokenizer file's ``special`` flags say;
only the chat template writes special ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["encode_answer_mask", "EncodedSet", "encode_chat_set", "encode_text_set", "batch_slices"]


@dataclass(frozen=True)
class EncodedSet:
    """Fixed-length token windows with their target mask (see module docstring)."""

    tokens: np.ndarray  # [N, T] int32
    loss_mask: np.ndarray  # [N, T] float32

    def __post_init__(self):
        if self.tokens.ndim != 2 or self.tokens.shape != self.loss_mask.shape:
            raise ValueError(f"tokens/loss_mask: need equal [N, T] shapes, got {self.tokens.shape} and {self.loss_mask.shape}")
        if self.tokens.shape[0] == 0:
            raise ValueError("tokens: the set is empty")

    @property
    def n(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def n_targets(self) -> int:
        return int(self.loss_mask[:, 1:].sum())

    def take(self, index) -> "EncodedSet":
        idx = np.asarray(index)
        return EncodedSet(self.tokens[idx], self.loss_mask[idx])


def _pad(rows: list[tuple[list[int], list[float]]], seq_len: int, pad_id: int) -> EncodedSet:
    tokens = np.full((len(rows), seq_len), pad_id, dtype=np.int32)
    mask = np.zeros((len(rows), seq_len), dtype=np.float32)
    for i, (ids, m) in enumerate(rows):
        tokens[i, : len(ids)] = ids
        mask[i, : len(m)] = m
    return EncodedSet(tokens, mask)


def encode_chat_set(tokenizer, pairs, seq_len: int, pad_id: int = 0, system: str | None = None) -> EncodedSet:
    """Encode ``(prompt, response)`` pairs through the chat template; loss on response tokens only.

    Raises ValueError (naming ``seq_len``) if an example does not fit: truncating a response would
    drop the answer, so the caller must choose a longer window or shorter examples.
    """
    if seq_len < 2:
        raise ValueError(f"seq_len: must be >= 2, got {seq_len}")
    rows = []
    for i, (prompt, response) in enumerate(pairs):
        try:
            ids, mask = tokenizer.encode_chat_example(prompt, response, system=system)
        except ValueError as err:
            raise ValueError(f"pairs[{i}]: {err}") from err
        ids, mask = list(ids), [float(x) for x in mask]
        if len(ids) > seq_len:
            raise ValueError(f"seq_len: example {i} needs {len(ids)} tokens, more than seq_len={seq_len}")
        if sum(mask) == 0:
            raise ValueError(f"pairs: example {i} has no response token to score")
        rows.append((ids, mask))
    if not rows:
        raise ValueError("pairs: empty")
    return _pad(rows, seq_len, pad_id)


def encode_answer_mask(tokenizer, pairs, starts, seq_len: int, system: str | None = None) -> np.ndarray:
    """``[N, seq_len - 1]`` 0/1 mask of the targets that spell each response's final answer, aligned with the
    per-token losses of ``encode_chat_set(tokenizer, pairs, seq_len, system=system)`` (column t: token t + 1).

    The answer of pair n is ``response[starts[n]:]`` (``starts[n]`` None: no answer, an all-zero row). Its tokens
    are found without assuming how BPE splits text: the conversation is encoded with and without the answer, and
    the answer's tokens are those between the two encodings' longest common prefix and common suffix (the closing
    template tokens), so a token fused across the answer's first character counts as an answer token.
    """
    if len(starts) != len(pairs):
        raise ValueError(f"starts: {len(starts)} entries for {len(pairs)} pairs")
    out = np.zeros((len(pairs), seq_len - 1), np.float32)
    for n, ((prompt, response), start) in enumerate(zip(pairs, starts)):
        if start is None:
            continue
        if not 0 < start < len(response):
            raise ValueError(f"starts: entry {n} ({start}) is not inside its response of {len(response)} characters")
        full, _ = tokenizer.encode_chat_example(prompt, response, system=system)
        cut, _ = tokenizer.encode_chat_example(prompt, response[:start].rstrip(), system=system)
        if len(full) > seq_len:
            raise ValueError(f"seq_len: example {n} needs {len(full)} tokens, more than seq_len={seq_len}")
        prefix = 0
        while prefix < min(len(full), len(cut)) and full[prefix] == cut[prefix]:
            prefix += 1
        suffix = 0
        while suffix < min(len(full), len(cut)) - prefix and full[-1 - suffix] == cut[-1 - suffix]:
            suffix += 1
        if len(full) - suffix <= prefix:
            raise ValueError(f"pairs: the answer of example {n} ({response[start:]!r}) adds no token")
        out[n, prefix - 1 : len(full) - suffix - 1] = 1.0
    return out


def encode_text_set(tokenizer, texts, seq_len: int, pad_id: int = 0) -> EncodedSet:
    """The first ``seq_len`` tokens of each text, every token a target (texts shorter are padded); special
    tokens' spellings in a text are ordinary text."""
    if seq_len < 2:
        raise ValueError(f"seq_len: must be >= 2, got {seq_len}")
    rows = []
    for i, text in enumerate(texts):
        try:
            ids = list(tokenizer.encode(text, parse_special=False))[:seq_len]
        except ValueError as err:
            raise ValueError(f"texts[{i}]: {err}") from err
        if len(ids) < 2:
            raise ValueError(f"texts[{i}]: encodes to fewer than 2 tokens")
        rows.append((ids, [1.0] * len(ids)))
    if not rows:
        raise ValueError("texts: empty")
    return _pad(rows, seq_len, pad_id)


def batch_slices(n: int, batch_size: int) -> list[np.ndarray]:
    """Index arrays of consecutive batches of exactly ``batch_size`` rows; the last one wraps around
    with weight-0 duplicates marked by index ``-1`` (callers zero their mask), so every batch has one shape."""
    if batch_size < 1:
        raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
    out = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        idx[idx >= n] = -1
        out.append(idx)
    return out
