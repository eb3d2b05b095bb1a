"""Tests for sft_tilt.theory._tilt: the exponential tilt, its CGF and tilt excess, against NumPy/SciPy and mpmath."""

import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy.special import logsumexp as np_logsumexp

import sft_tilt.theory

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"


def random_instances(rng, batch, n, logit_scale=2.0, lam_lo=1e-3, lam_hi=1e2, zero_frac=0.0):
    z = logit_scale * rng.standard_normal((batch, n))
    if zero_frac:
        zeros = rng.random((batch, n)) < zero_frac
        zeros[:, 0] = False  # keep mass somewhere
        z = np.where(zeros, -np.inf, z)
    q = np.exp(z - np_logsumexp(z, axis=-1, keepdims=True))
    s = rng.standard_normal((batch, n)) * rng.uniform(0.1, 3.0, (batch, 1))
    lam = np.exp(rng.uniform(np.log(lam_lo), np.log(lam_hi), batch))
    return q, s, lam


def numpy_log_tilt(q, s, lam):
    with np.errstate(divide="ignore"):
        a = np.log(q) + lam[:, None] * s
    return a - np_logsumexp(a, axis=-1, keepdims=True)


def mp_excess(q, s, lam, dps=60):
    """V = log E_q exp(lam (s - E_q s)) in mpmath (row by row)."""
    with mpmath.workdps(dps):
        qs = [mpmath.mpf(float(x)) for x in q]
        tot = mpmath.fsum(qs)
        qs = [x / tot for x in qs]
        ss = [mpmath.mpf(float(x)) for x in s]
        mu = mpmath.fsum(a * b for a, b in zip(qs, ss))
        lam = mpmath.mpf(float(lam))
        terms = [a * mpmath.exp(lam * (b - mu)) for a, b in zip(qs, ss) if a > 0]
        return mpmath.log(mpmath.fsum(terms))


def test_float64_in_effect():
    assert sft_tilt.theory.tilt(jnp.array([0.5, 0.5]), jnp.array([1.0, 0.0]), 0.1).dtype == jnp.float64


@pytest.mark.parametrize("jit", [False, True])
def test_tilt_matches_direct_numpy_on_random_instances(jit):
    rng = np.random.default_rng(0)
    q, s, lam = random_instances(rng, 2000, 6, zero_frac=0.2)
    f_tilt = jax.jit(sft_tilt.theory.tilt) if jit else sft_tilt.theory.tilt
    f_log = jax.jit(sft_tilt.theory.log_tilt) if jit else sft_tilt.theory.log_tilt
    f_k = jax.jit(sft_tilt.theory.cumulant_generating_function) if jit else sft_tilt.theory.cumulant_generating_function
    ref_log = numpy_log_tilt(q, s, lam)
    np.testing.assert_allclose(np.asarray(f_tilt(q, s, lam)), np.exp(ref_log), rtol=1e-10, atol=1e-14)
    with np.errstate(divide="ignore"):
        log_q = np.log(q)
    got_log = np.asarray(f_log(log_q, s, lam))
    finite = np.isfinite(ref_log)
    assert np.array_equal(finite, np.isfinite(got_log))
    np.testing.assert_allclose(got_log[finite], ref_log[finite], rtol=1e-10, atol=1e-10)
    with np.errstate(divide="ignore"):
        ref_k = np_logsumexp(np.log(q) + lam[:, None] * s, axis=-1)
    np.testing.assert_allclose(np.asarray(f_k(q, s, lam)), ref_k, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("lam_value", [1e-12, 1e-6, 1e-2, 10.0, 1e3, 1e6])
def test_tilt_excess_matches_mpmath_at_extreme_steps(lam_value):
    rng = np.random.default_rng(1)
    q, s, _ = random_instances(rng, 40, 5, logit_scale=6.0, zero_frac=0.2)
    lam = np.full(40, lam_value)
    got = np.asarray(sft_tilt.theory.tilt_excess(q, s, lam))
    ref = np.array([float(mp_excess(q[i], s[i], lam[i])) for i in range(40)])
    assert (got >= 0).all()
    np.testing.assert_allclose(got, ref, rtol=1e-11, atol=0)
    # K = lam E_q s + V, against mpmath as well
    with mpmath.workdps(60):
        ref_k = np.array([float(mpmath.mpf(float(lam[i])) * mpmath.fsum(mpmath.mpf(float(a)) * mpmath.mpf(float(b)) for a, b in zip(q[i] / q[i].sum(), s[i])) + mp_excess(q[i], s[i], lam[i])) for i in range(40)])
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.cumulant_generating_function(q, s, lam)), ref_k, rtol=1e-11, atol=1e-300)


