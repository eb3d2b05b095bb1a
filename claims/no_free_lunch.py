"""Claim 16: no free lunch: every method's general performance is lower at the larger learning rate.

Real-LM setting: general change D of every method (and averaging weight) at the small and the large method
learning rate on SmolLM2.
"""

from __future__ import annotations

from claims import real_lm_results as real
from claims.registry import Verdict, check

__all__ = ["measure", "decide", "describe"]


def measure() -> dict:
    p = real.preset()
    small, large = (real.method_rows(p, lr) for lr in p.method_lrs)
    names = [n for n in small if n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    return {"lrs": list(p.method_lrs), "general_change": {n: (small[n]["general_change"], large[n]["general_change"]) for n in names}}


def decide(m: dict) -> tuple[str, str]:
    """Holds when every method's D is higher at the larger lr; partly holds when more than half are; fails
    otherwise; inconclusive when no method ran at both learning rates."""
    d = m["general_change"]
    if not d:
        return "inconclusive", "no method ran at both learning rates."
    worse = [n for n, (s, l) in d.items() if l > s]
    if len(worse) == len(d):
        return "holds", "every method degrades more at the larger lr."
    not_worse = sorted(set(d) - set(worse))
    verdict = "partly holds" if len(worse) > len(d) / 2 else "fails"
    return verdict, f"{len(worse)}/{len(d)} methods degrade more at the larger lr; not: {not_worse}."


def describe(m: dict) -> str:
    return (f"Paper: every method's general score is lower at 5e-6 than at 1e-6. Ours, D at {m['lrs'][0]:g} -> {m['lrs'][1]:g}: "
            + ", ".join(f"{n} {s:+.4f} -> {l:+.4f}" for n, (s, l) in m["general_change"].items()) + ". " + real.DIRECTIONS)


@check(16, real.setting(), real.GROUP, figures=("real_lm_methods_pareto",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto"))
