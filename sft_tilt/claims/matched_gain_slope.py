"""Claim 4: the lam-slope of the matched-gain bound scales with Delta*^2 (the naive expansion predicts Delta*).

Real-LM setting: the same from SmolLM2's matched-gain cells (SFT over the learning-rate grid, D interpolated at
matched domain gains), per response format, decided by the same rule on the interval of the per-seed exponents.
Slopes whose cells are chords from the base model (a target reached before the first evaluation point) are left
out: a chord is linear in Δ*, so it would force p = 1 (:func:`slope_measurements`).

Synthetic setting: per matched gain, the local slope dD/dlam through the smallest step sizes, and the exponent
p of slope ~ Delta*^p (log-log fit over the matched gains); also which lam-term (Delta* lam or Delta*^2 lam) fits
better with a free intercept per Delta*.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["NEAR", "FAR", "N_SLOPE", "measure", "decide", "describe", "slope_measurements", "measure_real_lm",
           "decide_real_lm", "describe_real_lm"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"

# an exponent within 0.25 of a candidate counts as that candidate: a 30% error in one of four slopes spanning a
# factor ~3 in Delta* moves the log-log fit by ~0.2.
NEAR = 0.25
# beyond 0.5 from both candidates (halfway between them) the exponent supports neither 1 nor 2.
FAR = 0.5
# the local slope per Delta* is a line through this many smallest step sizes, as in the synthetic sweep (n_slope);
# on the real-LM grid of three learning rates it is the whole grid.
N_SLOPE = 3


def measure() -> dict:
    _, r = synth.matched_gain()
    return {"target_gain": np.asarray(r["target_gain"]), "slopes": np.asarray(r["slopes"]), "exponent": float(r["slope_exponent"]),
            "rss_quadratic": float(r["fits"]["quadratic"]["rss_free_intercepts"]),
            "rss_linear": float(r["fits"]["linear"]["rss_free_intercepts"]),
            "rel_rms_quadratic": float(r["fits"]["quadratic"]["rel_rms"]), "rel_rms_linear": float(r["fits"]["linear"]["rel_rms"])}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Symmetric in the two candidate exponents: holds when p is within NEAR of 2 and the Delta*^2 lam term fits
    better; fails when p is within NEAR of 1, or farther than FAR from both 1 and 2; inconclusive otherwise (p
    between the bands, p near 2 while the Delta* lam term fits better, or no exponent). Where seeds give p a 95% t
    interval (``exponent_interval``), "within" and "farther" apply to the whole interval: an interval reaching
    out of a band is inconclusive.

    ``threshold_scale`` multiplies NEAR and FAR."""
    near, far = NEAR * threshold_scale, FAR * threshold_scale
    p = m["exponent"]
    if not np.isfinite(p):
        chords = m.get("chord_targets") or []
        if chords:
            return "inconclusive", (f"no exponent: at {len(chords)} of {len(m['target_gain'])} matched gains a cell of the "
                                    "slope is a chord from the base model (reached before the first evaluation point; "
                                    "linear in Δ* by construction), and fewer than two resolved positive slopes remain.")
        return "inconclusive", "no exponent: fewer than two positive slopes."
    lo, hi = m.get("exponent_interval") or (p, p)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive", f"p = {p:.2f} has no finite interval over seeds (fewer than two seeds with an exponent)."
    quad_better = m["rss_quadratic"] < m["rss_linear"]
    shown = f"p = {p:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if (lo, hi) != (p, p) else "")
    within = lambda c: abs(lo - c) <= near and abs(hi - c) <= near  # noqa: E731
    beyond = lambda c: (lo > c + far) or (hi < c - far)  # noqa: E731
    if within(2) and quad_better:
        return "holds", f"{shown} is within {near} of 2 and the Δ*^2 λ term fits better."
    if within(1):
        return "fails", f"{shown} is within {near} of 1 (the naive expansion), not 2."
    if beyond(1) and beyond(2):
        return "fails", f"{shown} is more than {far} from both 1 and 2: the slope does not scale as Δ*^2."
    if within(2):
        return "inconclusive", f"{shown} is near 2 but the Δ* λ term fits better."
    return "inconclusive", f"{shown} lies between or across the bands around 1 and 2."


