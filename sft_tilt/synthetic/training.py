"""Fine-tuning a synthetic softmax model on a world's domain data: SGD/Adam, full batch or minibatch, any weighting.

Objective of one step on a batch ``B`` of domain responses (``sft_tilt.methods.weighting``)::

    J(W) = sum_{b in B, t} w_bt l_bt(W) m_bt / N  +  mu/2 ||W - W0||^2  +  beta sum_{b, t} m_bt KL(q_W0 || q_W)(c_bt) / N,

``N = sum_{b in B, t} m_bt``, ``l_bt = -log q_W(y_bt | c_bt)``, ``w`` the detached token weights of the registered
method ``config.method`` (:mod:`sft_tilt.methods.registry`; methods that need the initial model's per-sequence losses, FLOW,
get their static weights from it; EAFT gets each position's top-k entropy of ``q_W``), the L2 term only for a
method with an ``L2Penalty``, the KL anchor only for one with a ``KLAnchor`` (ASFT, SFT-KL), then one ``optax``
SGD or Adam update with step size ``learning_rate``.

Measured quantities (exact expectations, no sampling):

* domain code length per supervised token ``L2(W) = sum_bt m_bt l_bt(W) / sum_bt m_bt`` over the whole training
  set; the **domain gain** is ``G(W) = L2(W0) - L2(W)`` (nats/token);
* general code length ``L1(W) = sum_c pi1(c) E_{P1(.|c)}[-log q_W(.|c)]``; the **general change** is
  ``D(W) = L1(W) - L1(W0) = sum_c pi1(c) dL(P1(.|c))`` computed with ``sft_tilt.theory.code_length_change`` (nats/token).

``train_to_gain`` steps until ``G >= Delta*`` (or ``max_steps``) and, for a matched-gain comparison without
last-step overshoot, also returns the point on the last update segment ``W_prev + alpha (W_next - W_prev)``
where ``G = Delta*`` (bisection on ``alpha``). With ``record=True`` it keeps the logits at the general and
domain contexts of every state for ``sft_tilt.theory.matched_gain_constants_from_trajectory``.
Everything is jit- and vmap-able over ``learning_rate`` (and over worlds of one shape).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import sft_tilt.theory
from sft_tilt.theory import HARD_TOKEN_THRESHOLD
from sft_tilt.synthetic.models import SoftmaxModel, all_log_probs, context_log_probs, init_params, token_losses
from sft_tilt.methods.registry import MethodConfig
from sft_tilt.methods.weighting import dynamic_tau, kl_to_reference, l2_penalty, reweighted_loss, sequence_mean_losses, topk_entropy
from sft_tilt.synthetic.worlds import World

__all__ = [
    "OPTIMIZERS",
    "TrainConfig",
    "ContextSets",
    "context_sets",
    "initial_sequence_weights",
    "domain_code_length",
    "general_code_length",
    "general_change",
    "domain_gain",
    "train_to_gain",
    "train_epochs",
]

OPTIMIZERS = ("sgd", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Optimiser and objective (the step size is passed separately so sweeps can ``vmap`` over it).

    Attributes:
        optimizer: ``"sgd"`` or ``"adam"`` (optax defaults otherwise).
        batch_size: responses per step; ``None`` = full batch (deterministic).
        method: the registered method with its hyper-parameters (``sft_tilt.methods.registry.MethodConfig``; default SFT);
            its weighting, L2 penalty and initial-loss weights define the objective. Only ``trainable="full"``
            methods apply (the softmax model has no adapters) and averaging methods are not training methods.
        seed: minibatch sampling seed.
    """

    optimizer: str = "sgd"
    batch_size: int | None = None
    method: MethodConfig = field(default_factory=MethodConfig)
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer: {self.optimizer!r} is not one of {OPTIMIZERS}")
        if self.batch_size is not None and not (isinstance(self.batch_size, int) and self.batch_size >= 1):
            raise ValueError(f"batch_size: must be None or an integer >= 1, got {self.batch_size!r}")
        if not isinstance(self.method, MethodConfig):
            raise ValueError(f"method: expected a sft_tilt.methods.registry.MethodConfig, got {type(self.method).__name__}")
        if self.method.spec.trainable != "full":
            raise ValueError(f"method: {self.method.name!r} trains {self.method.spec.trainable!r}; the synthetic model trains all parameters")
        if self.method.spec.averaging:
            raise ValueError(f"method: {self.method.name!r} is post-hoc averaging, not a training objective")

    @property
    def label(self) -> str:
        return self.method.label


