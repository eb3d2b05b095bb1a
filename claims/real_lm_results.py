"""The cached real-LM experiments the real-LM claim checks read (:mod:`sims.harness.experiments`, on
SmolLM2-135M-Instruct unless the preset says otherwise). The preset is the one
``sims.harness.presets.real_lm_preset_name`` names for the part of it a claim reads (``"grid"``: the SFT
learning-rate grid and the base-model analyses; ``"all"``: the method comparison too): ``$SFT_REAL_LM_PRESET`` when
set, else ``"cpu"`` once all of that part's runs are committed, else ``"default"``; each row's setting column names
it. Runs not stored are computed (the ``default`` sweep: about 20 minutes on a 2-core CPU); stored runs are read.

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


T_NOTE = ("A paired 95% t interval over n seeds uses t with n - 1 degrees of freedom: 12.7 for 2 seeds, 4.3 for 3, 2.8 for 5 "
          "(against the 2 of mean +- 2 SE), so few seeds rarely exclude a boundary.")


def _preset_name(part: str = "all") -> str:
    from sims.harness.presets import real_lm_preset_name

    return real_lm_preset_name(part)


def _talr_variants(name: str) -> str:
    """"talr-mean (compared; also talr-disc)": the TALR variant the claims read and the others the preset trains."""
    from sims.harness.presets import PRESETS

    try:
        p = PRESETS[name]()
        methods, compared = p.methods, p.compared_talr
    except (KeyError, ValueError):  # the paper preset without its model: name its defaults
        from sims.harness.presets import Preset

        methods, compared = Preset.__dataclass_fields__["methods"].default, Preset.__dataclass_fields__["compared_talr"].default
    others = [m for m in methods if m.startswith("talr") and m != compared]
    if compared not in methods:
        return "none"
    return compared + (f"; also {', '.join(others)}" if others else "")


def _scale(name: str) -> str:
    """"4 steps x batch 2, 3 seeds": the scale at which the preset's verdicts are taken."""
    from sims.harness.presets import PRESETS, Preset

    try:
        p = PRESETS[name]()
    except (KeyError, ValueError):  # the paper preset without its model
        return "scale of the paper preset"
    return f"{p.steps} steps x batch {p.batch_size}, {len(p.seeds)} seeds"


def setting(part: str = "all") -> str:
    """The setting column of a real-LM row reading ``part`` of its preset (fixed at import: a check registers under
    it), naming the preset's scale and the TALR variant it trains."""
    name = _preset_name(part)
    talr = f"TALR = {_talr_variants(name)}"
    if name == "default":
        return f"real LM (SmolLM2-135M-Instruct, {_scale(name)}; {talr})"
    if name == "paper":
        return f"real LM (paper preset: {os.environ.get('SFT_PAPER_MODEL', '?')}; {talr})"
    return f"real LM ({name} preset, {_scale(name)}; {talr})"


def command(figure: str | None = None, part: str = "all") -> str:
    """The command that recomputes a row: its figure (or the preset's report) under the preset ``part`` reads."""
    name = _preset_name(part)
    prefix = "" if name == "default" else f"SFT_REAL_LM_PRESET={name} "
    return f"{prefix}python -m figures {figure}" if figure else f"python -m sims.harness report --preset {name}"


def preset(part: str = "all"):
    """The preset whose ``part`` a claim reads."""
    from sims.harness.compilation_cache import enable_compilation_cache
    from sims.harness.presets import get_preset

    enable_compilation_cache()
    return get_preset(_preset_name(part))


def method_rows(p, lr) -> dict[str, dict]:
    """``method_front`` rows at the method-comparison slot ``lr`` (one of ``p.method_lrs``; a method with its own
    learning rates appears at its rate for that slot), by method name, except that the preset's compared TALR
    variant (``p.compared_talr``) is keyed ``"talr"``: the row every claim about "TALR" reads (the setting column
    names the variant)."""
    from sims.harness.experiments import method_front

    rows = {r["method"]: r for r in method_front(p, progress=False)["rows"] if r["lr"] == lr}
    if p.compared_talr in rows:
        rows["talr"] = rows.pop(p.compared_talr)
    return rows


def method_front(p) -> dict:
    """``method_front`` of the preset: ``{"rows": [...], "front": {"domain_gain", "general_change"}}``, the rows of
    the compared TALR variant (``p.compared_talr``) named ``"talr"`` as in :func:`method_rows`."""
    from sims.harness.experiments import method_front as front

    mf = front(p, progress=False)
    rows = [{**r, "method": "talr"} if r["method"] == p.compared_talr else r for r in mf["rows"]]
    return {**mf, "rows": rows}


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
