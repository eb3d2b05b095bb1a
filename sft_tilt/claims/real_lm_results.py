"""The cached real-LM experiments the real-LM claim checks read (:mod:`sft_tilt.harness.experiments`, on
SmolLM2-135M-Instruct unless the preset says otherwise). The preset is the one
``sft_tilt.harness.presets.real_lm_preset_name`` names for the part of it a claim reads (``"grid"``: the SFT
learning-rate grid and the base-model analyses; ``"all"``: the method comparison too; ``methods_part(...)``: the
grid and the comparison runs of the methods the claim compares, the preset restricted to them): ``$SFT_REAL_LM_PRESET`` when
set, else ``"cpu"`` once all of that part's runs are committed, else ``"default"``; each row's setting column names
it. Runs not stored are computed (the ``default`` sweep: about 20 minutes on a 2-core CPU); stored runs are read.

Quantities keep the harness's names (``domain_gain``, ``general_change``); the evidence texts show them as the
theory's letters G and D.
"""

from __future__ import annotations

import os

__all__ = ["GROUP", "DIRECTIONS", "T_NOTE", "setting", "command", "preset", "method_rows", "method_front", "by_seed",
           "matched_along_trajectories", "matched_at_common_gain"]

GROUP = "real_lm"
DIRECTIONS = ("Paper numbers are benchmark accuracies of 3-4B models; ours are held-out nats/token on SmolLM2-135M and a "
              "generated domain: only directions and orderings are compared.")


T_NOTE = ("A paired 95% t interval over n seeds uses t with n - 1 degrees of freedom: 12.7 for 2 seeds, 4.3 for 3, 2.8 for 5 "
          "(against the 2 of mean +- 2 SE), so few seeds rarely exclude a boundary.")


def _preset_name(part: str = "all") -> str:
    from sft_tilt.harness.presets import real_lm_preset_name

    return real_lm_preset_name(part)


def _talr_variants(name: str) -> str:
    """"talr-mean (compared; also talr-disc)": the TALR variant the claims read and the others the preset trains."""
    from sft_tilt.harness.presets import PRESETS

    try:
        p = PRESETS[name]()
        methods, compared = p.methods, p.compared_talr
    except (KeyError, ValueError):  # the paper preset without its model: name its defaults
        from sft_tilt.harness.presets import Preset

        methods, compared = Preset.__dataclass_fields__["methods"].default, Preset.__dataclass_fields__["compared_talr"].default
    others = [m for m in methods if m.startswith("talr") and m != compared]
    if compared not in methods:
        return "none"
    return compared + (f"; also {', '.join(others)}" if others else "")


def _scale(name: str) -> str:
    """"4 steps x batch 2, 3 seeds": the scale at which the preset's verdicts are taken."""
    from sft_tilt.harness.presets import PRESETS, Preset

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
    return f"{prefix}python -m sft_tilt.figures {figure}" if figure else f"python -m sft_tilt.harness report --preset {name}"


def preset(part: str = "all"):
    """The preset whose ``part`` a claim reads."""
    from sft_tilt.harness.compilation_cache import enable_compilation_cache
    from sft_tilt.harness.presets import real_lm_preset

    enable_compilation_cache()
    return real_lm_preset(part)


def method_rows(p, lr) -> dict[str, dict]:
    """``method_front`` rows at the method-comparison slot ``lr`` (one of ``p.method_lrs``; a method with its own
    learning rates appears at its rate for that slot), by method name, except that the preset's compared TALR
    variant (``p.compared_talr``) is keyed ``"talr"``: the row every claim about "TALR" reads (the setting column
    names the variant)."""
    from sft_tilt.harness.experiments import method_front

    rows = {r["method"]: r for r in method_front(p, progress=False)["rows"] if r["lr"] == lr}
    if p.compared_talr in rows:
        rows["talr"] = rows.pop(p.compared_talr)
    return rows


