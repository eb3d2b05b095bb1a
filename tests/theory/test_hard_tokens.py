"""Hard tokens and the safe step size (sft_tilt.theory._hard_tokens) against direct, independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import brentq
from scipy.special import logsumexp

import sft_tilt.theory
from sft_tilt.theory import ce_update_norm_bounds, degradation_bound_from_mass, hard_token_constants, hard_token_mass, safe_step_size


def test_float64_in_effect():
    assert jnp.asarray(1.0).dtype == jnp.float64


def _random_simplex(rng, n, V, conc):
    g = rng.gamma(conc[:, None], size=(n, V))
    return g / g.sum(-1, keepdims=True)


# ---------------------------------------------------------------- update norm of one CE token
def test_update_norm_lies_in_bounds_on_100k_random_distributions():
    rng = np.random.default_rng(0)
    n = 100_000
    V = rng.integers(2, 60)
    q = _random_simplex(rng, n, V, np.exp(rng.uniform(np.log(0.01), np.log(10), n)))
    y = rng.integers(0, V, n)
    e = np.eye(V)[y]
    norm = np.linalg.norm(e - q, axis=-1)  # direct
    p_y = q[np.arange(n), y]
    lo, hi = (np.asarray(b) for b in ce_update_norm_bounds(p_y))
    assert np.all(norm >= lo * (1 - 1e-12) - 1e-15)
    assert np.all(norm <= hi * (1 + 1e-12) + 1e-15)
    # the sharp finite-V lower bound (1 - p_y) sqrt(V/(V-1)) also holds
    assert np.all(norm >= lo * np.sqrt(V / (V - 1)) * (1 - 1e-12) - 1e-15)


def test_update_norm_bounds_are_attained():
    p_y = np.linspace(0, 1, 11)
    V = 10_000
    lo, hi = (np.asarray(b) for b in ce_update_norm_bounds(p_y))
    # remainder on a single other token: ||e_y - q||^2 = 2 (1 - p_y)^2
    np.testing.assert_allclose(hi, np.sqrt((1 - p_y) ** 2 + (1 - p_y) ** 2), rtol=1e-14)
    # remainder spread uniformly over V-1 tokens: sqrt((1-p)^2 (1 + 1/(V-1))) -> 1 - p_y as V grows
    spread = np.sqrt((1 - p_y) ** 2 + (V - 1) * ((1 - p_y) / (V - 1)) ** 2)
    np.testing.assert_allclose(lo, spread, rtol=1e-3)


# ---------------------------------------------------------------- hard-token mass
def test_hard_token_mass_matches_direct_weighted_means():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=(1000, 17)) ** 3
    w = rng.exponential(size=(1000, 17))
    np.testing.assert_allclose(hard_token_mass(p), np.mean(1 - p, -1), rtol=1e-13)
    np.testing.assert_allclose(hard_token_mass(p, w), np.sum(w * (1 - p), -1) / np.sum(w, -1), rtol=1e-13)
    thr = 0.2
    count = np.array([sum(wi for wi, pi in zip(wr, pr) if pi <= thr) for wr, pr in zip(w, p)]) / w.sum(-1)
    np.testing.assert_allclose(hard_token_mass(p, w, threshold=thr), count, rtol=1e-13)


@settings(max_examples=30)  # each example runs talr_weights eagerly; one shape keeps compilation cached
@given(
    st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
    st.floats(1e-3, 1e3),
    st.sampled_from([None, 0.0, 0.01, 0.1]),
)
def test_talr_weights_never_increase_hard_token_mass(p, tau, floor):
    """Chebyshev's sum inequality: weights non-decreasing in p put no more mass on (1 - p) than uniform ones."""
    p = np.asarray(p)
    losses = -np.log(np.maximum(p, 1e-300))
    w = np.asarray(sft_tilt.theory.talr_weights(losses, tau, floor=floor))
    uniform = float(hard_token_mass(p))
    assert float(hard_token_mass(p, w)) <= uniform + 1e-12
    for thr in (0.2, 0.5):
        assert float(hard_token_mass(p, w, threshold=thr)) <= float(hard_token_mass(p, threshold=thr)) + 1e-12


