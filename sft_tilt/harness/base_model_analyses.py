"""What the real-LM experiments measure on the base model alone, stored like the runs: cached and committed.

* :func:`target_token_statistics`: per response format, the base model's probability ``p`` of every training
  target token, the hard tokens (``p <= 0.2``) and what kind of text they are, the hard-token mass
  ``sft_tilt.theory.hard_token_mass`` and the base model's greedy answer accuracy;
* :func:`single_step`: one optimiser step ``theta_1 = theta_0 + lam d`` of SFT (``d`` the step direction at unit
  learning rate, so the step is exactly linear in ``lam``) and, on the held-out domain set and every general set,

      measured   dL_S(lam) = L_S(theta_1) - L_S(theta_0)
      predicted  dL_S(lam) ~ lam <grad L_S, d> + lam^2 / 2  d^T H_S d

  (gradient inner product by ``jax.grad``, curvature along the step by ``jax.jvp`` of the gradient).

Neither reads a fine-tuning run, but both need the loaded model: the first the base model's evaluation of every
training problem in both formats (``Session.base``), the second gradients and Hessian-vector products. Where every
run the figures read is committed, that would be the only model work left, so their records are kept like the
runs. Each is a checksummed record keyed by the content key of its material: the model file's fingerprint,
the tokenizer, the data configuration, the analysis's own parameters, the code key of this module's import closure
and the library versions. The material is computed from the preset alone (the model file is hashed, not loaded),
so a stored record is found without a session:

1. ``<results>/<preset>/base/<namespace>/<key>.(json|npz)`` (committed by ``python -m sft_tilt.harness export``), read
   when its preset's manifest lists it with its SHA-256 (:mod:`sft_tilt.harness.manifest`) and it verifies for its
   key; one that does not is reported by path and left as it is;
2. else the cache entry (``sft_tilt.store.cached``), computed when missing or damaged.
"""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.versions import BASE_ANALYSES_VERSION
from sft_tilt.store import cached, content_key, entry_path, library_versions, read_record

__all__ = ["FOLDER", "NAMESPACES", "target_token_statistics", "single_step", "material", "stored_path",
           "committed_path", "token_kind"]

#: Folder of ``<results>/<preset>/`` that holds the committed records.
FOLDER = "base"
#: The cache namespace of each analysis.
NAMESPACES = {"target_token_statistics": "harness_target_tokens", "single_step": "harness_single_step"}


def _identity(preset) -> dict:
    """What the session's own cache keys hold (``Session.key_material``), without loading the model."""
    from sft_tilt.harness.session import model_fingerprint

    return {"model": model_fingerprint(preset.resolved_model()), "tokenizer": str(preset.tokenizer or ""),
            "data": preset.data}


def material(preset, analysis: str) -> dict:
    """The key material of ``analysis`` (a key of :data:`NAMESPACES`) for ``preset``."""
    if analysis == "target_token_statistics":
        own = {"formats": tuple(preset.formats), "hard_below": HARD_BELOW}
    elif analysis == "single_step":
        own = {"formats": tuple(preset.single_step_formats), "lrs": tuple(preset.single_step_lrs),
               "batch": preset.single_step_batch, "optimizer": preset.optimizer, "method": preset.method("sft")}
    else:
        raise ValueError(f"analysis: expected one of {sorted(NAMESPACES)}, got {analysis!r}")
    return {**_identity(preset), "what": analysis, **own, "code": BASE_ANALYSES_VERSION, "libs": library_versions()}


def committed_path(preset, analysis: str, results_dir: Path | None = None) -> Path | None:
    """Where the committed record of ``analysis`` for ``preset`` lies, if it exists (``.json`` or ``.npz``)."""
    from sft_tilt.harness.runs import results_dir as default_results_dir

    key = content_key(material(preset, analysis))
    folder = Path(results_dir if results_dir is not None else default_results_dir()) / preset.name / FOLDER
    for suffix in (".json", ".npz"):
        path = folder / NAMESPACES[analysis] / f"{key}{suffix}"
        if path.exists():
            return path
    return None


