"""Claim 16 decided at matched domain gain: moving further at the larger rate is not degrading more; constructed
measurements and the committed ``cpu`` runs perturbed."""

import pytest

from sft_tilt.analysis.intervals import Interval, paired_interval
from sft_tilt.claims import no_free_lunch as claim16
from sft_tilt.harness.stored_runs import MissingResults

UP = paired_interval([0.08, 0.079, 0.081], [0.0, 0.001, 0.0])
FLAT = paired_interval([0.001, -0.001, 0.0005], [0.0, 0.0, 0.0])


def _m(matched, final=None, no_trajectory=(), no_gain=()):
    return {"learning_rates": [1e-5, 1e-4], "intervals": final or {}, "matched": matched,
            "target_gains": {k: 0.5 for k in matched}, "no_trajectory": list(no_trajectory), "no_gain": list(no_gain),
            "general_change": {}}


def test_a_method_that_only_trains_further_does_not_pass():
    # the end-of-training difference rises for every method, but at matched gain two of three cost the same
    verdict, reason = claim16.decide(_m({"sft": UP, "flow": FLAT, "l2": FLAT}, final={"sft": UP, "flow": UP, "l2": UP}))
    assert verdict == "inconclusive"
    assert claim16.decide(_m({"sft": UP, "flow": UP, "l2": UP}))[0] == "holds"


def test_a_certain_rise_below_the_minimum_effect_is_undecided():
    tiny = paired_interval([0.0011, 0.0012, 0.0011], [0.0, 0.0, 0.0])  # certain, but under MIN_EFFECT_NATS
    assert claim16.decide(_m({"sft": UP, "flow": tiny}))[0] == "inconclusive"
    assert claim16.decide(_m({"sft": UP, "flow": tiny}), threshold_scale=0.25)[0] == "holds"


def test_methods_without_a_trajectory_or_a_gain_are_undecided_not_passed():
    assert claim16.decide(_m({"sft": UP, "flow": UP}, no_trajectory=["averaging(0.5)"]))[0] == "partly holds"
    assert claim16.decide(_m({"sft": UP}, no_trajectory=["averaging(0.5)"], no_gain=["dft"]))[0] == "inconclusive"


@pytest.fixture(scope="module")
def committed():
    try:
        return claim16.measure()
    except MissingResults as exc:
        pytest.fail(f"the committed cpu runs are needed: {exc}")


def test_the_committed_verdict_fails_when_sft_costs_less_at_the_larger_rate(committed):
    # SFT's per-seed differences at matched gain negated: the larger rate cheaper for the same domain gain
    iv = committed["matched"]["sft"]
    flipped = {**committed, "matched": {**committed["matched"], "sft": Interval(-iv.mean, -iv.hi, -iv.lo, iv.n)}}
    before, after = claim16.decide(committed)[0], claim16.decide(flipped)[0]
    assert before != "fails" and after == "fails", (before, after)
