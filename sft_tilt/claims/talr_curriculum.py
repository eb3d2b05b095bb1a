"""Claim 10: under TALR the dynamic temperature tau decays and the fraction of training tokens with p > 0.2
rises epoch over epoch (a curriculum).

Both settings are decided by one rule, :func:`decide`, on per-seed arrays of tau and of the fraction of targets with
p > 0.2 per epoch, with paired (same seed) 95% t intervals. Synthetic setting: TALR (dynamic tau, floor 0.01)
trained with SGD over several seeds (SFT shown for comparison). That rule passes any method that fits the data (SFT
raises the fraction too), so the real-LM setting is decided by the comparison the curriculum stands for,
:func:`decide_matched`: τ decays over TALR's training (epoch over epoch, or evaluation point over evaluation point for
runs shorter than two epochs, :func:`measure_real_lm`), and at the same domain gain the fraction of held-out targets
with p > 0.2 has risen more under TALR than under SFT, by a minimum effect.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.claims import real_lm_results as real
from sft_tilt.claims import synthetic_results as synth
from sft_tilt.analysis.intervals import paired_interval, side
from sft_tilt.claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["RISE_SHARE", "TIE", "CURRICULUM_MIN_EFFECT", "measure", "decide", "ours", "describe", "epoch_arrays", "pick_unit",
           "measure_real_lm", "describe_real_lm", "matched_rises", "curves_of", "measure_matched", "decide_matched",
           "ours_matched", "describe_matched"]

#: The preset this claim is decided on: its runs are committed complete under results/cpu, so checking the claim
#: reads them and trains nothing.
PRESET = "cpu"
#: The methods whose comparison runs it reads besides SFT's.
METHODS = ("talr",)

# "rises epoch over epoch" is read as: rising in at least half of the epochs (and never falling).
RISE_SHARE = 0.5
# a change below 1e-12 in a fraction of tokens is rounding: neither a rise nor a fall.
TIE = 1e-12


def measure() -> dict:
    """Per seed (rows) and epoch (columns): TALR's dynamic tau and fraction of targets with p > 0.2, and SFT's
    fraction, in the shape :func:`decide` reads (``{"talr": {"epochs", "tau", "frac"}, "sft": ...}``)."""
    cfg, r = synth.token_stats()
    c, s = r["per_method"]["TALR (dynamic tau)"], r["per_method"]["SFT"]
    tau, frac = np.asarray(c["tau"], float), np.asarray(c["frac_easy"], float)
    epochs = list(range(frac.shape[1]))
    return {"talr": {"epochs": epochs, "tau": tau, "frac": frac},
            "sft": {"epochs": epochs, "tau": None, "frac": np.asarray(s["frac_easy"], float)}, "learning_rate": cfg.learning_rate}


def describe(m: dict) -> str:
    t = m["talr"]
    tau, frac, sft = (np.asarray(x, float).mean(0) for x in (t["tau"], t["frac"], m["sft"]["frac"]))
    d = np.diff(frac)
    rises = int(np.sum(d > TIE))
    return (f"TALR (dynamic τ, floor 0.01), SGD lr {m['learning_rate']:g}, {np.asarray(t['tau']).shape[0]} seeds: seed-mean τ {tau[0]:.3f} -> "
            f"{tau[-1]:.3f}; fraction of targets with p > 0.2 {frac[0]:.3f} -> {frac[-1]:.3f}, seed mean rising in {rises}/{len(frac) - 1} "
            f"epochs; SFT for comparison: {sft[0]:.3f} -> {sft[-1]:.3f}. Paired 95% t intervals: {ours(m)}.")


@check(10, synth.SETTING, synth.GROUP, figures=("synthetic_token_stats",))
def synthetic() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    return Verdict(verdict, describe(m) + " " + reason, synth.command("synthetic_token_stats"), ours=ours(m),
                   seeds=f"{np.asarray(m['talr']['tau']).shape[0]} paired", rule=rule_of(decide), sensitivity=sensitivity(decide, m))


def epoch_arrays(per_seed: list[dict]) -> dict:
    """``token_analysis()["epochs"][method]["per_seed"]`` (per seed ``{epoch: {"frac_above", "tau"}}``) as
    ``[seeds, epochs]`` arrays over the epochs every seed has (epoch keys may be strings after a JSON round trip)."""
    rows = [{int(e): v for e, v in s.items()} for s in per_seed]
    epochs = sorted(set.intersection(*(set(r) for r in rows))) if rows else []
    return {"epochs": epochs, "tau": np.array([[r[e]["tau"] for e in epochs] for r in rows], float).reshape(len(rows), len(epochs)),
            "frac": np.array([[r[e]["frac_above"] for e in epochs] for r in rows], float).reshape(len(rows), len(epochs))}


def measure_real_lm() -> dict:
    """TALR's and SFT's per-seed arrays (:func:`epoch_arrays`) over the epochs of the preset's runs, or, when
    TALR's runs cover fewer than two epochs (the ``cpu`` preset's 100 steps of 2 problems see 200 of its 256
    problems once), over their evaluation points: the fraction with p > 0.2 then read on the fixed held-out domain
    set at each point and τ averaged over each interval's training steps
    (:func:`sft_tilt.harness.experiment_results.checkpoint_token_statistics`). ``"unit"`` says which."""
    from sft_tilt.harness.experiment_results import token_analysis

    p = real.preset(PRESET, METHODS)
    ta = token_analysis(p)
    return pick_unit(ta, p.compared_talr)


def pick_unit(ta: dict, talr: str) -> dict:
    """The epochs of ``token_analysis`` output ``ta`` when the TALR variant ``talr`` has two or more, else its
    evaluation points (see :func:`measure_real_lm`)."""
    ep = ta["epochs"]
    unit, series = "epoch", ep
    if talr in ep and len(epoch_arrays(ep[talr]["per_seed"])["epochs"]) < 2 and talr in ta.get("checkpoints", {}):
        unit, series = "evaluation point", ta["checkpoints"]
    out = {"talr": epoch_arrays(series[talr]["per_seed"]) if talr in series else None,
           "sft": epoch_arrays(series["sft"]["per_seed"]) if "sft" in series else None, "unit": unit}
    out["learning_rate"] = series.get(talr, series.get("sft", {})).get("learning_rate")
    return out


def _real_parts(t: dict, threshold_scale: float = 1.0):
    """(tau part, fraction part, intervals): each "seen" / "contradicted" / "undecided"."""
    tau, frac = np.asarray(t["tau"], float), np.asarray(t["frac"], float)
    tau_iv = paired_interval(tau[:, -1], tau[:, 0])
    frac_iv = paired_interval(frac[:, -1], frac[:, 0])
    steps = [paired_interval(frac[:, j + 1], frac[:, j]) for j in range(frac.shape[1] - 1)]
    mean_d = np.diff(frac.mean(0))
    rises = int(np.sum(mean_d > TIE * threshold_scale))
    share = min(RISE_SHARE * threshold_scale, 1.0)
    tau_part = {"below": "seen", "above": "contradicted"}.get(side(tau_iv), "undecided")
    falls = [j for j, iv in enumerate(steps) if side(iv) == "below"]
    if side(frac_iv) == "below" or falls:
        frac_part = "contradicted"
    elif side(frac_iv) == "above" and rises >= share * len(steps):
        frac_part = "seen"
    else:
        frac_part = "undecided"
    return tau_part, frac_part, {"tau last − first": tau_iv, "fraction last − first": frac_iv}, rises, len(steps), falls


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Over TALR's epochs (or evaluation points, ``m["unit"]``), paired by seed with 95% t intervals: τ decays when τ(last) -
    τ(first) is below 0 (contradicted above 0); the fraction with p > 0.2 rises when fraction(last) - fraction(first)
    is above 0, no epoch-to-epoch change is below 0, and the seed-mean fraction rises in at least RISE_SHARE of the
    epochs (contradicted when the overall or an epoch's change is below 0). Holds when both are seen; partly holds
    when one is seen and the other contradicted; fails when none is seen and one is contradicted; inconclusive
    otherwise, or with fewer than two epochs or no TALR runs.

    ``threshold_scale`` multiplies RISE_SHARE (at most 1) and TIE."""
    t = m.get("talr")
    if not t or len(t["epochs"]) < 2 or np.asarray(t["tau"]).shape[0] == 0:
        return "inconclusive", "no TALR runs with two epochs or more."
    tau_part, frac_part, _, rises, n, falls = _real_parts(t, threshold_scale)
    parts = {"τ decays": tau_part, "fraction with p > 0.2 rises": frac_part}
    seen = [k for k, v in parts.items() if v == "seen"]
    contra = [k for k, v in parts.items() if v == "contradicted"]
    labels = list(t["epochs"])
    unit = m.get("unit", "epoch")
    after = "epochs" if unit == "epoch" else "steps"
    detail = (f" (seed-mean fraction rises in {rises} of the {n} changes from one {unit} to the next"
              + (f"; falls with 95% confidence after {after} {[labels[j] for j in falls]}" if falls else "") + ")")
    if len(seen) == 2:
        return "holds", "both seen with 95% confidence" + detail + "."
    if seen and contra:
        return "partly holds", f"seen: {seen}; contradicted: {contra}" + detail + "."
    if contra:
        return "fails", f"contradicted: {contra}; undecided: {[k for k, v in parts.items() if v == 'undecided']}" + detail + "."
    return "inconclusive", f"seen: {seen}; undecided: {[k for k, v in parts.items() if v == 'undecided']}" + detail + "."


