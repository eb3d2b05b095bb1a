"""``paper_checks.md``: a summary table of every claim's verdicts, then one section per claim, rendered from the
stored verdicts of :mod:`sft_tilt.claims.verdict_records`.

The page opens with one line per claim of :mod:`sft_tilt.claims.table`: the claim in short, its verdict in each
setting (exact, synthetic, real LM), each linking to its section, and the deciding number of the setting closest to
the paper. Each claim's section holds the full wording, and per setting the deciding numbers, the decision rule,
the verdict at half and double the rule's thresholds, the evidence, the command that reproduces it and the figures
drawn from the same experiments. The measured tables (:data:`MEASURED_SECTIONS`) and the TALR variants close it.
No table cell is longer than :data:`MAX_CELL` characters: long text goes into the sections.

:func:`write_paper_checks` stores a run's results beside the page and re-renders it; a partial run replaces only
the checks and tables it recomputed (:func:`sft_tilt.claims.verdict_records.merge`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from sft_tilt.claims import registry
from sft_tilt.claims.registry import GROUPS, Verdict
from sft_tilt.claims.table import CLAIM_TABLE, Claim
from sft_tilt.claims.verdict_records import (ERROR, CheckRecord, StoredChecks, merge, read_stored, record_of, records_path,
                                             write_stored)
from sft_tilt.store import atomic_write_bytes

__all__ = ["MAX_CELL", "FIGURE_FOLDER", "NOT_CHECKED", "MeasuredSection", "MEASURED_SECTIONS", "select_sections",
           "compute_sections", "summary_cells", "render_paper_checks", "stored_beside", "write_paper_checks"]

#: The longest table cell the page may hold (characters of its Markdown source).
MAX_CELL = 200
#: Where ``python -m sft_tilt.figures`` (``make figures``) writes the PNGs, relative to the repository root (the
#: folder of ``paper_checks.md``): ``sft_tilt.figures.DEFAULT_OUT_DIR``. The figures are drawn, not committed.
FIGURE_FOLDER = "sft_tilt/figures/out"
NOT_CHECKED = "not yet checked"
GROUP_LABELS = {"theory": "exact", "synthetic": "synthetic", "real_lm": "real LM"}
#: The setting whose deciding number the summary shows: the one closest to the paper's own (a fine-tuned LM).
SUMMARY_PREFERENCE = ("real_lm", "synthetic", "theory")
KIND_LABELS = {"exact": "A mathematical statement of the paper, checked exactly",
               "paper": "The paper's claim",
               "prediction": "A prediction of the tilt model that the paper does not state"}


@dataclass(frozen=True)
class MeasuredSection:
    """A table of the page computed from experiments rather than decided: recomputed by the runs of its ``group``
    or of one of its ``figures`` (the figures drawn from the same experiments), kept as stored otherwise."""

    name: str
    title: str
    group: str
    figures: tuple[str, ...]
    render: Callable[[], list[str]]


def _method_table() -> list[str]:
    from sft_tilt.claims.method_comparison_table import render_method_table

    return render_method_table()


def _accuracy_table() -> list[str]:
    from sft_tilt.claims.real_lm_accuracy_table import render_accuracy_table

    return render_accuracy_table()


MEASURED_SECTIONS: tuple[MeasuredSection, ...] = (
    MeasuredSection("methods_against_sft", "Every method against SFT at matched gain (synthetic)", "synthetic",
                    ("synthetic_methods_pareto",), _method_table),
    MeasuredSection("real_lm_accuracies", "Accuracies of the real-LM learning-rate grid", "real_lm",
                    ("real_lm_accuracy",), _accuracy_table),
)


def select_sections(groups: Iterable[str] | None = None, figures: Iterable[str] = ()) -> list[MeasuredSection]:
    """The measured sections a run recomputes, chosen as :func:`sft_tilt.claims.select_checks` chooses checks: those
    of any of ``groups`` (every one when ``groups`` is None) and those drawn beside one of ``figures``."""
    figures = set(figures)
    return [s for s in MEASURED_SECTIONS if groups is None or s.group in set(groups) or figures & set(s.figures)]


def compute_sections(sections: Iterable[MeasuredSection]) -> dict[str, tuple[str, ...]]:
    """Each section's Markdown lines; a section that raises is stored as its heading and the error, so one broken
    table does not hide the page."""
    out = {}
    for s in sections:
        try:
            out[s.name] = tuple(s.render())
        except Exception as exc:  # shown on the page, like a check that raised
            out[s.name] = ("", f"## {s.title}", "", f"Not computed: {type(exc).__name__}: {exc}")
    return out


# --- text --------------------------------------------------------------------------------------------------------

_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# CommonMark and GitHub read these as emphasis, strikethrough, math or the start of an HTML tag
_SPECIAL = re.compile(r"([*~$\\]|<(?=[A-Za-z/!?]))")


def _flat(text: str) -> str:
    return " ".join(str(text).split())


def _escape(text: str) -> str:
    """``text`` on one line with Markdown's special characters escaped outside code spans (``Δ*`` stays Δ*)."""
    text, out, at = _flat(text), [], 0
    for m in _CODE_SPAN.finditer(text):
        out += [_SPECIAL.sub(r"\\\1", text[at:m.start()]), m.group(0)]
        at = m.end()
    return "".join(out + [_SPECIAL.sub(r"\\\1", text[at:])])


