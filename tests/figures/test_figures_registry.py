"""The figure registry and the command line: which figures are drawn and which claim checks run."""

from pathlib import Path

import numpy as np
import pytest

import sft_tilt.claims
from sft_tilt.claims import Verdict, read_stored, records_path, render_paper_checks, report
from sft_tilt.claims.verdict_records import StoredChecks, record_of, write_stored
from sft_tilt.figures import FIGURES
from sft_tilt.figures.__main__ import main
from sft_tilt.figures._registry import Figure, figure


def test_registering_a_figure_name_twice_is_rejected():
    figure("_test_dup_figure", "x", "test")(lambda out: {})
    with pytest.raises(ValueError, match="registered twice"):
        figure("_test_dup_figure", "x", "test")(lambda out: {})
    del FIGURES["_test_dup_figure"]


def test_every_figure_belongs_to_a_known_group_and_every_check_names_real_figures():
    assert {f.group for f in FIGURES.values()} <= set(sft_tilt.claims.GROUPS)
    for c in sft_tilt.claims.CHECKS:
        assert set(c.figures) <= set(FIGURES), c
        assert all(FIGURES[n].group == c.group for n in c.figures), c


@pytest.fixture
def cheap(monkeypatch, tmp_path):
    """Replace every figure, claim check and measured table by a cheap one that records that it ran; store an old
    verdict for each check and an old version of each table."""
    drawn, checked, tabled = [], [], []
    figs = {}
    for group in sft_tilt.claims.GROUPS:
        name = f"fig_{group}"
        figs[name] = Figure(name, "x", (lambda n: (lambda out: drawn.append(n) or {}))(name), group)
    monkeypatch.setattr("sft_tilt.figures._registry.FIGURES", figs)
    monkeypatch.setattr("sft_tilt.figures.FIGURES", figs)
    checks = []
    for number, group in ((1, "theory"), (3, "synthetic"), (12, "real_lm")):
        fn = (lambda n, g: (lambda: checked.append((n, g)) or Verdict("holds", f"new {g}", "cmd")))(number, group)
        checks.append(sft_tilt.claims.ClaimCheck(number, group, group, fn, figures=(f"fig_{group}",)))
    monkeypatch.setattr(sft_tilt.claims.registry, "CHECKS", checks)
    tables = tuple(report.MeasuredSection(f"table_{g}", f"Table {g}", g, (f"fig_{g}",),
                                          (lambda g: lambda: tabled.append(g) or ["", f"## Table {g}", "", f"new {g}"])(g))
                   for g in ("synthetic", "real_lm"))
    monkeypatch.setattr(report, "MEASURED_SECTIONS", tables)
    path = tmp_path / "paper_checks.md"
    old = StoredChecks({(c.number, c.setting): record_of(c, Verdict("fails", f"old {c.group}", "c")) for c in checks},
                       {t.name: ("", f"## {t.title}", "", f"old {t.group}") for t in tables})
    write_stored(records_path(path), old)
    path.write_text(render_paper_checks(old))
    return drawn, checked, tabled, path


def _evidence(path):
    return {k: r.evidence for k, r in read_stored(records_path(path)).records.items()}


def _tables(path):
    return {k: v[-1] for k, v in read_stored(records_path(path)).sections.items()}


def test_unknown_group_is_rejected_before_anything_runs(cheap, capsys):
    drawn, checked, tabled, path = cheap
    before = path.read_text(), records_path(path).read_text()
    with pytest.raises(SystemExit) as exc:
        main(["all", "--group", "bogus", "--paper-checks", str(path)])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert drawn == checked == tabled == [] and (path.read_text(), records_path(path).read_text()) == before


@pytest.mark.parametrize("damage", ["missing", "malformed"])
def test_a_partial_run_without_readable_stored_verdicts_stops_before_any_work(cheap, tmp_path, capsys, damage):
    drawn, checked, tabled, path = cheap
    if damage == "missing":
        records_path(path).unlink()
    else:
        records_path(path).write_text('{"format": ')
    before = path.read_text()
    with pytest.raises(SystemExit) as exc:
        main(["all", "--group", "synthetic", "--out", str(tmp_path), "--paper-checks", str(path)])
    assert exc.value.code == 2 and "--paper-checks" in capsys.readouterr().err
    assert drawn == checked == tabled == [] and path.read_text() == before