def ours(m: dict) -> str:
    t = m.get("talr")
    if not t or len(t["epochs"]) < 2:
        return "-"
    return "; ".join(f"{k} {iv.text()}" for k, iv in _real_parts(t)[2].items())


def describe_real_lm(m: dict) -> str:
    t, s = m.get("talr"), m.get("sft")
    if not t or len(t["epochs"]) < 2:
        return "No TALR runs with two epochs or more."
    tau, frac = np.asarray(t["tau"]).mean(0), np.asarray(t["frac"]).mean(0)
    sft = f"; SFT fraction {np.asarray(s['frac']).mean(0)[0]:.3f} -> {np.asarray(s['frac']).mean(0)[-1]:.3f}" if s and s["epochs"] else ""
    if m.get("unit", "epoch") == "epoch":
        where = f"epochs {t['epochs']}"
    else:
        where = (f"one pass over less than two epochs, so read at the evaluation points, steps {t['epochs']}: the fraction on the "
                 f"held-out domain targets, the same tokens at every point, and τ averaged over each interval's training steps")
    return (f"Paper: dynamic τ decays and the fraction of tokens with p > 0.2 rises epoch over epoch. Ours (TALR, lr {m['learning_rate']:g}, "
            f"{np.asarray(t['tau']).shape[0]} seeds, {where}): seed-mean τ {np.round(tau, 3).tolist()}, fraction p > 0.2 "
            f"{np.round(frac, 3).tolist()}{sft}. Paired 95% t intervals: {ours(m)}. {real.T_NOTE} " + real.DIRECTIONS)




