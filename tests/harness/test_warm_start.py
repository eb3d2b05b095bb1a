"""Warm-started runs on the tiny model: the warm-up phase, its stored parameters, the run key, and the second phase
against independent computations (one long SFT run; the warm model's losses computed in NumPy)."""

import warnings
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tiny_harness import counting_train_steps, tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("warm")) as environment:
        yield environment


def _config(preset, method="sft", **kw):
    """A label-format run of the tiny preset without accuracy or model averaging, constant learning rate."""
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.methods.registry import MethodConfig

    cfg = replace(sft_config(preset, 4e-3, "label", 0), method=MethodConfig(method), final_accuracy=False,
                  averaging_alphas=(), schedule="constant", warmup_steps=0)
    return replace(cfg, **kw)


def _warm(**kw):
    from sft_tilt.harness.run_config import WarmStart

    return WarmStart(**{"learning_rate": 4e-3, "steps": 3, "fmt": "label", **kw})


def _warm_key(cfg):
    from sft_tilt.harness.stored_runs import run_key

    return run_key(cfg.warm_start.run_config(cfg))


def test_bad_warm_starts_raise_naming_the_field(env):
    from sft_tilt.harness.run_config import RunConfig, WarmStart
    from sft_tilt.methods.registry import MethodConfig

    for field, value in [("learning_rate", 0.0), ("learning_rate", float("nan")), ("steps", 0), ("steps", 2.0),
                         ("schedule", "cubic"), ("warmup_steps", 3), ("seed", -1), ("fmt", "xml"),
                         ("method", "sft"), ("method", MethodConfig("lora"))]:
        with pytest.raises(ValueError, match=f"^{field}:"):
            WarmStart(**{"learning_rate": 1e-3, "steps": 3, field: value})
    with pytest.raises(ValueError, match="^warm_start:"):
        RunConfig(model=env["model"], data=env["preset"].data, warm_start={"learning_rate": 1e-3, "steps": 3})


def test_the_warm_start_is_in_the_key_only_when_present(env):
    from sft_tilt.harness.stored_runs import _material, run_key
    from sft_tilt.methods.registry import MethodConfig

    cold = _config(env["preset"])
    assert "warm_start" not in cold.describe() and "warm_start" not in _material(cold, "fingerprint")["run"]
    warm = replace(cold, warm_start=_warm())
    variants = [warm] + [replace(cold, warm_start=_warm(**{k: v})) for k, v in
                         [("learning_rate", 1e-3), ("steps", 4), ("seed", 1), ("fmt", "cot"), ("schedule", "linear"),
                          ("method", MethodConfig("talr"))]]
    keys = [run_key(c) for c in [cold] + variants]
    assert len(set(keys)) == len(keys)
    # the warm-up run is a run of its own: the cold run of its settings
    assert _warm_key(warm) == run_key(replace(cold, steps=3, eval_every=3))