def _cell(text: str) -> str:
    return _escape(text).replace("|", "\\|")


def _clause_cuts(text: str) -> list[int]:
    """Positions of "; " and ", " outside brackets: where a list of numbers with intervals can be cut."""
    depth, cuts = 0, []
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth = max(0, depth - 1)
        elif depth == 0 and text.startswith(("; ", ", "), i):
            cuts.append(i)
    return cuts


def _shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its longest run of whole clauses that does, then " …"."""
    text = _flat(text)
    if len(text) <= limit:
        return text
    room = limit - 2
    if room <= 0:
        return "…"
    fitting = [i for i in _clause_cuts(text) if 0 < i <= room]
    cut = fitting[-1] if fitting else text.rfind(" ", 0, room)
    return text[:cut if cut > 0 else room].rstrip(" ,;") + " …"


def _fit_cell(prefix: str, text: str, size: int = MAX_CELL) -> str:
    """``prefix`` and as much of ``text`` as keeps the escaped cell within ``size`` characters."""
    limit = size - len(prefix)
    while limit > 0:
        cell = prefix + _cell(_shorten(text, limit))
        if len(cell) <= size:
            return cell
        limit -= len(cell) - size  # escaping lengthened it: cut the text by as much
    return prefix + "…"


# --- anchors and order ---------------------------------------------------------------------------------------------

def _claim_anchor(number: int) -> str:
    return f"claim-{number}"


def _ordered(records: Iterable[CheckRecord]) -> list[CheckRecord]:
    return sorted(records, key=lambda r: (r.number, GROUPS.index(r.group), r.setting))


def _anchors(records: list[CheckRecord]) -> dict[tuple[int, str], str]:
    """``claim-3-real-lm``; a second setting of the same claim and group gets ``-2``, and so on."""
    out, seen = {}, {}
    for r in _ordered(records):
        base = f"claim-{r.number}-{GROUP_LABELS[r.group].lower().replace(' ', '-')}"
        seen[base] = seen.get(base, 0) + 1
        out[r.key] = base if seen[base] == 1 else f"{base}-{seen[base]}"
    return out


def _verdict_text(verdict: str) -> str:
    return verdict if verdict == ERROR else f"**{verdict}**"


# --- the summary ---------------------------------------------------------------------------------------------------

def summary_cells(claim: Claim, records: list[CheckRecord], anchors: dict[tuple[int, str], str]) -> list[str]:
    """The summary row of ``claim``: number, short statement, the verdict per setting group, the deciding number."""
    number = f"[{claim.number}](#{_claim_anchor(claim.number)})"
    if not records:
        return [number, _cell(claim.title), "-", "-", "-", NOT_CHECKED]
    verdicts = []
    for group in GROUPS:
        mine = [r for r in records if r.group == group]
        links = [f"[{_verdict_text(r.verdict)}](#{anchors[r.key]})" for r in mine]
        if len(mine) > 1:
            # several settings in one group (two TALR variants): each says which, after the words they share
            common = _common_prefix([r.setting for r in mine])
            room = (MAX_CELL - len("; ".join(links))) // len(mine) - 1
            links = [f"{link} {_fit_cell('', r.setting[common:], room)}" for link, r in zip(links, mine)]
        verdicts.append("; ".join(links) if links else "-")
    deciding = next(r for g in SUMMARY_PREFERENCE for r in records if r.group == g)
    value = deciding.ours if deciding.ours != "-" else (deciding.evidence if deciding.verdict == ERROR else "-")
    return [number, _cell(claim.title), *verdicts, _fit_cell(f"{GROUP_LABELS[deciding.group]}: ", value)]


def _common_prefix(texts: list[str]) -> int:
    """Length of the words (up to a ", ") the ``texts`` share at their start."""
    n = 0
    while n < min(map(len, texts)) and len({t[n] for t in texts}) == 1:
        n += 1
    cut = texts[0].rfind(", ", 0, n + 1)
    return cut + 2 if cut >= 0 else 0


def _counts(records: list[CheckRecord]) -> str:
    parts = []
    for group in GROUPS:
        mine = [r.verdict for r in records if r.group == group]
        if mine:
            tally = ", ".join(f"{mine.count(v)} {v}" for v in (*registry.VERDICTS, ERROR) if v in mine)
            parts.append(f"{GROUP_LABELS[group]} {len(mine)} ({tally})")
    return f"{len(records)} checks of {len({r.number for r in records})} claims: " + "; ".join(parts) + "."


# --- the sections --------------------------------------------------------------------------------------------------

def _figure_lines(record: CheckRecord) -> list[str]:
    if not record.figures:
        return ["No figure is drawn from this check's experiments."]
    return [f"![{name}]({FIGURE_FOLDER}/{name}.png)" for name in record.figures]


def _setting_lines(claim: Claim, record: CheckRecord, anchor: str) -> list[str]:
    lines = [f'<a id="{anchor}"></a>', "",
             f"### Claim {claim.number}, {_escape(record.setting)}: {_verdict_text(record.verdict)}", ""]
    if record.verdict == ERROR:
        return lines + [f"The check raised instead of deciding: {_escape(record.evidence)}", ""]
    command = "-" if record.command == "-" else f"`{_flat(record.command)}`"
    lines += [f"- **Deciding numbers (95% interval):** {_escape(record.ours)}",
              f"- **Seeds:** {_escape(record.seeds)}",
              f"- **Decision rule:** {_escape(record.rule)}",
              f"- **At ½× / 2× the rule's thresholds:** {_escape(record.sensitivity)}",
              f"- **Evidence:** {_escape(record.evidence)}",
              f"- **Reproduce:** {command}", ""]
    return lines + _figure_lines(record) + [""]


def _claim_lines(claim: Claim, records: list[CheckRecord], anchors: dict[tuple[int, str], str]) -> list[str]:
    lines = [f'<a id="{_claim_anchor(claim.number)}"></a>', "", f"## Claim {claim.number}: {_escape(claim.title)}", "",
             f"{KIND_LABELS[claim.kind]} ({_escape(claim.section)}): {_escape(claim.wording)}", "",
             f"What is measured: {_escape(claim.measured)}", ""]
    if claim.paper_number != "-":
        lines += [f"The paper's numbers: {_escape(claim.paper_number)}", ""]
    if not records:
        return lines + ["Not yet checked: no check of this claim is stored.", ""]
    for r in records:
        lines += _setting_lines(claim, r, anchors[r.key])
    return lines


_INTRO = [
    "# Paper checks",
    "",
    "Each claim of *SFT Doesn't Always Hurt General Capabilities* (Lin et al., ICLR 2026), numbered and worded as in",
    "`sft_tilt/claims/table.py`, checked in up to three settings: exact (float64 numerics and symbolic derivations),",
    "synthetic (small simulated worlds) and real LM (SmolLM2-135M fine-tuned by the harness). The summary gives each",
    "setting's verdict, linking to its section, and the deciding number of the setting closest to the paper (real LM,",
    "else synthetic, else exact), cut at a clause (…) when long; each section has the rule, all the numbers, the",
    "verdict with the rule's thresholds halved and doubled, the evidence, the command that reproduces it and the figure.",
    "",
    "Verdicts: **holds**, **partly holds**, **fails**, **inconclusive**. Comparisons over seeds are paired (same seed,",
    "two methods or learning rates) and decided by the 95% Student-t interval of the paired difference: a verdict is",
    "inconclusive when that interval crosses the decision boundary (t = 4.3 with 3 seeds, 2.8 with 5: few seeds give",
    "wide intervals). A real-LM setting names the preset and scale it was decided at. D = general degradation (general",
    "loss change), G = domain gain, Δ* = matched domain gain, λ = step size.",
    "",
    "Generated by `python -m sft_tilt.figures all` (`make figures`) from the verdicts stored in `paper_checks.json`; do",
    "not edit by hand. `python -m sft_tilt.figures all --group G` and `python -m sft_tilt.figures NAME...` replace only",
    "the checks and tables they recomputed. The figures are drawn into `" + FIGURE_FOLDER + "/` by the same commands and",
    "are not committed: the images show once they have run.",
    "",
]


def render_paper_checks(stored: StoredChecks) -> str:
    """The page for ``stored``: a function of the stored records and tables and of the code (claim table, TALR
    variants) only, so the same store always renders the same bytes."""
    from sft_tilt.claims.talr_variants import render_variants

    records = _ordered(stored.records.values())
    anchors = _anchors(records)
    by_claim = {c.number: [r for r in records if r.number == c.number] for c in CLAIM_TABLE}
    lines = _INTRO + ["## Summary", "", _counts(records) if records else "No check is stored yet.", "",
                      "| # | claim, in short | exact | synthetic | real LM | deciding number (95% interval) |",
                      "|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(summary_cells(c, by_claim[c.number], anchors)) + " |" for c in CLAIM_TABLE]
    lines.append("")
    for c in CLAIM_TABLE:
        lines += _claim_lines(c, by_claim[c.number], anchors)
    lines += render_variants()
    for s in MEASURED_SECTIONS:
        lines += stored.sections.get(s.name, ("", f"## {s.title}", "", f"{NOT_CHECKED.capitalize()}: run "
                                              f"`python -m sft_tilt.figures {s.figures[0]}`."))
    lines.append("")
    return "\n".join(lines)


def stored_beside(path: Path) -> StoredChecks:
    """The verdicts stored beside the page ``path`` (none when neither exists). A page without its store is refused:
    a partial run could not keep that page's other verdicts, and would silently drop them."""
    path, store = Path(path), records_path(path)
    if path.exists() and not store.exists():
        raise ValueError(f"path: {path} exists but its stored verdicts {store} do not, so a partial run cannot keep the "
                         "page's other checks; rewrite both with a full run (python -m sft_tilt.figures all)")
    return read_stored(store)


