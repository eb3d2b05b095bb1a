"""The stored verdicts ``paper_checks.md`` is rendered from: ``paper_checks.json`` beside it.

Deciding every claim again takes the synthetic sweeps and the real-LM results (tens of minutes without a cache),
so the page is not recomputed each time it is written. What a check found is kept as a :class:`CheckRecord` (the
verdict, the deciding numbers, the evidence, the rule it was decided by, ...) and each measured table of the page
as its Markdown lines, in one JSON file; the page is a function of that file and the code alone (the claim table,
the TALR variants), so a test can regenerate it exactly without running an experiment.

A run replaces only what it recomputed (:func:`merge`): the records of the checks it ran and the tables it drew.
Every other record is kept as stored, whatever the environment of the run: a stored real-LM record whose setting
names a preset that this environment would not read (``SFT_REAL_LM_PRESET`` set to another preset, or a results
folder without the committed runs) is still the stored outcome of that check. It is replaced only when the run
recomputed the same claim in the same group under its own setting, and dropped only by a full run, which
rewrites the file from every registered check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable

from sft_tilt.claims.registry import GROUPS, VERDICTS, ClaimCheck, Verdict
from sft_tilt.claims.table import CLAIMS_BY_NUMBER
from sft_tilt.store import atomic_write_bytes

__all__ = ["FORMAT", "ERROR", "CheckRecord", "StoredChecks", "record_of", "records_path", "read_stored",
           "write_stored", "merge"]

#: The first field of the file; a file of another format is refused, not guessed at.
FORMAT = "sft_tilt paper checks, version 1"
#: The verdict of a check that raised instead of deciding.
ERROR = "error"


@dataclass(frozen=True)
class CheckRecord:
    """One check's outcome as stored: claim ``number`` in ``setting``, the ``group`` of experiments it reads, the
    :class:`Verdict` fields, and the ``figures`` drawn from the same experiments."""

    number: int
    setting: str
    group: str
    verdict: str  # one of VERDICTS, or ERROR when the check raised
    evidence: str
    command: str
    ours: str = "-"
    seeds: str = "-"
    rule: str = "-"
    sensitivity: str = "-"
    figures: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[int, str]:
        return self.number, self.setting


@dataclass(frozen=True)
class StoredChecks:
    """Everything ``paper_checks.md`` shows that was measured: the check records by ``(number, setting)`` and the
    measured tables' Markdown lines by section name."""

    records: dict[tuple[int, str], CheckRecord]
    sections: dict[str, tuple[str, ...]]


def record_of(check: ClaimCheck, result: Verdict | Exception) -> CheckRecord:
    """The record of ``check``'s ``result``; an exception is recorded with the verdict ``"error"`` and its message
    as the evidence, so a broken check shows on the page instead of hiding the others."""
    base = {"number": check.number, "setting": check.setting, "group": check.group, "figures": tuple(check.figures)}
    if isinstance(result, Exception):
        return CheckRecord(verdict=ERROR, evidence=f"{type(result).__name__}: {result}", command="-", **base)
    if not isinstance(result, Verdict):
        raise TypeError(f"result: claim {check.number} [{check.setting}] gave {type(result).__name__}, not a Verdict")
    return CheckRecord(verdict=result.verdict, evidence=result.evidence, command=result.command, ours=result.ours,
                       seeds=result.seeds, rule=result.rule, sensitivity=result.sensitivity, **base)


def records_path(paper_checks: Path) -> Path:
    """``paper_checks.json`` beside the page ``paper_checks.md``."""
    return Path(paper_checks).with_suffix(".json")


_STR_FIELDS = tuple(f.name for f in fields(CheckRecord) if f.name not in ("number", "figures"))
_FIELDS = {f.name for f in fields(CheckRecord)}


def _no_duplicate_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        raise ValueError(f"duplicated key(s) {duplicated}")
    return dict(pairs)


