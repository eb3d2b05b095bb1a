"""Claim 17: dynamic token-level weighting (TALR) retains more general ability than static sample-level
weighting (FLOW).

Synthetic setting: D at matched gain Delta* (mean over seeds, only learning rates where every seed reaches it) of
TALR (dynamic tau) and FLOW. Real-LM setting: D of TALR and FLOW at the larger learning rate, with the standard
error of the difference over seeds.
"""

from __future__ import annotations

import warnings

import numpy as np

from claims import real_lm_results as real
from claims import synthetic_results as synth
from claims.registry import Verdict, check

__all__ = ["STANDARD_ERRORS", "matched_means", "measure_synthetic", "decide_synthetic", "describe_synthetic",
           "measure_real_lm", "decide_real_lm", "describe_real_lm"]

# a difference within 2 standard errors over seeds (about a 95% interval) is not told apart from zero.
STANDARD_ERRORS = 2.0


def matched_means(matched: np.ndarray) -> np.ndarray:
    """Mean over seeds (rows) of D at matched gain per learning rate; NaN where some seed never reached it."""
    m = np.asarray(matched, float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.where(np.isfinite(m).all(0), np.nanmean(m, 0), np.nan)


def measure_synthetic() -> dict:
    _, r = synth.methods()
    t, f = r["per_method"]["TALR (dynamic tau)"], r["per_method"]["FLOW"]
    return {"target_gain": float(r["target_gain"]), "lrs": np.asarray(r["lrs"]), "n_seeds": len(r["seeds"]),
            "talr": matched_means(t["matched_degradation"]), "flow": matched_means(f["matched_degradation"]),
            "end_talr": float(t["degradation"][:, -1, -1].mean()), "end_flow": float(f["degradation"][:, -1, -1].mean())}


def decide_synthetic(m: dict) -> tuple[str, str]:
    """Holds when TALR's D at matched gain is lower than FLOW's at every learning rate where both reach Delta*;
    partly holds when it is lower at the largest learning rate only; fails otherwise; inconclusive when no
    learning rate is comparable."""
    talr, flow = np.asarray(m["talr"], float), np.asarray(m["flow"], float)
    both = np.isfinite(talr) & np.isfinite(flow)
    if not both.any():
        return "inconclusive", "no learning rate where both reach Δ*."
    wins = talr[both] < flow[both]
    if wins.all():
        return "holds", f"TALR lower at all {int(both.sum())} comparable lrs."
    if both[-1] and talr[-1] < flow[-1]:
        return "partly holds", f"TALR lower at {int(wins.sum())}/{int(both.sum())} comparable lrs, including the largest."
    return "fails", f"TALR lower at {int(wins.sum())}/{int(both.sum())} comparable lrs, not at the largest."


def describe_synthetic(m: dict) -> str:
    return (f"D at matched gain Δ* = {m['target_gain']:g} (mean over {m['n_seeds']} seeds, all seeds reaching Δ*) per lr "
            f"{np.asarray(m['lrs']).tolist()}: TALR {np.round(m['talr'], 4).tolist()} vs FLOW {np.round(m['flow'], 4).tolist()}. End of "
            f"training at the largest lr: TALR D = {m['end_talr']:.4f}, FLOW D = {m['end_flow']:.4f} (at different gains).")


@check(17, synth.SETTING, synth.GROUP, figures=("synthetic_methods_pareto",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_methods_pareto"))


def measure_real_lm() -> dict:
    p = real.preset()
    rows = real.method_rows(p, p.method_lrs[1])
    keys = ("domain_gain", "general_change", "general_change_sd", "n")
    return {"lr": p.method_lrs[1], **{n: ({k: rows[n][k] for k in keys} if n in rows and rows[n]["n"] > 0 else None) for n in ("talr", "flow")}}


def decide_real_lm(m: dict) -> tuple[str, str]:
    """Holds when FLOW's D exceeds TALR's by more than STANDARD_ERRORS standard errors over seeds; fails when
    TALR's exceeds FLOW's by as much; inconclusive within that, or when a method is missing."""
    t, f = m["talr"], m["flow"]
    if not t or not f:
        return "inconclusive", "TALR or FLOW runs missing."
    diff = f["general_change"] - t["general_change"]
    se = float(np.sqrt(t["general_change_sd"] ** 2 / t["n"] + f["general_change_sd"] ** 2 / f["n"]))
    if abs(diff) <= STANDARD_ERRORS * se:
        return "inconclusive", f"difference {diff:+.4f} within {STANDARD_ERRORS:g} standard errors ({se:.4f}) over seeds."
    return ("holds", "TALR retains more.") if diff > 0 else ("fails", "FLOW retains more.")


def describe_real_lm(m: dict) -> str:
    t, f = m["talr"], m["flow"]
    if not t or not f:
        return "TALR or FLOW runs missing."
    return (f"Paper (5e-6): general TALR 0.502 vs FLOW 0.450 (domain 0.542 vs 0.553). Ours (lr {m['lr']:g}): D TALR "
            f"{t['general_change']:+.4f}+-{t['general_change_sd']:.4f} vs FLOW {f['general_change']:+.4f}+-{f['general_change_sd']:.4f}; "
            f"G TALR {t['domain_gain']:.4f} vs FLOW {f['domain_gain']:.4f}. " + real.DIRECTIONS)


@check(17, real.setting(), real.GROUP, figures=("real_lm_methods_pareto",))
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command("real_lm_methods_pareto"))
