"""Synthetic softmax models: one SGD step on CE is exactly an exponential tilt; leakage only through features."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sft_tilt.theory
from sft_tilt.synthetic.models import ModelConfig, all_log_probs, build_model, init_params, token_losses
from sft_tilt.synthetic.worlds import WorldConfig, make_world

# Spends its time running compiled programs rather than compiling them: `make test` runs it at XLA's default
# optimisation (see tests/conftest.py).
pytestmark = pytest.mark.execution_bound


def _sgd_step(model, world, learning_rate):
    W0 = init_params(model)
    loss = lambda W: jnp.mean(token_losses(model, W, world.contexts, world.targets))  # noqa: E731
    return W0 - learning_rate * jax.grad(loss)(W0)


@pytest.mark.parametrize("learning_rate", [0.01, 1.0, 30.0])
def test_free_logit_sgd_step_is_the_exponential_tilt(learning_rate):
    world = make_world(WorldConfig(seed=5))
    model = build_model(world, ModelConfig("free"))
    W1 = _sgd_step(model, world, learning_rate)
    q0 = np.exp(np.asarray(world.log_q0))
    q1 = np.exp(np.asarray(all_log_probs(model, W1)))
    # independent: counts of (context, target) pairs -> empirical P2 per context, tilt s = P2_c - q_c, learning_rate = learning_rate n_c / N
    ctx, tgt = np.asarray(world.contexts).ravel(), np.asarray(world.targets).ravel()
    N = ctx.size
    for c in range(q0.shape[0]):
        n_c = np.sum(ctx == c)
        if n_c == 0:
            np.testing.assert_allclose(q1[c], q0[c], rtol=1e-13)
            continue
        p2 = np.bincount(tgt[ctx == c], minlength=q0.shape[1]) / n_c
        np.testing.assert_allclose(q1[c], np.asarray(sft_tilt.theory.tilt(q0[c], p2 - q0[c], learning_rate * n_c / N)), rtol=1e-9)


def test_shared_features_have_the_requested_coupling():
    world = make_world(WorldConfig(n_general=10, n_domain=6, overlap=0.5))
    model = build_model(world, ModelConfig("shared", dim=40, coupling=0.3))
    F = np.asarray(model.features)
    G = F @ F.T
    np.testing.assert_allclose(np.diag(G), 1.0, rtol=1e-12)
    off = G[~np.eye(len(G), dtype=bool)]
    np.testing.assert_allclose(off, 0.3, atol=1e-12)


def test_shared_step_leaks_into_general_contexts_as_a_tilt_along_the_feature_overlap():
    world = make_world(WorldConfig(overlap=0.0, seed=2))
    learning_rate = 0.5
    free = build_model(world, ModelConfig("free"))
    shared = build_model(world, ModelConfig("shared", dim=64, coupling=0.4, seed=1))
    general = np.nonzero(np.asarray(world.general_weights))[0]
    q0 = np.exp(np.asarray(world.log_q0))
    # free logits with no overlap: general contexts untouched
    q1 = np.exp(np.asarray(all_log_probs(free, _sgd_step(free, world, learning_rate))))
    np.testing.assert_allclose(q1[general], q0[general], rtol=1e-13)
    # shared: general logits move by f_g . dW, i.e. a tilt with s = f_g @ dW / learning_rate
    W1 = np.asarray(_sgd_step(shared, world, learning_rate))
    q1 = np.exp(np.asarray(all_log_probs(shared, W1)))
    F = np.asarray(shared.features)
    for c in general[:5]:
        s = F[c] @ W1 / learning_rate
        np.testing.assert_allclose(q1[c], np.asarray(sft_tilt.theory.tilt(q0[c], s, learning_rate)), rtol=1e-9)
    assert np.max(np.abs(q1[general] - q0[general])) > 1e-4  # the leakage is real


def test_model_config_validation():
    for kwargs, name in [(dict(kind="mlp"), "kind"), (dict(dim=0), "dim"), (dict(coupling=2.0), "coupling")]:
        with pytest.raises(ValueError, match=name):
            ModelConfig(**kwargs)
