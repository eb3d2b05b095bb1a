"""The cached real-LM experiments the real-LM claim checks read (:mod:`sims.harness.experiments`, preset
``$SFT_REAL_LM_PRESET``, default ``"default"``: SmolLM2-135M-Instruct). The first call runs the sweep (about
20 minutes on a 2-core CPU); later calls read the run folders.

Quantities keep the harness's names (``domain_gain``, ``general_change``); the evidence texts show them as the
theory's letters G and D.
"""

from __future__ import annotations

import os

__all__ = ["GROUP", "DIRECTIONS", "T_NOTE", "setting", "command", "preset", "method_rows", "method_front", "by_seed", "below_front",
           "in_front_range"]

GROUP = "real_lm"
DIRECTIONS = ("Paper numbers are benchmark accuracies of 3-4B models; ours are held-out nats/token on SmolLM2-135M and a "
              "generated domain: only directions and orderings are compared.")


T_NOTE = ("With 2 seeds a paired 95% t interval uses t = 12.7 (1 degree of freedom), about 6.4 times wider than mean +- 2 SE: "
          "it rarely excludes a boundary.")


def _preset_name() -> str:
    return os.environ.get("SFT_REAL_LM_PRESET", "default")


def _talr_variants(name: str) -> str:
    from sims.harness.presets import PRESETS

    try:
        methods = PRESETS[name]().methods
    except (KeyError, ValueError):  # the paper preset without its model: the variant is still the registry default
        methods = ("talr",)
    return ", ".join(m for m in methods if m.startswith("talr")) or "none"


def setting() -> str:
    """The setting column of a real-LM row (fixed at import: a check registers under it), naming the TALR variant
    the preset trains."""
    name = _preset_name()
    talr = f"TALR = {_talr_variants(name)}"
    if name == "default":
        return f"real LM (SmolLM2-135M-Instruct; {talr})"
    if name == "paper":
        return f"real LM (paper preset: {os.environ.get('SFT_PAPER_MODEL', '?')}; {talr})"
    return f"real LM ({name} preset; {talr})"


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


def method_front(p) -> dict:
    """``method_front`` of the preset: ``{"rows": [...], "front": {"domain_gain", "general_change"}}``."""
    from sims.harness.experiments import method_front as front

    return front(p, progress=False)


def by_seed(row: dict | None, key: str) -> dict:
    """``{seed: row["per_seed"][i][key]}`` of one ``method_front`` row (empty when the method did not run)."""
    return {int(s["seed"]): float(s[key]) for s in (row or {}).get("per_seed", [])}


def below_front(row: dict | None, front: dict) -> dict:
    """Per seed, the seed's general change minus the SFT learning-rate curve's general change at the seed's domain
    gain (negative: better than SFT at equal domain gain), as ``method_front``'s ``below_front`` per row."""
    import numpy as np

    d = np.asarray(front["domain_gain"], float)
    g = np.asarray(front["general_change"], float)
    return {int(s["seed"]): float(s["general_change"] - np.interp(s["domain_gain"], d, g)) for s in (row or {}).get("per_seed", [])}


def in_front_range(row: dict | None, front: dict) -> bool:
    """Whether every seed's domain gain is positive and within the SFT curve's range (where ``below_front`` is an
    interpolation, not the curve's end value held flat)."""
    seeds = (row or {}).get("per_seed", [])
    hi = max(front["domain_gain"]) if front["domain_gain"] else 0.0
    return bool(seeds) and all(0 < s["domain_gain"] <= hi for s in seeds)
