"""Claim 12: a 5x larger learning rate buys a little domain gain for a large general loss (MedCalc: +0.024
domain for -0.311 general).

Real-LM setting: SFT on chain-of-thought targets at the two method learning rates (5x apart), domain gain G and
general change D at the end of training, paired by seed (same seed: same data order and initialisation).
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["EXCHANGE_MIN_EFFECT", "measure", "decide", "ours", "describe"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"


def measure() -> dict:
    """Per seed (the seeds both learning rates finished): G and D at the small and at the large method lr."""
    from sft_tilt.harness.experiment_results import lr_tradeoff

    p = real.preset(PRESET)
    runs = lr_tradeoff(p)
    small, large = p.comparison_learning_rates
    cot = [r for r in runs if r["fmt"] == "cot"]
    seeds = sorted({int(r["seed"]) for r in cot if r["learning_rate"] == small} & {int(r["seed"]) for r in cot if r["learning_rate"] == large})

    def per_seed(key, lr):
        by = {int(r["seed"]): float(r[key]) for r in cot if r["learning_rate"] == lr}
        return np.array([by[s] for s in seeds], float)

    acc = {lr: [r["accuracy"] for r in cot if r["learning_rate"] == lr and r["accuracy"] is not None] for lr in (small, large)}
    return {"small": small, "large": large, "seeds": seeds,
            "domain_gain": {"small": per_seed("domain_gain", small), "large": per_seed("domain_gain", large)},
            "general_change": {"small": per_seed("general_change", small), "large": per_seed("general_change", large)},
            "accuracy": {lr: (round(float(np.mean(v)), 2) if v else None) for lr, v in acc.items()}}


#: The smallest difference between the larger rate's extra general cost and its extra domain gain that decides the
#: exchange, in nats/token (the resolution claim 3 uses for a change of D).
EXCHANGE_MIN_EFFECT = 0.002


def _intervals(m: dict) -> dict:
    g, d = ({k: np.asarray(v, float) for k, v in m[key].items()} for key in ("domain_gain", "general_change"))
    dG, dD = g["large"] - g["small"], d["large"] - d["small"]
    # marginal cost dD/dG above the small lr's average cost D_s/G_s  <=>  dD G_s - D_s dG > 0 (for dG, G_s > 0):
    # a per-seed difference without ratios of noisy numbers; meaningful only when D_s > 0 (else it passes whenever dD > 0)
    excess = dD * g["small"] - d["small"] * dG
    return {"domain gain (large - small)": paired_interval(dG), "general change (large - small)": paired_interval(dD),
            "general cost minus domain gain (large - small)": paired_interval(dD - dG),
            "general change at the small lr": paired_interval(d["small"]),
            "marginal minus average cost (x G_small)": paired_interval(excess)}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Paired by seed, with 95% t intervals. Fails when the larger learning rate lowers the domain gain (interval of
    G_large - G_small below 0: it buys no domain gain) or lowers the general loss change (interval of D_large -
    D_small below 0); inconclusive when either interval crosses 0. When both rise, the exchange: the paper's larger
    rate buys less domain gain than it costs general loss (0.024 for 0.311), so the rule asks that the extra general
    loss exceed the extra domain gain, both in nats/token: the interval of (D_large - D_small) - (G_large - G_small)
    above 0 with a mean of at least EXCHANGE_MIN_EFFECT. Where the small rate itself degrades (interval of D_small
    above 0) its average cost D_small / G_small is defined, and the marginal cost must also exceed it (interval of
    dD G_small - D_small dG above 0); where it does not, that test is not made (it would pass whenever D rises).
    Holds when the exchange and, where made, the marginal-cost test are above; partly holds when the larger rate
    degrades but buys more domain gain than it costs (exchange interval below 0 beyond the minimum effect) or its
    marginal cost is below the average; inconclusive otherwise.

    ``threshold_scale`` multiplies EXCHANGE_MIN_EFFECT."""
    if len(m.get("seeds", [])) == 0:
        return "inconclusive", "no seed finished at both learning rates."
    iv = _intervals(m)
    g_side = side(iv["domain gain (large - small)"])
    d_side = side(iv["general change (large - small)"])
    text = lambda k: iv[k].text()  # noqa: E731
    if g_side == "below":
        return "fails", f"the larger lr lowers the domain gain ({text('domain gain (large - small)')}): it buys no domain gain."
    if d_side == "below":
        return "fails", f"the larger lr lowers the general loss change ({text('general change (large - small)')})."
    if g_side == "crosses" or d_side == "crosses":
        return "inconclusive", (f"domain gain change {text('domain gain (large - small)')}, general change "
                                f"{text('general change (large - small)')}: an interval crosses 0.")
    x = iv["general cost minus domain gain (large - small)"]
    big = abs(x.mean) >= EXCHANGE_MIN_EFFECT * threshold_scale
    exchange = side(x) if big else "crosses"
    if side(iv["general change at the small lr"]) == "above":
        e = iv["marginal minus average cost (x G_small)"]
        average = (side(e), f"marginal minus average cost (x G_small) {e.text()}")
    else:
        average = ("not made", f"the small lr does not degrade (D_small {text('general change at the small lr')}), so "
                               "its average cost gives no test")
    reason = f"extra general cost minus extra domain gain {x.text()}; {average[1]}"
    if exchange == "above" and average[0] in ("above", "not made"):
        return "holds", f"both rise and the larger lr costs more general loss than it buys domain gain: {reason}."
    if exchange == "below" or average[0] == "below":
        return "partly holds", f"both rise, but the larger lr buys more domain gain than it costs, or at a cost below the average: {reason}."
    return "inconclusive", f"both rise; the exchange is undecided: {reason}."


def ours(m: dict) -> str:
    if len(m.get("seeds", [])) == 0:
        return "-"
    return "; ".join(f"{k} {iv.text()}" for k, iv in _intervals(m).items())


def describe(m: dict) -> str:
    g, d = ({k: float(np.mean(v)) if np.size(v) else float("nan") for k, v in m[key].items()} for key in ("domain_gain", "general_change"))
    return (f"Paper (MedCalc, 3-model avg): SFT 1e-6 -> 5e-6 gives domain +0.024 for general -0.311. Ours (SFT, CoT, {m['small']:g} -> "
            f"{m['large']:g}, {m['large'] / m['small']:g}x, {len(m['seeds'])} seeds): seed-mean domain gain G {g['small']:.4f} -> "
            f"{g['large']:.4f}, general loss change D {d['small']:+.4f} -> {d['large']:+.4f} nats/token; greedy accuracy "
            f"{m['accuracy']}. Paired 95% t intervals: {ours(m)}. " + real.DIRECTIONS)


@check(12, real.setting(PRESET), real.GROUP, figures=("real_lm_lr_tradeoff",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_lr_tradeoff", PRESET), ours=ours(m),
                   seeds=f"{len(m['seeds'])} paired", rule=rule_of(decide),
                   sensitivity=sensitivity(decide, m))
