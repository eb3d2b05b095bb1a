"""The committed paper_checks.md is what the code renders from the committed verdicts (paper_checks.json), and those
verdicts belong to the registered checks as the code states them now.

Regenerating the verdicts themselves means rerunning the experiments (the synthetic sweeps and the real-LM results:
tens of minutes without a cache), which a test cannot afford. So the page is split: everything the code states (the
structure, the claim table, the TALR variants, the decision rules' wording, which figures a check draws) is checked
exactly against the code, and the measured part (verdicts, numbers, evidence) comes from the stored records, which
only a run of the checks writes.
"""

import importlib
import re
from pathlib import Path

import pytest

import sft_tilt.claims
from sft_tilt.claims import read_stored, records_path, render_paper_checks
from sft_tilt.claims.registry import rule_of
from sft_tilt.claims.report import FIGURE_FOLDER, MAX_CELL
from sft_tilt.store import CHECKOUT_ROOT

PAGE = Path(CHECKOUT_ROOT) / "paper_checks.md"
REGENERATE = "regenerate with `python -m sft_tilt.figures all` (or the group whose checks changed)"


@pytest.fixture(scope="module")
def stored():
    return read_stored(records_path(PAGE))


def test_the_committed_page_is_what_the_stored_verdicts_render_to(stored):
    assert PAGE.read_text(encoding="utf-8") == render_paper_checks(stored), f"paper_checks.md is stale: {REGENERATE}"


def test_every_registered_check_has_its_stored_verdict_and_no_other_is_stored(stored):
    registered = {(c.number, c.setting) for c in sft_tilt.claims.CHECKS}
    # SFT_REAL_LM_PRESET, or a results folder without the committed runs, registers the real-LM checks under other
    # settings: the committed page is the one of the committed results
    assert set(stored.records) == registered, f"stored and registered checks differ: {REGENERATE}"
    for c in sft_tilt.claims.CHECKS:
        r = stored.records[(c.number, c.setting)]
        assert (r.group, r.figures) == (c.group, tuple(c.figures)), (c.number, c.setting)


def test_every_stored_rule_is_the_rule_its_check_decides_by_today(stored):
    """A rule's wording is its decide function's docstring: a stored rule that matches none of its module's decision
    rules was decided by a rule the code no longer has."""
    stale = []
    for c in sft_tilt.claims.CHECKS:
        module = importlib.import_module(c.check.__module__)
        rules = {rule_of(f) for name, f in vars(module).items() if name.startswith("decide") and callable(f)}
        if stored.records[(c.number, c.setting)].rule not in rules:
            stale.append((c.number, c.setting))
    assert stale == [], f"stored rules differ from the code's: {REGENERATE}"


def test_the_page_opens_with_the_summary_and_no_table_cell_is_long():
    text = PAGE.read_text(encoding="utf-8")
    first_table = next(line for line in text.splitlines() if line.startswith("|"))
    assert first_table.startswith("| # | claim, in short |") and text.index("## Summary") < text.index("## Claim 1:")
    cells = [c.strip() for line in text.splitlines() if line.startswith("|")
             for c in re.split(r"(?<!\\)\|", line)[1:-1]]
    assert cells and max(map(len, cells)) <= MAX_CELL


def test_every_link_of_the_page_leads_somewhere():
    """Anchor links to an anchor of the page; images to a registered figure in the folder the figures are drawn to."""
    from sft_tilt.figures import FIGURES

    text = PAGE.read_text(encoding="utf-8")
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', text))
    links = set(re.findall(r"\]\(#([^)]+)\)", text))
    assert links and links <= anchors
    images = re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", text)
    assert images and all(path == f"{FIGURE_FOLDER}/{name}.png" and name in FIGURES for name, path in images)
