"""Synthetic worlds: structure of the generated data against its definition (sft_tilt.synthetic.worlds)."""

import jax
import numpy as np
import pytest

from sft_tilt.theory import HARD_TOKEN_THRESHOLD
from sft_tilt.synthetic.worlds import DIRECTION_KINDS, WorldConfig, make_world, random_tilt_instances


@pytest.mark.parametrize("fmt", ["cot", "label"])
@pytest.mark.parametrize("overlap", [0.0, 0.5, 1.0])
def test_world_structure_matches_its_definition(fmt, overlap):
    cfg = WorldConfig(response_format=fmt, overlap=overlap, n_general=16, n_domain=10, seed=3)
    w = make_world(cfg)
    q0 = np.exp(np.asarray(w.log_q0))
    np.testing.assert_allclose(q0.sum(-1), 1.0, rtol=1e-12)
    assert q0.shape == (cfg.n_contexts, cfg.vocab) and np.all(q0 > 0)
    # general data = initial model on general contexts, uniform context weights
    gw = np.asarray(w.general_weights)
    np.testing.assert_allclose(gw[: cfg.n_general], 1 / cfg.n_general)
    assert np.all(gw[cfg.n_general :] == 0)
    np.testing.assert_array_equal(np.asarray(w.log_p1), np.asarray(w.log_q0))
    # domain contexts: n_domain of them, n_shared among the general ones
    tgt = np.asarray(w.domain_target)
    dom = np.nonzero(tgt >= 0)[0]
    assert len(dom) == cfg.n_domain
    assert np.sum(dom < cfg.n_general) == cfg.n_shared == round(overlap * cfg.n_domain)
    # easy targets are the top token (top_prob), hard targets have q0 <= 0.2
    hard = np.asarray(w.domain_hard)
    p_target = q0[dom, tgt[dom]]
    np.testing.assert_allclose(p_target[~hard[dom]], cfg.top_prob / q0[dom].sum(-1)[~hard[dom]], rtol=1e-12)
    assert np.all(p_target[hard[dom]] <= HARD_TOKEN_THRESHOLD)
    # responses
    assert w.contexts.shape == (cfg.n_sequences, cfg.seq_len)
    np.testing.assert_array_equal(np.asarray(w.targets), tgt[np.asarray(w.contexts)])
    ans_ctx = np.asarray(w.contexts)[:, -1]
    assert np.all(hard[ans_ctx])  # the answer is always a hard token
    np.testing.assert_allclose(q0[ans_ctx, tgt[ans_ctx]], cfg.answer_prob, rtol=1e-12)
    assert np.asarray(w.answer)[:, -1].sum() == cfg.n_sequences


def test_hard_fraction_controls_the_number_of_hard_reasoning_contexts():
    for hf in (0.0, 0.5, 1.0):
        cfg = WorldConfig(hard_fraction=hf, n_domain=12, n_answer_contexts=4)
        w = make_world(cfg)
        hard = np.asarray(w.domain_hard)
        assert hard.sum() == 4 + round(hf * 8)


def test_world_is_deterministic_in_its_seed():
    a, b, c = make_world(WorldConfig(seed=1)), make_world(WorldConfig(seed=1)), make_world(WorldConfig(seed=2))
    np.testing.assert_array_equal(a.log_q0, b.log_q0)
    np.testing.assert_array_equal(a.contexts, b.contexts)
    assert not np.array_equal(a.log_q0, c.log_q0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(vocab=2), "vocab"),
        (dict(overlap=1.5), "overlap"),
        (dict(hard_prob=0.5), "hard_prob"),
        (dict(top_prob=1.0), "top_prob"),
        (dict(response_format="json"), "response_format"),
        (dict(n_answer_contexts=12), "n_answer_contexts"),
        (dict(n_general=2, n_domain=12, overlap=1.0), "overlap"),
    ],
)
def test_world_config_validation_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        WorldConfig(**kwargs)


def test_random_tilt_instances():
    n, V = 3000, 7
    inst = random_tilt_instances(jax.random.key(0), n, V, learning_rate_range=(1e-2, 5.0))
    for name in ("q", "p1", "p2"):
        arr = np.asarray(getattr(inst, name))
        assert arr.shape == (n, V) and np.all(arr >= 0)
        np.testing.assert_allclose(arr.sum(-1), 1.0, rtol=1e-12)
    kind, s, q, p2 = np.asarray(inst.kind), np.asarray(inst.s), np.asarray(inst.q), np.asarray(inst.p2)
    assert set(np.unique(kind)) == set(range(len(DIRECTION_KINDS)))
    tok = s[kind == 0] + q[kind == 0]  # e_y: one-hot
    np.testing.assert_allclose(np.sort(tok, axis=-1)[:, -1], 1.0, atol=1e-12)
    np.testing.assert_allclose(np.sort(tok, axis=-1)[:, :-1], 0.0, atol=1e-12)
    np.testing.assert_allclose(s[kind == 1], (p2 - q)[kind == 1], atol=1e-15)
    learning_rate = np.asarray(inst.learning_rate)
    assert learning_rate.min() >= 1e-2 and learning_rate.max() <= 5.0
    with pytest.raises(ValueError, match="n"):
        random_tilt_instances(jax.random.key(0), 0, V)
