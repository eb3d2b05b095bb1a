"""Fine-tuning methods, one flag each, and their training objectives.

Every method minimises a reweighted token cross-entropy on the response tokens of a batch
(``sims.weighting``, the same functions the synthetic simulator uses):

    L(theta) = (1/N) sum_i w_i l_i(theta)  [+ mu/2 ||theta - theta_0||^2 for l2]

with ``l_i = -log q_theta(y_i | context_i)`` (``sims.lm.model.per_token_losses``) and detached weights

- ``sft``:  ``w = 1``
- ``talr``: ``w = max(p^(1/tau), floor)``, ``tau`` = batch median of per-sequence mean loss (dynamic) or fixed
- ``dft``:  ``w = p``
- ``flow``: ``w = exp(-f_b(theta_0)/tau_0)`` static per-sequence weights from the initial model
- ``l2``:   SFT plus the L2 pull toward the initial weights
- ``lora``: SFT on low-rank adapters ``W + (alpha/r) A B`` with the base frozen (:mod:`sims.harness.lora`)
- ``averaging``: SFT, then evaluations of ``(1 - a) theta_0 + a theta_SFT`` over mixing weights ``a``
  (the run's ``averaging_alphas``; no training of its own)

The paper's notes (shared/paper.md 4.2-4.3) support: dynamic tau = median over sequences of the mean
supervised-token loss (per-token median would be ~0 since most target tokens have p ~ 1), weights under
stop-gradient, a floor on the raw weight ``p^(1/tau)`` (0.01 in the only readable implementation), no
renormalisation (the unnormalised DiSC variant; ``normalization="mean"`` is offered).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

from sims.harness.lora import LoraConfig, init_lora, merge_lora
from sims.lm.model import per_token_losses
from sims.weighting import LossWeighting, dynamic_tau, l2_penalty, token_weights, weighted_loss

__all__ = ["METHOD_NAMES", "MethodConfig", "make_objective", "init_trainable", "make_optimizer", "make_train_step", "full_params"]

METHOD_NAMES = ("sft", "talr", "dft", "flow", "l2", "lora", "averaging")


@dataclass(frozen=True)
class MethodConfig:
    """One method and its hyperparameters (only those of the chosen method are used)."""

    name: str = "sft"
    talr_tau_mode: str = "dynamic"
    talr_tau: float = 1.0
    talr_floor: float = 0.01
    normalization: str = "none"
    l2_mu: float = 1.0
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("wq", "wv")

    def __post_init__(self):
        if self.name not in METHOD_NAMES:
            raise ValueError(f"name: {self.name!r} is not one of {METHOD_NAMES}")
        if not (isinstance(self.l2_mu, (int, float)) and self.l2_mu >= 0):
            raise ValueError(f"l2_mu: must be >= 0, got {self.l2_mu!r}")
        self.weighting()  # validates the TALR fields
        if self.name == "lora":
            self.lora()

    @property
    def trains_as(self) -> str:
        """The weighting trained with (``averaging`` trains as SFT)."""
        return self.name if self.name in ("sft", "talr", "dft", "flow") else "sft"

    def weighting(self) -> LossWeighting:
        return LossWeighting(
            method=self.trains_as,
            tau_mode=self.talr_tau_mode,
            tau=self.talr_tau,
            floor=self.talr_floor,
            normalization=self.normalization,
        )

    def lora(self) -> LoraConfig:
        return LoraConfig(rank=self.lora_rank, alpha=self.lora_alpha, targets=tuple(self.lora_targets))

    def canonical(self) -> dict:
        """The fields that matter for this method (so irrelevant defaults don't change a run's hash)."""
        out = {"name": self.name}
        if self.name == "talr":
            out.update(tau_mode=self.talr_tau_mode, floor=self.talr_floor, normalization=self.normalization)
            if self.talr_tau_mode == "fixed":
                out["tau"] = self.talr_tau
        elif self.name in ("dft", "flow") and self.normalization != "none":
            out["normalization"] = self.normalization
        elif self.name == "l2":
            out["mu"] = self.l2_mu
        elif self.name == "lora":
            out.update(rank=self.lora_rank, alpha=self.lora_alpha, targets=list(self.lora_targets))
        return out


def full_params(method: MethodConfig, trainable, frozen):
    """The model parameters a method's trainable state stands for (base + merged adapters for LoRA)."""
    if method.name == "lora":
        return merge_lora(frozen["base"], trainable, method.lora())
    return trainable


