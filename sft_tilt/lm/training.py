"""One optimiser step of supervised fine-tuning: loss and gradient, gradient accumulation, data parallelism.

A *loss function* is ``loss_fn(params, batch) -> (loss, aux)`` with ``batch = {"tokens": int32 [B, T],
"loss_mask": float32 [B, T]}`` (plus any extra per-example arrays, which are split along B the same way) and
``aux`` a dict of scalars. ``aux["weight"]``, when present, is the microbatch's weight under gradient
accumulation; the step combines ``k = accum_steps`` microbatches as

    L = sum_i w_i L_i / sum_i w_i,        grad L = sum_i w_i grad L_i / sum_i w_i       (w_i = 1 if absent)

so a loss that is a mean over a microbatch's target tokens, with ``weight`` = its token count, gives exactly
the full-batch token mean (the normalisation pitfall of peers' accumulation code; ``masked_mean_nll`` does this).
Microbatch i takes rows ``i, i + k, i + 2k, ...`` so every microbatch stays spread over all devices.

Data parallelism: params and optimiser state are replicated, the batch is sharded along B over a 1-D device mesh
with axis ``"data"`` (``jax.sharding.NamedSharding``); XLA inserts the gradient all-reduce. On one CPU this is a
no-op; on several GPUs the same code runs data-parallel. Master weights stay float32; with ``compute_dtype``
(e.g. bfloat16) the loss sees a cast copy and gradients flow back to the float32 weights.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.model import per_token_losses

__all__ = [
    "default_optimizer",
    "masked_mean_nll",
    "data_mesh",
    "replicate",
    "shard_batch",
    "accumulated_value_and_grad",
    "make_train_step",
]

LossFn = Callable[[Any, dict], tuple[jax.Array, dict]]


def default_optimizer(learning_rate: float = 1e-5, weight_decay: float = 0.0, b1: float = 0.9, b2: float = 0.999,
                      eps: float = 1e-8, max_grad_norm: float | None = 1.0) -> optax.GradientTransformation:
    """AdamW (``optax.adamw``), preceded by global-norm clipping at ``max_grad_norm`` unless it is None."""
    if not (learning_rate > 0):
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    adamw = optax.adamw(learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay)
    if max_grad_norm is None:
        return adamw
    if not (max_grad_norm > 0):
        raise ValueError(f"max_grad_norm must be positive or None, got {max_grad_norm!r}")
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), adamw)


def masked_mean_nll(config: ModelConfig) -> LossFn:
    """The plain SFT loss: mean negative log-likelihood over target tokens,

        L = sum_{b,t} m[b,t] * (-log p(x[b,t] | x[b,<t])) / sum_{b,t} m[b,t]        (t >= 1, m = loss_mask)

    with aux ``{"weight": sum m}`` so accumulation reproduces the full-batch mean (and the step's
    ``metrics["weight"]`` is the number of target tokens in the whole batch).
    """

    def loss_fn(params, batch):
        losses = per_token_losses(params, config, batch["tokens"], batch["loss_mask"])
        n = jnp.sum(batch["loss_mask"][:, 1:].astype(jnp.float32))
        loss = jnp.sum(losses) / jnp.maximum(n, 1.0)
        return loss, {"weight": n}

    return loss_fn


def data_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all of ``jax.devices()``)."""
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("devices must be non-empty")
    return Mesh(np.array(devices), ("data",))


def replicate(tree, mesh: Mesh):
    """Place every leaf of ``tree`` on all devices of ``mesh`` (replicated)."""
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
    """Split every array of ``batch`` along its leading (batch) axis over the mesh's ``"data"`` axis."""
    n = mesh.shape["data"]
    for key, value in batch.items():
        if np.shape(value)[0] % n:
            raise ValueError(f"batch[{key!r}] has leading size {np.shape(value)[0]}, not divisible by {n} devices")
    return jax.device_put(batch, NamedSharding(mesh, PartitionSpec("data")))


