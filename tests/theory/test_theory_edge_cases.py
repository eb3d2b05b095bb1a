"""Extreme and malformed inputs: the tau -> 0 limit of TALR, empty / ragged / non-numeric arguments, NaN and inf.

Expected values are closed forms (the tau -> 0 limit of softmax(-l/tau) is the uniform distribution over the
minimum-loss tokens), or a ValueError whose message starts with the name of the offending argument.
"""

import jax
import numpy as np
import pytest

import sft_tilt.theory


def argmin_split(losses, mask=None):
    """tau -> 0 limit of softmax(-l/tau): equal weight on the tokens of minimal loss (NumPy)."""
    losses = np.asarray(losses, dtype=float)
    mask = np.ones(losses.shape, bool) if mask is None else np.asarray(mask)
    masked = np.where(mask, losses, np.inf)
    ties = masked == masked.min(-1, keepdims=True)
    return ties / ties.sum(-1, keepdims=True)


@pytest.mark.parametrize("tau", [1e-320, 5e-324, 1e-300, 1e-200])
@pytest.mark.parametrize("jit", [False, True])
def test_talr_weights_at_tiny_tau_are_the_argmin_split(tau, jit):
    rng = np.random.default_rng(3)
    losses = rng.integers(0, 4, (500, 6)).astype(float) * 0.5  # many exact ties, losses 0 included
    mask = rng.uniform(size=losses.shape) < 0.8
    mask[:, 0] = True
    f = jax.jit(sft_tilt.theory.talr_weights) if jit else sft_tilt.theory.talr_weights
    w = np.asarray(f(losses, tau, mask=mask))
    assert not np.isnan(w).any()
    np.testing.assert_array_equal(w, argmin_split(losses, mask))
    # optimal value -tau log sum exp(-l/tau) = l_min - tau log(#ties) once the other terms underflow
    value = np.asarray(sft_tilt.theory.talr_objective_value(losses, tau, mask=mask))
    masked = np.where(mask, losses, np.inf)
    ties = (masked == masked.min(-1, keepdims=True)).sum(-1)
    np.testing.assert_allclose(value, masked.min(-1) - tau * np.log(ties), rtol=1e-12, atol=1e-300)


def test_talr_weights_at_tiny_tau_single_example():
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights([2.0, 0.7, 0.7, 3.0], 1e-320)), [0, 0.5, 0.5, 0])
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights([2.0, 0.7, 3.0], 1e-320)), [0, 1, 0])
    # DiSC variant p^(1/tau): p = 1 keeps weight 1, p < 1 goes to 0
    np.testing.assert_array_equal(np.asarray(sft_tilt.theory.talr_weights_unnormalised([0.0, 1.0, np.inf], 1e-320)), [1, 0, 0])


def test_talr_empty_losses_blame_losses_not_mask():
    with pytest.raises(ValueError, match="^losses:"):
        sft_tilt.theory.talr_weights([], 1.0)
    with pytest.raises(ValueError, match="^losses:"):
        sft_tilt.theory.talr_objective_value(np.zeros((3, 0)), 1.0)
    with pytest.raises(ValueError, match="^mask:"):  # a given mask that selects nothing is still the mask's fault
        sft_tilt.theory.talr_weights([1.0, 2.0], 1.0, mask=[False, False])


def test_hard_token_mass_of_no_tokens_is_an_error():
    with pytest.raises(ValueError, match="^p:"):
        sft_tilt.theory.hard_token_mass([])
    with pytest.raises(ValueError, match="^p:"):
        sft_tilt.theory.hard_token_mass(np.zeros((4, 0)))
    with pytest.raises(ValueError, match="^p:"):
        sft_tilt.theory.hard_token_mass(0.5)
    # a non-empty batch still gives mean(1 - p)
    assert float(sft_tilt.theory.hard_token_mass([0.25, 1.0])) == pytest.approx(0.375, abs=1e-15)


