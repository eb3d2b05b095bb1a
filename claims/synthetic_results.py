"""The cached synthetic experiments the synthetic claim checks read (preset ``default``, the one
``python -m figures`` draws): each loader returns ``(config, result)`` of
``sims.synthetic.experiments.<name>.run``, computed on first use and read from the cache afterwards."""

from __future__ import annotations

__all__ = ["SETTING", "GROUP", "PRESET", "command", "matched_gain", "hard_tokens", "methods", "token_stats"]

SETTING = "synthetic"
GROUP = "synthetic"
PRESET = "default"


def command(figure: str) -> str:
    return f"python -m figures {figure}"


def _load(module: str, config_class: str):
    import importlib

    ex = importlib.import_module(f"sims.synthetic.experiments.{module}")
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
