"""Experiments 5-6 (ci presets)."""

import numpy as np
import pytest

from sft_tilt.synthetic.experiments import methods as ex5
from sft_tilt.synthetic.experiments import token_stats as ex6
from sft_tilt.synthetic.models import build_model
from sft_tilt.synthetic.worlds import make_world
from dataclasses import replace
from record_names import misnamed_keys


def test_methods_ci_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    cfg = ex5.MethodsConfig.preset("ci")
    res = ex5.run(cfg, progress=False)
    assert misnamed_keys(res) == []  # one name per quantity in the record
    assert set(res["per_method"]) == set(cfg.methods)
    for name, c in res["per_method"].items():
        assert c["domain_gain"].shape == (len(cfg.seeds), len(cfg.learning_rates), cfg.n_epochs + 1)
        assert np.all(c["domain_gain"][..., 0] == 0) and np.all(c["general_change"][..., 0] == 0)
        # the first recorded point is the initial model's statistics of each seed's world
        for i, s in enumerate(cfg.seeds):
            world = make_world(replace(cfg.world, seed=s))
            p0 = np.exp(np.asarray(world.log_q0))[np.asarray(world.contexts), np.asarray(world.targets)]
            assert c["frac_easy"][i, 0, 0] == pytest.approx(np.mean(p0 > 0.2))
    sft = res["per_method"]["SFT"]
    assert np.all(sft["domain_gain"][:, 1, -1] > sft["domain_gain"][:, 0, -1])  # a larger step gains more in the same budget


def test_token_stats_ci_run(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    cfg = ex6.TokenStatsConfig.preset("ci")
    res = ex6.run(cfg, progress=False)
    assert misnamed_keys(res) == []  # one name per quantity in the record
    n_tokens = cfg.world.n_sequences * (cfg.world.cot_length + 1)
    for name, c in res["per_method"].items():
        assert c["hist"].shape == (len(cfg.seeds), cfg.n_epochs + 1, len(ex6.HIST_EDGES) - 1)
        assert np.all(c["hist"].sum(-1) == n_tokens)
        assert c["tau"].shape == (len(cfg.seeds), cfg.n_epochs + 1)
    world = make_world(replace(cfg.world, seed=cfg.seeds[0]))
    p0 = np.exp(np.asarray(world.log_q0))[np.asarray(world.contexts), np.asarray(world.targets)]
    l0 = -np.log(p0)
    assert res["per_method"]["SFT"]["tau"][0, 0] == pytest.approx(np.median(l0.mean(1)), rel=1e-12)
