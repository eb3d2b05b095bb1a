"""Claim 17: dynamic token-level weighting (TALR) retains more general ability than static sample-level
weighting (FLOW).

Synthetic setting: D at matched gain Delta*, paired by seed, of TALR and FLOW at each step size where every seed of
both reaches Delta*; both with mean-one weights (equal effective step under the sweep's SGD: ``talr-mean``), and DiSC's unnormalised TALR
(``talr-disc``) in a row of its own. Real-LM setting: D of TALR and FLOW at the larger learning rate, paired by seed,
with the 95% t interval of the difference.
"""

from __future__ import annotations

import warnings

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import NO_THRESHOLD, Verdict, check, rule_of

__all__ = ["matched_means", "measure_synthetic", "decide_synthetic", "describe_synthetic", "measure_real_lm",
           "decide_real_lm", "describe_real_lm"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods whose comparison runs it reads besides SFT's.
METHODS = ("talr", "flow")

FLOW = "FLOW (mean 1)"


def matched_means(matched: np.ndarray) -> np.ndarray:
    """Mean over seeds (rows) of D at matched gain per learning rate; NaN where some seed never reached it."""
    m = np.asarray(matched, float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(np.isfinite(m).all(0), np.nanmean(m, 0), np.nan)


def measure_synthetic(talr: str) -> dict:
    """Paired (by seed) D at matched gain of ``talr`` (a display name of the methods sweep) and FLOW per lr."""
    _, r = synth.methods()
    t, f = synth.method_arrays(r, talr), synth.method_arrays(r, FLOW)
    return {"target_gain": float(r["target_gain"]), "learning_rates": [float(x) for x in r["learning_rates"]], "n_seeds": len(r["seeds"]),
            "talr_name": talr, "talr_variant": synth.variant(talr), "flow_variant": synth.variant(FLOW),
            "talr": t["matched"], "flow": f["matched"]}


def _per_lr(m: dict) -> list[tuple[float, str, object]]:
    """Per lr: (lr, "above" / "below" / "crosses" / "not reached", interval of D_FLOW - D_TALR)."""
    out = []
    talr, flow = np.asarray(m["talr"], float), np.asarray(m["flow"], float)
    for j, lr in enumerate(m["learning_rates"]):
        if not (np.isfinite(talr[:, j]).all() and np.isfinite(flow[:, j]).all()):
            out.append((lr, "not reached", None))
            continue
        iv = paired_interval(flow[:, j], talr[:, j])
        out.append((lr, side(iv), iv))
    return out


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Per step size where every seed of both reaches Δ*, the 95% t interval of the paired difference D_FLOW - D_TALR
    at Δ* decides: above 0 TALR retains more, below 0 FLOW does, across 0 undecided. Holds when TALR retains more at
    every such step size; fails when it never does and FLOW does somewhere; partly holds when the sign depends on the
    step size or some are undecided; inconclusive when none is decided or no step size is comparable.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    per = [x for x in _per_lr(m) if x[1] != "not reached"]
    sides = [s for _, s, _ in per]
    if not per or all(s == "crosses" for s in sides):
        return "inconclusive", "no step size where the paired interval excludes 0." if per else "no step size where every seed of both reaches Δ*."
    above = [lr for lr, s, _ in per if s == "above"]
    below = [lr for lr, s, _ in per if s == "below"]
    if not above:
        return "fails", f"FLOW retains more at lr {below}, TALR nowhere."
    if not below and len(above) == len(per):
        return "holds", f"TALR retains more at every comparable lr {above}."
    return "partly holds", f"TALR retains more at lr {above}, FLOW at {below}, undecided elsewhere."


def ours_synthetic(m: dict) -> str:
    return "; ".join(f"lr {lr:g}: " + ("not every seed reaches Δ*" if iv is None else "D_FLOW − D_TALR " + iv.text())
                     for lr, _, iv in _per_lr(m))


def describe_synthetic(m: dict) -> str:
    return (f"TALR = {m['talr_name']} ({m['talr_variant']}), FLOW ({m['flow_variant']}); D at matched gain Δ* = {m['target_gain']:g} "
            f"per lr {m['learning_rates']}, mean over seeds where all {m['n_seeds']} reach Δ*: TALR {np.round(matched_means(m['talr']), 4).tolist()} vs FLOW "
            f"{np.round(matched_means(m['flow']), 4).tolist()}; paired differences D_FLOW − D_TALR with 95% t intervals: {ours_synthetic(m)}.")


def _synthetic_verdict(talr: str) -> Verdict:
    m = measure_synthetic(talr)
    verdict, reason = decide_synthetic(m)
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_methods_pareto"),
                   ours=ours_synthetic(m), seeds=f"{m['n_seeds']} paired", rule=rule_of(decide_synthetic),
                   sensitivity=NO_THRESHOLD + " (sign of a paired difference)")


@check(17, f"{synth.SETTING}, TALR with mean-one weights (talr-mean)", synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    from sft_tilt.synthetic.experiments.methods import COMPARED_TALR

    return _synthetic_verdict(COMPARED_TALR)


@check(17, f"{synth.SETTING}, DiSC's unnormalised TALR (talr-disc)", synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic_unnormalised() -> Verdict:
    from sft_tilt.synthetic.experiments.methods import UNNORMALISED_TALR

    return _synthetic_verdict(UNNORMALISED_TALR)


def measure_real_lm() -> dict:
    """At the larger method lr: TALR's and FLOW's end-of-training rows, and per seed each one's general change where
    its trajectory reaches the matched gain Δ*, the largest both reach in every seed
    (:func:`sft_tilt.claims.real_lm_results.matched_along_trajectories`), with whether it gains in every seed."""
    p = real.preset(PRESET, METHODS)
    lr = p.comparison_learning_rates[1]
    rows = real.method_rows(p, lr)
    keys = ("domain_gain", "general_change", "general_change_sd", "n")
    out = {"learning_rate": lr, **{n: ({k: rows[n][k] for k in keys} if n in rows and rows[n]["n"] > 0 else None) for n in ("talr", "flow")}}
    ran = [n for n in ("talr", "flow") if out[n]]
    mt = real.matched_along_trajectories(p, lr, ran)
    out.update(target=mt["target"], chords=mt["chords"], bootstrap=mt["bootstrap"])
    for n in ran:
        out[f"{n}_matched"] = mt["matched"].get(n, {})
        out[f"{n}_reached"] = n not in mt["no_gain"]
    return out


def _matched_interval(m: dict):
    """D_FLOW - D_TALR at the matched gain, paired by seed, over the evaluation sample too where the runs have
    per-item losses (:func:`sft_tilt.claims.real_lm_results.matched_difference`)."""
    matched = {"flow": m.get("flow_matched", {}), "talr": m.get("talr_matched", {})}
    return real.matched_difference(matched, m.get("bootstrap"), "flow", "talr")


def decide_real_lm(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """At matched domain gain: each method's general change where its trajectory reaches Δ*, per seed; the 95%
    interval of the paired difference FLOW - TALR (the t interval over seeds; where the runs have per-item losses,
    joined with the crossed bootstrap over seeds and evaluation items) decides: above 0 holds (TALR retains more for the same gain),
    below 0 fails, across 0 inconclusive. Inconclusive, and not compared, when a method is missing or never gains
    in some seed.

    The boundary is 0 (a sign), so ``threshold_scale`` has nothing to scale."""
    if not m.get("talr") or not m.get("flow"):
        return "inconclusive", "TALR or FLOW runs missing."
    off = [n.upper() for n in ("talr", "flow") if not m.get(f"{n}_reached")]
    if off:
        return "inconclusive", f"{' and '.join(off)} made no domain gain in some seed: no matched-gain comparison, not ranked."
    iv = _matched_interval(m)
    s = side(iv)
    if s == "crosses":
        return "inconclusive", f"the 95% interval of FLOW − TALR at matched gain, {iv.text()}, contains 0."
    return ("holds", "TALR retains more at matched gain.") if s == "above" else ("fails", "FLOW retains more at matched gain.")


def describe_real_lm(m: dict) -> str:
    t, f = m.get("talr"), m.get("flow")
    if not t or not f:
        return "TALR or FLOW runs missing."
    return (f"Paper (5e-6): general TALR 0.502 vs FLOW 0.450 (domain 0.542 vs 0.553). Ours (lr {m['learning_rate']:g}, TALR and FLOW "
            f"with mean-one weights; under Adam a constant loss scale would not change the step): D TALR {t['general_change']:+.4f}+-{t['general_change_sd']:.4f} vs FLOW "
            f"{f['general_change']:+.4f}+-{f['general_change_sd']:.4f} (sd over seeds, ddof 1); G TALR {t['domain_gain']:.4f} vs FLOW "
            f"{f['domain_gain']:.4f}" + _matched_text(m) + ". " + real.T_NOTE + " " + real.evaluation_note(m.get("bootstrap"))
            + " " + real.DIRECTIONS)


def _matched_text(m: dict) -> str:
    if m.get("target") is None:
        return ""
    mean = lambda d: float(np.mean(list(d.values()))) if d else float("nan")  # noqa: E731
    chords = {n.upper(): k for n, k in m.get("chords", {}).items() if k}
    return (f"; at Δ* = {m['target']:.4f}, the largest gain both reach in every seed, along each run's trajectory: D TALR "
            f"{mean(m.get('talr_matched', {})):+.4f} vs FLOW {mean(m.get('flow_matched', {})):+.4f}"
            + (f" (seeds reaching Δ* before their first evaluation point, whose D there is a chord from the base model: {chords})" if chords else ""))


@check(17, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    iv = _matched_interval(m)
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command("real_lm_methods_pareto", PRESET),
                   ours=f"FLOW − TALR at matched gain {iv.text()} ({real.resampled(m.get('bootstrap'))})", seeds=f"{iv.n} paired", rule=rule_of(decide_real_lm),
                   sensitivity=NO_THRESHOLD + " (sign of a paired difference)")
