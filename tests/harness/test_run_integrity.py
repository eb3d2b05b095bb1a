"""What a run folder accepts and what a run reports, on the tiny random model: points of another run are never
resumed, a run whose model collapses to the uniform output is flagged as such, and a run folder that cannot hold
the run's files is refused before any work."""

import json
import math
import shutil
from dataclasses import replace

import jax
import pytest

from tiny_harness import counting_train_steps as _counting_steps, tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("integrity")) as environment:
        yield environment


@pytest.fixture
def runs_dir(env, monkeypatch, tmp_path):
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


def _config(preset, learning_rate, **kw):
    from sft_tilt.harness.experiments import sft_config

    return replace(sft_config(preset, learning_rate, "label", 0),
                   **{"steps": 2, "eval_every": 1, "final_accuracy": False, "averaging_alphas": (), **kw})


def _close(a: dict, b: dict) -> bool:
    return (math.isclose(a["domain_loss"], b["domain_loss"], rel_tol=1e-6)
            and all(math.isclose(a["general"][k], b["general"][k], rel_tol=1e-6) for k in a["general"]))


# ----------------------------------------------------------------------------- points of another run


def test_points_copied_from_another_run_are_not_resumed(env, runs_dir, monkeypatch, tmp_path):
    """An interrupted lr 4e-3 run's ``points.jsonl`` copied beside an interrupted lr 1e-3 run's own checkpoint: the
    lr 1e-3 run warns naming the file, starts again from step 0 and ends with its own trajectory, the one an
    uninterrupted run computes in a fresh folder."""
    from sft_tilt.harness import runs

    mine, other = _config(env["preset"], 1e-3), _config(env["preset"], 4e-3)
    for cfg in (mine, other):
        with pytest.raises(runs.Interrupted):
            runs.run_one(cfg, progress=False, interrupt_after=1)
    folder = runs.run_folder(mine)
    assert (folder / "state.npz").exists() and runs._read_points(folder)
    shutil.copyfile(runs.run_folder(other) / "points.jsonl", folder / "points.jsonl")
    calls = _counting_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=f"{folder / 'points.jsonl'}: line 1 .*{runs.run_folder(other).name}"):
        resumed = runs.run_one(mine, progress=False)
    assert len(calls) == mine.steps  # from step 0: the checkpoint's step has no point of this run
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "fresh"))
    fresh = runs.run_one(mine, progress=False)

    def rates(result):
        return [s["learning_rate"] for p in result["points"] for s in p["train_steps"]]

    assert rates(resumed) == rates(fresh) and max(rates(resumed)) <= mine.learning_rate
    assert [p["step"] for p in resumed["points"]] == [p["step"] for p in fresh["points"]] == [1, 2]
    assert all(_close(a, b) for a, b in zip(resumed["points"], fresh["points"]))


def test_a_point_line_relabelled_with_this_runs_key_fails_its_checksum(env, tmp_path):
    from sft_tilt.harness import runs

    points = [{"step": 1, "domain_loss": 2.5}, {"step": 2, "domain_loss": 2.25}]
    theirs, mine = tmp_path / "otherkey", tmp_path / "mykey"
    runs._write_points(theirs, points)
    mine.mkdir()
    lines = [json.loads(line) for line in (theirs / "points.jsonl").read_text().splitlines()]
    assert {line["key"] for line in lines} == {"otherkey"}
    (mine / "points.jsonl").write_text("".join(json.dumps({**line, "key": "mykey"}) + "\n" for line in lines))
    with pytest.warns(UserWarning, match="checksum mismatch"):
        assert runs._read_points(mine) == []
    runs._write_points(mine, points)
    assert runs._read_points(mine) == points


def test_lines_without_a_run_key_are_read_only_against_a_keyed_result(env, tmp_path):
    """The lines written before they named their run (``{"sha256", "point"}``, the checksum of the point alone) are
    never resumed; ``unkeyed`` reads them for a finished run, whose keyed ``result.json`` they must then match."""
    import hashlib

    from sft_tilt.harness import runs

    points = [{"step": 1, "domain_loss": 2.5}, {"step": 2, "domain_loss": 2.25}]
    folder = tmp_path / "somekey"
    folder.mkdir()
    (folder / "points.jsonl").write_text("".join(
        json.dumps({"sha256": hashlib.sha256(json.dumps(p, sort_keys=True).encode()).hexdigest(), "point": p},
                   sort_keys=True) + "\n" for p in points))
    with pytest.warns(UserWarning, match=f"{folder / 'points.jsonl'}: line 1 .*names no run"):
        assert runs._read_points(folder) == []
    assert runs._read_points(folder, unkeyed=True) == points


# ----------------------------------------------------------------------------- collapse


def test_a_run_driven_to_the_uniform_output_is_flagged_as_collapsed(env, runs_dir, capsys, monkeypatch):
    """A learning rate of 1e3 throws the tiny model to the uniform output: every loss at log V, finite. The run
    says so (``collapsed_step``: the first point where the held-out and every general loss are log V, V read
    from the model file), the summaries list it as collapsed and average nothing of it, and ``run`` prints no G or D;
    a run at an ordinary learning rate is not flagged. A result stored before the flag existed reads the same."""
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_results import lr_tradeoff, summarise_run
    from sft_tilt.harness.results_summary import render_summary, summary_rows
    from sft_tilt.lm.gguf_io import gguf_metadata

    log_v = math.log(gguf_metadata(env["model"])["llama.vocab_size"])
    collapsed = runs.run_one(_config(env["preset"], 1e3, steps=6), progress=False)
    ordinary = runs.run_one(_config(env["preset"], 4e-3, steps=6), progress=False)

    def uniform(point):  # far tighter than the flag's tolerance: the uniform output, to float32 round-off
        return all(abs(x - log_v) < 1e-5 for x in [point["domain_loss"], *point["general"].values()])

    expected = next((p["step"] for p in collapsed["points"] if uniform(p)), None)
    assert expected is not None and all(math.isfinite(p["domain_loss"]) for p in collapsed["points"])
    assert not any(uniform(p) for p in ordinary["points"])
    assert (collapsed["collapsed"], collapsed["collapsed_step"], collapsed["diverged"]) == (True, expected, False)
    assert (ordinary["collapsed"], ordinary["collapsed_step"]) == (False, None)
    older = {k: v for k, v in collapsed.items() if k not in ("collapsed", "collapsed_step")}
    for result in (collapsed, older):
        s = summarise_run(result)
        assert (s["collapsed"], s["collapsed_step"]) == (True, expected)
    rows, _ = summary_rows([older, ordinary])
    row = {r["learning_rate"]: r for r in rows}
    assert row[1e3]["seeds"] == [] and row[1e3]["collapsed"] == [0] and row[1e3]["G"].n == 0
    assert row[4e-3]["seeds"] == [0] and row[4e-3]["collapsed"] == []
    assert "(collapsed: 0)" in render_summary(rows, {}, 2, 2, "tiny")
    # the experiments leave it out with a warning naming it
    monkeypatch.setattr("sft_tilt.harness.experiment_results.read_results", lambda *a, **k: [collapsed, ordinary])
    with pytest.warns(UserWarning, match=f"run {collapsed['key']} .*collapsed at step {expected}"):
        kept = lr_tradeoff(env["preset"], require_early=False)
    assert [s["key"] for s in kept] == [ordinary["key"]]
    # the command line says it collapsed instead of printing G and D
    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    assert cli.main(["run", "--preset", "tiny", "--lr", "1e3", "--fmt", "label", "--steps", "6", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "collapsed at step" in out and "G=" not in out