def _split_microbatches(batch: dict, accum_steps: int) -> dict:
    """[B, ...] -> [k, B/k, ...] with microbatch i = rows i, i+k, i+2k, ..."""

    def split(x):
        return jnp.swapaxes(x.reshape(x.shape[0] // accum_steps, accum_steps, *x.shape[1:]), 0, 1)

    return {key: split(value) for key, value in batch.items()}


def accumulated_value_and_grad(loss_fn: LossFn, params, batch: dict, accum_steps: int = 1, compute_dtype=None):
    """Weighted mean loss, gradient and aux over ``accum_steps`` microbatches (formula in the module docstring).

    Returns ``(loss, grads, aux)`` with ``aux["weight"] = sum_i w_i`` and the other aux entries weighted means
    like the loss; gradients are float32 (the dtype of the master weights) whatever
    ``compute_dtype`` is. Not jitted itself; ``make_train_step`` jits it.
    """

    def cast_loss(p, b):
        if compute_dtype is not None:
            p = jax.tree_util.tree_map(lambda a: a.astype(compute_dtype), p)
        loss, aux = loss_fn(p, b)
        aux = dict(aux)
        weight = jnp.asarray(aux.pop("weight", 1.0), jnp.float32)
        return loss.astype(jnp.float32), (aux, weight)

    grad_fn = jax.value_and_grad(cast_loss, has_aux=True)
    if accum_steps == 1:
        (loss, (aux, weight)), grads = grad_fn(params, batch)
        return loss, grads, {**aux, "weight": weight}

    micro = _split_microbatches(batch, accum_steps)
    zeros = jax.tree_util.tree_map(lambda a: jnp.zeros(a.shape, jnp.float32), params)
    first = jax.tree_util.tree_map(lambda a: a[0], micro)
    aux_shape = jax.eval_shape(lambda p, b: cast_loss(p, b)[1][0], params, first)
    aux_zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, jnp.float32), aux_shape)

    def body(carry, mb):
        g_sum, l_sum, a_sum, w_sum = carry
        (loss, (aux, w)), grads = grad_fn(params, mb)
        g_sum = jax.tree_util.tree_map(lambda s, g: s + w * g.astype(jnp.float32), g_sum, grads)
        a_sum = jax.tree_util.tree_map(lambda s, a: s + w * a.astype(jnp.float32), a_sum, aux)
        return (g_sum, l_sum + w * loss, a_sum, w_sum + w), None

    (g_sum, l_sum, a_sum, w_sum), _ = jax.lax.scan(body, (zeros, jnp.float32(0), aux_zeros, jnp.float32(0)), micro)
    w_total = w_sum
    w_sum = jnp.where(w_sum == 0, 1.0, w_sum)
    grads = jax.tree_util.tree_map(lambda g: g / w_sum, g_sum)
    aux = jax.tree_util.tree_map(lambda a: a / w_sum, a_sum)
    return l_sum / w_sum, grads, {**aux, "weight": w_total}


def make_train_step(
    config: ModelConfig,
    optimizer: optax.GradientTransformation | None = None,
    loss_fn: LossFn | None = None,
    accum_steps: int = 1,
    mesh: Mesh | None = None,
    compute_dtype=None,
    donate: bool = False,
):
    """Build ``step(params, opt_state, batch) -> (params, opt_state, metrics)``, jitted over a data-parallel mesh.

    Args:
      config: the model config (only used for the default loss and for checking the batch length).
      optimizer: an optax transformation; default ``default_optimizer()`` (AdamW, lr 1e-5, clip 1.0).
      loss_fn: ``(params, batch) -> (loss, aux)``; default ``masked_mean_nll(config)``.
      accum_steps: microbatches per step (B must be divisible by ``accum_steps * n_devices``).
      mesh: device mesh with a ``"data"`` axis; default all devices.
      compute_dtype: dtype the loss sees the params in (default: as stored, float32).
      donate: let XLA reuse the input params/opt_state buffers (saves memory; the arrays passed in become
        invalid, so keep no other reference to them, e.g. the initial weights for an L2 pull).

    ``metrics`` = ``{"loss", "grad_norm", "weight", **aux}``: ``weight`` is the sum of the microbatch weights
    (target tokens for ``masked_mean_nll``), other aux entries are averaged like the loss. Initialise the optimiser
    state with ``optimizer.init(params)``; the returned ``step.optimizer``, ``step.mesh`` are those in use.
    """
    if isinstance(accum_steps, bool) or not isinstance(accum_steps, int) or accum_steps < 1:
        raise ValueError(f"accum_steps must be a positive int, got {accum_steps!r}")
    optimizer = default_optimizer() if optimizer is None else optimizer
    loss_fn = masked_mean_nll(config) if loss_fn is None else loss_fn
    mesh = data_mesh() if mesh is None else mesh
    n_devices = mesh.shape["data"]
    replicated = NamedSharding(mesh, PartitionSpec())
    sharded = NamedSharding(mesh, PartitionSpec("data"))

    def step_fn(params, opt_state, batch):
        loss, grads, aux = accumulated_value_and_grad(loss_fn, params, batch, accum_steps, compute_dtype)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        return params, opt_state, metrics

    jitted = jax.jit(step_fn, in_shardings=(replicated, replicated, sharded),
                     out_shardings=(replicated, replicated, replicated),
                     donate_argnums=(0, 1) if donate else ())

    def step(params, opt_state, batch):
        if "tokens" not in batch or "loss_mask" not in batch:
            raise ValueError(f"batch must hold 'tokens' and 'loss_mask', got keys {sorted(batch)}")
        tokens = batch["tokens"]
        if np.ndim(tokens) != 2:
            raise ValueError(f"batch['tokens'] must be [B, T], got shape {np.shape(tokens)}")
        B, T = np.shape(tokens)
        if np.shape(batch["loss_mask"]) != (B, T):
            raise ValueError(f"batch['loss_mask'] must have shape {(B, T)}, got {np.shape(batch['loss_mask'])}")
        if T > config.max_seq_len:
            raise ValueError(f"batch['tokens'] has length {T} > max_seq_len={config.max_seq_len}")
        if B % (accum_steps * n_devices):
            raise ValueError(
                f"batch size {B} must be divisible by accum_steps ({accum_steps}) x devices ({n_devices})"
            )
        return jitted(params, opt_state, batch)

    step.jitted = jitted
    step.optimizer = optimizer
    step.mesh = mesh
    return step
