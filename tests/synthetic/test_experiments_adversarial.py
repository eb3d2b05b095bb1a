"""Experiment 2: the adversarial search catches a deliberately wrong bound and does not flag the valid ones."""

import numpy as np
import pytest

import sft_tilt.theory
from sft_tilt.synthetic.experiments import adversarial as ex
from record_names import misnamed_keys


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))


def test_halved_hoeffding_is_caught_and_hoeffding_is_not(cache):
    cfg = ex.AdversarialConfig(n_restarts=4, n_steps=40, bounds=("hoeffding", "hoeffding_halved"))
    res = ex.run(cfg, progress=False)
    assert misnamed_keys(res) == []  # one name per quantity in the record
    assert res["hoeffding_halved"]["violated"] and res["hoeffding_halved"]["min_slack_exact"] < -0.1
    assert not res["hoeffding"]["violated"] and res["hoeffding"]["min_slack_exact"] >= -1e-9
    # the reported worst instance really violates the halved bound (independent NumPy evaluation)
    r = res["hoeffding_halved"]
    P, q, s, learning_rate = r["P"], r["q"], r["s"], r["learning_rate"]
    q = q / q.sum()
    P = P / P.sum()
    logZ = np.log(np.sum(q * np.exp(learning_rate * s)))
    dL = np.sum(P * (logZ - learning_rate * s))
    first = learning_rate * (np.sum(q * s) - np.sum(P * s))
    halved = first + learning_rate**2 * (s.max() - s.min()) ** 2 / 16
    assert dL > halved


def test_exact_change_and_excess_match_theory_on_a_benign_instance():
    rng = np.random.default_rng(0)
    q, P = rng.dirichlet(np.ones(5)), rng.dirichlet(np.ones(5))
    s = rng.normal(size=5)
    assert ex.exact_change(P, q, s, 0.7) == pytest.approx(float(sft_tilt.theory.single_step_code_length_change(P, q, s, 0.7)), rel=1e-12)
    assert ex.exact_excess(q, s, 0.7) == pytest.approx(float(sft_tilt.theory.tilt_excess(q, s, 0.7)), rel=1e-12)


@pytest.mark.slow
def test_all_bounds_default_preset(cache):
    res = ex.run(ex.AdversarialConfig.preset("default"), progress=False)
    for name, r in res.items():
        assert r["violated"] == (not r["expected_valid"]), name