def test_a_group_runs_only_its_checks_and_tables_and_replaces_only_them(cheap, tmp_path):
    drawn, checked, tabled, path = cheap
    assert main(["all", "--group", "synthetic", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert drawn == ["fig_synthetic"] and checked == [(3, "synthetic")] and tabled == ["synthetic"]
    assert _evidence(path) == {(1, "theory"): "old theory", (3, "synthetic"): "new synthetic", (12, "real_lm"): "old real_lm"}
    assert _tables(path) == {"table_synthetic": "new synthetic", "table_real_lm": "old real_lm"}
    assert read_stored(records_path(path)).records[(3, "synthetic")].verdict == "holds"
    assert path.read_text() == render_paper_checks(read_stored(records_path(path)))


def test_named_figures_run_only_the_checks_and_tables_reading_their_experiments(cheap, tmp_path):
    drawn, checked, tabled, path = cheap
    assert main(["fig_theory", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert drawn == ["fig_theory"] and checked == [(1, "theory")] and tabled == []
    assert _evidence(path)[(3, "synthetic")] == "old synthetic"
    assert main(["fig_real_lm", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert tabled == ["real_lm"] and _tables(path)["table_real_lm"] == "new real_lm"


def test_all_without_group_runs_everything_and_rewrites_the_store(cheap, tmp_path):
    drawn, checked, tabled, path = cheap
    stored = read_stored(records_path(path))
    retired = sft_tilt.claims.ClaimCheck(2, "retired setting", "theory", lambda: None)
    write_stored(records_path(path), StoredChecks({**stored.records, (2, "retired setting"): record_of(retired, Verdict("holds", "gone", "c"))},
                                                  {**stored.sections, "retired table": ("x",)}))
    assert main(["all", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert sorted(drawn) == sorted(f"fig_{g}" for g in sft_tilt.claims.GROUPS) and len(checked) == 3
    assert _evidence(path) == {(1, "theory"): "new theory", (3, "synthetic"): "new synthetic", (12, "real_lm"): "new real_lm"}
    assert _tables(path) == {"table_synthetic": "new synthetic", "table_real_lm": "new real_lm"}


def test_no_checks_leaves_paper_checks_alone_and_group_needs_all(cheap, tmp_path):
    drawn, checked, tabled, path = cheap
    before = path.read_text(), records_path(path).read_text()
    assert main(["all", "--no-checks", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert checked == tabled == [] and (path.read_text(), records_path(path).read_text()) == before
    with pytest.raises(SystemExit):
        main(["fig_theory", "--group", "theory", "--paper-checks", str(path)])


def test_in_a_checkout_the_default_page_is_the_committed_paper_checks_md_at_its_root(cheap, monkeypatch):
    checkout = Path(__file__).resolve().parents[2]  # tests/figures/this file
    from sft_tilt.store import CHECKOUT_ROOT

    assert CHECKOUT_ROOT is not None and CHECKOUT_ROOT.resolve() == checkout
    assert (checkout / "pyproject.toml").exists() and (checkout / "paper_checks.md").exists()


def test_outside_a_checkout_the_checks_are_written_into_the_out_folder(cheap, tmp_path, monkeypatch, capsys):
    """Installed from a wheel (no checkout), the default paper_checks.md is the one in --out, never the package's
    folder; the run says which results folder the real-LM checks read."""
    drawn, checked, _, path = cheap
    before = path.read_text()
    monkeypatch.setattr("sft_tilt.store.CHECKOUT_ROOT", None)
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "no-results"))
    out = tmp_path / "mine"
    assert main(["fig_theory", "--out", str(out)]) == 0
    written = read_stored(records_path(out / "paper_checks.md")).records
    assert set(written) == {(1, "theory")} and written[(1, "theory")].evidence == "new theory"
    assert path.read_text() == before
    printed = capsys.readouterr().out
    assert f"figures into {out}" in printed and f"{tmp_path / 'no-results'} does not exist" in printed


def test_results_dir_must_be_a_folder_and_is_what_the_checks_read(cheap, tmp_path, monkeypatch, capsys):
    drawn, checked, _, path = cheap
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "before"))  # restored afterwards: --results-dir sets it
    with pytest.raises(SystemExit) as exc:
        main(["fig_theory", "--out", str(tmp_path), "--paper-checks", str(path), "--results-dir", str(tmp_path / "none")])
    assert exc.value.code == 2 and "--results-dir" in capsys.readouterr().err and drawn == []
    folder = tmp_path / "results"
    folder.mkdir()
    seen = []
    monkeypatch.setattr(sft_tilt.claims.registry, "CHECKS", [sft_tilt.claims.ClaimCheck(
        1, "theory", "theory", lambda: seen.append(__import__("sft_tilt.store").store.results_dir())
        or Verdict("holds", "x", "c"), figures=("fig_theory",))])
    assert main(["fig_theory", "--out", str(tmp_path), "--paper-checks", str(path), "--results-dir", str(folder)]) == 0
    assert seen == [folder.resolve()] and f"Committed results read from {folder.resolve()}." in capsys.readouterr().out


def test_out_naming_a_file_is_refused_before_anything_runs(cheap, tmp_path, capsys):
    drawn, checked, _, path = cheap
    with pytest.raises(SystemExit) as exc:
        main(["fig_theory", "--out", str(path), "--paper-checks", str(path)])
    assert exc.value.code == 2 and "--out" in capsys.readouterr().err and drawn == [] and checked == []


def test_a_real_lm_axis_turns_symmetric_log_only_when_one_value_dwarfs_the_rest():
    """Matched-gain D of a grid is mostly a few thousandths with, at times, one degraded cell near 0.2: then the axis
    is linear within twice the 75th percentile of |D| and logarithmic beyond; without such a cell it stays linear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sft_tilt.figures.real_lm_figures import _symlog_if_one_value_dominates

    fig, (even, dominated, empty) = plt.subplots(1, 3)
    values = [-0.001, -0.002, -0.0025, 0.003, -0.0012, 0.002, -0.001, -0.002]
    _symlog_if_one_value_dominates(even, values + [0.02])  # 0.02 is under 20 x the 75th percentile (0.0025)
    _symlog_if_one_value_dominates(dominated, values + [0.2, None, float("nan")])
    _symlog_if_one_value_dominates(empty, [None, float("nan")])
    assert even.get_yscale() == "linear" and empty.get_yscale() == "linear"
    assert dominated.get_yscale() == "symlog"
    typical = float(np.percentile(np.abs(values + [0.2]), 75))
    assert dominated.yaxis.get_transform().linthresh == pytest.approx(2 * typical)
    plt.close(fig)


def test_the_methods_figure_averages_trajectories_over_the_steps_every_seed_has():
    from sft_tilt.figures.real_lm_figures import mean_trajectory

    # the SFT runs carry early points (steps 1-9) in some seeds only: those steps are left out, not averaged with fewer seeds
    a = [(0, 0.0, 0.0), (5, 0.5, -0.01), (10, 1.0, 0.02), (20, 1.5, 0.10)]
    b = [(0, 0.0, 0.0), (10, 0.8, 0.04), (20, 1.3, 0.06)]
    path = mean_trajectory([a, b])
    assert [s for s, _, _ in path] == [0, 10, 20]
    np.testing.assert_allclose([(g, d) for _, g, d in path], [(0.0, 0.0), (0.9, 0.03), (1.4, 0.08)], rtol=0, atol=1e-15)
    assert mean_trajectory([]) == []


@pytest.mark.parametrize("option", ["--out", "--paper-checks"])
def test_an_output_path_that_cannot_be_written_is_a_usage_error_naming_the_option(cheap, tmp_path, capsys, option):
    """``--out`` naming an existing file (not a folder), or ``--paper-checks`` naming a folder: argparse's usage
    error naming the option and the path, before anything is drawn."""
    drawn, checked, _, path = cheap
    bad = tmp_path / "a-file.txt" if option == "--out" else tmp_path / "a-folder"
    if option == "--out":
        bad.write_text("keep me")
    else:
        bad.mkdir()
    argv = ["all", "--group", "theory", option, str(bad)] + (["--paper-checks", str(path)] if option == "--out" else [])
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"argument {option}" in err and str(bad) in err
    assert "FileExistsError" not in err and drawn == [] and checked == []
    assert bad.is_dir() or bad.read_text() == "keep me"
    # a folder under a file cannot be created either
    (tmp_path / "another-file.txt").write_text("")
    with pytest.raises(SystemExit):
        main(["all", "--group", "theory", "--out", str(tmp_path / "another-file.txt" / "sub"), "--paper-checks", str(path)])
    assert "is a file, not a directory" in capsys.readouterr().err


def test_paper_checks_may_name_a_folder_the_run_makes_but_not_one_under_a_file(tmp_path):
    """The README's quickstart writes the page into the --out folder it is drawing into for the first time."""
    import argparse

    from sft_tilt.figures.__main__ import output_file

    fresh = tmp_path / "figures" / "paper_checks.md"
    assert output_file(str(fresh)) == fresh and not fresh.parent.exists()
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="is a file, not a directory"):
        output_file(str(tmp_path / "a-file" / "sub" / "paper_checks.md"))
