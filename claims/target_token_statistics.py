"""Claim 11: under the initial model the median target-token probability is about 1, and hard tokens
(p <= 0.2) are a small minority concentrated on domain content.

Real-LM setting: SmolLM2's chain-of-thought training targets; digits stand for domain content (the generated
domain's conversion factors and values).
"""

from __future__ import annotations

from claims import real_lm_results as real
from claims.registry import Verdict, check

__all__ = ["MEDIAN_NEAR_ONE", "MINORITY", "measure", "decide", "describe"]

# "median about 1": the median target token is predicted with probability at least 0.9.
MEDIAN_NEAR_ONE = 0.9
# "a small minority": at most one target token in four is hard.
MINORITY = 0.25


def measure() -> dict:
    from sims.harness.experiments import token_analysis

    st = token_analysis(real.preset(), progress=False)["formats"]["cot"]
    hard_total = max(sum(st["hard_kinds"].values()), 1)
    all_total = max(sum(st["all_kinds"].values()), 1)
    return {"n_tokens": st["n_tokens"], "median_p": st["median_p"], "hard_fraction": st["hard_fraction"],
            "digit_share_hard": st["hard_kinds"].get("digit", 0) / hard_total, "digit_share_all": st["all_kinds"].get("digit", 0) / all_total,
            "hardest": [t for t, _ in st["hard_tokens"][:10]]}


def decide(m: dict) -> tuple[str, str]:
    """Three criteria: median p >= MEDIAN_NEAR_ONE, hard fraction <= MINORITY, digits over-represented among hard
    tokens. Holds when all three are met, partly holds when two are, fails otherwise; the reason names the failed
    ones."""
    criteria = [(f"median p >= {MEDIAN_NEAR_ONE}", m["median_p"] >= MEDIAN_NEAR_ONE),
                (f"hard fraction <= {MINORITY}", m["hard_fraction"] <= MINORITY),
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


@check(11, real.setting(), real.GROUP, figures=("real_lm_token_stats",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_token_stats"))
