"""The optimisers a real-LM run or base-model analysis can step with, by name, and the one check of a name.

* ``"adam"``: Adam, ``beta = (0.9, 0.999)``, ``eps = 1e-8``, no weight decay (every committed run). Each coordinate's
  update is ``-eta m_hat / (sqrt(v_hat) + eps)`` with bias-corrected moment estimates, so the first step from a fresh
  state is ``-eta g / (|g| + eps)``, about ``-eta sign(g)``: a constant scale of the loss, or a reweighting that only
  shrinks the gradient, does not shrink the step.
* ``"sgd"``: plain gradient descent, ``theta <- theta - eta g``: the step is the gradient's size times ``eta``, the
  single-step theory's setting.
* ``"sgd-momentum"``: heavy-ball momentum :data:`SGD_MOMENTUM` (optax's ``trace``, not Nesterov),
  ``m <- mu m + g``, ``theta <- theta - eta m``; from a fresh state (``m = 0``) its first step is plain SGD's, later steps
  accumulate up to ``1 / (1 - mu)`` times a constant gradient.

The names live here, apart from :func:`sft_tilt.harness.methods.make_optimizer`, so configurations validate a name
without importing JAX.
"""

from __future__ import annotations

__all__ = ["OPTIMIZERS", "SGD_MOMENTUM", "check_optimizer"]

#: Every optimiser name a run or analysis accepts; the first is the default (the committed runs' optimiser).
OPTIMIZERS = ("adam", "sgd", "sgd-momentum")

#: The momentum coefficient ``mu`` of ``"sgd-momentum"`` (the usual 0.9).
SGD_MOMENTUM = 0.9


def check_optimizer(name, argument: str = "optimizer") -> str:
    """``name`` if it is one of :data:`OPTIMIZERS`, else a ValueError naming ``argument`` and the choices."""
    if not isinstance(name, str) or name not in OPTIMIZERS:
        raise ValueError(f"{argument}: must be one of {OPTIMIZERS}, got {name!r}")
    return name
