"""What the real-LM experiments measure on the base model alone, stored like the runs: cached and committed.

* :func:`target_token_statistics`: per response format, the base model's probability ``p`` of every training
  target token, the hard tokens (``p <= 0.2``) and what kind of text they are, the hard-token mass
  ``sft_tilt.theory.hard_token_mass`` and the base model's greedy answer accuracy;
* :func:`single_step`: one optimiser step ``theta_1 = theta_0 + eta d`` of SFT at learning rate ``eta`` (``d`` the step
  direction at unit learning rate, so the step is exactly linear in ``eta``) and, on the held-out domain set and
  every general set,

      measured   dL_S(eta) = L_S(theta_1) - L_S(theta_0)
      predicted  dL_S(eta) ~ eta <grad L_S, d> + eta^2 / 2  d^T H_S d

  (gradient inner product by ``jax.grad``, curvature along the step by ``jax.jvp`` of the gradient).

Neither reads a fine-tuning run, but both need the loaded model: the first the base model's evaluation of every
training problem in both formats (``Session.base``), the second gradients and Hessian-vector products. On the ``cpu``
preset that costs minutes on two cores where every run the figures read is committed, so their records are kept
like the runs: :mod:`sft_tilt.harness.stored_base_analyses` reads them (committed, else cached) without a model, and
this module computes one into the cache when neither is stored (``python -m sft_tilt.harness sweep --experiment
base``).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.stored_base_analyses import (FOLDER, HARD_BELOW, NAMESPACES, committed_path, material, read_stored,
                                                   stored_path)
from sft_tilt.store import cached

# the reading names beside the computations, for the export and the command line
__all__ = ["target_token_statistics", "single_step", "token_kind", "FOLDER", "NAMESPACES", "HARD_BELOW", "material",
           "stored_path", "committed_path"]


def _stored_or_computed(preset, analysis: str, compute):
    """The stored value of ``analysis`` (:func:`sft_tilt.harness.stored_base_analyses.read_stored`), else
    ``compute()`` cached under its key."""
    value = read_stored(preset, analysis)
    return value if value is not None else cached(NAMESPACES[analysis], material(preset, analysis), compute)


def _session(preset, progress: bool):
    from sft_tilt.harness.session import get_session

    return get_session(preset.resolved_model(), preset.tokenizer, preset.data, progress)


# ----------------------------------------------------------------------------- target-token statistics

_SYMBOLS = frozenset({".", ",", "/", "^", "(", ")", "=", "+", "-", "x", "*"})


def token_kind(text: str) -> str:
    """``"whitespace"``, ``"digit"``, ``"symbol"`` (operators, punctuation) or ``"word"``: what a token's text is."""
    t = text.strip()
    if not t:
        return "whitespace"
    if t.isdigit():
        return "digit"
    if t in _SYMBOLS or all(not c.isalnum() for c in t):
        return "symbol"
    return "word"


def target_token_statistics(preset, progress: bool = True) -> dict:
    """``{fmt: {**Session.base()[fmt]["train_stats"], "p", "hard_token_mass", "hard_tokens", "hard_kinds",
    "all_kinds", "base_accuracy"}}`` for every format of ``preset``: ``p`` the base model's probability of each
    training target token (float32 array, in reading order), ``hard_tokens`` the 40 hardest ``(text, p)``,
    ``hard_kinds`` / ``all_kinds`` the :func:`token_kind` counts of the hard / all target tokens."""
    from sft_tilt.theory import hard_token_mass

    def compute():
        session = _session(preset, progress)
        base = session.base()
        out = {}
        for fmt in preset.formats:
            losses, mask = base[fmt]["train_token_losses"]
            enc = session.train[fmt]
            p = np.exp(-np.asarray(losses, np.float64))
            hard, kinds, all_kinds = [], {}, {}
            for n in range(enc.n):
                for t in range(enc.seq_len - 1):
                    if mask[n, t] > 0:
                        text = session.tokenizer.decode([int(enc.tokens[n, t + 1])])
                        kind = token_kind(text)
                        all_kinds[kind] = all_kinds.get(kind, 0) + 1
                        if p[n, t] <= HARD_BELOW:
                            hard.append((text, float(p[n, t])))
                            kinds[kind] = kinds.get(kind, 0) + 1
            scored = p[mask > 0]
            out[fmt] = {
                **base[fmt]["train_stats"],
                "p": scored.astype(np.float32),
                "hard_token_mass": float(hard_token_mass(jnp.asarray(scored))),
                "hard_tokens": sorted(hard, key=lambda x: x[1])[:40],
                "hard_kinds": kinds,
                "all_kinds": all_kinds,
                "base_accuracy": base[fmt]["accuracy"]["accuracy"],
            }
        return out

    return _stored_or_computed(preset, "target_token_statistics", compute)


