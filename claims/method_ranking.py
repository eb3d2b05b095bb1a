"""Claim 13: at the larger learning rate general retention orders TALR > FLOW > L2 > SFT.

Real-LM setting: general change D (mean over seeds) of the four methods at the larger method learning rate on
SmolLM2; lower D is better retention.
"""

from __future__ import annotations

from claims import real_lm_results as real
from claims.registry import Verdict, check

__all__ = ["PAPER_ORDER", "measure", "decide", "describe"]

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
