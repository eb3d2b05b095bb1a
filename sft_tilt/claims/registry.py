"""Registry of claim checks: which claim, in which setting, from which group of experiments.

A check is a function ``() -> Verdict`` registered with :func:`check` under a claim number of
:mod:`sft_tilt.claims.table`, a setting ("exact (float64 numerics)", "synthetic", "real LM (...)"), the figure group
whose experiments it reads (``theory``, ``synthetic``, ``real_lm``), the figures that draw the same
experiments and, for a real-LM check, the preset it is decided on (named in the registration, never chosen from what
is stored). It gathers measurements from stored experiment results and hands them to a pure decision rule of its
claim module; the verdict is computed, never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable

from sft_tilt.claims.table import CLAIMS_BY_NUMBER

__all__ = ["VERDICTS", "GROUPS", "THRESHOLD_SCALES", "NO_THRESHOLD", "Verdict", "ClaimCheck", "CHECKS", "check",
           "select_checks", "run_checks", "sensitivity", "rule_of"]

VERDICTS = ("holds", "fails", "partly holds", "inconclusive")
GROUPS = ("theory", "synthetic", "real_lm")
# every thresholded rule is also evaluated with its thresholds halved and doubled; a verdict that changes there
# rests on the choice of threshold, not on the measurement
THRESHOLD_SCALES = (0.5, 2.0)
NO_THRESHOLD = "no threshold"


@dataclass(frozen=True)
class Verdict:
    """Outcome of checking one claim in one setting: the verdict, the measured numbers in words, and the
    command that reproduces them."""

    verdict: str  # one of VERDICTS
    evidence: str
    command: str
    ours: str = "-"  # the decisive number(s), with their 95% interval where there are seeds
    seeds: str = "-"  # how many seeds (paired where a comparison is)
    rule: str = "-"  # the decision rule in words
    sensitivity: str = NO_THRESHOLD  # "verdict at half / verdict at double the thresholds"

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: {self.verdict!r} is not one of {VERDICTS}")


@dataclass(frozen=True)
class ClaimCheck:
    number: int
    setting: str
    group: str  # the figure group whose experiments the check reads
    check: Callable[[], Verdict]
    figures: tuple[str, ...] = field(default=())  # figures drawn from the same experiments
    preset: str | None = None  # the real-LM preset the check is decided on (sft_tilt.harness.presets), as named


CHECKS: list[ClaimCheck] = []


def check(number: int, setting: str, group: str, figures: Iterable[str] = (), preset: str | None = None) -> Callable:
    """Decorator registering ``fn() -> Verdict`` for claim ``number`` in ``setting``; a real-LM check names the preset
    it is decided on (``preset``, a key of ``sft_tilt.harness.presets.PRESETS``), no other check does."""
    if number not in CLAIMS_BY_NUMBER:
        raise ValueError(f"number: claim {number} is not in sft_tilt.claims.table (1-{len(CLAIMS_BY_NUMBER)})")
    if group not in GROUPS:
        raise ValueError(f"group: {group!r} is not one of {GROUPS}")
    if (group == "real_lm") != (preset is not None):
        raise ValueError(f"preset: a real-LM check names the preset it is decided on, no other check does "
                         f"(group {group!r}, preset {preset!r})")
    if preset is not None:
        from sft_tilt.harness.presets import PRESETS

        if preset not in PRESETS:
            raise ValueError(f"preset: unknown preset {preset!r}; known {sorted(PRESETS)}")

    def register(fn: Callable[[], Verdict]) -> Callable[[], Verdict]:
        if any(c.number == number and c.setting == setting for c in CHECKS):
            raise ValueError(f"setting: claim {number} already has a check in setting {setting!r}")
        CHECKS.append(ClaimCheck(number=number, setting=setting, group=group, check=fn, figures=tuple(figures),
                                 preset=preset))
        return fn

    return register


def select_checks(groups: Iterable[str] | None = None, figures: Iterable[str] = ()) -> list[ClaimCheck]:
    """The checks of any of ``groups`` (every check when ``groups`` is None) plus those reading the same
    experiments as one of ``figures``, in claim order."""
    figures = set(figures)
    chosen = [c for c in CHECKS if (groups is None or c.group in set(groups)) or figures & set(c.figures)]
    return sorted(chosen, key=lambda c: (c.number, c.setting))


def sensitivity(decide: Callable[..., tuple[str, str]], m, scales: Iterable[float] = THRESHOLD_SCALES) -> str:
    """The verdicts of ``decide(m, threshold_scale=s)`` for each scale, joined as "holds / fails"."""
    return " / ".join(decide(m, threshold_scale=s)[0] for s in scales)


def rule_of(decide: Callable) -> str:
    """The decision rule in words: the first paragraph of ``decide``'s docstring."""
    return " ".join((decide.__doc__ or "-").strip().split("\n\n")[0].split())


def run_checks(checks: Iterable[ClaimCheck], progress: bool = True) -> dict[tuple[int, str], Verdict | Exception]:
    """Run ``checks``; an exception is recorded as that row's result, not raised."""
    results: dict[tuple[int, str], Verdict | Exception] = {}
    for c in checks:
        try:
            results[(c.number, c.setting)] = c.check()
        except Exception as exc:  # a failing check must show up in the report, not hide the others
            results[(c.number, c.setting)] = exc
        if progress:
            res = results[(c.number, c.setting)]
            status = res.verdict if isinstance(res, Verdict) else f"error: {res!r}"
            print(f"  claim {c.number:2d} [{c.setting}]: {status}", flush=True)
    return results
