"""Training objectives of the registered fine-tuning methods (:mod:`sft_tilt.methods.registry`) on the real LM.

Every method minimises a reweighted token cross-entropy on the response tokens of a batch
(``sft_tilt.methods.weighting``, the same functions the synthetic simulator uses):

    L(theta) = (1/N) sum_i w_i l_i(theta)  [+ mu/2 ||theta - theta_0||^2 for a method with an L2Penalty]
                                           [+ beta (1/N) sum_i KL(q_theta_0 || q_theta)_i for one with a KLAnchor]

with ``l_i = -log q_theta(y_i | context_i)`` and the detached weights of
the method's ``LossWeighting``. What is trained comes from the registry entry: every parameter
(``trainable="full"``) or low-rank adapters ``W + (alpha/r) A B`` with the base frozen (``"lora"``,
:mod:`sft_tilt.harness.lora`). Methods that need the initial model's per-sequence losses (FLOW) get their static
weights in ``batch["sequence_weights"]`` (:mod:`sft_tilt.harness.runs`); post-hoc averaging (WiSE-FT) is evaluated
by the run after training. The formulas and sources of each method are in :mod:`sft_tilt.methods.registry`.

The token losses ``l_i`` come from ``sft_tilt.lm.supervised_loss.supervised_token_losses`` when the objective is
given a ``capacity`` (what runs do: the output head is applied only at response tokens, the same losses up to
float32 round-off) and from ``sft_tilt.lm.model.per_token_losses`` (logits at every position) without one. EAFT
(top-k entropy of each prediction) and the KL-anchored methods (ASFT, SFT-KL; the initial model's prediction at
each target, from a second forward pass of the frozen initial parameters) read the full logits.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sft_tilt.harness.lora import LoraConfig, init_lora, merge_lora
from sft_tilt.harness.optimizers import SGD_MOMENTUM, check_optimizer
from sft_tilt.lm.model import forward, per_token_losses
from sft_tilt.lm.sharding import constrain_params, replicated
from sft_tilt.lm.supervised_loss import supervised_token_losses
from sft_tilt.methods.registry import MethodConfig, method_names
from sft_tilt.methods.weighting import dynamic_tau, kl_to_reference, l2_penalty, token_weights, topk_entropy, weighted_loss

__all__ = ["MethodConfig", "method_names", "lora_config", "make_objective", "init_trainable", "make_optimizer",
           "make_train_step", "full_params"]


def lora_config(method: MethodConfig) -> LoraConfig:
    """The adapters of a ``trainable="lora"`` method, from its hyper-parameters ``rank``, ``alpha``, ``targets``."""
    hp = method.hp
    return LoraConfig(rank=hp["rank"], alpha=hp["alpha"], targets=tuple(hp["targets"]))


def full_params(method: MethodConfig, trainable, frozen):
    """The model parameters a method's trainable state stands for (base + merged adapters for LoRA)."""
    if method.spec.trainable == "lora":
        return merge_lora(frozen["base"], trainable, lora_config(method))
    return trainable


def init_trainable(method: MethodConfig, params0, key: jax.Array):
    """``(trainable, frozen)``: what the optimiser updates, and the constants the objective reads
    (``base`` for adapters, ``params0`` for an L2 penalty or a KL anchor)."""
    if method.spec.trainable == "lora":
        return init_lora(params0, lora_config(method), key), {"base": params0}
    trainable = jax.tree_util.tree_map(jnp.array, params0)  # a copy: the train step donates its buffers
    if method.spec.penalty is not None or method.spec.anchor is not None:
        return trainable, {"params0": params0}
    return trainable, {}


def make_objective(method: MethodConfig, model_config, capacity: int | None = None):
    """``objective(trainable, frozen, batch) -> (loss, aux)``; ``batch`` has ``tokens`` ``[B, T]``,
    ``loss_mask`` ``[B, T]`` and (methods needing initial losses) ``sequence_weights`` ``[B]``; ``aux`` has the
    per-token losses ``[B, T-1]``, their mask and the batch's dynamic temperature (the weighting's median rules).

    With ``capacity`` (at least the batch's number of target tokens, ``sft_tilt.lm.supervised_loss.supervised_capacity``)
    the losses are computed at the target positions only; without, from the logits at every position."""
    weighting = method.weighting()
    mu = method.l2_coefficient
    beta = method.kl_coefficient
    # EAFT's entropies and the KL anchor read the whole predictive distribution at each target: the full logits
    needs_logits = weighting.needs_entropies or beta is not None

    def token_losses(params, batch):
        if capacity is None:
            return per_token_losses(params, model_config, batch["tokens"], batch["loss_mask"])
        return supervised_token_losses(params, model_config, batch["tokens"], batch["loss_mask"], capacity)

    def objective(trainable, frozen, batch):
        params = full_params(method, trainable, frozen)
        mask = batch["loss_mask"][:, 1:].astype(jnp.float32)
        entropies = anchor = None
        if needs_logits:
            logp = jax.nn.log_softmax(forward(params, model_config, batch["tokens"])[:, :-1].astype(jnp.float32), axis=-1)
            targets = batch["tokens"][:, 1:]
            losses = jnp.where(mask != 0, -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0] * mask, 0.0)
            if weighting.needs_entropies:
                entropies = topk_entropy(logp, weighting.eaft_k)
            if beta is not None:
                ref = jax.nn.log_softmax(forward(frozen["params0"], model_config, batch["tokens"])[:, :-1].astype(jnp.float32), axis=-1)
                anchor = beta * kl_to_reference(logp, ref, mask)
        else:
            losses = token_losses(params, batch)
        w = token_weights(weighting, losses, mask, batch.get("sequence_weights"), entropies)
        loss = weighted_loss(losses, mask, w)
        if mu is not None:
            loss = loss + l2_penalty(trainable, frozen["params0"], mu)
        if anchor is not None:
            loss = loss + anchor
        detached = jax.lax.stop_gradient(losses)
        aux = {"losses": detached, "mask": mask, "tau": dynamic_tau(detached, mask, weighting.median, weighting.empty_sequences)}
        return loss, aux

    return objective


