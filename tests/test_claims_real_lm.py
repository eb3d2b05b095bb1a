"""Decision rules of the real-LM claims (11-18) on constructed measurements."""

import pytest

from claims import cost_per_gain, learning_rate_exchange, method_ranking, no_free_lunch, parameter_space_baselines, \
    small_lr_compression, target_token_statistics, token_vs_sample_weighting


def _tokens(median_p, hard_fraction, digit_hard, digit_all):
    return {"n_tokens": 200, "median_p": median_p, "hard_fraction": hard_fraction, "digit_share_hard": digit_hard,
            "digit_share_all": digit_all, "hardest": ["7"]}


def test_claim11_needs_all_three_criteria_and_names_the_failed_ones():
    d = target_token_statistics.decide
    assert d(_tokens(0.95, 0.1, 0.6, 0.3))[0] == "holds"
    verdict, reason = d(_tokens(0.6, 0.1, 0.6, 0.3))
    assert verdict == "partly holds" and "median" in reason
    verdict, reason = d(_tokens(0.524, 0.357, 0.45, 0.35))  # SmolLM2's numbers: only the digits criterion is met
    assert verdict == "fails" and "median" in reason and "hard fraction" in reason and "digits" not in reason
    assert d(_tokens(0.5, 0.5, 0.1, 0.3))[0] == "fails"


def _exchange(g_small, g_large, d_small, d_large):
    return {"small": 5e-5, "large": 2.5e-4, "domain_gain": {"small": g_small, "large": g_large},
            "general_change": {"small": d_small, "large": d_large}, "accuracy": {}}


def test_claim12_fails_when_the_larger_learning_rate_lowers_the_domain_gain():
    verdict, reason = learning_rate_exchange.decide(_exchange(0.48, 0.35, 0.0004, 0.079))  # SmolLM2's numbers
    assert verdict == "fails" and "lowers the domain gain" in reason


def test_claim12_holds_partly_holds_and_fails_on_the_general_side():
    d = learning_rate_exchange.decide
    assert d(_exchange(0.40, 0.42, 0.01, 0.10))[0] == "holds"  # +0.02 domain for +0.09 general: worse exchange rate
    assert d(_exchange(0.10, 0.40, 0.05, 0.06))[0] == "partly holds"  # marginal cost 0.033 < average 0.5
    assert d(_exchange(0.40, 0.42, 0.10, 0.05))[0] == "fails"  # the general loss did not rise


def _row(change, gain=0.4, n=3, sd=0.01):
    return {"domain_gain": gain, "domain_gain_sd": 0.01, "general_change": change, "general_change_sd": sd, "n": n}


def test_claim13_holds_partly_holds_fails_and_is_inconclusive():
    d = method_ranking.decide
    assert d({"lr": 1e-3, "rows": {"talr": _row(0.01), "flow": _row(0.02), "l2": _row(0.03), "sft": _row(0.04)}})[0] == "holds"
    assert d({"lr": 1e-3, "rows": {"talr": _row(0.01), "flow": _row(0.04), "l2": _row(0.03), "sft": _row(0.02)}})[0] == "partly holds"
    assert d({"lr": 1e-3, "rows": {"talr": _row(0.07), "flow": _row(0.08), "l2": _row(0.03), "sft": _row(0.079)}})[0] == "fails"
    assert d({"lr": 1e-3, "rows": {"talr": _row(0.01), "flow": _row(0.02), "l2": _row(0.03), "sft": _row(0.04, n=0)}})[0] == "inconclusive"


def _spreads(small_d, large_d, small_g, large_g):
    mk = lambda ds, gs: {n: {"general_change": d, "domain_gain": g} for n, d, g in zip(("sft", "l2", "talr"), ds, gs)}  # noqa: E731
    return {"lrs": [5e-5, 2.5e-4], "small": mk(small_d, small_g), "large": mk(large_d, large_g)}


