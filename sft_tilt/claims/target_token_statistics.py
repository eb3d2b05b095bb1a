"""Claim 11: under the initial model the median target-token probability is about 1, and hard tokens
(p <= 0.2) are a small minority concentrated on domain content.

Real-LM setting: SmolLM2's chain-of-thought training targets; digits stand for domain content (the generated
domain's conversion factors and values).
"""

from __future__ import annotations

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["MEDIAN_GAP", "MEDIAN_NEAR_ONE", "MINORITY", "measure", "decide", "describe"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"

# "median about 1": the median target token's probability is within 0.1 of 1 (at least 0.9).
MEDIAN_GAP = 0.1
MEDIAN_NEAR_ONE = 1 - MEDIAN_GAP
# "a small minority": at most one target token in four is hard.
MINORITY = 0.25


def measure() -> dict:
    from sft_tilt.harness.experiment_results import target_token_statistics

    st = target_token_statistics(real.preset(PRESET))["cot"]
    hard_total = max(sum(st["hard_kinds"].values()), 1)
    all_total = max(sum(st["all_kinds"].values()), 1)
    return {"n_tokens": st["n_tokens"], "median_p": st["median_p"], "hard_fraction": st["hard_fraction"],
            "digit_share_hard": st["hard_kinds"].get("digit", 0) / hard_total, "digit_share_all": st["all_kinds"].get("digit", 0) / all_total,
            "hardest": [t for t, _ in st["hard_tokens"][:10]]}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Three criteria: median p >= MEDIAN_NEAR_ONE, hard fraction <= MINORITY, digits over-represented among hard
    tokens. Holds when all three are met, partly holds when two are, fails otherwise; the reason names the failed
    ones.

    ``threshold_scale`` multiplies MEDIAN_GAP (the distance of the median from 1) and MINORITY; the digits
    criterion is a comparison (no threshold)."""
    near_one, minority = 1 - MEDIAN_GAP * threshold_scale, MINORITY * threshold_scale
    criteria = [(f"median p >= {near_one:g}", m["median_p"] >= near_one),
                (f"hard fraction <= {minority:g}", m["hard_fraction"] <= minority),
                ("hard tokens concentrated on domain content (digits)", m["digit_share_hard"] > m["digit_share_all"])]
    failed = [name for name, ok in criteria if not ok]
    if not failed:
        return "holds", "all three criteria met."
    verdict = "partly holds" if len(failed) == 1 else "fails"
    return verdict, f"{len(criteria) - len(failed)}/{len(criteria)} criteria met; failed: " + "; ".join(failed) + "."


def describe(m: dict) -> str:
    return (f"Paper: median target-token p ~ 1.0 under the initial model; hard tokens a small minority at domain content (conversion "
            f"factors). Ours (CoT training targets, {m['n_tokens']} tokens): median p = {m['median_p']:.3f}, fraction p <= 0.2 = "
            f"{m['hard_fraction']:.3f}; digits are {m['digit_share_hard']:.2f} of hard tokens vs {m['digit_share_all']:.2f} of all targets; "
            f"hardest: {', '.join(repr(t) for t in m['hardest'])}. " + real.DIRECTIONS)


@check(11, real.setting(PRESET), real.GROUP, figures=("real_lm_target_tokens",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    ours = (f"median p {m['median_p']:.3f}; fraction p <= 0.2 {m['hard_fraction']:.3f}; digits {m['digit_share_hard']:.2f} of hard vs "
            f"{m['digit_share_all']:.2f} of all")
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_target_tokens", PRESET), ours=ours,
                   seeds=f"base model, {m['n_tokens']} target tokens (no seeds)", rule=rule_of(decide), sensitivity=sensitivity(decide, m))
