"""The claim table, the check registry, the stored verdicts and the page rendered from them (paper_checks.md)."""

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

import sft_tilt.claims
from sft_tilt.claims import CLAIM_TABLE, Verdict, read_stored, records_path, render_paper_checks, write_paper_checks
from sft_tilt.claims.registry import ClaimCheck
from sft_tilt.claims.report import FIGURE_FOLDER, MAX_CELL, MEASURED_SECTIONS, summary_cells
from sft_tilt.claims.verdict_records import FORMAT, CheckRecord, StoredChecks, merge, record_of, write_stored

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def summary_rows(text: str) -> list[list[str]]:
    lines = text.split("## Summary", 1)[1].split("\n<a id=", 1)[0].splitlines()
    return [[c.strip() for c in _UNESCAPED_PIPE.split(line)[1:-1]] for line in lines if line.startswith("| [")]


def record(number=3, setting="synthetic", group="synthetic", verdict="holds", **fields):
    return CheckRecord(number=number, setting=setting, group=group, verdict=verdict,
                       evidence=fields.pop("evidence", "evidence"), command=fields.pop("command", "cmd"), **fields)


def stored(*records, sections=None):
    return StoredChecks({r.key: r for r in records}, dict(sections or {}))


@pytest.fixture
def registered(monkeypatch):
    """A registry of three cheap checks (the real ones read experiments)."""
    checks = [ClaimCheck(1, "exact (float64 numerics)", "theory", lambda: Verdict("holds", "e", "c")),
              ClaimCheck(3, "synthetic", "synthetic", lambda: Verdict("holds", "s", "c"), figures=("synthetic_matched_gain",)),
              ClaimCheck(3, "real LM (cpu preset)", "real_lm", lambda: Verdict("fails", "r", "c"), figures=("real_lm_matched_gain",))]
    monkeypatch.setattr(sft_tilt.claims.registry, "CHECKS", checks)
    return checks


def test_the_table_holds_the_18_claims_with_section_wording_and_measurement():
    assert [c.number for c in CLAIM_TABLE] == list(range(1, 19))
    for c in CLAIM_TABLE:
        assert c.section and len(c.wording) > len(c.title) // 2 and c.measured


def test_the_page_opens_with_a_summary_line_per_claim_linking_to_its_section():
    text = render_paper_checks(stored(record(3, "synthetic", "synthetic", "partly holds", ours="D +0.1 [0.0, 0.2] (n = 3)"),
                                      record(3, "real LM (x)", "real_lm", "fails", ours="p = 2.5 [1.1, 3.9] (n = 3)")))
    assert text.index("## Summary") < text.index("## Claim 1:")
    rows = summary_rows(text)
    assert [r[0] for r in rows] == [f"[{n}](#claim-{n})" for n in range(1, 19)]
    three = rows[2]
    assert three[2:5] == ["-", "[**partly holds**](#claim-3-synthetic)", "[**fails**](#claim-3-real-lm)"]
    assert three[5] == "real LM: p = 2.5 [1.1, 3.9] (n = 3)"  # the setting closest to the paper's decides the summary
    assert all(r[2:5] == ["-", "-", "-"] and r[5] == "not yet checked" for r in rows if r[0] != "[3](#claim-3)")
    for anchor in ("claim-3", "claim-3-synthetic", "claim-3-real-lm", "claim-18"):
        assert text.count(f'<a id="{anchor}"></a>') == 1
    assert "sft_tilt/claims/table.py" in text and "shared" + "/" not in text and "issue" not in text.lower()


def test_a_section_holds_rule_sensitivity_evidence_command_and_the_figure():
    r = record(4, "synthetic", "synthetic", "fails", ours="p = 3.4", seeds="1 (seed 0)", rule="Holds when p is 2.",
               sensitivity="fails / holds", evidence="exponent p = 3.43 fitted", command="python -m sft_tilt.figures x",
               figures=("synthetic_matched_gain", "synthetic_methods_pareto"))
    section = render_paper_checks(stored(r)).split('<a id="claim-4-synthetic"></a>')[1].split("<a id=")[0]
    assert "### Claim 4, synthetic: **fails**" in section
    for text in ("Holds when p is 2.", "fails / holds", "exponent p = 3.43 fitted", "`python -m sft_tilt.figures x`",
                 "1 (seed 0)", "p = 3.4"):
        assert text in section
    assert f"![synthetic_matched_gain]({FIGURE_FOLDER}/synthetic_matched_gain.png)" in section
    assert f"![synthetic_methods_pareto]({FIGURE_FOLDER}/synthetic_methods_pareto.png)" in section


def test_the_figure_folder_is_where_the_figures_command_writes():
    from sft_tilt.figures import DEFAULT_OUT_DIR
    from sft_tilt.store import CHECKOUT_ROOT

    assert (CHECKOUT_ROOT / FIGURE_FOLDER).resolve() == DEFAULT_OUT_DIR.resolve()


