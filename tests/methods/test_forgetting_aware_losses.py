"""EAFT, ASFT and SFT-KL: their weights, entropies and KL anchor against NumPy transcriptions of the sources'
formulas (LLaMA-Factory's ``_eaft_cross_entropy``, ``_dft_cross_entropy`` and ``_kl_divergence``), and their
objectives in the synthetic trainer against a NumPy evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.methods.registry import MethodConfig
from sft_tilt.synthetic.models import ModelConfig, build_model, init_params
from sft_tilt.synthetic.training import TrainConfig, _make_step
from sft_tilt.synthetic.worlds import WorldConfig, make_world
from sft_tilt.methods.weighting import LossWeighting, kl_to_reference, token_weights, topk_entropy, weighted_loss


def _np_log_softmax(x):
    x = np.asarray(x, float)
    m = np.max(np.where(np.isfinite(x), x, -np.inf), axis=-1, keepdims=True)
    z = np.log(np.sum(np.exp(x - m), axis=-1, keepdims=True)) + m
    return x - z


def _np_topk_entropy(logits, k):
    """Sort each row, keep the k largest, softmax, entropy (torch.topk + softmax + sum p log p)."""
    top = -np.sort(-np.asarray(logits, float), axis=-1)[..., :k]
    logp = _np_log_softmax(top)
    p = np.exp(logp)
    return -np.sum(np.where(p > 0, p * np.where(p > 0, logp, 0.0), 0.0), axis=-1)


def _np_eaft_loss(logits, targets, mask, alpha=1.0, k=20, scale=3.0):
    """LLaMA-Factory's EAFT: per-token CE times (top-k entropy / 3)^alpha, summed and divided by the token count."""
    logp = _np_log_softmax(logits)
    ce = -np.take_along_axis(logp, targets[..., None], -1)[..., 0]
    w = (_np_topk_entropy(logits, k) / scale) ** alpha
    on = mask > 0
    return float(np.sum((ce * w)[on]) / on.sum())


def _np_kl(logits, ref_logits, mask):
    """torch's F.kl_div(log_softmax(policy), softmax(reference), reduction='none').sum(-1), masked token mean."""
    logp, logq0 = _np_log_softmax(logits), _np_log_softmax(ref_logits)
    q0 = np.exp(logq0)
    with np.errstate(invalid="ignore"):  # q0 = 0 where logq0 = -inf: the where keeps those terms at 0
        per = np.sum(np.where(q0 > 0, q0 * (logq0 - logp), 0.0), axis=-1)
    return float(np.sum(per * mask) / mask.sum())


