"""Claim 18 (a prediction of the tilt model): the degradation per unit domain gain grows with the learning rate,
and TALR lowers it mainly at large learning rates.

Synthetic setting: D(Delta*) / Delta* of SFT and TALR (mean-one weights, ``talr-mean``) at matched gain per learning
rate, paired by seed. Real-LM
setting: D / G of SFT at the end of training over the learning-rate grid, and SFT minus TALR at the two method
learning rates, each paired by seed.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import NO_THRESHOLD, Verdict, check, rule_of
from sft_tilt.claims.token_vs_sample_weighting import matched_means

__all__ = ["measure_synthetic", "decide_synthetic", "describe_synthetic", "measure_real_lm", "decide_real_lm", "describe_real_lm",
           "ours_real_lm"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods whose comparison runs it reads besides SFT's.
METHODS = ("talr",)


def measure_synthetic() -> dict:
    """Per seed and step size, D(Δ*) / Δ* of SFT and of TALR (mean-one weights: equal effective step)."""
    from sft_tilt.synthetic.experiments.methods import COMPARED_TALR

    _, r = synth.methods()
    d = float(r["target_gain"])
    return {"target_gain": d, "learning_rates": [float(x) for x in r["learning_rates"]], "n_seeds": len(r["seeds"]), "talr_name": COMPARED_TALR,
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
    return inc, large, steps, {"reduction at the largest lr": at_large, **{f"minus at lr {m['learning_rates'][j]:g}": iv for j, iv in zip([j for j in both if j != last], vs_other)}}


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
    return (f"D/Δ* at Δ* = {m['target_gain']:g} vs lr {m['learning_rates']} (mean over {m['n_seeds']} seeds, NaN where a seed never reaches Δ*): "
            f"SFT {mean(m['sft'])}; TALR = {m['talr_name']} (talr-mean, mean-one weights) {mean(m['talr'])}. Paired 95% t intervals: {ours_synthetic(m)}.")


@check(18, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_methods_pareto"), ours=ours_synthetic(m),
                   seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic), sensitivity=NO_THRESHOLD + " (signs of paired differences)")


def _ratio(d: float, g: float) -> float:
    """D / G, undefined (NaN) where the run made no domain gain."""
    return d / g if g > 0 else float("nan")


def measure_real_lm() -> dict:
    """Per seed: SFT's D/G (CoT) at every lr of the grid, and SFT's minus TALR's D/G at the two method lrs (NaN
    where a run made no domain gain)."""
    from sft_tilt.harness.experiment_results import lr_tradeoff

    p = real.preset(PRESET, METHODS)
    runs = [r for r in lr_tradeoff(p) if r["fmt"] == "cot"]
    seeds = sorted({int(r["seed"]) for r in runs})
    sft = np.full((len(seeds), len(p.learning_rate_grid)), np.nan)
    for r in runs:
        sft[seeds.index(int(r["seed"])), list(p.learning_rate_grid).index(r["learning_rate"])] = _ratio(r["general_change"], r["domain_gain"])
    reduction, talr_gain = {}, {}
    for name, lr in zip(("small", "large"), p.comparison_learning_rates):
        rows = real.method_rows(p, lr)
        if "talr" not in rows or "sft" not in rows:
            continue
        gs, ds = real.by_seed(rows["sft"], "domain_gain"), real.by_seed(rows["sft"], "general_change")
        gt, dt = real.by_seed(rows["talr"], "domain_gain"), real.by_seed(rows["talr"], "general_change")
        common = sorted(set(gs) & set(gt))
        reduction[name] = {s: _ratio(ds[s], gs[s]) - _ratio(dt[s], gt[s]) for s in common}
        talr_gain[name] = [gt[s] for s in common]
    return {"learning_rate_grid": list(p.learning_rate_grid), "comparison_learning_rates": list(p.comparison_learning_rates), "seeds": seeds, "sft": sft, "reduction": reduction,
            "talr_gain": talr_gain}


def _by_seed(values, seeds) -> dict:
    """``{seed: value}`` from a mapping, or from a sequence in the order of ``seeds``."""
    if isinstance(values, dict):
        return {int(k): float(v) for k, v in values.items()}
    values = list(values)
    if len(values) != len(seeds):
        raise ValueError(f"reduction: {len(values)} values for {len(seeds)} seeds; give a mapping seed -> value")
    return {int(s): float(v) for s, v in zip(seeds, values)}


def _real_parts(m: dict):
    """(increasing, mainly_large, notes, intervals) as in the synthetic rule, from per-seed arrays."""
    sft = np.asarray(m["sft"], float)
    notes, ivs = [], {}
    if sft.size and not np.isfinite(sft).all():
        notes.append("SFT made no domain gain in some seed at some lr (D/G undefined there)")
    steps = [paired_interval(sft[:, j + 1], sft[:, j]) for j in range(sft.shape[1] - 1)] if sft.ndim == 2 else []
    for j, iv in enumerate(steps):
        ivs[f"SFT D/G lr {m['learning_rate_grid'][j + 1]:g} − {m['learning_rate_grid'][j]:g}"] = iv
    s1 = [side(iv) for iv in steps]
    inc = "undecided" if not steps else "seen" if all(x == "above" for x in s1) else "contradicted" if "below" in s1 else "undecided"
    red = {k: _by_seed(v, m["seeds"]) for k, v in m["reduction"].items()}
    if not red.get("large") or not red.get("small"):
        return inc, "undecided", notes + ["TALR or SFT missing at a method lr"], ivs
    large_values = np.asarray(list(red["large"].values()), float)
    if not np.isfinite(large_values).all():
        return inc, "undecided", notes + ["TALR makes no domain gain at the large lr in some seed: its D/G is undefined, not compared"], ivs
    at_large = paired_interval(large_values)
    ivs["SFT − TALR D/G at the large lr"] = at_large
    sides = [side(at_large)]
    common = sorted(set(red["large"]) & set(red["small"]))  # paired by seed: a seed missing at one lr drops out
    small_values = np.asarray([red["small"][s] for s in common], float)
    if common and np.isfinite(small_values).all():
        vs_small = paired_interval(np.asarray([red["large"][s] for s in common], float), small_values)
        ivs["reduction large − small"] = vs_small
        sides.append(side(vs_small))
    else:
        notes.append("TALR makes no domain gain at the small lr in some seed" if common else
                     "no seed has TALR and SFT at both method lrs")
        sides.append("crosses")
    large = "seen" if all(x == "above" for x in sides) else "contradicted" if "below" in sides else "undecided"
    return inc, large, notes, ivs


def decide_real_lm(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Two parts, each decided by 95% t intervals of paired (same seed) differences: SFT's D/G rises from each lr of
    the grid to the next (every interval above 0), and TALR's reduction SFT - TALR of D/G at the large method lr is
    above 0 and above its reduction at the small one. A run with no domain gain has no D/G: the part it enters is
    undecided (reported, not compared). Holds when both parts are seen; partly holds when one is seen and the other
    contradicted (an interval below 0); fails when none is seen and one is contradicted; inconclusive otherwise.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    inc, large, notes, _ = _real_parts(m)
    parts = {"SFT's D/G increasing in lr": inc, "TALR's reduction larger at the large lr": large}
    seen = [k for k, v in parts.items() if v == "seen"]
    contra = [k for k, v in parts.items() if v == "contradicted"]
    undecided = [k for k, v in parts.items() if v == "undecided"]
    note = (" " + "; ".join(notes) + ".") if notes else ""
    if len(seen) == 2:
        return "holds", "both parts seen with 95% confidence." + note
    if seen and contra:
        return "partly holds", f"seen: {seen}; contradicted: {contra}." + note
    if contra:
        return "fails", f"contradicted: {contra}; undecided: {undecided}." + note
    return "inconclusive", f"seen: {seen}; undecided: {undecided}." + note


def ours_real_lm(m: dict) -> str:
    return "; ".join(f"{k} {iv.text()}" for k, iv in _real_parts(m)[3].items()) or "-"


def describe_real_lm(m: dict) -> str:
    with np.errstate(all="ignore"):
        means = np.nanmean(np.asarray(m["sft"], float), 0) if np.size(m["sft"]) else []
    return (f"Prediction: D/G grows with lr; TALR lowers it mainly at large lr. Ours (SFT, CoT, {len(m['seeds'])} seeds) mean D/G by lr "
            f"{ {f'{lr:g}': round(float(x), 3) for lr, x in zip(m['learning_rate_grid'], means)} }; TALR's domain gain per seed at the method lrs "
            f"{ {k: [round(x, 4) for x in v] for k, v in m['talr_gain'].items()} }. Paired 95% t intervals: {ours_real_lm(m)}. {real.T_NOTE} "
            + real.DIRECTIONS)


@check(18, real.setting(PRESET), real.GROUP, figures=("real_lm_lr_tradeoff", "real_lm_methods_pareto"), preset=PRESET)
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command(None, PRESET), ours=ours_real_lm(m), seeds=f"{len(m['seeds'])} paired",
                   rule=rule_of(decide_real_lm), sensitivity=NO_THRESHOLD + " (signs of paired differences)")
