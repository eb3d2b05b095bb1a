"""The figure registry and the generated paper_checks.md."""

import pytest

from figures._claims import CLAIM_TITLES, Verdict, claim, render_paper_checks
from figures._registry import figure


def test_every_claim_of_section_9_gets_a_row_even_when_unchecked():
    text = render_paper_checks({})
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 19))
    assert all("not yet checked" in r for r in rows)


def test_a_failing_verdict_and_a_crashed_check_are_both_reported():
    results = {
        (3, "synthetic"): Verdict("fails", "slope ratio 2.1 (expected 4)", "python -m figures x"),
        (4, "synthetic"): RuntimeError("boom"),
    }
    text = render_paper_checks(results)
    assert "**fails**" in text and "slope ratio 2.1" in text
    assert "error" in text and "RuntimeError: boom" in text


def test_verdict_rejects_unknown_verdict_word():
    with pytest.raises(ValueError, match="verdict"):
        Verdict("probably", "x", "y")


def test_claim_number_outside_section_9_is_rejected():
    with pytest.raises(ValueError, match="number"):
        claim(19, "synthetic")
    assert set(CLAIM_TITLES) == set(range(1, 19))


def test_registering_a_figure_name_twice_is_rejected():
    figure("_test_dup_figure", "x", "test")(lambda out: {})
    with pytest.raises(ValueError, match="registered twice"):
        figure("_test_dup_figure", "x", "test")(lambda out: {})
