"""The real-LM experiments the real-LM claim checks read (:mod:`sft_tilt.harness.experiment_results`, on
SmolLM2-135M-Instruct unless the preset says otherwise), read from stored runs only.

Each claim module names the preset it is decided on (``PRESET``) and registers its check under it (``check(...,
preset=PRESET)``); a claim comparing methods also names them (``METHODS``), so it asks for no other method's runs.
``$SFT_REAL_LM_PRESET`` replaces the named preset for every claim at once (the tests' tiny model, the paper preset on
a GPU); nothing else does, and what happens to be stored never chooses it. A result that is not stored is an error
whose message names the sweep that computes it (``python -m sft_tilt.harness sweep --preset ...``); checking a claim
never trains.

Quantities keep the harness's names (``domain_gain``, ``general_change``, ``learning_rate``); the evidence texts show
them as the theory's letters G and D.
"""

from __future__ import annotations

import os

__all__ = ["GROUP", "DIRECTIONS", "T_NOTE", "SEEDS_ONLY_NOTE", "ITEMS_AGREEMENT", "setting", "command", "preset",
           "method_rows", "method_front", "by_seed", "matched_along_trajectories", "matched_at_common_gain", "run_items",
           "matched_bootstrap", "matched_difference", "resampled", "evaluation_note"]

GROUP = "real_lm"
DIRECTIONS = ("Paper numbers are benchmark accuracies of 3-4B models; ours are held-out nats/token on SmolLM2-135M and a "
              "generated domain: only directions and orderings are compared.")


T_NOTE = ("A paired 95% t interval over n seeds uses t with n - 1 degrees of freedom: 12.7 for 2 seeds, 4.3 for 3, 2.8 for 5 "
          "(against the 2 of mean +- 2 SE), so few seeds rarely exclude a boundary.")


SEEDS_ONLY_NOTE = ("The evaluation sample was not resampled: these runs were stored without per-item losses, so the "
                   "intervals are over seeds only and treat the held-out problems and general texts as fixed.")

#: Largest difference (nats/token) allowed between a run's stored curve and the one its per-item losses give; the
#: two are the same sums in float32 and float64.
ITEMS_AGREEMENT = 1e-4
DOMAIN_SET = "domain"
GENERAL_PREFIX = "general/"


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
    from sft_tilt.harness.presets import PRESETS

    try:
        p = PRESETS[name]()
    except (KeyError, ValueError):  # the paper preset without its model
        return "scale of the paper preset"
    return f"{p.steps} steps x batch {p.batch_size}, {len(p.seeds)} seeds"


def setting(preset_name: str) -> str:
    """The setting column of a real-LM row decided on the preset ``preset_name`` names (as read:
    :func:`sft_tilt.harness.presets.read_preset_name`; fixed at import: a check registers under it), naming the
    preset's scale and the TALR variant it trains."""
    from sft_tilt.harness.presets import read_preset_name

    name = read_preset_name(preset_name)
    talr = f"TALR = {_talr_variants(name)}"
    if name == "default":
        return f"real LM (SmolLM2-135M-Instruct, {_scale(name)}; {talr})"
    if name == "paper":
        return f"real LM (paper preset: {os.environ.get('SFT_PAPER_MODEL', '?')}; {talr})"
    return f"real LM ({name} preset, {_scale(name)}; {talr})"


def command(figure: str | None, preset_name: str) -> str:
    """The command that recomputes a row decided on the preset ``preset_name``: the figure drawn from the same
    experiments (which reads that preset too; with ``$SFT_REAL_LM_PRESET`` set, under the same override), or the
    preset's report."""
    from sft_tilt.harness.presets import PRESET_OVERRIDE_ENV, read_preset_name

    name = read_preset_name(preset_name)
    if figure is None:
        return f"python -m sft_tilt.harness report --preset {name}"
    prefix = f"{PRESET_OVERRIDE_ENV}={name} " if name != preset_name else ""
    return f"{prefix}python -m sft_tilt.figures {figure}"


