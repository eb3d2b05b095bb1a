"""Tests for sft_tilt.theory._code_length: code-length change, KL, and the token-tree form of Prop. 3.1."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import entropy as scipy_kl

import sft_tilt.theory
from random_instances import random_simplex

assert jnp.zeros(1).dtype == jnp.float64, "theory tests need JAX_ENABLE_X64=1 (tests/conftest.py sets it)"




@pytest.mark.parametrize("jit", [False, True])
def test_code_length_change_is_the_difference_of_kl_divergences(jit):
    rng = np.random.default_rng(0)
    P = random_simplex(rng, (2000, 7), zero_frac=0.3)
    q1 = random_simplex(rng, (2000, 7), scale=3.0)
    q2 = random_simplex(rng, (2000, 7), scale=1.0)
    f = jax.jit(sft_tilt.theory.code_length_change) if jit else sft_tilt.theory.code_length_change
    got = np.asarray(f(P, q1, q2))
    # independent: cross-entropies written out, and scipy's KL (natural log)
    cross = lambda q: -np.sum(np.where(P > 0, P * np.log(q), 0.0), axis=-1)
    np.testing.assert_allclose(got, cross(q2) - cross(q1), rtol=1e-10, atol=1e-12)
    kl = lambda q: np.array([scipy_kl(P[i], q[i]) for i in range(len(P))])
    np.testing.assert_allclose(got, kl(q2) - kl(q1), rtol=1e-9, atol=1e-11)
    fk = jax.jit(sft_tilt.theory.kl_divergence) if jit else sft_tilt.theory.kl_divergence
    np.testing.assert_allclose(np.asarray(fk(P, q1)), kl(q1), rtol=1e-10, atol=1e-13)


def test_zero_mass_terms_and_infinite_cases():
    P = np.array([0.0, 0.5, 0.5])
    q1 = np.array([0.0, 0.5, 0.5])
    q2 = np.array([1.0, 0.0, 0.0]) * 0 + np.array([0.2, 0.8, 0.0])
    # P = 0 where q1 = 0: contributes nothing; P > 0 where q_after = 0: +inf
    assert np.isposinf(float(sft_tilt.theory.code_length_change(P, q1, q2)))
    q3 = np.array([0.3, 0.3, 0.4])
    expected = 0.5 * (np.log(0.5) - np.log(0.3)) + 0.5 * (np.log(0.5) - np.log(0.4))
    assert abs(float(sft_tilt.theory.code_length_change(P, q1, q3)) - expected) < 1e-15
    assert np.isposinf(float(sft_tilt.theory.kl_divergence(P, q2)))
    with pytest.raises(ValueError, match="^q_before:"):
        sft_tilt.theory.code_length_change(q3, q1, q3)


def test_code_length_change_bad_inputs_name_the_argument():
    p = np.array([0.5, 0.5])
    with pytest.raises(ValueError, match="^P:"):
        sft_tilt.theory.code_length_change(np.array([0.7, 0.7]), p, p)
    with pytest.raises(ValueError, match="^q_after:"):
        sft_tilt.theory.code_length_change(p, p, np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="^P, q_before, q_after:"):
        sft_tilt.theory.code_length_change(p, p, np.array([0.2, 0.3, 0.5]))


def random_tree(rng, batch, vocab, depth, scale=1.5, zero_frac=0.0):
    return tuple(random_simplex(rng, (batch, vocab**l, vocab), scale=scale, zero_frac=zero_frac) for l in range(depth))


def joint_by_enumeration(tables, vocab, depth):
    """Sequence probabilities by explicit enumeration of every path (independent of node_masses)."""
    batch = tables[0].shape[0]
    out = np.ones((batch, vocab**depth))
    for idx, seq in enumerate(itertools.product(range(vocab), repeat=depth)):
        prefix = 0
        for l, tok in enumerate(seq):
            out[:, idx] *= tables[l][:, prefix, tok]
            prefix = prefix * vocab + tok
    return out


@pytest.mark.parametrize("jit", [False, True])
def test_token_tree_sum_equals_kl_difference_on_random_trees(jit):
    rng = np.random.default_rng(1)
    vocab, depth, batch = 3, 4, 1000
    P = random_tree(rng, batch, vocab, depth, zero_frac=0.25)
    q1 = random_tree(rng, batch, vocab, depth, scale=2.0)
    q2 = random_tree(rng, batch, vocab, depth, scale=0.7)
    f = jax.jit(sft_tilt.theory.token_tree_code_length_change) if jit else sft_tilt.theory.token_tree_code_length_change
    got = np.asarray(f(P, q1, q2))
    jP, j1, j2 = (joint_by_enumeration(t, vocab, depth) for t in (P, q1, q2))
    np.testing.assert_allclose(np.asarray(sft_tilt.theory.sequence_distribution(P)), jP, rtol=1e-12, atol=1e-15)
    kl = lambda q: np.array([scipy_kl(jP[i], q[i]) for i in range(batch)])
    np.testing.assert_allclose(got, kl(j2) - kl(j1), rtol=1e-9, atol=1e-11)
    # and E_P[-log q2] - E_P[-log q1] on whole sequences
    cross = lambda q: -np.sum(np.where(jP > 0, jP * np.log(q), 0.0), axis=-1)
    np.testing.assert_allclose(got, cross(j2) - cross(j1), rtol=1e-9, atol=1e-11)


def test_node_masses_are_prefix_probabilities():
    rng = np.random.default_rng(2)
    vocab, depth = 2, 3
    P = random_tree(rng, 5, vocab, depth)
    masses = sft_tilt.theory.node_masses(P)
    joint = joint_by_enumeration(P, vocab, depth)
    for l, m in enumerate(masses):
        # summing the joint over the remaining depth - (l + 1) tokens gives the prefix mass
        expected = joint.reshape(5, vocab ** (l + 1), vocab ** (depth - l - 1)).sum(-1)
        np.testing.assert_allclose(np.asarray(m), expected, rtol=1e-12)


def test_variable_length_sequences_through_a_deterministic_end_token():
    # vocab {a, EOS}; after EOS the model deterministically emits EOS, so "a EOS EOS" is the length-1 answer.
    eos = np.array([0.0, 1.0])
    P = (np.array([[0.6, 0.4]]), np.array([[0.5, 0.5], eos]), np.array([[0.9, 0.1], eos, eos, eos]))
    q1 = (np.array([[0.5, 0.5]]), np.array([[0.3, 0.7], eos]), np.array([[0.5, 0.5], eos, eos, eos]))
    q2 = (np.array([[0.7, 0.3]]), np.array([[0.6, 0.4], eos]), np.array([[0.8, 0.2], eos, eos, eos]))
    got = float(sft_tilt.theory.token_tree_code_length_change(P, q1, q2))
    # the three strings: "EOS.." (0.4), "a EOS." (0.3), "a a EOS" (0.6*0.5*0.1) and "a a a" (0.6*0.5*0.9)
    probs = lambda t: np.array([t[0][0, 1], t[0][0, 0] * t[1][0, 1], t[0][0, 0] * t[1][0, 0] * t[2][0, 1], t[0][0, 0] * t[1][0, 0] * t[2][0, 0]])
    pP, p1, p2 = probs(P), probs(q1), probs(q2)
    assert abs(pP.sum() - 1) < 1e-15
    assert abs(got - (scipy_kl(pP, p2) - scipy_kl(pP, p1))) < 1e-14


def test_token_tree_shapes_are_validated():
    good = (np.array([[0.5, 0.5]]), np.full((2, 2), 0.5))
    with pytest.raises(ValueError, match=r"^q1_tables\[1\]:"):
        sft_tilt.theory.token_tree_code_length_change(good, (good[0], np.full((3, 2), 0.5)), good)
    with pytest.raises(ValueError, match="^P_tables, q1_tables, q2_tables: depths"):
        sft_tilt.theory.token_tree_code_length_change(good, good[:1], good)
    with pytest.raises(ValueError, match="^tables:"):
        sft_tilt.theory.node_masses([])
