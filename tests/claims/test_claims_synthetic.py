"""Decision rules of the synthetic-setting claims (3, 4, 5, 7, 10, 17, 18) on constructed measurements."""

import numpy as np
import pytest

from sft_tilt.claims import cost_per_gain, gradient_flow_limit, matched_gain_monotone, matched_gain_slope, method_ranking, no_free_lunch, \
    safe_step_size, small_lr_compression, talr_curriculum, token_vs_sample_weighting

NAN = float("nan")


def _claim3(**kw):
    D = np.array([[0.01, 0.011, 0.013], [0.03, 0.032, 0.036]])
    m = dict(target_gain=np.array([0.3, 0.6]), learning_rates=np.array([1.0, 2.0, 4.0]), matched_general_change=D, reached=np.ones_like(D, bool),
             bound_holds=np.ones_like(D, bool), bound_growing_holds=np.ones_like(D, bool), bound_finite=6, bound_growing_finite=6,
             flow_estimate=np.array([0.009, 0.028]), quadratic_rel_rms=0.05)
    return {**m, **kw}


def test_claim3_synthetic_holds_partly_holds_and_fails():
    assert matched_gain_monotone.decide_synthetic(_claim3())[0] == "holds"
    verdict, reason = matched_gain_monotone.decide_synthetic(_claim3(quadratic_rel_rms=0.38))
    assert verdict == "partly holds" and "fits" in reason
    falling = np.array([[0.01, 0.009, 0.013], [0.03, 0.032, 0.036]])
    assert matched_gain_monotone.decide_synthetic(_claim3(matched_general_change=falling))[0] == "fails"
    assert matched_gain_monotone.decide_synthetic(_claim3(bound_holds=np.zeros((2, 3), bool)))[0] == "fails"


@pytest.mark.parametrize("p, quad_better, verdict", [
    (2.05, True, "holds"),
    (1.9, False, "inconclusive"),  # near 2 but the Delta* lam term fits better
    (1.0, False, "fails"),  # the naive expansion
    (1.2, True, "fails"),
    (3.43, True, "fails"),  # far from both: it used to pass as "partly holds"
    (0.3, False, "fails"),
    (1.5, True, "inconclusive"),  # between the bands
    (2.4, True, "inconclusive"),
    (NAN, True, "inconclusive"),
])
def test_claim4_is_symmetric_in_the_two_candidate_exponents(p, quad_better, verdict):
    m = dict(target_gain=np.array([0.3, 0.6]), slopes=np.array([1e-5, 4e-5]), exponent=p, rss_quadratic=1.0 if quad_better else 2.0,
             rss_linear=2.0 if quad_better else 1.0, rel_rms_quadratic=0.3, rel_rms_linear=0.3)
    assert matched_gain_slope.decide(m)[0] == verdict


def _claim5(ce, fixed=None):
    ce = np.asarray(ce, float)
    fixed = np.tile(ce[:, :1] * 1.05, (1, ce.shape[1])) if fixed is None else np.asarray(fixed, float)
    return dict(learning_rates=np.array([0.5, 1.0, 2.0, 4.0]), target_gain=np.array([0.3, 0.6]), fixed=fixed, ce=ce,
                flow_estimate=2 * ce[:, 0] - ce[:, 1])


def test_claim5_holds_when_ce_dependence_shrinks_as_lam_goes_to_zero():
    ce = [[0.0100, 0.0101, 0.0103, 0.0107], [0.0300, 0.0302, 0.0306, 0.0314]]  # linear in lam: differences halve
    assert gradient_flow_limit.decide(_claim5(ce))[0] == "holds"


def test_claim5_fails_when_the_dependence_does_not_shrink_or_fixed_tilts_do_not_compose():
    flat_then_steep = [[0.0100, 0.0110, 0.0111, 0.0112], [0.0300, 0.0330, 0.0331, 0.0332]]  # changes most at small lam
    verdict, reason = gradient_flow_limit.decide(_claim5(flat_then_steep))
    assert verdict == "fails" and "shrink" in reason
    ce = [[0.0100, 0.0101, 0.0103, 0.0107], [0.0300, 0.0302, 0.0306, 0.0314]]
    drifting_fixed = [[0.01, 0.011, 0.012, 0.013], [0.03, 0.031, 0.032, 0.033]]
    assert gradient_flow_limit.decide(_claim5(ce, drifting_fixed))[0] == "fails"


def test_claim5_is_inconclusive_without_lam_dependence():
    flat = [[0.01, 0.01, 0.01, 0.01000001], [0.03, 0.03, 0.03, 0.03000001]]
    assert gradient_flow_limit.decide(_claim5(flat))[0] == "inconclusive"


