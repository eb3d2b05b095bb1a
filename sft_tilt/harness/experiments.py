"""The paper's experiments on a real LM, and the theory held against them.

1. :func:`lr_tradeoff`: SFT over a grid of learning rates, both response formats (the paper's Figure 1).
2. :func:`method_comparison`: every method at a small and a large learning rate, several seeds (Figure 2,
   Tables 1-2); model averaging evaluated on the SFT runs over a grid of mixing weights.
3. :func:`token_analysis`: target-token probabilities under the base model, where the hard tokens are,
   and the fraction of training tokens with ``p > 0.2`` per epoch for SFT and TALR (Figure 3).
4. Theory against measurement:
   (a) :func:`single_step_theory`: one optimiser step ``theta_1 = theta_0 + lam d`` (``d`` the step
       direction at unit learning rate: ``-g`` for SGD, ``-g / (|g| + eps)`` for Adam's first step, so the
       step is exactly linear in ``lam``); for every set ``S`` the second-order prediction
           dL_S(lam) ~ lam <grad L_S, d> + lam^2 / 2  d^T H_S d
       (gradient inner product by ``jax.grad``, curvature along the step by ``jax.jvp`` of the gradient)
       against the measured ``L_S(theta_1) - L_S(theta_0)`` (held-out domain set and every general set).
   (b) :func:`matched_gain`: general loss change at a matched domain gain (``target_gain``, the theory's
       ``Delta*``) against learning rate, with the two fit shapes ``general_change = k1 Delta* + k2 Delta* lam`` and
       ``general_change = k1 Delta* + k2 Delta*^2 lam`` (least squares).
   (c) :func:`safe_lr`: hard-token mass of the training targets (``sft_tilt.theory.hard_token_mass``) in the two
       formats against the largest learning rate of the grid whose general loss increase stays below
       ``eps`` (Theorem 3.2's claim: fewer hard tokens, larger safe step).
   (d) :func:`method_front`: which methods move the matched-gain front (their general change at their own
       domain gain, against the SFT learning-rate curve interpolated at that gain).

Every quantity is stored under its name, never under a letter: ``domain_gain`` (held-out domain loss decrease,
the theory's ``G``; > 0 when the domain loss falls), ``general_change`` (mean general loss increase over the
general sets, the theory's ``D``; > 0 is degradation), ``general_change_sets`` (per general set), with ``_sd``
(standard deviation over seeds) and ``_final`` (final point of training) forms, and ``target_gain`` (the matched
domain gain ``Delta*``).

Every function reads finished runs through the run cache (:mod:`sft_tilt.harness.runs`), so calling it again
costs nothing; what is measured on the base model alone (target-token statistics, the single-step theory) is cached
and committed like the runs (:mod:`sft_tilt.harness.base_model_analyses`).
"""

from __future__ import annotations

from dataclasses import replace
import warnings

import numpy as np

from sft_tilt.harness.presets import Preset
from sft_tilt.harness.runs import RunConfig, run_many
import sft_tilt.theory
from sft_tilt.methods.registry import get_method, registered_methods

__all__ = [
    "general_change_at_gain",
    "gain_crossing",
    "from_base",
    "matched_targets",
    "sft_config",
    "method_config",
    "sft_configs",
    "method_configs",
    "token_configs",
    "lr_tradeoff",
    "method_comparison",
    "token_analysis",
    "checkpoint_token_statistics",
    "single_step_theory",
    "matched_gain",
    "safe_lr",
    "method_front",
    "summarise_run",
    "run_all",
]


# ----------------------------------------------------------------------------- run configurations


def _run(preset: Preset, method: str, learning_rate: float, fmt: str, seed: int, **kw) -> RunConfig:
    return RunConfig(
        model=preset.resolved_model(), tokenizer=preset.tokenizer, data=preset.data, fmt=fmt, method=preset.method(method),
        learning_rate=learning_rate, optimizer=preset.optimizer, batch_size=preset.batch_size, steps=preset.steps, eval_every=preset.eval_every,
        seed=seed, mesh=preset.mesh, schedule=preset.schedule, warmup_steps=preset.warmup_steps, engine=preset.engine,
        **kw,
    )


