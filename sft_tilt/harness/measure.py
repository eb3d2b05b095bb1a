"""What a run measures at each evaluation point.

* Mean per-token negative log-likelihood of a set (nats/token), over its scored tokens:

      L(set) = sum_{n,t} m_nt l_nt / sum_{n,t} m_nt,   l_nt = -log q_theta(x_{n,t} | x_{n,<t})

  Domain gain ``D = L_dom(theta_0) - L_dom(theta)`` (held-out domain responses) and general loss change
  ``G_k = L_k(theta) - L_k(theta_0)`` for each general set ``k``: positive ``G`` is degradation.
* Target-token probability statistics over the scored tokens (``p = exp(-l)``): median, fraction with
  ``p > 0.2``, hard-token fraction ``p <= 0.2`` (the paper's threshold), hard-token mass
  ``sum_i (1 - p_i) / n`` (``sft_tilt.theory.hard_token_mass``: mean distance of targets from certainty, which bounds the CE update size
  ``||e_y - q|| in [1 - p, sqrt2 (1 - p)]``), and a histogram on ``[0, 1]``.
* Greedy domain accuracy: the answer parsed from a greedy completion is correct if
  ``|pred - truth| <= rel_tol |truth|``, or inside the example's ``[lower, upper]`` (:func:`sft_tilt.harness.medcalc.is_correct`).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.encoding import EncodedSet, batch_slices
from sft_tilt.harness.medcalc import is_correct, parse_answer
from sft_tilt.lm.supervised_loss import supervised_capacity, supervised_token_scores
from sft_tilt.theory import HARD_TOKEN_THRESHOLD, hard_token_mass

__all__ = [
    "HIST_BINS",
    "set_token_losses",
    "set_token_scores",
    "row_measures",
    "top1_rate",
    "answer_accuracy",
    "mean_nll",
    "probability_stats",
    "sequence_mean_nll",
    "greedy_accuracy",
]

HIST_BINS = 20

_EVAL_FNS: dict = {}


def _eval_fn(model_config, capacity: int):
    key = (model_config, capacity)
    if key not in _EVAL_FNS:
        _EVAL_FNS[key] = jax.jit(partial(supervised_token_scores, config=model_config, capacity=capacity))
    return _EVAL_FNS[key]


def set_token_scores(params, model_config, enc: EncodedSet, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-token NLL ``[N, T-1]`` (float64 numpy) of every window of ``enc``, whether each target is the model's
    top-1 token there ``[N, T-1]`` (0/1; :func:`sft_tilt.lm.supervised_loss.supervised_token_scores`) and the target
    mask ``[N, T-1]``.

    Batches have exactly ``batch_size`` rows (the last is padded with masked copies) so one program is compiled
    per set; the output head is applied only at the set's target tokens (``sft_tilt.lm.supervised_loss``, with slots
    for the ``batch_size`` windows holding the most targets).
    """
    fn = _eval_fn(model_config, supervised_capacity(enc.loss_mask, batch_size))
    out = np.zeros((enc.n, enc.seq_len - 1))
    top1 = np.zeros((enc.n, enc.seq_len - 1))
    for idx in batch_slices(enc.n, batch_size):
        real = idx >= 0
        take = np.where(real, idx, 0)
        mask = enc.loss_mask[take] * real[:, None]
        losses, first = fn(params, tokens=jnp.asarray(enc.tokens[take]), loss_mask=jnp.asarray(mask))
        out[idx[real]] = np.asarray(losses, dtype=np.float64)[real]
        top1[idx[real]] = np.asarray(first, dtype=np.float64)[real]
    return out, top1, enc.loss_mask[:, 1:].astype(np.float64)


