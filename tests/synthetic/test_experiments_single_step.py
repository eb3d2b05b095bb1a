"""Experiment 1 on a fixed-seed subset (size from $SIMS_TEST_INSTANCES), against an independent NumPy computation;
and the cell cache: a finished chunk is never recomputed, an interrupted sweep resumes."""

import os

import jax
import numpy as np
import pytest

from sft_tilt.synthetic.experiments import single_step as ex
from sft_tilt.synthetic.worlds import random_tilt_instances
from record_names import misnamed_keys

N = int(os.environ.get("SIMS_TEST_INSTANCES", "2000"))


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    return tmp_path


def _np_change(P, q, s, learning_rate):
    """dL(P) = E_P[log q - log q_tilted] with q_tilted = q e^{learning_rate s} / Z, in NumPy (log-sum-exp by hand)."""
    logq = np.log(q)
    z = logq + learning_rate[:, None] * s
    m = z.max(-1, keepdims=True)
    logq_lam = z - (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))
    return np.sum(P * (logq - logq_lam), -1)


def test_identities_hold_and_no_bound_is_violated(cache):
    cfg = ex.SingleStepConfig(n_instances=N, chunk=max(N // 2, 1), vocab=8, seed=7)
    res = ex.run(cfg, progress=False)
    assert misnamed_keys(res) == []  # one name per quantity in the record
    s = res["summary"]
    assert s["n_instances"] == N
    assert s["max_identity_error"] < 1e-12
    assert s["max_tradeoff_error"] < 1e-12
    for name in ex.SLACKS:
        assert s[f"violations_{name}"] == 0, name
    assert s["hoeffding_tightness_quantiles"][0] >= 1 - 1e-6
    # Monte-Carlo subset against NumPy: regenerate the first chunk's instances from the same key
    n0 = cfg.chunk
    inst = random_tilt_instances(jax.random.fold_in(jax.random.key(cfg.seed), 0), n0, cfg.vocab, (cfg.learning_rate_lo, cfg.learning_rate_hi))
    q, p1, s_, learning_rate = (np.asarray(x) for x in (inst.q, inst.p1, inst.s, inst.learning_rate))
    D = _np_change(p1, q, s_, learning_rate)
    np.testing.assert_allclose(res["arrays"]["general_change"][:n0], D, rtol=1e-8, atol=1e-10)
    # Hoeffding tightness from its definition: learning_rate^2 (b-a)^2/8 over V = D - learning_rate (E_q s - E_P1 s)
    first = learning_rate * (np.sum(q * s_, -1) - np.sum(p1 * s_, -1))
    V = D - first
    ok = V > 1e-8
    expected = (learning_rate**2 * (s_.max(-1) - s_.min(-1)) ** 2 / 8)[ok] / V[ok]
    np.testing.assert_allclose(res["arrays"]["hoeffding_tightness"][:n0][ok], expected, rtol=1e-5)


def test_finished_chunks_are_not_recomputed_and_sweeps_resume(cache, monkeypatch):
    cfg = ex.SingleStepConfig(n_instances=300, chunk=100, vocab=5, seed=1)
    real = ex._chunk
    calls = []

    def failing(config, i):
        calls.append(i)
        if i == 2:
            raise KeyboardInterrupt  # interrupted in the third chunk
        return real(config, i)

    monkeypatch.setattr(ex, "_chunk", failing)
    with pytest.raises(KeyboardInterrupt):
        ex.run(cfg, progress=False)
    assert calls == [0, 1, 2]

    calls.clear()
    monkeypatch.setattr(ex, "_chunk", lambda config, i: (calls.append(i), real(config, i))[1])
    first = ex.run(cfg, progress=False)
    assert calls == [2]  # only the unfinished chunk

    calls.clear()
    again = ex.run(cfg, progress=False)
    assert calls == []
    np.testing.assert_array_equal(again["arrays"]["general_change"], first["arrays"]["general_change"])


def test_config_validation():
    for kwargs, name in [(dict(n_instances=0), "n_instances"), (dict(learning_rate_lo=0.0), "learning_rate_lo"), (dict(tol=-1.0), "tol")]:
        with pytest.raises(ValueError, match=name):
            ex.SingleStepConfig(**kwargs)
    with pytest.raises(ValueError, match="preset"):
        ex.SingleStepConfig.preset("huge")