def sft_config(preset: Preset, learning_rate: float, fmt: str, seed: int) -> RunConfig:
    """An SFT run (the baseline of every experiment); on chain-of-thought at the method-comparison learning rates
    it also evaluates model averaging, so experiments 1 and 2 share it."""
    averaging = preset.averaging_alphas if (fmt == "cot" and learning_rate in preset.method_lrs) else ()
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


def summarise_run(result: dict) -> dict:
    """The compact view of a run the figures and checks use: final ``domain_gain``, ``general_change`` and
    ``general_change_sets``; ``trajectory`` as ``(step, domain_gain, general_change)`` tuples from the base model
    ``(0, 0.0, 0.0)`` on; accuracy; model-averaging points with the same keys.

    A diverged run (``result["diverged"]``) has no final evaluation: its view is the run's identity,
    ``diverged: True``, the step where it diverged and its training-step records.
    """
    cfg = result["config"]
    pts = result["points"]
    final = pts[-1]
    ident = {"method": cfg["method_name"], "fmt": cfg["fmt"], "lr": cfg["learning_rate"], "seed": cfg["seed"]}
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


def _finished(summaries: list[dict], include_diverged: bool, what: str) -> list[dict]:
    """The summaries of runs that finished; diverged ones are left out with a warning naming them."""
    if include_diverged:
        return summaries
    for s in summaries:
        if s["diverged"]:
            warnings.warn(f"{what}: run {s['key']} ({s['method']} {s['fmt']} lr={s['lr']:g} seed={s['seed']}) diverged at "
                          f"step {s['diverged_step']}; left out of the aggregates")
    return [s for s in summaries if not s["diverged"]]


def sft_configs(preset: Preset) -> list[RunConfig]:
    """The runs of experiment 1: SFT over ``formats`` x ``lr_grid`` x ``seeds``."""
    return [sft_config(preset, lr, fmt, seed) for fmt in preset.formats for lr in preset.lr_grid for seed in preset.seeds]


def method_configs(preset: Preset) -> list[RunConfig]:
    """The runs of experiment 2: ``sft`` and every trained method at its (small, large) learning rates x ``seeds``."""
    trained = [m for m in ("sft",) + tuple(preset.methods) if not get_method(m).averaging]
    return [method_config(preset, m, lr, seed) for i in range(2) for m in trained for lr in [preset.learning_rates_of(m)[i]]
            for seed in preset.seeds]


def token_configs(preset: Preset) -> list[RunConfig]:
    """The runs whose per-epoch token statistics experiment 3 reads: SFT and the compared TALR at the large
    method learning rate."""
    methods = ["sft"] + ([preset.compared_talr] if preset.compared_talr in preset.methods else [])
    return [method_config(preset, m, preset.learning_rates_of(m)[-1], seed) for m in methods for seed in preset.seeds]


def lr_tradeoff(preset: Preset, progress: bool = True, include_diverged: bool = False) -> list[dict]:
    """Experiment 1: SFT runs over ``lr_grid`` x ``formats`` x ``seeds`` (summaries; diverged runs only with
    ``include_diverged``); trajectories filled in before step ``preset.early_until`` from the stored early points
    where there are some (:func:`sft_tilt.harness.early_points.with_early`)."""
    from sft_tilt.harness.early_points import with_early

    cfgs = sft_configs(preset)
    results = run_many(cfgs, progress=progress, desc="exp1 learning-rate grid")
    summaries = with_early([summarise_run(r) for r in results], {r["key"]: r for r in results}, preset.early_until)
    return _finished(summaries, include_diverged, "exp1 learning-rate grid")


def method_comparison(preset: Preset, progress: bool = True, include_diverged: bool = False) -> list[dict]:
    """Experiment 2: ``sft`` + ``methods`` at each of their (small, large) learning rates (``method_lrs`` or the
    method's own, :meth:`Preset.learning_rates_of`) and ``seeds`` (chain-of-thought);
    model averaging rows come from the SFT runs (``method`` = the registered averaging method, one row per
    mixing weight); diverged runs only with ``include_diverged``."""
    from sft_tilt.harness.early_points import with_early

    cfgs = method_configs(preset)
    averaging = {get_method(m).trains_as: m for m in (_averaging_methods(preset))}
    out = []
    results = run_many(cfgs, progress=progress, desc="exp2 methods")
    # the SFT runs shared with the learning-rate grid get the same early points there as here
    summaries = with_early([summarise_run(r) for r in results], {r["key"]: r for r in results}, preset.early_until)
    for s in _finished(summaries, include_diverged, "exp2 methods"):
        out.append(s)
        if s["diverged"]:
            continue
        name = averaging.get(s["method"])
        for a in s["averaging"] if name else ():
            out.append({**s, "method": name, "alpha": a["alpha"], "domain_gain": a["domain_gain"],
                        "general_change": a["general_change"], "general_change_sets": a["general_change_sets"],
                        "trajectory": None, "accuracy": None, "averaging": []})
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


