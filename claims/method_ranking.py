"""Claim 13: at the larger learning rate general retention orders TALR > FLOW > L2 > SFT.

Real-LM setting: general change D (mean over seeds) of the four methods at the larger method learning rate on
SmolLM2; lower D is better retention.
"""

from __future__ import annotations

import numpy as np

from claims import real_lm_results as real
from claims import synthetic_results as synth
from claims.intervals import paired_interval, side
from claims.registry import NO_THRESHOLD, Verdict, check, rule_of

__all__ = ["PAPER_ORDER", "SYNTHETIC_ORDER", "measure", "decide", "describe", "measure_synthetic", "decide_synthetic",
           "ours_synthetic"]

PAPER_ORDER = ("talr", "flow", "l2", "sft")


def measure() -> dict:
    p = real.preset()
    return {"lr": p.method_lrs[1], "rows": real.method_rows(p, p.method_lrs[1])}


def retention_order(rows: dict) -> list[str]:
    """The paper's methods that ran, best retention (lowest general change) first."""
    return sorted((n for n in PAPER_ORDER if n in rows and rows[n]["n"] > 0), key=lambda n: rows[n]["general_change"])


def decide(m: dict) -> tuple[str, str]:
    """Holds when the retention order is exactly TALR > FLOW > L2 > SFT; partly holds when TALR is best but the
    others differ; fails when TALR is not best; inconclusive when a method is missing."""
    order = retention_order(m["rows"])
    if len(order) < len(PAPER_ORDER):
        return "inconclusive", f"missing methods: {sorted(set(PAPER_ORDER) - set(order))}."
    if tuple(order) == PAPER_ORDER:
        return "holds", "ordering as in the paper."
    if order[0] == "talr":
        return "partly holds", f"TALR best, ordering of the others differs: {order}."
    return "fails", f"retention order {order}, TALR not best."


def describe(m: dict) -> str:
    rows = m["rows"]
    desc = ", ".join(f"{n}: G={rows[n]['domain_gain']:.4f}+-{rows[n]['domain_gain_sd']:.4f}, D={rows[n]['general_change']:+.4f}"
                     f"+-{rows[n]['general_change_sd']:.4f}" for n in retention_order(rows))
    return (f"Paper (5e-6): general TALR 0.502 > FLOW 0.450 > L2 0.395 > SFT 0.381, domain 0.542/0.553/0.555/0.558. Ours (lr {m['lr']:g}, "
            f"best retention first): {desc}. " + real.DIRECTIONS)


@check(13, real.setting(), real.GROUP, figures=("real_lm_methods_pareto",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto"))


#: the paper's order in the synthetic sweep's display names (TALR and FLOW with mean-one weights: equal effective step)
SYNTHETIC_ORDER = ("TALR (mean 1)", "FLOW (mean 1)", "L2", "SFT")


def measure_synthetic() -> dict:
    """D at matched gain Δ*, per seed, of the four methods at the large step size of the synthetic sweep."""
    _, r = synth.methods()
    j = synth.lr_index(r, synth.LARGE_LR)
    return {"lr": synth.LARGE_LR, "target_gain": float(r["target_gain"]), "n_seeds": len(r["seeds"]),
            "matched": {n: synth.method_arrays(r, n)["matched"][:, j] for n in SYNTHETIC_ORDER},
            "variants": {n: synth.variant(n) for n in SYNTHETIC_ORDER}}


def _pairs(m: dict):
    """Adjacent pairs of the paper's order among the methods every seed of which reaches Δ*, with the interval of
    D_worse - D_better (positive: the paper's order)."""
    reached = [n for n in SYNTHETIC_ORDER if np.isfinite(np.asarray(m["matched"][n], float)).all()]
    return reached, [(a, b, paired_interval(m["matched"][b], m["matched"][a])) for a, b in zip(reached[:-1], reached[1:])]


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """At matched gain Δ* and the large step size, each adjacent pair of TALR > FLOW > L2 > SFT is decided by the 95% t
    interval of the paired difference of D (worse minus better): holds when every pair's interval is above 0, fails
    when some pair's is below 0 (that order reversed), inconclusive when none is reversed but some interval contains
    0, or when a method does not reach Δ* in every seed (it is reported, not ranked).

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    reached, pairs = _pairs(m)
    missing = [n for n in SYNTHETIC_ORDER if n not in reached]
    reversed_ = [f"{b} over {a}" for a, b, iv in pairs if side(iv) == "below"]
    if reversed_:
        return "fails", f"reversed with 95% confidence: {reversed_}" + (f"; not reaching Δ* in every seed (not ranked): {missing}." if missing else ".")
    if missing:
        return "inconclusive", f"not reaching Δ* in every seed (not ranked): {missing}."
    if all(side(iv) == "above" for _, _, iv in pairs):
        return "holds", "every adjacent pair in the paper's order with 95% confidence."
    return "inconclusive", "no pair reversed, but some paired interval contains 0."


def ours_synthetic(m: dict) -> str:
    reached, pairs = _pairs(m)
    txt = "; ".join(f"D_{b} − D_{a} {iv.text()}" for a, b, iv in pairs)
    missing = [n for n in SYNTHETIC_ORDER if n not in reached]
    return txt + (f"; not reaching Δ*: {missing}" if missing else "")


@check(13, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    means = {n: round(float(np.mean(v)), 4) for n, v in m["matched"].items()}
    evidence = (f"D at matched gain Δ* = {m['target_gain']:g} at the large step size lr {m['lr']:g} (mean over {m['n_seeds']} seeds): "
                f"{means}; variants: {m['variants']}. Paired differences (95% t): {ours_synthetic(m)}. {reason}")
    return Verdict(verdict, evidence, synth.command("synthetic_methods_pareto"), ours=ours_synthetic(m),
                   seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic), sensitivity=NO_THRESHOLD + " (signs of paired differences)")