class ContextSets(NamedTuple):
    """Static description of the general and domain sides for trajectory constants."""

    general_ids: np.ndarray  # [H1] general context indices
    general_p: np.ndarray  # [H1, V] P1(.|c)
    general_w: np.ndarray  # [H1] pi1(c)
    domain_ids: np.ndarray  # [H2] domain context indices that occur in the training data
    domain_p: np.ndarray  # [H2, V] empirical target distribution at each domain context
    domain_w: np.ndarray  # [H2] supervised-token count of each domain context


def context_sets(world: World) -> ContextSets:
    """General contexts with ``P1`` and ``pi1``; domain contexts with their empirical target distribution and
    token counts (the ``P2`` whose per-token code length is the domain loss)."""
    gw = np.asarray(world.general_weights)
    gid = np.nonzero(gw > 0)[0]
    ctx = np.asarray(world.contexts)[np.asarray(world.mask) > 0]
    tgt = np.asarray(world.targets)[np.asarray(world.mask) > 0]
    did = np.unique(ctx)
    V = world.log_q0.shape[1]
    dp = np.zeros((len(did), V))
    for k, c in enumerate(did):
        counts = np.bincount(tgt[ctx == c], minlength=V)
        dp[k] = counts / counts.sum()
    dw = np.array([np.sum(ctx == c) for c in did], dtype=float)
    return ContextSets(gid, np.exp(np.asarray(world.log_p1)[gid]), gw[gid], did, dp, dw)


def _losses(model: SoftmaxModel, W, world: World):
    return token_losses(model, W, world.contexts, world.targets)


def domain_code_length(model: SoftmaxModel, W, world: World, mask=None) -> jax.Array:
    """``L2(W)``: mean NLL over the supervised tokens of the whole training set (nats/token); ``mask``
    (default ``world.mask``) selects other tokens, e.g. ``world.answer`` for the answer-token code length."""
    l = _losses(model, W, world)
    m = world.mask if mask is None else mask
    return jnp.sum(l * m) / jnp.sum(m)


def general_code_length(model: SoftmaxModel, W, world: World) -> jax.Array:
    """``L1(W) = sum_c pi1(c) E_{P1}[-log q_W]`` (nats/token)."""
    logq = all_log_probs(model, W)
    p1 = jnp.exp(world.log_p1)
    return jnp.sum(world.general_weights * jnp.sum(p1 * -logq, axis=-1))


def general_change(model: SoftmaxModel, W, world: World) -> jax.Array:
    """``D(W) = sum_c pi1(c) dL(P1(.|c))`` between ``q_{W0}`` and ``q_W`` via ``sft_tilt.theory.code_length_change``."""
    q_before = jnp.exp(all_log_probs(model, init_params(model)))
    q_after = jnp.exp(all_log_probs(model, W))
    per_context = sft_tilt.theory.code_length_change(jnp.exp(world.log_p1), q_before, q_after)
    return jnp.sum(world.general_weights * per_context)


def domain_gain(model: SoftmaxModel, W, world: World, mask=None) -> jax.Array:
    """``G(W) = L2(W0) - L2(W)`` (nats/token), over the tokens of ``mask`` (default ``world.mask``)."""
    return domain_code_length(model, init_params(model), world, mask) - domain_code_length(model, W, world, mask)


def initial_sequence_weights(model: SoftmaxModel, world: World, method: MethodConfig | None = None) -> jax.Array | None:
    """The static per-sequence weights of every training response that ``method`` (default FLOW) computes from the
    initial model's per-sequence mean losses ``f_b(W0)`` (FLOW: ``exp(-f_b(W0)/median f(W0))``); ``None`` for a
    method that does not need them."""
    method = MethodConfig("flow") if method is None else method
    if not method.spec.needs_initial_losses:
        return None
    f0 = sequence_mean_losses(_losses(model, init_params(model), world), world.mask)
    return method.initial_sequence_weights(f0)