def preset(preset_name: str, methods: tuple[str, ...] | None = None):
    """The preset a claim naming ``preset_name`` reads (:func:`sft_tilt.harness.presets.read_preset`), restricted to
    the comparison of ``methods`` when given."""
    from sft_tilt.harness.presets import read_preset

    return read_preset(preset_name, methods)


def method_rows(p, learning_rate) -> dict[str, dict]:
    """``method_front`` rows at the method-comparison slot ``learning_rate`` (one of ``p.comparison_learning_rates``; a
    method with its own learning rates appears at its rate for that slot), by method name, except that the preset's
    compared TALR variant (``p.compared_talr``) is keyed ``"talr"``: the row every claim about "TALR" reads (the
    setting column names the variant)."""
    from sft_tilt.harness.experiment_results import method_front

    rows = {r["method"]: r for r in method_front(p)["rows"] if r["learning_rate"] == learning_rate}
    if p.compared_talr in rows:
        rows["talr"] = rows.pop(p.compared_talr)
    return rows


def method_front(p) -> dict:
    """``method_front`` of the preset: ``{"rows": [...], "front": {"domain_gain", "general_change"}}``, the rows of
    the compared TALR variant (``p.compared_talr``) named ``"talr"`` as in :func:`method_rows`."""
    from sft_tilt.harness.experiment_results import method_front as front

    mf = front(p)
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


def matched_along_trajectories(p, learning_rate, names, runs: list[dict] | None = None) -> dict:
    """:func:`matched_at_common_gain` of the methods ``names`` (``"talr"``: the preset's compared TALR variant) at
    the method-comparison slot ``learning_rate`` (one of ``p.comparison_learning_rates``; a method with its own
    learning rates at its rate for that slot), from the runs' trajectories (``runs``:
    :func:`sft_tilt.harness.experiment_results.method_comparison`'s output, the SFT runs with their early points; read
    when not given); ``"missing"`` lists the names without a finished run there; ``"bootstrap"`` is the crossed
    bootstrap of the methods that gain (:func:`matched_bootstrap`), None when some run has no per-item losses."""
    if runs is None:
        from sft_tilt.harness.experiment_results import method_comparison

        runs = method_comparison(p)
    slot = list(p.comparison_learning_rates).index(learning_rate)
    runs = [r for r in runs if r.get("alpha") is None and r.get("trajectory")]
    trajectories, items = {}, {}
    for name in names:
        registry_name = p.compared_talr if name == "talr" else name
        if registry_name != "sft" and registry_name not in p.methods:
            continue
        own = p.learning_rates_of(registry_name)[slot]
        chosen = [r for r in runs if r["method"] == registry_name and r["learning_rate"] == own]
        seeds = {int(r["seed"]): [tuple(x) for x in r["trajectory"]] for r in chosen}
        if seeds:
            trajectories[name] = seeds
            items[name] = {int(r["seed"]): run_items(r) for r in chosen}
    out = matched_at_common_gain(trajectories)
    gaining = {n: v for n, v in items.items() if n in out["matched"]}
    return {**out, "missing": [n for n in names if n not in trajectories], "bootstrap": matched_bootstrap(gaining)}


