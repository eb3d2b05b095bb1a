"""Claim 13: at the larger learning rate general retention orders TALR > FLOW > L2 > SFT.

Real-LM setting: at the larger method learning rate on SmolLM2, per seed the general change D of each method where
its own trajectory reaches the matched domain gain Δ*, the largest gain every seed of every compared method reaches
(:func:`sft_tilt.claims.real_lm_results.matched_along_trajectories`), paired by seed between adjacent methods of the paper's
order; lower is better retention.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import NO_THRESHOLD, Verdict, check, rule_of

__all__ = ["PAPER_ORDER", "SYNTHETIC_ORDER", "measure", "decide", "describe", "ours", "measure_synthetic", "decide_synthetic",
           "ours_synthetic"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods whose comparison runs it reads besides SFT's.
METHODS = ("talr", "flow", "l2")

PAPER_ORDER = ("talr", "flow", "l2", "sft")


def measure() -> dict:
    """At the larger method lr, per method of the paper's order: its end-of-training row, per seed its general
    change at the common matched gain Δ* along its trajectory (``matched``), whether it gains in every seed
    (``reached``), Δ* (``target``), how many seeds' values are chords from the base model (``chords``) and the crossed
    bootstrap over seeds and evaluation items where the runs have per-item losses (``bootstrap``, else None)."""
    p = real.preset(PRESET, METHODS)
    lr = p.comparison_learning_rates[1]
    rows = real.method_rows(p, lr)
    ran = [n for n in PAPER_ORDER if n in rows and rows[n]["n"] > 0]
    mt = real.matched_along_trajectories(p, lr, ran)
    return {"learning_rate": lr, "rows": {n: rows[n] for n in ran},
            "matched": {n: mt["matched"].get(n, {}) for n in ran},
            "reached": {n: n not in mt["no_gain"] for n in ran},
            "target": mt["target"], "chords": mt["chords"], "bootstrap": mt["bootstrap"]}


def retention_order(rows: dict) -> list[str]:
    """The paper's methods that ran, best retention (lowest general change) first."""
    return sorted((n for n in PAPER_ORDER if n in rows and rows[n]["n"] > 0), key=lambda n: rows[n]["general_change"])


def _real_pairs(m: dict):
    """Adjacent pairs of the paper's order among the methods that are ranked (a domain gain in every seed), with the
    paired interval of D_worse - D_better at the matched gain (positive: the paper's order), over seeds and, where the
    runs have per-item losses, the evaluation sample (:func:`sft_tilt.claims.real_lm_results.matched_difference`)."""
    ranked = [n for n in PAPER_ORDER if n in m["matched"] and m["reached"].get(n)]
    out = []
    for a, b in zip(ranked[:-1], ranked[1:]):
        out.append((a, b, real.matched_difference(m["matched"], m.get("bootstrap"), b, a)))
    return ranked, out


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """At the larger lr and matched domain gain (each seed's D where its trajectory reaches Δ*), each adjacent pair
    of TALR > FLOW > L2 > SFT among the ranked methods is decided by the 95% interval of the paired (same seed)
    difference, worse minus better (the t interval over seeds; where the runs have per-item losses, joined with the
    crossed bootstrap over seeds and evaluation items): holds when every pair's interval is above 0, fails when some pair's is below 0,
    inconclusive when none is reversed but some contains 0, when a method did not run, or when a method never gains
    in some seed (reported, not ranked).

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    missing = [n for n in PAPER_ORDER if n not in m["matched"]]
    ranked, pairs = _real_pairs(m)
    unranked = [n for n in PAPER_ORDER if n in m["matched"] and n not in ranked]
    note = (f"; no domain gain in some seed (not ranked): {unranked}" if unranked else "") + \
        (f"; did not run: {missing}" if missing else "")
    reversed_ = [f"{b} over {a}" for a, b, iv in pairs if side(iv) == "below"]
    if reversed_:
        return "fails", f"reversed with 95% confidence at matched domain gain: {reversed_}{note}."
    if missing or unranked:
        return "inconclusive", f"no ranked pair reversed{note}."
    if pairs and all(side(iv) == "above" for _, _, iv in pairs):
        return "holds", "every adjacent pair in the paper's order with 95% confidence at matched domain gain."
    return "inconclusive", "no pair reversed, but some paired interval contains 0."


def ours(m: dict) -> str:
    ranked, pairs = _real_pairs(m)
    txt = "; ".join(f"D_{b} − D_{a} {iv.text()}" for a, b, iv in pairs) or "no ranked pair"
    unranked = [n for n in PAPER_ORDER if n in m["matched"] and n not in ranked]
    return txt + (f"; not ranked: {unranked}" if unranked else "") + (f" ({real.resampled(m.get('bootstrap'))})" if pairs else "")


def describe(m: dict) -> str:
    rows = m["rows"]
    at = lambda n: f", D at Δ* {np.mean(list(m['matched'][n].values())):+.4f}" if m["matched"].get(n) else ""  # noqa: E731
    desc = ", ".join(f"{n}: G={rows[n]['domain_gain']:.4f}+-{rows[n]['domain_gain_sd']:.4f}, D={rows[n]['general_change']:+.4f}"
                     f"+-{rows[n]['general_change_sd']:.4f}{at(n)}" for n in retention_order(rows))
    chords = {n: k for n, k in m.get("chords", {}).items() if k}
    target = "none (no method gains in every seed)" if m.get("target") is None else f"{m['target']:.4f}"
    return (f"Paper (5e-6): general TALR 0.502 > FLOW 0.450 > L2 0.395 > SFT 0.381, domain 0.542/0.553/0.555/0.558. Ours (lr {m['learning_rate']:g}, "
            f"best end-of-training retention first; sd over seeds, ddof 1): {desc}. Ranked at the matched domain gain Δ* = {target}, the "
            f"largest every seed of every ranked method reaches, along each run's trajectory"
            + (f" (seeds reaching it before their first evaluation point, whose D there is a chord from the base model: {chords})" if chords else "")
            + f"; paired 95% intervals: {ours(m)}. {real.T_NOTE} {real.evaluation_note(m.get('bootstrap'))} " + real.DIRECTIONS)


@check(13, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    n = min((len(v) for v in m["matched"].values() if v), default=0)  # over the ranked methods (with values)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto", PRESET), ours=ours(m), seeds=f"{n} paired",
                   rule=rule_of(decide), sensitivity=NO_THRESHOLD + " (signs of paired differences)")


#: the paper's order in the synthetic sweep's display names (TALR and FLOW with mean-one weights: equal effective step)
SYNTHETIC_ORDER = ("TALR (mean 1)", "FLOW (mean 1)", "L2", "SFT")


def measure_synthetic() -> dict:
    """D at matched gain Δ*, per seed, of the four methods at the large step size of the synthetic sweep."""
    _, r = synth.methods()
    j = synth.lr_index(r, synth.LARGE_LR)
    return {"learning_rate": synth.LARGE_LR, "target_gain": float(r["target_gain"]), "n_seeds": len(r["seeds"]),
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
    evidence = (f"D at matched gain Δ* = {m['target_gain']:g} at the large step size lr {m['learning_rate']:g} (mean over {m['n_seeds']} seeds): "
                f"{means}; variants: {m['variants']}. Paired differences (95% t): {ours_synthetic(m)}. {reason}")
    return Verdict(verdict, evidence, synth.command("synthetic_methods_pareto"), ours=ours_synthetic(m),
                   seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic), sensitivity=NO_THRESHOLD + " (signs of paired differences)")