def first_reach(gain, delta):
    """Smallest T with sum_{t<T} gain_t >= delta (len + 1 if never), by a Python loop."""
    total = 0.0
    for t in range(len(gain) + 1):
        if total >= delta:
            return t
        if t < len(gain):
            total += gain[t]
    return len(gain) + 1


def test_steps_to_reach_gain_refuses_nan_and_matches_a_loop():
    with pytest.raises(ValueError, match="^gain:"):
        sft_tilt.theory.steps_to_reach_gain([np.nan, 1.0], 0.5)
    with pytest.raises(ValueError, match="^gain:"):
        sft_tilt.theory.steps_to_reach_gain([1.0, -np.inf], 0.5)
    with pytest.raises(ValueError, match="^gain:"):
        sft_tilt.theory.steps_to_reach_gain(1.0, 0.5)
    assert int(sft_tilt.theory.steps_to_reach_gain([np.inf, 1.0], 1e300)) == 1
    rng = np.random.default_rng(5)
    gains = rng.uniform(-0.2, 1.0, (300, 7))
    deltas = rng.uniform(0, 3, 300)
    got = np.asarray(sft_tilt.theory.steps_to_reach_gain(gains, deltas))
    assert got.tolist() == [first_reach(g.tolist(), d) for g, d in zip(gains, deltas)]


@pytest.mark.parametrize("name", ["rho_max", "delta_star", "lam", "g_min", "s_range", "g_max", "s_range_general"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_matched_gain_bound_refuses_infinite_constants(name, value):
    args = dict(delta_star=1.0, lam=0.1, rho_max=0.2, g_min=0.5, s_range=1.0)
    args[name] = value
    with pytest.raises(ValueError, match=f"^{name}:"):
        sft_tilt.theory.matched_gain_bound(**args)


def test_matched_gain_bound_with_infinite_leakage_under_jit_is_inf_not_nan():
    out = jax.jit(sft_tilt.theory.matched_gain_bound)(1.0, 0.1, np.inf, 0.5, 1.0)
    assert np.isposinf(float(out.bound)) and np.isposinf(float(out.bound_relaxed)) and np.isposinf(float(out.k2))
    for field in out:
        assert not np.isnan(np.asarray(field)).any()


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: sft_tilt.theory.tilt([[0.5, 0.5], [1.0]], [0.0, 1.0], 1.0), "q"),
        (lambda: sft_tilt.theory.tilt([0.5, 0.5], [[0.0, 1.0], [1.0]], 1.0), "s"),
        (lambda: sft_tilt.theory.kl_divergence([0.5, 0.5], [[0.5, 0.5], [1.0]]), "q"),
        (lambda: sft_tilt.theory.hard_token_mass([[0.5, 0.5], [1.0]]), "p"),
        (lambda: sft_tilt.theory.talr_weights([[1.0, 2.0], [1.0]], 1.0), "losses"),
        (lambda: sft_tilt.theory.matched_gain_bound([1.0, [2.0]], 0.1, 0.2, 0.5, 1.0), "delta_star"),
        (lambda: sft_tilt.theory.matched_gain_bound(1.0, 0.1, 0.2, 0.5, "x"), "s_range"),
        (lambda: sft_tilt.theory.hoeffding_upper_bound([0.5, 0.5], [0.5, 0.5], [0.0, 1.0], 1.0, s_range="x"), "s_range"),
        (lambda: sft_tilt.theory.degradation_given_gain_bounds(1.0, 0.5, 1.0, "x"), "s_range"),
        (lambda: sft_tilt.theory.steps_to_reach_gain([[1.0], [1.0, 2.0]], 0.5), "gain"),
        (
            lambda: sft_tilt.theory.matched_gain_constants_from_trajectory(
                [[0.0, 1.0], [1.0]], np.zeros((2, 2)), [0.5, 0.5], [0.5, 0.5], 0.1
            ),
            "logits_general",
        ),
    ],
)
def test_ragged_and_non_numeric_inputs_name_the_argument(call, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        call()
