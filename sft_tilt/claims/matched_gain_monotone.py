"""Claim 3 (Theorem 3.1): at a matched domain gain Delta*, general degradation D is non-decreasing in the step
size lam, bounded by k1 Delta* + k2 Delta*^2 lam, with a positive floor k1 Delta* as lam -> 0.

Synthetic setting: the matched-gain sweep of :mod:`sft_tilt.synthetic.experiments.matched_gain` (D at the exact
point where the gain reaches Delta*, the theory's multi-step bound along every trajectory). Real-LM setting:
SFT on SmolLM2 over the learning-rate grid, D interpolated at matched domain gains, and the two fitted shapes.
"""

from __future__ import annotations

import numpy as np

import sft_tilt.theory
from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import NO_THRESHOLD, Verdict, check, rule_of, sensitivity

__all__ = ["MONOTONE_TOLERANCE", "SHAPE_REL_RMS", "measure_synthetic", "decide_synthetic", "describe_synthetic",
           "measure_real_lm", "decide_real_lm", "describe_real_lm"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"

# D at matched gain is interpolated on the last update segment; a relative dip below 1e-9 is rounding, not a decrease.
MONOTONE_TOLERANCE = 1e-9
# the paper's shape "fits" when its relative RMS residual is below 10% of the data's RMS.
SHAPE_REL_RMS = 0.1


def measure_synthetic() -> dict:
    _, r = synth.matched_gain()
    return {
        "target_gain": np.asarray(r["target_gain"]), "learning_rates": np.asarray(r["learning_rates"]),
        "matched_general_change": np.asarray(r["matched_general_change"]), "reached": np.asarray(r["reached"]).astype(bool),
        "bound_holds": np.asarray(r["bound_holds"]), "bound_growing_holds": np.asarray(r["bound_growing_holds"]),
        "bound_finite": int(np.isfinite(r["bound_constant_gain_rate"]).sum()),
        "bound_growing_finite": int(np.isfinite(r["bound_growing_leakage"]).sum()),
        "flow_estimate": np.asarray(r["flow_estimate"]), "quadratic_rel_rms": float(r["fits"]["quadratic"]["rel_rms"]),
    }


def decide_synthetic(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Holds when D is non-decreasing in lam at every Delta* (within MONOTONE_TOLERANCE, every cell reaching
    Delta*), the theory's bound and its growing-leakage variant hold in every cell, the small-lam intercept is
    positive and the paper's shape fits within SHAPE_REL_RMS; partly holds when monotonicity and the bounds hold
    but the intercept or the shape do not; fails otherwise.

    ``threshold_scale`` multiplies MONOTONE_TOLERANCE and SHAPE_REL_RMS."""
    D = np.asarray(m["matched_general_change"], float)
    tol = MONOTONE_TOLERANCE * threshold_scale
    mono = bool(np.all(m["reached"]) and np.all(np.diff(D, axis=1) >= -tol * np.abs(D[:, 1:])))
    bound = bool(np.all(m["bound_holds"]) and np.all(m["bound_growing_holds"]))
    intercept = bool(np.all(np.asarray(m["flow_estimate"]) > 0))
    shape = m["quadratic_rel_rms"] < SHAPE_REL_RMS * threshold_scale
    failed = [name for name, ok in [("D non-decreasing in lam", mono), ("bound holds", bound), ("positive intercept", intercept),
                                     (f"k1 Delta* + k2 Delta*^2 lam fits (rel. RMS < {SHAPE_REL_RMS})", shape)] if not ok]
    if not failed:
        return "holds", "every criterion met."
    if mono and bound:
        return "partly holds", "not met: " + "; ".join(failed) + "."
    return "fails", "not met: " + "; ".join(failed) + "."


def describe_synthetic(m: dict) -> str:
    D = np.asarray(m["matched_general_change"], float)
    mono = bool(np.all(m["reached"]) and np.all(np.diff(D, axis=1) >= -MONOTONE_TOLERANCE * np.abs(D[:, 1:])))
    ratio = np.asarray(m["flow_estimate"]) / np.asarray(m["target_gain"])
    bh, bg = np.asarray(m["bound_holds"]), np.asarray(m["bound_growing_holds"])
    return (f"D at matched gain non-decreasing in λ at every Δ*: {mono} (Δ* = {np.round(m['target_gain'], 3).tolist()}, "
            f"λ = {np.asarray(m['learning_rates']).tolist()}); sft_tilt.theory.matched_gain_bound holds in {int(bh.sum())}/{bh.size} cells "
            f"({m['bound_finite']} finite); its growing-leakage variant (rho_t <= rho_0 + gamma Gamma_t, a Δ*^2 term at λ -> 0) holds in "
            f"{int(bg.sum())}/{bg.size} ({m['bound_growing_finite']} finite); small-λ intercept (Richardson flow estimate) > 0: "
            f"{bool(np.all(np.asarray(m['flow_estimate']) > 0))}, intercept/Δ* = {np.round(ratio, 4).tolist()}; the paper's shape "
            f"k1 Δ* + k2 Δ*^2 λ fits with relative RMS residual {m['quadratic_rel_rms']:.2f}.")


@check(3, synth.SETTING, synth.GROUP, figures=("synthetic_matched_gain",))
def synthetic() -> Verdict:
    m = measure_synthetic()
    verdict, reason = decide_synthetic(m)
    bh = np.asarray(m["bound_holds"])
    ours = (f"bound holds in {int(bh.sum())}/{bh.size} cells; intercept/Δ* {np.round(np.asarray(m['flow_estimate']) / np.asarray(m['target_gain']), 4).tolist()}; "
            f"Δ*^2 shape rel. RMS {m['quadratic_rel_rms']:.2f}")
    return Verdict(verdict, describe_synthetic(m) + " " + reason, synth.command("synthetic_matched_gain"), ours=ours,
                   seeds="1 (world and model seed 0)", rule=rule_of(decide_synthetic), sensitivity=sensitivity(decide_synthetic, m))


def measure_real_lm() -> dict:
    from sft_tilt.harness.experiment_results import matched_gain

    return {"formats": matched_gain(real.preset(PRESET))}


def _seed_table(cells: list[dict], target: float, lrs: list[float]) -> np.ndarray:
    """``[seed, lr]`` general change at matched gain ``target`` (NaN where a seed's run never reached it)."""
    seeds = sorted({int(k) for c in cells for k in c.get("per_seed", {})})
    out = np.full((len(seeds), len(lrs)), np.nan)
    for c in cells:
        if c["target_gain"] == target and c["learning_rate"] in lrs:
            for k, v in c.get("per_seed", {}).items():
                out[seeds.index(int(k)), lrs.index(c["learning_rate"])] = v
    return out


def _monotone_parts(r: dict) -> dict:
    """Per matched gain Δ*: "contradicted" when D at matched gain falls from one lr to the next with 95% confidence
    (paired by seed), "seen" when no step falls and D at the largest lr exceeds D at the smallest (interval above
    0), "undecided" otherwise; with the intervals behind them."""
    out = {}
    for target in r["target_gains"]:
        lrs = sorted({c["learning_rate"] for c in r["cells"] if c["target_gain"] == target})
        table = _seed_table(r["cells"], target, lrs)
        if len(lrs) < 2:
            out[target] = ("undecided", [])
            continue
        steps = [paired_interval(table[:, j + 1], table[:, j]) for j in range(len(lrs) - 1)]
        overall = paired_interval(table[:, -1], table[:, 0])
        if any(side(iv) == "below" for iv in steps):
            part = "contradicted"
        elif side(overall) == "above":
            part = "seen"
        else:
            part = "undecided"
        out[target] = (part, steps + [overall])
    return out


def _k1_interval(r: dict):
    """95% t interval over seeds of the floor k1 of the better shape (chosen on seed means), fitted per seed."""
    shape = r["fit"]["better"]
    seeds = sorted({int(k) for c in r["cells"] for k in c.get("per_seed", {})})
    k1 = []
    for s in seeds:
        rows = [(c["target_gain"], c["learning_rate"], float(v)) for c in r["cells"]
                for k, v in c.get("per_seed", {}).items() if int(k) == s]
        if len(rows) >= 3:
            gains, lrs, changes = zip(*rows)
            k1.append(sft_tilt.theory.fit_matched_gain_shapes(gains, lrs, changes)[shape]["k1"])
    return paired_interval(np.array(k1, float))


def decide_real_lm(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Monotonicity per matched gain Δ*, paired by seed with 95% t intervals: contradicted at a Δ* when D at matched
    gain falls from one grid lr to the next (interval below 0), seen when none falls and D(largest lr) - D(smallest)
    is above 0. The floor: k1 of the better-fitting shape, fitted per seed, interval above 0. Holds when monotone
    is seen at every Δ* of every format and the floor is positive; fails when monotonicity is contradicted at some
    Δ* and seen at none; partly holds when seen at some Δ* (and contradicted at some, or the floor is not shown
    positive); inconclusive otherwise, or when no format has matched-gain cells.

    Signs of paired differences, so ``threshold_scale`` has nothing to scale."""
    fitted = {f: r for f, r in m["formats"].items() if r.get("fit")}
    if not fitted:
        return "inconclusive", "no format has matched-gain cells (a run made no domain gain)."
    parts = [p for r in fitted.values() for p, _ in _monotone_parts(r).values()]
    seen, contra = parts.count("seen"), parts.count("contradicted")
    k1 = {f: _k1_interval(r) for f, r in fitted.items()}
    floor_ok = all(side(iv) == "above" for iv in k1.values())
    floor = "; floor k1 per seed " + ", ".join(f"{f} {iv.text('.3g')}" for f, iv in k1.items())
    counts = f"monotone seen at {seen}, contradicted at {contra}, undecided at {len(parts) - seen - contra} of {len(parts)} matched gains"
    if seen == len(parts) and len(fitted) == len(m["formats"]) and floor_ok:
        return "holds", counts + floor + " (above 0)."
    if seen:
        return "partly holds", counts + floor + "."
    if contra:
        return "fails", counts + floor + "."
    return "inconclusive", counts + floor + "."


def describe_real_lm(m: dict) -> str:
    parts, better = [], []
    for fmt, r in m["formats"].items():
        if not r.get("fit"):
            parts.append(f"{fmt}: no matched-gain cells ({r.get('note')})")
            continue
        mono = list(r["monotone"].values())
        fit = r["fit"]
        better.append(fit["better"])
        cells = "; ".join(f"Δ*={c['target_gain']:.3f} lr={c['learning_rate']:g}: D={c['general_change']:+.4f}" for c in r["cells"])
        chords = sum(1 for c in r["cells"] if c.get("from_base", 0))
        if chords:  # a chord D = Δ* D_1 / G_1 keeps the lrs' order of D_1 / G_1 but is linear in Δ* by construction
            cells += (f"; {chords} of {len(r['cells'])} cells interpolated from the base model (Δ* reached before the "
                      "first evaluation point), so the Δ*-shape of those is linear by construction")
        parts.append(f"{fmt}: D non-decreasing in lr at {sum(mono)}/{len(mono)} matched gains ({cells}); fits k1 Δ*+k2 Δ* λ "
                     f"(k1={fit['linear']['k1']:.3g}, k2={fit['linear']['k2']:.3g}, rmse {fit['linear']['rmse']:.2g}) vs k1 Δ*+k2 Δ*^2 λ "
                     f"(k1={fit['quadratic']['k1']:.3g}, k2={fit['quadratic']['k2']:.3g}, rmse {fit['quadratic']['rmse']:.2g})")
    return ("Paper: matched-gain degradation non-decreasing in lr, <= k1 Δ* + k2 Δ*^2 λ with a positive floor k1 Δ*. Ours (SFT): "
            + " | ".join(parts) + f". Better-fitting shape per format: {better}. " + real.DIRECTIONS)


@check(3, real.setting(PRESET), real.GROUP, figures=("real_lm_matched_gain",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    fitted = {f: r for f, r in m["formats"].items() if r.get("fit")}
    ours = "; ".join(f"{f}: D(largest lr) - D(smallest) at Δ* " + ", ".join(f"{t:.3f}: {ivs[-1].text()}" for t, (_, ivs) in _monotone_parts(r).items() if ivs)
                     for f, r in fitted.items()) or "no matched-gain cells"
    n = sorted({c["n"] for r in fitted.values() for c in r["cells"]})
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command("real_lm_matched_gain", PRESET), ours=ours,
                   seeds=f"{'/'.join(map(str, n)) or 0} paired per cell", rule=rule_of(decide_real_lm),
                   sensitivity=NO_THRESHOLD + " (signs of paired differences)")