def test_a_failing_verdict_and_a_crashed_check_are_both_reported(registered):
    text = render_paper_checks(stored(record_of(registered[1], Verdict("fails", "slope ratio 2.1 (expected 4)", "cmd")),
                                      record_of(registered[0], RuntimeError("boom"))))
    assert "[**fails**](#claim-3-synthetic)" in text and "slope ratio 2.1" in text
    assert "[error](#claim-1-exact)" in text and "RuntimeError: boom" in text


def test_two_settings_of_one_group_say_which_is_which_and_get_their_own_anchors():
    text = render_paper_checks(stored(record(17, "synthetic, TALR with mean-one weights (talr-mean)"),
                                      record(17, "synthetic, DiSC's unnormalised TALR (talr-disc)", verdict="fails")))
    cell = summary_rows(text)[16][3]
    assert cell == ("[**fails**](#claim-17-synthetic) DiSC's unnormalised TALR (talr-disc); "
                    "[**holds**](#claim-17-synthetic-2) TALR with mean-one weights (talr-mean)")


@given(st.text(alphabet="ab*|~$<x [](); ,0123456789.-+`", min_size=0, max_size=2000),
       st.lists(st.text(alphabet="ab*|Δ ,", min_size=1, max_size=300), min_size=1, max_size=3, unique=True))
def test_no_summary_cell_exceeds_the_limit_and_a_cut_text_says_so(ours, settings):
    records = [record(12, "synthetic " + s, "synthetic", "holds", ours=ours or "-") for s in settings]
    cells = summary_cells(CLAIM_TABLE[11], records, {r.key: f"claim-12-synthetic-{i}" for i, r in enumerate(records)})
    assert all(len(c) <= MAX_CELL for c in cells), [len(c) for c in cells]
    assert cells[3].count("[**holds**](#claim-12-synthetic-") == len(records)
    deciding = cells[5].removeprefix("synthetic: ")
    flat = " ".join((ours or "-").split())
    assert deciding.endswith("…") or len(deciding) >= len(flat)  # whole, or visibly cut


def test_markdown_specials_are_escaped_outside_code_and_pipes_inside_cells():
    r = record(3, "synthetic", ours="Δ* ~ 2 | $x$ <b>", rule="uses ``m[\"unit\"]`` and `a*b`")
    text = render_paper_checks(stored(r))
    assert "Δ\\* \\~ 2 \\| \\$x\\$ \\<b>" in summary_rows(text)[2][5]
    assert "uses ``m[\"unit\"]`` and `a*b`" in text  # code spans are left as written


def test_stored_records_read_back_exactly(tmp_path):
    path = tmp_path / "paper_checks.json"
    original = stored(record(2, "exact", "theory", "partly holds", evidence="KL(P||q) and |x| <= 1\nnext line"),
                      record(7, "real LM (x)", "real_lm", "error", evidence="RuntimeError: boom", figures=("a", "b")),
                      sections={"real_lm_accuracies": ("", "## Accuracies", "| a | b |")})
    write_stored(path, original)
    assert read_stored(path) == original
    assert json.loads(path.read_text())["format"] == FORMAT


@pytest.mark.parametrize("edit, named", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["checks"][0].update(verdict="probably"), "checks[0].verdict"),
    (lambda d: d["checks"][0].update(number=19), "checks[0].number"),
    (lambda d: d["checks"][0].update(number=True), "checks[0].number"),
    (lambda d: d["checks"][0].update(group="bogus"), "checks[0].group"),
    (lambda d: d["checks"][0].update(evidence=3), "checks[0].evidence"),
    (lambda d: d["checks"][0].update(figures="a"), "checks[0].figures"),
    (lambda d: d["checks"][0].pop("rule"), "checks[0]"),
    (lambda d: d["checks"].append(dict(d["checks"][0])), "stored twice"),
    (lambda d: d.update(sections={"x": [1]}), "sections"),
])
def test_a_malformed_store_is_refused_naming_the_file_and_field(tmp_path, edit, named):
    path = tmp_path / "paper_checks.json"
    write_stored(path, stored(record()))
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=re.escape(named)) as exc:
        read_stored(path)
    assert str(path) in str(exc.value)


def test_a_store_with_a_duplicated_key_or_no_json_is_refused(tmp_path):
    path = tmp_path / "paper_checks.json"
    path.write_text('{"format": "a", "format": "b", "checks": [], "sections": {}}')
    with pytest.raises(ValueError, match="duplicated key"):
        read_stored(path)
    path.write_text('{"format": ')
    with pytest.raises(ValueError, match="not the JSON"):
        read_stored(path)
    assert read_stored(tmp_path / "absent.json") == StoredChecks({}, {})


