"""The claim table, the check registry and paper_checks.md (render, read back, partial rewrite)."""

import pytest

import sft_tilt.claims
from sft_tilt.claims import CLAIM_TABLE, Verdict, read_rows, render_paper_checks, write_paper_checks


@pytest.fixture(autouse=True)
def _no_methods_sweep(fixed_method_table):
    return fixed_method_table


def test_the_table_holds_the_18_claims_with_section_wording_and_measurement():
    assert [c.number for c in CLAIM_TABLE] == list(range(1, 19))
    for c in CLAIM_TABLE:
        assert c.section and len(c.wording) > len(c.title) // 2 and c.measured


def test_every_claim_gets_a_row_even_when_unchecked_and_the_text_cites_the_table():
    text = render_paper_checks({})
    rows = [line for line in text.split("## The claims")[0].splitlines() if line.startswith("| ") and not line.startswith("| #")]
    assert [int(r.split("|")[1]) for r in rows] == list(range(1, 19))
    assert all("not yet checked" in r for r in rows)
    assert "sft_tilt/claims/table.py" in text and "shared" + "/" not in text and "issue" not in text.lower()
    section = text.split("## Every method against SFT at matched gain")[1]
    assert "| TALR (mean 1) (talr, weights mean one) |" in section and "**less** | not reached |" in section


def test_a_failing_verdict_and_a_crashed_check_are_both_reported():
    text = render_paper_checks({(3, "synthetic"): Verdict("fails", "slope ratio 2.1 (expected 4)", "python -m sft_tilt.figures x"),
                                (4, "synthetic"): RuntimeError("boom")})
    assert "**fails**" in text and "slope ratio 2.1" in text
    assert "error" in text and "RuntimeError: boom" in text


def test_rows_read_back_exactly_including_pipes():
    results = {(2, "exact"): Verdict("partly holds", "KL(P||q) and |x| <= 1", "python -m sft_tilt.figures all --group theory"),
               (7, "real LM (x)"): Verdict("fails", "a  b", "cmd")}
    rows = read_rows(render_paper_checks(results))
    assert rows[(2, "exact")].measured == "KL(P||q) and |x| <= 1" and rows[(2, "exact")].verdict == "partly holds"
    assert rows[(2, "exact")].command == "python -m sft_tilt.figures all --group theory"
    assert rows[(7, "real LM (x)")].measured == "a b"  # whitespace is collapsed when rendered
    assert render_paper_checks(rows) == render_paper_checks(results | {(7, "real LM (x)"): Verdict("fails", "a b", "cmd")})


def test_partial_write_keeps_other_rows_and_a_full_write_drops_stale_ones(tmp_path):
    path = tmp_path / "paper_checks.md"
    write_paper_checks(path, {(1, "exact"): Verdict("holds", "old", "c"), (5, "synthetic"): Verdict("holds", "five", "c"),
                              (7, "real LM (a setting no check has)"): Verdict("holds", "orphan", "c")},
                       keep_other_rows=False)
    write_paper_checks(path, {(1, "exact"): Verdict("fails", "new", "c")}, keep_other_rows=True)
    rows = read_rows(path.read_text())
    assert rows[(1, "exact")].measured == "new" and rows[(5, "synthetic")].measured == "five"
    assert (7, "real LM (a setting no check has)") not in rows  # a kept row must belong to a registered check
    write_paper_checks(path, {(1, "exact"): Verdict("holds", "newer", "c")}, keep_other_rows=False)
    assert set(read_rows(path.read_text())) == {(1, "exact")}


def test_verdict_and_registration_reject_unknown_words_numbers_groups_and_duplicates():
    with pytest.raises(ValueError, match="verdict"):
        Verdict("probably", "x", "y")
    with pytest.raises(ValueError, match="number"):
        sft_tilt.claims.check(19, "synthetic", "synthetic")
    with pytest.raises(ValueError, match="group"):
        sft_tilt.claims.check(3, "synthetic", "bogus")
    with pytest.raises(ValueError, match="already"):
        sft_tilt.claims.check(3, "synthetic", "synthetic")(lambda: None)


def test_every_registered_check_has_a_claim_module_with_pure_rules():
    import importlib

    modules = {c.check.__module__ for c in sft_tilt.claims.CHECKS}
    assert len(sft_tilt.claims.CHECKS) == 28 and len(modules) == 18
    for name in modules:
        mod = importlib.import_module(name)
        assert any(n.startswith("decide") for n in vars(mod)), name
        assert (mod.__doc__ or "").strip(), name


def test_selection_by_group_and_by_figure():
    synthetic = sft_tilt.claims.select_checks(["synthetic"])
    assert {c.group for c in synthetic} == {"synthetic"} and sorted({c.number for c in synthetic}) == [3, 4, 5, 7, 10, 13, 14, 16, 17, 18]
    by_figure = sft_tilt.claims.select_checks([], figures=["synthetic_matched_gain"])
    assert sorted(c.number for c in by_figure) == [3, 4, 5]
    assert len(sft_tilt.claims.select_checks(None)) == len(sft_tilt.claims.CHECKS)


def test_paper_number_interval_seeds_rule_and_threshold_columns_render_and_read_back():
    v = Verdict("inconclusive", "evidence", "cmd", ours="D diff +0.01 [-0.1, +0.12] (n = 2)", seeds="2 paired",
                rule="holds when the interval lies above 0", sensitivity="inconclusive / inconclusive")
    text = render_paper_checks({(12, "real LM (x)"): v})
    assert "+0.024 domain / −0.311 general" in text and "at ½× / 2× threshold" in text
    row = read_rows(text)[(12, "real LM (x)")]
    assert (row.ours, row.seeds, row.rule, row.sensitivity) == (v.ours, v.seeds, v.rule, v.sensitivity)
    assert render_paper_checks(read_rows(text)) == text


def test_sensitivity_evaluates_the_rule_at_half_and_double_threshold():
    from sft_tilt.claims.registry import rule_of, sensitivity

    def decide(m, threshold_scale=1.0):
        """Holds when m exceeds 1 (scaled).

        More words."""
        return ("holds" if m > threshold_scale else "fails"), ""

    assert sensitivity(decide, 1.5) == "holds / fails"
    assert rule_of(decide) == "Holds when m exceeds 1 (scaled)."