def test_the_warm_phase_is_reproducible_and_its_record_verified(env, monkeypatch, tmp_path):
    from sft_tilt.harness import runs, warm_starts
    from sft_tilt.store import StoreWarning, read_record

    cfg = _config(env["preset"], warm_start=_warm())
    key = _warm_key(cfg)
    path = warm_starts.params_path(key)
    assert not path.exists()
    calls = counting_train_steps(monkeypatch, runs)
    with pytest.warns(UserWarning, match=f"{path}: no stored warm-start parameters"):
        first = runs.run_one(cfg, progress=False)
    assert len(calls) == cfg.warm_start.steps + cfg.steps and path.is_file()
    stored = read_record(path, key=key)["leaves"]
    # the warm model is where the warm-up run, computed as a plain run in another folder, ends
    monkeypatch.setenv("SFT_RUNS_DIR", str(tmp_path / "plain"))
    plain = runs.run_one(cfg.warm_start.run_config(cfg), progress=False)
    assert first["base"]["domain_loss"] == pytest.approx(plain["points"][-1]["domain_loss"], rel=1e-6)
    assert first["base"]["general"] == pytest.approx(plain["points"][-1]["general"], rel=1e-6)
    assert first["warm_start"] == {"key": key} and first["config"]["warm_start"]["steps"] == 3
    # a second run from the same warm model reads the record: only its own steps are computed
    calls.clear()
    other = replace(cfg, learning_rate=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        runs.run_one(other, progress=False)
    assert len(calls) == other.steps
    # a damaged record is reported by path and recomputed to the same parameters
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    calls.clear()
    with pytest.warns(StoreWarning, match=str(path)), pytest.warns(UserWarning, match=f"{path}: no stored"):
        again = runs.run_one(replace(cfg, learning_rate=2e-3), progress=False)
    assert len(calls) == cfg.warm_start.steps + cfg.steps
    recomputed = read_record(path, key=key)["leaves"]
    assert len(recomputed) == len(stored)
    assert all(np.array_equal(a, b) for a, b in zip(recomputed, stored))
    assert again["base"] == first["base"]


def test_a_warm_sft_run_continues_one_long_sft_run(env, monkeypatch, tmp_path):
    """With SGD (no optimiser state to restart) and full batches (every step sees the whole training set, so the
    batch order does not matter), warm-up then SFT at the same rate is one long SFT run."""
    from sft_tilt.harness import runs

    preset = env["preset"]
    plain = dict(optimizer="sgd", learning_rate=0.3, batch_size=preset.data.n_train, eval_every=1)
    warm_steps, steps = 2, 3
    cfg = _config(preset, steps=steps, warm_start=_warm(learning_rate=0.3, steps=warm_steps), **plain)
    with pytest.warns(UserWarning, match="no stored warm-start parameters"):
        warm = runs.run_one(cfg, progress=False)
    long = runs.run_one(_config(preset, steps=warm_steps + steps, **plain), progress=False)
    points, pretrained = long["points"], long["base"]
    assert warm["pretrained"]["domain_loss"] == pytest.approx(pretrained["domain_loss"], rel=1e-9)
    assert warm["base"]["domain_loss"] == pytest.approx(points[warm_steps - 1]["domain_loss"], abs=1e-4)
    for k, p in enumerate(warm["points"]):
        q = points[warm_steps + k]
        assert p["domain_loss"] == pytest.approx(q["domain_loss"], abs=1e-4)
        assert p["general"] == pytest.approx(q["general"], abs=1e-4)
        # changes from the model file's parameters are the long run's; the run's own are from the warm model
        assert p["from_pretrained"]["domain_gain"] == pytest.approx(q["domain_gain"], abs=1e-4)
        assert p["from_pretrained"]["general_change_mean"] == pytest.approx(q["general_change_mean"], abs=1e-4)
        assert p["domain_gain"] == pytest.approx(q["domain_gain"] - points[warm_steps - 1]["domain_gain"], abs=1e-4)
    # the comparison can fail: the long run moves far more than the tolerance between these points, and a warm run
    # started from the model file (the steps not shifted) is not the long run's continuation
    gaps = np.abs(np.diff([pretrained["domain_loss"]] + [p["domain_loss"] for p in points]))
    assert gaps.min() > 1e-2
    assert abs(warm["points"][0]["domain_loss"] - points[0]["domain_loss"]) > 1e-2


def _warm_sequence_nll(session, params, fmt):
    """The warm model's mean NLL of each training sequence, in float64 NumPy from the forward logits."""
    from sft_tilt.lm.model import forward

    enc = session.train[fmt]
    logits = np.asarray(forward(params, session.config, jnp.asarray(enc.tokens)), np.float64)[:, :-1]
    top = logits.max(-1, keepdims=True)
    logz = np.log(np.exp(logits - top).sum(-1)) + top[..., 0]
    nll = logz - np.take_along_axis(logits, np.asarray(enc.tokens)[:, 1:, None], -1)[..., 0]
    mask = np.asarray(enc.loss_mask, np.float64)[:, 1:]
    return (nll * mask).sum(1) / mask.sum(1)


def test_flow_weights_come_from_the_warm_model(env, monkeypatch):
    from sft_tilt.harness import runs, warm_starts
    from sft_tilt.harness.session import get_session

    preset = env["preset"]
    cfg = _config(preset, "flow", warm_start=_warm(learning_rate=1e-2))
    seen = []
    batch = runs._batch

    def recording(cfg_, session, step, sequence_weights):
        b, idx = batch(cfg_, session, step, sequence_weights)
        if sequence_weights is not None and cfg_ == cfg:
            seen.append((idx, np.asarray(b["sequence_weights"])))
        return b, idx

    monkeypatch.setattr(runs, "_batch", recording)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        runs.run_one(cfg, progress=False)
    session = get_session(preset.resolved_model(), preset.tokenizer, preset.data)
    key = _warm_key(cfg)
    params = warm_starts.read_params(warm_starts.params_path(key), key, session.params)
    f_warm = _warm_sequence_nll(session, params, "label")
    f_file = _warm_sequence_nll(session, session.params, "label")
    expected = np.exp(-f_warm / np.median(f_warm))
    assert seen
    for idx, w in seen:
        np.testing.assert_allclose(w, expected[idx], rtol=1e-4)
    # the model file's weights differ: the check tells the two apart
    assert not np.allclose(np.exp(-f_file / np.median(f_file)), expected, rtol=1e-3)