def stored_path(preset, analysis: str) -> Path | None:
    """The cache entry of ``analysis`` for ``preset``, if one exists (it is verified when read)."""
    m = material(preset, analysis)
    for arrays in (False, True):
        path = entry_path(NAMESPACES[analysis], m, arrays=arrays)
        if path.exists():
            return path
    return None


def _committed_or_cached(preset, analysis: str, compute):
    m = material(preset, analysis)
    key = content_key(m)
    path = committed_path(preset, analysis)
    if path is not None:
        from sft_tilt.harness.manifest import committed_file_problem
        from sft_tilt.harness.runs import results_dir

        unlisted = committed_file_problem(path, results_dir())
        if unlisted is not None:
            warnings.warn(f"{path}: committed record not served ({unlisted}); it is recomputed into the cache, the "
                          "committed file is left unchanged")
            return cached(NAMESPACES[analysis], m, compute)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = read_record(path, key=key, discard=False)
        if isinstance(value, dict) and "value" in value:
            return value["value"]
        why = "; ".join(str(w.message) for w in caught) or "not a record of this analysis"
        warnings.warn(f"{path}: committed record does not verify ({why}); it is recomputed into the cache, the "
                      f"committed file is left unchanged")
    return cached(NAMESPACES[analysis], m, compute)


def _session(preset, progress: bool):
    from sft_tilt.harness.session import get_session

    return get_session(preset.resolved_model(), preset.tokenizer, preset.data, progress)


# ----------------------------------------------------------------------------- target-token statistics

#: A target token is hard when the base model gives it probability at most this (the paper's threshold).
HARD_BELOW = 0.2
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

    return _committed_or_cached(preset, "target_token_statistics", compute)


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
    """``{"lrs", "formats": {fmt: {set: {"L0", "first", "second", "measured", "predicted",
    "predicted_first_order"}}}}``: the first SFT step on ``preset.single_step_batch`` training problems of each
    format in ``preset.single_step_formats``, at each learning rate ``lam`` of ``preset.single_step_lrs``, measured
    and predicted on the first ``single_step_batch`` rows of the held-out domain set and of every general set
    (module docstring; ``first = <grad L_S, d>``, ``second = d^T H_S d``)."""

    def compute():
        from tqdm.auto import tqdm

        from sft_tilt.harness.methods import make_objective, make_optimizer

        session = _session(preset, progress)
        b = preset.single_step_batch
        params0 = session.params
        sets = {name: (jnp.asarray(enc.tokens[:b]), jnp.asarray(enc.loss_mask[:b])) for name, enc in session.general.items()}
        out = {"lrs": list(preset.single_step_lrs), "formats": {}}
        bar = tqdm(total=len(preset.single_step_formats) * (len(sets) + 1), desc="single-step theory",
                   disable=not progress, leave=False)
        grads_general = {}
        for fmt in preset.single_step_formats:
            train = session.train[fmt]
            batch = {"tokens": jnp.asarray(train.tokens[:b]), "loss_mask": jnp.asarray(train.loss_mask[:b])}
            objective = make_objective(preset.method("sft"), session.config)
            g = jax.grad(lambda p: objective(p, {}, batch)[0])(params0)
            opt = make_optimizer(1.0, preset.optimizer)
            d, _ = opt.update(g, opt.init(params0), params0)  # unit-learning-rate first step: theta_1 = theta_0 + lam d
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
                for lam in preset.single_step_lrs:
                    p1 = jax.tree_util.tree_map(lambda a, u: (a + lam * u).astype(a.dtype), params0, d)
                    measured.append(float(_loss_jit(p1, tok, msk, config=cfg)) - l0)
                res[name] = {"L0": l0, "first": first, "second": second, "measured": measured,
                             "predicted": [lam * first + 0.5 * lam**2 * second for lam in preset.single_step_lrs],
                             "predicted_first_order": [lam * first for lam in preset.single_step_lrs]}
                bar.update(1)
            out["formats"][fmt] = res
        bar.close()
        return out

    return _committed_or_cached(preset, "single_step", compute)