def token_analysis(preset: Preset, progress: bool = True) -> dict:
    """Experiment 3: ``{"formats": base-model target-token statistics per format
    (:func:`sft_tilt.harness.base_model_analyses.target_token_statistics`), "epochs": {method: {"lr", "per_seed"}},
    "checkpoints": {method: {"lr", "per_seed"}}}`` with, per seed and epoch, the fraction of training tokens with
    p > 0.2 and the mean TALR temperature, and per seed and evaluation point the same read on the held-out domain
    set (:func:`checkpoint_token_statistics`)."""
    from sft_tilt.harness.base_model_analyses import target_token_statistics

    out = {"formats": target_token_statistics(preset, progress), "epochs": {}, "checkpoints": {}}
    # fraction of training tokens with p > 0.2 per epoch (measured on each step's batch before its update)
    from sft_tilt.harness.runs import run_one

    by_method: dict[str, list[RunConfig]] = {}
    for cfg in token_configs(preset):
        by_method.setdefault(cfg.method.name, []).append(cfg)
    for method, cfgs in by_method.items():
        large = cfgs[0].learning_rate
        rows, checkpoints = [], []
        for cfg in cfgs:
            result = run_one(cfg, progress=progress)
            s = summarise_run(result)
            checkpoints.append(checkpoint_token_statistics(result))
            per_epoch = {}
            for rec in s["train_steps"]:
                e = per_epoch.setdefault(rec["epoch"], [0, 0, []])
                e[0] += rec["n_above"]
                e[1] += rec["n_tokens"]
                e[2].append(rec["tau"])
            rows.append({e: {"frac_above": a / max(n, 1), "tau": float(np.mean(taus))} for e, (a, n, taus) in sorted(per_epoch.items())})
        out["epochs"][method] = {"lr": large, "per_seed": rows}
        out["checkpoints"][method] = {"lr": large, "per_seed": checkpoints}
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


