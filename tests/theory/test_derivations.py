"""The registry of derived results: every result verified by a check that really runs, and checkers that can fail."""

import jax.numpy as jnp
import numpy as np
import pytest
import sympy as sp

from sft_tilt.store import content_key
from sft_tilt.theory.derivations import DERIVATIONS, Check, Result, derive
from sft_tilt.theory.derivations import code_length, expansion, hard_tokens, hoeffding, leakage, single_step, talr
from sft_tilt.theory.derivations import registry
from sft_tilt.theory.derivations.registry import nonnegative_rational, numeric_check, symbolic_check, symbolic_zero


def test_float64_in_effect():
    assert jnp.asarray(1.0).dtype == jnp.float64


def test_registry_covers_every_numbered_result():
    assert {d.number for d in DERIVATIONS.values()} == set(range(1, 10))
    assert {"jensen_lower_bound", "hoeffding_upper_bound", "bennett_upper_bound"} <= set(DERIVATIONS)


@pytest.mark.parametrize("name", sorted(DERIVATIONS))
def test_every_result_is_verified_when_recomputed(name):
    res = derive(name, use_cache=False)  # the checks run now, not read from a cache
    failed = [(c.description, c.detail) for c in res.checks if not c.passed]
    assert res.verified, failed
    kinds = {c.kind for c in res.checks}
    assert kinds == {"symbolic", "numeric"}  # every result has both a proof step and a float64 cross-check
    assert res.assumptions and res.text and res.statement
    assert all(isinstance(s, sp.Basic) for s in res.statement)


# ---------------------------------------------------------------- the checkers reject false statements
def test_wrong_tree_sign_is_rejected():
    good, wrong = code_length.statement_checks(1), code_length.statement_checks(-1)
    assert all(c.passed for c in good)
    assert not wrong[1].passed


def test_wrong_sign_in_single_step_identity_is_rejected():
    assert single_step.identity_checks(-1)[0].passed
    assert not single_step.identity_checks(+1)[0].passed
    assert not single_step.tradeoff_checks(2)[0].passed


@pytest.mark.parametrize("wrong", [(1, sp.Rational(1, 2), sp.Rational(1, 2)), (1, 1, sp.Rational(1, 6)), (-1, sp.Rational(1, 2), sp.Rational(1, 6))])
def test_wrong_series_coefficient_is_rejected(wrong):
    checks = expansion.coefficient_checks(wrong)
    truth = expansion.TRUE_COEFFICIENTS
    for k, (c, w, t) in enumerate(zip(checks[1:], wrong, truth), start=1):
        assert c.passed == (w == t), (k, c)


def test_hoeffding_with_a_too_large_constant_is_rejected_symbolically_and_numerically():
    assert all(c.passed for c in hoeffding.proof_checks(8))
    assert all(c.passed for c in hoeffding.proof_checks(4))  # weaker claim, implied by the proven one
    wrong = hoeffding.proof_checks(16)  # lam^2 (b-a)^2 / 16: false (sharp two-point case)
    assert not all(c.passed for c in wrong)
    ok, detail = hoeffding.numeric_claim(16)
    assert not ok, detail
    assert hoeffding.numeric_claim(8)[0]


def test_wrong_leakage_form_is_rejected():
    assert not leakage.identity_checks(claimed_v_factor=1)[0].passed  # D = rho G + V is false
    assert leakage.identity_checks()[0].passed


def test_wrong_update_norm_constant_is_rejected():
    assert all(c.passed for c in hard_tokens.norm_checks())
    assert not all(c.passed for c in hard_tokens.norm_checks(claimed_upper=1))


def test_wrong_talr_closed_form_is_rejected():
    wrong = talr.kkt_checks(claimed_sign=+1)
    assert not any(c.passed for c in wrong if c.description.startswith("KKT solution"))


