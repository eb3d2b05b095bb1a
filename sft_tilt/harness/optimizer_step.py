"""One optimiser step from the base model, SFT against TALR, under SGD and under Adam: does TALR's smaller step survive
Adam's per-coordinate normalisation?

The single-step theory reads a step as a tilt whose size scales with the learning rate and the gradient: TALR
multiplies each target's gradient by a weight ``w <= 1`` that is small for hard (low-probability) tokens, so under SGD
(``theta_1 = theta_0 - eta sum_i w_i grad l_i / N``) its step is shorter than SFT's at the same rate. Adam's first step
from a fresh state is ``theta_1 = theta_0 - eta g / (|g| + eps)``, about ``-eta sign(g)`` per coordinate: a reweighting
changes the step's direction, not its size. This analysis measures both, for every method of :data:`PLAN`.

For each response format, on the first ``PLAN.batch`` training problems (the domain batch ``S``, its ``M`` targets)
and a general probe (the first ``PLAN.probe_tokens`` targets of the ``docs`` general set, ``N`` targets):

1. each method's gradient on ``S`` and each optimiser's first update at unit learning rate ``d`` (``optax`` from
   a fresh state; both updates are exactly linear in the rate, so the step at rate ``eta`` is ``eta d``);
2. the first-order domain gain per unit rate, ``g1 = -<grad L_S, d>`` with ``L_S`` the plain mean target loss of
   ``S`` (what SFT minimises, whatever the method's weights), accumulated in float64;
3. the rates: ``eta_k = f_k L_S(theta_0) / g1`` for each gain fraction ``f_k`` of :data:`PLAN`, so the step's
   first-order domain gain is the fraction ``f_k`` of the batch's loss for **every** method and optimiser. The rates
   are matched through each arm's own ``g1``, so SGD's rates (a gradient's size) and Adam's (a sign's) differ by
   orders of magnitude while SFT's one-step domain gain spans the same range under both; TALR's rate over SFT's at
   one target is the step-size reduction its weights make (above 1 under SGD: a smaller step per unit rate);
4. at each rate: the measured domain change ``L_S(theta_0 + eta d) - L_S(theta_0)`` (``domain_gain`` is its
   negative), the update's norm ``eta ||d||``, and the step monitor's numbers on the probe
   (:func:`sft_tilt.monitor.measure_step`: the measured general change, its exact tilt decomposition, the linearised
   prediction with its Jensen lower and Hoeffding/Bennett upper bounds).

The record (:func:`optimizer_step`) is cached and committed like the other base-model analyses
(:mod:`sft_tilt.harness.stored_base_analyses`); the comparison at matched gain is read from it by
:mod:`sft_tilt.claims.optimizer_step_cost`.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from sft_tilt.harness import optimizer_step_plan
from sft_tilt.harness.optimizer_step_plan import PLAN, STEP_KEYS, OptimizerStepPlan

__all__ = ["OptimizerStepPlan", "PLAN", "STEP_KEYS", "measure_optimizer_steps", "optimizer_step", "first_targets"]

def first_targets(tokens: np.ndarray, loss_mask: np.ndarray, n_targets: int) -> dict:
    """``{"tokens", "loss_mask"}``: the rows of a set holding its first ``n_targets`` scored targets in reading order
    (the mask cleared after the last of them), cut after the last column any kept row scores. Fewer targets in the set
    (or ``n_targets = inf``): all of them."""
    targets = np.asarray(loss_mask)[:, 1:] > 0
    order = np.cumsum(targets.ravel()).reshape(targets.shape)
    keep = targets & (order <= n_targets)
    rows = np.flatnonzero(keep.any(axis=1))
    if rows.size == 0:
        raise ValueError("loss_mask: the set has no scored target")
    last = int(np.flatnonzero(keep.any(axis=0)).max()) + 2  # the target of logits t is token t + 1
    mask = np.zeros(np.shape(loss_mask), np.float32)
    mask[:, 1:] = keep
    return {"tokens": np.asarray(tokens)[rows, :last], "loss_mask": mask[rows, :last]}


def _vdot(a, b) -> float:
    """``<a, b>`` over all leaves, accumulated in float64 on the host."""
    import jax

    return float(sum(np.vdot(np.asarray(x, np.float64), np.asarray(y, np.float64))
                     for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b))))


def measure_optimizer_steps(params0, config, domain_batches: dict, probe: dict, plan: OptimizerStepPlan = PLAN,
                            progress: bool = False) -> dict:
    """The record of the module docstring from parameters ``params0`` of a model ``config``, one domain batch per
    format (``{fmt: {"tokens", "loss_mask"}}``, the harness's convention) and one general ``probe``:

    ``{"plan", "probe_tokens", "formats": {fmt: {"domain_tokens", "domain_loss", "first_order_gains", "arms":
    {optimizer: {method: {"unit_update_norm", "gain_per_unit_rate", "steps": [{"learning_rate", "domain_change",
    "domain_gain", "update_norm", **STEP_KEYS}]}}}}}}``."""
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from sft_tilt.harness.methods import make_objective, make_optimizer
    from sft_tilt.lm.model import forward, per_token_losses
    from sft_tilt.methods.registry import MethodConfig
    from sft_tilt.monitor import measure_step

    def logits(params, tokens):
        return forward(params, config, tokens)

    @jax.jit
    def batch_loss(params, tokens, mask):
        return per_token_losses(params, config, tokens, mask).sum() / jnp.maximum(mask[:, 1:].sum(), 1.0)

    probe = {k: jnp.asarray(v) for k, v in probe.items()}
    out = {"plan": asdict(plan), "probe_tokens": int(np.sum(np.asarray(probe["loss_mask"])[:, 1:] > 0)), "formats": {}}
    bar = tqdm(total=len(domain_batches) * len(plan.methods) * len(plan.optimizers) * len(plan.gain_fractions),
               desc="one optimiser step", disable=not progress, leave=False)
    for fmt, batch in domain_batches.items():
        # the batch without its padding columns: the logits at a position read only the tokens before it
        batch = {k: jnp.asarray(v) for k, v in first_targets(batch["tokens"], batch["loss_mask"], np.inf).items()}
        tokens, mask = batch["tokens"], batch["loss_mask"]
        loss0 = float(batch_loss(params0, tokens, mask))
        grads = {m: jax.grad(lambda p, o=make_objective(MethodConfig(m), config): o(p, {}, batch)[0])(params0)
                 for m in plan.methods}
        res = {"domain_tokens": int(np.sum(np.asarray(mask)[:, 1:] > 0)), "domain_loss": loss0,
               "first_order_gains": [f * loss0 for f in plan.gain_fractions], "arms": {}}
        for opt_name in plan.optimizers:
            optimizer = make_optimizer(1.0, opt_name)
            arms = {}
            for method in plan.methods:
                direction, _ = optimizer.update(grads[method], optimizer.init(params0), params0)
                unit_norm = float(np.sqrt(_vdot(direction, direction)))
                rate_gain = -_vdot(grads["sft"], direction)  # grads["sft"] is grad L_S
                if not rate_gain > 0:
                    raise ValueError(f"{fmt}, {opt_name}, {method}: the step does not lower the batch's loss at first "
                                     f"order (gain per unit rate {rate_gain:g}); no rate matches a domain gain")
                steps = []
                for target in res["first_order_gains"]:
                    eta = target / rate_gain
                    update = jax.tree_util.tree_map(lambda a, u: (eta * u).astype(a.dtype), params0, direction)
                    after = jax.tree_util.tree_map(lambda a, u: a + u, params0, update)
                    change = float(batch_loss(after, tokens, mask)) - loss0
                    monitor = measure_step(logits, params0, probe, batch, learning_rate=eta, update=update)
                    steps.append({"learning_rate": eta, "domain_change": change, "domain_gain": -change,
                                  "update_norm": eta * unit_norm, **{k: monitor[k] for k in STEP_KEYS}})
                    bar.update(1)
                arms[method] = {"unit_update_norm": unit_norm, "gain_per_unit_rate": rate_gain, "steps": steps}
            res["arms"][opt_name] = arms
        out["formats"][fmt] = res
    bar.close()
    return out


def optimizer_step(preset, progress: bool = True) -> dict:
    """:func:`measure_optimizer_steps` on the base model of ``preset`` (its first ``PLAN.batch`` training problems
    of each format of :data:`PLAN` it has, the ``docs`` general set as the probe), stored or computed into the cache
    (:mod:`sft_tilt.harness.stored_base_analyses`)."""
    from sft_tilt.harness.base_model_analyses import _session, _stored_or_computed

    def compute():
        from sft_tilt.harness.encoding import encode_text_set
        from sft_tilt.harness.general_sets import docs_texts

        plan = optimizer_step_plan.PLAN  # read when computed: the record's key reads it there too
        session = _session(preset, progress)
        b = plan.batch
        batches = {fmt: {"tokens": session.train[fmt].tokens[:b], "loss_mask": session.train[fmt].loss_mask[:b]}
                   for fmt in plan.formats if fmt in preset.formats}
        # the docs set as the session encodes it, without building the session's other general sets (the "self"
        # set generates the model's own responses)
        docs = encode_text_set(session.tokenizer, docs_texts(preset.data.n_docs), preset.data.seq_len_general,
                               session.pad_id)
        probe = first_targets(docs.tokens, docs.loss_mask, plan.probe_tokens)
        return measure_optimizer_steps(session.params, session.config, batches, probe, plan, progress)

    return _stored_or_computed(preset, "optimizer_step", compute)