def test_expm1mx_and_its_ratio_match_mpmath():
    x = np.concatenate([-np.logspace(-14, 2.5, 60), [0.0], np.logspace(-14, 2.5, 60), [0.4999999, 0.5, 0.5000001, -0.5]])
    with mpmath.workdps(50):
        ref = np.array([float(mpmath.expm1(mpmath.mpf(v)) - mpmath.mpf(v)) for v in x])
        ref_h = np.array([float((mpmath.expm1(mpmath.mpf(v)) - mpmath.mpf(v)) / mpmath.mpf(v) ** 2) if v != 0 else 0.5 for v in x])
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.expm1mx(x)), ref, rtol=1e-14, atol=0)
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.expm1mx_over_square(x)), ref_h, rtol=1e-14, atol=0)
    np.testing.assert_allclose(np.asarray(jax.jit(sft_tilt.theory.expm1mx)(x)), ref, rtol=1e-14, atol=0)


def test_zero_probability_outcomes_stay_zero_without_nan():
    q = np.array([0.0, 0.3, 0.7, 0.0])
    s = np.array([5.0, -1.0, 2.0, -3.0])
    for lam in [0.0, 1e-12, 1.0, 1e6]:
        out = np.asarray(sft_tilt.theory.tilt(q, s, lam))
        log_out = np.asarray(sft_tilt.theory.log_tilt(np.log(np.where(q > 0, q, 1.0)) + np.where(q > 0, 0.0, -np.inf), s, lam))
        assert not np.isnan(out).any() and not np.isnan(log_out).any()
        assert out[0] == 0.0 and out[3] == 0.0
        assert np.isneginf(log_out[[0, 3]]).all()
        assert abs(out.sum() - 1.0) < 1e-15
    # lam = 1e6 concentrates on the largest s over the support (index 2), not on the zero-probability index 0
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.tilt(q, s, 1e6)), [0.0, 0.0, 1.0, 0.0])
    assert float(sft_tilt.theory.tilt_excess(q, s, 0.0)) == 0.0


def test_no_nan_in_gradients_with_zero_probabilities():
    q = jnp.array([0.0, 0.25, 0.75])
    s = jnp.array([1.0, -1.0, 0.5])
    for lam in [0.0, 1e-12, 1.0, 1e6]:
        g = jax.grad(lambda l: sft_tilt.theory.cumulant_generating_function(q, s, l))(lam)
        # dK/dlam = E_{q_lam}[s], computed directly
        q_lam = np.exp(numpy_log_tilt(np.asarray(q)[None], np.asarray(s)[None], np.array([lam])))[0]
        assert np.isfinite(float(g))
        np.testing.assert_allclose(float(g), float(np.sum(q_lam * s)), rtol=1e-12, atol=1e-12)


logit_lists = st.lists(st.floats(-20, 20), min_size=2, max_size=7)


@st.composite
def instance(draw):
    z = np.array(draw(logit_lists))
    n = len(z)
    s = np.array(draw(st.lists(st.floats(-5, 5), min_size=n, max_size=n)))
    a = draw(st.sampled_from([0.0, 1e-12, 1e-3, 0.5, 3.0, 1e3, 1e6]))
    b = draw(st.sampled_from([0.0, 1e-12, 1e-3, 0.5, 3.0, 1e3, 1e6]))
    q = np.exp(z - np_logsumexp(z))
    return q, s, a, b


@given(instance())
def test_tilt_composes_additively(inst):
    q, s, a, b = inst
    two_steps = np.asarray(sft_tilt.theory.tilt(sft_tilt.theory.tilt(q, s, a), s, b))
    one_step = np.asarray(sft_tilt.theory.tilt(q, s, a + b))
    np.testing.assert_allclose(two_steps, one_step, rtol=1e-9, atol=1e-12)
    assert not np.isnan(two_steps).any()


@given(instance(), st.floats(-100, 100))
def test_tilt_is_invariant_to_shifting_the_direction(inst, c):
    q, s, a, _ = inst
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.tilt(q, s + c, a)), np.asarray(sft_tilt.theory.tilt(q, s, a)), rtol=1e-9, atol=1e-12)
    # the CGF shifts by lam * c, the excess is unchanged
    k0 = float(sft_tilt.theory.cumulant_generating_function(q, s, a))
    k1 = float(sft_tilt.theory.cumulant_generating_function(q, s + c, a))
    assert abs(k1 - (k0 + a * c)) <= 1e-9 * (1 + abs(k0) + abs(a * c))


