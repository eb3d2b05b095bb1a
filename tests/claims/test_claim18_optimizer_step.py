"""Claim 18 in one step under SGD and under Adam (``sft_tilt.claims.optimizer_step_cost``): the matched-gain comparison
and the decision rule on constructed records."""

import numpy as np
import pytest

from sft_tilt.claims import optimizer_step_cost as claim


def _arm(gains, changes, rates=None):
    rates = rates if rates is not None else [1e-3 * 3**k for k in range(len(gains))]
    return {"unit_update_norm": 1.0, "gain_per_unit_rate": 1.0,
            "steps": [{"learning_rate": r, "domain_gain": g, "measured_change": d, "left_band": 0.0,
                       "linearisation_error": 0.0} for r, g, d in zip(rates, gains, changes)]}


def _record(talr_factor, gains=(0.02, 0.06, 0.18), sft_slope=0.1, formats=("cot", "label")):
    """SFT's general change ``sft_slope G``; TALR's (both variants) ``talr_factor`` times SFT's at the same gain, at
    gains a little off SFT's so that the comparison interpolates."""
    factors = talr_factor if isinstance(talr_factor, dict) else {f: talr_factor for f in formats}
    out = {"probe_tokens": 256, "formats": {}}
    for fmt in formats:
        talr_gains = [g * 1.1 for g in gains]
        arms = {"sft": _arm(gains, [sft_slope * g for g in gains]),
                "talr": _arm(talr_gains, [factors[fmt] * sft_slope * g for g in talr_gains]),
                "talr-mean": _arm(talr_gains, [factors[fmt] * sft_slope * g for g in talr_gains])}
        out["formats"][fmt] = {"arms": {"sgd": arms, "adam": arms}}
    return out


def _m(record, optimizer="sgd"):
    return {"optimizer": optimizer, "compared": "talr-mean", "others": ["talr"],
            "points": claim.matched_points(record, "talr-mean", optimizer)}


def test_matched_points_interpolate_between_neighbouring_rates_and_never_extrapolate():
    sft = _arm([0.02, 0.05, 0.12], [0.01, 0.04, 0.05], rates=[1.0, 2.0, 4.0])
    talr = _arm([0.01, 0.03, 0.09], [0.0, 0.01, 0.03], rates=[1.5, 3.0, 6.0])
    record = {"formats": {"cot": {"arms": {"sgd": {"sft": sft, "talr": talr}}}}}
    points = claim.matched_points(record, "talr", "sgd")
    # the common range is [0.02, 0.09]: SFT's 0.02 and 0.05, TALR's 0.03 and 0.09
    assert [p["domain_gain"] for p in points] == pytest.approx([0.02, 0.03, 0.05, 0.09])
    by_gain = {round(p["domain_gain"], 6): p for p in points}
    # written out: SFT between (0.02, 0.01) and (0.05, 0.04); between (0.05, 0.04) and (0.12, 0.05)
    assert by_gain[0.03]["sft_general_change"] == pytest.approx(0.01 + (0.03 - 0.02) / 0.03 * 0.03)
    assert by_gain[0.09]["sft_general_change"] == pytest.approx(0.04 + (0.09 - 0.05) / 0.07 * 0.01)
    assert by_gain[0.09]["sft_learning_rate"] == pytest.approx(2.0 + (0.09 - 0.05) / 0.07 * 2.0)
    # TALR between (0.01, 0.0) and (0.03, 0.01), at rates 1.5 and 3
    assert by_gain[0.02]["method_general_change"] == pytest.approx(0.005)
    assert by_gain[0.02]["method_learning_rate"] == pytest.approx(2.25)
    assert by_gain[0.05]["method_general_change"] == pytest.approx(0.01 + (0.05 - 0.03) / 0.06 * 0.02)


def test_an_arm_is_cut_where_a_larger_rate_stops_raising_the_gain():
    curve = claim.arm_curve(_arm([0.02, 0.06, 0.05], [0.1, 0.2, 0.9], rates=[3.0, 1.0, 9.0]))
    # in order of rate: gain 0.06 at rate 1, then 0.02 at rate 3: cut after the first
    assert list(curve["learning_rate"]) == [1.0]
    curve = claim.arm_curve(_arm([0.02, 0.06, 0.05], [0.1, 0.2, 0.9]))
    assert list(curve["domain_gain"]) == [0.02, 0.06]


def test_holds_fails_and_is_inconclusive():
    assert claim.decide(_m(_record(0.5)))[0] == "holds"
    assert claim.decide(_m(_record(1.0)))[0] == "fails"
    assert claim.decide(_m(_record(1.3)))[0] == "fails"
    verdict, reason = claim.decide(_m(_record({"cot": 0.5, "label": 1.0})))
    assert verdict == "inconclusive" and "met at" in reason
    # SFT lowers the general loss: no cost to reduce, no verdict
    verdict, reason = claim.decide(_m(_record(0.5, sft_slope=-0.1)))
    assert verdict == "inconclusive" and "positive SFT general change" in reason
    # no common gain range: nothing compared
    far = _record(0.5)
    for res in far["formats"].values():
        for step in res["arms"]["sgd"]["talr-mean"]["steps"]:
            step["domain_gain"] *= 100
    assert claim.decide(_m(far))[0] == "inconclusive"


def test_a_ten_percent_rise_of_talrs_measured_cost_flips_a_narrow_holds():
    """TALR 15% below SFT holds; the same record with TALR's general changes 10% higher (a plausible error of one
    probe) is 6.5% below, under the minimum effect: fails."""
    record = _record(0.85)
    assert claim.decide(_m(record))[0] == "holds"
    for res in record["formats"].values():
        for step in res["arms"]["sgd"]["talr-mean"]["steps"]:
            step["measured_change"] *= 1.1
    verdict, reason = claim.decide(_m(record))
    assert verdict == "fails" and "met at none" in reason


def test_the_minimum_effect_is_the_threshold_the_sensitivity_scales():
    m = _m(_record(0.85))  # a 15% reduction: above 0.1 and 0.05, below 0.2
    assert [claim.decide(m, threshold_scale=s)[0] for s in (0.5, 1.0, 2.0)] == ["holds", "holds", "fails"]
    reductions = [1 - p["method_general_change"] / p["sft_general_change"] for p in m["points"]]
    assert np.allclose(reductions, 0.15)


def test_every_row_names_its_optimiser():
    from sft_tilt.claims.registry import CHECKS

    rows = [c for c in CHECKS if c.number == 18 and claim.FIGURE in c.figures]
    assert sorted(c.setting for c in rows) == sorted(claim.setting(o) for o in ("sgd", "adam"))
    assert any("SGD" in c.setting for c in rows) and any("Adam" in c.setting for c in rows)
