"""Learning-rate schedules of the harness's runs, as optax schedules (``step -> learning rate``).

``"constant"``: the run's learning rate ``eta`` at every step (``optax.constant_schedule``). ``"linear"``: a linear
warm-up over the first ``w`` steps, then a linear decay towards zero (Hugging Face Trainer's default ``"linear"``
schedule, shifted so that no step has a zero learning rate: the warm-up's last step and the decay's first reach
``eta``),

    eta_k = eta (k + 1) / w                 for 0 <= k < w,
    eta_k = eta (steps - k) / (steps - w)   for w <= k < steps,

so the last step takes ``eta / (steps - w)``. The paper does not state its scheduler.

At a step counted on the host (a Python int, as the harness counts) the value is the float64 expression above,
evaluated in that order: the number every committed run's records hold, whose float32 rounding the optimiser
receives. A traced step (inside ``jax.jit``) gets the two pieces joined at ``w`` by ``optax.join_schedules``, in
the dtype JAX computes in.
"""

from __future__ import annotations

import numpy as np
import optax

__all__ = ["SCHEDULES", "learning_rate_schedule"]

#: Learning-rate schedules: "constant", or "linear" (linear warm-up, then linear decay; module docstring).
SCHEDULES = ("constant", "linear")


def learning_rate_schedule(learning_rate: float, steps: int, warmup_steps: int = 0,
                           schedule: str = "linear") -> optax.Schedule:
    """The optax schedule ``k -> eta_k`` of a run of ``steps`` optimiser steps at learning rate ``learning_rate``
    (module docstring); defined for ``0 <= k < steps``, where the records of a run give every step's value."""
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: must be one of {SCHEDULES}, got {schedule!r}")
    if not (isinstance(learning_rate, (int, float)) and np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(f"learning_rate: must be a finite number > 0, got {learning_rate!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: must be a positive int, got {steps!r}")
    if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or not 0 <= warmup_steps < steps:
        raise ValueError(f"warmup_steps: must be an int in [0, steps={steps}), got {warmup_steps!r}")
    eta = float(learning_rate)
    if schedule == "constant":
        return optax.constant_schedule(eta)

    def warmup(k):
        return eta * (k + 1) / warmup_steps

    def decay(k):
        return eta * (steps - k) / (steps - warmup_steps)

    def linear(k):
        if isinstance(k, (int, np.integer)):  # a step counted on the host: the float64 formula itself
            k = int(k)
            return warmup(k) if k < warmup_steps else decay(k)
        if warmup_steps == 0:
            return decay(k)
        return optax.join_schedules([warmup, lambda j: decay(j + warmup_steps)], [warmup_steps])(k)

    return linear
