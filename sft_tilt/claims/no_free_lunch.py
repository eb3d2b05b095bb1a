"""Claim 16: no free lunch: every method's general performance is lower at the larger learning rate.

Real-LM setting: general change D of every method (and averaging weight) at the small and the large method
learning rate on SmolLM2, paired by seed.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["MAJORITY", "measure", "decide", "describe", "measure_synthetic", "decide_synthetic"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"

# "partly holds" needs more than this share of the methods to degrade more at the larger lr: a majority (the claim
# says "every"; most methods doing so is the weaker reading)
MAJORITY = 0.5


def measure() -> dict:
    """Per method (and averaging weight) that ran at both method lrs: the paired (same seed) interval of
    D(large lr) - D(small lr)."""
    p = real.preset(PRESET)
    small, large = (real.method_rows(p, lr) for lr in p.comparison_learning_rates)
    names = [n for n in small if n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    intervals = {}
    for n in names:
        s, l = real.by_seed(small[n], "general_change"), real.by_seed(large[n], "general_change")
        seeds = sorted(set(s) & set(l))
        intervals[n] = paired_interval([l[k] for k in seeds], [s[k] for k in seeds])
    return {"learning_rates": list(p.comparison_learning_rates), "intervals": intervals,
            "general_change": {n: (small[n]["general_change"], large[n]["general_change"]) for n in names}}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Per method the 95% t interval of the paired difference D(large lr) - D(small lr) decides whether it degrades
    more at the larger lr (above 0). Holds when every method does; partly holds when more
    than MAJORITY of them do and none degrades less; inconclusive when that share is reached only counting
    undecided intervals, or when no method ran at both; fails otherwise.

    ``threshold_scale`` multiplies MAJORITY (at most 1)."""
    return decide_synthetic(m, threshold_scale)


def describe(m: dict) -> str:
    return (f"Paper: every method's general score is lower at 5e-6 than at 1e-6. Ours, D at {m['learning_rates'][0]:g} -> {m['learning_rates'][1]:g} (seed means): "
            + ", ".join(f"{n} {s:+.4f} -> {l:+.4f}" for n, (s, l) in m["general_change"].items()) + ". Paired D(large) − D(small): "
            + "; ".join(f"{k} {iv.text()}" for k, iv in m["intervals"].items()) + f". {real.T_NOTE} " + real.DIRECTIONS)


@check(16, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    ours = "; ".join(f"{k} {iv.text()}" for k, iv in m["intervals"].items()) or "-"
    n = min((iv.n for iv in m["intervals"].values()), default=0)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto", PRESET), ours=ours, seeds=f"{n} paired",
                   rule=rule_of(decide), sensitivity=sensitivity(decide, m))


def measure_synthetic() -> dict:
    """Per method of the synthetic sweep, D per seed at the end of training at the small and the large step size."""
    _, r = synth.methods()
    i, j = synth.lr_index(r, synth.SMALL_LR), synth.lr_index(r, synth.LARGE_LR)
    d = {n: synth.method_arrays(r, n)["general_change"] for n in r["per_method"]}
    return {"learning_rates": [synth.SMALL_LR, synth.LARGE_LR], "n_seeds": len(r["seeds"]),
            "intervals": {n: paired_interval(v[:, j], v[:, i]) for n, v in d.items()}}


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Per method the 95% t interval of the paired difference D(large) - D(small) decides whether it degrades more at
    the larger step size (above 0). Holds when every method does; partly holds when more than MAJORITY of them do
    and none degrades less (below 0); inconclusive when that share is reached only counting undecided intervals;
    fails otherwise."""
    sides = {n: side(iv) for n, iv in m["intervals"].items()}
    n = len(sides)
    if not n:
        return "inconclusive", "no method ran."
    above = [k for k, s in sides.items() if s == "above"]
    below = [k for k, s in sides.items() if s == "below"]
    share = min(MAJORITY * threshold_scale, 1.0)
    enough = (lambda k: k > share * n) if share < 1 else (lambda k: k >= n)  # noqa: E731  (a share of 1 means every method)
    if len(above) == n:
        return "holds", "every method degrades more at the larger step size."
    if enough(len(above)) and not below:
        return "partly holds", f"{len(above)}/{n} degrade more; undecided: {sorted(set(sides) - set(above))}."
    if not below and enough(len(above) + sum(s == "crosses" for s in sides.values())):
        return "inconclusive", f"{len(above)}/{n} degrade more, the rest undecided."
    return "fails", f"{len(above)}/{n} degrade more; less: {below}."


@check(16, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    ours = "; ".join(f"{k} {iv.text()}" for k, iv in m["intervals"].items())
    evidence = (f"D(lr {m['learning_rates'][1]:g}) − D(lr {m['learning_rates'][0]:g}) at the end of training, paired by seed, per method (TALR and FLOW and "
                f"DFT with mean-one weights; DiSC's TALR unnormalised): {ours}. {reason}")
    return Verdict(verdict, evidence, synth.command("synthetic_methods_pareto"), ours=ours, seeds=f"{m['n_seeds']} paired",
                   rule=rule_of(decide_synthetic), sensitivity=sensitivity(decide_synthetic, m))