def _record_from(obj: object, where: str) -> CheckRecord:
    if not isinstance(obj, dict) or set(obj) != _FIELDS:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{where}: expected an object with the fields {sorted(_FIELDS)}, got {got}")
    number = obj["number"]
    if type(number) is not int or number not in CLAIMS_BY_NUMBER:
        raise ValueError(f"{where}.number: {number!r} is not a claim number of sft_tilt.claims.table")
    for name in _STR_FIELDS:
        if not isinstance(obj[name], str):
            raise ValueError(f"{where}.{name}: expected text, got {type(obj[name]).__name__}")
    if obj["group"] not in GROUPS:
        raise ValueError(f"{where}.group: {obj['group']!r} is not one of {GROUPS}")
    if obj["verdict"] not in VERDICTS + (ERROR,):
        raise ValueError(f"{where}.verdict: {obj['verdict']!r} is not one of {VERDICTS + (ERROR,)}")
    figures = obj["figures"]
    if not isinstance(figures, list) or not all(isinstance(f, str) for f in figures):
        raise ValueError(f"{where}.figures: expected a list of figure names")
    return CheckRecord(**{**obj, "figures": tuple(figures)})


def read_stored(path: Path) -> StoredChecks:
    """The records and tables stored at ``path`` (nothing stored when the file does not exist). The file is read
    as data: every field is checked, and a malformed file raises ``ValueError`` naming the path and the field."""
    path = Path(path)
    if not path.exists():
        return StoredChecks({}, {})
    try:
        data = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not the JSON of stored paper checks ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"format", "checks", "sections"} or data["format"] != FORMAT:
        raise ValueError(f"{path}: expected an object with format {FORMAT!r}, checks and sections")
    if not isinstance(data["checks"], list):
        raise ValueError(f"{path}: checks: expected a list")
    records: dict[tuple[int, str], CheckRecord] = {}
    for i, obj in enumerate(data["checks"]):
        try:
            record = _record_from(obj, f"checks[{i}]")
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        if record.key in records:
            raise ValueError(f"{path}: checks[{i}]: claim {record.number} [{record.setting}] is stored twice")
        records[record.key] = record
    sections = data["sections"]
    if not isinstance(sections, dict) or not all(isinstance(v, list) and all(isinstance(s, str) for s in v)
                                                 for v in sections.values()):
        raise ValueError(f"{path}: sections: expected an object of lists of lines")
    return StoredChecks(records, {name: tuple(lines) for name, lines in sections.items()})


def _order(record: CheckRecord) -> tuple:
    return record.number, GROUPS.index(record.group), record.setting


def write_stored(path: Path, stored: StoredChecks) -> None:
    """Write ``stored`` as indented JSON (records in claim, group and setting order), atomically."""
    checks = [{f.name: (list(getattr(r, f.name)) if f.name == "figures" else getattr(r, f.name)) for f in fields(r)}
              for r in sorted(stored.records.values(), key=_order)]
    data = {"format": FORMAT, "checks": checks, "sections": {k: list(v) for k, v in sorted(stored.sections.items())}}
    atomic_write_bytes(Path(path), (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))


def merge(stored: StoredChecks, records: Iterable[CheckRecord], sections: dict[str, tuple[str, ...]], *,
          registered: Iterable[tuple[int, str]], full: bool) -> StoredChecks:
    """``stored`` with this run's ``records`` and ``sections`` in place of what they recompute.

    A full run (``full``) keeps nothing else: it ran every registered check. Otherwise a stored record is kept
    unless this run recomputed it: the same claim and setting, or the same claim and group when the stored setting
    is one no check of this environment has (``registered``: the ``(number, setting)`` of the registered checks),
    which is how a real-LM check run under another preset replaces its own stored record. Stored tables are kept
    unless recomputed."""
    records = {r.key: r for r in records}
    if full:
        return StoredChecks(records, dict(sections))
    registered = set(registered)
    rerun = {(r.number, r.group) for r in records.values()}
    kept = {k: r for k, r in stored.records.items()
            if k not in records and (k in registered or (r.number, r.group) not in rerun)}
    return StoredChecks({**kept, **records}, {**stored.sections, **sections})
