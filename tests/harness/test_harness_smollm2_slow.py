"""A few optimiser steps of the real SmolLM2-135M-Instruct with every method (slow: minutes on 2 CPU cores).

Fast counterpart: ``tests/harness/test_harness_pipeline.py`` runs the same code on a tiny random model.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def session():
    from sft_tilt.harness.presets import SHORT_CALCULATORS
    from sft_tilt.harness.session import DataConfig, Session
    from sft_tilt.lm.gguf_io import default_model_path

    data = DataConfig(n_train=2, n_heldout=1, calculators=SHORT_CALCULATORS, seq_len_cot=320, seq_len_label=160, n_self=1,
                      n_docs=1, n_code=1, eval_batch=1, n_accuracy=0)
    return Session(str(default_model_path()), None, data)


def _batch_loss(session, params, batch) -> float:
    from sft_tilt.lm.model import per_token_losses

    losses = np.asarray(per_token_losses(params, session.config, batch["tokens"], batch["loss_mask"]), np.float64)
    mask = np.asarray(batch["loss_mask"], np.float64)[:, 1:]
    return float((losses * mask).sum() / mask.sum())


@pytest.mark.parametrize("name", ["sft", "talr", "dft", "flow", "l2", "lora"])
def test_two_steps_of_each_method_lower_the_training_loss(session, name):
    from sft_tilt.harness.methods import MethodConfig, full_params, init_trainable, make_optimizer, make_train_step

    enc = session.train["cot"]
    batch = {"tokens": jnp.asarray(enc.tokens[:2]), "loss_mask": jnp.asarray(enc.loss_mask[:2])}
    if name == "flow":
        batch["sequence_weights"] = jnp.asarray([1.0, 0.5], jnp.float32)
    method = MethodConfig(name=name)
    trainable, frozen = init_trainable(method, session.params, jax.random.key(0))
    opt_state = make_optimizer(1e-3 if name == "lora" else 1e-4).init(trainable)
    step = make_train_step(method, session.config)
    before = _batch_loss(session, session.params, batch)
    for _ in range(2):
        trainable, opt_state, loss, aux = step(trainable, opt_state, frozen, batch)
        assert np.isfinite(float(loss))
    after = _batch_loss(session, full_params(method, trainable, frozen), batch)
    assert after < before, (name, before, after)
    if name == "lora":  # the base weights never move
        np.testing.assert_array_equal(np.asarray(frozen["base"]["layers"]["wk"]), np.asarray(session.params["layers"]["wk"]))