def single_step_theory(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4a (module docstring): measured vs predicted one-step changes, per format and set
    (:func:`sft_tilt.harness.base_model_analyses.single_step`)."""
    from sft_tilt.harness.base_model_analyses import single_step

    return single_step(preset, progress)


# ----------------------------------------------------------------------------- experiment 4b


def gain_crossing(traj, target_gain):
    """Where the trajectory ``(step, domain_gain, general_change)`` first reaches domain gain ``target_gain``:
    ``(general_change, s0, s1)``, the general change interpolated linearly between the evaluation points at steps
    ``s0`` and ``s1`` that bracket the target; None if it never does. ``s0`` is the trajectory's first step (the base
    model) when the target lies below the first evaluation point's gain: the value is then a chord from the base
    model, as coarse as that first interval."""
    for (s0, d0, g0), (s1, d1, g1) in zip(traj[:-1], traj[1:]):
        if d0 < target_gain <= d1:
            t = (target_gain - d0) / (d1 - d0)
            return g0 + t * (g1 - g0), s0, s1
    return None


def general_change_at_gain(traj, target_gain):
    """General change where the trajectory ``(step, domain_gain, general_change)`` first reaches domain gain
    ``target_gain`` (linear interpolation between evaluation points); None if it never does."""
    hit = gain_crossing(traj, target_gain)
    return None if hit is None else hit[0]


def from_base(traj, target_gain) -> bool:
    """Whether ``target_gain`` is first reached between the trajectory's first point (the base model) and the next,
    so its matched-gain value is a chord from the base model (:func:`gain_crossing`)."""
    hit = gain_crossing(traj, target_gain)
    return hit is not None and hit[1] == traj[0][0]


def matched_targets(trajectories, fractions) -> list[float]:
    """The matched domain gains ``f * reach`` for each fraction ``f``, ``reach`` being the smallest over the
    trajectories ``(step, domain_gain, general_change)`` of their largest gain, so every trajectory reaches every
    target; empty when some trajectory never gains."""
    reach = min(max(g for _, g, _ in traj) for traj in trajectories)
    return [f * reach for f in fractions] if reach > 0 else []


def matched_gain(preset: Preset, progress: bool = True, fractions=(0.25, 0.5, 0.75, 1.0)) -> dict:
    """Experiment 4b: general change at matched domain gains ``target_gains`` (fractions of the smallest final
    gain over the grid) vs learning rate; per format ``{"target_gains", "cells": [{"target_gain", "lr",
    "general_change", "general_change_sd", "n", "per_seed", "from_base"}], "monotone": {target_gain: bool}, "fit"}``
    (``from_base``: how many of the cell's seeds reach the target before their first evaluation point, their value a
    chord from the base model, :func:`from_base`)."""
    runs = lr_tradeoff(preset, progress)
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
            for lr in preset.lr_grid:
                at_lr = [r for r in rows if r["lr"] == lr]
                per_seed = {int(r["seed"]): general_change_at_gain(r["trajectory"], target) for r in at_lr}
                per_seed = {s: float(v) for s, v in per_seed.items() if v is not None}
                vals = list(per_seed.values())
                if vals:
                    cells.append({"target_gain": target, "lr": lr, "general_change": float(np.mean(vals)),
                                  "general_change_sd": float(np.std(vals, ddof=1)) if len(vals) > 1 else float("nan"),
                                  "n": len(vals), "per_seed": per_seed,
                                  "from_base": sum(from_base(r["trajectory"], target) for r in at_lr)})
        monotone = {}
        for target in targets:
            gs = [c["general_change"] for c in cells if c["target_gain"] == target]
            monotone[target] = bool(all(b >= a for a, b in zip(gs[:-1], gs[1:])))
        fit = (sft_tilt.theory.fit_matched_gain_shapes([c["target_gain"] for c in cells], [c["lr"] for c in cells],
                                              [c["general_change"] for c in cells])
               if len(cells) >= 3 else None)
        out[fmt] = {"target_gains": targets, "cells": cells, "monotone": monotone, "fit": fit}
    return out


# ----------------------------------------------------------------------------- experiment 4c


def safe_lr(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4c: hard-token mass per format vs the largest grid learning rate with general loss increase
    ``<= safe_eps`` (final point, seed mean), and the same at the matched gain of experiment 4b."""
    from sft_tilt.harness.base_model_analyses import target_token_statistics

    runs = lr_tradeoff(preset, progress)
    tokens = {"formats": target_token_statistics(preset, progress)}  # the base model's alone: no method run needed
    mg = matched_gain(preset, progress)
    out = {"eps": preset.safe_eps, "formats": {}}
    for fmt in preset.formats:
        by_lr = {lr: [r for r in runs if r["fmt"] == fmt and r["lr"] == lr] for lr in preset.lr_grid}
        # a learning rate whose every run diverged has no mean (NaN: never safe)
        general_final = {lr: float(np.mean([r["general_change"] for r in rs])) if rs else float("nan") for lr, rs in by_lr.items()}
        domain_final = {lr: float(np.mean([r["domain_gain"] for r in rs])) if rs else float("nan") for lr, rs in by_lr.items()}
        safe = [lr for lr in preset.lr_grid if general_final[lr] <= preset.safe_eps]
        targets = mg[fmt]["target_gains"]
        cells = [c for c in mg[fmt]["cells"] if targets and abs(c["target_gain"] - targets[1]) < 1e-12]
        safe_matched = [c["lr"] for c in cells if c["general_change"] <= preset.safe_eps]
        out["formats"][fmt] = {
            "hard_token_mass": tokens["formats"][fmt]["hard_token_mass"],
            "hard_fraction": tokens["formats"][fmt]["hard_fraction"],
            "general_change_final": general_final,
            "domain_gain_final": domain_final,
            "safe_lr": max(safe) if safe else None,
            "safe_lr_matched": max(safe_matched) if safe_matched else None,
        }
    return out


# ----------------------------------------------------------------------------- experiment 4d


