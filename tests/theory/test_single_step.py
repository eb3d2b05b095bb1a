"""Tests for sft_tilt.theory._single_step: exact one-step identity, trade-off identity, cumulant expansion."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

import sft_tilt.theory
from random_instances import random_simplex

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"




def direct_dL(P, q, s, lam):
    """E_P[-log q_lam] - E_P[-log q] from the definition (q_lam normalised by log-sum-exp); needs P << q."""
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    a = log_q + lam[:, None] * s
    log_q_lam = a - np_logsumexp(a, axis=-1, keepdims=True)
    return np.sum(np.where(P > 0, P * (log_q - log_q_lam), 0.0), axis=-1)


def instances(seed, batch=2000, n=6):
    rng = np.random.default_rng(seed)
    q = random_simplex(rng, (batch, n), scale=2.5)
    P = random_simplex(rng, (batch, n), zero_frac=0.3)
    s = rng.standard_normal((batch, n)) * rng.uniform(0.1, 3.0, (batch, 1))
    lam = np.exp(rng.uniform(np.log(1e-3), np.log(50.0), batch))
    return P, q, s, lam


@pytest.mark.parametrize("jit", [False, True])
def test_single_step_identity_against_the_definition(jit):
    P, q, s, lam = instances(0)
    f = jax.jit(sft_tilt.theory.single_step_code_length_change) if jit else sft_tilt.theory.single_step_code_length_change
    got = np.asarray(f(P, q, s, lam))
    np.testing.assert_allclose(got, direct_dL(P, q, s, lam), rtol=1e-9, atol=1e-11)
    # the general code_length_change applied to the tilted model gives the same number
    via_tilt = np.asarray(sft_tilt.theory.code_length_change(P, q, sft_tilt.theory.tilt(q, s, lam)))
    np.testing.assert_allclose(via_tilt, direct_dL(P, q, s, lam), rtol=1e-9, atol=1e-11)


def mp_dL(P, q, s, lam, dps=60):
    with mpmath.workdps(dps):
        lam = mpmath.mpf(float(lam))
        q = [mpmath.mpf(float(x)) for x in q]
        P = [mpmath.mpf(float(x)) for x in P]
        s = [mpmath.mpf(float(x)) for x in s]
        tq, tp = mpmath.fsum(q), mpmath.fsum(P)
        K = mpmath.log(mpmath.fsum(a / tq * mpmath.exp(lam * b) for a, b in zip(q, s) if a > 0))
        return -lam * mpmath.fsum(a / tp * b for a, b in zip(P, s)) + K


@pytest.mark.parametrize("lam_value", [1e-12, 1e-4, 3.0, 1e6])
def test_single_step_identity_against_mpmath_at_extreme_steps(lam_value):
    P, q, s, _ = instances(1, batch=30, n=5)
    q = random_simplex(np.random.default_rng(11), (30, 5), scale=8.0)  # near one-hot models too
    lam = np.full(30, lam_value)
    got = np.asarray(sft_tilt.theory.single_step_code_length_change(P, q, s, lam))
    ref = np.array([float(mp_dL(P[i], q[i], s[i], lam[i])) for i in range(30)])
    # relative to the size of the two terms lam (E_q s - E_P s) and V (no cancellation in either)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-13 * lam_value)


@pytest.mark.parametrize("jit", [False, True])
def test_tradeoff_identity_D_plus_G(jit):
    P1, q, s, lam = instances(2)
    P2 = random_simplex(np.random.default_rng(3), P1.shape, scale=3.0)
    D = direct_dL(P1, q, s, lam)
    G = -direct_dL(P2, q, s, lam)
    f = jax.jit(sft_tilt.theory.tradeoff_sum) if jit else sft_tilt.theory.tradeoff_sum
    got = np.asarray(f(P1, P2, s, lam))
    np.testing.assert_allclose(got, D + G, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(got, lam * (np.sum(P2 * s, -1) - np.sum(P1 * s, -1)), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("jit", [False, True])
def test_cumulants_against_numpy(jit):
    _, q, s, _ = instances(4, batch=1000)
    f = jax.jit(sft_tilt.theory.cumulants) if jit else sft_tilt.theory.cumulants
    mean, var, k3 = (np.asarray(x) for x in f(q, s))
    ref_mean = np.einsum("bi,bi->b", q, s)
    ref_var = np.einsum("bi,bi->b", q, s**2) - ref_mean**2
    ref_k3 = np.einsum("bi,bi->b", q, s**3) - 3 * ref_mean * np.einsum("bi,bi->b", q, s**2) + 2 * ref_mean**3
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(var, ref_var, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(k3, ref_k3, rtol=1e-7, atol=1e-10)


def test_expansion_remainders_scale_as_the_next_power_of_lam():
    P, q, s, _ = instances(5, batch=40, n=5)
    mean = np.einsum("bi,bi->b", q, s)
    d = s - mean[:, None]
    var = np.einsum("bi,bi->b", q, d**2)
    k3 = np.einsum("bi,bi->b", q, d**3)
    k4 = np.einsum("bi,bi->b", q, d**4) - 3 * var**2
    R = np.abs(d).max(-1)  # cumulants of order k are at most ~R^k, so use lam = t / R
    for t_value in [1e-2, 1e-3]:
        lam = t_value / R
        exact = np.array([float(mp_dL(P[i], q[i], s[i], lam[i])) for i in range(40)])
        r1 = (exact - np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=1))) / lam**2
        r2 = (exact - np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=2))) / lam**3
        r3 = (exact - np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=3))) / lam**4
        # leading remainder coefficients var/2, kappa3/6, kappa4/24; the next term is lam kappa_(k+2)/(k+2)!,
        # at most t R^(k+1) in size (|kappa_j| <= j! R^j / 2 is loose enough here)
        assert np.all(np.abs(r1 - var / 2) <= t_value * R**2)
        assert np.all(np.abs(r2 - k3 / 6) <= t_value * R**3)
        assert np.all(np.abs(r3 - k4 / 24) <= t_value * R**4)
        # and the wrong coefficient is detected: e.g. var (no 1/2) fails
        assert np.any(np.abs(r1 - var) > t_value * R**2)


def test_expansion_order_is_validated_and_jit_matches():
    P, q, s, lam = instances(6, batch=50)
    with pytest.raises(ValueError, match="^order:"):
        sft_tilt.theory.tilt_expansion(P, q, s, lam, order=4)
    f = jax.jit(sft_tilt.theory.tilt_expansion, static_argnames="order")
    np.testing.assert_allclose(np.asarray(f(P, q, s, lam, order=2)), np.asarray(sft_tilt.theory.tilt_expansion(P, q, s, lam, order=2)), rtol=1e-13)
    with pytest.raises(ValueError, match="^lam:"):
        sft_tilt.theory.single_step_code_length_change(P[0], q[0], s[0], -0.1)
    with pytest.raises(ValueError, match="^P:"):
        sft_tilt.theory.single_step_code_length_change(-P[0], q[0], s[0], 0.1)


def test_outcomes_with_zero_model_probability_give_the_finite_identity_value():
    # P puts mass where q = 0: the pointwise log-ratio K - lam s(x) is finite, as is the identity value
    P = np.array([0.5, 0.5, 0.0])
    q = np.array([0.0, 0.4, 0.6])
    s = np.array([2.0, -1.0, 1.0])
    lam = 0.7
    K = np.log(0.4 * np.exp(-lam) + 0.6 * np.exp(lam))
    expected = -lam * (0.5 * 2.0 + 0.5 * -1.0) + K
    assert abs(float(sft_tilt.theory.single_step_code_length_change(P, q, s, lam)) - expected) < 1e-14
