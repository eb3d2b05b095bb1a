"""Claim 18 (a prediction of the tilt model): the degradation per unit domain gain grows with the learning rate,
and TALR lowers it mainly at large learning rates.

Synthetic setting: D(Delta*) / Delta* of SFT and TALR (mean-one weights, ``talr-mean``) at matched gain per learning
rate, paired by seed. Real-LM
setting: D / G of SFT at the end of training over the learning-rate grid, and SFT minus TALR at the two method
learning rates.
"""

from __future__ import annotations

import numpy as np

from claims import real_lm_results as real
from claims import synthetic_results as synth
from claims.intervals import paired_interval, side
from claims.registry import NO_THRESHOLD, Verdict, check, rule_of
from claims.token_vs_sample_weighting import matched_means

__all__ = ["measure_synthetic", "decide_synthetic", "describe_synthetic", "measure_real_lm", "decide_real_lm", "describe_real_lm"]


def measure_synthetic() -> dict:
    """Per seed and step size, D(Δ*) / Δ* of SFT and of TALR (mean-one weights: equal effective step)."""
    from sims.synthetic.experiments.methods import COMPARED_TALR

    _, r = synth.methods()
    d = float(r["target_gain"])
    return {"target_gain": d, "lrs": [float(x) for x in r["lrs"]], "n_seeds": len(r["seeds"]), "talr_name": COMPARED_TALR,
            "sft": synth.method_arrays(r, "SFT")["matched"] / d, "talr": synth.method_arrays(r, COMPARED_TALR)["matched"] / d}


def _parts(m: dict):
    """(increasing, mainly_large) each "seen" / "contradicted" / "undecided", and the intervals behind them."""
    sft, talr = np.asarray(m["sft"], float), np.asarray(m["talr"], float)
    ok = [j for j in range(sft.shape[1]) if np.isfinite(sft[:, j]).all()]
    steps = [paired_interval(sft[:, b], sft[:, a]) for a, b in zip(ok[:-1], ok[1:])]
    s1 = [side(iv) for iv in steps]
    inc = "undecided" if len(ok) < 2 else "seen" if all(x == "above" for x in s1) else "contradicted" if "below" in s1 else "undecided"
    both = [j for j in ok if np.isfinite(talr[:, j]).all()]
    red = {j: sft[:, j] - talr[:, j] for j in both}
    last = sft.shape[1] - 1
    if last not in red or len(both) < 2:
        return inc, "undecided", steps, {}
    at_large = paired_interval(red[last])
    vs_other = [paired_interval(red[last], red[j]) for j in both if j != last]
    sides = [side(at_large)] + [side(iv) for iv in vs_other]
    large = "seen" if all(x == "above" for x in sides) else "contradicted" if "below" in sides else "undecided"
    return inc, large, steps, {"reduction at the largest lr": at_large, **{f"minus at lr {m['lrs'][j]:g}": iv for j, iv in zip([j for j in both if j != last], vs_other)}}


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Two parts, each decided by 95% t intervals of paired (same seed) differences: SFT's D/Δ* rises from each step
    size to the next (every interval above 0), and TALR's reduction SFT - TALR at the largest step size is above 0
    and above its reduction at every smaller one. Holds when both are seen; partly holds when one is seen and the
    other contradicted (an interval below 0); fails when none is seen and one is contradicted; inconclusive otherwise.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    inc, large, _, _ = _parts(m)
    parts = {"SFT's D/Δ* increasing in lr": inc, "TALR's reduction largest at the largest lr": large}
    seen = [k for k, v in parts.items() if v == "seen"]
    contra = [k for k, v in parts.items() if v == "contradicted"]
    if len(seen) == 2:
        return "holds", "both parts seen with 95% confidence."
    if seen and contra:
        return "partly holds", f"seen: {seen}; contradicted: {contra}."
    if contra:
        return "fails", f"contradicted: {contra}; undecided: {[k for k, v in parts.items() if v == 'undecided']}."
    return "inconclusive", f"seen: {seen}; undecided: {[k for k, v in parts.items() if v == 'undecided']}."


def ours_synthetic(m: dict) -> str:
    _, _, steps, red = _parts(m)
    return ("SFT D/Δ* step to next lr: " + ", ".join(iv.text() for iv in steps) + "; SFT − TALR: "
            + ", ".join(f"{k} {iv.text()}" for k, iv in red.items()))


def describe_synthetic(m: dict) -> str:
    mean = lambda x: np.round(matched_means(x), 4).tolist()  # noqa: E731
    return (f"D/Δ* at Δ* = {m['target_gain']:g} vs lr {m['lrs']} (mean over {m['n_seeds']} seeds, NaN where a seed never reaches Δ*): "
            f"SFT {mean(m['sft'])}; TALR = {m['talr_name']} (talr-mean, mean-one weights) {mean(m['talr'])}. Paired 95% t intervals: {ours_synthetic(m)}.")


@check(18, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_methods_pareto"), ours=ours_synthetic(m),
                   seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic), sensitivity=NO_THRESHOLD + " (signs of paired differences)")


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