@pytest.mark.parametrize("seed", range(20))
def test_topk_entropy_and_eaft_loss_match_numpy(seed):
    rng = np.random.default_rng(seed)
    B, T, V = 3, 5, int(rng.integers(8, 40))
    logits = rng.normal(size=(B, T, V)) * rng.uniform(0.1, 6)
    if seed % 3 == 0:
        logits[0, 0, : V // 2] = -np.inf  # a masked vocabulary: -inf logits must not turn into NaN
    targets = rng.integers(0, V, size=(B, T))
    if seed % 3 == 0:
        targets[0, 0] = V - 1  # a finite-logit target
    mask = (rng.uniform(size=(B, T)) < 0.7).astype(float)
    mask[0, 0] = 1.0
    k = int(rng.choice([2, 5, 20]))
    H = np.asarray(topk_entropy(jnp.asarray(logits), k))
    np.testing.assert_allclose(H, _np_topk_entropy(logits, k), rtol=1e-12, atol=1e-14)
    assert np.all(np.isfinite(H))
    logp = jax.nn.log_softmax(jnp.asarray(logits), -1)
    losses = -jnp.take_along_axis(logp, jnp.asarray(targets)[..., None], -1)[..., 0]
    alpha = float(rng.choice([0.5, 1.0, 2.0]))
    w = token_weights(LossWeighting("eaft", eaft_alpha=alpha, eaft_k=k), losses, mask, entropies=topk_entropy(jnp.asarray(logits), k))
    ours = float(weighted_loss(losses, mask, w))
    assert ours == pytest.approx(_np_eaft_loss(logits, targets, mask, alpha, k), rel=1e-12)


def test_eaft_weights_are_small_for_confident_tokens_and_need_entropies():
    logits = jnp.array([[[10.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])  # confident vs uniform over 4
    H = topk_entropy(logits, 20)
    assert float(H[0, 0]) < 0.01 and float(H[0, 1]) == pytest.approx(np.log(4))
    w = token_weights(LossWeighting("eaft"), jnp.ones((1, 2)), jnp.ones((1, 2)), entropies=H)
    assert float(w[0, 0]) < 0.01 and float(w[0, 1]) == pytest.approx(np.log(4) / 3)
    with pytest.raises(ValueError, match="entropies"):
        token_weights(LossWeighting("eaft"), jnp.ones((1, 2)), jnp.ones((1, 2)))
    with pytest.raises(ValueError, match="eaft_k"):
        LossWeighting("eaft", eaft_k=1)
    with pytest.raises(ValueError, match="eaft_alpha"):
        LossWeighting("eaft", eaft_alpha=0.0)


@pytest.mark.parametrize("seed", range(10))
def test_kl_to_reference_matches_torchs_kl_div_convention(seed):
    rng = np.random.default_rng(100 + seed)
    B, T, V = 2, 4, 11
    logits, ref = rng.normal(size=(B, T, V)) * 3, rng.normal(size=(B, T, V)) * 3
    ref[0, 0, :3] = -np.inf  # q0 = 0 there: 0 * log 0 terms are 0
    mask = (rng.uniform(size=(B, T)) < 0.6).astype(float)
    mask[0, 0] = 1.0
    ours = float(kl_to_reference(jax.nn.log_softmax(jnp.asarray(logits), -1), jax.nn.log_softmax(jnp.asarray(ref), -1), mask))
    assert ours == pytest.approx(_np_kl(logits, ref, mask), rel=1e-12)
    assert ours >= 0
    same = jax.nn.log_softmax(jnp.asarray(logits), -1)
    assert float(kl_to_reference(same, same, mask)) == pytest.approx(0.0, abs=1e-14)
    assert float(kl_to_reference(same, same, np.zeros((B, T)))) == 0.0  # no supervised token: 0, not NaN


@pytest.mark.parametrize("name", ["eaft", "asft", "sft-kl"])
def test_synthetic_trainer_steps_down_the_numpy_objective_of_each_method(name):
    """One full-batch SGD step (lr 1) is W - grad J; the directional derivative of the NumPy objective along that
    step (token weights held at the current W, as the detached weights are) must be -|step|^2."""
    world = make_world(WorldConfig(seed=3))
    model = build_model(world, ModelConfig("shared", dim=16, coupling=0.5))
    W = np.asarray(jax.random.normal(jax.random.key(1), init_params(model).shape) * 0.2)
    bias, feats = np.asarray(model.bias), np.asarray(model.features)
    ctx, tgt, mask = np.asarray(world.contexts), np.asarray(world.targets), np.asarray(world.mask)
    on = mask > 0

    def logits_at(Wn):
        return bias[ctx] + feats[ctx] @ Wn

    ce0 = -np.take_along_axis(_np_log_softmax(logits_at(W)), tgt[..., None], -1)[..., 0]
    w = {"eaft": _np_topk_entropy(logits_at(W), 20) / 3.0, "asft": np.exp(-ce0), "sft-kl": np.ones_like(ce0)}[name]
    beta = {"eaft": 0.0, "asft": 0.1, "sft-kl": 0.1}[name]

    def objective(Wn):
        ce = -np.take_along_axis(_np_log_softmax(logits_at(Wn)), tgt[..., None], -1)[..., 0]
        anchor = beta * _np_kl(logits_at(Wn), logits_at(np.zeros_like(Wn)), mask) if beta else 0.0
        return float(np.sum((w * ce)[on]) / on.sum()) + anchor

    opt, step = _make_step(model, world, TrainConfig(method=MethodConfig(name)), 1.0, None)
    W1, _ = step(jnp.asarray(W), opt.init(jnp.asarray(W)), jax.random.key(0))
    d = np.asarray(W1) - W
    eps = 1e-5
    slope = (objective(W + eps * d) - objective(W - eps * d)) / (2 * eps)
    assert np.sum(d ** 2) > 0
    assert slope == pytest.approx(-float(np.sum(d ** 2)), rel=1e-6)