def describe(m: dict) -> str:
    better = "quadratic" if m["rss_quadratic"] < m["rss_linear"] else "linear"
    return (f"local λ-slope of D at matched gain vs Δ*: slopes {np.array2string(np.asarray(m['slopes']), precision=3)} at Δ* = "
            f"{np.round(m['target_gain'], 3).tolist()}, exponent p = {m['exponent']:.2f} (paper: 2, naive expansion: 1); with a free "
            f"intercept per Δ*, RSS of k2 Δ*^2 λ = {m['rss_quadratic']:.3g} vs k2 Δ* λ = {m['rss_linear']:.3g} ({better} fits better); "
            f"global two-parameter fits: rel. RMS {m['rel_rms_quadratic']:.2f} (Δ*^2) vs {m['rel_rms_linear']:.2f} (Δ*).")


@check(4, synth.SETTING, synth.GROUP, figures=("synthetic_matched_gain",))
def synthetic() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    ours = f"exponent p = {m['exponent']:.2f}; RSS (free intercepts) Δ*^2 λ {m['rss_quadratic']:.3g} vs Δ* λ {m['rss_linear']:.3g}"
    return Verdict(verdict, describe(m) + " " + reason, synth.command("synthetic_matched_gain"), ours=ours,
                   seeds="1 (world and model seed 0)", rule=rule_of(decide), sensitivity=sensitivity(decide, m))


def slope_measurements(cells: list[dict], fit: dict | None, n_slope: int = N_SLOPE) -> dict:
    """From matched-gain cells ``[{"target_gain", "learning_rate", "general_change", "from_base"?}]``: per Δ* the least-squares
    slope of D over the ``n_slope`` smallest lrs, the exponent p of slope ~ Δ*^p (log-log fit over the positive
    slopes; NaN with fewer than two), and the free-intercept RSS of the two λ-terms from ``fit``
    (sft_tilt.theory.fit_matched_gain_shapes).

    A slope is left out (NaN, its Δ* listed in ``chord_targets``) when one of its cells has ``from_base`` > 0: some
    seed reached that Δ* before its first evaluation point, so D there is the chord ``Δ* D_1 / G_1`` from the base
    model to that point. A chord is linear in Δ* by construction, so slopes made of chords give p = 1 whatever the
    model does."""
    targets = sorted({c["target_gain"] for c in cells})
    slopes, chords = [], []
    for d in targets:
        cs = sorted((c for c in cells if c["target_gain"] == d), key=lambda c: c["learning_rate"])[:n_slope]
        if any(c.get("from_base", 0) for c in cs):
            chords.append(d)
            slopes.append(float("nan"))
            continue
        slopes.append(float(np.polyfit([c["learning_rate"] for c in cs], [c["general_change"] for c in cs], 1)[0]) if len(cs) >= 2 else float("nan"))
    tg, sl = np.asarray(targets, float), np.asarray(slopes, float)
    pos = np.isfinite(sl) & (sl > 0)
    p = float(np.polyfit(np.log(tg[pos]), np.log(sl[pos]), 1)[0]) if pos.sum() >= 2 else float("nan")
    nan = float("nan")
    return {"target_gain": tg, "slopes": sl, "exponent": p, "chord_targets": chords,
            "rss_quadratic": float(fit["quadratic"]["rss_free_intercepts"]) if fit else nan,
            "rss_linear": float(fit["linear"]["rss_free_intercepts"]) if fit else nan,
            "rel_rms_quadratic": float(fit["quadratic"]["rel_rms"]) if fit else nan, "rel_rms_linear": float(fit["linear"]["rel_rms"]) if fit else nan}


def measure_real_lm() -> dict:
    """Per format the slope measurements of the seed-mean cells, with the exponent's 95% t interval over the
    exponents fitted to each seed's own cells."""
    from sft_tilt.harness.experiment_results import matched_gain

    out, n = {}, set()
    for fmt, r in matched_gain(real.preset(PRESET)).items():
        cells = r.get("cells") or []
        if not cells:
            out[fmt] = None
            continue
        x = slope_measurements(cells, r.get("fit"))
        seeds = sorted({int(k) for c in cells for k in c.get("per_seed", {})})
        per_seed = [slope_measurements([{**c, "general_change": float(v)} for c in cells for k, v in c.get("per_seed", {}).items()
                                        if int(k) == s], None)["exponent"] for s in seeds]
        iv = paired_interval(np.array(per_seed, float))
        x["exponent_interval"] = (iv.lo, iv.hi)
        x["exponent_per_seed"] = per_seed
        out[fmt] = x
        n |= {c["n"] for c in cells}
    return {"formats": out, "n_per_cell": sorted(n)}


