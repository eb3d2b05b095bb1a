"""Early points: the first steps of a run recomputed with an evaluation at every step, spliced into its trajectory.

Checked on the tiny random-weight model against an independent computation: the same run evaluated at every step
from the start. Splicing, its agreement check, staleness, damage and the export are checked on hand-made records.
"""

import json
import warnings
from dataclasses import replace

import jax
import numpy as np
import pytest

from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("early")) as environment:
        yield environment


def _cfg(preset):
    from sft_tilt.harness.experiment_runs import sft_config

    return replace(sft_config(preset, 4e-3, "label", 0), steps=4, eval_every=2, final_accuracy=False, averaging_alphas=())


def test_early_points_equal_a_run_evaluated_at_every_step_and_fill_the_first_interval(env):
    from sft_tilt.harness.early_points import compute_early
    from sft_tilt.harness.stored_early_points import read_early, splice
    from sft_tilt.analysis.matched_gain import from_base
    from sft_tilt.harness.experiment_results import summarise_run
    from sft_tilt.harness.runs import run_key, run_one

    cfg = _cfg(env["preset"])
    run = run_one(cfg, progress=False)
    record = compute_early(cfg, 2)
    assert [p["step"] for p in record["points"]] == [1, 2] and record["run_key"] == run_key(cfg)
    dense = run_one(replace(cfg, eval_every=1), progress=False)  # independent: evaluated at every step from the start
    assert [p["step"] for p in dense["points"]] == [1, 2, 3, 4]
    for early, own in zip(record["points"], dense["points"]):
        assert early["domain_loss"] == pytest.approx(own["domain_loss"], abs=1e-6)
        assert early["general"] == pytest.approx(own["general"], abs=1e-6)
    s = splice(summarise_run(run), run["base"], record)
    assert [t[0] for t in s["trajectory"]] == [0, 1, 2, 4] and s["early_until"] == 2
    assert s["trajectory"][1][1] == pytest.approx(dense["points"][0]["domain_gain"], abs=1e-6)
    assert s["trajectory"][1][2] == pytest.approx(dense["points"][0]["general_change_mean"], abs=1e-6)
    assert s["trajectory"][2:] == summarise_run(run)["trajectory"][1:]
    # a gain below step 1's is still a chord from the base model; between steps 1 and 2 it no longer is
    g1, g2 = s["trajectory"][1][1], s["trajectory"][2][1]
    if 0 < g1 < g2:
        assert from_base(s["trajectory"], g1 / 2) and not from_base(s["trajectory"], (g1 + g2) / 2)
        assert from_base(summarise_run(run)["trajectory"], (g1 + g2) / 2)
    assert read_early(run_key(cfg), 2) == record and read_early(run_key(cfg), 3) is None


def _summary(traj, key="k0"):
    return {"key": key, "diverged": False, "trajectory": traj}


def _record(points, until, key="k0"):
    from sft_tilt.harness.stored_early_points import _code_keys

    return {"run_key": key, "until": until, "code_keys": _code_keys(), "label": "x", "points": points}


BASE = {"domain_loss": 2.0, "general": {"docs": 1.0, "code": 3.0}}


def _point(step, domain, docs, code):
    return {"step": step, "domain_loss": domain, "general": {"docs": docs, "code": code}}


def test_splice_converts_raw_losses_and_refuses_a_record_of_another_trajectory():
    from sft_tilt.harness.stored_early_points import AGREEMENT, EarlyMismatch, splice, with_early

    summary = _summary([(0, 0.0, 0.0), (3, 0.9, 0.02), (6, 1.5, 0.05)])
    # at step 3: G = 2.0 - 1.1 = 0.9, D = mean(1.01 - 1, 3.03 - 3) = 0.02
    points = [_point(1, 1.8, 1.0, 3.0), _point(2, 1.4, 1.02, 3.0), _point(3, 1.1, 1.01, 3.03)]
    s = splice(summary, BASE, _record(points, 3))
    np.testing.assert_allclose(np.array(s["trajectory"], float),
                               [(0, 0.0, 0.0), (1, 0.2, 0.0), (2, 0.6, 0.01), (3, 0.9, 0.02), (6, 1.5, 0.05)], atol=1e-12)
    off = [*points[:2], _point(3, 1.1 + 3 * AGREEMENT, 1.01, 3.03)]
    with pytest.raises(EarlyMismatch, match="recomputed step 3"):
        splice(summary, BASE, _record(off, 3))
    with pytest.raises(EarlyMismatch, match="no evaluation point at step 2"):
        splice(summary, BASE, _record(points[:2], 2))
    assert with_early([summary], {}, 0) == [summary]  # early_until = 0: nothing read


def test_stored_records_are_read_checked_for_their_code_and_exported(env, monkeypatch, tmp_path):
    from sft_tilt.store import write_record

    from sft_tilt.harness import early_points as ep
    from sft_tilt.harness.results_export import export_early
    from sft_tilt.harness.runs import run_key

    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "results"))
    cfg = _cfg(env["preset"])
    key = run_key(cfg)
    record = _record([_point(1, 1.8, 1.0, 3.0), _point(2, 1.4, 1.02, 3.0)], 2, key)
    write_record(ep.record_path(key), record, key=key)
    assert ep.read_early(key, 2) == record and ep.read_early(key, 3) is None
    [copy] = export_early([cfg, cfg], 2, "tiny")
    assert copy == tmp_path / "results" / "tiny" / "early" / f"{key}.json"
    ep.record_path(key).unlink()
    assert ep.read_early(key, 2) == record  # the committed copy
    stale = {**record, "code_keys": {"runs": "0" * 16, "early_config": "1" * 16}}
    write_record(ep.record_path(key), stale, key=key)
    copy.unlink()
    with pytest.warns(UserWarning, match="computed under other code"):
        assert ep.read_early(key, 2) is None
    write_record(ep.record_path(key), record, key=key)
    text = ep.record_path(key).read_text()
    ep.record_path(key).write_text(text.replace("1.8", "1.9"))  # an edited loss fails the record's checksum
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert ep.read_early(key, 2) is None
    assert any(str(ep.record_path(key)) in str(w.message) for w in caught)
    with pytest.raises(ValueError, match="key: expected a run key"):
        ep.read_early("../x", 2)
    with pytest.raises(ValueError, match="until: must be an int"):
        ep.compute_early(cfg, 5)


def test_the_sweep_refuses_early_points_for_a_preset_without_them(env, capsys):
    from sft_tilt.harness.__main__ import main
    from sft_tilt.harness.presets import Preset, get_preset

    with pytest.raises(SystemExit):
        main(["sweep", "--preset", "tiny", "--experiment", "early", "--quiet"])
    assert "recomputes no early points" in capsys.readouterr().err
    assert get_preset("cpu").early_until == 10
    with pytest.raises(ValueError, match="early_until"):
        replace(get_preset("cpu"), early_until=101)
    with pytest.raises(ValueError, match="early_until: must be an evaluation step"):
        replace(get_preset("cpu"), early_until=15)
