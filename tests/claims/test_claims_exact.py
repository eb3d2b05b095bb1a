"""Decision rules of the exact claims (1, 2, 6, 8, 9) on constructed measurements, and that they read the
sft_tilt.theory.derivations results."""

import copy

import numpy as np
import pytest

from sft_tilt.claims import code_length_identity, hard_token_update_norm, talr_closed_form, talr_gradient, tilt_expansion


def _derivation(name, verified=True):
    return {"name": name, "verified": verified, "symbolic": 2, "numeric": 1, "failed": [] if verified else ["a check"],
            "numeric_details": ["1000 instances: max error 1e-15"]}


def _derivations(module, verified=True):
    return {n: _derivation(n, verified) for n in module.DERIVATIONS}


def test_claim1_holds_on_agreement_and_fails_on_an_unverified_derivation_or_a_discrepancy():
    good = {"derivations": _derivations(code_length_identity),
            "zero_branches": dict(n=10, err_tree_vs_kl=1e-15, err_tree_vs_ce=2e-15, err_flat_vs_kl=1e-15, range=[-1.0, 1.0])}
    assert code_length_identity.decide(good)[0] == "holds"
    assert code_length_identity.decide({**good, "derivations": _derivations(code_length_identity, False)})[0] == "fails"
    bad = copy.deepcopy(good)
    bad["zero_branches"]["err_tree_vs_ce"] = 1e-3
    verdict, reason = code_length_identity.decide(bad)
    assert verdict == "fails" and "zero-branch" in reason
    assert "code_length_as_kl verified" in code_length_identity.describe(good)


def _claim2(**numeric):
    base = dict(n=10, neg=0, neg_raw=0, over=0, adv={"jensen": 0.0, "hoeffding": 1e-10, "bennett": 0.0}, max_ratio_sup=0.9,
                max_ratio_osc=0.5, counterexample_first=1.0)
    return {"derivations": _derivations(tilt_expansion), "numeric": {**base, **numeric}}


def test_claim2_holds_partly_holds_on_the_mismatch_constant_alone_and_fails_otherwise():
    assert tilt_expansion.decide(_claim2())[0] == "holds"
    verdict, reason = tilt_expansion.decide(_claim2(max_ratio_sup=1.98, counterexample_first=2.0))
    assert verdict == "partly holds" and "mismatch" in reason
    assert tilt_expansion.decide(_claim2(neg=1))[0] == "fails"
    assert tilt_expansion.decide(_claim2(adv={"jensen": -1e-6, "hoeffding": 0.0, "bennett": 0.0}))[0] == "fails"
    m = _claim2()
    m["derivations"]["tilt_expansion"]["verified"] = False
    assert tilt_expansion.decide(m)[0] == "fails"


def _claim6(**numeric):
    base = dict(total=10, violations=0, violations_fn=0, checked_fn=8, slack_lo=1e-3, slack_hi=0.0, min_norm_hard=0.85, grad_err=1e-15)
    return {"derivations": _derivations(hard_token_update_norm), "numeric": {**base, **numeric}}


@pytest.mark.parametrize("change", [dict(violations=1), dict(violations_fn=2), dict(min_norm_hard=0.79), dict(grad_err=1e-9)])
def test_claim6_holds_only_when_every_instance_is_inside_the_interval(change):
    assert hard_token_update_norm.decide(_claim6())[0] == "holds"
    assert hard_token_update_norm.decide(_claim6(**change))[0] == "fails"


def _claim8(**numeric):
    base = dict(n_slsqp=5, slsqp=1e-7, uniform=[0.25] * 4, onehot=[0.0, 0.5, 0.0, 0.5], near_inf=1e-9)
    return {"derivations": _derivations(talr_closed_form), "numeric": {**base, **numeric}}


@pytest.mark.parametrize("change", [dict(slsqp=1e-2), dict(uniform=[0.3, 0.2, 0.25, 0.25]), dict(onehot=[0.0, 1.0, 0.0, 0.0]),
                                    dict(near_inf=1e-3)])
