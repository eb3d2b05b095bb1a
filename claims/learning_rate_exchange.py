"""Claim 12: a 5x larger learning rate buys a little domain gain for a large general loss (MedCalc: +0.024
domain for -0.311 general).

Real-LM setting: SFT on chain-of-thought targets at the two method learning rates (5x apart), domain gain G and
general change D at the end of training, mean over seeds.
"""

from __future__ import annotations

import numpy as np

from claims import real_lm_results as real
from claims.registry import NO_THRESHOLD, Verdict, check, rule_of

__all__ = ["measure", "decide", "describe"]


def measure() -> dict:
    from sims.harness.experiments import lr_tradeoff

    p = real.preset()
    runs = lr_tradeoff(p, progress=False)
    small, large = p.method_lrs

    def mean(key, lr):
        return float(np.mean([r[key] for r in runs if r["fmt"] == "cot" and r["lr"] == lr]))

    acc = {lr: [r["accuracy"] for r in runs if r["fmt"] == "cot" and r["lr"] == lr and r["accuracy"] is not None] for lr in (small, large)}
    return {"small": small, "large": large,
            "domain_gain": {"small": mean("domain_gain", small), "large": mean("domain_gain", large)},
            "general_change": {"small": mean("general_change", small), "large": mean("general_change", large)},
            "accuracy": {lr: (round(float(np.mean(v)), 2) if v else None) for lr, v in acc.items()}}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Fails when the larger learning rate does not raise the domain gain (the claim is that it buys domain gain)
    or does not raise the general loss; holds when both rise and the marginal general cost per unit domain gain
    exceeds the small learning rate's average cost; partly holds when both rise at a cost no worse than average
    (seed means).

    Signs and a comparison of two rates, so ``threshold_scale`` has nothing to scale."""
    dd = m["domain_gain"]["large"] - m["domain_gain"]["small"]
    dg = m["general_change"]["large"] - m["general_change"]["small"]
    if dd <= 0:
        return "fails", f"the larger lr lowers the domain gain ({dd:+.4f}): it buys no domain gain."
    if dg <= 0:
        return "fails", f"the larger lr does not raise the general loss ({dg:+.4f})."
    g_s = m["domain_gain"]["small"]
    average = m["general_change"]["small"] / g_s if g_s > 0 else float("inf")
    marginal = dg / dd
    if marginal > average:
        return "holds", f"marginal general cost per unit domain gain {marginal:.3g} > {average:.3g} at the small lr."
    return "partly holds", f"larger lr degrades more, but at a marginal cost {marginal:.3g} <= {average:.3g}."


def describe(m: dict) -> str:
    g, d = m["domain_gain"], m["general_change"]
    return (f"Paper (MedCalc, 3-model avg): SFT 1e-6 -> 5e-6 gives domain +0.024 for general -0.311. Ours (SFT, CoT, {m['small']:g} -> "
            f"{m['large']:g}, {m['large'] / m['small']:g}x): domain gain G {g['small']:.4f} -> {g['large']:.4f} ({g['large'] - g['small']:+.4f}), "
            f"general loss change D {d['small']:+.4f} -> {d['large']:+.4f} ({d['large'] - d['small']:+.4f}) nats/token; greedy accuracy "
            f"{m['accuracy']}. " + real.DIRECTIONS)


@check(12, real.setting(), real.GROUP, figures=("real_lm_lr_tradeoff",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    g, d = m["domain_gain"], m["general_change"]
    ours = f"G {g['large'] - g['small']:+.4f}, D {d['large'] - d['small']:+.4f} (large minus small lr, seed means)"
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_lr_tradeoff"), ours=ours, seeds="seed means (no interval)",
                   rule=rule_of(decide), sensitivity=NO_THRESHOLD + " (signs and a comparison of two rates)")