@given(instance(), st.floats(-1e3, 1e3))
def test_log_tilt_is_invariant_to_shifting_the_logits(inst, c):
    q, s, a, _ = inst
    z = np.log(q)
    shifted = np.asarray(sft_tilt.theory.log_tilt(z + c, s, a))
    np.testing.assert_allclose(shifted, np.asarray(sft_tilt.theory.log_tilt(z, s, a)), rtol=1e-12, atol=1e-10)
    # and equals log softmax(z + a s), computed directly
    np.testing.assert_allclose(shifted, (z + a * s) - np_logsumexp(z + a * s), rtol=1e-10, atol=1e-9)


@given(instance())
def test_log_tilt_normalised_and_finite_where_q_positive(inst):
    q, s, a, _ = inst
    with np.errstate(divide="ignore"):
        out = np.asarray(sft_tilt.theory.log_tilt(np.log(q), s, a))
    assert not np.isnan(out).any()
    assert abs(np_logsumexp(out)) < 1e-12


def test_lam_broadcasts_over_batch_and_matches_vmap():
    rng = np.random.default_rng(2)
    q, s, lam = random_instances(rng, 5, 4)
    batched = np.asarray(sft_tilt.theory.tilt(q[0], s[0], lam))  # one instance, 5 steps
    assert batched.shape == (5, 4)
    mapped = np.asarray(jax.vmap(sft_tilt.theory.tilt, in_axes=(None, None, 0))(q[0], s[0], lam))
    np.testing.assert_allclose(batched, mapped, rtol=1e-14)
    np.testing.assert_allclose(batched, np.exp(numpy_log_tilt(np.repeat(q[:1], 5, 0), np.repeat(s[:1], 5, 0), lam)), rtol=1e-10)


def _message(fn, *args):
    with pytest.raises(ValueError) as info:
        fn(*args)
    return str(info.value)


def test_bad_inputs_raise_value_errors_naming_the_argument():
    q = np.array([0.5, 0.5])
    s = np.array([1.0, 0.0])
    assert _message(sft_tilt.theory.tilt, np.array([-0.1, 1.1]), s, 1.0).startswith("q:")
    assert _message(sft_tilt.theory.tilt, np.array([0.5, 0.6]), s, 1.0).startswith("q:")
    assert _message(sft_tilt.theory.tilt, np.array([np.nan, 1.0]), s, 1.0).startswith("q:")
    assert _message(sft_tilt.theory.tilt, q, np.array([np.nan, 0.0]), 1.0).startswith("s:")
    assert _message(sft_tilt.theory.tilt, q, s, -1.0).startswith("lam:")
    assert _message(sft_tilt.theory.tilt, q, s, np.nan).startswith("lam:")
    assert "q, s" in _message(sft_tilt.theory.tilt, q, np.array([1.0, 0.0, 2.0]), 1.0)
    assert _message(sft_tilt.theory.log_tilt, np.array([0.0, np.inf]), s, 1.0).startswith("log_q:")
    assert _message(sft_tilt.theory.log_tilt, np.array([-np.inf, -np.inf]), s, 1.0).startswith("log_q:")
    assert _message(sft_tilt.theory.log_tilt, np.array([0.0, np.nan]), s, 1.0).startswith("log_q:")
    assert _message(sft_tilt.theory.cumulant_generating_function, np.stack([q, q]), s, np.array([1.0, 2.0, 3.0])).startswith("q, s, lam:")
    # normalisation tolerance: 1e-7 off is accepted (and renormalised), 1e-5 is not
    sft_tilt.theory.tilt(np.array([0.5, 0.5 + 1e-7]), s, 1.0)
    assert _message(sft_tilt.theory.tilt, np.array([0.5, 0.5 + 1e-5]), s, 1.0).startswith("q:")


def test_under_jit_value_checks_are_skipped_but_shape_checks_apply():
    q = np.array([0.5, 0.5])
    s = np.array([1.0, 0.0])
    out = jax.jit(sft_tilt.theory.tilt)(q, s, -1.0)  # documented: not checked under jit
    np.testing.assert_allclose(np.asarray(out), np.exp(numpy_log_tilt(q[None], s[None], np.array([-1.0])))[0], rtol=1e-12)
    with pytest.raises(ValueError, match="^q, s"):
        jax.jit(sft_tilt.theory.tilt)(q, np.array([1.0, 0.0, 2.0]), 1.0)
