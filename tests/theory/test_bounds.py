"""Tests for sft_tilt.theory._bounds: Jensen, Hoeffding and Bennett bounds on one tilt step.

The "actual" dL used against the bounds is ``sft_tilt.theory.single_step_code_length_change``, which
tests/theory/test_single_step.py checks against the definition (NumPy) and against 60-digit mpmath at
lam in {1e-12, 1e-4, 3, 1e6}; the plain NumPy definition cannot resolve slacks of size lam^2 ~ 1e-24.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import logsumexp as np_logsumexp

import sft_tilt.theory

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"

N_INSTANCES = 100_000
N = 5


def softmax_rows(z):
    return np.exp(z - np_logsumexp(z, axis=-1, keepdims=True))


def hard_instances(seed, batch=N_INSTANCES, n=N):
    """Random, near-one-hot, zero-mass, two-point (Hoeffding-tight) and rare-jump (Bennett-tight) cases."""
    rng = np.random.default_rng(seed)
    kind = rng.integers(0, 5, batch)
    scale = np.where(kind == 1, 30.0, rng.uniform(0.3, 3.0, batch))[:, None]
    z = scale * rng.standard_normal((batch, n))
    z = np.where((kind == 2)[:, None] & (rng.random((batch, n)) < 0.4) & (np.arange(n) > 0), -np.inf, z)
    q = softmax_rows(z)
    two_point = np.zeros((batch, n))
    two_point[:, :2] = 0.5
    q = np.where((kind == 3)[:, None], two_point, q)
    p_jump = 10.0 ** rng.uniform(-12, -1, batch)
    rare = np.zeros((batch, n))
    rare[:, 0], rare[:, 1] = 1 - p_jump, p_jump
    q = np.where((kind == 4)[:, None], rare, q)
    P = softmax_rows(rng.uniform(0.3, 3.0, (batch, 1)) * rng.standard_normal((batch, n)))
    s = rng.standard_normal((batch, n)) * 10.0 ** rng.uniform(-2, 1, (batch, 1))
    lam = 10.0 ** rng.uniform(-12, 6, batch)
    lam[rng.random(batch) < 0.01] = 0.0
    return P, q, s, lam


@pytest.fixture(scope="module")
def evaluated():
    P, q, s, lam = hard_instances(0)
    dL = np.asarray(sft_tilt.theory.single_step_code_length_change(P, q, s, lam))
    jensen = np.asarray(sft_tilt.theory.jensen_lower_bound(P, q, s, lam))
    hoeffding = np.asarray(sft_tilt.theory.hoeffding_upper_bound(P, q, s, lam))
    bennett = np.asarray(sft_tilt.theory.bennett_upper_bound(P, q, s, lam))
    return dict(P=P, q=q, s=s, lam=lam, dL=dL, jensen=jensen, hoeffding=hoeffding, bennett=bennett)


def _tolerance(e):
    # rounding of the sums first + V and first + bound-excess: a few ulps of the terms involved
    return 1e-13 * (np.abs(e["jensen"]) + np.abs(e["dL"] - e["jensen"]))


def test_inputs_cover_the_extremes(evaluated):
    lam, q = evaluated["lam"], evaluated["q"]
    assert len(lam) >= 100_000
    assert lam.min() == 0.0 and (lam < 1e-11).any() and (lam > 1e5).any()
    assert (q.max(-1) > 1 - 1e-10).any() and (q == 0).any()
    assert not any(np.isnan(evaluated[k]).any() for k in ("dL", "jensen", "hoeffding", "bennett"))


def test_jensen_lower_bound_never_violated(evaluated):
    e = evaluated
    assert np.all(e["dL"] >= e["jensen"] - _tolerance(e))
    # the bound is the first-order term, computed independently here
    q, P, s, lam = e["q"], e["P"], e["s"], e["lam"]
    first = lam * (np.sum(q * s, -1) - np.sum(P * s, -1))
    assert np.all(np.abs(e["jensen"] - first) <= 1e-10 * np.abs(first) + 1e-12 * lam * np.abs(s).max(-1))


def test_hoeffding_upper_bound_never_violated(evaluated):
    e = evaluated
    finite = np.isfinite(e["hoeffding"])
    assert finite.all()
    assert np.all(e["dL"] <= e["hoeffding"] + _tolerance(e) + 1e-13 * np.abs(e["hoeffding"] - e["jensen"]))
    # independent bound excess: lam^2 (b - a)^2 / 8 with the range over the support of q
    q, s, lam = e["q"], e["s"], e["lam"]
    width = np.where(q > 0, s, -np.inf).max(-1) - np.where(q > 0, s, np.inf).min(-1)
    excess = lam**2 * width**2 / 8
    assert np.all(np.abs(e["hoeffding"] - (e["jensen"] + excess)) <= 1e-12 * (np.abs(e["jensen"]) + excess))


def test_bennett_upper_bound_never_violated(evaluated):
    e = evaluated
    assert np.all(e["dL"] <= e["bennett"] + _tolerance(e) + 1e-13 * np.abs(e["bennett"] - e["jensen"]))


def test_a_halved_hoeffding_constant_is_violated_on_the_same_instances(evaluated):
    # the test above can fail: with (b - a)^2 / 16 the symmetric two-point cases break it
    e = evaluated
    halved = e["jensen"] + (e["hoeffding"] - e["jensen"]) / 2
    assert np.sum(e["dL"] > halved + _tolerance(e)) > 1000


def test_hoeffding_is_tight_for_the_symmetric_two_point_law():
    # q uniform on {a, b}: V = log cosh(lam (b - a) / 2) exactly; Hoeffding's excess is lam^2 (b - a)^2 / 8
    q = np.array([0.5, 0.5])
    s = np.array([-1.0, 1.0])
    P = q
    lam = np.array([1e-6, 1e-3, 0.1, 1.0, 10.0])
    dL = np.asarray(sft_tilt.theory.single_step_code_length_change(P, q, s, lam))
    np.testing.assert_allclose(dL, np.log1p(2 * np.sinh(lam / 2) ** 2), rtol=1e-12)  # log cosh, cancellation-free
    ratio = dL / np.asarray(sft_tilt.theory.hoeffding_upper_bound(P, q, s, lam))
    assert ratio[0] > 1 - 1e-11 and np.all(np.diff(ratio) < 0)


def test_bennett_matches_its_closed_form_and_beats_hoeffding_at_small_variance():
    # q = (1 - p, p) on s = (0, 1): mu = p, sigma^2 = p (1 - p), c = 1 - p
    p = 1e-3
    q = np.array([1 - p, p])
    s = np.array([0.0, 1.0])
    lam = np.array([0.1, 1.0, 5.0])
    c, var = 1 - p, p * (1 - p)
    closed = var / c**2 * (np.exp(lam * c) - 1 - lam * c)
    bennett_excess = np.asarray(sft_tilt.theory.bennett_upper_bound(q, q, s, lam))  # P = q: first-order term is 0
    np.testing.assert_allclose(bennett_excess, closed, rtol=1e-12)
    hoeffding_excess = np.asarray(sft_tilt.theory.hoeffding_upper_bound(q, q, s, lam))
    assert np.all(bennett_excess < hoeffding_excess)
    exact = np.log(1 - p + p * np.exp(lam)) - lam * p
    assert np.all(exact <= bennett_excess)


def test_constant_direction_gives_zero_excess_without_nan():
    q = np.array([0.2, 0.8, 0.0])
    s = np.array([3.0, 3.0, -7.0])  # constant on the support: c = 0, sigma = 0
    P = np.array([0.1, 0.1, 0.8])
    for lam in [0.0, 1e-12, 1.0, 1e6]:
        first = lam * (3.0 - (0.1 * 3 + 0.1 * 3 + 0.8 * -7))
        for f in (sft_tilt.theory.jensen_lower_bound, sft_tilt.theory.hoeffding_upper_bound, sft_tilt.theory.bennett_upper_bound, sft_tilt.theory.single_step_code_length_change):
            val = float(f(P, q, s, lam))
            assert not np.isnan(val)
            assert abs(val - first) <= 1e-12 * max(1.0, abs(first))


def test_given_s_range_is_used_and_checked():
    q = np.array([0.3, 0.7])
    s = np.array([0.0, 1.0])
    assert abs(float(sft_tilt.theory.hoeffding_upper_bound(q, q, s, 2.0, s_range=3.0)) - 4.0 * 9.0 / 8.0) < 1e-14
    with pytest.raises(ValueError, match="^s_range:"):
        sft_tilt.theory.hoeffding_upper_bound(q, q, s, 2.0, s_range=0.5)
    a, b = sft_tilt.theory.support_range(np.array([0.0, 0.5, 0.5]), np.array([-9.0, 1.0, 2.0]))
    assert (float(a), float(b)) == (1.0, 2.0)


@pytest.mark.parametrize("fn", [sft_tilt.theory.jensen_lower_bound, sft_tilt.theory.hoeffding_upper_bound, sft_tilt.theory.bennett_upper_bound])
def test_bounds_jitted_and_eager_agree(fn, evaluated):
    e = evaluated
    sl = slice(0, 2000)
    eager = np.asarray(fn(e["P"][sl], e["q"][sl], e["s"][sl], e["lam"][sl]))
    jitted = np.asarray(jax.jit(fn)(e["P"][sl], e["q"][sl], e["s"][sl], e["lam"][sl]))
    np.testing.assert_allclose(jitted, eager, rtol=1e-13, atol=0)
    with pytest.raises(ValueError, match="^lam:"):
        fn(e["P"][0], e["q"][0], e["s"][0], -1.0)