def init_trainable(method: MethodConfig, params0, key: jax.Array):
    """``(trainable, frozen)``: what the optimiser updates, and the constants the objective reads."""
    if method.name == "lora":
        return init_lora(params0, method.lora(), key), {"base": params0}
    trainable = jax.tree_util.tree_map(jnp.array, params0)  # a copy: the train step donates its buffers
    if method.name == "l2":
        return trainable, {"params0": params0}
    return trainable, {}


def make_objective(method: MethodConfig, model_config):
    """``objective(trainable, frozen, batch) -> (loss, aux)``; ``batch`` has ``tokens`` ``[B, T]``,
    ``loss_mask`` ``[B, T]`` and (FLOW) ``sequence_weights`` ``[B]``; ``aux`` has the per-token losses
    ``[B, T-1]``, their mask and the batch's dynamic tau."""
    weighting = method.weighting()

    def objective(trainable, frozen, batch):
        params = full_params(method, trainable, frozen)
        mask = batch["loss_mask"][:, 1:].astype(jnp.float32)
        losses = per_token_losses(params, model_config, batch["tokens"], batch["loss_mask"])
        w = token_weights(weighting, losses, mask, batch.get("sequence_weights"))
        loss = weighted_loss(losses, mask, w)
        if method.name == "l2":
            loss = loss + l2_penalty(trainable, frozen["params0"], method.l2_mu)
        aux = {"losses": jax.lax.stop_gradient(losses), "mask": mask, "tau": dynamic_tau(jax.lax.stop_gradient(losses), mask)}
        return loss, aux

    return objective


def make_optimizer(learning_rate: float, name: str = "adam") -> optax.GradientTransformation:
    """Adam (default; beta = (0.9, 0.999), no weight decay) or plain SGD, with the learning rate held in the
    optimiser state (``optax.inject_hyperparams``) so one compiled step serves every learning rate."""
    if not (learning_rate > 0):
        raise ValueError(f"learning_rate: must be > 0, got {learning_rate!r}")
    lr = jnp.asarray(learning_rate, jnp.float32)
    if name == "adam":
        return optax.inject_hyperparams(optax.adam)(learning_rate=lr)
    if name == "sgd":
        return optax.inject_hyperparams(optax.sgd)(learning_rate=lr)
    raise ValueError(f"name: optimizer {name!r} is not 'adam' or 'sgd'")


_STEPS: dict = {}


def make_train_step(method: MethodConfig, model_config, optimizer_name: str = "adam"):
    """Jitted ``step(trainable, opt_state, frozen, batch) -> (trainable, opt_state, loss, aux)``.

    Compiled once per (method, model, optimiser) and reused for every learning rate and seed.
    """
    key = (method, model_config, optimizer_name)
    if key not in _STEPS:
        objective = make_objective(method, model_config)
        optimizer = make_optimizer(1.0, optimizer_name)  # the real learning rate lives in opt_state

        @partial(jax.jit, donate_argnums=(0, 1))
        def step(trainable, opt_state, frozen, batch):
            (loss, aux), grads = jax.value_and_grad(objective, has_aux=True)(trainable, frozen, batch)
            updates, opt_state = optimizer.update(grads, opt_state, trainable)
            return optax.apply_updates(trainable, updates), opt_state, loss, aux

        _STEPS[key] = step
    return _STEPS[key]
