"""The paper's experiments on a real LM, and the theory held against them, read from stored results.

1. :func:`lr_tradeoff`: SFT over a grid of learning rates, both response formats (the paper's Figure 1).
2. :func:`method_comparison`: every method at a small and a large learning rate, several seeds (Figure 2,
   Tables 1-2); model averaging evaluated on the SFT runs over a grid of mixing weights.
3. :func:`token_analysis`: target-token probabilities under the base model, where the hard tokens are,
   and the fraction of training tokens with ``p > 0.2`` per epoch for SFT and TALR (Figure 3).
4. Theory against measurement:
   (a) :func:`single_step_theory`: one optimiser step ``theta_1 = theta_0 + eta d`` at learning rate ``eta`` (``d``
       the step direction at unit learning rate: ``-g`` for SGD, ``-g / (|g| + eps)`` for Adam's first step, so the
       step is exactly linear in ``eta``); for every set ``S`` the second-order prediction
           dL_S(eta) ~ eta <grad L_S, d> + eta^2 / 2  d^T H_S d
       (gradient inner product by ``jax.grad``, curvature along the step by ``jax.jvp`` of the gradient)
       against the measured ``L_S(theta_1) - L_S(theta_0)`` (held-out domain set and every general set).
   (b) :func:`matched_gain`: general loss change at a matched domain gain (``target_gain``, the theory's
       ``Delta*``) against learning rate ``eta``, with the two fit shapes ``general_change = k1 Delta* + k2 Delta* eta``
       and ``general_change = k1 Delta* + k2 Delta*^2 eta`` (least squares).
   (c) :func:`safe_learning_rate`: hard-token mass of the training targets (``sft_tilt.theory.hard_token_mass``) in the
       two formats against the largest learning rate of the grid whose general loss increase stays below ``eps``
       (Theorem 3.2's claim: fewer hard tokens, larger safe step).
   (d) :func:`method_front`: which methods move the matched-gain front (their general change at their own
       domain gain, against the SFT learning-rate curve interpolated at that gain).

Every quantity is stored under its name, never under a letter: ``domain_gain`` (held-out domain loss decrease,
the theory's ``G``; > 0 when the domain loss falls), ``general_change`` (mean general loss increase over the
general sets, the theory's ``D``; > 0 is degradation), ``general_change_sets`` (per general set), with ``_sd``
(standard deviation over seeds) and ``_final`` (final point of training) forms, ``learning_rate``, and
``target_gain`` (the matched domain gain ``Delta*``).

Everything here reads: finished runs (:mod:`sft_tilt.harness.stored_runs`), their early points
(:mod:`sft_tilt.harness.stored_early_points`) and the base-model analyses (:mod:`sft_tilt.harness.stored_base_analyses`).
A result that is not stored is :class:`~sft_tilt.harness.stored_runs.MissingResults`, whose message names the sweep
that computes it; only the sweep trains (:mod:`sft_tilt.harness.experiments`).
"""

from __future__ import annotations

import warnings

import numpy as np

import sft_tilt.theory
from sft_tilt.analysis.matched_gain import from_base, general_change_at_gain, matched_targets
from sft_tilt.harness.collapse import collapsed_step
from sft_tilt.harness.experiment_runs import method_configs, sft_configs, token_configs
from sft_tilt.harness.presets import Preset
from sft_tilt.harness.run_config import RunConfig
from sft_tilt.harness.stored_base_analyses import stored_analysis
from sft_tilt.harness.stored_early_points import with_early
from sft_tilt.harness.stored_runs import read_results
from sft_tilt.methods.registry import get_method, registered_methods

__all__ = ["summarise_run", "failed", "lr_tradeoff", "method_comparison", "token_analysis", "checkpoint_token_statistics",
           "target_token_statistics", "single_step_theory", "optimizer_step_analysis", "matched_gain", "SATURATION_FRACTIONS", "saturation_matched_gain",
           "safe_learning_rate", "method_front",
           "read_all"]


