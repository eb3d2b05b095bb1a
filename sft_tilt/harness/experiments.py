"""What the harness's sweep computes for each real-LM experiment, then the experiment's tables read from it.

Each function here trains the runs of its experiment that are not stored yet (:func:`sft_tilt.harness.runs.run_many`;
finished runs are read, never recomputed) or measures the base model (:mod:`sft_tilt.harness.base_model_analyses`,
:mod:`sft_tilt.harness.optimizer_step`), and returns the table of :mod:`sft_tilt.harness.experiment_results`, which reads only. This is the computing side of
``python -m sft_tilt.harness sweep`` and ``report``; the claims and figures read the tables through
:mod:`sft_tilt.harness.experiment_results` and never import this module or the trainer.

The early points of a learning-rate grid (``Preset.early_until``) are their own experiment
(``sweep --experiment early``, :mod:`sft_tilt.harness.early_points`): a table computed here uses those that are
stored and, where there are none yet, the chord from the base model to the first evaluation point.
"""

from __future__ import annotations

from sft_tilt.harness import experiment_results as tables
from sft_tilt.harness.base_model_analyses import single_step, target_token_statistics
from sft_tilt.harness.experiment_results import checkpoint_token_statistics, summarise_run
from sft_tilt.harness.experiment_runs import method_config, method_configs, sft_config, sft_configs, token_configs
from sft_tilt.harness.optimizer_step import optimizer_step
from sft_tilt.harness.presets import Preset
from sft_tilt.harness.runs import run_many

# the run configurations and the run summary beside the computations, for the command line
__all__ = ["lr_tradeoff", "method_comparison", "token_analysis", "single_step_theory", "matched_gain",
           "safe_learning_rate", "method_front", "run_all", "sft_config", "method_config", "sft_configs",
           "method_configs", "token_configs", "summarise_run", "checkpoint_token_statistics"]


def lr_tradeoff(preset: Preset, progress: bool = True, include_diverged: bool = False) -> list[dict]:
    """Experiment 1 computed: the learning-rate grid's runs, then :func:`sft_tilt.harness.experiment_results.lr_tradeoff`."""
    run_many(sft_configs(preset), progress=progress, desc="exp1 learning-rate grid")
    return tables.lr_tradeoff(preset, include_diverged, require_early=False)


def method_comparison(preset: Preset, progress: bool = True, include_diverged: bool = False) -> list[dict]:
    """Experiment 2 computed: the comparison's runs, then :func:`sft_tilt.harness.experiment_results.method_comparison`."""
    run_many(method_configs(preset), progress=progress, desc="exp2 methods")
    return tables.method_comparison(preset, include_diverged)


def token_analysis(preset: Preset, progress: bool = True) -> dict:
    """Experiment 3 computed: the base model's target-token statistics and the runs whose token statistics it reads,
    then :func:`sft_tilt.harness.experiment_results.token_analysis`."""
    target_token_statistics(preset, progress)
    run_many(token_configs(preset), progress=progress, desc="exp3 token statistics")
    return tables.token_analysis(preset)


def single_step_theory(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4a computed on the base model (:func:`sft_tilt.harness.base_model_analyses.single_step`)."""
    single_step(preset, progress)
    return tables.single_step_theory(preset)


def matched_gain(preset: Preset, progress: bool = True, fractions=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """Experiment 4b from the computed learning-rate grid (:func:`sft_tilt.harness.experiment_results.matched_gain`)."""
    run_many(sft_configs(preset), progress=progress, desc="exp1 learning-rate grid")
    return tables.matched_gain(preset, fractions, require_early=False)


def safe_learning_rate(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4c from the computed grid and target-token statistics
    (:func:`sft_tilt.harness.experiment_results.safe_learning_rate`)."""
    target_token_statistics(preset, progress)
    run_many(sft_configs(preset), progress=progress, desc="exp1 learning-rate grid")
    return tables.safe_learning_rate(preset, require_early=False)


def method_front(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4d from the computed grid and comparison (:func:`sft_tilt.harness.experiment_results.method_front`)."""
    run_many(list(dict.fromkeys(sft_configs(preset) + method_configs(preset))), progress=progress, desc="exp1-2 runs")
    return tables.method_front(preset, require_early=False)


def run_all(preset: Preset, progress: bool = True) -> dict:
    """Every experiment computed (runs shared between experiments once), then every table
    (:func:`sft_tilt.harness.experiment_results.read_all`)."""
    target_token_statistics(preset, progress)
    single_step(preset, progress)
    optimizer_step(preset, progress)
    configs = list(dict.fromkeys(sft_configs(preset) + method_configs(preset) + token_configs(preset)))
    run_many(configs, progress=progress, desc="every experiment's runs")
    return tables.read_all(preset, require_early=False)
