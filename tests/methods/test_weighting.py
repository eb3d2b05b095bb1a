"""Properties of the loss weightings in sft_tilt.methods.weighting, each against an independent (NumPy/SciPy) computation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st

from sft_tilt.methods.weighting import (
    LossWeighting,
    dynamic_tau,
    flow_sequence_weights,
    l2_penalty,
    reweighted_loss,
    sequence_mean_losses,
    token_nll,
    token_weights,
    weighted_loss,
)


def test_float64_in_effect():
    assert jnp.zeros(1).dtype == jnp.float64


def _batch(seed, B=4, T=6, p_mask=0.3, scale=3.0):
    rng = np.random.default_rng(seed)
    losses = rng.exponential(scale, size=(B, T))
    mask = (rng.random((B, T)) > p_mask).astype(float)
    mask[:, 0] = 1.0  # every sequence supervised at least once
    return losses, mask


seeds = st.integers(0, 2**31 - 1)
ALL = [
    LossWeighting("sft"),
    LossWeighting("dft"),
    LossWeighting("talr"),
    LossWeighting("talr", tau_mode="fixed", tau=0.7, floor=0.0),
    LossWeighting("talr", normalization="mean"),
    LossWeighting("talr", normalization="simplex"),
    LossWeighting("dft", normalization="simplex"),
]


def _np_dynamic_tau(losses, mask):
    means = [losses[b][mask[b] > 0].mean() for b in range(losses.shape[0]) if mask[b].sum() > 0]
    return max(float(np.median(means)), 1e-6)


@given(seeds)
def test_dynamic_tau_is_median_of_per_sequence_mean_losses(seed):
    losses, mask = _batch(seed, B=5)
    mask[2] = 0.0  # an unsupervised sequence is skipped
    assert float(dynamic_tau(losses, mask)) == pytest.approx(_np_dynamic_tau(losses, mask), rel=1e-12)


def test_dynamic_tau_clamped_and_empty_batch():
    assert float(dynamic_tau(np.zeros((3, 2)), np.ones((3, 2)))) == 1e-6
    assert float(dynamic_tau(np.ones((3, 2)), np.zeros((3, 2)))) == 1e-6
    assert np.isnan(np.asarray(sequence_mean_losses(np.ones((2, 2)), np.array([[1.0, 0], [0, 0]]))))[1]


@given(seeds, st.sampled_from(ALL))
def test_weights_zero_off_mask_nonnegative_and_finite(seed, weighting):
    losses, mask = _batch(seed)
    losses[mask == 0] = np.nan  # masked-out losses must never leak into the weights
    w = np.asarray(token_weights(weighting, losses, mask))
    assert np.all(w[mask == 0] == 0)
    assert np.all(np.isfinite(w)) and np.all(w >= 0)


@given(seeds, st.floats(0.05, 20.0))
def test_talr_simplex_is_softmax_of_negative_loss_over_tau(seed, tau):
    losses, mask = _batch(seed)
    w = np.asarray(token_weights(LossWeighting("talr", "fixed", tau, floor=0.0, normalization="simplex"), losses, mask))
    expected = np.zeros_like(losses)
    expected[mask > 0] = scipy.special.softmax(-losses[mask > 0] / tau)
    np.testing.assert_allclose(w, expected, rtol=1e-10, atol=1e-300)
    assert w.sum() == pytest.approx(1.0, abs=1e-12)


@given(seeds)
def test_talr_dynamic_raw_weights_are_floored_p_to_one_over_tau(seed):
    losses, mask = _batch(seed)
    tau = _np_dynamic_tau(losses, mask)
    w = np.asarray(token_weights(LossWeighting("talr", floor=0.01), losses, mask))
    p = np.exp(-losses)
    np.testing.assert_allclose(w[mask > 0], np.maximum(p[mask > 0] ** (1 / tau), 0.01), rtol=1e-10)


@given(seeds, st.floats(0.1, 5.0), st.floats(0.0, 0.5))
def test_normalizations_agree_up_to_a_scale_factor(seed, tau, floor):
    losses, mask = _batch(seed)
    ws = {
        n: np.asarray(token_weights(LossWeighting("talr", "fixed", tau, floor=floor, normalization=n), losses, mask))
        for n in ("none", "mean")
    }
    ws["simplex"] = np.asarray(token_weights(LossWeighting("talr", "fixed", tau, floor=0.0, normalization="simplex"), losses, mask))
    on = mask > 0
    raw = np.maximum(np.exp(-losses[on] / tau), floor)  # independent: DiSC's unnormalised weight
    np.testing.assert_allclose(ws["none"][on], raw, rtol=1e-10)
    np.testing.assert_allclose(ws["mean"][on], on.sum() * raw / raw.sum(), rtol=1e-10)
    assert ws["mean"][on].mean() == pytest.approx(1.0, rel=1e-12)
    unfloored = np.exp(-losses[on] / tau)  # without a floor all three are proportional
    np.testing.assert_allclose(ws["simplex"][on] * unfloored.sum(), unfloored, rtol=1e-10)


@given(seeds, st.floats(0.1, 5.0), st.floats(0.0, 0.2))
def test_simplex_floor_is_on_the_simplex_weight_then_renormalised(seed, tau, floor):
    losses, mask = _batch(seed)
    w = np.asarray(token_weights(LossWeighting("talr", "fixed", tau, floor=floor, normalization="simplex"), losses, mask))
    on = mask > 0
    expected = np.maximum(scipy.special.softmax(-losses[on] / tau), floor)
    np.testing.assert_allclose(w[on], expected / expected.sum(), rtol=1e-10)


@given(seeds, st.sampled_from(["none", "mean"]))
def test_tau_to_infinity_recovers_sft(seed, normalization):
    losses, mask = _batch(seed)
    talr = LossWeighting("talr", "fixed", tau=1e12, floor=0.0, normalization=normalization)
    w = np.asarray(token_weights(talr, losses, mask))
    np.testing.assert_allclose(w, mask, rtol=1e-10)
    sft_loss = losses[mask > 0].mean()  # token-mean CE
    assert float(reweighted_loss(talr, losses, mask)) == pytest.approx(sft_loss, rel=1e-10)
    assert float(reweighted_loss(LossWeighting("sft"), losses, mask)) == pytest.approx(sft_loss, rel=1e-12)


def test_tau_to_zero_puts_simplex_weight_on_the_easiest_token():
    losses, mask = _batch(7)
    w = np.asarray(token_weights(LossWeighting("talr", "fixed", tau=1e-4, floor=0.0, normalization="simplex"), losses, mask))
    masked = np.where(mask > 0, losses, np.inf)
    assert w.flat[np.argmin(masked)] == pytest.approx(1.0, abs=1e-12)


@given(seeds, st.floats(-50.0, 50.0))
def test_logit_shift_invariance_of_losses_and_weights(seed, shift):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, size=(3, 5, 7))
    targets = rng.integers(0, 7, size=(3, 5))
    mask = np.ones((3, 5))
    l0 = token_nll(logits, targets)
    l1 = token_nll(logits + shift, targets)
    np.testing.assert_allclose(l1, l0, atol=1e-11)
    # independent NLL: -log of the normalised probability
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(l0, -np.log(np.take_along_axis(probs, targets[..., None], -1)[..., 0]), rtol=1e-10)
    for weighting in ALL:
        np.testing.assert_allclose(token_weights(weighting, l1, mask), token_weights(weighting, l0, mask), rtol=1e-9, atol=1e-12)


def test_token_nll_handles_minus_inf_logits_without_nan():
    logits = jnp.array([[0.0, -jnp.inf, 1.0]])
    out = token_nll(logits, jnp.array([2]))
    assert np.isfinite(out).all()
    assert float(out[0]) == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-12)


# --- stop-gradient -------------------------------------------------------------------------------

def _losses_of(theta, targets):
    """A tiny model: logits [B, T, V] = theta (free logits); losses = NLL."""
    return token_nll(theta, targets)


@pytest.mark.parametrize("weighting", [w for w in ALL if w.kind != "sft"], ids=lambda w: w.label)
def test_stop_gradient_gradient_is_weighted_sum_of_token_gradients(weighting):
    rng = np.random.default_rng(3)
    theta = jnp.asarray(rng.normal(0, 2, size=(3, 4, 5)))
    targets = jnp.asarray(rng.integers(0, 5, size=(3, 4)))
    mask = jnp.asarray((rng.random((3, 4)) > 0.3).astype(float)).at[:, 0].set(1.0)

    grad = jax.grad(lambda th: reweighted_loss(weighting, _losses_of(th, targets), mask))(theta)
    # independent: weights held fixed (numpy copy), per-token gradients from the Jacobian
    w = np.asarray(token_weights(weighting, _losses_of(theta, targets), mask))
    jac = np.asarray(jax.jacobian(lambda th: _losses_of(th, targets))(theta))  # [B, T, B, T, V]
    expected = np.einsum("bt,btcuv->cuv", w * np.asarray(mask), jac) / float(mask.sum())
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-14)

    # without the stop-gradient (weights differentiated through) the gradient is different
    def coupled(th):
        losses = _losses_of(th, targets)
        if weighting.kind == "dft":
            raw = jnp.exp(-losses)
        else:
            tau = weighting.tau if weighting.tau_mode == "fixed" else jnp.nanmedian(sequence_mean_losses(losses, mask))
            raw = jnp.exp(-losses / tau)
            if weighting.normalization != "simplex":
                raw = jnp.maximum(raw, weighting.floor)
        raw = raw * mask
        if weighting.normalization == "mean":
            raw = mask.sum() * raw / raw.sum()
        elif weighting.normalization == "simplex":  # floor on the simplex weight, then renormalise
            raw = raw / raw.sum()
            if weighting.kind == "talr":
                raw = jnp.maximum(raw, weighting.floor) * mask
                raw = raw / raw.sum()
        return weighted_loss(losses, mask, raw)

    assert float(coupled(theta)) == pytest.approx(float(reweighted_loss(weighting, _losses_of(theta, targets), mask)), rel=1e-12)
    assert not np.allclose(jax.grad(coupled)(theta), grad, rtol=1e-3, atol=1e-8)


# --- DFT properties (MaxText PR #3212 list) -------------------------------------------------------

@given(seeds)
def test_dft_loss_at_most_ce_and_nonnegative(seed):
    losses, mask = _batch(seed)
    dft = float(reweighted_loss(LossWeighting("dft"), losses, mask))
    ce = losses[mask > 0].mean()
    assert 0.0 <= dft <= ce + 1e-15
    assert dft == pytest.approx((np.exp(-losses) * losses)[mask > 0].mean(), rel=1e-12)


@pytest.mark.parametrize("V", [2, 17, 1000])
def test_dft_uniform_logits_ratio_to_ce_is_one_over_vocab(V):
    logits = jnp.zeros((2, 3, V))
    losses = token_nll(logits, jnp.zeros((2, 3), dtype=int))
    mask = jnp.ones((2, 3))
    ratio = reweighted_loss(LossWeighting("dft"), losses, mask) / reweighted_loss(LossWeighting("sft"), losses, mask)
    assert float(ratio) == pytest.approx(1.0 / V, rel=1e-12)


def test_dft_approaches_ce_as_confidence_goes_to_one():
    margins = np.array([1.0, 5.0, 10.0, 20.0])
    logits = jnp.stack([jnp.array([m, 0.0, 0.0]) for m in margins])[None]  # target 0 increasingly confident
    losses = token_nll(logits, jnp.zeros((1, 4), dtype=int))
    w = np.asarray(token_weights(LossWeighting("dft"), losses, jnp.ones((1, 4))))[0]
    np.testing.assert_allclose(w, 1.0 / (1.0 + 2.0 * np.exp(-margins)), rtol=1e-12)  # p_y in closed form
    assert np.all(np.diff(1.0 - w) < 0) and 1.0 - w[-1] < 1e-8


def test_dft_gradient_differs_from_ce():
    rng = np.random.default_rng(0)
    theta = jnp.asarray(rng.normal(0, 2, size=(2, 3, 4)))
    targets = jnp.asarray(rng.integers(0, 4, size=(2, 3)))
    mask = jnp.ones((2, 3))
    g_dft = jax.grad(lambda th: reweighted_loss(LossWeighting("dft"), _losses_of(th, targets), mask))(theta)
    g_ce = jax.grad(lambda th: reweighted_loss(LossWeighting("sft"), _losses_of(th, targets), mask))(theta)
    assert not np.allclose(g_dft, g_ce, rtol=1e-3)


# --- FLOW ----------------------------------------------------------------------------------------

@given(st.lists(st.floats(0.0, 30.0), min_size=1, max_size=20))
def test_flow_sequence_weights_exp_minus_loss_over_median(fs):
    f = np.array(fs)
    tau = max(np.median(f), 1e-6)
    # XLA's CPU backend flushes subnormal results to zero (e.g. exp(-7 / 0.0195) = 5e-312 comes back as 0), so
    # weights below float64's smallest normal number count as equal to 0
    tiny = np.finfo(np.float64).tiny
    np.testing.assert_allclose(flow_sequence_weights(f), np.exp(-f / tau), rtol=1e-12, atol=tiny)
    np.testing.assert_allclose(flow_sequence_weights(f, tau=2.0), np.exp(-f / 2.0), rtol=1e-12, atol=tiny)


def test_flow_token_weights_broadcast_sequence_weights_and_are_static():
    losses, mask = _batch(1, B=3)
    sw = np.array([0.2, 1.0, 0.5])
    w = np.asarray(token_weights(LossWeighting("flow"), losses, mask, sequence_weights=sw))
    np.testing.assert_allclose(w, sw[:, None] * mask)
    w2 = np.asarray(token_weights(LossWeighting("flow"), losses * 3.0, mask, sequence_weights=sw))
    np.testing.assert_array_equal(w, w2)  # independent of the current losses


# --- L2 -------------------------------------------------------------------------------------------

def test_l2_penalty_over_pytree_and_its_gradient():
    rng = np.random.default_rng(2)
    p0 = {"a": rng.normal(size=(3, 2)), "b": [rng.normal(size=4), rng.normal(size=())]}
    p = jax.tree_util.tree_map(lambda x: x + rng.normal(size=np.shape(x)), p0)
    flat = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(p)])
    flat0 = np.concatenate([np.ravel(x) for x in jax.tree_util.tree_leaves(p0)])
    assert float(l2_penalty(p, p0, 0.3)) == pytest.approx(0.15 * np.sum((flat - flat0) ** 2), rel=1e-12)
    g = jax.grad(l2_penalty)(p, p0, 0.3)
    for gl, a, b in zip(jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(p0)):
        np.testing.assert_allclose(gl, 0.3 * (np.asarray(a) - np.asarray(b)), rtol=1e-12)


# --- jit ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("weighting", ALL + [LossWeighting("flow")], ids=lambda w: w.label)
def test_jitted_equals_unjitted(weighting):
    losses, mask = _batch(11)
    sw = np.array([0.3, 0.9, 1.0, 0.1])
    eager = reweighted_loss(weighting, losses, mask, sw)
    jitted = jax.jit(lambda l, m, s: reweighted_loss(weighting, l, m, s))(losses, mask, sw)
    assert float(jitted) == pytest.approx(float(eager), rel=1e-12)
    np.testing.assert_allclose(
        jax.jit(lambda l, m, s: token_weights(weighting, l, m, s))(losses, mask, sw),
        token_weights(weighting, losses, mask, sw),
        rtol=1e-12,
    )
    assert float(jax.jit(dynamic_tau)(losses, mask)) == pytest.approx(_np_dynamic_tau(losses, mask), rel=1e-12)


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(kind="ce"), "kind"),
        (dict(tau_mode="auto"), "tau_mode"),
        (dict(tau=0.0), "tau"),
        (dict(tau=float("nan")), "tau"),
        (dict(floor=1.0), "floor"),
        (dict(floor=-0.1), "floor"),
        (dict(normalization="sum"), "normalization"),
    ],
)
def test_config_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        LossWeighting(**kwargs)


def test_bad_arrays_raise_naming_the_argument():
    losses, mask = _batch(0)
    with pytest.raises(ValueError, match="mask"):
        token_weights(LossWeighting(), losses, mask[:, :-1])
    with pytest.raises(ValueError, match="losses"):
        token_weights(LossWeighting(), losses[0], mask[0])
    bad = losses.copy()
    bad[mask > 0] = -1.0
    with pytest.raises(ValueError, match="losses"):
        token_weights(LossWeighting(), bad, mask)
    with pytest.raises(ValueError, match="mask"):
        token_weights(LossWeighting(), losses, mask * 0.5)
    with pytest.raises(ValueError, match="sequence_weights"):
        token_weights(LossWeighting("flow"), losses, mask)
    with pytest.raises(ValueError, match="weights"):
        weighted_loss(losses, mask, np.ones(3))
    with pytest.raises(ValueError, match="mu"):
        l2_penalty({"a": 1.0}, {"a": 0.0}, -1.0)
    with pytest.raises(ValueError, match="initial_sequence_losses"):
        flow_sequence_weights(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="weighting"):
        token_weights("talr", losses, mask)