def summarise_run(result: dict) -> dict:
    """The compact view of a run the figures and checks use: final ``domain_gain``, ``general_change`` and
    ``general_change_sets``; ``trajectory`` as ``(step, domain_gain, general_change)`` tuples from the base model
    ``(0, 0.0, 0.0)`` on; accuracy; model-averaging points with the same keys; ``trajectory_items``, aligned with
    ``trajectory``, each evaluation's per-item measurements (``items``: per held-out problem, general text and
    multiple-choice item, the base model's first), or None for a run stored before they were recorded.

    A diverged run (``result["diverged"]``) has no final evaluation: its view is the run's identity,
    ``diverged: True``, the step where it diverged and its training-step records. ``collapsed`` and
    ``collapsed_step`` say whether and where the run's model gave the uniform output, computed from the points
    (:func:`sft_tilt.harness.collapse.collapsed_step`, so results stored before the flag have it too); the
    aggregates leave such a run out, like a diverged one.
    """
    cfg = result["config"]
    pts = result["points"]
    final = pts[-1]
    collapsed = collapsed_step(result)
    ident = {"method": cfg["method_name"], "fmt": cfg["fmt"], "learning_rate": cfg["learning_rate"], "seed": cfg["seed"],
             "collapsed": collapsed is not None, "collapsed_step": collapsed}
    if result.get("diverged"):
        return {**ident, "diverged": True, "diverged_step": result["diverged_step"],
                "train_steps": [s for p in pts for s in p["train_steps"]], "key": result["key"]}
    return {
        **ident,
        "diverged": False,
        "domain_gain": final["domain_gain"],
        "general_change": final["general_change_mean"],
        "general_change_sets": final["general_change"],
        "trajectory": [(0, 0.0, 0.0)] + [(p["step"], p["domain_gain"], p["general_change_mean"]) for p in pts],
        "trajectory_sets": [{k: 0.0 for k in final["general_change"]}] + [p["general_change"] for p in pts],
        "trajectory_items": _trajectory_items(result["base"], pts),
        "accuracy": (result.get("accuracy") or {}).get("accuracy"),
        "base_accuracy": (result["base"].get("accuracy") or {}).get("accuracy"),
        "averaging": [
            {"alpha": a["alpha"], "domain_gain": a["domain_gain"], "general_change": a["general_change_mean"],
             "general_change_sets": a["general_change"]}
            for a in result.get("averaging", [])
        ],
        "train_steps": [s for p in pts for s in p["train_steps"]],
        "accuracy_trajectory": [_accuracies(0, result["base"])] + [_accuracies(p["step"], p) for p in pts],
        "chance": result.get("chance") or {},
        "key": result["key"],
    }


def _trajectory_items(base: dict, points: list[dict]) -> list[dict] | None:
    """The ``items`` of the base evaluation and of every point, in trajectory order; None unless all carry them."""
    evaluations = [base, *points]
    if not all(isinstance(ev.get("items"), dict) for ev in evaluations):
        return None
    return [ev["items"] for ev in evaluations]


def _accuracies(step: int, ev: dict) -> dict:
    """The teacher-forced and multiple-choice accuracies of one evaluation (None where it was not measured)."""
    top1 = ev.get("general_top1") or {}
    return {
        "step": step,
        "answer_accuracy": ev.get("answer_accuracy"),
        "answer_token_accuracy": ev.get("answer_token_accuracy"),
        "general_top1": float(np.mean(list(top1.values()))) if top1 else None,
        "general_top1_sets": top1,
        "choice": (ev.get("choice") or {}).get("accuracy"),
        "unseen_accuracy": (ev.get("unseen") or {}).get("answer_accuracy"),
        "unseen_loss": (ev.get("unseen") or {}).get("loss"),
    }


# ----------------------------------------------------------------------------- experiments 1 and 2


def failed(summary: dict) -> str | None:
    """Why a run's numbers are not a point of any aggregate: ``"diverged at step k"`` (non-finite), ``"collapsed at
    step k"`` (the uniform output, :mod:`sft_tilt.harness.collapse`), or None for a run that is a point."""
    if summary["diverged"]:
        return f"diverged at step {summary['diverged_step']}"
    if summary.get("collapsed"):
        return f"collapsed at step {summary['collapsed_step']} (uniform output: every loss at log V)"
    return None


def _finished(summaries: list[dict], include_diverged: bool, what: str) -> list[dict]:
    """The summaries of runs that finished as points; diverged and collapsed ones are left out with a warning naming
    them (all kept with ``include_diverged``)."""
    if include_diverged:
        return summaries
    for s in summaries:
        if failed(s):
            warnings.warn(f"{what}: run {s['key']} ({s['method']} {s['fmt']} learning rate {s['learning_rate']:g} "
                          f"seed={s['seed']}) {failed(s)}; left out of the aggregates")
    return [s for s in summaries if not failed(s)]