def method_front(p) -> dict:
    """``method_front`` of the preset: ``{"rows": [...], "front": {"domain_gain", "general_change"}}``, the rows of
    the compared TALR variant (``p.compared_talr``) named ``"talr"`` as in :func:`method_rows`."""
    from sft_tilt.harness.experiments import method_front as front

    mf = front(p, progress=False)
    rows = [{**r, "method": "talr"} if r["method"] == p.compared_talr else r for r in mf["rows"]]
    return {**mf, "rows": rows}


def by_seed(row: dict | None, key: str) -> dict:
    """``{seed: row["per_seed"][i][key]}`` of one ``method_front`` row (empty when the method did not run)."""
    return {int(s["seed"]): float(s[key]) for s in (row or {}).get("per_seed", [])}


def matched_at_common_gain(trajectories: dict[str, dict[int, list]]) -> dict:
    """General change at one matched domain gain along each run's own trajectory.

    ``trajectories``: per method, per seed, ``(step, domain_gain, general_change)`` points from the base model on.
    The target ``Δ*`` is the largest domain gain that every seed of every method with a positive gain in every seed
    reaches (:func:`sft_tilt.analysis.matched_gain.matched_targets` with fraction 1: the most training at which all of
    them can be compared); per method and seed, D where the trajectory first reaches ``Δ*`` (linear interpolation
    between evaluation points, :func:`sft_tilt.analysis.matched_gain.general_change_at_gain`). Returns ``{"target",
    "matched": {method: {seed: D}}, "chords": {method: seeds whose value is a chord from the base model}, "no_gain":
    methods with a seed that never gains}``; methods in ``no_gain`` get no values, and ``target`` is None when no
    method gains in every seed."""
    from sft_tilt.analysis.matched_gain import from_base, general_change_at_gain, matched_targets

    no_gain = [n for n, seeds in trajectories.items() if not seeds or any(max(g for _, g, _ in t) <= 0 for t in seeds.values())]
    gaining = {n: seeds for n, seeds in trajectories.items() if n not in no_gain}
    targets = matched_targets([t for seeds in gaining.values() for t in seeds.values()], (1.0,)) if gaining else []
    if not targets:
        return {"target": None, "matched": {}, "chords": {}, "no_gain": no_gain}
    target = targets[0]
    matched = {n: {s: float(general_change_at_gain(t, target)) for s, t in seeds.items()} for n, seeds in gaining.items()}
    chords = {n: sum(from_base(t, target) for t in seeds.values()) for n, seeds in gaining.items()}
    return {"target": float(target), "matched": matched, "chords": chords, "no_gain": no_gain}


def matched_along_trajectories(p, lr, names, runs: list[dict] | None = None) -> dict:
    """:func:`matched_at_common_gain` of the methods ``names`` (``"talr"``: the preset's compared TALR variant) at
    the method-comparison slot ``lr`` (one of ``p.method_lrs``; a method with its own learning rates at its rate for
    that slot), from the runs' trajectories (``runs``: :func:`sft_tilt.harness.experiments.method_comparison`'s output,
    the SFT runs with their early points; read when not given); ``"missing"`` lists the names without a finished
    run there."""
    if runs is None:
        from sft_tilt.harness.experiments import method_comparison

        runs = method_comparison(p, progress=False)
    slot = list(p.method_lrs).index(lr)
    runs = [r for r in runs if r.get("alpha") is None and r.get("trajectory")]
    trajectories = {}
    for name in names:
        registry_name = p.compared_talr if name == "talr" else name
        if registry_name != "sft" and registry_name not in p.methods:
            continue
        own = p.learning_rates_of(registry_name)[slot]
        seeds = {int(r["seed"]): [tuple(x) for x in r["trajectory"]] for r in runs if r["method"] == registry_name and r["lr"] == own}
        if seeds:
            trajectories[name] = seeds
    out = matched_at_common_gain(trajectories)
    return {**out, "missing": [n for n in names if n not in trajectories]}
