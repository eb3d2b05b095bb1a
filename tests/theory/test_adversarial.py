"""Tests for sft_tilt.theory._adversarial: the slack search finds a deliberately wrong bound and not a right one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sft_tilt.theory

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"


def halved_hoeffding(P, q, s, lam):
    """Hoeffding with the constant 1/8 replaced by 1/16: invalid (e.g. symmetric two-point q, small lam)."""
    a, b = sft_tilt.theory.support_range(q, s)
    return sft_tilt.theory.jensen_lower_bound(P, q, s, lam) + lam**2 * (b - a) ** 2 / 16


def hoeffding_excess(P, q, s, lam):
    a, b = sft_tilt.theory.support_range(q, s)
    return lam**2 * (b - a) ** 2 / 8


SEARCH = dict(n_outcomes=3, n_restarts=8, n_steps=60, lam_range=(1e-2, 5.0), scale_fn=hoeffding_excess)


def test_search_catches_a_halved_hoeffding_constant():
    res = sft_tilt.theory.adversarial_slack_search(halved_hoeffding, sft_tilt.theory.single_step_code_length_change, jax.random.key(0), **SEARCH)
    assert res.violated and res.min_slack < -0.1
    # the reported instance really violates it, recomputed here from the definition with NumPy
    P, q, s, lam = res.P, res.q, res.s, res.lam
    assert abs(P.sum() - 1) < 1e-12 and abs(q.sum() - 1) < 1e-12 and lam > 0
    log_q_lam = np.log(q) + lam * s - np.log(np.sum(q * np.exp(lam * s)))
    dL = np.sum(P * (np.log(q) - log_q_lam))
    width = s.max() - s.min()
    bound = lam * (np.sum(q * s) - np.sum(P * s)) + lam**2 * width**2 / 16
    assert dL > bound
    np.testing.assert_allclose(res.min_slack, (bound - dL) / (lam**2 * width**2 / 8), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize(
    "bound, kind",
    [
        (sft_tilt.theory.hoeffding_upper_bound, "upper"),
        # each search compiles for ~5 s; the 100k-instance checks in test_bounds.py are their fast counterparts
        pytest.param(sft_tilt.theory.bennett_upper_bound, "upper", marks=pytest.mark.slow),
        pytest.param(sft_tilt.theory.jensen_lower_bound, "lower", marks=pytest.mark.slow),
    ],
)
def test_search_finds_no_violation_of_valid_bounds(bound, kind):
    res = sft_tilt.theory.adversarial_slack_search(bound, sft_tilt.theory.single_step_code_length_change, jax.random.key(1), kind=kind, **SEARCH)
    assert res.min_slack >= -1e-12
    assert res.restart_slacks.shape == (8,) and np.all(res.restart_slacks >= -1e-12)
    assert res.config["kind"] == kind and res.config["n_steps"] == 60


def test_search_reduces_the_slack_below_the_random_starts():
    # with zero steps we get the best random start; optimisation must not do worse and here does better
    args = (sft_tilt.theory.hoeffding_upper_bound, sft_tilt.theory.single_step_code_length_change, jax.random.key(2))
    start = sft_tilt.theory.adversarial_slack_search(*args, **{**SEARCH, "n_steps": 0})
    tuned = sft_tilt.theory.adversarial_slack_search(*args, **SEARCH)
    assert tuned.min_slack <= start.min_slack
    assert tuned.min_slack < 0.5 * start.min_slack


def test_search_arguments_are_validated():
    fn = sft_tilt.theory.hoeffding_upper_bound
    dl = sft_tilt.theory.single_step_code_length_change
    with pytest.raises(ValueError, match="^kind:"):
        sft_tilt.theory.adversarial_slack_search(fn, dl, jax.random.key(0), 3, kind="middle")
    with pytest.raises(ValueError, match="^lam_range:"):
        sft_tilt.theory.adversarial_slack_search(fn, dl, jax.random.key(0), 3, lam_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="^n_outcomes:"):
        sft_tilt.theory.adversarial_slack_search(fn, dl, jax.random.key(0), 1)
