"""The one LM trainer (``sft_tilt.harness.methods``): its SFT objective, gradients and update, each against an
independent computation on a one-block random model."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sft_tilt.harness.methods import MethodConfig, init_trainable, make_objective, make_train_step
from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import init_params, token_log_probs
from sft_tilt.lm.supervised_loss import supervised_capacity

CONFIG = ModelConfig.tiny(n_layers=1)  # one block: these tests are about the step, not depth (compile time)
SFT = MethodConfig("sft")


def _batch(key, B=4, T=12):
    k1, k2 = jax.random.split(key)
    tokens = jax.random.randint(k1, (B, T), 0, CONFIG.vocab_size).astype(jnp.int32)
    mask = (jax.random.uniform(k2, (B, T)) > 0.35).astype(jnp.float32)
    return {"tokens": tokens, "loss_mask": mask}


def _token_mean_nll(params, batch) -> float:
    """The SFT loss written out: minus the mean over target tokens (t >= 1, mask on) of their log-probabilities."""
    logp = np.asarray(jax.jit(token_log_probs, static_argnums=1)(params, CONFIG, batch["tokens"]), np.float64)
    m = np.asarray(batch["loss_mask"], np.float64)[:, 1:]
    return float(-(logp * m).sum() / m.sum())


def _max_diff(a, b):
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


@pytest.mark.parametrize("with_capacity", [False, True])
def test_the_sft_objective_is_the_token_mean_of_target_nll(with_capacity):
    """With a capacity the output head runs only at target tokens (what a run does); without, at every position:
    both are the token mean of the target NLL."""
    params = init_params(CONFIG, jax.random.key(0))
    batch = _batch(jax.random.key(1))
    capacity = supervised_capacity(np.asarray(batch["loss_mask"])) if with_capacity else None
    loss, aux = jax.jit(make_objective(SFT, CONFIG, capacity))(params, {}, batch)
    np.testing.assert_allclose(float(loss), _token_mean_nll(params, batch), rtol=1e-6)
    assert np.asarray(aux["losses"]).shape == (4, 11)


def test_the_gradient_matches_central_finite_differences_in_float64():
    assert jnp.zeros(()).dtype == jnp.float64, "tests must run with JAX_ENABLE_X64=1"
    params = init_params(CONFIG, jax.random.key(2), dtype=jnp.float64)
    batch = _batch(jax.random.key(3))
    objective = jax.jit(lambda p: make_objective(SFT, CONFIG)(p, {}, batch)[0])
    grads = jax.grad(objective)(params)
    keys = jax.random.split(jax.random.key(4), len(jax.tree_util.tree_leaves(params)))
    direction = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params),
                                             [jax.random.normal(k, a.shape, jnp.float64)
                                              for k, a in zip(keys, jax.tree_util.tree_leaves(params))])
    eps = 1e-5
    plus = jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda p, d: p - eps * d, params, direction)
    fd = (float(objective(plus)) - float(objective(minus))) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction)))
    assert abs(analytic) > 1e-3
    np.testing.assert_allclose(analytic, fd, rtol=1e-5)


def test_an_sgd_step_subtracts_the_learning_rate_times_the_gradient():
    """The step's optimiser holds the learning rate in its state: the run sets it per step (its schedule)."""
    params = init_params(CONFIG, jax.random.key(9))
    batch = _batch(jax.random.key(10))
    grads = jax.grad(lambda p: make_objective(SFT, CONFIG)(p, {}, batch)[0])(params)
    step = make_train_step(SFT, CONFIG, "sgd")
    trainable, frozen = init_trainable(SFT, params, jax.random.key(0))
    state = step.optimizer.init(trainable)
    state.hyperparams["learning_rate"] = jnp.asarray(0.5, jnp.float32)
    new, _, loss, _ = step(trainable, state, frozen, batch)
    assert _max_diff(new, jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grads)) < 1e-6
    np.testing.assert_allclose(float(loss), _token_mean_nll(params, batch), rtol=1e-6)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new))


def test_adam_steps_reduce_the_loss_on_a_fixed_batch():
    params = init_params(CONFIG, jax.random.key(11))
    batch = _batch(jax.random.key(12))
    capacity = supervised_capacity(np.asarray(batch["loss_mask"]))
    step = make_train_step(SFT, CONFIG, "adam", None, capacity)
    trainable, frozen = init_trainable(SFT, params, jax.random.key(0))
    state = step.optimizer.init(trainable)
    state.hyperparams["learning_rate"] = jnp.asarray(3e-3, jnp.float32)
    losses = []
    for _ in range(15):
        trainable, state, loss, _ = step(trainable, state, frozen, batch)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert isinstance(step.optimizer, optax.GradientTransformation)


def test_a_batch_with_more_targets_than_the_capacity_is_refused_before_the_step():
    params = init_params(CONFIG, jax.random.key(0))
    batch = _batch(jax.random.key(1))
    step = make_train_step(SFT, CONFIG, "adam", None, 2)
    trainable, frozen = init_trainable(SFT, params, jax.random.key(0))
    with pytest.raises(ValueError, match="batch: .* target tokens, more than the step's capacity=2"):
        step(trainable, step.optimizer.init(trainable), frozen, batch)