def set_token_losses(params, model_config, enc: EncodedSet, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-token NLL ``[N, T-1]`` and the target mask ``[N, T-1]`` of :func:`set_token_scores`."""
    losses, _, mask = set_token_scores(params, model_config, enc, batch_size)
    return losses, mask


def top1_rate(top1: np.ndarray, mask: np.ndarray) -> float:
    """Teacher-forced next-token accuracy: the fraction of scored targets that are the model's top-1 token,
    ``sum m 1[y top-1] / sum m``."""
    count = float((mask > 0).sum())
    if count <= 0:
        raise ValueError("mask: no scored token")
    return float(((top1 > 0) & (mask > 0)).sum() / count)


def answer_accuracy(top1: np.ndarray, answer_mask: np.ndarray) -> float:
    """Teacher-forced answer accuracy: the fraction of windows whose answer tokens (``answer_mask`` [N, T-1], the
    targets that spell the final answer) are all top-1 given the reference response before them,

        acc = mean_n  prod_{t : a_nt = 1} 1[y_nt is top-1].

    A window without answer tokens raises (it cannot be graded)."""
    has = answer_mask.sum(axis=1) > 0
    if not np.all(has):
        raise ValueError(f"answer_mask: windows {np.flatnonzero(~has).tolist()} have no answer token")
    right = np.all((top1 > 0) | (answer_mask == 0), axis=1)
    return float(right.mean())


def mean_nll(losses: np.ndarray, mask: np.ndarray) -> float:
    """``sum m l / sum m`` in nats/token."""
    count = float(mask.sum())
    if count <= 0:
        raise ValueError("mask: no scored token")
    return float((losses * mask).sum() / count)


def row_measures(losses: np.ndarray, top1: np.ndarray, mask: np.ndarray, answer_mask: np.ndarray | None = None) -> dict:
    """Per-row sums of a set (the evaluation sample's items, for intervals that resample them): ``"nll"`` the
    summed NLL of each row's targets ``sum_t m l``, ``"tokens"`` their number ``sum_t m``, ``"top1"`` how many are
    the model's top-1; with ``answer_mask``, ``"answer_correct"``: 1 when every answer token is top-1, 0 when not,
    -1 for a row without answer tokens. A set's mean NLL is ``sum(nll) / sum(tokens)`` over its rows."""
    losses, mask = np.asarray(losses, dtype=np.float64), np.asarray(mask, dtype=np.float64)
    hits = (np.asarray(top1) > 0) & (mask > 0)
    out = {"nll": (losses * mask).sum(axis=1).tolist(), "tokens": mask.sum(axis=1).astype(int).tolist(),
           "top1": hits.sum(axis=1).astype(int).tolist()}
    if answer_mask is not None:
        has = answer_mask.sum(axis=1) > 0
        right = np.all((np.asarray(top1) > 0) | (answer_mask == 0), axis=1)
        out["answer_correct"] = np.where(has, right.astype(int), -1).tolist()
    return out


def sequence_mean_nll(losses: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-window mean NLL ``[N]`` (FLOW's per-sample loss ``f_b``)."""
    count = mask.sum(axis=1)
    if np.any(count <= 0):
        raise ValueError("mask: a window has no scored token")
    return (losses * mask).sum(axis=1) / count


def probability_stats(losses: np.ndarray, mask: np.ndarray, threshold: float = HARD_TOKEN_THRESHOLD, bins: int = HIST_BINS) -> dict:
    """Statistics of target-token probabilities ``p = exp(-l)`` over scored tokens (module docstring)."""
    if not 0 < threshold < 1:
        raise ValueError(f"threshold: must lie in (0, 1), got {threshold}")
    p = np.exp(-losses[mask > 0])
    if p.size == 0:
        raise ValueError("mask: no scored token")
    hist, _ = np.histogram(p, bins=bins, range=(0.0, 1.0))
    return {
        "n_tokens": int(p.size),
        "median_p": float(np.median(p)),
        "mean_p": float(p.mean()),
        "frac_above": float(np.mean(p > threshold)),
        "hard_fraction": float(np.mean(p <= threshold)),
        "hard_mass": float(hard_token_mass(jnp.asarray(p))),
        "histogram": hist.astype(int).tolist(),
        "threshold": threshold,
    }


def greedy_accuracy(params, model_config, tokenizer, examples, max_new_tokens: int, system: str | None, rel_tol: float = 0.05) -> dict:
    """Greedy-decode each example's prompt (chat template, generation prompt) and grade the parsed answer."""
    from sft_tilt.lm.generate import generate_greedy_many

    eos = getattr(tokenizer, "eos_id", None)
    prompts = [tokenizer.encode_chat(([] if system is None else [{"role": "system", "content": system}])
                                     + [{"role": "user", "content": ex.prompt}], add_generation_prompt=True)
               for ex in examples]
    outputs = generate_greedy_many(params, model_config, prompts, max_new_tokens, eos_id=eos) if prompts else []
    records = []
    for ex, new in zip(examples, outputs):  # the new tokens only, ending before eos
        text = tokenizer.decode(new, skip_special_tokens=True)
        pred = parse_answer(text)
        records.append({"pred": pred, "truth": ex.answer, "correct": bool(is_correct(pred, ex, rel_tol)), "text": text})
    acc = float(np.mean([r["correct"] for r in records])) if records else float("nan")
    return {"accuracy": acc, "n": len(records), "records": records}