def test_talr_mass_reduction_on_many_batches_at_once():
    rng = np.random.default_rng(2)
    p = rng.beta(0.3, 0.1, size=(5000, 64))  # mostly easy tokens with a hard minority, as in the paper's section 7.3
    tau = np.exp(rng.uniform(np.log(0.01), np.log(100), size=5000))
    w = np.asarray(sft_tilt.theory.talr_weights(-np.log(np.maximum(p, 1e-300)), tau, floor=0.001))
    m_talr, m_sft = np.asarray(hard_token_mass(p, w)), np.asarray(hard_token_mass(p))
    assert np.all(m_talr <= m_sft + 1e-12)
    assert np.mean(m_talr < m_sft - 1e-6) > 0.99  # strictly smaller unless all p are equal


# ---------------------------------------------------------------- constants as functions of the mass
def test_constants_bound_the_tilts_of_random_linear_logit_models():
    """s(h) = sum_i w_i J_h J_i^T (e_y - q_i): ||s||_2 <= sqrt2 kappa m, range <= 2 kappa m, l <= sqrt2 kappa delta1 m."""
    rng = np.random.default_rng(3)
    n_models, V, d, n_tok = 300, 7, 5, 12
    for _ in range(n_models):
        J_tok = rng.normal(size=(n_tok, V, d)) / np.sqrt(d)
        J_gen = rng.normal(size=(V, d)) / np.sqrt(d)
        q_tok = _random_simplex(rng, n_tok, V, np.full(n_tok, rng.uniform(0.05, 2)))
        y = rng.integers(0, V, n_tok)
        w = rng.exponential(size=n_tok)
        w /= w.sum()
        kappa = max(np.linalg.norm(J_gen @ J_i.T, 2) for J_i in J_tok)
        grads = np.eye(V)[y] - q_tok
        s = sum(w[i] * J_gen @ J_tok[i].T @ grads[i] for i in range(n_tok))
        m = float(hard_token_mass(q_tok[np.arange(n_tok), y], w))
        q_gen = _random_simplex(rng, 1, V, np.array([1.0]))[0]
        P1 = _random_simplex(rng, 1, V, np.array([1.0]))[0]
        delta1 = np.linalg.norm(q_gen - P1)
        g_min = 0.3
        c = hard_token_constants(m, kappa, delta1, g_min)
        assert np.linalg.norm(s) <= np.sqrt(2) * kappa * m * (1 + 1e-12)
        assert s.max() - s.min() <= float(c.s_range) * (1 + 1e-12)
        loss_rate = q_gen @ s - P1 @ s
        assert loss_rate <= float(c.rho_max) * g_min * (1 + 1e-12) + 1e-15


# ---------------------------------------------------------------- safe step size
def _B_numpy(lam, dstar, m, kappa, delta1, g_min):
    """The relaxed bound written out independently from the module docstrings (separate contexts)."""
    rho = np.sqrt(2) * kappa * delta1 * m / g_min
    rng = 2 * kappa * m
    c2 = c1 = rng**2 / 8
    C = c1 + max(rho, 0.0) * c2
    a = g_min - lam * c2
    if lam <= 0 or a <= 0:
        return np.inf
    return rho * dstar + lam * (max(rho, 0.0) * rng + C * dstar / a + C * lam)


def test_safe_step_matches_brent_root_of_independent_bound():
    rng = np.random.default_rng(4)
    n = 1000
    m = rng.uniform(0.01, 1, n)
    kappa = rng.uniform(0.1, 3, n)
    delta1 = rng.uniform(0, 0.5, n)
    g_min = rng.uniform(0.05, 1, n)
    dstar = rng.uniform(0.1, 3, n)
    eps = rng.uniform(0, 2, n)
    got = np.asarray(safe_step_size(eps, dstar, m, coupling=kappa, general_misfit=delta1, g_min=g_min))
    assert not np.isnan(got).any()
    n_pos = 0
    for i in range(n):
        f = lambda lam: _B_numpy(lam, dstar[i], m[i], kappa[i], delta1[i], g_min[i]) - eps[i]  # noqa: E731
        k1d = np.sqrt(2) * kappa[i] * delta1[i] * m[i] / g_min[i] * dstar[i]
        if eps[i] <= k1d:
            assert got[i] == 0.0
            continue
        hi = g_min[i] / ((2 * kappa[i] * m[i]) ** 2 / 8) * (1 - 1e-12)
        root = brentq(f, 1e-300, hi, xtol=1e-300, rtol=1e-13, maxiter=500)
        np.testing.assert_allclose(got[i], root, rtol=1e-9)
        n_pos += 1
    assert n_pos > 300


