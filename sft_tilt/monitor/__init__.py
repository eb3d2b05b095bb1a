"""The single-step theory inside a training loop: what one optimiser step cost a probe of general text, and what the
theory predicted before it.

:func:`measure_step` takes the parameters before and after one optimiser step (of any JAX model given as a logits
function), a probe batch of general text and the step's domain batch, and returns plain numbers a logger takes: the
probe's measured log-loss change, its exact decomposition on the realised tilt, the band the linearised tilt predicts
(Jensen lower, Hoeffding and Bennett upper bounds), whether the step left it, and the domain batch's hard tokens,
dynamic temperature and the theory's safe learning rate. The PyTorch twin for Hugging Face trainers is
``sft_tilt.torch_losses.step_monitor``.
"""

from sft_tilt.monitor.step_monitor import *  # noqa: F401,F403
from sft_tilt.monitor.step_monitor import __all__  # noqa: F401
