"""Tests for sft_tilt.theory._talr: TALR weights as the solution of the entropy-regularised simplex problem."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize
from scipy.special import logsumexp as np_logsumexp
from scipy.special import softmax as np_softmax

import sft_tilt.theory

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"


def objective(w, losses, tau):
    """sum w l + tau sum w log w with 0 log 0 = 0 (NumPy)."""
    ent = np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0)), 0.0)
    return np.sum(w * losses, -1) + tau * np.sum(ent, -1)


@pytest.mark.parametrize("jit", [False, True])
def test_weights_are_the_softmax_of_negative_losses_over_tau(jit):
    rng = np.random.default_rng(0)
    p = np.exp(-rng.exponential(2.0, (2000, 8)))
    losses = -np.log(p)
    tau = 10.0 ** rng.uniform(-1.5, 1.5, 2000)
    f = jax.jit(sft_tilt.theory.talr_weights) if jit else sft_tilt.theory.talr_weights
    w = np.asarray(f(losses, tau))
    np.testing.assert_allclose(w, np_softmax(-losses / tau[:, None], axis=-1), rtol=1e-11, atol=1e-300)
    # proportional to p^(1/tau)
    pw = p ** (1 / tau[:, None])
    np.testing.assert_allclose(w, pw / pw.sum(-1, keepdims=True), rtol=1e-9, atol=1e-300)
    fv = jax.jit(sft_tilt.theory.talr_objective_value) if jit else sft_tilt.theory.talr_objective_value
    value = np.asarray(fv(losses, tau))
    np.testing.assert_allclose(value, -tau * np_logsumexp(-losses / tau[:, None], axis=-1), rtol=1e-11, atol=1e-12)
    # the closed form attains the optimal value
    np.testing.assert_allclose(objective(w, losses, tau), value, rtol=1e-9, atol=1e-10)


def test_closed_form_beats_every_other_point_of_the_simplex():
    rng = np.random.default_rng(1)
    batch, n = 1000, 6
    losses = rng.exponential(1.5, (batch, n))
    tau = 10.0 ** rng.uniform(-1, 1, batch)
    w = np.asarray(sft_tilt.theory.talr_weights(losses, tau))
    best = objective(w, losses, tau)
    for _ in range(20):
        other = rng.dirichlet(np.full(n, 0.5), batch)
        assert np.all(objective(other, losses, tau) >= best - 1e-12)
        # small perturbations along the simplex (w + eps (v - w)) are no better either
        near = w + 1e-3 * (other - w)
        assert np.all(objective(near, losses, tau) >= best - 1e-12)


def test_closed_form_matches_a_generic_constrained_optimiser():
    rng = np.random.default_rng(2)
    for _ in range(5):
        losses = rng.exponential(1.0, 5)
        tau = float(rng.uniform(0.3, 2.0))
        res = minimize(
            lambda w: objective(np.clip(w, 1e-300, None), losses, tau),
            np.full(5, 0.2),
            method="SLSQP",
            bounds=[(0, 1)] * 5,
            constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        np.testing.assert_allclose(np.asarray(sft_tilt.theory.talr_weights(losses, tau)), res.x, atol=1e-5)
        assert abs(float(sft_tilt.theory.talr_objective_value(losses, tau)) - res.fun) < 1e-9


def test_limits_uniform_at_infinite_tau_and_one_hot_at_tiny_tau():
    losses = np.array([2.0, 0.5, 3.0, 0.5, np.inf])
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights(losses, np.inf)), np.full(5, 0.2))
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights(losses, 1e-300)), [0.0, 0.5, 0.0, 0.5, 0.0])  # ties split
    assert float(sft_tilt.theory.talr_objective_value(losses, 1e-300)) == 0.5
    assert np.isneginf(float(sft_tilt.theory.talr_objective_value(losses, np.inf)))
    # approaching the limits continuously
    w_big = np.asarray(sft_tilt.theory.talr_weights(losses[:4], 1e6))
    assert np.abs(w_big - 0.25).max() < 1e-5
    w_small = np.asarray(sft_tilt.theory.talr_weights(np.array([1.0, 1.1, 3.0]), 1e-3))
    np.testing.assert_allclose(w_small[1] / w_small[0], np.exp(-100.0), rtol=1e-10)  # e^{-(1.1 - 1)/1e-3}
    assert w_small[0] == 1.0 and w_small[2] == 0.0  # e^{-2000} underflows


def test_relative_weight_of_a_token_k_tau_harder_is_exp_minus_k():
    tau = 0.7
    k = np.array([0.0, 1.0, 3.0, 5.0])
    w = np.asarray(sft_tilt.theory.talr_weights(0.2 + k * tau, tau))
    np.testing.assert_allclose(w / w[0], np.exp(-k), rtol=1e-12)
    assert abs(w[1] / w[0] - 0.37) < 0.005 and abs(w[2] / w[0] - 0.05) < 0.001


def test_floor_then_renormalise():
    losses = np.array([0.1, 1.0, 6.0, 9.0])
    tau, floor = 0.5, 0.01
    w = np.asarray(sft_tilt.theory.talr_weights(losses, tau, floor=floor))
    raw = np_softmax(-losses / tau)
    floored = np.maximum(raw, floor)
    np.testing.assert_allclose(w, floored / floored.sum(), rtol=1e-12)
    n = len(losses)
    assert w.min() >= floor / (1 + n * floor) and abs(w.sum() - 1) < 1e-15
    # unnormalised (DiSC) variant: max(p^(1/tau), floor), and without floor equal to the weights up to a scale
    u = np.asarray(sft_tilt.theory.talr_weights_unnormalised(losses, tau, floor=floor))
    np.testing.assert_allclose(u, np.maximum(np.exp(-losses / tau), floor), rtol=1e-12)
    u0 = np.asarray(sft_tilt.theory.talr_weights_unnormalised(losses, tau))
    np.testing.assert_allclose(u0 / u0.sum(), raw, rtol=1e-12)


def test_mask_excludes_padding():
    losses = np.array([[0.3, 1.0, 0.0, 5.0]])
    mask = np.array([[True, True, False, True]])
    w = np.asarray(sft_tilt.theory.talr_weights(losses, 1.0, floor=0.05, mask=mask))
    expected = np.maximum(np_softmax(-losses[0, [0, 1, 3]]), 0.05)
    expected /= expected.sum()
    np.testing.assert_allclose(w[0, [0, 1, 3]], expected, rtol=1e-12)
    assert w[0, 2] == 0.0
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights(losses, np.inf, mask=mask)), [[1 / 3, 1 / 3, 0.0, 1 / 3]])


def test_talr_loss_gradient_is_the_weighted_sum_of_token_gradients():
    # tokens b = 0..T-1 with logits z_b (softmax over V), targets y_b; loss_b = -log softmax(z_b)[y_b]
    rng = np.random.default_rng(3)
    T, V = 7, 5
    z = rng.standard_normal((T, V)) * 2
    y = rng.integers(0, V, T)
    tau, floor = 0.8, 0.02

    def total(zz):
        losses = -jax.nn.log_softmax(zz)[jnp.arange(T), y]
        return sft_tilt.theory.talr_loss(losses, tau, floor=floor)

    grad = np.asarray(jax.grad(total)(jnp.asarray(z)))
    q = np_softmax(z, axis=-1)
    losses = -np.log(q[np.arange(T), y])
    w = np.maximum(np_softmax(-losses / tau), floor)
    w /= w.sum()
    onehot = np.eye(V)[y]
    np.testing.assert_allclose(grad, w[:, None] * (q - onehot), rtol=1e-10, atol=1e-14)
    assert abs(float(total(jnp.asarray(z))) - np.sum(w * losses)) < 1e-12


@given(
    st.lists(st.integers(0, 50 * 64), min_size=1, max_size=8),
    st.sampled_from([1e-300, 1e-3, 0.3, 1.0, 7.0, 1e8, np.inf]),
    st.integers(-1000 * 64, 1000 * 64),
)
def test_weights_on_simplex_shift_invariant_and_finite(losses, tau, c):
    # losses and shift on a dyadic grid so that losses + c is exact in float64
    losses = np.array(losses, dtype=float) / 64
    c = c / 64
    w = np.asarray(sft_tilt.theory.talr_weights(losses, tau))
    assert not np.isnan(w).any() and (w >= 0).all() and abs(w.sum() - 1) < 1e-12
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.talr_weights(losses + c, tau)), w, atol=1e-9)
    wf = np.asarray(sft_tilt.theory.talr_weights(losses, tau, floor=0.01))
    assert abs(wf.sum() - 1) < 1e-12 and wf.min() >= 0.01 / (1 + 0.01 * len(losses)) - 1e-15
    # limits: tau = inf is uniform; tau = 1e-300 (smaller than any loss gap on the 1/64 grid) is uniform on the minimisers
    if tau == np.inf:
        np.testing.assert_allclose(w, np.full(len(losses), 1 / len(losses)), rtol=1e-15)
    if tau == 1e-300:
        argmins = losses == losses.min()
        np.testing.assert_allclose(w, argmins / argmins.sum(), rtol=1e-15)


@pytest.mark.parametrize(
    "fn, args",
    [
        (sft_tilt.theory.talr_weights_unnormalised, (np.array([[0.1, 2.0, 5.0]]), np.array([0.5]))),
        (sft_tilt.theory.talr_loss, (np.array([[0.1, 2.0, 5.0]]), np.array([0.5]))),
        (sft_tilt.theory.degradation_given_gain_bounds, (np.array([0.3]), np.array([0.2]), np.array([0.5]), np.array([2.0]))),
        (sft_tilt.theory.support_range, (np.array([[0.0, 0.4, 0.6]]), np.array([[9.0, -1.0, 2.0]]))),
        (sft_tilt.theory.expm1mx_over_square, (np.array([-3.0, 1e-9, 0.3, 40.0]),)),
    ],
)
def test_remaining_exports_jitted_match_eager(fn, args):
    eager = jax.tree.map(np.asarray, fn(*args))
    jitted = jax.tree.map(np.asarray, jax.jit(fn)(*args))
    for e, j in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(j, e, rtol=1e-14)
    # and each eager value against a direct formula
    if fn is sft_tilt.theory.talr_weights_unnormalised:
        np.testing.assert_allclose(eager, np.exp(-args[0] / 0.5), rtol=1e-14)
    if fn is sft_tilt.theory.talr_loss:
        w = np_softmax(-args[0] / 0.5, axis=-1)
        np.testing.assert_allclose(eager, (w * args[0]).sum(-1), rtol=1e-14)
    if fn is sft_tilt.theory.degradation_given_gain_bounds:
        np.testing.assert_allclose(eager[0], [0.2 * 0.3], rtol=1e-14)
        np.testing.assert_allclose(eager[1], [0.2 * 0.3 + 1.2 * 0.25 * 4 / 8], rtol=1e-14)
    if fn is sft_tilt.theory.support_range:
        np.testing.assert_array_equal(np.ravel(eager), [-1.0, 2.0])
    if fn is sft_tilt.theory.expm1mx_over_square:
        x = args[0]
        np.testing.assert_allclose(eager, [(np.exp(-3) + 2) / 9, 0.5 + 1e-9 / 6, (np.expm1(0.3) - 0.3) / 0.09, (np.expm1(40) - 40) / 1600], rtol=1e-12)


def test_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="^tau:"):
        sft_tilt.theory.talr_weights(np.array([1.0, 2.0]), 0.0)
    with pytest.raises(ValueError, match="^tau:"):
        sft_tilt.theory.talr_weights(np.array([1.0, 2.0]), -1.0)
    with pytest.raises(ValueError, match="^losses:"):
        sft_tilt.theory.talr_weights(np.array([1.0, np.nan]), 1.0)
    with pytest.raises(ValueError, match="^losses:"):
        sft_tilt.theory.talr_weights(np.array([np.inf, np.inf]), 1.0)
    with pytest.raises(ValueError, match="^floor:"):
        sft_tilt.theory.talr_weights(np.array([1.0, 2.0]), 1.0, floor=-0.1)
    with pytest.raises(ValueError, match="^mask:"):
        sft_tilt.theory.talr_weights(np.array([1.0, 2.0]), 1.0, mask=np.array([False, False]))
    with pytest.raises(ValueError, match="^losses, tau:"):
        sft_tilt.theory.talr_weights(np.ones((2, 3)), np.ones(3))
