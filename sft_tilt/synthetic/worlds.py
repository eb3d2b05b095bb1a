"""Synthetic token worlds: general data the initial model fits, domain data it does not.

A world is a finite set of contexts ``c = 0..C-1`` over a vocabulary of ``V`` tokens with

* an **initial model** ``q0(. | c)`` for every context, built as
  ``q0 = top_prob * delta_top(c) + hard_prob * delta_hard(c) + (1 - top_prob - hard_prob) * Zipf(c)``:
  one dominant token, one designated low-probability token, and a Zipf(``zipf_exponent``) tail over the other
  ``V - 2`` tokens in a random order (every probability > 0);
* **general data** ``P1(. | c) = q0(. | c)`` on the ``n_general`` general contexts, weighted uniformly
  (``pi1(c) = 1 / n_general``): the initial model fits the general data exactly (``KL(P1 || q0) = 0``);
* **domain data** ``D2``: ``n_sequences`` responses, each a sequence of ``(context, target)`` positions drawn
  from the ``n_domain`` domain contexts. Each domain context has one deterministic target: its top token
  (an **easy** target, ``q0 = top_prob``) or its designated hard token (a **hard** target,
  ``q0 = hard_prob``, below the paper's 0.2 threshold). Answer contexts are always hard with
  ``q0 = answer_prob``; reasoning contexts are hard with probability ``hard_fraction``.
  Response formats (the paper's finding 2): ``"cot"`` = ``cot_length`` reasoning tokens then the answer;
  ``"label"`` = the answer token only.
* **overlap**: a fraction ``overlap`` of the domain contexts *are* general contexts (the same index), so the
  domain target there conflicts with ``P1``; the rest are new contexts. With a free-logit model only overlap
  transfers a domain step to general data; a shared-parameter model also leaks through its features.

Also :func:`random_tilt_instances`: batches of random single-step problems ``(q, P1, P2, s, learning_rate)`` for the
single-step checks (experiment 1). Every generator takes an explicit ``jax.random`` key (or a seed recorded in
its config) and is deterministic given it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.theory import HARD_TOKEN_THRESHOLD

__all__ = [
    "RESPONSE_FORMATS",
    "WorldConfig",
    "World",
    "make_world",
    "DIRECTION_KINDS",
    "TiltInstances",
    "random_tilt_instances",
]

RESPONSE_FORMATS = ("cot", "label")


@dataclass(frozen=True)
class WorldConfig:
    """Size and shape of a synthetic world (module docstring)."""

    vocab: int = 32
    n_general: int = 24
    n_domain: int = 12
    overlap: float = 0.5
    zipf_exponent: float = 1.1
    top_prob: float = 0.9
    hard_prob: float = 0.02
    answer_prob: float = 0.05
    hard_fraction: float = 0.25
    response_format: str = "cot"
    cot_length: int = 6
    n_answer_contexts: int = 4
    n_sequences: int = 32
    seed: int = 0

    def __post_init__(self):
        def need(cond, name, msg):
            if not cond:
                raise ValueError(f"{name}: {msg}, got {getattr(self, name)!r}")

        need(isinstance(self.vocab, int) and self.vocab >= 3, "vocab", "must be an integer >= 3")
        need(isinstance(self.n_general, int) and self.n_general >= 1, "n_general", "must be an integer >= 1")
        need(isinstance(self.n_domain, int) and self.n_domain >= 2, "n_domain", "must be an integer >= 2")
        need(0.0 <= self.overlap <= 1.0, "overlap", "must lie in [0, 1]")
        need(np.isfinite(self.zipf_exponent) and self.zipf_exponent >= 0, "zipf_exponent", "must be finite and >= 0")
        need(0.0 < self.top_prob < 1.0, "top_prob", "must lie in (0, 1)")
        need(0.0 < self.hard_prob <= HARD_TOKEN_THRESHOLD, "hard_prob", f"must lie in (0, {HARD_TOKEN_THRESHOLD}]")
        need(0.0 < self.answer_prob <= HARD_TOKEN_THRESHOLD, "answer_prob", f"must lie in (0, {HARD_TOKEN_THRESHOLD}]")
        need(self.top_prob + max(self.hard_prob, self.answer_prob) < 1.0, "top_prob", "top_prob + hard/answer prob must be < 1")
        need(0.0 <= self.hard_fraction <= 1.0, "hard_fraction", "must lie in [0, 1]")
        need(self.response_format in RESPONSE_FORMATS, "response_format", f"must be one of {RESPONSE_FORMATS}")
        need(isinstance(self.cot_length, int) and self.cot_length >= 1, "cot_length", "must be an integer >= 1")
        need(
            isinstance(self.n_answer_contexts, int) and 1 <= self.n_answer_contexts < self.n_domain,
            "n_answer_contexts",
            "must be an integer in [1, n_domain)",
        )
        need(isinstance(self.n_sequences, int) and self.n_sequences >= 1, "n_sequences", "must be an integer >= 1")
        need(round(self.overlap * self.n_domain) <= self.n_general, "overlap", "overlap * n_domain exceeds n_general")

    @property
    def n_shared(self) -> int:
        """Number of domain contexts that are also general contexts."""
        return int(round(self.overlap * self.n_domain))

    @property
    def n_contexts(self) -> int:
        return self.n_general + self.n_domain - self.n_shared

    @property
    def seq_len(self) -> int:
        return 1 if self.response_format == "label" else self.cot_length + 1


class World(NamedTuple):
    """Arrays of a generated world (a pytree). Shapes: ``C`` contexts, ``V`` tokens, ``N`` responses, ``T`` positions."""

    log_q0: jax.Array  # [C, V] initial model log-probabilities
    general_weights: jax.Array  # [C] pi1(c): 1/n_general on general contexts, 0 elsewhere
    log_p1: jax.Array  # [C, V] general next-token log-probabilities (= log_q0 on general contexts)
    domain_target: jax.Array  # [C] int: the domain target token of each context (-1 if not a domain context)
    domain_hard: jax.Array  # [C] bool: domain target is hard (q0 <= 0.2)
    contexts: jax.Array  # [N, T] int: context of each response position
    targets: jax.Array  # [N, T] int: target token of each position
    mask: jax.Array  # [N, T] float: 1 on supervised positions (all positions here)
    answer: jax.Array  # [N, T] float: 1 on the answer position


def _zipf_tail(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    ranks = np.arange(1, n + 1, dtype=float)
    w = ranks ** (-exponent)
    w = w / w.sum()
    return w[rng.permutation(n)]


def make_world(config: WorldConfig) -> World:
    """Build the world of ``config`` deterministically from ``config.seed`` (NumPy ``default_rng``)."""
    if not isinstance(config, WorldConfig):
        raise ValueError(f"config: expected a WorldConfig, got {type(config).__name__}")
    rng = np.random.default_rng(config.seed)
    V, C = config.vocab, config.n_contexts
    n_gen, n_dom, n_sh = config.n_general, config.n_domain, config.n_shared
    # domain contexts: the first n_shared general contexts, then new ones
    domain_ids = np.concatenate([np.arange(n_sh), n_gen + np.arange(n_dom - n_sh)]).astype(int)
    rng.shuffle(domain_ids)  # which domain contexts are answer contexts is independent of overlap
    answer_ids = domain_ids[: config.n_answer_contexts]
    reasoning_ids = domain_ids[config.n_answer_contexts :]
    n_hard_reasoning = int(round(config.hard_fraction * len(reasoning_ids)))
    hard_reasoning = set(rng.permutation(reasoning_ids)[:n_hard_reasoning].tolist())

    q0 = np.zeros((C, V))
    target = -np.ones(C, dtype=int)
    hard = np.zeros(C, dtype=bool)
    for c in range(C):
        top, low = rng.choice(V, size=2, replace=False)
        low_prob = config.answer_prob if c in set(answer_ids.tolist()) else config.hard_prob
        rest = [x for x in range(V) if x not in (top, low)]
        q0[c, rest] = (1.0 - config.top_prob - low_prob) * _zipf_tail(rng, V - 2, config.zipf_exponent)
        q0[c, top] = config.top_prob
        q0[c, low] = low_prob
        if c in set(domain_ids.tolist()):
            is_hard = c in set(answer_ids.tolist()) or c in hard_reasoning
            target[c] = low if is_hard else top
            hard[c] = is_hard
    q0 = q0 / q0.sum(axis=1, keepdims=True)

    general = np.zeros(C)
    general[:n_gen] = 1.0 / n_gen
    log_q0 = np.log(q0)

    N, T = config.n_sequences, config.seq_len
    ans_ctx = rng.choice(answer_ids, size=N)
    if config.response_format == "label":
        contexts = ans_ctx[:, None]
    else:
        reason_ctx = rng.choice(reasoning_ids, size=(N, config.cot_length))
        contexts = np.concatenate([reason_ctx, ans_ctx[:, None]], axis=1)
    answer = np.zeros((N, T))
    answer[:, -1] = 1.0
    return World(
        log_q0=jnp.asarray(log_q0),
        general_weights=jnp.asarray(general),
        log_p1=jnp.asarray(log_q0),
        domain_target=jnp.asarray(target),
        domain_hard=jnp.asarray(hard),
        contexts=jnp.asarray(contexts),
        targets=jnp.asarray(target[contexts]),
        mask=jnp.ones((N, T)),
        answer=jnp.asarray(answer),
    )


# ---------------------------------------------------------------------------------------------------
# Random single-step problems (experiment 1)
# ---------------------------------------------------------------------------------------------------

DIRECTION_KINDS = ("ce_token", "ce_domain", "gaussian")


class TiltInstances(NamedTuple):
    """A batch of single-step problems; outcomes on the last axis, ``n`` instances in front."""

    q: jax.Array  # [n, V] model
    p1: jax.Array  # [n, V] general data (near q: well modelled)
    p2: jax.Array  # [n, V] domain data (far from q)
    s: jax.Array  # [n, V] tilt direction
    learning_rate: jax.Array  # [n] step size
    kind: jax.Array  # [n] int index into DIRECTION_KINDS


def _softmax_from(key, shape, scale):
    return jax.nn.softmax(scale * jax.random.normal(key, shape), axis=-1)


def random_tilt_instances(key, n: int, vocab: int, learning_rate_range=(1e-3, 10.0)) -> TiltInstances:
    """``n`` random single-step problems over ``vocab`` outcomes (jit-able given static ``n, vocab``).

    * ``q = softmax(sigma z)``, ``z ~ N(0, I)``, ``sigma ~ logUniform[0.1, 10]`` (flat to very peaked);
    * ``P1 = softmax(log q + eps z1)``, ``eps ~ Uniform[0, 0.5]`` (general data close to the model);
    * ``P2 = softmax(sigma2 z2)``, ``sigma2 ~ logUniform[0.1, 10]`` (unrelated domain data);
    * ``s`` by kind (a third each): ``"ce_token"`` ``e_y - q`` with ``y ~ P2`` (one CE step on one token),
      ``"ce_domain"`` ``P2 - q`` (a full-batch CE step on domain data), ``"gaussian"`` ``N(0, I)`` (arbitrary);
    * ``learning_rate ~ logUniform(learning_rate_range)``.
    """
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n: must be an integer >= 1, got {n!r}")
    if not (isinstance(vocab, int) and vocab >= 2):
        raise ValueError(f"vocab: must be an integer >= 2, got {vocab!r}")
    lo, hi = learning_rate_range
    if not (0 < lo < hi and np.isfinite(hi)):
        raise ValueError(f"learning_rate_range: must satisfy 0 < lo < hi < inf, got {learning_rate_range!r}")
    ks = jax.random.split(key, 10)
    log_u = lambda k, a, b: jnp.exp(jax.random.uniform(k, (n, 1), minval=np.log(a), maxval=np.log(b)))
    sigma = log_u(ks[0], 0.1, 10.0)
    q = _softmax_from(ks[1], (n, vocab), sigma)
    eps = jax.random.uniform(ks[2], (n, 1), maxval=0.5)
    p1 = jax.nn.softmax(jnp.log(q) + eps * jax.random.normal(ks[3], (n, vocab)), axis=-1)
    p2 = _softmax_from(ks[5], (n, vocab), log_u(ks[4], 0.1, 10.0))
    y = jax.random.categorical(ks[6], jnp.log(p2), axis=-1)
    kind = jax.random.randint(ks[7], (n,), 0, len(DIRECTION_KINDS))
    s_token = jax.nn.one_hot(y, vocab, dtype=q.dtype) - q
    s_domain = p2 - q
    s_gauss = jax.random.normal(ks[8], (n, vocab))
    s = jnp.where((kind == 0)[:, None], s_token, jnp.where((kind == 1)[:, None], s_domain, s_gauss))
    learning_rate = log_u(ks[9], lo, hi)[:, 0]
    return TiltInstances(q=q, p1=p1, p2=p2, s=s, learning_rate=learning_rate, kind=kind)