def run_items(summary: dict) -> dict | None:
    """A run's per-item losses along its trajectory, in the shape :func:`sft_tilt.analysis.crossed_bootstrap.
    matched_gain_bootstrap` reads: ``{"domain": {"nll": (points, problems), "tokens"}, "general/<set>": ...}``, point 0
    the base model. None when the run has none (stored before they were recorded, or spliced with early points
    without them), and, with a warning, when they do not reproduce the run's stored curve to ``ITEMS_AGREEMENT``
    (they would not be the measurements the curve was computed from)."""
    import warnings

    import numpy as np

    points = summary.get("trajectory_items")
    if not points or summary.get("trajectory") is None or len(points) != len(summary["trajectory"]):
        return None
    try:
        sets = {DOMAIN_SET: [p["domain"] for p in points]}
        for name in points[0]["general"]:
            sets[GENERAL_PREFIX + name] = [p["general"][name] for p in points]
        out = {k: {"nll": np.array([v["nll"] for v in vs], dtype=np.float64), "tokens": np.asarray(vs[0]["tokens"], np.float64)}
               for k, vs in sets.items()}
        if any(not np.array_equal(np.asarray(v["tokens"], np.float64), out[k]["tokens"]) for k, vs in sets.items() for v in vs):
            raise ValueError("token counts differ between evaluation points")
    except (KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"run {summary.get('key')}: per-item measurements unreadable ({exc}); intervals over seeds only")
        return None
    loss = {k: v["nll"].sum(1) / v["tokens"].sum() for k, v in out.items()}
    gain = loss[DOMAIN_SET][0] - loss[DOMAIN_SET]
    change = np.mean([loss[k] - loss[k][0] for k in loss if k != DOMAIN_SET], axis=0)
    stored = np.array([(g, d) for _, g, d in summary["trajectory"]], dtype=np.float64)
    if not np.allclose(np.c_[gain, change], stored, atol=ITEMS_AGREEMENT, rtol=0):
        warnings.warn(f"run {summary.get('key')}: its per-item losses do not reproduce its stored curve (largest "
                      f"difference {np.max(np.abs(np.c_[gain, change] - stored)):.2e}); intervals over seeds only")
        return None
    return out


def matched_bootstrap(items: dict[str, dict[int, dict | None]], resamples: int | None = None):
    """The crossed bootstrap (:func:`sft_tilt.analysis.crossed_bootstrap.matched_gain_bootstrap`) of the general
    change at the largest gain every run reaches, over the methods of ``items`` (method -> seed -> :func:`run_items`),
    paired by the seeds they share; None unless every run of every method has per-item losses."""
    from sft_tilt.analysis.crossed_bootstrap import DEFAULT_RESAMPLES, matched_gain_bootstrap

    if not items:
        return None
    seeds = sorted(set.intersection(*(set(v) for v in items.values())))
    if not seeds or any(items[n].get(s) is None for n in items for s in seeds):
        return None
    runs = {n: [items[n][s] for s in seeds] for n in items}
    general = [k for k in runs[next(iter(runs))][0] if k != DOMAIN_SET]
    return matched_gain_bootstrap(runs, DOMAIN_SET, general, resamples=resamples or DEFAULT_RESAMPLES)


def matched_difference(matched: dict[str, dict[int, float]], bootstrap, a: str, b: str):
    """The interval of ``D_a - D_b`` at the matched gain, paired by seed: with per-item losses (``bootstrap`` from
    :func:`matched_bootstrap` covering both) the union of the crossed bootstrap interval and the seeds' t interval
    (:func:`sft_tilt.analysis.crossed_bootstrap.with_seed_interval`), else the seeds' t interval alone."""
    from sft_tilt.analysis.crossed_bootstrap import with_seed_interval
    from sft_tilt.analysis.intervals import paired_interval

    seeds = sorted(set(matched.get(a, {})) & set(matched.get(b, {})))
    seeds_t = paired_interval([matched[a][s] for s in seeds], [matched[b][s] for s in seeds])
    if bootstrap is None or a not in bootstrap.cells or b not in bootstrap.cells:
        return seeds_t
    return with_seed_interval(bootstrap.interval(a, b), seeds_t)


def resampled(bootstrap) -> str:
    """What an interval is over, for a row's deciding numbers."""
    return "over seeds and evaluation items" if bootstrap is not None else "over seeds only, evaluation sample not resampled"


def evaluation_note(bootstrap) -> str:
    """Whether the intervals also resample the evaluation sample, in words for a row's evidence."""
    if bootstrap is None:
        return SEEDS_ONLY_NOTE
    return (f"The evaluation sample was resampled too: each interval is the union of the seeds' t interval and a crossed "
            f"bootstrap ({bootstrap.samples.shape[0]} resamples of the {bootstrap.n_seeds} seeds and, independently, of the "
            f"held-out problems and each general set's texts, the matched gain recomputed in each).")