def _optimizer(config: TrainConfig, learning_rate):
    return optax.sgd(learning_rate) if config.optimizer == "sgd" else optax.adam(learning_rate)


def _make_step(model: SoftmaxModel, world: World, config: TrainConfig, learning_rate, seq_weights):
    opt = _optimizer(config, learning_rate)
    W0 = init_params(model)
    N = world.contexts.shape[0]
    weighting = config.method.weighting()
    mu = config.method.l2_coefficient
    beta = config.method.kl_coefficient

    def objective(W, idx):
        ctx, tgt, m = world.contexts[idx], world.targets[idx], world.mask[idx]
        logp = context_log_probs(model, W, ctx)
        l = -jnp.take_along_axis(logp, tgt[..., None], axis=-1)[..., 0]
        entropies = topk_entropy(logp, weighting.eaft_k) if weighting.needs_entropies else None
        loss = reweighted_loss(weighting, l, m, None if seq_weights is None else seq_weights[idx], entropies)
        if mu is not None:
            loss = loss + l2_penalty(W, W0, mu)
        if beta is not None:
            loss = loss + beta * kl_to_reference(logp, context_log_probs(model, W0, ctx), m)
        return loss

    def step(W, opt_state, key):
        if config.batch_size is None or config.batch_size >= N:
            idx = jnp.arange(N)
        else:
            idx = jax.random.permutation(key, N)[: config.batch_size]
        grads = jax.grad(objective)(W, idx)
        updates, opt_state = opt.update(grads, opt_state, W)
        return optax.apply_updates(W, updates), opt_state

    return opt, step


