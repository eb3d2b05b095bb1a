"""Bugs of pinned libraries that once changed this toolkit's numbers, kept as tests so a version bump cannot bring
them back unnoticed.

jaxlib 0.10.2 on CPU runs an eager (not jitted) ``lax.while_loop`` nondeterministically wrong when the loop body
evaluates a function at ``zeros_like`` of the carry: repeated identical calls return different values, sometimes
NaN. ``train_to_gain`` (which compares the domain code length at ``W0 = 0`` and at ``W``) is such a loop; one CI run
stopped it after one step on a NaN gain. jaxlib 0.10.1 and 0.9.2 compute it exactly.
"""

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.synthetic.models import ModelConfig, build_model
from sft_tilt.synthetic.training import TrainConfig, train_to_gain
from sft_tilt.synthetic.worlds import WorldConfig, make_world


def _shift_invariance_loop():
    """A uniform shift of every logit leaves the softmax unchanged, so the loop's last value is 0 up to rounding."""
    rng = np.random.default_rng(0)
    contexts, vocab, n, length = 36, 32, 32, 7
    bias = jnp.asarray(np.log(rng.dirichlet(np.ones(vocab), size=contexts)))
    features = jnp.asarray(np.eye(contexts))
    ctx = jnp.asarray(rng.integers(0, contexts, size=(n, length)))
    tgt = jnp.asarray(rng.integers(0, vocab, size=(n, length)))

    def code_length(W):
        log_probs = jax.nn.log_softmax(bias[ctx] + features[ctx] @ W, -1)
        return -jnp.mean(jnp.take_along_axis(log_probs, tgt[..., None], -1))

    def body(state):
        W, t, _ = state
        W = W + 0.3
        return W, t + 1, code_length(jnp.zeros_like(W)) - code_length(W)

    init = (jnp.zeros((contexts, vocab)), jnp.asarray(0), jnp.asarray(0.0))
    return jax.lax.while_loop(lambda s: s[1] < 50, body, init)


def test_eager_while_loop_is_deterministic_and_right():
    values = [float(_shift_invariance_loop()[2]) for _ in range(20)]
    assert all(abs(v) < 1e-12 for v in values), sorted(set(values))


def test_train_to_gain_eager_repeats_the_jitted_result():
    world = make_world(WorldConfig(overlap=0.0, seed=1))
    model = build_model(world, ModelConfig("free"))
    run = lambda: train_to_gain(model, world, TrainConfig(), 3.0, 0.5, 300)  # noqa: E731
    jitted = jax.jit(run)()
    for _ in range(8):
        eager = run()
        assert int(eager["steps"]) == int(jitted["steps"])
        np.testing.assert_allclose(float(eager["matched_domain_gain"]), float(jitted["matched_domain_gain"]), rtol=1e-12)
        np.testing.assert_allclose(float(eager["domain_gain"]), float(jitted["domain_gain"]), rtol=1e-12)
