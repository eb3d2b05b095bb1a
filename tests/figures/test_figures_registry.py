"""The figure registry and the command line: which figures are drawn and which claim checks run."""

import numpy as np
import pytest

import sft_tilt.claims
from sft_tilt.claims import Verdict
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
def cheap(monkeypatch, tmp_path, fixed_method_table):
    """Replace every figure and claim check by a cheap one that records that it ran."""
    drawn, checked = [], []
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
    path = tmp_path / "paper_checks.md"
    old = {(1, "theory"): Verdict("fails", "old theory", "c"), (3, "synthetic"): Verdict("fails", "old synthetic", "c"),
           (12, "real_lm"): Verdict("fails", "old real_lm", "c")}
    path.write_text(sft_tilt.claims.render_paper_checks(old))
    return drawn, checked, path


def test_unknown_group_is_rejected_before_anything_runs(cheap, capsys):
    drawn, checked, path = cheap
    before = path.read_text()
    with pytest.raises(SystemExit) as exc:
        main(["all", "--group", "bogus", "--paper-checks", str(path)])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    assert drawn == [] and checked == [] and path.read_text() == before


def test_a_group_runs_only_its_checks_and_rewrites_only_their_rows(cheap, tmp_path):
    drawn, checked, path = cheap
    assert main(["all", "--group", "synthetic", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert drawn == ["fig_synthetic"] and checked == [(3, "synthetic")]
    rows = sft_tilt.claims.read_rows(path.read_text())
    assert rows[(3, "synthetic")].measured == "new synthetic" and rows[(3, "synthetic")].verdict == "holds"
    assert rows[(1, "theory")].measured == "old theory" and rows[(12, "real_lm")].measured == "old real_lm"
    assert rows[(12, "real_lm")].verdict == "fails"


def test_named_figures_run_only_the_checks_reading_their_experiments(cheap, tmp_path):
    drawn, checked, path = cheap
    assert main(["fig_theory", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert drawn == ["fig_theory"] and checked == [(1, "theory")]
    assert sft_tilt.claims.read_rows(path.read_text())[(3, "synthetic")].measured == "old synthetic"


def test_all_without_group_runs_everything_and_rewrites_the_file(cheap, tmp_path):
    drawn, checked, path = cheap
    stale = {**sft_tilt.claims.read_rows(path.read_text()), (2, "retired setting"): sft_tilt.claims.Verdict("holds", "gone", "c")}
    path.write_text(sft_tilt.claims.render_paper_checks(stale))
    assert main(["all", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert sorted(drawn) == sorted(f"fig_{g}" for g in sft_tilt.claims.GROUPS) and len(checked) == 3
    rows = sft_tilt.claims.read_rows(path.read_text())
    assert {k: r.measured for k, r in rows.items()} == {(1, "theory"): "new theory", (3, "synthetic"): "new synthetic",
                                                        (12, "real_lm"): "new real_lm"}


def test_no_checks_leaves_paper_checks_alone_and_group_needs_all(cheap, tmp_path):
    drawn, checked, path = cheap
    before = path.read_text()
    assert main(["all", "--no-checks", "--out", str(tmp_path), "--paper-checks", str(path)]) == 0
    assert checked == [] and path.read_text() == before
    with pytest.raises(SystemExit):
        main(["fig_theory", "--group", "theory", "--paper-checks", str(path)])


def test_outside_a_checkout_the_checks_are_written_into_the_out_folder(cheap, tmp_path, monkeypatch, capsys):
    """Installed from a wheel (no checkout), the default paper_checks.md is the one in --out, never the package's
    folder; the run says which results folder the real-LM checks read."""
    drawn, checked, path = cheap
    before = path.read_text()
    monkeypatch.setattr("sft_tilt.store.CHECKOUT_ROOT", None)
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "no-results"))
    out = tmp_path / "mine"
    assert main(["fig_theory", "--out", str(out)]) == 0
    assert sft_tilt.claims.read_rows((out / "paper_checks.md").read_text())[(1, "theory")].measured == "new theory"
    assert path.read_text() == before
    printed = capsys.readouterr().out
    assert f"figures into {out}" in printed and f"{tmp_path / 'no-results'} does not exist" in printed


def test_results_dir_must_be_a_folder_and_is_what_the_checks_read(cheap, tmp_path, monkeypatch, capsys):
    drawn, checked, path = cheap
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
    drawn, checked, path = cheap
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