# ----------------------------------------------------------------------------- TALR's curriculum against SFT's

#: The smallest lead of TALR's rise in the fraction of held-out targets with p > 0.2 over SFT's, at the same domain
#: gain, that counts as a curriculum of TALR's own (2 points of the fraction).
CURRICULUM_MIN_EFFECT = 0.02


def matched_rises(curves: dict[str, dict[int, tuple]]) -> dict:
    """Per method and seed, the rise of the fraction of held-out targets with p > 0.2 from the base model to the
    matched domain gain Δ*, the largest gain every seed of every method reaches: ``curves`` holds per method and seed
    ``(domain_gain, fraction)`` sequences from the base model (gain 0) on; the fraction at Δ* is interpolated where
    the curve first reaches it (:func:`sft_tilt.analysis.matched_gain.matched_general_change`, the matched-gain
    reading of the general change applied to the fraction). ``{"target", "rise": {method: {seed: rise}}}``; no
    target (None, no rises) when some run never gains."""
    from sft_tilt.analysis.matched_gain import matched_general_change

    reach = [float(np.nanmax(np.asarray(g, float))) for seeds in curves.values() for g, _ in seeds.values()]
    target = min(reach) if reach else 0.0
    if not reach or target <= 0:
        return {"target": None, "rise": {}}
    rise = {m: {s: matched_general_change(g, f, target) - float(f[0]) for s, (g, f) in seeds.items()}
            for m, seeds in curves.items()}
    return {"target": float(target), "rise": rise}


def curves_of(results: list[dict]) -> dict[int, tuple]:
    """Per seed ``(domain_gain, fraction)`` from the base model on, of stored runs (their evaluation points'
    held-out fraction with p > 0.2); diverged runs are left out."""
    out = {}
    for r in results:
        if r.get("diverged"):
            continue
        pts = r["points"]
        gain = [0.0] + [float(p["domain_gain"]) for p in pts]
        frac = [float(r["base"]["heldout_stats"]["frac_above"])] + [float(p["heldout_stats"]["frac_above"]) for p in pts]
        out[int(r["config"]["seed"])] = (gain, frac)
    return out