# ----------------------------------------------------------------------------- one optimiser step


def _set_loss(params, tokens, mask, config):
    """Mean NLL of the scored tokens of one batch (nats/token)."""
    from sft_tilt.lm.model import per_token_losses

    count = jnp.maximum(mask[:, 1:].sum(), 1.0)
    return per_token_losses(params, config, tokens, mask).sum() / count


_loss_jit = jax.jit(_set_loss, static_argnames="config")
_grad_jit = jax.jit(jax.grad(_set_loss), static_argnames="config")


@partial(jax.jit, static_argnames="config")
def _hvp_jit(params, v, tokens, mask, config):
    """``H v`` with ``H`` the Hessian of the batch loss: forward-mode derivative (``jax.jvp``) of ``jax.grad``."""
    return jax.jvp(lambda p: jax.grad(_set_loss)(p, tokens, mask, config), (params,), (v,))[1]


def _vdot(a, b) -> float:
    """``<a, b>`` over all leaves, accumulated in float64 on the host."""
    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64))
                     for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


def single_step(preset, progress: bool = True) -> dict:
    """``{"learning_rates", "formats": {fmt: {set: {"L0", "first", "second", "measured", "predicted",
    "predicted_first_order"}}}}``: the first SFT step on ``preset.single_step_batch`` training problems of each
    format in ``preset.single_step_formats``, at each learning rate ``eta`` of ``preset.single_step_learning_rates``, measured
    and predicted on the first ``single_step_batch`` rows of the held-out domain set and of every general set
    (module docstring; ``first = <grad L_S, d>``, ``second = d^T H_S d``)."""

    def compute():
        from tqdm.auto import tqdm

        from sft_tilt.harness.methods import make_objective, make_optimizer

        session = _session(preset, progress)
        b = preset.single_step_batch
        params0 = session.params
        sets = {name: (jnp.asarray(enc.tokens[:b]), jnp.asarray(enc.loss_mask[:b])) for name, enc in session.general.items()}
        out = {"learning_rates": list(preset.single_step_learning_rates), "formats": {}}
        bar = tqdm(total=len(preset.single_step_formats) * (len(sets) + 1), desc="single-step theory",
                   disable=not progress, leave=False)
        grads_general = {}
        for fmt in preset.single_step_formats:
            train = session.train[fmt]
            batch = {"tokens": jnp.asarray(train.tokens[:b]), "loss_mask": jnp.asarray(train.loss_mask[:b])}
            objective = make_objective(preset.method("sft"), session.config)
            g = jax.grad(lambda p: objective(p, {}, batch)[0])(params0)
            opt = make_optimizer(1.0, preset.optimizer)
            d, _ = opt.update(g, opt.init(params0), params0)  # unit-learning-rate first step: theta_1 = theta_0 + eta d
            held = session.heldout[fmt]
            fmt_sets = {"domain": (jnp.asarray(held.tokens[:b]), jnp.asarray(held.loss_mask[:b])), **sets}
            res = {}
            for name, (tok, msk) in fmt_sets.items():
                cfg = session.config
                if name in grads_general:
                    gs = grads_general[name]
                else:
                    gs = _grad_jit(params0, tok, msk, config=cfg)
                    if name != "domain":  # the general sets are the same for every format
                        grads_general[name] = gs
                first = _vdot(gs, d)
                second = _vdot(d, _hvp_jit(params0, d, tok, msk, config=cfg))
                l0 = float(_loss_jit(params0, tok, msk, config=cfg))
                measured = []
                for eta in preset.single_step_learning_rates:
                    p1 = jax.tree_util.tree_map(lambda a, u: (a + eta * u).astype(a.dtype), params0, d)
                    measured.append(float(_loss_jit(p1, tok, msk, config=cfg)) - l0)
                res[name] = {"L0": l0, "first": first, "second": second, "measured": measured,
                             "predicted": [eta * first + 0.5 * eta**2 * second for eta in preset.single_step_learning_rates],
                             "predicted_first_order": [eta * first for eta in preset.single_step_learning_rates]}
                bar.update(1)
            out["formats"][fmt] = res
        bar.close()
        return out

    return _stored_or_computed(preset, "single_step", compute)