def lr_tradeoff(preset: Preset, include_diverged: bool = False, require_early: bool = True) -> list[dict]:
    """Experiment 1: SFT runs over ``learning_rate_grid`` x ``formats`` x ``seeds`` (summaries; diverged runs only
    with ``include_diverged``); trajectories filled in before step ``preset.early_until`` from the stored early
    points (:func:`sft_tilt.harness.stored_early_points.with_early`), which must be stored unless
    ``require_early`` is False."""
    results = read_results(sft_configs(preset), preset.name, "lr")
    summaries = with_early([summarise_run(r) for r in results], {r["key"]: r for r in results}, preset.early_until,
                           require=preset.name if require_early else None)
    return _finished(summaries, include_diverged, "exp1 learning-rate grid")


def method_comparison(preset: Preset, include_diverged: bool = False) -> list[dict]:
    """Experiment 2: ``sft`` + ``methods`` at each of their (small, large) learning rates (``comparison_learning_rates``
    or the method's own, :meth:`Preset.learning_rates_of`) and ``seeds`` (chain-of-thought);
    model averaging rows come from the SFT runs (``method`` = the registered averaging method, one row per
    mixing weight); diverged runs only with ``include_diverged``."""
    averaging = {get_method(m).trains_as: m for m in (_averaging_methods(preset))}
    out = []
    results = read_results(method_configs(preset), preset.name, "methods")
    # the SFT runs shared with the learning-rate grid get the same early points there as here
    summaries = with_early([summarise_run(r) for r in results], {r["key"]: r for r in results}, preset.early_until)
    for s in _finished(summaries, include_diverged, "exp2 methods"):
        out.append(s)
        if failed(s):
            continue
        name = averaging.get(s["method"])
        for a in s["averaging"] if name else ():
            out.append({**s, "method": name, "alpha": a["alpha"], "domain_gain": a["domain_gain"],
                        "general_change": a["general_change"], "general_change_sets": a["general_change_sets"],
                        "trajectory": None, "trajectory_items": None, "accuracy": None, "averaging": []})
    return out


def _averaging_methods(preset: Preset) -> list[str]:
    """The averaging methods of the comparison: those in ``preset.methods``, else every registered one whose base
    is trained (WiSE-FT on the SFT runs is always evaluated)."""
    named = [m for m in preset.methods if get_method(m).averaging]
    if named:
        return named
    trained = {"sft", *preset.methods}
    return [n for n, m in registered_methods.items() if m.averaging and m.trains_as in trained]


# ----------------------------------------------------------------------------- experiment 3


def target_token_statistics(preset: Preset) -> dict:
    """The base model's target-token statistics per format (the stored record of
    :func:`sft_tilt.harness.base_model_analyses.target_token_statistics`)."""
    return stored_analysis(preset, "target_token_statistics")


def token_analysis(preset: Preset) -> dict:
    """Experiment 3: ``{"formats": base-model target-token statistics per format (:func:`target_token_statistics`),
    "epochs": {method: {"learning_rate", "per_seed"}}, "checkpoints": {method: {"learning_rate", "per_seed"}}}``
    with, per seed and epoch, the fraction of training tokens with p > 0.2 and the mean TALR temperature, and per
    seed and evaluation point the same read on the held-out domain set (:func:`checkpoint_token_statistics`)."""
    out = {"formats": target_token_statistics(preset), "epochs": {}, "checkpoints": {}}
    # fraction of training tokens with p > 0.2 per epoch (measured on each step's batch before its update)
    by_method: dict[str, list[RunConfig]] = {}
    for cfg in token_configs(preset):
        by_method.setdefault(cfg.method.name, []).append(cfg)
    for method, cfgs in by_method.items():
        large = cfgs[0].learning_rate
        rows, checkpoints = [], []
        for result in read_results(cfgs, preset.name, "tokens"):
            s = summarise_run(result)
            checkpoints.append(checkpoint_token_statistics(result))
            per_epoch = {}
            for rec in s["train_steps"]:
                e = per_epoch.setdefault(rec["epoch"], [0, 0, []])
                e[0] += rec["n_above"]
                e[1] += rec["n_tokens"]
                e[2].append(rec["tau"])
            rows.append({e: {"frac_above": a / max(n, 1), "tau": float(np.mean(taus))} for e, (a, n, taus) in sorted(per_epoch.items())})
        out["epochs"][method] = {"learning_rate": large, "per_seed": rows}
        out["checkpoints"][method] = {"learning_rate": large, "per_seed": checkpoints}
    return out