def measure_matched() -> dict:
    """:func:`measure_real_lm` (τ over TALR's evaluation points or epochs) with, from the same runs, the rise of the
    held-out fraction with p > 0.2 at the matched domain gain per method and seed (:func:`matched_rises`)."""
    from sft_tilt.harness.experiment_runs import token_configs
    from sft_tilt.harness.stored_runs import read_results

    p = real.preset(PRESET, METHODS)
    m = measure_real_lm()
    by_method: dict[str, list] = {}
    for cfg, result in zip(token_configs(p), read_results(token_configs(p), p.name, "tokens")):
        by_method.setdefault("talr" if cfg.method.name == p.compared_talr else cfg.method.name, []).append(result)
    return {**m, **matched_rises({k: curves_of(v) for k, v in by_method.items()})}


def _lead(m: dict):
    """The paired (by seed) 95% t interval of TALR's rise minus SFT's at the matched gain."""
    rise = m.get("rise", {})
    t, s = rise.get("talr", {}), rise.get("sft", {})
    seeds = sorted(set(t) & set(s))
    return paired_interval([t[k] for k in seeds], [s[k] for k in seeds])


def decide_matched(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """TALR's curriculum against SFT's, at the same domain gain: τ must decay over TALR's training (the 95% t interval
    of τ(last) - τ(first) below 0), and the rise of the fraction of held-out targets with p > 0.2 from the base
    model to the matched gain Δ* (the largest every seed of both reaches) must be larger under TALR than under SFT by
    at least CURRICULUM_MIN_EFFECT: the paired 95% t interval of TALR's rise minus SFT's above 0 with a mean of at
    least that. Fails when τ rises (interval above 0) or the whole interval of the lead lies below
    CURRICULUM_MIN_EFFECT (SFT's fit raises the fraction as much: no curriculum of TALR's own); inconclusive
    otherwise, or without both methods' runs or a common gain.

    ``threshold_scale`` multiplies CURRICULUM_MIN_EFFECT."""
    t = m.get("talr")
    if not t or len(t["epochs"]) < 2 or m.get("target") is None or not m.get("rise", {}).get("sft"):
        return "inconclusive", "no TALR and SFT runs that both gain, or fewer than two TALR evaluations."
    tau_part = _real_parts(t, threshold_scale)[0]
    lead = _lead(m)
    floor = CURRICULUM_MIN_EFFECT * threshold_scale
    at = f"TALR's rise minus SFT's at Δ* = {m['target']:.4f}: {lead.text()}"
    if tau_part == "contradicted":
        return "fails", f"τ rises over TALR's training; {at}."
    if lead.n >= 2 and lead.hi < floor:
        return "fails", f"{at}, wholly below the minimum lead {floor:g}: SFT's fit raises the fraction as much."
    if tau_part == "seen" and side(lead) == "above" and lead.mean >= floor:
        return "holds", f"τ decays and {at}, above 0 with a mean of at least {floor:g}."
    return "inconclusive", f"τ {'decays' if tau_part == 'seen' else 'undecided'}; {at}."


def ours_matched(m: dict) -> str:
    if m.get("target") is None:
        return "-"
    return (f"TALR − SFT rise of the fraction p > 0.2 at matched gain {_lead(m).text()}; "
            + "; ".join(f"{k} {iv.text()}" for k, iv in _real_parts(m["talr"])[2].items() if k.startswith("tau")))


def describe_matched(m: dict) -> str:
    mean = lambda d: float(np.mean(list(d.values()))) if d else float("nan")  # noqa: E731
    rise = m.get("rise", {})
    target = "none" if m.get("target") is None else f"{m['target']:.4f}"
    return (f"Paper: TALR's dynamic τ decays, so tokens it learns gain weight and the fraction of tokens with p > 0.2 rises: "
            f"a curriculum. Any fit that lowers the domain loss raises that fraction, so it is compared with SFT's at the same "
            f"domain gain. Ours (lr {m['learning_rate']:g}): at Δ* = {target}, the largest gain every seed of both reaches, "
            f"the held-out fraction rose by {mean(rise.get('talr', {})):+.4f} under TALR and {mean(rise.get('sft', {})):+.4f} "
            f"under SFT (seed means). {describe_real_lm(m)}")


@check(10, real.setting(PRESET), real.GROUP, figures=("real_lm_token_stats",), preset=PRESET)
def real_lm() -> Verdict:
    m = measure_matched()
    verdict, reason = decide_matched(m)
    return Verdict(verdict, describe_matched(m) + " " + reason, real.command("real_lm_token_stats", PRESET),
                   ours=ours_matched(m), seeds=f"{_lead(m).n} paired", rule=rule_of(decide_matched),
                   sensitivity=sensitivity(decide_matched, m))