def train_to_gain(
    model: SoftmaxModel,
    world: World,
    config: TrainConfig,
    learning_rate,
    target_gain,
    max_steps: int,
    *,
    record: bool = False,
    constants: bool = False,
    gain_mask=None,
    sets: ContextSets | None = None,
    bisection_iters: int = 60,
) -> dict:
    """Train until the domain gain first reaches ``target_gain`` (or ``max_steps`` updates).

    Returns a dict of arrays: ``steps`` (updates taken, ``T``), ``reached`` (bool), ``domain_gain``/``general_change`` at
    ``W_T`` (full steps, with overshoot), ``matched_general_change``/``matched_gain`` at the point of the last
    segment where ``G = Delta*`` (``alpha`` by bisection; equal to the full-step values when not reached), ``alpha``,
    and with ``record=True`` ``logits_general`` ``[max_steps+1, H1, V]``, ``logits_domain`` ``[max_steps+1, H2, V]``
    (states ``0..T``; later rows repeat ``W_T``).

    With ``constants=True`` the constants of ``sft_tilt.theory.matched_gain_bound`` are measured online, step by step, by
    ``sft_tilt.theory.matched_gain_constants_from_trajectory`` on each pair of consecutive states (the tilt parameter is the step's ``learning_rate``),
    and summarised over the steps ``t < T``: ``rho_max``, ``g_min``, ``g_max``, ``s_range``, ``s_range_general``,
    ``g_initial``, ``gain_decay`` (smallest ``beta >= 0`` with ``g_t >= g_0 - beta Gamma_t``), ``rho_initial``,
    ``leakage_growth`` (smallest ``gamma >= 0`` with ``rho_t <= rho_0 + gamma Gamma_t``), and the telescoped
    ``total_domain_gain``/``total_general_change`` (O(1) memory, unlike ``record``).

    ``gain_mask`` (default ``world.mask``) chooses the tokens whose gain is matched, e.g. ``world.answer``; the
    trajectory constants always refer to the gain on all supervised tokens.
    """
    if not (isinstance(max_steps, int) and max_steps >= 1):
        raise ValueError(f"max_steps: must be an integer >= 1, got {max_steps!r}")
    if (record or constants) and sets is None:
        sets = context_sets(world)
    seq_weights = initial_sequence_weights(model, world, config.method)
    opt, step = _make_step(model, world, config, learning_rate, seq_weights)
    W0 = init_params(model)
    gain = lambda W: domain_gain(model, W, world, gain_mask)  # noqa: E731

    def logits_at(W, ids):
        return model.bias[ids] + model.features[ids] @ W

    if record or constants:
        gid, did = jnp.asarray(sets.general_ids), jnp.asarray(sets.domain_ids)
    if record:
        buf_g = jnp.broadcast_to(logits_at(W0, gid), (max_steps + 1,) + (len(sets.general_ids), W0.shape[1]))
        buf_d = jnp.broadcast_to(logits_at(W0, did), (max_steps + 1,) + (len(sets.domain_ids), W0.shape[1]))
    else:
        buf_g = buf_d = jnp.zeros(())

    dt = W0.dtype
    acc0 = {
        "rho_max": jnp.asarray(-jnp.inf, dt), "g_min": jnp.asarray(jnp.inf, dt), "g_max": jnp.asarray(-jnp.inf, dt),
        "s_range": jnp.asarray(0.0, dt), "s_range_general": jnp.asarray(0.0, dt), "g_initial": jnp.asarray(0.0, dt),
        "gain_decay": jnp.asarray(0.0, dt), "rho_initial": jnp.asarray(0.0, dt), "leakage_growth": jnp.asarray(0.0, dt),
        "total_domain_gain": jnp.asarray(0.0, dt), "total_general_change": jnp.asarray(0.0, dt),
    }

    def accumulate(acc, W, W_new, t):
        tc = sft_tilt.theory.matched_gain_constants_from_trajectory(
            jnp.stack([logits_at(W, gid), logits_at(W_new, gid)]),
            jnp.stack([logits_at(W, did), logits_at(W_new, did)]),
            sets.general_p, sets.domain_p, learning_rate,
            weights_general=sets.general_w, weights_domain=sets.domain_w,
        )
        g_t, rho_t = tc.gain_rate[0], tc.rho[0]
        g0 = jnp.where(t == 0, g_t, acc["g_initial"])
        rho0 = jnp.where(t == 0, rho_t, acc["rho_initial"])
        gamma = acc["total_domain_gain"]  # cumulative gain before this step
        use = gamma > 0
        beta = jnp.where(use, (g0 - g_t) / jnp.where(use, gamma, 1.0), 0.0)
        growth = jnp.where(use, (rho_t - rho0) / jnp.where(use, gamma, 1.0), 0.0)
        return {
            "rho_max": jnp.maximum(acc["rho_max"], tc.rho[0]),
            "g_min": jnp.minimum(acc["g_min"], g_t),
            "g_max": jnp.maximum(acc["g_max"], g_t),
            "s_range": jnp.maximum(acc["s_range"], tc.range_domain[0]),
            "s_range_general": jnp.maximum(acc["s_range_general"], tc.range_general[0]),
            "g_initial": g0,
            "gain_decay": jnp.maximum(acc["gain_decay"], beta),
            "rho_initial": rho0,
            "leakage_growth": jnp.maximum(acc["leakage_growth"], growth),
            "total_domain_gain": gamma + tc.gain[0],
            "total_general_change": acc["total_general_change"] + tc.degradation[0],
        }

    def cond(state):
        W, _, t, _, g, _, _, _, _ = state
        return (g < target_gain) & (t < max_steps)

    def body(state):
        W, opt_state, t, key, g, W_prev, bg, bd, acc = state
        key, sub = jax.random.split(key)
        W_new, opt_state = step(W, opt_state, sub)
        if constants:
            acc = accumulate(acc, W, W_new, t)
        if record:
            bg = jax.lax.dynamic_update_slice(bg, logits_at(W_new, gid)[None], (t + 1, 0, 0))
            bd = jax.lax.dynamic_update_slice(bd, logits_at(W_new, did)[None], (t + 1, 0, 0))
        return W_new, opt_state, t + 1, key, gain(W_new), W, bg, bd, acc

    init = (W0, opt.init(W0), jnp.asarray(0), jax.random.key(config.seed), jnp.asarray(0.0, W0.dtype), W0, buf_g, buf_d,
            acc0 if constants else {})
    W, _, T, _, g_T, W_prev, bg, bd, acc = jax.lax.while_loop(cond, body, init)
    reached = g_T >= target_gain

    def bisect(_, lohi):
        lo, hi = lohi
        mid = 0.5 * (lo + hi)
        below = gain(W_prev + mid * (W - W_prev)) < target_gain
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, bisection_iters, bisect, (jnp.asarray(0.0, W0.dtype), jnp.asarray(1.0, W0.dtype)))
    alpha = jnp.where(reached, hi, 1.0)
    W_match = W_prev + alpha * (W - W_prev)
    out = {
        "steps": T,
        "reached": reached,
        "domain_gain": g_T,
        "general_change": general_change(model, W, world),
        "alpha": alpha,
        "matched_domain_gain": gain(W_match),
        "matched_general_change": general_change(model, W_match, world),
        "matched_params": W_match,
    }
    if constants:
        out.update({f"c_{k}": v for k, v in acc.items()})
    if record:
        # rows after T repeat the final state
        rows = jnp.arange(max_steps + 1)[:, None, None]
        out["logits_general"] = jnp.where(rows <= T, bg, logits_at(W, gid)[None])
        out["logits_domain"] = jnp.where(rows <= T, bd, logits_at(W, did)[None])
    return out