def test_safe_step_is_non_increasing_in_hard_token_mass():
    rng = np.random.default_rng(5)
    n = 2000
    m1, m2 = np.sort(rng.uniform(0, 1, (2, n)), axis=0)
    kw = dict(coupling=rng.uniform(0.1, 3, n), general_misfit=rng.uniform(0, 0.5, n), g_min=rng.uniform(0.05, 1, n))
    eps, dstar = rng.uniform(0, 2, n), rng.uniform(0.1, 3, n)
    lam1 = np.asarray(safe_step_size(eps, dstar, m1, **kw))
    lam2 = np.asarray(safe_step_size(eps, dstar, m2, **kw))
    assert np.all(lam2 <= lam1 * (1 + 1e-9))
    assert np.mean(lam2 < lam1 * (1 - 1e-6)) > 0.5  # strictly, where a safe step exists


def test_safe_step_conventions_and_bound_at_the_root():
    kw = dict(coupling=1.0, general_misfit=0.2, g_min=0.4)
    dstar, m = 1.0, 0.3
    k1 = np.sqrt(2) * 1.0 * 0.2 * m / 0.4
    assert float(safe_step_size(k1 * dstar, dstar, m, **kw)) == 0.0
    assert float(safe_step_size(0.5 * k1 * dstar, dstar, m, **kw)) == 0.0
    assert np.isinf(float(safe_step_size(0.1, dstar, 0.0, **kw)))
    lam = float(safe_step_size(0.5, dstar, m, **kw))
    assert lam > 0
    at = float(degradation_bound_from_mass(lam, dstar, m, **kw))
    above = float(degradation_bound_from_mass(lam * (1 + 1e-8), dstar, m, **kw))
    assert at <= 0.5 < above


def test_safe_step_jit_equals_eager():
    m = np.linspace(0, 1, 21)
    f = lambda m: safe_step_size(0.5, 1.0, m, coupling=1.0, general_misfit=0.1, g_min=0.2)  # noqa: E731
    np.testing.assert_allclose(np.asarray(f(m)), np.asarray(jax.jit(f)(m)), rtol=1e-12)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: ce_update_norm_bounds(1.5), "p_y"),
        (lambda: hard_token_mass(np.array([0.5, np.nan])), "p"),
        (lambda: hard_token_mass(np.array([0.5, 0.2]), np.array([-1.0, 1.0])), "weights"),
        (lambda: safe_step_size(-0.1, 1.0, 0.5, coupling=1.0, general_misfit=0.1, g_min=0.2), "eps"),
        (lambda: safe_step_size(0.1, 0.0, 0.5, coupling=1.0, general_misfit=0.1, g_min=0.2), "delta_star"),
        (lambda: safe_step_size(0.1, 1.0, 1.5, coupling=1.0, general_misfit=0.1, g_min=0.2), "hard_token_mass"),
        (lambda: safe_step_size(0.1, 1.0, 0.5, coupling=-1.0, general_misfit=0.1, g_min=0.2), "coupling"),
        (lambda: safe_step_size(0.1, 1.0, 0.5, coupling=1.0, general_misfit=0.1, g_min=0.0), "g_min"),
    ],
)
def test_bad_input_raises_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ---------------------------------------------------------------- end to end: the chain mass -> constants -> bound
def _linear_logit_run(seed, weighting, n=300, V=5, d=6, n_dom=4, n_gen=2, steps=300):
    """SGD on the (weighted) domain CE of a linear-logit model z_h = J_h theta + b_h; returns what the bound needs."""
    rng = np.random.default_rng(seed)
    J_dom = rng.normal(size=(n, n_dom, V, d)) / np.sqrt(d)
    J_gen = rng.normal(size=(n, n_gen, V, d)) / np.sqrt(d)
    b_dom = rng.normal(size=(n, n_dom, V)) * 2
    b_gen = rng.normal(size=(n, n_gen, V)) * 2
    y = rng.integers(0, V, size=(n, n_dom))
    P2 = np.eye(V)[y]  # one target token per domain context
    P1 = np.exp(b_gen + rng.normal(size=(n, n_gen, V)) * 0.7)
    P1 /= P1.sum(-1, keepdims=True)
    # small steps: the worst-case constants (kappa from spectral norms) make the premise g_min > lam c2 strict
    lam = np.exp(rng.uniform(np.log(0.005), np.log(0.06), n))
    # coupling: max spectral norm of J_h J_i^T over all contexts h and domain targets i
    J_all = np.concatenate([J_dom, J_gen], axis=1)
    prods = np.einsum("nhvd,niud->nhivu", J_all, J_dom)
    kappa = np.linalg.norm(prods, ord=2, axis=(-2, -1)).max(axis=(1, 2))
    theta = np.zeros((n, d))
    rec = {k: [] for k in ("m", "delta1", "g", "gain", "deg")}
    for _ in range(steps):
        z_dom = np.einsum("nhvd,nd->nhv", J_dom, theta) + b_dom
        z_gen = np.einsum("nhvd,nd->nhv", J_gen, theta) + b_gen
        q_dom, q_gen = np.exp(z_dom - logsumexp(z_dom, -1, keepdims=True)), np.exp(z_gen - logsumexp(z_gen, -1, keepdims=True))
        p = np.sum(q_dom * P2, -1)  # target-token probabilities
        if weighting == "sft":
            w = np.full((n, n_dom), 1.0 / n_dom)
        else:
            w = p**2 / np.sum(p**2, -1, keepdims=True)  # TALR softmax(-l / tau) at tau = 0.5, i.e. p^(1/tau) normalised
        step = np.einsum("ni,nivd,niv->nd", w, J_dom, P2 - q_dom)
        new = theta + lam[:, None] * step
        z_dom2 = np.einsum("nhvd,nd->nhv", J_dom, new) + b_dom
        z_gen2 = np.einsum("nhvd,nd->nhv", J_gen, new) + b_gen
        lq = lambda z: z - logsumexp(z, -1, keepdims=True)  # noqa: E731
        s_dom = (z_dom2 - z_dom) / lam[:, None, None]
        rec["m"].append(np.sum(w * (1 - p), -1))
        rec["delta1"].append(np.sqrt(np.mean(np.sum((q_gen - P1) ** 2, -1), -1)))
        rec["g"].append(np.mean(np.sum(P2 * s_dom, -1) - np.sum(q_dom * s_dom, -1), -1))
        rec["gain"].append(np.mean(np.sum(P2 * (lq(z_dom2) - lq(z_dom)), -1), -1))
        rec["deg"].append(np.mean(np.sum(P1 * (lq(z_gen) - lq(z_gen2)), -1), -1))
        theta = new
    rec = {k: np.stack(v) for k, v in rec.items()}  # [steps, n]
    return rec, lam, kappa


