"""Training step: gradients against finite differences, accumulation against the full batch, two devices against one."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import init_params, token_log_probs
from sft_tilt.lm.training import accumulated_value_and_grad as _accumulated_value_and_grad
from sft_tilt.lm.training import default_optimizer, make_train_step, masked_mean_nll

CONFIG = ModelConfig.tiny(n_layers=1)  # one block: these tests are about the step, not depth (compile time)
LOSS_FN = masked_mean_nll(CONFIG)  # one object, so jitted functions taking it as a static argument compile once
# Jitted: op-by-op execution of the model is far slower than compiling it once on a loaded 2-core machine.
accumulated_value_and_grad = jax.jit(_accumulated_value_and_grad, static_argnums=(0, 3, 4))


def _batch(key, B=4, T=12, config=CONFIG):
    k1, k2 = jax.random.split(key)
    tokens = jax.random.randint(k1, (B, T), 0, config.vocab_size).astype(jnp.int32)
    mask = (jax.random.uniform(k2, (B, T)) > 0.35).astype(jnp.float32)
    return {"tokens": tokens, "loss_mask": mask}


def _max_diff(a, b):
    return max(float(jnp.abs(x - y).max()) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))


def test_masked_mean_nll_is_the_token_mean_of_target_log_probs():
    params = init_params(CONFIG, jax.random.key(0))
    batch = _batch(jax.random.key(1))
    loss, aux = jax.jit(LOSS_FN)(params, batch)
    logp = np.asarray(jax.jit(token_log_probs, static_argnums=1)(params, CONFIG, batch["tokens"]), dtype=np.float64)
    m = np.asarray(batch["loss_mask"])[:, 1:]
    assert float(aux["weight"]) == m.sum()
    np.testing.assert_allclose(float(loss), -(logp * m).sum() / m.sum(), rtol=1e-6)


def test_gradient_matches_central_finite_differences_in_float64():
    assert jnp.zeros(()).dtype == jnp.float64, "tests must run with JAX_ENABLE_X64=1"
    params = init_params(CONFIG, jax.random.key(2), dtype=jnp.float64)
    batch = _batch(jax.random.key(3))
    loss_fn = jax.jit(LOSS_FN)
    _, grads, _ = accumulated_value_and_grad(loss_fn, params, batch, 1, None)
    direction = jax.tree_util.tree_map(lambda a, k: jax.random.normal(k, a.shape, jnp.float64), params,
                                       jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(params),
                                                                    list(jax.random.split(jax.random.key(4), len(jax.tree_util.tree_leaves(params))))))
    eps = 1e-5
    plus = jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)
    minus = jax.tree_util.tree_map(lambda p, d: p - eps * d, params, direction)
    fd = (float(loss_fn(plus, batch)[0]) - float(loss_fn(minus, batch)[0])) / (2 * eps)
    analytic = sum(float(jnp.vdot(g, d)) for g, d in zip(jax.tree_util.tree_leaves(grads),
                                                         jax.tree_util.tree_leaves(direction)))
    assert abs(analytic) > 1e-3
    np.testing.assert_allclose(analytic, fd, rtol=1e-5)


@pytest.mark.parametrize("accum_steps", [4])
def test_weighted_accumulation_equals_the_full_batch(accum_steps):
    params = init_params(CONFIG, jax.random.key(5))
    batch = _batch(jax.random.key(6), B=8)
    loss_fn = LOSS_FN
    full_loss, full_grads, full_aux = accumulated_value_and_grad(loss_fn, params, batch, 1, None)
    loss, grads, aux = accumulated_value_and_grad(loss_fn, params, batch, accum_steps, None)
    np.testing.assert_allclose(float(loss), float(full_loss), rtol=1e-6)
    assert _max_diff(grads, full_grads) < 1e-6
    assert float(aux["weight"]) == float(full_aux["weight"]) == float(batch["loss_mask"][:, 1:].sum())


def test_unweighted_accumulation_is_the_mean_of_microbatch_losses():
    params = init_params(CONFIG, jax.random.key(7))
    batch = _batch(jax.random.key(8), B=4)

    def loss_fn(p, b):  # no "weight": every microbatch counts equally
        loss, _ = LOSS_FN(p, b)
        return loss, {"first_token": b["tokens"][0, 0].astype(jnp.float32)}

    loss, grads, aux = accumulated_value_and_grad(loss_fn, params, batch, 2, None)
    rows = [np.array([0, 2]), np.array([1, 3])]  # microbatch i = rows i, i + k, ...
    value_and_grad = jax.jit(jax.value_and_grad(lambda p, b: loss_fn(p, b)[0]))
    parts = [value_and_grad(params, {k: v[r] for k, v in batch.items()}) for r in rows]
    np.testing.assert_allclose(float(loss), (float(parts[0][0]) + float(parts[1][0])) / 2, rtol=1e-6)
    mean_grads = jax.tree_util.tree_map(lambda a, b: (a + b) / 2, parts[0][1], parts[1][1])
    assert _max_diff(grads, mean_grads) < 1e-6
    assert float(aux["first_token"]) == (float(batch["tokens"][0, 0]) + float(batch["tokens"][1, 0])) / 2
    assert float(aux["weight"]) == 2.0


def test_sgd_step_subtracts_the_gradient_and_reports_metrics():
    params = init_params(CONFIG, jax.random.key(9))
    batch = _batch(jax.random.key(10))
    loss, grads, _ = accumulated_value_and_grad(LOSS_FN, params, batch, 1, None)
    opt = optax.sgd(0.5)
    step = make_train_step(CONFIG, opt, accum_steps=2)
    new, _, metrics = step(params, opt.init(params), batch)
    expected = jax.tree_util.tree_map(lambda p, g: p - 0.5 * g, params, grads)
    assert _max_diff(new, expected) < 1e-6
    np.testing.assert_allclose(float(metrics["loss"]), float(loss), rtol=1e-6)
    np.testing.assert_allclose(float(metrics["grad_norm"]), float(optax.tree.norm(grads)), rtol=1e-5)
    assert all(x.dtype == jnp.float32 for x in jax.tree_util.tree_leaves(new))


def test_adamw_steps_reduce_the_loss_on_a_fixed_batch():
    params = init_params(CONFIG, jax.random.key(11))
    batch = _batch(jax.random.key(12))
    opt = default_optimizer(learning_rate=3e-3)
    step = make_train_step(CONFIG, opt)
    state = opt.init(params)
    losses = []
    for _ in range(15):
        params, state, metrics = step(params, state, batch)
        losses.append(float(metrics["loss"]))
    assert losses[-1] < 0.5 * losses[0]


def test_bfloat16_compute_keeps_float32_master_weights_and_close_gradients():
    params = init_params(CONFIG, jax.random.key(13))
    batch = _batch(jax.random.key(14))
    loss_fn = LOSS_FN
    _, g32, _ = accumulated_value_and_grad(loss_fn, params, batch, 1, None)
    _, g16, _ = accumulated_value_and_grad(loss_fn, params, batch, 1, jnp.bfloat16)
    assert all(g.dtype == jnp.float32 for g in jax.tree_util.tree_leaves(g16))
    rel = float(optax.tree.norm(jax.tree_util.tree_map(lambda a, b: a - b, g16, g32)) / optax.tree.norm(g32))
    assert rel < 0.1


@pytest.mark.parametrize("batch_update, match", [
    ({"tokens": jnp.zeros((3, 12), jnp.int32), "loss_mask": jnp.ones((3, 12))}, "divisible"),
    ({"tokens": jnp.zeros((4, 12), jnp.int32), "loss_mask": jnp.ones((4, 11))}, "loss_mask"),
    ({"tokens": jnp.zeros((4, 65), jnp.int32), "loss_mask": jnp.ones((4, 65))}, "max_seq_len"),
])
def test_bad_batches_are_rejected(batch_update, match):
    params = init_params(CONFIG, jax.random.key(0))
    opt = optax.sgd(0.1)
    step = make_train_step(CONFIG, opt, accum_steps=2)
    with pytest.raises(ValueError, match=match):
        step(params, opt.init(params), batch_update)


def test_bad_accum_steps_is_rejected():
    with pytest.raises(ValueError, match="accum_steps"):
        make_train_step(CONFIG, optax.sgd(0.1), accum_steps=0)


TWO_DEVICE_SCRIPT = textwrap.dedent("""
    import json, jax, jax.numpy as jnp, numpy as np, optax
    from sft_tilt.lm.config import ModelConfig
    from sft_tilt.lm.model import init_params
    from sft_tilt.lm.training import make_train_step, data_mesh, shard_batch
    assert len(jax.devices()) == 2, jax.devices()
    config = ModelConfig.tiny(n_layers=1)
    params = init_params(config, jax.random.key(0))
    k1, k2 = jax.random.split(jax.random.key(1))
    batch = {"tokens": jax.random.randint(k1, (8, 12), 0, config.vocab_size).astype(jnp.int32),
             "loss_mask": (jax.random.uniform(k2, (8, 12)) > 0.3).astype(jnp.float32)}
    opt = optax.sgd(1.0)  # new params = params - grads: the gradient is read off the update
    out = {}
    for name, devices in (("one", jax.devices()[:1]), ("two", jax.devices())):
        mesh = data_mesh(devices)
        step = make_train_step(config, opt, accum_steps=2, mesh=mesh)
        new, _, metrics = step(params, opt.init(params), shard_batch(batch, mesh))
        grads = jax.tree_util.tree_map(lambda a, b: np.asarray(a - b), params, new)
        out[name] = {"loss": float(metrics["loss"]), "weight": float(metrics["weight"]),
                     "grads": [g.tolist() for g in jax.tree_util.tree_leaves(grads)],
                     "n_devices_params": len(jax.tree_util.tree_leaves(new)[0].sharding.device_set),
                     "batch_shard_rows": shard_batch(batch, mesh)["tokens"].addressable_shards[0].data.shape[0]}
    print("RESULT" + json.dumps(out))
""")


def test_two_virtual_devices_give_the_one_device_loss_and_gradients():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", TWO_DEVICE_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.split("RESULT", 1)[1])
    one, two = out["one"], out["two"]
    assert one["n_devices_params"] == 1 and two["n_devices_params"] == 2
    assert one["batch_shard_rows"] == 8 and two["batch_shard_rows"] == 4
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-6)
    assert two["weight"] == one["weight"]
    for g1, g2 in zip(one["grads"], two["grads"], strict=True):
        np.testing.assert_allclose(np.asarray(g2), np.asarray(g1), rtol=1e-4, atol=1e-7)
    assert max(np.abs(np.asarray(g)).max() for g in one["grads"]) > 1e-3