def checkpoint_token_statistics(result: dict) -> dict:
    """Per evaluation point of a run, ``{step: {"frac_above", "tau"}}``: the fraction of the held-out domain
    set's target tokens with p > 0.2 at that point (the same tokens at every point) and the mean TALR temperature
    over the training steps since the previous point. The view of the curriculum for a run shorter than two
    epochs, where there is no epoch over epoch to compare; empty for a diverged run."""
    if result.get("diverged"):
        return {}
    return {int(p["step"]): {"frac_above": float(p["heldout_stats"]["frac_above"]),
                             "tau": float(np.mean([t["tau"] for t in p["train_steps"]]))}
            for p in result["points"] if p.get("train_steps")}


# ----------------------------------------------------------------------------- experiment 4a


def single_step_theory(preset: Preset) -> dict:
    """Experiment 4a (module docstring): measured vs predicted one-step changes, per format and set (the stored record
    of :func:`sft_tilt.harness.base_model_analyses.single_step`)."""
    return stored_analysis(preset, "single_step")


def optimizer_step_analysis(preset: Preset) -> dict:
    """One step of SFT and TALR under SGD and under Adam at matched first-order domain gains (the stored record of
    :func:`sft_tilt.harness.optimizer_step.optimizer_step`)."""
    return stored_analysis(preset, "optimizer_step")


# ----------------------------------------------------------------------------- experiment 4b


def matched_gain(preset: Preset, fractions=(0.25, 0.5, 0.75, 1.0), require_early: bool = True) -> dict:
    """Experiment 4b: general change at matched domain gains ``target_gains`` (fractions of the smallest final
    gain over the grid) vs learning rate; per format ``{"target_gains", "cells": [{"target_gain", "learning_rate",
    "general_change", "general_change_sd", "n", "per_seed", "from_base"}], "monotone": {target_gain: bool}, "fit"}``
    (``from_base``: how many of the cell's seeds reach the target before their first evaluation point, their value a
    chord from the base model, :func:`from_base`)."""
    runs = lr_tradeoff(preset, require_early=require_early)
    out = {}
    for fmt in preset.formats:
        rows = [r for r in runs if r["fmt"] == fmt]
        if not rows:
            out[fmt] = {"target_gains": [], "cells": [], "monotone": {}, "fit": None, "note": "every run diverged"}
            continue
        targets = matched_targets([r["trajectory"] for r in rows], fractions)
        if not targets:
            out[fmt] = {"target_gains": [], "cells": [], "fit": None, "note": "a run made no domain gain"}
            continue
        cells = []
        for target in targets:
            for learning_rate in preset.learning_rate_grid:
                at_rate = [r for r in rows if r["learning_rate"] == learning_rate]
                per_seed = {int(r["seed"]): general_change_at_gain(r["trajectory"], target) for r in at_rate}
                per_seed = {s: float(v) for s, v in per_seed.items() if v is not None}
                vals = list(per_seed.values())
                if vals:
                    cells.append({"target_gain": target, "learning_rate": learning_rate, "general_change": float(np.mean(vals)),
                                  "general_change_sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"),
                                  "n": len(vals), "per_seed": per_seed,
                                  "from_base": sum(from_base(r["trajectory"], target) for r in at_rate)})
        monotone = {}
        for target in targets:
            gs = [c["general_change"] for c in cells if c["target_gain"] == target]
            monotone[target] = bool(all(b >= a for a, b in zip(gs[:-1], gs[1:])))
        fit = (sft_tilt.theory.fit_matched_gain_shapes([c["target_gain"] for c in cells], [c["learning_rate"] for c in cells],
                                              [c["general_change"] for c in cells])
               if len(cells) >= 3 else None)
        out[fmt] = {"target_gains": targets, "cells": cells, "monotone": monotone, "fit": fit}
    return out


#: The matched gains of :func:`saturation_matched_gain`, as fractions of a format's saturation gain: from where
#: every rate is still flat to where the gain approaches saturation and Theorem 3.1's lambda-term bites.
SATURATION_FRACTIONS = (0.2, 0.4, 0.6, 0.8, 0.9, 0.95)


