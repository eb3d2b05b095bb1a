"""One step of SFT and TALR under SGD and Adam (``sft_tilt.harness.optimizer_step``) on a tiny random model, against
the step and the losses written out here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness.optimizer_step import OptimizerStepPlan, first_targets, measure_optimizer_steps
from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import init_params, token_log_probs

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")

CONFIG = ModelConfig.tiny(n_layers=1)
PLAN = OptimizerStepPlan(methods=("sft", "talr"), optimizers=("sgd", "adam"), formats=("cot",), batch=3,
                         probe_tokens=30, gain_fractions=(0.02, 0.1))


def _set(key, B, T):
    k1, k2 = jax.random.split(key)
    tokens = np.asarray(jax.random.randint(k1, (B, T), 0, CONFIG.vocab_size), np.int32)
    mask = np.asarray(jax.random.uniform(k2, (B, T)) > 0.3, np.float32)
    mask[:, -3:] = 0.0  # padding at the end, as the encoded sets have
    return {"tokens": tokens, "loss_mask": mask}


def _mean_nll(params, batch) -> float:
    """The batch's mean target loss written out: minus the mean log-probability of the scored targets."""
    logp = np.asarray(token_log_probs(params, CONFIG, jnp.asarray(batch["tokens"])), np.float64)
    m = np.asarray(batch["loss_mask"], np.float64)[:, 1:]
    return float(-(logp * m).sum() / m.sum())


@pytest.fixture(scope="module")
def measured():
    params = init_params(CONFIG, jax.random.key(3))
    domain = _set(jax.random.key(4), 3, 16)
    probe = first_targets(**_set(jax.random.key(5), 4, 16), n_targets=PLAN.probe_tokens)
    return params, domain, probe, measure_optimizer_steps(params, CONFIG, {"cot": domain}, probe, PLAN)


def test_first_targets_keeps_the_first_n_targets_in_reading_order_and_cuts_the_padding():
    tokens = np.arange(24).reshape(3, 8)
    mask = np.array([[0, 1, 1, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0]], np.float32)
    out = first_targets(tokens, mask, 4)
    # row 1 has no target and is dropped; row 2 keeps its first two targets (columns 1, 2); columns after 2 are cut
    np.testing.assert_array_equal(out["tokens"], tokens[[0, 2], :3])
    np.testing.assert_array_equal(out["loss_mask"], [[0, 1, 1], [0, 1, 1]])
    assert first_targets(tokens, mask, np.inf)["loss_mask"].sum() == mask[:, 1:].sum()
    with pytest.raises(ValueError, match="loss_mask"):
        first_targets(tokens, np.zeros_like(mask), 3)


def test_each_step_is_the_optimisers_first_update_and_its_losses_are_measured(measured):
    params, domain, probe, record = measured
    res = record["formats"]["cot"]
    loss0 = _mean_nll(params, domain)
    assert res["domain_loss"] == pytest.approx(loss0, rel=1e-5)
    assert record["probe_tokens"] == PLAN.probe_tokens == int(probe["loss_mask"][:, 1:].sum())
    grad_sft = jax.grad(lambda p: -jnp.sum(token_log_probs(p, CONFIG, jnp.asarray(domain["tokens"]))
                                           * domain["loss_mask"][:, 1:]) / domain["loss_mask"][:, 1:].sum())(params)
    g = np.concatenate([np.asarray(x, np.float64).ravel() for x in jax.tree_util.tree_leaves(grad_sft)])
    for opt, want_dir in (("sgd", -g), ("adam", -g / (np.abs(g) + 1e-8))):  # Adam's first step from a fresh state
        arm = res["arms"][opt]["sft"]
        assert arm["unit_update_norm"] == pytest.approx(np.linalg.norm(want_dir), rel=1e-4)
        assert arm["gain_per_unit_rate"] == pytest.approx(-g @ want_dir, rel=1e-4)
        for fraction, step in zip(PLAN.gain_fractions, arm["steps"]):
            eta = step["learning_rate"]
            assert eta * arm["gain_per_unit_rate"] == pytest.approx(fraction * res["domain_loss"], rel=1e-12)
            leaves, tree = jax.tree_util.tree_flatten(params)
            sizes = np.cumsum([0] + [x.size for x in leaves])
            after = jax.tree_util.tree_unflatten(tree, [
                (np.asarray(x, np.float64) + eta * want_dir[a:b].reshape(x.shape)).astype(np.float32)
                for x, a, b in zip(leaves, sizes[:-1], sizes[1:])])
            assert step["domain_change"] == pytest.approx(_mean_nll(after, domain) - loss0, rel=2e-3, abs=2e-5)
            assert step["domain_gain"] == -step["domain_change"]
            assert step["measured_change"] == pytest.approx(_mean_nll(after, probe) - _mean_nll(params, probe),
                                                            rel=2e-3, abs=2e-5)
            assert step["update_norm"] == pytest.approx(eta * np.linalg.norm(want_dir), rel=1e-4)


def test_the_first_order_gain_from_gradients_is_the_monitors_from_the_logits(measured):
    """Two computations of ``g1``: ``-<grad L_S, d>`` over the parameters, and the monitor's
    ``(1/M) sum_j (r_j(y_j) - E_q r_j)`` from the forward-mode change of the logits."""
    _, _, _, record = measured
    for arms in record["formats"]["cot"]["arms"].values():
        for arm in arms.values():
            for step in arm["steps"]:
                assert step["domain_gain_rate"] == pytest.approx(arm["gain_per_unit_rate"], rel=1e-3)


def test_talrs_weights_shorten_the_sgd_step_and_not_adams(measured):
    """TALR's weights are at most 1: under SGD its gradient, and so its step per unit rate, is shorter than SFT's;
    Adam's first step has one entry of size about 1 per coordinate with a gradient, whatever the weights."""
    _, _, _, record = measured
    arms = record["formats"]["cot"]["arms"]
    assert arms["sgd"]["talr"]["unit_update_norm"] < 0.9 * arms["sgd"]["sft"]["unit_update_norm"]
    assert arms["adam"]["talr"]["unit_update_norm"] == pytest.approx(arms["adam"]["sft"]["unit_update_norm"], rel=1e-3)
    # so TALR needs a larger SGD rate than SFT for the same first-order domain gain
    assert arms["sgd"]["talr"]["steps"][0]["learning_rate"] > arms["sgd"]["sft"]["steps"][0]["learning_rate"]


def test_a_bad_plan_is_refused_naming_the_field():
    for kwargs, name in ((dict(methods=("talr",)), "methods"), (dict(methods=("sft", "nope")), "nope"),
                         (dict(optimizers=("sgd", "lbfgs")), "optimizers"), (dict(batch=0), "batch"),
                         (dict(gain_fractions=(0.2, 0.1)), "gain_fractions"), (dict(gain_fractions=(1.5,)), "gain_fractions")):
        with pytest.raises(ValueError, match=name):
            OptimizerStepPlan(**kwargs)