def _world(m, rel, ab):
    return {"hard_token_mass": m, "safe_learning_rate_relative": rel, "safe_learning_rate": ab, "safe_learning_rate_theory": 0.0}


def _claim7(cot, label):
    return {"cot": cot, "label": label, "learning_rates": np.array([0.25, 32.0]), "eps": 0.02, "excess_tolerance": 0.05}


def test_claim7_synthetic_holds_partly_holds_and_fails():
    cot = [_world(0.2, 32, 4), _world(0.5, 8, 2), _world(0.9, 3, 0)]
    d = safe_step_size.decide_synthetic
    assert d(_claim7(cot, _world(0.95, 32, 4)))[0] == "holds"
    assert d(_claim7(cot, _world(0.95, 4, 1)))[0] == "partly holds"  # monotone, but label-only does not win
    rising = [_world(0.2, 3, 0), _world(0.5, 8, 2), _world(0.9, 32, 4)]
    assert d(_claim7(rising, _world(0.95, 32, 4)))[0] == "fails"


def _formats(cot, label, spread=0.002):
    """D at matched gain per lr (three seeds around the given means) for each format."""
    seeds = lambda x: {s: x + e for s, e in enumerate((-spread, 0.0, spread))}  # noqa: E731
    fmt = lambda d, mass: {"target_gain": 0.2, "per_seed": {lr: seeds(v) for lr, v in d.items()}, "hard_token_mass": mass,  # noqa: E731
                           "hard_fraction": 0.3}
    return {"formats": {"cot": fmt(cot, 0.5), "label": fmt(label, 0.6)}, "eps": 0.02, "learning_rate_grid": [1e-5, 5e-5, 2.5e-4],
            "hard_per_example": {"cot": 20.0, "label": 5.0}}


def test_claim7_real_lm_holds_fails_partly_holds_and_is_inconclusive_at_matched_gain():
    from sft_tilt.claims.registry import sensitivity

    d = safe_step_size.decide_real_lm
    g = {1e-5: 0.0, 5e-5: 0.0, 2.5e-4: 0.1}
    assert d(_formats(g, {**g, 2.5e-4: 0.01}))[0] == "holds"
    assert d(_formats({**g, 2.5e-4: 0.01}, g))[0] == "fails"
    assert d(_formats(g, {**g, 2.5e-4: 0.2}))[0] == "fails"  # equal; label-only degrades more above
    assert d(_formats(g, {**g, 2.5e-4: 0.05}))[0] == "partly holds"
    assert d(_formats(g, g))[0] == "inconclusive"
    assert d(_formats(g, {**g, 2.5e-4: 0.019}, spread=0.01))[0] == "inconclusive"  # label's interval straddles eps
    assert d({"formats": {"cot": {}}, "eps": 0.02, "learning_rate_grid": []})[0] == "inconclusive"
    # label-only's D 0.03 at the largest lr: safe at eps 0.04 (double), not at 0.02 or 0.01
    m = _formats(g, {**g, 2.5e-4: 0.03})
    assert d(m)[0] == "partly holds" and sensitivity(d, m) == "partly holds / holds"


def _curriculum(tau, frac):
    """Seeds as rows, epochs as columns, the shape talr_curriculum.measure returns."""
    tau, frac = np.asarray(tau, float), np.asarray(frac, float)
    return {"talr": {"epochs": list(range(tau.shape[1])), "tau": tau, "frac": frac},
            "sft": {"epochs": list(range(tau.shape[1])), "tau": None, "frac": frac}, "learning_rate": 10.0}


def test_claim10_synthetic_is_decided_by_paired_intervals_over_seeds():
    d = talr_curriculum.decide
    tau = [[1.0, 0.9, 0.8, 0.7, 0.6], [1.02, 0.91, 0.82, 0.71, 0.6], [0.99, 0.9, 0.79, 0.7, 0.61]]
    rising = [[0.7, 0.72, 0.74, 0.76, 0.78], [0.71, 0.73, 0.75, 0.77, 0.79], [0.7, 0.721, 0.741, 0.76, 0.781]]
    assert d(_curriculum(tau, rising))[0] == "holds"
    assert d(_curriculum(tau, np.flip(rising, 1)))[0] == "partly holds"  # τ decays, the fraction falls
    assert d(_curriculum(np.flip(tau, 1), np.flip(rising, 1)))[0] == "fails"
    # the seed means rise, but one seed falls as much as the others rise: the interval crosses 0
    disagree = [[0.7, 0.72, 0.74, 0.76, 0.78], [0.78, 0.76, 0.74, 0.72, 0.70], [0.7, 0.72, 0.74, 0.76, 0.79]]
    assert d(_curriculum(tau, disagree))[0] == "inconclusive"
    # rises in only 1 of 4 epochs (flat, flat, flat, up): below RISE_SHARE, so the fraction part stays undecided
    late = [[0.7, 0.7, 0.7, 0.7, 0.78], [0.71, 0.71, 0.71, 0.71, 0.79], [0.7, 0.7, 0.7, 0.7, 0.785]]
    assert d(_curriculum(tau, late))[0] == "inconclusive"