def train_epochs(
    model: SoftmaxModel,
    world: World,
    config: TrainConfig,
    learning_rate,
    n_epochs: int,
    steps_per_epoch: int,
    *,
    key=None,
) -> dict:
    """Fixed-length training; per epoch end (index 0 = before training) returns ``domain_gain``, ``general_change``,
    ``tau`` (dynamic TALR temperature of the whole training set's current losses, with the median and
    empty-sequence rules of the method's weighting), ``token_prob``
    ``[E+1, N, T]`` (model probability of every training target), ``frac_easy`` (fraction of supervised
    targets with ``p > 0.2``) and ``median_prob``. ``key`` (default ``jax.random.key(config.seed)``) draws the
    minibatches; passing it lets a sweep ``vmap`` over seeds."""
    if not (isinstance(n_epochs, int) and n_epochs >= 1):
        raise ValueError(f"n_epochs: must be an integer >= 1, got {n_epochs!r}")
    if not (isinstance(steps_per_epoch, int) and steps_per_epoch >= 1):
        raise ValueError(f"steps_per_epoch: must be an integer >= 1, got {steps_per_epoch!r}")
    seq_weights = initial_sequence_weights(model, world, config.method)
    opt, step = _make_step(model, world, config, learning_rate, seq_weights)
    W0 = init_params(model)
    on = world.mask > 0
    weighting = config.method.weighting()

    def stats(W):
        l = _losses(model, W, world)
        p = jnp.exp(-l)
        frac = jnp.sum(jnp.where(on, p > HARD_TOKEN_THRESHOLD, False)) / jnp.sum(on)
        med = jnp.nanmedian(jnp.where(on, p, jnp.nan))
        return {
            "domain_gain": domain_gain(model, W, world),
            "general_change": general_change(model, W, world),
            "tau": dynamic_tau(l, world.mask, weighting.median, weighting.empty_sequences),
            "token_prob": p,
            "frac_easy": frac,
            "median_prob": med,
        }

    def epoch(carry, _):
        W, opt_state, key = carry

        def inner(c, k):
            W, s = c
            return step(W, s, k), None

        key, sub = jax.random.split(key)
        (W, opt_state), _ = jax.lax.scan(inner, (W, opt_state), jax.random.split(sub, steps_per_epoch))
        return (W, opt_state, key), stats(W)

    key = jax.random.key(config.seed) if key is None else key
    _, per_epoch = jax.lax.scan(epoch, (W0, opt.init(W0), key), None, length=n_epochs)
    first = stats(W0)
    return {k: jnp.concatenate([first[k][None], v], axis=0) for k, v in per_epoch.items()}
