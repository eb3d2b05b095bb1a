"""The harness's optimisers against NumPy written out from their formulas, and the one check of their names."""

import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness.methods import make_optimizer
from sft_tilt.harness.optimizers import OPTIMIZERS, SGD_MOMENTUM, check_optimizer

RNG = np.random.default_rng(7)
PARAMS = {"w": RNG.normal(size=(3, 2)), "b": RNG.normal(size=(2,))}
#: gradients of three steps, with coordinates of very different scales (Adam's normalisation shows there)
GRADS = [{k: RNG.normal(size=v.shape) * np.array(10.0) ** RNG.integers(-3, 3, size=v.shape) for k, v in PARAMS.items()}
         for _ in range(3)]


def _numpy_steps(name: str, learning_rate: float) -> list[dict]:
    """The parameters after each step of ``GRADS``, from the optimiser's formula."""
    theta = {k: v.copy() for k, v in PARAMS.items()}
    m = {k: np.zeros_like(v) for k, v in PARAMS.items()}
    v2 = {k: np.zeros_like(v) for k, v in PARAMS.items()}
    out = []
    for t, g in enumerate(GRADS, start=1):
        for k in theta:
            if name == "sgd":
                theta[k] = theta[k] - learning_rate * g[k]
            elif name == "sgd-momentum":  # heavy ball: m <- mu m + g, theta <- theta - eta m
                m[k] = SGD_MOMENTUM * m[k] + g[k]
                theta[k] = theta[k] - learning_rate * m[k]
            else:  # Adam with bias correction, beta = (0.9, 0.999), eps = 1e-8 outside the square root
                m[k] = 0.9 * m[k] + 0.1 * g[k]
                v2[k] = 0.999 * v2[k] + 0.001 * g[k] ** 2
                m_hat, v_hat = m[k] / (1 - 0.9**t), v2[k] / (1 - 0.999**t)
                theta[k] = theta[k] - learning_rate * m_hat / (np.sqrt(v_hat) + 1e-8)
        out.append({k: v.copy() for k, v in theta.items()})
    return out


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("learning_rate", [0.05, 1e-3])
def test_each_optimiser_steps_as_its_formula(name, learning_rate):
    optimizer = make_optimizer(learning_rate, name)
    params = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    state = optimizer.init(params)
    for g, want in zip(GRADS, _numpy_steps(name, learning_rate)):
        updates, state = optimizer.update({k: jnp.asarray(v, jnp.float32) for k, v in g.items()}, state, params)
        params = {k: params[k] + updates[k] for k in params}
        for k in params:
            np.testing.assert_allclose(np.asarray(params[k]), want[k], rtol=2e-5, atol=2e-6 * learning_rate)


def test_the_learning_rate_lives_in_the_state_and_momentum_differs_from_sgd_after_the_first_step():
    """One optimiser serves every rate (the run sets ``hyperparams``); momentum's first step from a fresh state is
    plain SGD's, its second is not."""
    params = {k: jnp.asarray(v, jnp.float32) for k, v in PARAMS.items()}
    g = {k: jnp.asarray(v, jnp.float32) for k, v in GRADS[0].items()}
    states = {}
    for name in ("sgd", "sgd-momentum"):
        opt = make_optimizer(1.0, name)
        state = opt.init(params)
        state.hyperparams["learning_rate"] = jnp.asarray(0.25, jnp.float32)
        first, state = opt.update(g, state, params)
        second, _ = opt.update(g, state, params)
        states[name] = (first, second)
        np.testing.assert_allclose(np.asarray(first["w"]), -0.25 * GRADS[0]["w"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(states["sgd-momentum"][1]["w"]), -0.25 * (1 + SGD_MOMENTUM) * GRADS[0]["w"], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(states["sgd"][1]["w"]), -0.25 * GRADS[0]["w"], rtol=1e-6)


@pytest.mark.parametrize("bad", ["sgdm", "Adam", "", None, 3])
def test_a_bad_name_is_refused_naming_the_argument_and_the_choices(bad):
    from sft_tilt.harness.presets import PRESETS
    from sft_tilt.harness.run_config import RunConfig

    data = PRESETS["default"]().data
    for make, argument in ((lambda: check_optimizer(bad), "optimizer"), (lambda: make_optimizer(1e-3, bad), "name"),
                           (lambda: RunConfig(model="m.gguf", data=data, optimizer=bad), "optimizer"),
                           (lambda: PRESETS["default"]().__class__(name="x", data=data, optimizer=bad), "optimizer")):
        with pytest.raises(ValueError) as err:
            make()
        assert str(err.value).startswith(f"{argument}: ") and all(name in str(err.value) for name in OPTIMIZERS)


def test_every_optimiser_is_accepted_by_a_run_configuration():
    from sft_tilt.harness.presets import PRESETS
    from sft_tilt.harness.run_config import RunConfig

    data = PRESETS["default"]().data
    for name in OPTIMIZERS:
        assert RunConfig(model="m.gguf", data=data, optimizer=name).describe()["optimizer"] == name
