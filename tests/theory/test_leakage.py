"""Tests for sft_tilt.theory._leakage and the tilt excess: D = rho G + (1 + rho) V and the bounds on D given G."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

import sft_tilt.theory

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"


def softmax_rows(z):
    return np.exp(z - np_logsumexp(z, axis=-1, keepdims=True))


def direct_dL(P, q, s, lam):
    a = np.log(q) + lam[:, None] * s
    return np.sum(P * (np.log(q) - (a - np_logsumexp(a, axis=-1, keepdims=True))), axis=-1)


def instances(seed, batch, n=6):
    rng = np.random.default_rng(seed)
    q = softmax_rows(2.0 * rng.standard_normal((batch, n)))
    P1 = softmax_rows(np.log(q) + 0.3 * rng.standard_normal((batch, n)))  # general data: close to q
    P2 = softmax_rows(2.5 * rng.standard_normal((batch, n)))  # domain data: far from q
    s = rng.standard_normal((batch, n))
    lam = 10.0 ** rng.uniform(-3, 1, batch)
    return P1, P2, q, s, lam


@pytest.mark.parametrize("jit", [False, True])
def test_leakage_decomposition_of_degradation(jit):
    P1, P2, q, s, lam = instances(0, 2000)
    D = direct_dL(P1, q, s, lam)
    G = -direct_dL(P2, q, s, lam)
    f_rho = jax.jit(sft_tilt.theory.leakage) if jit else sft_tilt.theory.leakage
    f_v = jax.jit(sft_tilt.theory.tilt_excess) if jit else sft_tilt.theory.tilt_excess
    rho = np.asarray(f_rho(P1, P2, q, s))
    eq, e1, e2 = (np.sum(p * s, -1) for p in (q, P1, P2))
    np.testing.assert_allclose(rho, (eq - e1) / (e2 - eq), rtol=1e-9)
    V = np.asarray(f_v(q, s, lam))
    np.testing.assert_allclose(V, np_logsumexp(np.log(q) + lam[:, None] * s, axis=-1) - lam * eq, rtol=1e-8, atol=1e-12)
    keep = np.abs(e2 - eq) > 1e-3  # rho finite and moderate
    lhs, rhs = D[keep], rho[keep] * G[keep] + (1 + rho[keep]) * V[keep]
    np.testing.assert_allclose(lhs, rhs, rtol=1e-7, atol=1e-9 * (1 + np.abs(rho[keep]).max()))


def test_tilt_excess_between_zero_and_hoeffding_on_extreme_instances():
    rng = np.random.default_rng(1)
    batch, n = 100_000, 4
    z = rng.uniform(0.3, 30.0, (batch, 1)) * rng.standard_normal((batch, n))
    q = softmax_rows(z)
    s = rng.standard_normal((batch, n)) * 10.0 ** rng.uniform(-2, 1, (batch, 1))
    lam = 10.0 ** rng.uniform(-12, 6, batch)
    V = np.asarray(sft_tilt.theory.tilt_excess(q, s, lam))
    width = s.max(-1) - s.min(-1)
    assert np.all(V >= 0)
    assert np.all(V <= lam**2 * width**2 / 8 * (1 + 1e-12))


def test_degradation_given_gain_bounds_contain_the_actual_degradation():
    P1, P2, q, s, lam = instances(2, 100_000, n=5)
    D = np.asarray(sft_tilt.theory.single_step_code_length_change(P1, q, s, lam))
    G = -np.asarray(sft_tilt.theory.single_step_code_length_change(P2, q, s, lam))
    rho = np.asarray(sft_tilt.theory.leakage(P1, P2, q, s))
    width = s.max(-1) - s.min(-1)
    keep = np.isfinite(rho) & (np.abs(rho) < 1e6)
    lo, hi = (np.asarray(x) for x in sft_tilt.theory.degradation_given_gain_bounds(G[keep], rho[keep], lam[keep], width[keep]))
    tol = 1e-9 * (np.abs(rho[keep] * G[keep]) + np.abs(D[keep]) + 1e-12)
    assert np.all(lo - tol <= D[keep]) and np.all(D[keep] <= hi + tol)
    # the interval has width |1 + rho| lam^2 (b - a)^2 / 8, computed here directly
    np.testing.assert_allclose(hi - lo, np.abs(1 + rho[keep]) * lam[keep] ** 2 * width[keep] ** 2 / 8, rtol=1e-8, atol=1e-12)


def test_leakage_with_zero_first_order_gain():
    q = np.array([0.5, 0.5])
    s = np.array([1.0, -1.0])
    P2 = q  # E_P2 s = E_q s: no first-order gain
    assert np.isposinf(float(sft_tilt.theory.leakage(np.array([0.2, 0.8]), P2, q, s)))
    assert np.isneginf(float(sft_tilt.theory.leakage(np.array([0.8, 0.2]), P2, q, s)))
    with pytest.raises(ValueError, match="^P2:"):  # 0/0: undefined
        sft_tilt.theory.leakage(q, P2, q, s)


def test_leakage_is_exact_when_a_data_distribution_equals_the_model():
    # E_q s and E_P s come from one formula, so P1 = q is exactly zero leakage and P2 = q is an exact zero
    # denominator (before, a rounding residual gave rho = -1.0 or a random finite value for P1 = P2 = q).
    rng = np.random.default_rng(7)
    for _ in range(200):
        q = rng.dirichlet(np.ones(6))
        P = rng.dirichlet(np.ones(6))
        s = rng.normal(size=6)
        assert float(sft_tilt.theory.leakage(q, P, q, s)) == 0.0
        expected_sign = np.sign(q @ s - P @ s)  # sign of E_q s - E_P1 s over a zero denominator
        assert float(sft_tilt.theory.leakage(P, q, q, s)) == expected_sign * np.inf
        with pytest.raises(ValueError, match="^P2:"):
            sft_tilt.theory.leakage(q, q, q, s)


def test_bounds_order_when_rho_below_minus_one_and_bad_inputs():
    lo, hi = sft_tilt.theory.degradation_given_gain_bounds(1.0, -3.0, 2.0, 1.0)
    # (1 + rho) V_max = -2 * 0.5 = -1: D in [rho G - 1, rho G] = [-4, -3]
    assert (float(lo), float(hi)) == (-4.0, -3.0)
    with pytest.raises(ValueError, match="^lam:"):
        sft_tilt.theory.degradation_given_gain_bounds(1.0, 0.5, -1.0, 1.0)
    with pytest.raises(ValueError, match="^s_range:"):
        sft_tilt.theory.degradation_given_gain_bounds(1.0, 0.5, 1.0, -1.0)
    with pytest.raises(ValueError, match="^rho:"):
        sft_tilt.theory.degradation_given_gain_bounds(1.0, np.nan, 1.0, 1.0)
    with pytest.raises(ValueError, match="^P1:"):
        sft_tilt.theory.leakage(np.array([0.5, 0.6]), np.array([0.5, 0.5]), np.array([0.5, 0.5]), np.array([0.0, 1.0]))
