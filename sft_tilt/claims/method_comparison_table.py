"""Every fine-tuning method of the synthetic methods sweep against SFT at matched domain gain, with intervals.

Not one of the paper's claims: the comparison a practitioner choosing a forgetting-aware loss asks for, including
the losses current trainers ship (EAFT, ASFT, SFT-KL) beside TALR, DFT, FLOW and L2. For each method and step size
of the sweep, paired by seed (same world, features and minibatches), the 95% t interval of

    D_method(Delta*) - D_SFT(Delta*)        (general degradation at the matched domain gain Delta*, nats/token)

and its reading: "less" (interval below 0: the method degrades less than SFT for the same domain gain), "more"
(above 0), "undecided" (crosses 0), "not reached" (some seed never reached Delta*, so the pair is missing). The
weighting methods use mean-one weights (equal effective step), so the comparison is of where the step goes, not of
its size.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side

__all__ = ["measure", "reading", "render_method_table"]


def measure() -> dict:
    """``{"target_gain", "learning_rates", "n_seeds", "rows": {display name: [Interval per lr]}, "variants": {name: text}}``."""
    from sft_tilt.synthetic.experiments.methods import METHOD_CONFIGS

    cfg, r = synth.methods()
    sft = synth.method_arrays(r, "SFT")["matched"]
    rows, variants = {}, {}
    for name in (n for n in METHOD_CONFIGS if n in r["per_method"] and n != "SFT"):  # the sweep's own order
        m = synth.method_arrays(r, name)["matched"]
        rows[name] = [paired_interval(m[:, j], sft[:, j]) if np.all(np.isfinite(m[:, j])) and np.all(np.isfinite(sft[:, j]))
                      else None for j in range(m.shape[1])]
        variants[name] = synth.variant(name)
    return {"target_gain": float(r["target_gain"]), "learning_rates": [float(x) for x in r["learning_rates"]], "n_seeds": len(r["seeds"]),
            "rows": rows, "variants": variants}


def reading(interval) -> str:
    """"less" / "more" / "undecided" for an interval of D_method - D_SFT; "not reached" for a missing pair."""
    if interval is None:
        return "not reached"
    return {"below": "less", "above": "more"}.get(side(interval), "undecided")


def render_method_table(m: dict | None = None) -> list[str]:
    """Markdown lines of the section."""
    m = measure() if m is None else m
    lines = ["", "## Every method against SFT at matched gain (synthetic)", "",
             f"General degradation at the matched domain gain Δ* = {m['target_gain']:g} minus SFT's, paired over "
             f"{m['n_seeds']} seeds, mean with 95% t interval (nats/token); **less** / **more**: the interval lies below / "
             "above 0; undecided: it contains 0; not reached: a seed never reached Δ*. Not a claim of the paper: the "
             "comparison of every registered forgetting-aware loss, including those trainers ship (EAFT, ASFT, SFT-KL). "
             "Reproduce: `python -m sft_tilt.figures synthetic_methods_pareto`.", "",
             "| method (registry entry, weights) | " + " | ".join(f"lr {lr:g}" for lr in m["learning_rates"]) + " |",
             "|---|" + "---|" * len(m["learning_rates"])]
    for name, ivs in m["rows"].items():
        cells = []
        for iv in ivs:
            r = reading(iv)
            cells.append(r if iv is None else f"{iv.text('+.2g')} {'**' + r + '**' if r in ('less', 'more') else r}")
        lines.append(f"| {name} ({m['variants'][name]}) | " + " | ".join(cells) + " |")
    return lines