def saturation_matched_gain(preset: Preset, fractions=SATURATION_FRACTIONS, require_early: bool = True) -> dict:
    """General change at matched gains over the whole gain range: per format, the saturation gain ``G_sat`` (the
    largest seed-mean final domain gain over the learning-rate grid) and, for each fraction ``f``, the general change
    where each run's own trajectory first reaches ``Delta* = f G_sat`` (:func:`general_change_at_gain`).

    Per format ``{"saturation_gain", "fractions", "target_gains", "learning_rates", "seeds", "general_change":
    [fraction, learning_rate, seed] array, "censored": same-shaped bool array}``: a run that never reaches a target is
    censored there (NaN in ``general_change``, True in ``censored``), not dropped; a seed with no run at a rate (every
    run diverged) is NaN and not censored."""
    fractions = tuple(float(f) for f in fractions)
    if not fractions or not all(0 < f <= 1 for f in fractions):
        raise ValueError(f"fractions: must be fractions of the saturation gain in (0, 1], got {fractions!r}")
    runs = lr_tradeoff(preset, require_early=require_early)
    lrs, seeds = list(preset.learning_rate_grid), sorted(int(s) for s in preset.seeds)
    out = {}
    for fmt in preset.formats:
        rows = [r for r in runs if r["fmt"] == fmt]
        finals = [np.mean([r["domain_gain"] for r in rows if r["learning_rate"] == lr]) for lr in lrs
                  if any(r["learning_rate"] == lr for r in rows)]
        saturation = float(max(finals)) if finals else float("nan")
        D = np.full((len(fractions), len(lrs), len(seeds)), np.nan)
        censored = np.zeros(D.shape, bool)
        if np.isfinite(saturation) and saturation > 0:
            for r in rows:
                j, k = lrs.index(r["learning_rate"]), seeds.index(int(r["seed"]))
                for i, f in enumerate(fractions):
                    v = general_change_at_gain(r["trajectory"], f * saturation)
                    if v is None:
                        censored[i, j, k] = True
                    else:
                        D[i, j, k] = v
        out[fmt] = {"saturation_gain": saturation, "fractions": list(fractions),
                    "target_gains": [f * saturation for f in fractions], "learning_rates": lrs, "seeds": seeds,
                    "general_change": D, "censored": censored}
    return out


# ----------------------------------------------------------------------------- experiment 4c


def safe_learning_rate(preset: Preset, require_early: bool = True) -> dict:
    """Experiment 4c: hard-token mass per format vs the largest grid learning rate with general loss increase
    ``<= safe_eps`` (final point, seed mean), and the same at the matched gain of experiment 4b."""
    runs = lr_tradeoff(preset, require_early=require_early)
    tokens = {"formats": target_token_statistics(preset)}  # the base model's alone: no method run needed
    mg = matched_gain(preset, require_early=require_early)
    out = {"eps": preset.safe_eps, "formats": {}}
    for fmt in preset.formats:
        by_rate = {eta: [r for r in runs if r["fmt"] == fmt and r["learning_rate"] == eta] for eta in preset.learning_rate_grid}
        # a learning rate whose every run diverged has no mean (NaN: never safe)
        general_final = {eta: float(np.mean([r["general_change"] for r in rs])) if rs else float("nan") for eta, rs in by_rate.items()}
        domain_final = {eta: float(np.mean([r["domain_gain"] for r in rs])) if rs else float("nan") for eta, rs in by_rate.items()}
        safe = [eta for eta in preset.learning_rate_grid if general_final[eta] <= preset.safe_eps]
        targets = mg[fmt]["target_gains"]
        cells = [c for c in mg[fmt]["cells"] if targets and abs(c["target_gain"] - targets[1]) < 1e-12]
        safe_matched = [c["learning_rate"] for c in cells if c["general_change"] <= preset.safe_eps]
        out["formats"][fmt] = {
            "hard_token_mass": tokens["formats"][fmt]["hard_token_mass"],
            "hard_fraction": tokens["formats"][fmt]["hard_fraction"],
            "general_change_final": general_final,
            "domain_gain_final": domain_final,
            "safe_learning_rate": max(safe) if safe else None,
            "safe_learning_rate_matched": max(safe_matched) if safe_matched else None,
        }
    return out


# ----------------------------------------------------------------------------- experiment 4d


def _stats(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size)  # no spread from one seed