def test_merge_keeps_what_a_partial_run_did_not_recompute():
    theory = record(1, "exact", "theory")
    cpu = record(3, "real LM (cpu preset)", "real_lm", "fails")
    cpu_other_claim = record(4, "real LM (cpu preset)", "real_lm", "inconclusive")
    synthetic = record(3, "synthetic", "synthetic")
    before = stored(theory, cpu, cpu_other_claim, synthetic, sections={"real_lm_accuracies": ("a",)})
    tiny = {(1, "exact"), (3, "synthetic"), (3, "real LM (tiny preset)"), (4, "real LM (tiny preset)")}

    # a theory run where the real-LM checks carry other settings keeps every other record
    after = merge(before, [record(1, "exact", "theory", "fails")], {}, registered=tiny, full=False)
    assert after.records == {**before.records, (1, "exact"): record(1, "exact", "theory", "fails")}
    assert after.sections == before.sections

    # a real-LM run of claim 3 under the other preset replaces claim 3's real-LM record only
    rerun = record(3, "real LM (tiny preset)", "real_lm", "holds")
    after = merge(before, [rerun], {"real_lm_accuracies": ("b",)}, registered=tiny, full=False)
    assert set(after.records) == {(1, "exact"), (3, "synthetic"), (4, "real LM (cpu preset)"), rerun.key}
    assert after.sections == {"real_lm_accuracies": ("b",)}

    # a setting some check still registers is never replaced by another setting
    after = merge(before, [rerun], {}, registered=tiny | {cpu.key}, full=False)
    assert after.records[cpu.key] == cpu and after.records[rerun.key] == rerun

    # a full run keeps only what it computed
    assert merge(before, [rerun], {}, registered=tiny, full=True) == stored(rerun)


def test_write_refuses_results_of_unregistered_checks_and_unknown_sections(registered, tmp_path):
    with pytest.raises(ValueError, match="no registered check"):
        write_paper_checks(tmp_path / "p.md", {(2, "somewhere"): Verdict("holds", "e", "c")}, keep_other_rows=True)
    with pytest.raises(ValueError, match="sections: unknown"):
        write_paper_checks(tmp_path / "p.md", {}, keep_other_rows=True, sections={"bogus": ("x",)})
    assert not (tmp_path / "p.md").exists() and not (tmp_path / "p.json").exists()


def test_write_stores_beside_the_page_and_renders_from_the_store(registered, tmp_path):
    path = tmp_path / "paper_checks.md"
    text = write_paper_checks(path, {(1, "exact (float64 numerics)"): Verdict("holds", "old", "c")}, keep_other_rows=False,
                              sections={MEASURED_SECTIONS[0].name: ("", "## A table", "", "| x |")})
    assert path.read_text() == text == render_paper_checks(read_stored(records_path(path)))
    write_paper_checks(path, {(3, "synthetic"): Verdict("fails", "new", "c")}, keep_other_rows=True)
    got = read_stored(records_path(path))
    assert {k: r.evidence for k, r in got.records.items()} == {(1, "exact (float64 numerics)"): "old", (3, "synthetic"): "new"}
    assert got.records[(3, "synthetic")].figures == ("synthetic_matched_gain",) and got.records[(3, "synthetic")].group == "synthetic"
    assert got.sections == {MEASURED_SECTIONS[0].name: ("", "## A table", "", "| x |")}
    assert "Not yet checked: run `python -m sft_tilt.figures real_lm_accuracy`." in path.read_text()


def test_a_partial_write_refuses_a_page_whose_verdicts_are_not_stored_beside_it(registered, tmp_path):
    path = tmp_path / "paper_checks.md"
    path.write_text("a page written by hand")
    with pytest.raises(ValueError, match="stored verdicts"):
        write_paper_checks(path, {(3, "synthetic"): Verdict("fails", "new", "c")}, keep_other_rows=True)
    assert path.read_text() == "a page written by hand" and not records_path(path).exists()


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
    assert len(sft_tilt.claims.CHECKS) == 30 and len(modules) == 19
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


def test_measured_sections_are_selected_like_checks():
    from sft_tilt.claims.report import select_sections

    assert [s.name for s in select_sections(["synthetic"])] == ["methods_against_sft"]
    assert [s.name for s in select_sections([], figures=["real_lm_accuracy"])] == ["real_lm_accuracies"]
    assert select_sections(["theory"]) == [] and len(select_sections(None)) == len(MEASURED_SECTIONS)


def test_a_section_that_raises_is_stored_as_its_error():
    from sft_tilt.claims.report import MeasuredSection, compute_sections

    def broken():
        raise RuntimeError("no runs")

    out = compute_sections([MeasuredSection("x", "A table", "real_lm", (), broken)])
    assert out == {"x": ("", "## A table", "", "Not computed: RuntimeError: no runs")}


def test_sensitivity_evaluates_the_rule_at_half_and_double_threshold():
    from sft_tilt.claims.registry import rule_of, sensitivity

    def decide(m, threshold_scale=1.0):
        """Holds when m exceeds 1 (scaled).

        More words."""
        return ("holds" if m > threshold_scale else "fails"), ""

    assert sensitivity(decide, 1.5) == "holds / fails"
    assert rule_of(decide) == "Holds when m exceeds 1 (scaled)."