def _claim17(talr, flow):
    return {"target_gain": 0.3, "learning_rates": np.array([1.0, 3.0, 10.0]), "n_seeds": 3, "talr": np.array(talr), "flow": np.array(flow),
            "end_talr": 0.4, "end_flow": 0.5}


_NOISE = np.array([0.0, 0.001, -0.001, 0.0005, -0.0005])  # five seeds' paired offsets: a tight interval


def _seeds(values):
    """[seed, lr]: five seeds scattered tightly around ``values`` (NaN stays NaN)."""
    return np.asarray(values, float)[None, :] + _NOISE[:, None]


def _claim17_paired(talr, flow, learning_rates=(1.0, 3.0, 10.0)):
    return {"target_gain": 0.3, "learning_rates": list(learning_rates), "n_seeds": 5, "talr_name": "TALR (mean 1)", "talr_variant": "v",
            "flow_variant": "v", "talr": talr, "flow": flow}


def test_claim17_synthetic_decided_by_paired_intervals_per_step_size():
    d = token_vs_sample_weighting.decide_synthetic
    flow = _seeds([0.02, 0.03, 0.04])
    assert d(_claim17_paired(_seeds([0.01, 0.02, 0.03]), flow))[0] == "holds"
    assert d(_claim17_paired(_seeds([0.03, 0.02, 0.03]), flow))[0] == "partly holds"  # FLOW better at the smallest lr
    assert d(_claim17_paired(_seeds([0.03, 0.04, 0.05]), flow))[0] == "fails"
    assert d(_claim17_paired(_seeds([NAN, NAN, NAN]), flow))[0] == "inconclusive"  # never reaches Δ*: not ranked
    # the means differ, but seed-to-seed noise larger than the difference: the interval crosses 0
    noisy = flow + np.array([0.02, -0.02, 0.015, -0.015, 0.0])[:, None] - 0.002
    assert d(_claim17_paired(noisy, flow))[0] == "inconclusive"
    # one seed short of Δ* at a step size: that step size is not compared
    t = _seeds([0.01, 0.02, 0.03])
    t[0, 0] = NAN
    verdict, reason = d(_claim17_paired(t, flow))
    assert verdict == "holds" and "1.0" not in reason


def test_claim13_synthetic_ranks_only_methods_that_reach_the_matched_gain():
    d = method_ranking.decide_synthetic
    names = method_ranking.SYNTHETIC_ORDER
    m = lambda vals: {"matched": {n: _seeds([v])[:, 0] for n, v in zip(names, vals)}}  # noqa: E731
    assert d(m([0.01, 0.02, 0.03, 0.04]))[0] == "holds"
    verdict, reason = d(m([0.01, 0.03, 0.02, 0.04]))
    assert verdict == "fails" and "L2 over FLOW" in reason
    verdict, reason = d(m([NAN, 0.02, 0.03, 0.04]))
    assert verdict == "inconclusive" and "TALR (mean 1)" in reason
    noisy = m([0.01, 0.0101, 0.03, 0.04])
    noisy["matched"]["TALR (mean 1)"] = noisy["matched"]["TALR (mean 1)"] + np.array([0.003, -0.003, 0.002, -0.002, 0.0])
    assert d(noisy)[0] == "inconclusive"  # TALR vs FLOW within the seeds' noise
    # a constant paired difference is decided however small: pairing removes the shared seed noise
    assert d(m([0.01, 0.0101, 0.03, 0.04]))[0] == "holds"


def test_claim14_synthetic_spreads_paired_by_seed():
    d = small_lr_compression.decide_synthetic
    small, large = np.full(5, 0.1) + _NOISE, np.full(5, 0.3) + _NOISE[::-1]
    assert d({"d_small": small, "d_large": large, "g_small": small, "g_large": large})[0] == "holds"
    assert d({"d_small": small, "d_large": large, "g_small": large, "g_large": small})[0] == "partly holds"
    assert d({"d_small": large, "d_large": small, "g_small": large, "g_large": small})[0] == "fails"
    assert d({"d_small": small, "d_large": small[::-1], "g_small": small, "g_large": small[::-1]})[0] == "inconclusive"


