"""Multi-step matched-gain bound (sft_tilt.theory._matched_gain) against brute-force multi-step tilting in NumPy.

The simulators below are written independently of the module: a free-logit softmax model (general and
domain data share one tilted distribution) and a linear-logit model with shared parameters (separate
general and domain contexts, leakage through ``W_1 W_2^T``). The per-step constants are recomputed here
in NumPy from the definitions, and the bound must hold on every trajectory that reaches ``Delta*``.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

import sft_tilt.theory
from sft_tilt.theory import matched_gain_bound, matched_gain_constants_from_trajectory, steps_to_reach_gain

N_INSTANCES = 1000


def test_float64_in_effect():
    assert jnp.asarray(1.0).dtype == jnp.float64


# ---------------------------------------------------------------- independent NumPy machinery
def _step_quantities(Z, P, lam):
    """Per-step (dL on P, first-order rate E_q s - E_P s, V = K(lam) - lam E_q s, range) for Z [S+1, n, V]."""
    L = log_softmax(Z, axis=-1)
    q = np.exp(L[:-1])
    s = (Z[1:] - Z[:-1]) / lam[None, :, None]
    dl = np.sum(P[None] * (L[:-1] - L[1:]), axis=-1)  # code-length change E_P[-log q_{t+1}] - E_P[-log q_t]
    rate = np.sum(q * s, -1) - np.sum(P[None] * s, -1)
    K = logsumexp(L[:-1] + lam[None, :, None] * s, axis=-1)  # log E_q e^{lam s}
    V = K - lam[None, :] * np.sum(q * s, -1)
    rng = s.max(-1) - s.min(-1)
    return dl, rate, V, rng


def _constants(Zg, Zd, P1, P2, lam, T):
    """NumPy constants over steps t < T (per instance): rho_max, g_min, g_max, ranges, g_0, beta, D, G."""
    D_t, l_t, V1, r1 = _step_quantities(Zg, P1, lam)
    negG, neg_g, V2, r2 = _step_quantities(Zd, P2, lam)
    G_t, g_t = -negG, -neg_g
    S, n = G_t.shape
    mask = np.arange(S)[:, None] < T[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):  # g_t = 0 only at masked steps after convergence
        rho = l_t / g_t
    cum = np.vstack([np.zeros((1, n)), np.cumsum(G_t, 0)[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        beta_t = np.where(mask & (cum > 0), (g_t[0][None] - g_t) / cum, 0.0)
        gamma_t = np.where(mask & (cum > 0), (rho - rho[0][None]) / cum, 0.0)
    big = np.inf
    return dict(
        rho_max=np.where(mask, rho, -big).max(0),
        g_min=np.where(mask, g_t, big).min(0),
        g_max=np.where(mask, g_t, -big).max(0),
        s_range=np.where(mask, r2, -big).max(0),
        s_range_general=np.where(mask, r1, -big).max(0),
        g0=g_t[0],
        beta=np.maximum(beta_t.max(0), 0.0),
        rho0=rho[0],
        gamma=np.maximum(gamma_t.max(0), 0.0),
        D=np.where(mask, D_t, 0.0).sum(0),
        G=np.where(mask, G_t, 0.0).sum(0),
        per_step=(D_t, G_t, g_t, l_t, V1, V2, r1, r2),
    )


def _simulate_shared(seed, n=N_INSTANCES, V=6, steps=400):
    """Free-logit softmax: z <- z + lam (P2 - q), the expected CE step on P2; P1 on the same distribution."""
    rng = np.random.default_rng(seed)
    z0 = rng.normal(size=(n, V)) * rng.uniform(0.5, 3.0, size=(n, 1))
    P1 = np.exp(log_softmax(z0 + rng.normal(size=(n, V)) * rng.uniform(0.0, 2.0, size=(n, 1)), -1))
    P2 = np.exp(log_softmax(rng.normal(size=(n, V)) * 3.0, -1))
    lam = np.exp(rng.uniform(np.log(0.02), np.log(3.0), size=n))
    kl = np.sum(P2 * (np.log(P2) - log_softmax(z0, -1)), -1)
    dstar = rng.uniform(0.05, 0.7, size=n) * kl
    Z = [z0]
    for _ in range(steps):
        q = np.exp(log_softmax(Z[-1], -1))
        Z.append(Z[-1] + lam[:, None] * (P2 - q))
    Z = np.stack(Z)
    return Z, P1, P2, lam, dstar


def _simulate_separate(seed, n=N_INSTANCES, V=5, d=4, steps=400):
    """Linear logits with shared parameters: z_h = W_h theta + b_h; SGD on the domain CE leaks into context 1."""
    rng = np.random.default_rng(seed)
    W1 = rng.normal(size=(n, V, d)) / np.sqrt(d)
    W2 = rng.normal(size=(n, V, d)) / np.sqrt(d)
    b1 = rng.normal(size=(n, V)) * 1.5
    b2 = rng.normal(size=(n, V)) * 1.5
    P1 = np.exp(log_softmax(b1 + rng.normal(size=(n, V)) * rng.uniform(0.0, 1.5, size=(n, 1)), -1))
    P2 = np.exp(log_softmax(rng.normal(size=(n, V)) * 3.0, -1))
    lam = np.exp(rng.uniform(np.log(0.02), np.log(3.0), size=n))
    theta = np.zeros((n, d))
    Zg, Zd = [b1.copy()], [b2.copy()]
    for _ in range(steps):
        q2 = np.exp(log_softmax(Zd[-1], -1))
        theta = theta + lam[:, None] * np.einsum("nvd,nv->nd", W2, P2 - q2)
        Zg.append(np.einsum("nvd,nd->nv", W1, theta) + b1)
        Zd.append(np.einsum("nvd,nd->nv", W2, theta) + b2)
    Zg, Zd = np.stack(Zg), np.stack(Zd)
    # the achievable gain is limited by the model class; aim at a fraction of what the run reaches
    final_gain = np.sum(P2 * (log_softmax(Zd[-1], -1) - log_softmax(Zd[0], -1)), -1)
    dstar = rng.uniform(0.05, 0.9, size=n) * np.maximum(final_gain, 0.0)
    return Zg, Zd, P1, P2, lam, dstar


def _stopping(Zd, P2, dstar):
    cumG = np.sum(P2[None] * (log_softmax(Zd, -1) - log_softmax(Zd[:1], -1)), -1)  # gain after t steps
    reached = (cumG >= dstar[None]).any(0) & (dstar > 0)
    T = np.argmax(cumG >= dstar[None], axis=0)
    return T, reached


def _report(name, D, bound):
    fin = np.isfinite(bound)
    gap = (bound - D)[fin]
    print(f"\n[{name}] finite bounds {fin.mean():.3f}; slack bound-D: min {gap.min():.3g} median {np.median(gap):.3g};"
          f" D/bound (bound>0) median {np.median((D / bound)[fin & (bound > 0)]):.3g}")


# ---------------------------------------------------------------- identities of the per-step decomposition
def test_trajectory_constants_match_independent_numpy_on_separate_contexts():
    Zg, Zd, P1, P2, lam, dstar = _simulate_separate(1, n=200, steps=30)
    T = np.full(200, 30)
    ref = _constants(Zg, Zd, P1, P2, lam, T)
    f = jax.vmap(lambda zg, zd, p1, p2, l: matched_gain_constants_from_trajectory(zg, zd, p1, p2, l), in_axes=(1, 1, 0, 0, 0))
    got = f(Zg, Zd, P1, P2, lam)
    D_t, G_t, g_t, l_t, V1, V2, r1, r2 = ref["per_step"]
    for mine, theirs in [(got.degradation, D_t), (got.gain, G_t), (got.gain_rate, g_t), (got.loss_rate, l_t),
                         (got.v_general, V1), (got.v_domain, V2), (got.range_general, r1), (got.range_domain, r2)]:
        np.testing.assert_allclose(np.asarray(mine).T, theirs, rtol=1e-9, atol=1e-12)
    for key in ("rho_max", "g_min", "g_max", "s_range", "s_range_general", "D", "G"):
        mine = {"D": got.total_degradation, "G": got.total_gain}.get(key, getattr(got, key, None))
        np.testing.assert_allclose(np.asarray(mine), ref[key], rtol=1e-9, atol=1e-12)


def test_per_step_decomposition_is_exact():
    """D_t = lam l_t + V1_t and G_t = lam g_t - V2_t, with V the KL(q_t || q_{t+1}) computed by the module."""
    Zg, Zd, P1, P2, lam, _ = _simulate_separate(2, n=300, steps=20)
    f = jax.vmap(lambda zg, zd, p1, p2, l: matched_gain_constants_from_trajectory(zg, zd, p1, p2, l), in_axes=(1, 1, 0, 0, 0))
    c = f(Zg, Zd, P1, P2, lam)
    lam_b = lam[:, None]
    np.testing.assert_allclose(c.degradation, lam_b * c.loss_rate + c.v_general, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(c.gain, lam_b * c.gain_rate - c.v_domain, rtol=1e-9, atol=1e-12)
    # Hoeffding per context: 0 <= V <= lam^2 range^2 / 8 (one context per side here)
    assert np.all(np.asarray(c.v_domain) >= -1e-15)
    assert np.all(np.asarray(c.v_domain) <= lam_b**2 * np.asarray(c.range_domain) ** 2 / 8 + 1e-12)


def test_summaries_respect_n_steps_under_vmap():
    Zg, Zd, P1, P2, lam, _ = _simulate_separate(3, n=100, steps=25)
    T = np.random.default_rng(0).integers(1, 26, size=100)
    ref = _constants(Zg, Zd, P1, P2, lam, T)
    f = jax.jit(jax.vmap(lambda zg, zd, p1, p2, l, n: matched_gain_constants_from_trajectory(zg, zd, p1, p2, l, n_steps=n),
                         in_axes=(1, 1, 0, 0, 0, 0)))
    got = f(Zg, Zd, P1, P2, lam, T)
    np.testing.assert_allclose(got.rho_max, ref["rho_max"], rtol=1e-9)
    np.testing.assert_allclose(got.g_min, ref["g_min"], rtol=1e-9)
    np.testing.assert_allclose(got.total_degradation, ref["D"], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.gain_decay, ref["beta"], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.rho_initial, ref["rho0"], rtol=1e-9, atol=1e-13)
    np.testing.assert_allclose(got.leakage_growth, ref["gamma"], rtol=1e-9, atol=1e-13)


# ---------------------------------------------------------------- the bound against brute-force multi-step tilting
def test_bound_holds_on_free_logit_softmax_trajectories():
    Z, P1, P2, lam, dstar = _simulate_shared(10)
    T, reached = _stopping(Z, P2, dstar)
    assert reached.mean() > 0.95
    c = _constants(Z, Z, P1, P2, lam, np.maximum(T, 1))
    b = matched_gain_bound(dstar, lam, c["rho_max"], c["g_min"], c["s_range"], g_max=c["g_max"])
    bound, relaxed = np.asarray(b.bound)[reached], np.asarray(b.bound_relaxed)[reached]
    D = c["D"][reached]
    assert np.isfinite(bound).mean() > 0.9  # the check is not vacuous
    assert np.all(D <= bound + 1e-12)
    assert np.all(bound <= relaxed + 1e-12)
    assert np.all(T[reached] <= np.asarray(b.n_steps_max)[reached])
    assert (c["rho_max"][reached] < 0).any() and (c["rho_max"][reached] > 0).any()  # both leakage signs exercised
    _report("shared", D, bound)


def test_bound_holds_with_separate_contexts_and_shared_parameters():
    Zg, Zd, P1, P2, lam, dstar = _simulate_separate(11)
    T, reached = _stopping(Zd, P2, dstar)
    assert reached.mean() > 0.8
    c = _constants(Zg, Zd, P1, P2, lam, np.maximum(T, 1))
    b = matched_gain_bound(dstar, lam, c["rho_max"], c["g_min"], c["s_range"], g_max=c["g_max"],
                           s_range_general=c["s_range_general"])
    bound = np.asarray(b.bound)[reached]
    D = c["D"][reached]
    assert np.isfinite(bound).mean() > 0.8
    assert np.all(D <= bound + 1e-12)
    assert np.all(bound <= np.asarray(b.bound_relaxed)[reached] + 1e-12)
    _report("separate", D, bound)


def test_decaying_gain_variant_holds_with_fitted_decay():
    Z, P1, P2, lam, dstar = _simulate_shared(12)
    T, reached = _stopping(Z, P2, dstar)
    c = _constants(Z, Z, P1, P2, lam, np.maximum(T, 1))
    b = matched_gain_bound(dstar, lam, c["rho_max"], c["g0"], c["s_range"], g_max=c["g_max"], gain_decay=c["beta"])
    bound = np.asarray(b.bound)[reached]
    assert np.isfinite(bound).mean() > 0.5
    assert (c["beta"][reached] > 0).mean() > 0.5  # CE steps do slow down as the domain is learned
    assert np.all(c["D"][reached] <= bound + 1e-12)
    assert np.all(T[reached] <= np.asarray(b.n_steps_max)[reached])
    _report("decaying gain", c["D"][reached], bound)


@pytest.mark.parametrize("model", ["shared", "separate"])
def test_growing_leakage_variant_holds_with_fitted_growth(model):
    """rho_t <= rho_0 + gamma Gamma_t fitted per trajectory; composed with the fitted gain decay as well."""
    if model == "shared":
        Z, P1, P2, lam, dstar = _simulate_shared(13)
        Zg = Zd = Z
        extra = {}
    else:
        Zg, Zd, P1, P2, lam, dstar = _simulate_separate(14)
    T, reached = _stopping(Zd, P2, dstar)
    c = _constants(Zg, Zd, P1, P2, lam, np.maximum(T, 1))
    extra = {} if model == "shared" else {"s_range_general": c["s_range_general"]}
    grow = matched_gain_bound(dstar, lam, c["rho0"], c["g_min"], c["s_range"], g_max=c["g_max"], leakage_growth=c["gamma"], **extra)
    both = matched_gain_bound(dstar, lam, c["rho0"], c["g0"], c["s_range"], g_max=c["g_max"], leakage_growth=c["gamma"],
                              gain_decay=c["beta"], **extra)
    assert (c["gamma"][reached] > 0).mean() > 0.3  # the variant is exercised
    for b in (grow, both):
        bound = np.asarray(b.bound)[reached]
        assert np.isfinite(bound).mean() > 0.5
        assert np.all(c["D"][reached] <= bound + 1e-12)
        assert np.all(bound <= np.asarray(b.bound_relaxed)[reached] + 1e-12 * (1 + np.abs(bound)))
    _report(f"growing leakage ({model})", c["D"][reached], np.asarray(grow.bound)[reached])


def test_growing_leakage_with_zero_growth_is_the_constant_leakage_bound():
    rng = np.random.default_rng(8)
    args = (rng.uniform(0, 3, 500), rng.uniform(0, 0.3, 500), rng.normal(0, 1, 500), rng.uniform(0.1, 2, 500), rng.uniform(0, 2, 500))
    a, b = matched_gain_bound(*args), matched_gain_bound(*args, leakage_growth=0.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    # with growth, the Delta*^2 coefficient at order lam^0 is gamma/2 (Sum_t Gamma_t G_t <= Gamma_T^2 / 2)
    g = matched_gain_bound(*args, leakage_growth=0.4)
    np.testing.assert_allclose(np.asarray(g.k1_quadratic), 0.2)


# ---------------------------------------------------------------- the step count and the constants
def _worst_case_steps(delta_star, lam, a, beta):
    """Iterate the slowest admissible gain recursion Gamma <- Gamma + lam (a - beta Gamma) until Gamma >= Delta*."""
    gamma, n = 0.0, 0
    while gamma < delta_star:
        gamma += lam * (a - beta * gamma)
        n += 1
    return n


def test_step_count_equals_worst_case_recursion():
    rng = np.random.default_rng(5)
    for _ in range(300):
        lam, g0, s_rng = rng.uniform(0.01, 0.5), rng.uniform(0.2, 2.0), rng.uniform(0.0, 2.0)
        beta = rng.choice([0.0, rng.uniform(0.0, 1.0)])
        a = g0 - lam * s_rng**2 / 8
        if a <= 0:
            continue
        dstar = rng.uniform(0.01, 0.95) * (a / beta if beta > 0 else 5.0)
        b = matched_gain_bound(dstar, lam, 0.3, g0, s_rng, gain_decay=beta)
        expect = _worst_case_steps(dstar, lam, a, beta)
        got = int(b.n_steps_max)
        assert expect <= got <= expect + 1  # +1 only from rounding a value within float64 error of an integer up


def test_relaxed_constants_are_linear_then_quadratic_in_delta_star():
    """k2 = k2_const + C/a Delta* (+ C beta / (2 a (a - beta D*)) Delta*^2); compare with an independent series."""
    lam, g0, s_rng, rho = 0.01, 0.8, 1.2, 0.25
    c2 = s_rng**2 / 8
    C = (1 + rho) * c2
    a = g0 - lam * c2
    b = matched_gain_bound(2.0, lam, rho, g0, s_rng)
    np.testing.assert_allclose(b.k2_linear, C / a, rtol=1e-12)
    np.testing.assert_allclose(b.k2_quadratic, 0.0, atol=0)
    np.testing.assert_allclose(b.k2_const, rho * s_rng + C * lam, rtol=1e-12)
    beta = 0.1
    bd = matched_gain_bound(2.0, lam, rho, g0, s_rng, gain_decay=beta)
    # N lam -> log(a/(a - beta D*))/beta as lam -> 0, whose Taylor series is D*/a + beta D*^2/(2a^2) + ...
    exact_time = np.log(a / (a - beta * 2.0)) / beta
    assert 2.0 / a + beta * 4.0 / (2 * a**2) <= exact_time <= 2.0 / a + float(bd.k2_quadratic) / C * 4.0 + 1e-12


def test_bound_never_below_exact_over_random_parameters():
    rng = np.random.default_rng(6)
    n = 100_000
    args = dict(
        delta_star=rng.uniform(0, 5, n), lam=rng.uniform(0, 1, n), rho_max=rng.normal(0, 1, n),
        g_min=rng.uniform(0.01, 2, n), s_range=rng.uniform(0, 3, n),
    )
    beta = rng.uniform(0, 0.5, n) * (rng.uniform(size=n) < 0.5)
    gamma = rng.uniform(0, 0.5, n) * (rng.uniform(size=n) < 0.5)
    b = matched_gain_bound(**args, gain_decay=beta, leakage_growth=gamma)
    bound, relaxed = np.asarray(b.bound), np.asarray(b.bound_relaxed)
    assert not np.isnan(bound).any() and not np.isnan(relaxed).any()
    fin = np.isfinite(bound)
    assert 0.2 < fin.mean() < 1.0
    assert np.all(bound[fin] <= relaxed[fin] + 1e-12 * np.abs(relaxed[fin]) + 1e-12)
    assert np.all(np.isinf(relaxed[~fin]))


def test_jit_and_eager_agree_and_premise_failure_is_inf():
    args = (np.array([1.0, 1.0, 0.0]), np.array([0.1, 50.0, 0.1]), 0.2, 0.5, 1.0)
    eager = matched_gain_bound(*args)
    jitted = jax.jit(matched_gain_bound)(*args)
    for x, y in zip(eager, jitted):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-12)
    assert np.isinf(eager.bound[1])  # g_min <= lam c2: no guarantee
    for field in eager:
        assert not np.isnan(np.asarray(field)).any()
    assert eager.k1.shape == (3,) and np.all(eager.k1 == 0.2)
    assert eager.bound[2] == 0.0  # Delta* = 0: nothing to do


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(delta_star=-1.0), "delta_star"),
        (dict(lam=-0.1), "lam"),
        (dict(g_min=0.0), "g_min"),
        (dict(s_range=np.nan), "s_range"),
        (dict(gain_decay=-1.0), "gain_decay"),
        (dict(leakage_growth=-0.5), "leakage_growth"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, name):
    args = dict(delta_star=1.0, lam=0.1, rho_max=0.2, g_min=0.5, s_range=1.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        matched_gain_bound(**args)


def test_trajectory_bad_input_raises():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match="p_domain"):
        matched_gain_constants_from_trajectory(z, z, np.full(4, 0.25), np.full(4, 0.3), 0.1)
    with pytest.raises(ValueError, match="lam"):
        matched_gain_constants_from_trajectory(z, z, np.full(4, 0.25), np.full(4, 0.25), 0.0)
    with pytest.raises(ValueError, match="logits_domain"):
        matched_gain_constants_from_trajectory(z, np.zeros((4, 4)), np.full(4, 0.25), np.full(4, 0.25), 0.1)


def test_steps_to_reach_gain_matches_loop():
    rng = np.random.default_rng(7)
    gains = rng.uniform(0, 0.3, size=(200, 20))
    dstar = rng.uniform(0, 3, size=200)
    got = np.asarray(steps_to_reach_gain(gains, dstar))
    for i in range(200):
        total, t = 0.0, 0
        while total < dstar[i] and t < 20:
            total += gains[i, t]
            t += 1
        expect = t if total >= dstar[i] else 21
        assert got[i] == expect


def test_exported_from_package():
    assert sft_tilt.theory.matched_gain_bound is matched_gain_bound


# ---------------------------------------------------------------- properties of the relaxed bound
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_pos = st.floats(1e-3, 3.0)


@settings(max_examples=40)
@given(_pos, st.floats(1e-4, 0.5), st.floats(-1.0, 2.0), st.floats(0.05, 2.0), _pos, st.floats(0.0, 0.3), st.floats(1.01, 2.0))
def test_relaxed_bound_is_monotone_in_each_constant(dstar, lam, rho, g_min, s_rng, beta, factor):
    """Larger step, leakage, range or gain decay never lowers the relaxed bound; a larger gain floor never raises it."""
    def B(**kw):
        args = dict(delta_star=dstar, lam=lam, rho_max=rho, g_min=g_min, s_range=s_rng, gain_decay=beta)
        args.update(kw)
        return float(matched_gain_bound(**args).bound_relaxed)

    base = B()
    assert not np.isnan(base)

    def ge(a, b):  # a >= b up to rounding; inf only dominated by inf
        return a == np.inf if b == np.inf else a >= b - 1e-12 * (1 + abs(b))

    assert ge(B(lam=lam * factor), base)
    assert ge(B(rho_max=rho + factor - 1), base)
    assert ge(B(s_range=s_rng * factor), base)
    assert ge(B(gain_decay=beta * factor + 1e-3), base)
    assert ge(B(leakage_growth=factor - 1), base)
    assert ge(base, B(g_min=g_min * factor))
    if rho >= 0:  # with negative leakage more gain can lower the floor k1 Delta*
        assert ge(B(delta_star=dstar * factor), base)