def decide_real_lm(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Per response format the synthetic rule (symmetric in the exponents 1 and 2: holds when p is within NEAR of 2
    and the Δ*^2 λ term fits better, fails when p is within NEAR of 1 or farther than FAR from both, else
    inconclusive) on the slopes through the N_SLOPE smallest lrs of seed-mean matched-gain D, applied to the whole
    95% t interval of the per-seed exponents; a slope with a cell interpolated from the base model (the target
    reached before the first evaluation point: linear in Δ* by construction) is left out. Holds or fails when
    every format does; partly holds when some format holds; fails when some fails and none holds; inconclusive
    otherwise, or when no format has matched-gain cells.

    ``threshold_scale`` multiplies NEAR and FAR."""
    per = {f: decide(x, threshold_scale) for f, x in m["formats"].items() if x is not None}
    if not per:
        return "inconclusive", "no format has matched-gain cells."
    verdicts = {f: v for f, (v, _) in per.items()}
    reasons = "; ".join(f"{f}: {r}" for f, (_, r) in per.items())
    if len(set(verdicts.values())) == 1:
        return next(iter(verdicts.values())), reasons
    if "holds" in verdicts.values():
        return "partly holds", reasons
    if "fails" in verdicts.values():
        return "fails", reasons
    return "inconclusive", reasons


def ours_real_lm(m: dict) -> str:
    def one(f, x):
        if x is None:
            return f"{f}: no cells"
        chords = len(x.get("chord_targets") or [])
        positive = int(np.sum(np.asarray(x["slopes"], float) > 0))
        exponent = (f"p = {x['exponent']:.2f} [{x['exponent_interval'][0]:.2f}, {x['exponent_interval'][1]:.2f}]"
                    if np.isfinite(x["exponent"]) else f"no exponent ({positive} of {len(x['slopes'])} slopes positive)")
        return (f"{f}: {exponent}, RSS Δ*^2 λ "
                f"{x['rss_quadratic']:.3g} vs Δ* λ {x['rss_linear']:.3g}"
                + (f", {chords} of {len(x['target_gain'])} slopes left out (chords from the base model)" if chords else ""))

    return "; ".join(one(f, x) for f, x in m["formats"].items())


def describe_real_lm(m: dict) -> str:
    parts = []
    for f, x in m["formats"].items():
        if x is None:
            parts.append(f"{f}: no matched-gain cells")
            continue
        chords = x.get("chord_targets") or []
        parts.append(f"{f}: slopes dD/dlr {np.array2string(np.asarray(x['slopes']), precision=3)} at Δ* = "
                     f"{np.round(x['target_gain'], 3).tolist()}"
                     + (f" (nan: left out at Δ* = {np.round(chords, 3).tolist()}, a cell there is a chord from the base "
                        "model)" if chords else "")
                     + f", exponent p = {x['exponent']:.2f}; free-intercept RSS Δ*^2 λ "
                     f"{x['rss_quadratic']:.3g} vs Δ* λ {x['rss_linear']:.3g}")
    return (f"Paper: λ-slope ∝ Δ*^2 (p = 2; naive expansion p = 1). Ours (SFT, slopes through the {N_SLOPE} smallest lrs of seed-mean "
            f"matched-gain D; p's interval from the per-seed exponents): " + " | ".join(parts) + ". " + real.DIRECTIONS)


@check(4, real.setting(PRESET), real.GROUP, figures=("real_lm_matched_gain",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure_real_lm()
    verdict, reason = decide_real_lm(m)
    n = m["n_per_cell"]
    return Verdict(verdict, describe_real_lm(m) + " " + reason, real.command("real_lm_matched_gain", PRESET), ours=ours_real_lm(m),
                   seeds=f"{'/'.join(map(str, n)) or 0} per cell (exponent interval over seeds)", rule=rule_of(decide_real_lm),
                   sensitivity=sensitivity(decide_real_lm, m))