def test_claim8_holds_on_the_closed_form_and_its_limits_and_fails_on_any_departure(change):
    assert talr_closed_form.decide(_claim8())[0] == "holds"
    assert talr_closed_form.decide(_claim8(**change))[0] == "fails"
    m = _claim8()
    m["derivations"]["talr_kkt"]["verified"] = False
    assert talr_closed_form.decide(m)[0] == "fails"


def _claim9(**numeric):
    base = dict(grad_err=1e-16, nosg_diff=0.2, rel=[1.0, float(np.exp(-1)), float(np.exp(-3))], floor_min=0.0068, floor_bound=0.0067,
                floor_n=50, batches=3)
    return {"derivations": _derivations(talr_gradient), "numeric": {**base, **numeric}}


@pytest.mark.parametrize("change", [dict(grad_err=1e-6), dict(nosg_diff=0.0), dict(rel=[1.0, 0.4, 0.05]), dict(floor_min=0.001)])
def test_claim9_holds_on_the_stop_gradient_form_and_fails_on_any_departure(change):
    assert talr_gradient.decide(_claim9())[0] == "holds"
    assert talr_gradient.decide(_claim9(**change))[0] == "fails"


def test_exact_checks_read_the_machine_checked_derivations():
    """measure() of every exact claim carries derive(name).verified and its checks, not a recomputation."""
    from sft_tilt.claims.exact_evidence import derivation_summary
    from sft_tilt.theory.derivations import derive

    s = derivation_summary("talr_kkt")
    r = derive("talr_kkt")
    assert s["verified"] == r.verified is True
    assert s["symbolic"] == sum(c.kind == "symbolic" for c in r.checks) and s["numeric"] >= 1
    assert s["numeric_details"] == [c.detail for c in r.checks if c.kind == "numeric"]
    for module in (code_length_identity, tilt_expansion, hard_token_update_norm, talr_closed_form, talr_gradient):
        assert module.DERIVATIONS


@pytest.mark.parametrize("eps", [1e-6, 1e-3, 0.1, 0.25, 0.4, 0.499])
def test_claim2_counterexample_ratio_is_exactly_two_with_finite_dl(eps):
    import numpy as np
    import sft_tilt.theory
    from sft_tilt.claims.tilt_expansion import counterexample_ratio

    assert counterexample_ratio(eps) == pytest.approx(2.0, rel=1e-12)
    s, q, P = np.array([1.0, -1.0]), np.array([1 - eps, eps]), np.array([eps, 1 - eps])
    assert np.isfinite(float(sft_tilt.theory.single_step_code_length_change(P, q, s, 1.0)))
    # with TV read as the full L1 distance the notes' constant lam sup|s| ||P - q||_1 holds (ratio 1)
    assert abs(q @ s - P @ s) / np.abs(P - q).sum() == pytest.approx(1.0, rel=1e-12)


def test_exact_rules_scale_their_tolerances_so_a_verdict_resting_on_one_shows_in_the_threshold_column():
    from sft_tilt.claims.registry import sensitivity

    near = {"derivations": _derivations(code_length_identity),
            "zero_branches": dict(n=10, err_tree_vs_kl=7e-11, err_tree_vs_ce=0.0, err_flat_vs_kl=0.0, range=[-1.0, 1.0])}
    assert code_length_identity.decide(near)[0] == "holds"
    assert sensitivity(code_length_identity.decide, near) == "fails / holds"
    assert tilt_expansion.decide(_claim2(adv={"jensen": -1.5e-12, "hoeffding": 0.0, "bennett": 0.0}))[0] == "fails"
    assert sensitivity(tilt_expansion.decide, _claim2(adv={"jensen": -1.5e-12, "hoeffding": 0.0, "bennett": 0.0})) == "fails / holds"
    assert sensitivity(hard_token_update_norm.decide, _claim6(grad_err=7e-13)) == "fails / holds"
    assert sensitivity(talr_closed_form.decide, _claim8(slsqp=7e-5)) == "fails / holds"
    assert sensitivity(talr_gradient.decide, _claim9(nosg_diff=1.5e-6)) == "holds / fails"
    # far from every tolerance the verdict does not move
    assert sensitivity(talr_gradient.decide, _claim9()) == "holds / holds"