def test_claim14_holds_partly_holds_fails_and_is_inconclusive():
    d = small_lr_compression.decide
    assert d(_spreads([0.0, 0.001, 0.002], [0.03, 0.07, 0.08], [0.4, 0.41, 0.42], [0.3, 0.5, -0.6]))[0] == "holds"
    assert d(_spreads([0.0, 0.001, 0.002], [0.03, 0.07, 0.08], [0.4, 0.8, 0.0], [0.3, 0.35, 0.4]))[0] == "partly holds"
    assert d(_spreads([0.0, 0.05, 0.1], [0.03, 0.04, 0.05], [0.4, 0.8, 0.0], [0.3, 0.35, 0.4]))[0] == "fails"
    assert d({"lrs": [1, 2], "small": {"sft": {}}, "large": {"sft": {}}})[0] == "inconclusive"


def test_claim15_holds_partly_holds_fails_and_is_inconclusive():
    d = parameter_space_baselines.decide
    sft = {"domain_gain": 0.48, "general_change": 0.0004}
    keeps_loses = {"domain_gain": 0.1, "general_change": -0.001}
    keeps_wins = {"domain_gain": 0.39, "general_change": -0.002}
    assert d({"lr": 5e-5, "sft": sft, "candidates": {"lora": keeps_loses, "averaging(0.5)": keeps_loses}})[0] == "holds"
    assert d({"lr": 5e-5, "sft": sft, "candidates": {"lora": keeps_loses, "averaging(0.5)": keeps_wins}})[0] == "partly holds"
    assert d({"lr": 5e-5, "sft": sft, "candidates": {"lora": keeps_wins}})[0] == "fails"
    assert d({"lr": 5e-5, "sft": sft, "candidates": {}})[0] == "inconclusive"


def test_claim16_holds_partly_holds_fails_and_is_inconclusive():
    d = no_free_lunch.decide
    lrs = [5e-5, 2.5e-4]
    assert d({"lrs": lrs, "general_change": {"sft": (0.0, 0.08), "talr": (0.0, 0.07)}})[0] == "holds"
    verdict, reason = d({"lrs": lrs, "general_change": {"sft": (0.0, 0.08), "talr": (0.0, 0.07), "lora": (0.0, -0.002)}})
    assert verdict == "partly holds" and "lora" in reason
    assert d({"lrs": lrs, "general_change": {"sft": (0.0, -0.01), "talr": (0.0, 0.07), "lora": (0.0, -0.002)}})[0] == "fails"
    assert d({"lrs": lrs, "general_change": {}})[0] == "inconclusive"


def test_claim17_real_lm_is_decided_by_the_paired_t_interval_not_two_standard_errors():
    d = token_vs_sample_weighting.decide_real_lm
    base = {"lr": 1e-3, "talr": _row(0.05, sd=0.005), "flow": _row(0.08, sd=0.005)}
    assert d({**base, "flow_d": [0.080, 0.081], "talr_d": [0.050, 0.0505]})[0] == "holds"
    assert d({**base, "flow_d": [0.050, 0.0505], "talr_d": [0.080, 0.081]})[0] == "fails"
    # SmolLM2-like: differences +0.004 and +0.016 over two seeds; mean +- 2 SE = 0.010 +- 0.012 crosses, and the
    # t interval (t = 12.7) far more; even differences +0.008, +0.012 (2 SE excludes 0) stay inconclusive with n = 2
    assert d({**base, "flow_d": [0.078, 0.084], "talr_d": [0.074, 0.068]})[0] == "inconclusive"
    assert d({**base, "flow_d": [0.088, 0.092], "talr_d": [0.080, 0.080]})[0] == "inconclusive"
    assert d({**base, "flow_d": [0.08], "talr_d": [0.05]})[0] == "inconclusive"  # one seed: no interval
    assert d({"lr": 1e-3, "talr": None, "flow": _row(0.08)})[0] == "inconclusive"


@pytest.mark.parametrize("ratios, reduction, verdict", [
    ([0.001, 0.01, 0.2], {"small": 0.0, "large": 0.05}, "holds"),
    ([0.001, 0.01, 0.2], {"small": 0.018, "large": float("nan")}, "partly holds"),  # TALR made no gain at the large lr
    ([0.2, 0.01, 0.001], {"small": 0.05, "large": 0.0}, "fails"),
])
def test_claim18_real_lm(ratios, reduction, verdict):
    assert cost_per_gain.decide_real_lm({"lr_grid": [1e-5, 5e-5, 2.5e-4], "ratios": ratios, "reduction": reduction})[0] == verdict
