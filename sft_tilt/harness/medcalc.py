"""The clinical-calculation domain's example type, response formats and grading.

An example is a prompt (patient note + question), its two target responses and its numeric answer:

* ``"cot"``:   the step-by-step working ending in the line ``Answer: <answer>``;
* ``"label"``: ``Answer: <answer>`` alone (the paper's finding 2 compares the two).

The examples come from :mod:`sft_tilt.harness.medcalc_bench` (generated with the MedCalc-Bench calculators, the
default) or from a user's data file (:mod:`sft_tilt.harness.data_files`). Grading follows MedCalc-Bench: a
prediction is correct when it lies in ``[lower, upper]`` if the example has limits, else within a relative
tolerance of the answer (:func:`answer_is_correct`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

__all__ = [
    "FORMATS",
    "SYSTEM_PROMPT",
    "MedCalcExample",
    "DomainSplits",
    "parse_answer",
    "answer_is_correct",
    "is_correct",
]

FORMATS = ("cot", "label")

#: The system message of every domain conversation (short, so a chain-of-thought example fits the window).
SYSTEM_PROMPT = "You are a clinical calculator."


@dataclass(frozen=True)
class MedCalcExample:
    """One problem: the prompt (note + question), both response formats and the numeric answer."""

    calculator: str
    inputs: tuple  # sorted (name, value) pairs: the identity of the problem
    prompt: str
    response_cot: str
    response_label: str
    answer: float  # NaN when the example has no numeric answer (a date, a data file's row without one)
    unit: str
    patient: int = -1  # the generated patient (-1: from a data file)
    lower: float | None = None  # MedCalc-Bench's answer limits, when known
    upper: float | None = None

    def response(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        return self.response_cot if fmt == "cot" else self.response_label


@dataclass(frozen=True)
class DomainSplits:
    """Disjoint train and held-out problems (no patient and no prompt in both), and optionally problems of
    calculators never trained on (``unseen``)."""

    train: tuple[MedCalcExample, ...]
    heldout: tuple[MedCalcExample, ...]
    seed: int = field(default=0)
    unseen: tuple[MedCalcExample, ...] = ()


# ----------------------------------------------------------------------------- grading

_ANSWER_RE = re.compile(r"Answer:\s*(-?\d+(?:\.\d+)?)")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def answer_start(response: str) -> int | None:
    """Where the final answer's text begins in ``response``: just after the last ``Answer:`` and the spaces after
    it; None when the response has no ``Answer:`` followed by text (it cannot be graded by its answer tokens)."""
    at = response.rfind("Answer:")
    if at < 0:
        return None
    start = at + len("Answer:")
    while start < len(response) and response[start] == " ":
        start += 1
    return start if response[start:].strip() else None


def parse_answer(text: str) -> float | None:
    """The number after the last ``Answer:``; failing that, the last number in ``text``; else None."""
    found = _ANSWER_RE.findall(text)
    if found:
        return float(found[-1])
    numbers = _NUMBER_RE.findall(text)
    return float(numbers[-1]) if numbers else None


def is_correct(predicted: float | None, example: MedCalcExample, rel_tol: float = 0.05) -> bool:
    """Whether ``predicted`` answers ``example``: inside ``[lower, upper]`` when the example has both limits,
    else :func:`answer_is_correct` against its answer (False when it has no numeric answer)."""
    if example.lower is not None and example.upper is not None:
        return predicted is not None and math.isfinite(predicted) and example.lower <= predicted <= example.upper
    if not math.isfinite(example.answer):
        return False
    return answer_is_correct(predicted, example.answer, rel_tol)


def answer_is_correct(predicted: float | None, truth: float, rel_tol: float = 0.05, abs_tol: float = 0.0) -> bool:
    """``|predicted - truth| <= max(rel_tol |truth|, abs_tol)`` (MedCalc-Bench style tolerance)."""
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError(f"rel_tol/abs_tol: must be non-negative, got {rel_tol}, {abs_tol}")
    if predicted is None or not math.isfinite(predicted):
        return False
    return abs(predicted - truth) <= max(rel_tol * abs(truth), abs_tol)
