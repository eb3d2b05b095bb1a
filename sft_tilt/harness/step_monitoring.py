"""The step monitor in the harness's own runs: ``RunConfig(monitor_every=N)`` measures every N-th optimiser step
with :func:`sft_tilt.monitor.measure_step` and stores the numbers in that step's record (``train_steps[i]["monitor"]``).

The probe is the first row of every general set of the session (the model's own responses, documentation prose,
code), right-padded to the longest; the domain batch is the step's training batch; the learning rate is the step's
(after the schedule). Measuring reads the parameters and never changes the step, so a monitored run trains exactly as
the unmonitored one; it has a key of its own (its records hold more), and ``monitor_every = 0`` (the default) leaves
the key and every number of a run as they were.
"""

from __future__ import annotations

import functools

import numpy as np

from sft_tilt.harness.methods import full_params
from sft_tilt.lm.model import forward
from sft_tilt.monitor import measure_step

__all__ = ["general_probe", "logits_function", "monitor_step"]


def general_probe(session) -> dict:
    """``{"tokens", "loss_mask"}``: the first row of each of ``session.general``'s sets, padded with the session's pad
    token (not scored) to the longest."""
    rows = [(enc.tokens[0], enc.loss_mask[0]) for enc in session.general.values()]
    width = max(len(tokens) for tokens, _ in rows)
    tokens = np.full((len(rows), width), session.pad_id, np.int32)
    mask = np.zeros((len(rows), width), np.float32)
    for i, (t, m) in enumerate(rows):
        tokens[i, : len(t)] = t
        mask[i, : len(m)] = m
    return {"tokens": tokens, "loss_mask": mask}


@functools.lru_cache(maxsize=None)
def logits_function(method, model_config):
    """``logits(trainable, tokens, frozen)`` of a method's trainable state (adapters merged for LoRA); one function
    object per (method, model), so the monitor's passes compile once for every run that shares them."""

    def logits(trainable, tokens, frozen):
        return forward(full_params(method, trainable, frozen), model_config, tokens)

    return logits


def monitor_step(method, model_config, before, after, frozen, probe: dict, batch: dict, learning_rate: float) -> dict:
    """The monitor's numbers (``sft_tilt.monitor.MONITOR_KEYS``) for one step from trainable state ``before`` to
    ``after`` on ``batch`` (the harness's training batch) at ``learning_rate``."""
    domain = {"tokens": batch["tokens"], "loss_mask": batch["loss_mask"]}
    return measure_step(logits_function(method, model_config), before, probe, domain, learning_rate=learning_rate,
                        params_after=after, constants=frozen)
