"""Claim 18 (a prediction of the tilt model): the degradation per unit domain gain grows with the learning rate,
and TALR lowers it mainly at large learning rates.

Synthetic setting: D(Delta*) / Delta* of SFT and TALR at matched gain per learning rate (mean over seeds). Real-LM
setting: D / G of SFT at the end of training over the learning-rate grid, and SFT minus TALR at the two method
learning rates.
"""

from __future__ import annotations

import numpy as np

from claims import real_lm_results as real
from claims import synthetic_results as synth
from claims.registry import Verdict, check
from claims.token_vs_sample_weighting import matched_means

__all__ = ["measure_synthetic", "decide_synthetic", "describe_synthetic", "measure_real_lm", "decide_real_lm", "describe_real_lm"]


def measure_synthetic() -> dict:
    _, r = synth.methods()
    d = float(r["target_gain"])
    return {"target_gain": d, "lrs": np.asarray(r["lrs"]),
            "sft": matched_means(r["per_method"]["SFT"]["matched_degradation"]) / d,
            "talr": matched_means(r["per_method"]["TALR (dynamic tau)"]["matched_degradation"]) / d}


def _synthetic_criteria(m: dict):
    sft, talr = np.asarray(m["sft"], float), np.asarray(m["talr"], float)
    ok = np.isfinite(sft)
    increasing = bool(ok.sum() >= 2 and np.all(np.diff(sft[ok]) > 0))
    both = ok & np.isfinite(talr)
    red = sft[both] - talr[both]
    mainly_large = bool(both.sum() >= 2 and both[-1] and red[-1] > 0 and red[-1] == red.max())
    return increasing, mainly_large, red


def decide_synthetic(m: dict) -> tuple[str, str]:
    """Holds when SFT's D/Delta* strictly increases with the learning rate and TALR's reduction is positive and
    largest at the largest learning rate; partly holds when one of the two is seen; fails otherwise."""
    increasing, mainly_large, _ = _synthetic_criteria(m)
    failed = [n for n, ok in [("SFT's D/Δ* increasing in lr", increasing), ("TALR's reduction largest at the largest lr", mainly_large)] if not ok]
    if not failed:
        return "holds", "both parts seen."
    return ("partly holds" if len(failed) == 1 else "fails"), "not met: " + "; ".join(failed) + "."


def describe_synthetic(m: dict) -> str:
    _, _, red = _synthetic_criteria(m)
    return (f"SFT degradation per unit gain D/Δ* at Δ* = {m['target_gain']:g} vs lr {np.asarray(m['lrs']).tolist()}: "
            f"{np.round(m['sft'], 4).tolist()}; TALR (dynamic τ): {np.round(m['talr'], 4).tolist()}; reduction SFT - TALR where both reach "
            f"Δ*: {np.round(red, 4).tolist()} (negative = TALR worse).")


@check(18, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_methods_pareto"))


def measure_real_lm() -> dict:
    from sims.harness.experiments import lr_tradeoff

    p = real.preset()
    runs = lr_tradeoff(p, progress=False)
    ratios = []
    for lr in p.lr_grid:
        sel = [r["general_change"] / r["domain_gain"] for r in runs if r["fmt"] == "cot" and r["lr"] == lr and r["domain_gain"] > 0]
        ratios.append(float(np.mean(sel)) if sel else float("nan"))
    reduction = {}
    for name, lr in zip(("small", "large"), p.method_lrs):
        rows = real.method_rows(p, lr)
        if "talr" in rows and "sft" in rows:
            reduction[name] = rows["sft"]["general_change_per_gain"] - rows["talr"]["general_change_per_gain"]
    return {"lr_grid": list(p.lr_grid), "ratios": ratios, "reduction": reduction}


def decide_real_lm(m: dict) -> tuple[str, str]:
    """Holds when SFT's D/G is finite and non-decreasing over the lr grid and TALR's reduction is positive and
    larger at the large than at the small lr; partly holds when one of the two is seen; fails otherwise (a NaN
    reduction, where TALR made no domain gain, does not count as a reduction)."""
    r = np.asarray(m["ratios"], float)
    increasing = bool(np.all(np.isfinite(r)) and np.all(np.diff(r) >= 0))
    red = m["reduction"]
    at_large = bool(len(red) == 2 and red["large"] > red["small"] and red["large"] > 0)
    failed = [n for n, ok in [("SFT's D/G non-decreasing in lr", increasing), ("TALR's reduction larger at the large lr", at_large)] if not ok]
    if not failed:
        return "holds", "both parts seen."
    return ("partly holds" if len(failed) == 1 else "fails"), "not met: " + "; ".join(failed) + "."


def describe_real_lm(m: dict) -> str:
    return (f"Prediction: D/G grows with lr; TALR lowers it mainly at large lr. Ours (SFT, CoT) D/G by lr "
            f"{ {f'{lr:g}': round(x, 3) for lr, x in zip(m['lr_grid'], m['ratios'])} }; SFT minus TALR D/G: "
            f"{ {k: round(v, 3) for k, v in m['reduction'].items()} }. " + real.DIRECTIONS)


@check(18, real.setting(), real.GROUP, figures=("real_lm_lr_tradeoff", "real_lm_methods_pareto"))
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command())
