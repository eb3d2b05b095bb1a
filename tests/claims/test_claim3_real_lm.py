"""Claim 3's real-LM rule: D at matched gains that are fractions of the saturation gain, one-sided paired tests with a
minimum effect and Holm's correction, on constructed measurements and on the committed ``cpu`` runs perturbed."""

import numpy as np
import pytest

from sft_tilt.claims import matched_gain_monotone as claim3
from sft_tilt.harness.stored_runs import MissingResults

FRACTIONS = [0.2, 0.5, 0.8, 0.9]
RATES = [1.0, 2.0, 4.0]


def _measurement(k1, k2, noise=(0.0, 0.001, -0.001), saturation=1.0, censor=()):
    """One format whose seed s has D = k1 Δ* + k2 Δ*^2 lr + noise[s] (1 + lr) at Δ* = fraction x saturation; the
    (fraction, rate) cells in ``censor`` never reached."""
    D = np.empty((len(FRACTIONS), len(RATES), len(noise)))
    for i, f in enumerate(FRACTIONS):
        t = f * saturation
        for j, lr in enumerate(RATES):
            D[i, j] = [k1 * t + k2 * t * t * lr + e * (1 + lr) for e in noise]
    censored = np.zeros(D.shape, bool)
    for i, j in censor:
        D[i, j] = np.nan
        censored[i, j] = True
    return {"formats": {"cot": {"saturation_gain": saturation, "fractions": FRACTIONS,
                                "target_gains": [f * saturation for f in FRACTIONS], "learning_rates": RATES,
                                "seeds": list(range(len(noise))), "general_change": D, "censored": censored}}}


def test_holds_partly_holds_fails_and_inconclusive_on_constructed_measurements():
    decide = claim3.decide_real_lm
    assert decide(_measurement(0.1, 1.0))[0] == "holds"
    verdict, reason = decide(_measurement(-0.05, 1.0))  # rising in lr near saturation, but the floor is negative
    assert verdict == "partly holds" and "floor" in reason
    assert decide(_measurement(0.1, -1.0))[0] == "fails"  # falling in lr at every Δ*
    # seeds disagree (one seed's D falls as much as another's rises): nothing is seen or contradicted
    assert decide(_measurement(0.1, 0.01, noise=(0.5, -0.5, 0.0)))[0] == "inconclusive"
    every_cell = [(i, j) for i in range(len(FRACTIONS)) for j in range(len(RATES))]
    assert decide(_measurement(0.1, 1.0, censor=every_cell))[0] == "inconclusive"


def test_a_fall_smaller_than_the_minimum_effect_is_noise_however_certain():
    m = _measurement(0.1, 1.0)
    D = m["formats"]["cot"]["general_change"]
    D[0, 2] = D[0, 1] - 0.0003  # the same small fall in every seed: certain, but below MIN_EFFECT_NATS
    assert claim3.decide_real_lm(m)[0] == "holds"
    # with a minimum effect a hundred times smaller the same fall counts, and one Δ* is contradicted
    verdict, reason = claim3.decide_real_lm(m, threshold_scale=0.01)
    assert verdict == "partly holds" and "contradicted at 1 " in reason


def test_a_run_that_never_reaches_a_gain_is_censored_and_the_reached_rates_are_compared():
    m = _measurement(0.1, 1.0, censor=[(3, 0), (2, 0)])  # the smallest rate never reaches 80 % or 90 % of saturation
    tests = [t for t in claim3._comparisons(m) if t["kind"] == "overall"]
    assert [(t["lower_rate"], t["higher_rate"]) for t in tests] == [(2.0, 4.0), (2.0, 4.0)]
    assert claim3.decide_real_lm(m)[0] == "holds"
    assert "censored" in claim3.describe_real_lm(m)


def test_a_near_saturation_rise_needs_the_holm_correction_over_its_cells():
    def barely_rising(censor=()):
        m = _measurement(0.01, 0.0, noise=(0.0, 0.0, 0.0), censor=censor)
        D = m["formats"]["cot"]["general_change"]
        rise = np.array([0.010, 0.012, 0.004])  # t = 3.61 on 2 degrees of freedom: one-sided p = 0.035
        for i in (2, 3):
            D[i, 2] = D[i, 0] + rise
            D[i, 1] = D[i, 0] + rise / 2
        return m

    tests = [t for t in claim3._comparisons(barely_rising()) if t["kind"] == "overall"]
    assert len(tests) == 2 and all(0.03 < t["p"] < 0.04 for t in tests)
    assert all(t["p_holm"] > 0.05 and t["result"] == "noise" for t in tests)  # 2 x 0.035 > 0.05
    # alone in its family (the 80 % cell never reached by any rate), the same rise counts
    alone = [t for t in claim3._comparisons(barely_rising(censor=[(2, 0), (2, 1), (2, 2)])) if t["kind"] == "overall"]
    assert len(alone) == 1 and alone[0]["result"] == "rises"


@pytest.fixture(scope="module")
def committed():
    try:
        return claim3.measure_real_lm()
    except MissingResults as exc:  # a checkout without the committed cpu runs
        pytest.fail(f"the committed cpu runs are needed: {exc}")


def _flipped_near_saturation(m):
    """The committed measurement with every seed's D(lr) - D(smallest reached lr) negated from the saturation regime
    on: the same noise, the opposite direction."""
    out = {"formats": {}}
    for fmt, r in m["formats"].items():
        D = np.array(r["general_change"], float)
        for i, f in enumerate(r["fractions"]):
            if f >= claim3.SATURATION_REGIME:
                reached = [j for j in range(D.shape[1]) if np.isfinite(D[i, j]).all()]
                D[i] = 2 * D[i, reached[0]] - D[i]
        out["formats"][fmt] = {**r, "general_change": D}
    return out


def test_the_committed_verdict_flips_when_the_rise_near_saturation_is_reversed(committed):
    verdict = claim3.decide_real_lm(committed)[0]
    flipped, reason = claim3.decide_real_lm(_flipped_near_saturation(committed))
    assert verdict in ("holds", "partly holds") and flipped == "fails", (verdict, flipped, reason)


def test_the_committed_verdict_changes_when_one_seed_shifts_against_the_rise(committed):
    # one seed's D at the largest rate moved below the smallest reached rate's near saturation: that seed now
    # disagrees with the other two, so the rise there is no longer certain
    shifted = {"formats": {}}
    for fmt, r in committed["formats"].items():
        D = np.array(r["general_change"], float)
        for i, f in enumerate(r["fractions"]):
            if f >= claim3.SATURATION_REGIME:
                reached = [j for j in range(D.shape[1]) if np.isfinite(D[i, j]).all()]
                D[i, reached[-1], 0] = D[i, reached[0], 0] - abs(D[i, reached[-1], 0] - D[i, reached[0], 0])
        shifted["formats"][fmt] = {**r, "general_change": D}
    before, (after, reason) = claim3.decide_real_lm(committed)[0], claim3.decide_real_lm(shifted)
    assert before != after and "seen at 0 of" in reason, (before, after, reason)
