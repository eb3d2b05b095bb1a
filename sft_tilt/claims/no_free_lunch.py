"""Claim 16: no free lunch: every method's general performance is lower at the larger learning rate.

Real-LM setting: general change D of every method at the small and the large method learning rate on SmolLM2,
paired by seed, at a matched domain gain per method (a method that only trains further at the larger rate does not
pass); model averaging, which has no trajectory, is reported at the end of training and left undecided.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["MAJORITY", "MIN_EFFECT_NATS", "measure", "decide", "describe", "measure_synthetic", "decide_synthetic"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"

# "partly holds" needs more than this share of the methods to degrade more at the larger lr: a majority (the claim
# says "every"; most methods doing so is the weaker reading)
MAJORITY = 0.5


#: The smallest rise of D at matched gain that counts as degrading more, in nats/token (claim 3's minimum effect).
MIN_EFFECT_NATS = 0.002


def measure() -> dict:
    """Per method that ran at both method lrs: the paired (same seed) interval of D(large lr) - D(small lr) at the end
    of training (``intervals``, which a method that merely trains further passes) and at matched domain gain
    (``matched``: D where each run's own trajectory first reaches the largest gain every run of that method at both
    rates reaches, :func:`real.matched_at_common_gain`); averaging rows have no trajectory and are listed in
    ``no_trajectory``, methods with a run that never gains in ``no_gain``."""
    from sft_tilt.harness.experiment_results import method_comparison

    p = real.preset(PRESET)
    small, large = (real.method_rows(p, lr) for lr in p.comparison_learning_rates)
    names = [n for n in small if n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    intervals = {}
    for n in names:
        s, l = real.by_seed(small[n], "general_change"), real.by_seed(large[n], "general_change")
        seeds = sorted(set(s) & set(l))
        intervals[n] = paired_interval([l[k] for k in seeds], [s[k] for k in seeds])
    runs = [r for r in method_comparison(p) if r.get("alpha") is None and r.get("trajectory")]
    matched, targets, no_trajectory, no_gain = {}, {}, [], []
    for n in names:
        registry_name = p.compared_talr if n == "talr" else n
        if small[n].get("alpha") is not None or registry_name not in ("sft", *p.methods):  # a mixing weight of averaging
            no_trajectory.append(n)
            continue
        rates = p.learning_rates_of(registry_name)
        trajectories = {slot: {int(r["seed"]): [tuple(x) for x in r["trajectory"]] for r in runs
                               if r["method"] == registry_name and r["learning_rate"] == lr}
                        for slot, lr in zip(("small", "large"), rates)}
        if not all(trajectories.values()):
            no_trajectory.append(n)
            continue
        common = real.matched_at_common_gain(trajectories)
        if common["target"] is None or common["no_gain"]:
            no_gain.append(n)
            continue
        d = common["matched"]
        seeds = sorted(set(d["small"]) & set(d["large"]))
        matched[n] = paired_interval([d["large"][k] for k in seeds], [d["small"][k] for k in seeds])
        targets[n] = common["target"]
    return {"learning_rates": list(p.comparison_learning_rates), "intervals": intervals, "matched": matched,
            "target_gains": targets, "no_trajectory": no_trajectory, "no_gain": no_gain,
            "general_change": {n: (small[n]["general_change"], large[n]["general_change"]) for n in names}}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """At matched domain gain, so that a method which merely trains further at the larger lr does not pass: per
    method (each at the largest gain all its runs at both lrs reach, read on each run's own trajectory) the 95% t
    interval of the paired difference D(large lr) - D(small lr) decides whether it degrades more at the larger lr
    (above 0 with a mean of at least MIN_EFFECT_NATS) or less (below 0 with a mean of at least MIN_EFFECT_NATS). A
    method with no trajectory (model averaging) or a run that never gains counts as undecided. Holds when every
    method degrades more; partly holds when more than MAJORITY of them do and none degrades less; inconclusive when
    that share is reached only counting undecided methods, or when no method ran at both; fails otherwise.

    ``threshold_scale`` multiplies MAJORITY (at most 1) and MIN_EFFECT_NATS."""
    undecided = list(m.get("no_trajectory", [])) + list(m.get("no_gain", []))
    if not m["matched"] and not undecided:
        return "inconclusive", "no method ran at both learning rates."
    sides = {}
    for n, iv in m["matched"].items():
        s = side(iv)
        sides[n] = s if (s == "crosses" or abs(iv.mean) >= MIN_EFFECT_NATS * threshold_scale) else "crosses"
    sides.update({n: "crosses" for n in undecided})
    verdict, reason = _majority(sides, threshold_scale, "lr")
    notes = (f" Not decided: no trajectory {m['no_trajectory']}" if m.get("no_trajectory") else "") + \
            (f"; a run never gains {m['no_gain']}" if m.get("no_gain") else "")
    return verdict, reason + (notes + "." if notes else "")


def describe(m: dict) -> str:
    return (f"Paper: every method's general score is lower at 5e-6 than at 1e-6. Ours, D at {m['learning_rates'][0]:g} -> {m['learning_rates'][1]:g} (seed means): "
            + ", ".join(f"{n} {s:+.4f} -> {l:+.4f}" for n, (s, l) in m["general_change"].items()) + ". Paired D(large) − D(small): "
            + "; ".join(f"{k} {iv.text()}" for k, iv in m["intervals"].items()) + " (end of training: a method that trains further "
            "at the larger lr passes this by moving further). At matched domain gain, paired D(large) − D(small): "
            + ("; ".join(f"{k} at Δ* {m['target_gains'][k]:.3f}: {iv.text()}" for k, iv in m["matched"].items()) or "none")
            + f". {real.T_NOTE} " + real.DIRECTIONS)


@check(16, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    ours = "at matched gain: " + ("; ".join(f"{k} {iv.text()}" for k, iv in m["matched"].items()) or "-")
    n = min((iv.n for iv in m["matched"].values()), default=0)
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
    if not sides:
        return "inconclusive", "no method ran."
    return _majority(sides, threshold_scale, "step size")


def _majority(sides: dict, threshold_scale: float, what: str) -> tuple[str, str]:
    n = len(sides)
    above = [k for k, s in sides.items() if s == "above"]
    below = [k for k, s in sides.items() if s == "below"]
    share = min(MAJORITY * threshold_scale, 1.0)
    enough = (lambda k: k > share * n) if share < 1 else (lambda k: k >= n)  # noqa: E731  (a share of 1 means every method)
    if len(above) == n:
        return "holds", f"every method degrades more at the larger {what}."
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