def write_paper_checks(path: Path, results: dict[tuple[int, str], Verdict | Exception], *, keep_other_rows: bool,
                       sections: dict[str, tuple[str, ...]] | None = None) -> str:
    """Store ``results`` (by ``(number, setting)`` of registered checks) and the recomputed ``sections`` in
    ``paper_checks.json`` beside ``path``, then rewrite the page ``path`` from the store; return the page.

    With ``keep_other_rows`` every stored record and table this run did not recompute is kept as it was
    (:func:`sft_tilt.claims.verdict_records.merge`); a full run, which ran every check, passes False and the store
    holds this run's results only."""
    checks = {(c.number, c.setting): c for c in registry.CHECKS}
    unknown = [k for k in results if k not in checks]
    if unknown:
        raise ValueError(f"results: no registered check has claim and setting {unknown}")
    path = Path(path)
    store = records_path(path)
    known = {s.name for s in MEASURED_SECTIONS}
    sections = dict(sections or {})
    if set(sections) - known:
        raise ValueError(f"sections: unknown {sorted(set(sections) - known)}; known {sorted(known)}")
    stored = stored_beside(path) if keep_other_rows else StoredChecks({}, {})
    merged = merge(stored, [record_of(checks[k], r) for k, r in results.items()], sections,
                   registered=checks, full=not keep_other_rows)
    merged = StoredChecks(merged.records, {k: v for k, v in merged.sections.items() if k in known})
    text = render_paper_checks(merged)
    write_stored(store, merged)
    atomic_write_bytes(path, text.encode("utf-8"))
    return text
