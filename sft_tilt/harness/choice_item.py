"""One multiple-choice question as the harness scores it, whatever its source (the generated families of
:mod:`sft_tilt.harness.general_choice`, the public benchmark of :mod:`sft_tilt.harness.commonsense_qa`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ChoiceItem"]


@dataclass(frozen=True)
class ChoiceItem:
    """One question: ``prompt`` (user turn), its ``choices`` (assistant responses) and the index of the right one."""

    family: str
    prompt: str
    choices: tuple[str, ...]
    answer: int

    def __post_init__(self):
        if not isinstance(self.family, str) or not self.family:
            raise ValueError(f"family: must be a non-empty str, got {self.family!r}")
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError(f"prompt: must be a non-empty str, got {self.prompt!r}")
        if not isinstance(self.choices, tuple) or len(self.choices) < 2:
            raise ValueError(f"choices: need a tuple of >= 2 choices, got {self.choices!r}")
        if any(not isinstance(c, str) or not c for c in self.choices):
            raise ValueError(f"choices: every choice must be a non-empty str, got {self.choices!r}")
        if len(set(self.choices)) != len(self.choices):
            raise ValueError(f"choices: must be distinct, got {self.choices!r}")
        if not isinstance(self.answer, int) or isinstance(self.answer, bool) or not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer: must be an int in [0, {len(self.choices)}), got {self.answer!r}")
