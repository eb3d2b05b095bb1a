"""Claim 14: a small learning rate compresses the differences between methods.

Real-LM setting: the spread (max - min) over SFT, L2 and TALR of general change D and of domain gain G, at the
small against the large method learning rate on SmolLM2.
"""

from __future__ import annotations

from claims import real_lm_results as real
from claims.registry import Verdict, check

__all__ = ["METHODS", "measure", "decide", "describe"]

METHODS = ("sft", "l2", "talr")


def measure() -> dict:
    p = real.preset()
    small, large = (real.method_rows(p, lr) for lr in p.method_lrs)
    names = [n for n in METHODS if n in small and n in large and small[n]["n"] > 0 and large[n]["n"] > 0]
    pick = lambda rows: {n: {"general_change": rows[n]["general_change"], "domain_gain": rows[n]["domain_gain"]} for n in names}  # noqa: E731
    return {"lrs": list(p.method_lrs), "small": pick(small), "large": pick(large)}


def _spread(rows: dict, key: str) -> float:
    vals = [r[key] for r in rows.values()]
    return max(vals) - min(vals)


def decide(m: dict) -> tuple[str, str]:
    """Holds when the spread of D is smaller at the small lr and the spread of G is not larger; partly holds when
    one of the two spreads is smaller; fails otherwise; inconclusive with fewer than two methods."""
    if len(m["small"]) < 2:
        return "inconclusive", "fewer than two of SFT, L2, TALR ran at both learning rates."
    ds, dl = _spread(m["small"], "general_change"), _spread(m["large"], "general_change")
    gs, gl = _spread(m["small"], "domain_gain"), _spread(m["large"], "domain_gain")
    if ds < dl and gs <= gl:
        return "holds", "both spreads are smaller at the small lr."
    if ds < dl or gs < gl:
        return "partly holds", f"only the spread of {'D' if ds < dl else 'G'} is smaller at the small lr."
    return "fails", "neither spread is smaller at the small lr."


def describe(m: dict) -> str:
    if len(m["small"]) < 2:
        return "Not enough methods."
    ds, dl = _spread(m["small"], "general_change"), _spread(m["large"], "general_change")
    gs, gl = _spread(m["small"], "domain_gain"), _spread(m["large"], "domain_gain")
    best = min(m["small"], key=lambda n: m["small"][n]["general_change"])
    return (f"Paper (1e-6): SFT/L2/TALR within 0.033 domain and 0.025 general; at 5e-6 general spread 0.121. Ours ({', '.join(m['small'])}): "
            f"spread of D {ds:.4f} at lr {m['lrs'][0]:g} vs {dl:.4f} at {m['lrs'][1]:g}; spread of G {gs:.4f} vs {gl:.4f}; best general at "
            f"small lr: {best}. " + real.DIRECTIONS)


@check(14, real.setting(), real.GROUP, figures=("real_lm_methods_pareto",))
def real_lm() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, real.command("real_lm_methods_pareto"))