def _stats(values) -> tuple[float, float, int]:
    v = np.asarray([x for x in values if x is not None], float)
    if v.size == 0:
        return float("nan"), float("nan"), 0
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else float("nan"), int(v.size)  # no spread from one seed


def method_front(preset: Preset, progress: bool = True) -> dict:
    """Experiment 4d: per method and learning rate, mean +- sd over seeds of ``domain_gain``, ``general_change`` and
    ``general_change_per_gain`` (their ratio), and ``general_change_front``, the SFT learning-rate curve's general
    change interpolated at the method's domain gain (negative ``below_front``: better than SFT). ``lr`` is the slot
    of ``method_lrs`` (small or large) a row stands for, ``method_lr`` the rate the method trained at there."""
    runs = method_comparison(preset, progress)
    sft_curve = lr_tradeoff(preset, progress)
    cot = [[r for r in sft_curve if r["fmt"] == "cot" and r["lr"] == lr] for lr in preset.lr_grid]
    pts = sorted((float(np.mean([r["domain_gain"] for r in rs])), float(np.mean([r["general_change"] for r in rs])))
                 for rs in cot if rs)  # a learning rate whose every run diverged has no point
    front_d = np.array([0.0] + [p[0] for p in pts])
    front_g = np.array([0.0] + [p[1] for p in pts])
    order = np.argsort(front_d)
    front_d, front_g = front_d[order], front_g[order]
    rows = []
    names = ["sft"] + [m for m in preset.methods if not get_method(m).averaging] + _averaging_methods(preset)
    for i, lr in enumerate(preset.method_lrs):
        for m in names:
            own = preset.learning_rates_of(m)[i]
            if get_method(m).averaging:
                for alpha in preset.averaging_alphas:
                    sel = [r for r in runs if r["method"] == m and r["lr"] == own and r.get("alpha") == alpha]
                    rows.append({**_front_row(f"{m}({alpha:g})", lr, sel, front_d, front_g, m, alpha), "method_lr": own})
            else:
                sel = [r for r in runs if r["method"] == m and r["lr"] == own]
                rows.append({**_front_row(m, lr, sel, front_d, front_g, m), "method_lr": own})
    return {"rows": rows, "front": {"domain_gain": front_d.tolist(), "general_change": front_g.tolist()}}


def _front_row(name, lr, sel, front_d, front_g, method_name, alpha=None) -> dict:
    """One row of the front table; ``method`` is the displayed name (``averaging(0.5)``), ``method_name`` the
    registry key (the figures' style lookup), ``alpha`` the mixing weight of an averaging row."""
    d, d_sd, n = _stats([r["domain_gain"] for r in sel])
    g, g_sd, _ = _stats([r["general_change"] for r in sel])
    ratio, ratio_sd, _ = _stats([r["general_change"] / r["domain_gain"] if r["domain_gain"] > 0 else None for r in sel])
    acc, _, _ = _stats([r.get("accuracy") for r in sel])
    inside = n > 0 and front_d[0] <= d <= front_d[-1]
    g_front = float(np.interp(d, front_d, front_g)) if n > 0 else float("nan")
    return {"method": name, "method_name": method_name, "alpha": alpha, "lr": lr, "domain_gain": d, "domain_gain_sd": d_sd,
            "general_change": g, "general_change_sd": g_sd,
            "general_change_per_gain": ratio, "general_change_per_gain_sd": ratio_sd, "n": n, "accuracy": acc,
            "general_change_front": g_front, "below_front": g - g_front, "within_front_range": bool(inside),
            "per_seed": [{"seed": r["seed"], "domain_gain": r["domain_gain"], "general_change": r["general_change"]} for r in sel]}


def run_all(preset: Preset, progress: bool = True) -> dict:
    """Every experiment (cached runs shared between them)."""
    return {
        "lr_tradeoff": lr_tradeoff(preset, progress),
        "method_comparison": method_comparison(preset, progress),
        "token_analysis": token_analysis(preset, progress),
        "single_step": single_step_theory(preset, progress),
        "matched_gain": matched_gain(preset, progress),
        "safe_lr": safe_lr(preset, progress),
        "method_front": method_front(preset, progress),
        "diverged": list({s["key"]: s for s in lr_tradeoff(preset, False, include_diverged=True)
                          + method_comparison(preset, False, include_diverged=True) if s["diverged"]}.values()),
    }