def make_optimizer(learning_rate: float, name: str = "adam") -> optax.GradientTransformation:
    """The optimiser ``name`` (:data:`sft_tilt.harness.optimizers.OPTIMIZERS`) with the learning rate held in the
    optimiser state (``optax.inject_hyperparams``) so one compiled step serves every learning rate.

    ``"adam"``: ``optax.adam`` (beta = (0.9, 0.999), eps = 1e-8, no weight decay); ``"sgd"``: ``optax.sgd``,
    ``theta <- theta - eta g``; ``"sgd-momentum"``: ``optax.sgd`` with heavy-ball momentum
    ``mu = SGD_MOMENTUM``, ``m <- mu m + g``, ``theta <- theta - eta m`` (the formulas are in
    :mod:`sft_tilt.harness.optimizers`)."""
    check_optimizer(name, "name")
    if not (learning_rate > 0):
        raise ValueError(f"learning_rate: must be > 0, got {learning_rate!r}")
    rate = jnp.asarray(learning_rate, jnp.float32)
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=rate)
    if name == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=rate)
    return optax.inject_hyperparams(optax.sgd, static_args=("momentum",))(learning_rate=rate, momentum=SGD_MOMENTUM)


_STEPS: dict = {}


def make_train_step(method: MethodConfig, model_config, optimizer_name: str = "adam", mesh=None,
                    capacity: int | None = None, check_finite: bool = False):
    """Jitted ``step(trainable, opt_state, frozen, batch) -> (trainable, opt_state, loss, aux)``.

    Compiled once per (method with its registry entry, model, optimiser, mesh, capacity) and reused for every
    learning rate and seed. ``mesh``: None (one device, as placed by the caller) or a ``data x model`` mesh of
    :mod:`sft_tilt.lm.sharding`; then the caller places the state with ``place_params`` and the batch with
    ``place_batch``, and the step pins gradients, parameters and optimiser state to that layout (fully-sharded
    over ``model``, batch over ``data``) and returns the loss and ``aux`` replicated. With ``capacity`` the
    objective projects to the vocabulary only at target tokens (:func:`make_objective`), and a batch with more
    targets than ``capacity`` is refused (``ValueError``) before it reaches the compiled step.

    ``step.optimizer`` is the one optimiser the step updates with (:func:`make_optimizer` at learning rate 1): a run
    initialises its state with ``step.optimizer.init`` and sets each step's learning rate in
    ``opt_state.hyperparams["learning_rate"]``. With
    ``check_finite``, ``aux["finite"]`` says whether every updated trainable parameter is finite, computed inside the
    compiled step (the caller needs no second pass over the parameters); without it the step is unchanged.
    """
    key = (method, method.spec, model_config, optimizer_name, mesh, capacity, check_finite)
    if key not in _STEPS:
        objective = make_objective(method, model_config, capacity)
        optimizer = make_optimizer(1.0, optimizer_name)  # the real learning rate lives in opt_state

        @partial(jax.jit, donate_argnums=(0, 1))
        def step(trainable, opt_state, frozen, batch):
            (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(trainable, frozen, batch)
            if mesh is not None:
                grads = constrain_params(grads, mesh)
            updates, opt_state = optimizer.update(grads, opt_state, trainable)
            trainable = optax.apply_updates(trainable, updates)
            if check_finite:
                aux = dict(aux, finite=jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                                                          for x in jax.tree_util.tree_leaves(trainable)])))
            if mesh is not None:
                trainable, opt_state = constrain_params(trainable, mesh), constrain_params(opt_state, mesh)
                loss, aux = jax.lax.with_sharding_constraint((loss, aux), replicated(mesh))
            return trainable, opt_state, loss, aux

        if capacity is not None:
            jitted = step

            def step(trainable, opt_state, frozen, batch):
                n = int(np.count_nonzero(np.asarray(batch["loss_mask"])[:, 1:]))
                if n > capacity:
                    raise ValueError(f"batch: {n} target tokens, more than the step's capacity={capacity}")
                return jitted(trainable, opt_state, frozen, batch)

        step.optimizer = optimizer
        _STEPS[key] = step
    return _STEPS[key]
