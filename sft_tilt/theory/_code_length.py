"""Code length (nats) and its change between two models: the paper's Proposition 3.1.

With code length ``L_q(z) = -log q(z)`` (arithmetic coding, up to a constant), the change from model
``q1`` (before) to ``q2`` (after) on data ``P`` is

    dL(P) = E_P[-log q2] - E_P[-log q1] = E_P[log q1 - log q2] = KL(P || q2) - KL(P || q1)

(the entropy of ``P`` cancels). For **sequence** models factorised by the chain rule over a depth-``d``
token tree, ``-log q(z) = sum_l -log q(z_l | z_<l)``; grouping the expectation by tree node gives the
token-tree form

    dL(P) = sum_{l=1..d} sum_j p_{l,j} log(q1_{l,j} / q2_{l,j}),

where ``p_{l,j}`` is the P-mass of all sequences passing through node ``(l, j)`` (the joint prefix
probability, not a conditional) and ``q1_{l,j}, q2_{l,j}`` are the conditional next-token probabilities
of the edge into that node.

Token-tree representation (``tables``)
--------------------------------------
A distribution over sequences of length ``d`` on a vocabulary of size ``V`` is a tuple of ``d``
conditional tables ``(T_0, ..., T_{d-1})``; ``T_l`` has shape ``(..., V**l, V)``: row ``r`` is the
next-token distribution after the prefix with (row-major, base ``V``) index ``r``. Node ``(l, j)`` with
``j = r * V + v`` is the prefix ``r`` extended by token ``v``. Variable-length data are represented with an
end-of-sequence token whose subtree is deterministic (probability 1 on one token). Batch axes ``...``
must agree across levels and models.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax.scipy.special import rel_entr
from jax.typing import ArrayLike

from sft_tilt.theory._precision import float64_computation
from sft_tilt.theory._tilt import _safe_log
from sft_tilt.theory._validate import check_outcome_shapes, check_probabilities, is_concrete

__all__ = [
    "code_length_change",
    "kl_divergence",
    "sequence_distribution",
    "node_masses",
    "token_tree_code_length_change",
]


def _normalise(p: jax.Array) -> jax.Array:
    return p / jnp.sum(p, axis=-1, keepdims=True)


@float64_computation
def kl_divergence(P: ArrayLike, q: ArrayLike) -> jax.Array:
    """``KL(P || q) = sum_x P(x) log(P(x) / q(x))`` in nats (``0 log 0 = 0``; ``+inf`` if ``P > 0 = q`` somewhere).

    References: Lin et al. (ICLR 2026), Prop. 3.1 (Sec. 3.2): code-length change = KL change; toolkit derivation
      `sft_tilt.theory.derivations.code_length`.
    """
    P = check_probabilities("P", P)
    q = check_probabilities("q", q)
    check_outcome_shapes({"P": P, "q": q})
    return jnp.sum(rel_entr(_normalise(P), _normalise(q)), axis=-1)


@float64_computation
def code_length_change(P: ArrayLike, q_before: ArrayLike, q_after: ArrayLike) -> jax.Array:
    """``dL(P) = E_P[log q_before - log q_after]`` (nats): positive = the model got worse on ``P``.

    Terms with ``P(x) = 0`` contribute 0 whatever ``q`` is there. Where ``P(x) > 0 = q_after(x)`` (and
    ``q_before(x) > 0``) the result is ``+inf``. The difference needs ``E_P[-log q_before] < inf``:
    eagerly, ``P(x) > 0 = q_before(x)`` raises ``ValueError`` (naming ``q_before``); under ``jit`` it gives
    ``-inf`` (or NaN if ``q_after(x) = 0`` too). Inputs are renormalised exactly.

    References: Lin et al. (ICLR 2026), Prop. 3.1 (Sec. 3.2): code-length change = KL change; toolkit derivation
      `sft_tilt.theory.derivations.code_length`.
    """
    P = check_probabilities("P", P)
    q_before = check_probabilities("q_before", q_before)
    q_after = check_probabilities("q_after", q_after)
    check_outcome_shapes({"P": P, "q_before": q_before, "q_after": q_after})
    if is_concrete(P) and is_concrete(q_before) and bool(jnp.any((P > 0) & (q_before == 0))):
        raise ValueError("q_before: is zero where P has mass, so E_P[-log q_before] is infinite and the change is undefined")
    P = _normalise(P)
    on = P > 0
    diff = _safe_log(_normalise(q_before)) - _safe_log(_normalise(q_after))
    return jnp.sum(jnp.where(on, P * jnp.where(on, diff, 0.0), 0.0), axis=-1)


def _check_tables(name: str, tables) -> tuple[jax.Array, ...]:
    if not isinstance(tables, (tuple, list)) or len(tables) == 0:
        raise ValueError(f"{name}: must be a non-empty tuple of conditional tables (T_0, ..., T_(d-1))")
    out = []
    vocab = None
    for level, table in enumerate(tables):
        t = check_probabilities(f"{name}[{level}]", table)
        if t.ndim < 2:
            raise ValueError(f"{name}[{level}]: must have shape (..., V**{level}, V), got {t.shape}")
        vocab = t.shape[-1] if vocab is None else vocab
        if t.shape[-1] != vocab or t.shape[-2] != vocab**level:
            raise ValueError(f"{name}[{level}]: must have shape (..., {vocab ** level}, {vocab}), got {t.shape}")
        out.append(t)
    try:
        jnp.broadcast_shapes(*(t.shape[:-2] for t in out))
    except ValueError:
        raise ValueError(f"{name}: batch shapes of the levels do not broadcast ({[t.shape for t in out]})") from None
    return tuple(out)


@float64_computation
def node_masses(tables: Sequence[ArrayLike]) -> tuple[jax.Array, ...]:
    """P-mass of every tree node: ``p_l`` of shape ``(..., V**(l+1))``, ``p_l[r*V + v] = p_{l-1}[r] * T_l[r, v]``.

    References: Lin et al. (ICLR 2026), Sec. 3.1 (token tree and compression protocol).
    """
    tables = _check_tables("tables", tables)
    masses = []
    prefix = jnp.ones(tables[0].shape[:-2] + (1,), dtype=tables[0].dtype)
    for t in tables:
        t = _normalise(t)
        joint = prefix[..., :, None] * t
        prefix = joint.reshape(joint.shape[:-2] + (-1,))
        masses.append(prefix)
    return tuple(masses)


@float64_computation
def sequence_distribution(tables: Sequence[ArrayLike]) -> jax.Array:
    """Joint distribution over the ``V**d`` sequences (row-major index), by the chain rule.

    References: Lin et al. (ICLR 2026), Sec. 3.1 (token tree and compression protocol).
    """
    return node_masses(tables)[-1]


@float64_computation
def token_tree_code_length_change(
    P_tables: Sequence[ArrayLike], q1_tables: Sequence[ArrayLike], q2_tables: Sequence[ArrayLike]
) -> jax.Array:
    """Token-tree form of Prop. 3.1: ``sum_l sum_j p_{l,j} log(q1_{l,j} / q2_{l,j})`` (nats).

    ``P_tables``, ``q1_tables`` (before), ``q2_tables`` (after) are conditional tables (module
    docstring); ``p_{l,j}`` are the node masses of ``P``. Equals ``KL(P || q2) - KL(P || q1)`` of the
    sequence distributions. Nodes with ``p_{l,j} = 0`` contribute 0; ``q2_{l,j} = 0 < p_{l,j}`` gives ``+inf``.

    References: Lin et al. (ICLR 2026), Prop. 3.1 (Sec. 3.2) in the token-tree form of Sec. 3.1; toolkit
      derivation `sft_tilt.theory.derivations.code_length`.
    """
    P_tables = _check_tables("P_tables", P_tables)
    q1_tables = _check_tables("q1_tables", q1_tables)
    q2_tables = _check_tables("q2_tables", q2_tables)
    if not (len(P_tables) == len(q1_tables) == len(q2_tables)):
        raise ValueError(
            f"P_tables, q1_tables, q2_tables: depths differ ({len(P_tables)}, {len(q1_tables)}, {len(q2_tables)})"
        )
    for l, (a, b, c) in enumerate(zip(P_tables, q1_tables, q2_tables)):
        check_outcome_shapes({f"P_tables[{l}]": a, f"q1_tables[{l}]": b, f"q2_tables[{l}]": c})
    masses = node_masses(P_tables)
    total = 0.0
    for p, t1, t2 in zip(masses, q1_tables, q2_tables):
        log_ratio = _safe_log(_normalise(t1)) - _safe_log(_normalise(t2))
        log_ratio = log_ratio.reshape(log_ratio.shape[:-2] + (-1,))
        on = p > 0
        total = total + jnp.sum(jnp.where(on, p * jnp.where(on, log_ratio, 0.0), 0.0), axis=-1)
    return total
