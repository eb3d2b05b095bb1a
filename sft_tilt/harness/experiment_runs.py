"""The runs of each real-LM experiment of a preset: their configurations, computed from the preset alone.

1. the learning-rate grid (:func:`sft_configs`): SFT over ``formats`` x ``learning_rate_grid`` x ``seeds``;
2. the method comparison (:func:`method_configs`): SFT and every trained method at its (small, large) learning rates
   x ``seeds``, chain-of-thought;
3. the token statistics (:func:`token_configs`): SFT and the compared TALR at the large comparison learning rate.

A run shared by two experiments (the SFT baseline of the grid and of the comparison) is one configuration, so one run.
Nothing here trains or reads a run: :mod:`sft_tilt.harness.runs` computes them, :mod:`sft_tilt.harness.stored_runs`
reads them.
"""

from __future__ import annotations

from dataclasses import replace

from sft_tilt.harness.presets import Preset
from sft_tilt.harness.run_config import RunConfig
from sft_tilt.methods.registry import get_method

__all__ = ["sft_config", "method_config", "sft_configs", "method_configs", "token_configs"]


def _run(preset: Preset, method: str, learning_rate: float, fmt: str, seed: int, **kw) -> RunConfig:
    return RunConfig(
        model=preset.resolved_model(), tokenizer=preset.tokenizer, data=preset.data, fmt=fmt, method=preset.method(method),
        learning_rate=learning_rate, optimizer=preset.optimizer, batch_size=preset.batch_size, steps=preset.steps, eval_every=preset.eval_every,
        seed=seed, mesh=preset.mesh, schedule=preset.schedule, warmup_steps=preset.warmup_steps, engine=preset.engine,
        warm_start=preset.warm_start, wide_eval_every=preset.wide_eval_every, **kw,
    )


def sft_config(preset: Preset, learning_rate: float, fmt: str, seed: int) -> RunConfig:
    """An SFT run (the baseline of every experiment); on chain-of-thought at the method-comparison learning rates
    it also evaluates model averaging, so experiments 1 and 2 share it."""
    averaging = preset.averaging_alphas if (fmt == "cot" and learning_rate in preset.comparison_learning_rates) else ()
    return _run(preset, "sft", learning_rate, fmt, seed, averaging_alphas=averaging, final_accuracy=True)


def method_config(preset: Preset, method: str, learning_rate: float, seed: int, fmt: str = "cot") -> RunConfig:
    """The run of a registered method: the SFT baseline run for ``sft``; for an averaging method (WiSE-FT) the
    run of the method it reuses with the preset's mixing weights (the same run folder as that method's)."""
    spec = get_method(method)
    base = spec.trains_as or method
    if base == "sft":  # the SFT baseline run of experiment 1
        cfg = sft_config(preset, learning_rate, fmt, seed)
    else:
        cfg = _run(preset, base, learning_rate, fmt, seed, final_accuracy=preset.accuracy_in_method_runs)
    if spec.averaging:
        cfg = replace(cfg, method=preset.method(method), averaging_alphas=cfg.averaging_alphas or preset.averaging_alphas)
    return cfg


def sft_configs(preset: Preset) -> list[RunConfig]:
    """The runs of experiment 1: SFT over ``formats`` x ``learning_rate_grid`` x ``seeds``."""
    return [sft_config(preset, learning_rate, fmt, seed) for fmt in preset.formats for learning_rate in preset.learning_rate_grid
            for seed in preset.seeds]


def method_configs(preset: Preset) -> list[RunConfig]:
    """The runs of experiment 2: ``sft`` and every trained method at its (small, large) learning rates x ``seeds``."""
    trained = [m for m in ("sft",) + tuple(preset.methods) if not get_method(m).averaging]
    return [method_config(preset, m, preset.learning_rates_of(m)[i], seed) for i in range(2) for m in trained
            for seed in preset.seeds]


def token_configs(preset: Preset) -> list[RunConfig]:
    """The runs whose per-epoch token statistics experiment 3 reads: SFT and the compared TALR at their large
    comparison learning rate."""
    methods = ["sft"] + ([preset.compared_talr] if preset.compared_talr in preset.methods else [])
    return [method_config(preset, m, preset.learning_rates_of(m)[-1], seed) for m in methods for seed in preset.seeds]
