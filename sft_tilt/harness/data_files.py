"""A user's own data: domain problems and general texts read from files, checked row by row.

Domain data (``--domain-data FILE``), by the file's suffix:

* ``.csv``: the MedCalc-Bench format (https://github.com/ncbi-nlp/MedCalc-Bench, ``dataset/*.csv``), columns
  ``Patient Note``, ``Question``, ``Ground Truth Explanation``, ``Ground Truth Answer``, ``Lower Limit``,
  ``Upper Limit``, ``Calculator ID``, ``Output Type`` (others, such as ``Row Number``, are allowed and unused).
  prompt = note + newline + question; CoT target = explanation + ``"\\nAnswer: <answer>"``; label target =
  ``"Answer: <answer>"``. For ``Output Type`` ``decimal`` or ``integer`` the answer and both limits must be numbers
  with ``lower <= upper`` (grading: inside the limits); for ``date`` the answer is kept as text and not graded.
* ``.jsonl``: one JSON object per line (JSON Lines: a line ends at ``"\\n"`` and nowhere else) with ``prompt`` and
  ``response`` (non-empty strings) and optionally ``answer`` (a number) and ``lower`` / ``upper`` (numbers, both or
  neither). CoT target = ``response``; label target = ``"Answer: <answer>"``, or ``response`` itself for a row
  without an answer (the two formats then train on the same text; such rows are not graded).

General data (``--general-data FILE``): ``.jsonl`` with either ``text`` on every line (scored on every token,
like the docs and code sets) or ``prompt`` and ``response`` on every line (scored on the response, like the
self set); it becomes the general set ``"data"``.

Nothing is silently dropped: every malformed row -- a missing or empty field, a number that does not parse, an
unknown field, a key given twice in one JSON object, a JSON syntax error, limits out of order, a CSV quote left
open at the end of the file (a truncated file) -- is listed as ``line L, column C: what`` in one
ValueError (CSV lines are those of the file, so a note spanning lines counts its lines). Blank JSONL lines hold
no row and are skipped. Data text never becomes control tokens: :mod:`sft_tilt.harness.encoding` encodes it with
special-token parsing off.

A :class:`DataFile` carries the file's SHA-256; the run key holds it (and not the path), so an edited file
recomputes and a moved one does not; a file whose content no longer matches its recorded hash is refused.
Splits: problems sharing a patient note (CSV) or prompt (JSONL) are one patient and stay on one side; patients are
shuffled by the data seed, the first ones fill the held-out split, the next ones the training split.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sft_tilt.harness.medcalc import DomainSplits, MedCalcExample

__all__ = ["DataFile", "MEDCALC_BENCH_COLUMNS", "read_domain_file", "read_general_file", "split_examples"]

MEDCALC_BENCH_COLUMNS = ("Patient Note", "Question", "Ground Truth Explanation", "Ground Truth Answer", "Lower Limit",
                         "Upper Limit", "Calculator ID", "Output Type")
_JSONL_DOMAIN_FIELDS = {"prompt", "response", "answer", "lower", "upper"}


@dataclass(frozen=True)
class DataFile:
    """A data file and the SHA-256 of its content when the configuration was made."""

    path: str
    sha256: str

    @classmethod
    def from_path(cls, path, argument: str = "path") -> "DataFile":
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"{argument}: {path} is not a file")
        if p.suffix not in (".csv", ".jsonl"):
            raise ValueError(f"{argument}: {path} must end in .csv (MedCalc-Bench) or .jsonl")
        return cls(str(p.resolve()), hashlib.sha256(p.read_bytes()).hexdigest())

    def read_text(self, argument: str = "path") -> str:
        """The file's text, after checking it still has the recorded hash."""
        data = Path(self.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ValueError(f"{argument}: {self.path} changed since its hash was taken; build the configuration again")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise ValueError(f"{argument}: {self.path} is not UTF-8 ({exc})") from None

    def key_material(self) -> dict:
        return {"sha256": self.sha256}


def _malformed(argument: str, path: str, problems: list[str]):
    shown = problems[:50] + ([f"... and {len(problems) - 50} more"] if len(problems) > 50 else [])
    raise ValueError(f"{argument}: {path}: {len(problems)} malformed row(s):\n  " + "\n  ".join(shown))


def _number(text) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a JSON integer beyond float's range
        return None
    return value if math.isfinite(value) else None


def _csv_problem(exc: csv.Error) -> str:
    """What a ``csv.Error`` of the strict reader means, in the file's terms."""
    if str(exc) == "unexpected end of data":  # the file ends inside a quoted field
        return "a quoted field opened in this row is not closed before the end of the file (is the file cut short?)"
    return str(exc)


def _read_csv(text: str, path: str, argument: str) -> list[MedCalcExample]:
    # strict: a quote left open at the end of the file (a truncated file) or text after a closing quote is an
    # error, not a field that silently runs to the end of the file or absorbs the stray text
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise ValueError(f"{argument}: {path} is empty") from None
    except csv.Error as exc:
        raise ValueError(f"{argument}: {path}: line 1: {_csv_problem(exc)}") from None
    missing = [c for c in MEDCALC_BENCH_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{argument}: {path}: line 1: missing column(s) {missing}; a MedCalc-Bench CSV has {list(MEDCALC_BENCH_COLUMNS)}")
    col = {name: header.index(name) for name in MEDCALC_BENCH_COLUMNS}
    problems: list[str] = []
    out: list[MedCalcExample] = []
    notes: dict[str, int] = {}
    while True:
        line = reader.line_num + 1
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {line}: {_csv_problem(exc)}")
            break
        if not fields:
            continue
        if len(fields) != len(header):
            problems.append(f"line {line}: {len(fields)} fields, the header has {len(header)}")
            continue
        row = {name: fields[i] for name, i in col.items()}
        bad = [f"line {line}, column '{name}': empty" for name in ("Patient Note", "Question", "Ground Truth Explanation",
                                                                   "Ground Truth Answer", "Calculator ID", "Output Type")
               if not row[name].strip()]
        kind = row["Output Type"].strip().lower()
        answer, lower, upper = float("nan"), None, None
        if kind in ("decimal", "integer"):
            answer = _number(row["Ground Truth Answer"])
            lower, upper = _number(row["Lower Limit"]), _number(row["Upper Limit"])
            for name, value in (("Ground Truth Answer", answer), ("Lower Limit", lower), ("Upper Limit", upper)):
                if value is None and row[name].strip():
                    bad.append(f"line {line}, column '{name}': not a number ({row[name]!r})")
                elif value is None:
                    bad.append(f"line {line}, column '{name}': empty")
            if lower is not None and upper is not None and lower > upper:
                bad.append(f"line {line}, column 'Lower Limit': {lower} exceeds the upper limit {upper}")
        elif kind != "date" and row["Output Type"].strip():
            bad.append(f"line {line}, column 'Output Type': {row['Output Type']!r} is not decimal, integer or date")
        if bad:
            problems += bad
            continue
        note, answer_text = row["Patient Note"].strip(), row["Ground Truth Answer"].strip()
        out.append(MedCalcExample(
            calculator=row["Calculator ID"].strip(), inputs=(("line", line),),
            prompt=f"{note}\n{row['Question'].strip()}",
            response_cot=f"{row['Ground Truth Explanation'].strip()}\nAnswer: {answer_text}",
            response_label=f"Answer: {answer_text}", answer=float("nan") if answer is None else answer, unit="",
            patient=notes.setdefault(note, len(notes)), lower=lower, upper=upper))
    if problems:
        _malformed(argument, path, problems)
    return out


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` of the JSONL reader: an object naming a key twice is refused (``json.loads`` would keep
    the last value and drop the first without a word)."""
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _jsonl_rows(text: str, path: str, argument: str, allowed: set[str]):
    """``(line, object)`` per non-blank line, and the problems found (syntax, a key given twice, not an object,
    unknown fields)."""
    rows, problems = [], []
    # JSON Lines separates lines by "\n" alone (a "\r" before it is JSON whitespace); str.splitlines would also cut
    # at U+2028, U+2029, U+0085 and other characters a JSON string may hold raw
    for line, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, object_pairs_hook=_unique_keys)
        except _DuplicateKey as exc:
            problems.append(f"line {line}, column '{exc.key}': the key appears more than once in the object")
            continue
        except json.JSONDecodeError as exc:
            problems.append(f"line {line}, column {exc.colno}: invalid JSON ({exc.msg})")
            continue
        except (ValueError, RecursionError) as exc:  # an integer of too many digits, arrays nested too deeply
            problems.append(f"line {line}, column 1: invalid JSON ({type(exc).__name__}: {str(exc)[:200]})")
            continue
        if not isinstance(obj, dict):
            problems.append(f"line {line}, column 1: expected a JSON object, got {type(obj).__name__}")
            continue
        unknown = sorted(set(obj) - allowed)
        if unknown:
            problems += [f"line {line}, column '{k}': unknown field (expected {sorted(allowed)})" for k in unknown]
            continue
        rows.append((line, obj))
    return rows, problems


def _text_field(obj: dict, name: str, line: int, problems: list[str]) -> str | None:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"line {line}, column '{name}': " + ("missing" if name not in obj else "must be a non-empty string"))
        return None
    try:  # a JSON escape such as "\ud800" gives a lone surrogate: no UTF-8 text, nothing a tokenizer can encode
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        problems.append(f"line {line}, column '{name}': character {exc.start} is U+{ord(value[exc.start]):04X}, a lone "
                        "surrogate (half of a UTF-16 pair), not a character of text")
        return None
    return value


def _read_jsonl_domain(text: str, path: str, argument: str) -> list[MedCalcExample]:
    rows, problems = _jsonl_rows(text, path, argument, _JSONL_DOMAIN_FIELDS)
    out: list[MedCalcExample] = []
    prompts: dict[str, int] = {}
    for line, obj in rows:
        bad: list[str] = []
        prompt, response = _text_field(obj, "prompt", line, bad), _text_field(obj, "response", line, bad)
        numbers = {}
        for name in ("answer", "lower", "upper"):
            if name in obj:
                numbers[name] = _number(obj[name])
                if numbers[name] is None:
                    bad.append(f"line {line}, column '{name}': not a finite number ({obj[name]!r})")
        if ("lower" in obj) != ("upper" in obj):
            bad.append(f"line {line}, column '{'upper' if 'lower' in obj else 'lower'}': lower and upper come together")
        elif numbers.get("lower") is not None and numbers.get("upper") is not None and numbers["lower"] > numbers["upper"]:
            bad.append(f"line {line}, column 'lower': {numbers['lower']} exceeds upper {numbers['upper']}")
        if bad:
            problems += bad
            continue
        answer = numbers.get("answer")
        out.append(MedCalcExample(
            calculator="data", inputs=(("line", line),), prompt=prompt, response_cot=response,
            response_label=response if answer is None else f"Answer: {obj['answer']}",
            answer=float("nan") if answer is None else answer, unit="", patient=prompts.setdefault(prompt, len(prompts)),
            lower=numbers.get("lower"), upper=numbers.get("upper")))
    if problems:
        _malformed(argument, path, problems)
    return out


def read_domain_file(data: DataFile | str | Path, argument: str = "domain_data") -> list[MedCalcExample]:
    """Every row of a MedCalc-Bench CSV or a generic JSONL as an example (module docstring); ValueError listing every
    malformed row by line and column."""
    data = data if isinstance(data, DataFile) else DataFile.from_path(data, argument)
    text = data.read_text(argument)
    rows = _read_csv(text, data.path, argument) if data.path.endswith(".csv") else _read_jsonl_domain(text, data.path, argument)
    if not rows:
        raise ValueError(f"{argument}: {data.path} has no rows")
    return rows


def read_general_file(data: DataFile | str | Path, argument: str = "general_data") -> tuple[list[str], list[tuple[str, str]]]:
    """``(texts, pairs)`` of a general JSONL: one of them is empty (every line has ``text``, or every line has
    ``prompt`` and ``response``); ValueError listing every malformed row."""
    data = data if isinstance(data, DataFile) else DataFile.from_path(data, argument)
    if not data.path.endswith(".jsonl"):
        raise ValueError(f"{argument}: {data.path}: general data must be JSONL (text, or prompt and response)")
    rows, problems = _jsonl_rows(data.read_text(argument), data.path, argument, {"text", "prompt", "response"})
    texts, pairs = [], []
    kind = None
    for line, obj in rows:
        bad: list[str] = []
        this = "text" if "text" in obj else "pair"
        if kind is None:
            kind = this
        if this != kind:
            problems.append(f"line {line}, column '{'text' if this == 'text' else 'prompt'}': the file's first row is "
                            f"{'a text' if kind == 'text' else 'a prompt/response pair'}; rows must be all one kind")
            continue
        if this == "text":
            if set(obj) != {"text"}:
                bad.append(f"line {line}, column '{sorted(set(obj) - {'text'})[0]}': a text row has only 'text'")
            value = _text_field(obj, "text", line, bad)
            if not bad:
                texts.append(value)
        else:
            prompt, response = _text_field(obj, "prompt", line, bad), _text_field(obj, "response", line, bad)
            if not bad:
                pairs.append((prompt, response))
        problems += bad
    if problems:
        _malformed(argument, data.path, problems)
    if not texts and not pairs:
        raise ValueError(f"{argument}: {data.path} has no rows")
    return texts, pairs


def split_examples(examples: list[MedCalcExample], n_train: int, n_heldout: int, seed: int,
                   argument: str = "domain_data") -> DomainSplits:
    """``n_heldout`` held-out and ``n_train`` training examples with no patient on both sides (module docstring)."""
    patients: dict[int, list[MedCalcExample]] = {}
    for ex in examples:
        patients.setdefault(ex.patient, []).append(ex)
    order = [list(patients)[i] for i in np.random.default_rng(seed).permutation(len(patients))]
    heldout: list[MedCalcExample] = []
    train: list[MedCalcExample] = []
    for pid in order:
        (heldout if len(heldout) < n_heldout else train).extend(patients[pid])
    if len(heldout) < n_heldout or len(train) < n_train:
        raise ValueError(f"{argument}: {len(examples)} rows from {len(patients)} patients give {len(heldout)} held-out and "
                         f"{len(train)} training examples; need n_heldout={n_heldout} and n_train={n_train}")
    return DomainSplits(train=tuple(train[:n_train]), heldout=tuple(heldout[:n_heldout]), seed=seed)
