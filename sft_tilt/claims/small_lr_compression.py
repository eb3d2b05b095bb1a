"""Claim 14: a small learning rate compresses the differences between methods.

Real-LM setting: per seed, the spread (max - min) over SFT, L2 and TALR of general change D and of domain gain G,
at the small against the large method learning rate on SmolLM2, paired by seed.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import NO_THRESHOLD, Verdict, check, rule_of

__all__ = ["METHODS", "SYNTHETIC_METHODS", "measure", "decide", "describe", "measure_synthetic", "decide_synthetic"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods compared (and whose comparison runs it reads).
METHODS = ("sft", "l2", "talr")


def measure() -> dict:
    """Per seed that every one of METHODS ran at both method lrs, the spread (max - min over METHODS) of D and of G
    at the small and at the large lr (same seed: same data order and initialisation)."""
    p = real.preset(PRESET, METHODS)
    small, large = (real.method_rows(p, lr) for lr in p.comparison_learning_rates)
    names = [n for n in METHODS if n in small and n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    vals = {(n, lr, k): real.by_seed(rows.get(n), k) for n in names for lr, rows in (("small", small), ("large", large))
            for k in ("general_change", "domain_gain")}
    seeds = sorted(set.intersection(*(set(v) for v in vals.values()))) if vals else []

    def spread(lr, key):
        return np.array([np.ptp([vals[(n, lr, key)][s] for n in names]) for s in seeds], float)

    return {"learning_rates": list(p.comparison_learning_rates), "methods": names, "n_seeds": len(seeds),
            "d_small": spread("small", "general_change"), "d_large": spread("large", "general_change"),
            "g_small": spread("small", "domain_gain"), "g_large": spread("large", "domain_gain"),
            "best_small": min(names, key=lambda n: small[n]["general_change"]) if names else None}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """The 95% t intervals of the paired (same seed) differences spread at the large minus spread at the small
    lr, of D and of G (spread = max - min over SFT, L2, TALR), decide: holds when both are above 0, partly holds
    when one is, fails when neither is and one is below 0, inconclusive when both contain 0 or fewer
    than two methods ran.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    if len(m.get("methods", ())) < 2:
        return "inconclusive", "fewer than two of SFT, L2, TALR ran at both learning rates."
    return decide_synthetic(m)


def describe(m: dict) -> str:
    if len(m.get("methods", ())) < 2:
        return "Not enough methods."
    return (f"Paper (1e-6): SFT/L2/TALR within 0.033 domain and 0.025 general; at 5e-6 general spread 0.121. Ours ({', '.join(m['methods'])}, "
            f"mean over {m['n_seeds']} seeds): spread of D {np.mean(m['d_small']):.4f} at lr {m['learning_rates'][0]:g} vs {np.mean(m['d_large']):.4f} at "
            f"{m['learning_rates'][1]:g}; spread of G {np.mean(m['g_small']):.4f} vs {np.mean(m['g_large']):.4f}; best general at small lr: "
            f"{m['best_small']}. {ours_synthetic(m)}. {real.T_NOTE} " + real.DIRECTIONS)


@check(14, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto", PRESET),
                   ours=ours_synthetic(m) if len(m["methods"]) >= 2 else "-", seeds=f"{m['n_seeds']} paired", rule=rule_of(decide),
                   sensitivity=NO_THRESHOLD + " (signs of paired differences)")


#: SFT, L2 and TALR of the synthetic sweep (TALR with mean-one weights: equal effective step)
SYNTHETIC_METHODS = ("SFT", "L2", "TALR (mean 1)")


def measure_synthetic() -> dict:
    """Per seed, the spread (max - min over SYNTHETIC_METHODS) of D and of G at the end of training, at the small
    and the large step size of the synthetic sweep (same budget, as the paper compares methods per learning rate)."""
    _, r = synth.methods()
    i, j = synth.lr_index(r, synth.SMALL_LR), synth.lr_index(r, synth.LARGE_LR)
    arr = {n: synth.method_arrays(r, n) for n in SYNTHETIC_METHODS}
    spread = lambda key, k: np.ptp(np.stack([arr[n][key][:, k] for n in SYNTHETIC_METHODS]), axis=0)  # noqa: E731
    return {"learning_rates": [synth.SMALL_LR, synth.LARGE_LR], "n_seeds": len(r["seeds"]),
            "d_small": spread("general_change", i), "d_large": spread("general_change", j),
            "g_small": spread("domain_gain", i), "g_large": spread("domain_gain", j)}


def _intervals(m: dict):
    return paired_interval(m["d_large"], m["d_small"]), paired_interval(m["g_large"], m["g_small"])


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """The 95% t intervals of the paired (same seed) differences spread at the large minus spread at the small step
    size, of D and of G, decide: holds when both are above 0 (both spreads smaller at the small step), partly holds
    when one is above 0, fails when neither is and one is below 0, inconclusive when both contain 0.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    sd_, sg = (side(iv) for iv in _intervals(m))
    if sd_ == "above" and sg == "above":
        return "holds", "both spreads smaller at the small step size."
    if "above" in (sd_, sg):
        return "partly holds", f"only the spread of {'D' if sd_ == 'above' else 'G'} is smaller at the small step size ({'G' if sd_ == 'above' else 'D'}: {sg if sd_ == 'above' else sd_})."
    if "below" in (sd_, sg):
        return "fails", f"spread of D {sd_}, of G {sg} 0 (large minus small)."
    return "inconclusive", "both paired intervals contain 0."


def ours_synthetic(m: dict) -> str:
    di, gi = _intervals(m)
    return f"spread(large) − spread(small): D {di.text()}; G {gi.text()}"


@check(14, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    evidence = (f"{', '.join(SYNTHETIC_METHODS)} (TALR = talr-mean, mean-one weights) after the same training budget at lr {m['learning_rates'][0]:g} "
                f"(small) and {m['learning_rates'][1]:g} (large), mean over {m['n_seeds']} seeds: spread of D {np.mean(m['d_small']):.4f} vs "
                f"{np.mean(m['d_large']):.4f}, spread of G {np.mean(m['g_small']):.4f} vs {np.mean(m['g_large']):.4f}. {ours_synthetic(m)}. {reason}")
    return Verdict(verdict, evidence, synth.command("synthetic_methods_pareto"), ours=ours_synthetic(m),
                   seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic), sensitivity=NO_THRESHOLD + " (signs of paired differences)")