def test_claim16_synthetic_every_method_and_its_threshold_sensitivity():
    from sft_tilt.analysis.intervals import Interval
    from sft_tilt.claims.registry import sensitivity

    d = no_free_lunch.decide_synthetic
    up, flat, down = Interval(0.3, 0.2, 0.4, 5), Interval(0.01, -0.02, 0.04, 5), Interval(-0.3, -0.4, -0.2, 5)
    assert d({"intervals": {"a": up, "b": up, "c": up}})[0] == "holds"
    m = {"intervals": {"a": up, "b": up, "c": flat}}
    assert d(m)[0] == "partly holds"
    # doubled, the share is every method: 2 of 3 is not enough, but the third is undecided, not contradicted
    assert sensitivity(d, m) == "partly holds / inconclusive"
    assert d({"intervals": {"a": up, "b": down, "c": down}})[0] == "fails"
    assert d({"intervals": {"a": up, "b": flat, "c": flat}})[0] == "inconclusive"


def test_matched_means_drop_learning_rates_some_seed_never_reached():
    m = np.array([[0.1, NAN], [0.3, 0.2]])
    np.testing.assert_allclose(token_vs_sample_weighting.matched_means(m), [0.2, NAN])


def test_claim18_synthetic_holds_partly_holds_fails_and_is_inconclusive():
    d = cost_per_gain.decide_synthetic
    base = {"target_gain": 0.3, "learning_rates": [1.0, 3.0, 10.0], "n_seeds": 5, "talr_name": "TALR (mean 1)"}
    assert d({**base, "sft": _seeds([0.01, 0.02, 0.2]), "talr": _seeds([0.02, 0.015, 0.05])})[0] == "holds"
    assert d({**base, "sft": _seeds([0.01, 0.02, 0.2]), "talr": _seeds([0.005, 0.01, 0.3])})[0] == "partly holds"
    assert d({**base, "sft": _seeds([0.2, 0.02, 0.01]), "talr": _seeds([0.3, 0.1, 0.05])})[0] == "fails"
    # SFT's rise between the two smallest steps lost in seed noise: undecided, nothing contradicted
    sft = _seeds([0.01, 0.0105, 0.2]) + np.array([[0, 0.01, 0], [0, -0.01, 0], [0, 0.008, 0], [0, -0.008, 0], [0, 0, 0]])
    assert d({**base, "sft": sft, "talr": _seeds([0.02, 0.015, 0.05])})[0] == "inconclusive"


def test_thresholded_rules_of_claims_3_4_5_10_report_their_verdict_at_half_and_double_threshold():
    from sft_tilt.claims.registry import sensitivity

    assert sensitivity(matched_gain_monotone.decide_synthetic, _claim3(quadratic_rel_rms=0.15)) == "partly holds / holds"
    m4 = dict(target_gain=np.array([0.3, 0.6]), slopes=np.array([1e-5, 4e-5]), exponent=2.2, rss_quadratic=1.0, rss_linear=2.0,
              rel_rms_quadratic=0.3, rel_rms_linear=0.3)
    assert matched_gain_slope.decide(m4)[0] == "holds" and sensitivity(matched_gain_slope.decide, m4) == "inconclusive / holds"
    shrinking = _claim5([[0.010, 0.0104, 0.0115, 0.0130], [0.030, 0.0315, 0.034, 0.040]])  # ratios 0.27, 0.25
    assert gradient_flow_limit.decide(shrinking)[0] == "holds"
    assert sensitivity(gradient_flow_limit.decide, shrinking) == "fails / holds"
    tau = [[1.0, 0.9, 0.8, 0.7, 0.6], [1.01, 0.9, 0.81, 0.7, 0.61], [1.0, 0.91, 0.8, 0.71, 0.6]]
    rises_3_of_4 = [[0.7, 0.7, 0.72, 0.74, 0.76], [0.71, 0.71, 0.73, 0.75, 0.77], [0.7, 0.7, 0.721, 0.741, 0.762]]
    m10 = _curriculum(tau, rises_3_of_4)  # RISE_SHARE doubled asks for a rise in every epoch
    assert talr_curriculum.decide(m10)[0] == "holds" and sensitivity(talr_curriculum.decide, m10) == "holds / inconclusive"