# ---------------------------------------------------------------- registry mechanics
def test_symbolic_zero_distinguishes_zero_from_nonzero():
    x = sp.Symbol("x", positive=True)
    assert symbolic_zero("", sp.log(x**2) - 2 * sp.log(x)).passed
    assert not symbolic_zero("", sp.sin(x) ** 2 + sp.cos(x) ** 2).passed  # equals 1, not 0


def test_nonnegative_rational_is_not_vacuous():
    m, x = sp.symbols("m x", positive=True)
    assert nonnegative_rational(m / (1 + x), [m, x])
    assert not nonnegative_rational(-m, [m])
    assert not nonnegative_rational(m / (1 - x), [m, x])
    assert not nonnegative_rational(sp.sqrt(2) * m - 1, [m])


def test_exceptions_in_checks_are_failures_not_crashes():
    def boom():
        raise RuntimeError("no")

    assert not symbolic_check("", boom).passed
    c = numeric_check("", boom)
    assert not c.passed and "RuntimeError" in c.detail


def test_result_needs_a_symbolic_check_and_all_checks_passing():
    base = dict(name="t", number=1, title="t", statement=(sp.Eq(sp.Symbol("a"), 1),), text="t", assumptions=("none",))
    assert Result(**base, checks=(Check("s", "symbolic", True), Check("n", "numeric", True))).verified
    assert not Result(**base, checks=(Check("n", "numeric", True),)).verified
    assert not Result(**base, checks=(Check("s", "symbolic", True), Check("n", "numeric", False))).verified
    with pytest.raises(ValueError, match="assumptions"):
        Result(**{**base, "assumptions": ()}, checks=())
    with pytest.raises(ValueError, match="kind"):
        Check("x", "guess", True)


def test_crashing_derivation_is_reported_not_verified(monkeypatch):
    def crash():
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(DERIVATIONS, "crash_test", registry.Derivation("crash_test", 1, __name__, crash))
    res = derive("crash_test", use_cache=False)
    assert not res.verified and "ZeroDivisionError" in res.checks[0].detail


def test_cache_key_covers_the_module_its_imports_and_libraries(monkeypatch):
    from sft_tilt.store import dependency_closure

    d = DERIVATIONS["tradeoff_identity"]
    closure = dependency_closure(d.module)
    # the registry, the numeric exports the checks call, and the module itself are part of the key
    assert {"sft_tilt.theory.derivations.single_step", "sft_tilt.theory.derivations.registry", "sft_tilt.theory._single_step"} <= set(closure)
    key = content_key(registry._key_material(d))
    monkeypatch.setattr(registry, "library_versions", lambda: {"sympy": "other"})
    assert content_key(registry._key_material(d)) != key


def test_damaged_cache_entry_is_recomputed_not_trusted(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    first = derive("tradeoff_identity")
    (entry,) = (tmp_path / "derivations").glob("*.json")
    record = json.loads(entry.read_text())
    record["value"]["value"]["checks"][0]["passed"] = not record["value"]["value"]["checks"][0]["passed"]  # forged
    entry.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match=str(entry.name)):
        second = derive("tradeoff_identity")
    assert second.as_json() == first.as_json()  # recomputed, the forged flag is not served


def test_cached_result_is_reused_and_equal(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path))
    calls = []
    d = DERIVATIONS["tradeoff_identity"]
    wrapped = registry.Derivation(d.name, d.number, d.module, lambda: calls.append(1) or d.derive())
    monkeypatch.setitem(DERIVATIONS, d.name, wrapped)
    first = derive(d.name)
    second = derive(d.name)
    assert calls == [1]  # computed once, then read from disk
    assert first.as_json() == second.as_json()
    assert len(list((tmp_path / "derivations").glob("*.json"))) == 1


def test_json_form_lists_the_required_fields():
    res = derive("tradeoff_identity", use_cache=False)
    js = res.as_json()
    assert {"name", "statement", "assumptions", "verified"} <= set(js)
    assert js["verified"] is True and isinstance(js["statement"], str)
    np.testing.assert_equal(len(js["checks"]), len(res.checks))
