"""The cached real-LM experiments the real-LM claim checks read (:mod:`sims.harness.experiments`, preset
``$SFT_REAL_LM_PRESET``, default ``"default"``: SmolLM2-135M-Instruct). The first call runs the sweep (about
20 minutes on a 2-core CPU); later calls read the run folders.

Quantities keep the harness's names (``domain_gain``, ``general_change``); the evidence texts show them as the
theory's letters G and D.
"""

from __future__ import annotations

import os

__all__ = ["GROUP", "DIRECTIONS", "setting", "command", "preset", "method_rows"]

GROUP = "real_lm"
DIRECTIONS = ("Paper numbers are benchmark accuracies of 3-4B models; ours are held-out nats/token on SmolLM2-135M and a "
              "generated domain: only directions and orderings are compared.")


def _preset_name() -> str:
    return os.environ.get("SFT_REAL_LM_PRESET", "default")


def setting() -> str:
    """The setting column of a real-LM row (fixed at import: a check registers under it)."""
    name = _preset_name()
    if name == "default":
        return "real LM (SmolLM2-135M-Instruct)"
    if name == "paper":
        return f"real LM (paper preset: {os.environ.get('SFT_PAPER_MODEL', '?')})"
    return f"real LM ({name} preset)"


def command(figure: str | None = None) -> str:
    name = _preset_name()
    prefix = "" if name == "default" else f"SFT_REAL_LM_PRESET={name} "
    return f"{prefix}python -m figures {figure}" if figure else f"python -m sims.harness report --preset {name}"


def preset():
    from sims.harness.compilation_cache import enable_compilation_cache
    from sims.harness.presets import get_preset

    enable_compilation_cache()
    return get_preset(_preset_name())


def method_rows(p, lr) -> dict[str, dict]:
    """``method_front`` rows at learning rate ``lr``, by method name."""
    from sims.harness.experiments import method_front

    return {r["method"]: r for r in method_front(p, progress=False)["rows"] if r["lr"] == lr}
