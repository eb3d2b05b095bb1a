"""Claim 15: parameter-space baselines (LoRA, WiSE-FT model averaging) keep general ability but lose about two
thirds of the domain performance.

Real-LM setting: LoRA and model averaging with alpha 0.5 against SFT at the small method learning rate.
"""

from __future__ import annotations

from claims import real_lm_results as real
from claims.intervals import paired_interval
from claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["CANDIDATES", "DOMAIN_SHARE", "measure", "decide", "describe"]

CANDIDATES = ("lora", "averaging(0.5)")
# "lose about two thirds": keep at most half of SFT's domain gain (the paper's share is about 1/3).
DOMAIN_SHARE = 0.5


def measure() -> dict:
    p = real.preset()
    rows = real.method_rows(p, p.method_lrs[0])
    keep = lambda r: {"domain_gain": r["domain_gain"], "general_change": r["general_change"],  # noqa: E731
                      "per_seed": r.get("per_seed", [])}
    return {"lr": p.method_lrs[0], "sft": keep(rows["sft"]),
            "candidates": {n: keep(rows[n]) for n in CANDIDATES if n in rows and rows[n]["n"] > 0}}


def _meets(sft: dict, r: dict, share_max: float = DOMAIN_SHARE) -> tuple[bool, float]:
    share = r["domain_gain"] / sft["domain_gain"] if sft["domain_gain"] > 0 else float("nan")
    return bool(r["general_change"] <= sft["general_change"] and share <= share_max), share


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """A baseline meets the claim when its D is at most SFT's and its G at most DOMAIN_SHARE of SFT's. Holds when
    every baseline meets it, partly holds when one does, fails when none does; inconclusive with no baseline (seed
    means).

    ``threshold_scale`` multiplies DOMAIN_SHARE; "D at most SFT's" is a comparison (no threshold)."""
    if not m["candidates"]:
        return "inconclusive", "no LoRA or averaging runs."
    meets = {n: _meets(m["sft"], r, DOMAIN_SHARE * threshold_scale)[0] for n, r in m["candidates"].items()}
    if all(meets.values()):
        return "holds", "every baseline keeps general ability and loses most of the domain gain."
    if any(meets.values()):
        return "partly holds", f"met by {[n for n, ok in meets.items() if ok]}, not by {[n for n, ok in meets.items() if not ok]}."
    return "fails", "no baseline meets both criteria."


def describe(m: dict) -> str:
    sft = m["sft"]
    parts = []
    for n, r in m["candidates"].items():
        share = _meets(sft, r)[1]
        parts.append(f"{n}: G={r['domain_gain']:.4f} ({share:.2f} of SFT's {sft['domain_gain']:.4f}), D={r['general_change']:+.4f} vs SFT "
                     f"{sft['general_change']:+.4f}")
    return (f"Paper (1e-6): LoRA domain 0.181, WiSE-FT 0.198 vs SFT 0.534 (about 1/3), WiSE-FT general 0.727 vs SFT 0.692. Ours (lr "
            f"{m['lr']:g}): " + "; ".join(parts) + f". Criterion: D <= SFT's and G <= {DOMAIN_SHARE} x SFT's. " + real.DIRECTIONS)


@check(15, real.setting(), real.GROUP, figures=("real_lm_methods_pareto",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    sft = {s["seed"]: s for s in m["sft"].get("per_seed", [])}
    parts, ns = [], []
    for n, r in m["candidates"].items():
        seeds = [s for s in r.get("per_seed", []) if s["seed"] in sft]
        iv = paired_interval([s["general_change"] for s in seeds], [sft[s["seed"]]["general_change"] for s in seeds])
        ns.append(iv.n)
        parts.append(f"{n}: D − D_SFT {iv.text()}, G share {_meets(m['sft'], r)[1]:.2f}")
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto"), ours="; ".join(parts) or "-",
                   seeds=f"{min(ns, default=0)} paired (the rule reads seed means)", rule=rule_of(decide), sensitivity=sensitivity(decide, m))
