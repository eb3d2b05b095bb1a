"""Softmax models over a world's contexts: free logits per context, or logits sharing one parameter matrix.

Both are the same family::

    logits(c) = b(c) + f(c) @ W,        q_W(. | c) = softmax(logits(c)),       W in R^{d x V}, W0 = 0,

with a fixed bias ``b(c) = log q0(. | c)`` (so the initial model is the world's ``q0`` for any features) and
fixed context features ``f(c) in R^d``.

* **Free logits** (:func:`free_logit_model`): ``f(c) = e_c`` (``d = C``), so each context owns a row of ``W``.
  A full-batch gradient step of size ``eta`` on the token-mean CE of ``N`` domain tokens changes context ``c``'s
  logits by ``eta (n_c / N) (P2_c - q_c)``: exactly an exponential tilt ``q_c exp(learning_rate s) / Z`` with direction
  ``s = P2_c - q_c`` and ``learning_rate = eta n_c / N``. Nothing leaks between contexts.
* **Shared parameters** (:func:`shared_softmax_model`): ``f(c) = sqrt(coupling) g + sqrt(1 - coupling) u_c``
  with a common unit vector ``g`` and unit vectors ``u_c`` (orthonormal when ``d >= C``); so
  ``<f(c), f(c')> = coupling`` exactly for ``c != c'`` when ``d >= C + 1`` (approximately otherwise). A step
  on domain contexts moves general contexts' logits by ``<f(c_general), f(c_domain)>`` times the domain
  update: the leakage this produces is measured by the experiments, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.synthetic.worlds import World

__all__ = ["MODEL_KINDS", "ModelConfig", "SoftmaxModel", "build_model", "free_logit_model", "shared_softmax_model",
           "init_params", "context_log_probs", "all_log_probs", "token_losses"]

MODEL_KINDS = ("free", "shared")


@dataclass(frozen=True)
class ModelConfig:
    """``kind``: ``"free"`` or ``"shared"``; ``dim`` and ``coupling`` (in ``[0, 1]``) only for ``"shared"``;
    ``seed`` draws the shared model's features."""

    kind: str = "free"
    dim: int = 64
    coupling: float = 0.3
    seed: int = 0

    def __post_init__(self):
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind: {self.kind!r} is not one of {MODEL_KINDS}")
        if not (isinstance(self.dim, int) and self.dim >= 1):
            raise ValueError(f"dim: must be an integer >= 1, got {self.dim!r}")
        if not (0.0 <= self.coupling <= 1.0):
            raise ValueError(f"coupling: must lie in [0, 1], got {self.coupling!r}")


class SoftmaxModel(NamedTuple):
    """Fixed parts of the model (a pytree): ``bias`` ``[C, V]`` and ``features`` ``[C, d]``."""

    bias: jax.Array
    features: jax.Array


def free_logit_model(world: World) -> SoftmaxModel:
    """Free logits per context: ``features = I_C``."""
    C = world.log_q0.shape[0]
    return SoftmaxModel(bias=world.log_q0, features=jnp.eye(C, dtype=world.log_q0.dtype))


def shared_softmax_model(world: World, dim: int, coupling: float, key) -> SoftmaxModel:
    """Shared ``W`` with features ``sqrt(coupling) g + sqrt(1 - coupling) u_c`` (module docstring)."""
    if not (isinstance(dim, int) and dim >= 1):
        raise ValueError(f"dim: must be an integer >= 1, got {dim!r}")
    if not (0.0 <= coupling <= 1.0):
        raise ValueError(f"coupling: must lie in [0, 1], got {coupling!r}")
    C = world.log_q0.shape[0]
    k1, k2 = jax.random.split(key)
    raw = jax.random.normal(k1, (dim, max(C + 1, dim)), dtype=world.log_q0.dtype)
    if dim >= C + 1:
        basis, _ = jnp.linalg.qr(raw[:, : C + 1])  # orthonormal columns: g and u_c
        g, u = basis[:, 0], basis[:, 1:].T
    else:
        g = raw[:, 0] / jnp.linalg.norm(raw[:, 0])
        u = jax.random.normal(k2, (C, dim), dtype=world.log_q0.dtype)
        u = u / jnp.linalg.norm(u, axis=1, keepdims=True)
    features = jnp.sqrt(coupling) * g[None, :] + jnp.sqrt(1.0 - coupling) * u
    return SoftmaxModel(bias=world.log_q0, features=features)


def build_model(world: World, config: ModelConfig) -> SoftmaxModel:
    if config.kind == "free":
        return free_logit_model(world)
    return shared_softmax_model(world, config.dim, config.coupling, jax.random.key(config.seed))


def init_params(model: SoftmaxModel) -> jax.Array:
    """``W0 = 0`` (``[d, V]``): the initial model is ``q0``."""
    return jnp.zeros((model.features.shape[1], model.bias.shape[1]), dtype=model.bias.dtype)


def context_log_probs(model: SoftmaxModel, W, contexts) -> jax.Array:
    """``log q_W(. | c)`` for integer ``contexts`` of any shape; returns ``contexts.shape + (V,)``."""
    logits = model.bias[contexts] + model.features[contexts] @ W
    return jax.nn.log_softmax(logits, axis=-1)


def all_log_probs(model: SoftmaxModel, W) -> jax.Array:
    """``log q_W(. | c)`` for every context, ``[C, V]``."""
    return jax.nn.log_softmax(model.bias + model.features @ W, axis=-1)


def token_losses(model: SoftmaxModel, W, contexts, targets) -> jax.Array:
    """Per-token NLL ``-log q_W(y | c)`` ``[N, T]``."""
    logp = context_log_probs(model, W, contexts)
    return -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
