"""Claim 18 in one step from the base model, once under SGD and once under Adam: does TALR lower the general cost of a
step at the same domain gain?

The record is :mod:`sft_tilt.harness.optimizer_step` (stored; reading it needs no model): for each format, optimiser
and method, one step at three rates matched so that its first-order domain gain is 2, 6 and 18% of the batch's loss,
with the measured domain gain ``G`` and general loss change ``D`` on a general probe. Each arm's points, ordered by
rate, trace ``D`` against ``G``; two arms are compared at the gains both reach (each arm's own measured gains inside
the common range), the other arm's ``D`` and rate interpolated linearly between its two neighbouring rates. No
extrapolation: a gain outside an arm's measured range is not compared.

What the single-step theory predicts. Under SGD the step is ``-eta sum_i w_i grad l_i / N``: TALR's weights (``w <= 1``,
small on hard tokens) shorten it, so at one rate TALR pays less general cost (and gains less). Under Adam the first
step is ``-eta g / (|g| + eps)``, about ``-eta sign(g)``: the update's norm does not depend on the weights, so that
channel is gone. At matched domain gain both optimisers factor the step's size out, and what is left is the step's
direction; the tilt bounds (Jensen below, Hoeffding/Bennett above) hold for whatever update is realised. The record
checks the last directly (the monitor's ``left_band``) and gives the update norms per unit rate.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["PRESET", "OPTIMIZER_NAMES", "MIN_REDUCTION", "MIN_POINTS", "FIGURE", "arm_curve", "matched_points",
           "measure", "decide", "describe", "setting"]

PRESET = "cpu"
FIGURE = "real_lm_optimizer_step"
#: How each optimiser is named in the setting column.
OPTIMIZER_NAMES = {"sgd": "SGD", "adam": "Adam"}
#: The minimum effect: TALR's general loss change at matched gain at most (1 - MIN_REDUCTION) times SFT's (a tenth
#: lower). One batch and one probe have no seeds to give an interval, so the effect must be clear of round-off and of
#: the probe's choice by a margin; a tenth is that margin.
MIN_REDUCTION = 0.1
#: Matched-gain points (over the formats) where SFT has a general cost that a verdict needs.
MIN_POINTS = 2


def arm_curve(arm: dict) -> dict:
    """``{"domain_gain", "general_change", "learning_rate"}`` arrays of one arm's steps in order of rate, up to the
    first step whose domain gain does not exceed the previous one's (past it a larger rate overshoots and ``G`` no
    longer orders the points)."""
    steps = sorted(arm["steps"], key=lambda s: s["learning_rate"])
    kept = [steps[0]]
    for s in steps[1:]:
        if not s["domain_gain"] > kept[-1]["domain_gain"]:
            break
        kept.append(s)
    return {"domain_gain": np.array([s["domain_gain"] for s in kept], float),
            "general_change": np.array([s["measured_change"] for s in kept], float),
            "learning_rate": np.array([s["learning_rate"] for s in kept], float)}


def matched_points(record: dict, method: str, optimizer: str) -> list[dict]:
    """Per format, SFT and ``method`` under ``optimizer`` at the gains both reach (module docstring): ``[{"fmt",
    "domain_gain", "sft_general_change", "method_general_change", "sft_learning_rate", "method_learning_rate"}]``."""
    points = []
    for fmt, res in record["formats"].items():
        arms = res["arms"][optimizer]
        a, b = arm_curve(arms["sft"]), arm_curve(arms[method])
        lo = max(a["domain_gain"][0], b["domain_gain"][0])
        hi = min(a["domain_gain"][-1], b["domain_gain"][-1])
        gains = np.concatenate([a["domain_gain"], b["domain_gain"]])
        for g in np.unique(gains[(gains >= lo) & (gains <= hi)]):
            points.append({"fmt": fmt, "domain_gain": float(g),
                           "sft_general_change": float(np.interp(g, a["domain_gain"], a["general_change"])),
                           "method_general_change": float(np.interp(g, b["domain_gain"], b["general_change"])),
                           "sft_learning_rate": float(np.interp(g, a["domain_gain"], a["learning_rate"])),
                           "method_learning_rate": float(np.interp(g, b["domain_gain"], b["learning_rate"]))})
    return points


def _variants(p) -> tuple[str, list[str]]:
    """The compared TALR variant of the preset and the other TALR variants the record holds."""
    from sft_tilt.harness.optimizer_step_plan import PLAN

    others = [m for m in PLAN.methods if m.startswith("talr") and m != p.compared_talr]
    return p.compared_talr, others


def measure(optimizer: str, preset_name: str = PRESET) -> dict:
    """What the rows read for ``optimizer``: matched points of the compared TALR variant and the others, update
    norms per unit rate, the rates, and the band checks of every step of the optimiser."""
    from sft_tilt.harness.experiment_results import optimizer_step_analysis

    p = real.preset(preset_name)
    record = optimizer_step_analysis(p)
    compared, others = _variants(p)
    arms = {fmt: res["arms"][optimizer] for fmt, res in record["formats"].items()}
    steps = [s for fmt_arms in arms.values() for arm in fmt_arms.values() for s in arm["steps"]]
    return {"optimizer": optimizer, "compared": compared, "others": others,
            "points": matched_points(record, compared, optimizer),
            "other_points": {m: matched_points(record, m, optimizer) for m in others},
            "unit_norms": {fmt: {m: a["unit_update_norm"] for m, a in fa.items()} for fmt, fa in arms.items()},
            "domain_gains": {fmt: {m: [s["domain_gain"] for s in a["steps"]] for m, a in fa.items()} for fmt, fa in arms.items()},
            "left_band": int(sum(s["left_band"] for s in steps)), "steps": len(steps),
            "largest_linearisation_error": float(max(abs(s["linearisation_error"]) for s in steps)),
            "probe_tokens": record["probe_tokens"]}


def _reductions(points: list[dict]) -> list[float]:
    """``1 - D_TALR / D_SFT`` at each point where SFT's general change is positive (a cost to reduce)."""
    return [1.0 - pt["method_general_change"] / pt["sft_general_change"] for pt in points if pt["sft_general_change"] > 0]


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Holds when at least MIN_POINTS matched-gain points (over the formats) have a positive SFT general loss change
    D_SFT and at every one TALR's is at least MIN_REDUCTION (a tenth) lower, D_TALR <= (1 - MIN_REDUCTION) D_SFT;
    fails when there are at least MIN_POINTS such points and at none is it; inconclusive otherwise (too few points, or
    points on both sides).

    ``threshold_scale`` multiplies MIN_REDUCTION."""
    need = MIN_REDUCTION * threshold_scale
    red = _reductions(m["points"])
    positive = len(red)
    if positive < MIN_POINTS:
        return "inconclusive", (f"{len(m['points'])} matched-gain points, {positive} with a positive SFT general change "
                                f"(a verdict needs {MIN_POINTS}).")
    met = sum(r >= need for r in red)
    text = f"reduction 1 - D_TALR/D_SFT at {positive} matched gains: {', '.join(f'{r:+.2f}' for r in red)}; minimum effect {need:g}"
    if met == positive:
        return "holds", text + ": met at every point."
    if met == 0:
        return "fails", text + ": met at none."
    return "inconclusive", text + f": met at {met} of {positive}."


def describe(m: dict) -> str:
    opt = OPTIMIZER_NAMES.get(m["optimizer"], m["optimizer"])
    pts = "; ".join(f"{pt['fmt']} G {pt['domain_gain']:.3f}: D_SFT {pt['sft_general_change']:+.4f} (lr {pt['sft_learning_rate']:.3g}), "
                    f"D_TALR {pt['method_general_change']:+.4f} (lr {pt['method_learning_rate']:.3g})" for pt in m["points"])
    norms = "; ".join(f"{fmt}: " + ", ".join(f"{k} {v:.3g}" for k, v in n.items()) for fmt, n in m["unit_norms"].items())
    others = "; ".join(f"{k}: reductions {', '.join(f'{r:+.2f}' for r in _reductions(v)) or 'none'}"
                       for k, v in m["other_points"].items())
    return (f"One {opt} step from the base model on 2 training problems per format, general probe of {m['probe_tokens']} "
            f"docs tokens; rates matched per arm so the first-order domain gain is 2/6/18% of the batch's loss. "
            f"TALR = {m['compared']} at matched measured domain gain G (nats/token): {pts}. Other variants ({others}). "
            f"Update norm per unit rate ({norms}): under SGD TALR's weights shorten the step, under Adam it is "
            f"about the square root of the number of parameters with a gradient, whatever the weights. Points where SFT's "
            f"step lowers the probe's loss (D_SFT <= 0, label-only here) have no cost to reduce and are not counted. Tilt band [Jensen, min(Hoeffding, "
            f"Bennett)] of the linearised step: left by the measurement in {m['left_band']} of {m['steps']} steps "
            f"(largest |measured - linearised prediction| {m['largest_linearisation_error']:.2e}). One batch, one probe: "
            f"no seeds. " + real.DIRECTIONS)


def setting(optimizer: str, preset_name: str = PRESET) -> str:
    """The setting column of the row of ``optimizer``."""
    from sft_tilt.harness.presets import read_preset_name

    name = read_preset_name(preset_name)
    return (f"real LM ({name} preset), one {OPTIMIZER_NAMES[optimizer]} step from the base model at matched domain "
            f"gain; TALR = {real._talr_variants(name).split(';')[0]}")


def _row(optimizer: str) -> Verdict:
    m = measure(optimizer)
    verdict, reason = decide(m)
    ours = ", ".join(f"{r:+.2f}" for r in _reductions(m["points"])) or "-"
    return Verdict(verdict, describe(m) + " " + reason, real.command(FIGURE, PRESET),
                   ours=f"1 - D_TALR/D_SFT at matched G: {ours}", seeds="1 batch (no seeds)", rule=rule_of(decide),
                   sensitivity=sensitivity(decide, m))


@check(18, setting("sgd"), real.GROUP, figures=(FIGURE,), preset=PRESET)
def one_sgd_step() -> Verdict:
    return _row("sgd")


@check(18, setting("adam"), real.GROUP, figures=(FIGURE,), preset=PRESET)
def one_adam_step() -> Verdict:
    return _row("adam")
