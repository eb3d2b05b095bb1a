"""Synthetic training loop: measured domain gain and general change against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sft_tilt.theory
from sft_tilt.synthetic.models import ModelConfig, all_log_probs, build_model, init_params
from sft_tilt.synthetic.training import (
    TrainConfig,
    context_sets,
    general_change,
    domain_gain,
    train_epochs,
    train_to_gain,
)
from sft_tilt.methods.registry import MethodConfig
from sft_tilt.synthetic.worlds import WorldConfig, make_world

# Spends its time running compiled programs rather than compiling them: `make test` runs it at XLA's default
# optimisation (see tests/conftest.py).
pytestmark = pytest.mark.execution_bound


WORLD = make_world(WorldConfig(seed=4))


def _np_general_change(model, W, world):
    q0 = np.exp(np.asarray(world.log_q0))
    q = np.exp(np.asarray(all_log_probs(model, W)))
    p1 = np.exp(np.asarray(world.log_p1))
    per = np.sum(p1 * (np.log(p1) - np.log(q)), -1) - np.sum(p1 * (np.log(p1) - np.log(q0)), -1)  # KL difference
    return float(np.sum(np.asarray(world.general_weights) * per))


@pytest.mark.parametrize("kind", ["free", "shared"])
def test_train_to_gain_matches_the_target_and_telescopes(kind):
    model = build_model(WORLD, ModelConfig(kind, dim=48, coupling=0.3))
    target, learning_rate = 0.8, 2.0
    out = jax.jit(lambda learning_rate: train_to_gain(model, WORLD, TrainConfig(), learning_rate, target, 500, record=True, constants=True))(learning_rate)
    assert bool(out["reached"])
    assert float(out["domain_gain"]) >= target
    assert float(out["matched_domain_gain"]) == pytest.approx(target, abs=1e-9)
    assert 0 < float(out["alpha"]) <= 1
    T = int(out["steps"])
    # per-step changes measured by the theory package from the recorded logits sum to the end-point values
    sets = context_sets(WORLD)
    tc = sft_tilt.theory.matched_gain_constants_from_trajectory(
        out["logits_general"][: T + 1], out["logits_domain"][: T + 1], sets.general_p, sets.domain_p, learning_rate,
        weights_general=sets.general_w, weights_domain=sets.domain_w,
    )
    # (the theory package's trajectory constants name them total_gain and total_degradation)
    assert float(tc.total_gain) == pytest.approx(float(out["domain_gain"]), rel=1e-9)
    assert float(tc.total_degradation) == pytest.approx(float(out["general_change"]), rel=1e-9, abs=1e-14)
    # the online (step-pair) summaries equal the theory package's summaries of the whole recorded trajectory
    theirs = {"total_domain_gain": "total_gain"}
    for name in ("rho_max", "g_min", "g_max", "s_range", "s_range_general", "g_initial", "gain_decay", "rho_initial",
                 "leakage_growth", "total_domain_gain"):
        assert float(out[f"c_{name}"]) == pytest.approx(float(getattr(tc, theirs.get(name, name))), rel=1e-9, abs=1e-15), name
    # the general change itself against a NumPy KL difference at the final logits
    W_final_logits = np.asarray(out["logits_general"][T])
    assert np.all(np.isfinite(W_final_logits))


def test_general_change_and_domain_gain_against_numpy():
    model = build_model(WORLD, ModelConfig("shared", dim=32, coupling=0.5))
    W = jax.random.normal(jax.random.key(0), init_params(model).shape) * 0.3
    assert float(general_change(model, W, WORLD)) == pytest.approx(_np_general_change(model, W, WORLD), rel=1e-10)
    logq = np.asarray(all_log_probs(model, W))
    logq0 = np.asarray(WORLD.log_q0)
    ctx, tgt = np.asarray(WORLD.contexts), np.asarray(WORLD.targets)
    expected = np.mean(logq[ctx, tgt] - logq0[ctx, tgt])
    assert float(domain_gain(model, W, WORLD)) == pytest.approx(expected, rel=1e-10)


def test_no_overlap_and_free_logits_means_no_degradation():
    world = make_world(WorldConfig(overlap=0.0, seed=1))
    model = build_model(world, ModelConfig("free"))
    out = train_to_gain(model, world, TrainConfig(), 3.0, 0.5, 300)
    assert bool(out["reached"]) and float(out["general_change"]) == 0.0


def test_overlap_makes_degradation_positive_and_l2_shrinks_the_update():
    model = build_model(WORLD, ModelConfig("free"))
    plain = train_to_gain(model, WORLD, TrainConfig(), 1.0, 0.5, 1000)
    assert float(plain["matched_general_change"]) > 0
    e0 = train_epochs(model, WORLD, TrainConfig(), 1.0, 2, 3)
    e1 = train_epochs(model, WORLD, TrainConfig(method=MethodConfig("l2", mu=1.0)), 1.0, 2, 3)
    assert float(e1["domain_gain"][-1]) < float(e0["domain_gain"][-1])


@pytest.mark.parametrize("method", [MethodConfig("talr"), MethodConfig("flow")], ids=lambda m: m.name)
def test_train_epochs_records_token_statistics(method):
    model = build_model(WORLD, ModelConfig("free"))
    cfg = TrainConfig(optimizer="adam", batch_size=8, method=method, seed=3)
    run = jax.jit(lambda learning_rate: train_epochs(model, WORLD, cfg, learning_rate, 4, 4))
    out = run(0.05)
    p0 = np.exp(np.asarray(WORLD.log_q0))[np.asarray(WORLD.contexts), np.asarray(WORLD.targets)]
    np.testing.assert_allclose(out["token_prob"][0], p0, rtol=1e-12)
    assert float(out["frac_easy"][0]) == pytest.approx(np.mean(p0 > 0.2))
    assert float(out["median_prob"][0]) == pytest.approx(np.median(p0))
    assert out["domain_gain"].shape == (5,) and float(out["domain_gain"][-1]) > 0
    again = run(jnp.asarray(0.05))  # deterministic given the seed
    np.testing.assert_array_equal(out["token_prob"], again["token_prob"])


def test_train_config_validation():
    for kwargs, name in [(dict(optimizer="lion"), "optimizer"), (dict(batch_size=0), "batch_size"),
                         (dict(method="talr"), "method")]:
        with pytest.raises(ValueError, match=name):
            TrainConfig(**kwargs)
    with pytest.raises(ValueError, match="mu"):
        MethodConfig("l2", mu=-1.0)
