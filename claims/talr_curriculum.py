"""Claim 10: under TALR the dynamic temperature tau decays and the fraction of training tokens with p > 0.2
rises epoch over epoch (a curriculum).

Synthetic setting: TALR (dynamic tau, floor 0.01) trained with SGD over several seeds; tau and the fraction of
targets with p > 0.2 per epoch, mean over seeds (SFT shown for comparison).
"""

from __future__ import annotations

import numpy as np

from claims import synthetic_results as synth
from claims.registry import Verdict, check, rule_of, sensitivity

__all__ = ["RISE_SHARE", "TIE", "measure", "decide", "describe"]

# "rises epoch over epoch" is read as: rising in at least half of the epochs (and never falling).
RISE_SHARE = 0.5
# a change below 1e-12 in a fraction of tokens is rounding: neither a rise nor a fall.
TIE = 1e-12


def measure() -> dict:
    cfg, r = synth.token_stats()
    c = r["per_method"]["TALR (dynamic tau)"]
    return {"tau": c["tau"].mean(0), "frac": c["frac_easy"].mean(0), "sft_frac": r["per_method"]["SFT"]["frac_easy"].mean(0),
            "lr": cfg.lr, "n_seeds": len(cfg.seeds)}


def decide(m: dict, threshold_scale: float = 1.0) -> tuple[str, str]:
    """Holds when tau decreases every epoch and the fraction never falls, ends higher and rises in at least
    RISE_SHARE of the epochs; partly holds when it never falls and ends higher but rises in fewer epochs; fails
    otherwise.

    ``threshold_scale`` multiplies RISE_SHARE (at most 1) and TIE."""
    tau, frac = np.asarray(m["tau"], float), np.asarray(m["frac"], float)
    tie, share = TIE * threshold_scale, min(RISE_SHARE * threshold_scale, 1.0)
    tau_dec = bool(np.all(np.diff(tau) < 0))
    nondec = bool(np.all(np.diff(frac) >= -tie))
    rises = int(np.sum(np.diff(frac) > tie))
    n = len(frac) - 1
    if tau_dec and nondec and frac[-1] > frac[0]:
        if rises >= share * n:
            return "holds", f"tau decays and the fraction rises in {rises}/{n} epochs."
        return "partly holds", f"tau decays and the fraction never falls, but rises in only {rises}/{n} epochs."
    failed = [w for w, ok in [("tau decreasing every epoch", tau_dec), ("fraction never falling", nondec),
                              ("fraction ending higher", frac[-1] > frac[0])] if not ok]
    return "fails", "not met: " + "; ".join(failed) + "."


def describe(m: dict) -> str:
    tau, frac, sft = (np.asarray(m[k], float) for k in ("tau", "frac", "sft_frac"))
    d = np.diff(frac)
    rises = int(np.sum(d > TIE))
    first = int(np.argmax(d > TIE)) if rises else "none"
    return (f"TALR (dynamic τ, floor 0.01), SGD lr {m['lr']:g}, {m['n_seeds']} seeds: τ {tau[0]:.3f} -> {tau[-1]:.3f}, decreasing every "
            f"epoch: {bool(np.all(np.diff(tau) < 0))}; fraction of targets with p > 0.2: {frac[0]:.3f} -> {frac[-1]:.3f}, never decreasing: "
            f"{bool(np.all(d >= -TIE))}, rising in {rises}/{len(frac) - 1} epochs (first rise after epoch {first}); SFT for comparison: "
            f"{sft[0]:.3f} -> {sft[-1]:.3f}.")


@check(10, synth.SETTING, synth.GROUP, figures=("synthetic_token_stats",))
def synthetic() -> Verdict:
    m = measure()
    verdict, reason = decide(m)
    tau, frac = np.asarray(m["tau"], float), np.asarray(m["frac"], float)
    ours = (f"τ {tau[0]:.3f} -> {tau[-1]:.3f}; fraction p > 0.2 {frac[0]:.3f} -> {frac[-1]:.3f}, rising in "
            f"{int(np.sum(np.diff(frac) > TIE))}/{len(frac) - 1} epochs (seed means)")
    return Verdict(verdict, describe(m) + " " + reason, synth.command("synthetic_token_stats"), ours=ours,
                   seeds=f"{m['n_seeds']} (means; no interval)", rule=rule_of(decide), sensitivity=sensitivity(decide, m))
