"""Experiment 4 (ci preset) and the safe-step interpolation."""

import numpy as np
import pytest

from sft_tilt.synthetic.experiments import hard_tokens as ex
from sft_tilt.synthetic.models import all_log_probs, build_model, init_params
from sft_tilt.synthetic.worlds import make_world
from dataclasses import replace
from record_names import misnamed_keys


def test_safe_step_from_curve_interpolates_in_log_lam():
    learning_rates = [1.0, 2.0, 4.0, 8.0]
    # D linear in log2(learning_rate): crosses eps = 0.25 halfway between 2 and 4 -> sqrt(8)
    v, flag = ex.safe_step_from_curve(learning_rates, [0.0, 0.1, 0.4, 0.9], 0.25)
    assert flag == "interior" and v == pytest.approx(np.sqrt(8.0), rel=1e-12)
    assert ex.safe_step_from_curve(learning_rates, [0.1, 0.1, 0.1, 0.1], 0.2) == (8.0, "above_grid")
    assert ex.safe_step_from_curve(learning_rates, [0.3, 0.4, 0.5, 0.6], 0.2) == (0.0, "below_grid")


def test_ci_run_measures_mass_and_matches_the_answer_gain(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    cfg = ex.HardTokensConfig.preset("ci")
    res = ex.run(cfg, progress=False)
    assert misnamed_keys(res) == []  # one name per quantity in the record
    assert len(res["cells"]) == len(cfg.hard_fractions) + 1
    for c in res["cells"]:
        assert c["reached"].all()
        world = make_world(replace(cfg.world, response_format=c["format"], hard_fraction=c["hard_fraction"]))
        model = build_model(world, cfg.model)
        p0 = np.exp(np.asarray(all_log_probs(model, init_params(model))))[np.asarray(world.contexts), np.asarray(world.targets)]
        assert c["hard_token_mass"] == pytest.approx(np.mean(1 - p0), rel=1e-12)
        assert c["hard_per_response"] == pytest.approx(np.sum(p0 <= 0.2) / p0.shape[0])
    masses = {(c["format"], c["hard_fraction"]): c["hard_token_mass"] for c in res["cells"]}
    assert masses[("cot", 1.0)] > masses[("cot", 0.0)]
