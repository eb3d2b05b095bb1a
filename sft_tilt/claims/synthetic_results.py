"""The cached synthetic experiments the synthetic claim checks read (preset ``default``, the one
``python -m sft_tilt.figures`` draws): each loader returns ``(config, result)`` of
``sft_tilt.synthetic.experiments.<name>.run``, computed on first use and read from the cache afterwards."""

from __future__ import annotations

import numpy as np

__all__ = ["SETTING", "GROUP", "PRESET", "SMALL_LR", "LARGE_LR", "command", "matched_gain", "hard_tokens", "methods",
           "token_stats", "lr_index", "method_arrays", "variant"]

SETTING = "synthetic"
GROUP = "synthetic"
PRESET = "default"


def command(figure: str) -> str:
    return f"python -m sft_tilt.figures {figure}"


def _load(module: str, config_class: str):
    import importlib

    ex = importlib.import_module(f"sft_tilt.synthetic.experiments.{module}")
    cfg = getattr(ex, config_class).preset(PRESET)
    return cfg, ex.run(cfg, progress=False)


def matched_gain():
    return _load("matched_gain", "MatchedGainConfig")


def hard_tokens():
    return _load("hard_tokens", "HardTokensConfig")


def methods():
    return _load("methods", "MethodsConfig")


def token_stats():
    return _load("token_stats", "TokenStatsConfig")


# The two step sizes of the synthetic methods sweep that play the paper's "small" and "large" learning rate
# (1e-6 and 5e-6 there): 3 is the smallest grid step at which every method reaches Δ* in every seed, 30 the largest
# grid step, a factor 10 above it.
SMALL_LR = 3.0
LARGE_LR = 30.0


def lr_index(r: dict, lr: float) -> int:
    """Index of ``lr`` in the sweep's grid (ValueError when the preset has no such step)."""
    lrs = [float(x) for x in r["learning_rates"]]
    if float(lr) not in lrs:
        raise ValueError(f"lr: {lr:g} is not in the methods sweep's grid {lrs}")
    return lrs.index(float(lr))


def method_arrays(r: dict, name: str) -> dict:
    """Per seed (rows) and step size (columns) of one method of the sweep: ``matched`` D at Δ* (NaN where the seed
    never reached Δ*), ``gain`` and ``degradation`` at the end of training."""
    c = r["per_method"][name]
    return {"matched": np.asarray(c["matched_general_change"], float), "domain_gain": np.asarray(c["domain_gain"], float)[:, :, -1],
            "general_change": np.asarray(c["general_change"], float)[:, :, -1]}


def variant(name: str) -> str:
    """The registry method and weight normalisation behind a display name of the methods sweep."""
    from sft_tilt.synthetic.experiments.methods import METHOD_CONFIGS

    mc = METHOD_CONFIGS[name]
    w = mc.weighting()
    norm = getattr(w, "normalization", "none")
    if w.kind == "sft":
        return f"{mc.name}, weights 1"
    return f"{mc.name}, weights {'mean one' if norm == 'mean' else 'unnormalised' if norm == 'none' else norm}"