@pytest.mark.parametrize("weighting", ["sft", "talr"])
def test_degradation_never_exceeds_the_mass_bound_on_linear_logit_runs(weighting):
    """D <= B(lam, m) with m, kappa, delta1, g_min measured along each run up to the step reaching Delta*."""

    rec, lam, kappa = _linear_logit_run(20 if weighting == "sft" else 21, weighting)
    steps, n = rec["gain"].shape
    cum = np.vstack([np.zeros((1, n)), np.cumsum(rec["gain"], 0)])
    frac = np.random.default_rng(1).uniform(0.05, 0.5, n)
    dstar = frac * cum[-1]
    reached = (cum >= dstar).any(0) & (dstar > 1e-6)
    T = np.maximum(np.argmax(cum >= dstar, 0), 1)
    mask = np.arange(steps)[:, None] < T
    m = np.where(mask, rec["m"], 0).max(0)
    delta1 = np.where(mask, rec["delta1"], 0).max(0)
    g_min = np.where(mask, rec["g"], np.inf).min(0)
    D = np.where(mask, rec["deg"], 0).sum(0)
    ok = reached & (g_min > 0)
    B = np.asarray(degradation_bound_from_mass(lam[ok], dstar[ok], m[ok], coupling=kappa[ok], general_misfit=delta1[ok], g_min=g_min[ok]))
    fin = np.isfinite(B)
    assert ok.mean() > 0.6 and fin.mean() > 0.3  # not vacuous
    assert np.all(D[ok] <= B + 1e-12)
    print(f"\n[{weighting}] finite {fin.mean():.2f}; D/B median {np.median(D[ok][fin] / B[fin]):.3g}, max {np.max(D[ok][fin] / B[fin]):.3g}")


def test_numerical_exports_jit_equal_eager():
    p = np.random.default_rng(9).uniform(size=(50, 8))
    w = np.random.default_rng(10).exponential(size=(50, 8))
    for f, args in [
        (lambda p: ce_update_norm_bounds(p), (p,)),
        (lambda p, w: hard_token_mass(p, w), (p, w)),
        (lambda p, w: hard_token_mass(p, w, threshold=0.3), (p, w)),
        (lambda m: hard_token_constants(m, 1.3, 0.2, 0.4), (p[:, 0],)),
        (lambda m: degradation_bound_from_mass(0.05, 1.0, m, coupling=1.3, general_misfit=0.2, g_min=0.4), (p[:, 0],)),
    ]:
        eager, jitted = f(*args), jax.jit(f)(*args)
        for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-13)
