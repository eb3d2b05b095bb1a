"""Claim 15: parameter-space baselines (LoRA, WiSE-FT model averaging) keep general ability but lose about two
thirds of the domain performance.

Real-LM setting: LoRA and model averaging with alpha 0.5 against SFT at the small method learning rate, paired
by seed.
"""

from __future__ import annotations

from sft_tilt.claims import real_lm_results as real
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["CANDIDATES", "DOMAIN_SHARE", "measure", "decide", "describe"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods whose comparison runs it reads besides SFT's.
METHODS = ("lora",)

CANDIDATES = ("lora", "averaging(0.5)")
# "lose about two thirds": keep at most half of SFT's domain gain (the paper's share is about 1/3).
DOMAIN_SHARE = 0.5


def measure() -> dict:
    p = real.preset(PRESET, METHODS)
    rows = real.method_rows(p, p.comparison_learning_rates[0])
    keep = lambda r: {"domain_gain": r["domain_gain"], "general_change": r["general_change"],  # noqa: E731
                      "per_seed": r.get("per_seed", [])}
    return {"learning_rate": p.comparison_learning_rates[0], "sft": keep(rows["sft"]),
            "candidates": {n: keep(rows[n]) for n in CANDIDATES if n in rows and rows[n]["n"] > 0}}


def _paired(sft: dict, r: dict, key: str, scale: float = 1.0):
    """Paired (same seed) 95% t interval of the baseline's ``key`` minus ``scale`` times SFT's."""
    base = {int(s["seed"]): float(s[key]) for s in sft.get("per_seed", [])}
    seeds = [s for s in r.get("per_seed", []) if int(s["seed"]) in base]
    return paired_interval([float(s[key]) for s in seeds], [scale * base[int(s["seed"])] for s in seeds])


def _criteria(sft: dict, r: dict, share_max: float = DOMAIN_SHARE) -> dict:
    """Per criterion "met" / "missed" / "undecided" with its interval: general ability kept (D - D_SFT below 0) and
    domain gain lost (G - share_max G_SFT below 0)."""
    out = {}
    for name, iv in (("keeps general ability", _paired(sft, r, "general_change")),
                     (f"keeps at most {share_max:g} of SFT's domain gain", _paired(sft, r, "domain_gain", share_max))):
        out[name] = ({"below": "met", "above": "missed"}.get(side(iv), "undecided"), iv)
    return out


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Per baseline, paired by seed with 95% t intervals: it meets the claim when its general change is below SFT's
    (interval of D - D_SFT below 0) and its domain gain below DOMAIN_SHARE of SFT's (interval of G - DOMAIN_SHARE
    G_SFT below 0); it misses when either interval lies above 0. Holds when every baseline meets it; partly holds
    when some does; fails when none does and some misses; inconclusive otherwise or with no baseline.

    ``threshold_scale`` multiplies DOMAIN_SHARE; "D below SFT's" is a comparison (no threshold)."""
    if not m["candidates"]:
        return "inconclusive", "no LoRA or averaging runs."
    status = {}
    for n, r in m["candidates"].items():
        parts = [v for v, _ in _criteria(m["sft"], r, DOMAIN_SHARE * threshold_scale).values()]
        status[n] = "meets" if all(v == "met" for v in parts) else ("misses" if "missed" in parts else "undecided")
    detail = "; ".join(f"{n} {v}" for n, v in status.items())
    if all(v == "meets" for v in status.values()):
        return "holds", "every baseline keeps general ability and loses most of the domain gain (" + detail + ")."
    if "meets" in status.values():
        return "partly holds", detail + "."
    if "misses" in status.values():
        return "fails", detail + "."
    return "inconclusive", detail + "."


def describe(m: dict) -> str:
    sft = m["sft"]
    parts = []
    for n, r in m["candidates"].items():
        share = r["domain_gain"] / sft["domain_gain"] if sft["domain_gain"] > 0 else float("nan")
        parts.append(f"{n}: G={r['domain_gain']:.4f} ({share:.2f} of SFT's {sft['domain_gain']:.4f}), D={r['general_change']:+.4f} vs SFT "
                     f"{sft['general_change']:+.4f}")
    return (f"Paper (1e-6): LoRA domain 0.181, WiSE-FT 0.198 vs SFT 0.534 (about 1/3), WiSE-FT general 0.727 vs SFT 0.692. Ours (lr "
            f"{m['learning_rate']:g}): " + "; ".join(parts) + f". Criterion: D <= SFT's and G <= {DOMAIN_SHARE} x SFT's. " + real.DIRECTIONS)


@check(15, real.setting(PRESET), real.GROUP, figures=("real_lm_methods_pareto",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    parts, ns = [], []
    for n, r in m["candidates"].items():
        crit = _criteria(m["sft"], r)
        ns.append(min(iv.n for _, iv in crit.values()))
        parts.append(f"{n}: " + ", ".join(f"{k} {v} ({iv.text()})" for k, (v, iv) in crit.items()))
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto", PRESET), ours="; ".join(parts) or "-",
                   seeds=f"{min(ns, default=0)} paired", rule=rule_of(decide), sensitivity=sensitivity(decide, m))
