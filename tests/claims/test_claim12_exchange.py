"""Claim 12's rule when the small rate does not degrade, and on the committed ``cpu`` runs perturbed."""

import numpy as np
import pytest

from sft_tilt.claims import learning_rate_exchange as claim12
from sft_tilt.harness.stored_runs import MissingResults


def _exchange(g_small, g_large, d_small, d_large):
    jitter = np.array([-0.002, 0.0, 0.002])
    return {"small": 1e-5, "large": 1e-4, "seeds": [0, 1, 2],
            "domain_gain": {"small": g_small + jitter, "large": g_large + jitter + [0.0, 0.001, -0.001]},
            "general_change": {"small": d_small + jitter / 10, "large": d_large + jitter / 10 + [0.001, -0.001, 0.0]},
            "accuracy": {}}


def test_a_small_rate_that_does_not_degrade_does_not_pass_the_marginal_cost_test_by_itself():
    # D_small < 0: marginal minus average cost is positive whenever D rises, so that test is not made; the exchange
    # decides: +0.4 domain for +0.05 general is not "a little domain for a large general loss"
    verdict, reason = claim12.decide(_exchange(0.40, 0.80, -0.001, 0.05))
    assert verdict == "partly holds" and "gives no test" in reason
    # the same small rate, but the larger one costs more general loss than it buys domain gain
    assert claim12.decide(_exchange(0.40, 0.45, -0.001, 0.30))[0] == "holds"
    # an exchange within the minimum effect of even is undecided
    assert claim12.decide(_exchange(0.40, 0.50, -0.001, 0.1005))[0] == "inconclusive"


def test_where_the_small_rate_degrades_the_marginal_cost_must_exceed_its_average():
    # exchange above (0.35 general for 0.05 domain), marginal cost 0.35 / 0.05 = 7 above the average 0.5 / 0.1 = 5
    assert claim12.decide(_exchange(0.10, 0.15, 0.50, 0.85))[0] == "holds"
    # exchange above (0.2 general for 0.1 domain) with marginal cost 2 below the average 10
    verdict, reason = claim12.decide(_exchange(0.10, 0.20, 1.00, 1.20))
    assert verdict == "partly holds" and "marginal minus average" in reason


@pytest.fixture(scope="module")
def committed():
    try:
        return claim12.measure()
    except MissingResults as exc:
        pytest.fail(f"the committed cpu runs are needed: {exc}")


def test_the_committed_verdict_flips_when_the_larger_rate_costs_five_times_more(committed):
    before = claim12.decide(committed)[0]
    costlier = {**committed, "general_change": {"small": committed["general_change"]["small"],
                                                "large": 5 * np.asarray(committed["general_change"]["large"], float)}}
    after = claim12.decide(costlier)[0]
    assert before != after, (before, after)


def test_the_committed_verdict_fails_when_the_general_change_is_reversed(committed):
    d = committed["general_change"]
    reversed_ = {**committed, "general_change": {"small": d["large"], "large": d["small"]}}
    assert claim12.decide(committed)[0] != "fails" and claim12.decide(reversed_)[0] == "fails"