def method_front(preset: Preset, require_early: bool = True) -> dict:
    """Experiment 4d: per method and learning rate, mean +- sd over seeds of ``domain_gain``, ``general_change`` and
    ``general_change_per_gain`` (their ratio), and ``general_change_front``, the SFT learning-rate curve's general
    change interpolated at the method's domain gain (negative ``below_front``: better than SFT). ``learning_rate`` is
    the slot of ``comparison_learning_rates`` (small or large) a row stands for, ``method_learning_rate`` the rate the
    method trained at there."""
    runs = method_comparison(preset)
    sft_curve = lr_tradeoff(preset, require_early=require_early)
    cot = [[r for r in sft_curve if r["fmt"] == "cot" and r["learning_rate"] == eta] for eta in preset.learning_rate_grid]
    pts = sorted((float(np.mean([r["domain_gain"] for r in rs])), float(np.mean([r["general_change"] for r in rs])))
                 for rs in cot if rs)  # a learning rate whose every run diverged has no point
    # the SFT front: seed-mean (G, D) per learning rate, from the base model (0, 0) on, ordered by G
    front_gain = np.array([0.0] + [p[0] for p in pts])
    front_change = np.array([0.0] + [p[1] for p in pts])
    order = np.argsort(front_gain)
    front_gain, front_change = front_gain[order], front_change[order]
    rows = []
    names = ["sft"] + [m for m in preset.methods if not get_method(m).averaging] + _averaging_methods(preset)
    for i, slot in enumerate(preset.comparison_learning_rates):
        for m in names:
            own = preset.learning_rates_of(m)[i]
            if get_method(m).averaging:
                for alpha in preset.averaging_alphas:
                    sel = [r for r in runs if r["method"] == m and r["learning_rate"] == own and r.get("alpha") == alpha]
                    rows.append({**_front_row(f"{m}({alpha:g})", slot, sel, front_gain, front_change, m, alpha),
                                 "method_learning_rate": own})
            else:
                sel = [r for r in runs if r["method"] == m and r["learning_rate"] == own]
                rows.append({**_front_row(m, slot, sel, front_gain, front_change, m), "method_learning_rate": own})
    return {"rows": rows, "front": {"domain_gain": front_gain.tolist(), "general_change": front_change.tolist()}}


def _front_row(name, learning_rate, sel, front_gain, front_change, method_name, alpha=None) -> dict:
    """One row of the front table; ``method`` is the displayed name (``averaging(0.5)``), ``method_name`` the
    registry key (the figures' style lookup), ``alpha`` the mixing weight of an averaging row."""
    gain, gain_sd, n = _stats([r["domain_gain"] for r in sel])
    change, change_sd, _ = _stats([r["general_change"] for r in sel])
    ratio, ratio_sd, _ = _stats([r["general_change"] / r["domain_gain"] if r["domain_gain"] > 0 else None for r in sel])
    acc, _, _ = _stats([r.get("accuracy") for r in sel])
    inside = n > 0 and front_gain[0] <= gain <= front_gain[-1]
    change_front = float(np.interp(gain, front_gain, front_change)) if n > 0 else float("nan")
    return {"method": name, "method_name": method_name, "alpha": alpha, "learning_rate": learning_rate,
            "domain_gain": gain, "domain_gain_sd": gain_sd, "general_change": change, "general_change_sd": change_sd,
            "general_change_per_gain": ratio, "general_change_per_gain_sd": ratio_sd, "n": n, "accuracy": acc,
            "general_change_front": change_front, "below_front": change - change_front, "within_front_range": bool(inside),
            "per_seed": [{"seed": r["seed"], "domain_gain": r["domain_gain"], "general_change": r["general_change"]} for r in sel]}


def read_all(preset: Preset, require_early: bool = True) -> dict:
    """Every experiment of ``preset``, read from stored results (``require_early``: as in :func:`lr_tradeoff`)."""
    return {
        "learning_rate_tradeoff": lr_tradeoff(preset, require_early=require_early),
        "method_comparison": method_comparison(preset),
        "token_analysis": token_analysis(preset),
        "single_step": single_step_theory(preset),
        "matched_gain": matched_gain(preset, require_early=require_early),
        "safe_learning_rate": safe_learning_rate(preset, require_early=require_early),
        "method_front": method_front(preset, require_early=require_early),
        "diverged": list({s["key"]: s for s in lr_tradeoff(preset, include_diverged=True, require_early=False)
                          + method_comparison(preset, include_diverged=True) if s["diverged"]}.values()),
        "collapsed": list({s["key"]: s for s in lr_tradeoff(preset, include_diverged=True, require_early=False)
                           + method_comparison(preset, include_diverged=True)
                           if s["collapsed"] and not s["diverged"]}.values()),
    }
