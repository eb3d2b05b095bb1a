"""The MedCalc-Bench domain: the package's answers cross-checked against ten formulas written here from their
published form (each checked on a hand-worked case), its splits, notes, formats, and the grading.

The formulas (written independently of the package, canonical units):

- body-mass index            BMI = W / (H_cm / 100)^2                               [kg/m^2]
- mean arterial pressure     MAP = DBP + (SBP - DBP) / 3                             [mmHg]
- anion gap                  AG  = Na - (Cl + HCO3)                                  [mEq/L]
- corrected calcium (Payne)  Ca_c = Ca + 0.8 (4.0 - albumin)                         [mg/dL]
- Cockcroft-Gault            CrCl = (140 - age) W / (72 Cr)  (x 0.85 if female)      [mL/min]
- QTc (Bazett)               QTc = QT / sqrt(RR),  RR = 60 / HR  seconds             [ms]
- ideal body weight (Devine) IBW = 50 (male) | 45.5 (female) + 2.3 (H_cm / 2.54 - 60) [kg]
- body-surface area (Mosteller) BSA = sqrt(H_cm W / 3600)                            [m^2]
- LDL (Friedewald)           LDL = TC - HDL - TG / 5                                 [mg/dL]
- serum osmolality           Osm = 2 Na + glucose / 18 + BUN / 2.8                   [mOsm/kg]
"""

import math

import numpy as np
import pytest

from sft_tilt.harness import medcalc_bench as mb


class hand:
    """The ten formulas, written from their published form (module docstring)."""

    bmi = staticmethod(lambda w, h: w / (h / 100) ** 2)
    mean_arterial_pressure = staticmethod(lambda sbp, dbp: dbp + (sbp - dbp) / 3)
    anion_gap = staticmethod(lambda na, cl, hco3: na - (cl + hco3))
    corrected_calcium = staticmethod(lambda ca, alb: ca + 0.8 * (4.0 - alb))
    cockcroft_gault = staticmethod(lambda age, w, cr, sex: (140 - age) * w / (72 * cr) * (0.85 if sex == "female" else 1.0))
    qtc_bazett = staticmethod(lambda qt, hr: qt / math.sqrt(60 / hr))
    ideal_body_weight_devine = staticmethod(lambda h, sex: (50.0 if sex == "male" else 45.5) + 2.3 * (h / 2.54 - 60))
    bsa_mosteller = staticmethod(lambda h, w: math.sqrt(h * w / 3600))
    ldl_friedewald = staticmethod(lambda tc, hdl, tg: tc - hdl - tg / 5)
    serum_osmolality = staticmethod(lambda na, glu, bun: 2 * na + glu / 18 + bun / 2.8)



# Each case worked by hand from the published formula; the arithmetic is in the comment.
def test_bmi_hand_case():
    # 70 kg, 175 cm: 1.75^2 = 3.0625; 70 / 3.0625 = 22.857142...
    assert hand.bmi(70, 175) == pytest.approx(22.857142857, rel=1e-9)


def test_mean_arterial_pressure_hand_case():
    # 120/80: 80 + (120 - 80)/3 = 80 + 13.333... = 93.333...
    assert hand.mean_arterial_pressure(120, 80) == pytest.approx(93.333333333, rel=1e-9)


def test_anion_gap_hand_case():
    # Na 140, Cl 104, HCO3 24: 140 - (104 + 24) = 140 - 128 = 12
    assert hand.anion_gap(140, 104, 24) == 12


def test_corrected_calcium_hand_case():
    # Ca 8.0 mg/dL, albumin 2.5 g/dL: 8.0 + 0.8 x (4.0 - 2.5) = 8.0 + 1.2 = 9.2
    assert hand.corrected_calcium(8.0, 2.5) == pytest.approx(9.2, abs=1e-12)


def test_cockcroft_gault_hand_cases():
    # 60 y, 72 kg, Cr 1.0: (140 - 60) x 72 / (72 x 1.0) = 80 x 72 / 72 = 80 mL/min; female: 80 x 0.85 = 68
    assert hand.cockcroft_gault(60, 72, 1.0, "male") == pytest.approx(80.0, abs=1e-12)
    assert hand.cockcroft_gault(60, 72, 1.0, "female") == pytest.approx(68.0, abs=1e-12)


def test_qtc_bazett_hand_cases():
    # HR 60: RR = 60/60 = 1 s, QTc = 400 / 1 = 400
    assert hand.qtc_bazett(400, 60) == pytest.approx(400.0, abs=1e-12)
    # HR 100: RR = 0.6 s, sqrt(0.6) = 0.7745967, QTc = 400 / 0.7745967 = 516.3978
    assert hand.qtc_bazett(400, 100) == pytest.approx(516.39778, rel=1e-6)


def test_ideal_body_weight_devine_hand_cases():
    # male 180 cm: 180 / 2.54 = 70.8661417 in; 50 + 2.3 x 10.8661417 = 50 + 24.992126 = 74.992126
    assert hand.ideal_body_weight_devine(180, "male") == pytest.approx(74.992126, rel=1e-7)
    # female 160 cm: 160 / 2.54 = 62.992126 in; 45.5 + 2.3 x 2.992126 = 45.5 + 6.881890 = 52.381890
    assert hand.ideal_body_weight_devine(160, "female") == pytest.approx(52.381890, rel=1e-7)


def test_bsa_mosteller_hand_case():
    # 180 cm, 80 kg: sqrt(180 x 80 / 3600) = sqrt(14400 / 3600) = sqrt(4) = 2
    assert hand.bsa_mosteller(180, 80) == pytest.approx(2.0, abs=1e-12)


def test_ldl_friedewald_hand_case():
    # TC 200, HDL 50, TG 150: 200 - 50 - 150/5 = 200 - 50 - 30 = 120
    assert hand.ldl_friedewald(200, 50, 150) == pytest.approx(120.0, abs=1e-12)


def test_serum_osmolality_hand_case():
    # Na 140, glucose 180, BUN 28: 2 x 140 + 180/18 + 28/2.8 = 280 + 10 + 10 = 300
    assert hand.serum_osmolality(140, 180, 28) == pytest.approx(300.0, abs=1e-12)




def _package(name, **inputs):
    return float(mb.calculator_function(name)(inputs)["Answer"])


def _cg_weight(w, h, sex):
    """The weight MedCalc-Bench's Cockcroft-Gault uses: actual if BMI < 18.5, min(IBW, actual) if BMI <= 24.9,
    else the adjusted body weight IBW + 0.4 (W - IBW)."""
    b, ibw = hand.bmi(w, h), hand.ideal_body_weight_devine(h, sex)
    return w if b < 18.5 else min(ibw, w) if b <= 24.9 else ibw + 0.4 * (w - ibw)


@pytest.mark.parametrize("draw", range(25))
def test_the_package_agrees_with_the_hand_formulas_to_its_rounding(draw):
    """The package rounds its answer to 3 decimals (``round_number``) and some intermediates too (RR to 3 decimals,
    height to 3 decimals in inches or metres): tolerances are that rounding's effect, no more."""
    r = np.random.default_rng(draw)
    h, w, age = int(r.integers(150, 196)), int(r.integers(45, 131)), int(r.integers(25, 86))
    sex = str(r.choice(["male", "female"]))
    na, cl, hco3 = int(r.integers(128, 151)), int(r.integers(92, 113)), int(r.integers(12, 31))
    ca, alb, cr = round(r.uniform(7, 10.5), 1), round(r.uniform(1.8, 4.5), 1), round(r.uniform(0.6, 3.0), 1)
    sbp, dbp, hr, qt = int(r.integers(110, 181)), int(r.integers(50, 100)), int(r.integers(50, 121)), int(r.integers(320, 481))
    tc, hdl, tg, glu, bun = int(r.integers(140, 301)), int(r.integers(30, 81)), int(r.integers(60, 351)), int(r.integers(70, 401)), int(r.integers(7, 61))
    sex_pkg = sex.capitalize()
    exact = 1e-3 * 0.5 + 1e-9
    assert _package("bmi_calculator", weight=(w, "kg"), height=(h, "cm")) == pytest.approx(hand.bmi(w, h), abs=exact)
    assert _package("mean_arterial_pressure", sys_bp=(sbp, "mm hg"), dia_bp=(dbp, "mm hg")) == pytest.approx(hand.mean_arterial_pressure(sbp, dbp), abs=exact)
    assert _package("anion_gap", sodium=(na, "mEq/L"), chloride=(cl, "mEq/L"), bicarbonate=(hco3, "mEq/L")) == pytest.approx(hand.anion_gap(na, cl, hco3), abs=exact)
    assert _package("calcium_correction", calcium=(ca, "mg/dL"), albumin=(alb, "g/dL")) == pytest.approx(hand.corrected_calcium(ca, alb), abs=exact)
    assert _package("bsa_calculator", weight=(w, "kg"), height=(h, "cm")) == pytest.approx(hand.bsa_mosteller(h, w), abs=exact)
    assert _package("ldl_calculated", total_cholestrol=(tc, "mg/dL"), hdl_cholestrol=(hdl, "mg/dL"), triglycerides=(tg, "mg/dL")) == pytest.approx(hand.ldl_friedewald(tc, hdl, tg), abs=exact)
    assert _package("sOsm", sodium=(na, "mEq/L"), glucose=(glu, "mg/dL"), bun=(bun, "mg/dL")) == pytest.approx(hand.serum_osmolality(na, glu, bun), abs=exact)
    # height in inches rounded to 3 decimals (cm x 0.393701): |d IBW| <= 2.3 x (5e-4 + 200 x 1e-6)
    assert _package("ideal_body_weight", height=(h, "cm"), sex=sex_pkg) == pytest.approx(hand.ideal_body_weight_devine(h, sex), abs=exact + 2e-3)
    # RR rounded to 3 decimals before the square root: relative error <= 0.5 x 5e-4 / RR_min(0.5 s)
    assert _package("qt_calculator_bazett", heart_rate=(hr, "beats per minute"), qt_interval=(qt, "msec")) == pytest.approx(hand.qtc_bazett(qt, hr), rel=6e-4, abs=exact)
    # Cockcroft-Gault with MedCalc-Bench's weight rule (BMI and IBW rounded to 3 decimals inside)
    got = _package("creatinine_clearance", sex=sex_pkg, age=(age, "years"), weight=(w, "kg"), height=(h, "cm"), creatinine=(cr, "mg/dL"))
    assert got == pytest.approx(hand.cockcroft_gault(age, _cg_weight(w, h, sex), cr, sex), rel=2e-4, abs=exact)


def test_package_discovery_lists_broken_modules_and_every_excluded_calculator():
    assert "target_weight" in mb.UNAVAILABLE and "ImportError" in mb.UNAVAILABLE["target_weight"]
    assert len(mb.CALCULATORS) >= 20
    assert not set(mb.CALCULATORS) & set(mb.EXCLUDED) and not set(mb.CALCULATORS) & set(mb.UNAVAILABLE)
    assert all("not yet reviewed" not in why for why in mb.EXCLUDED.values())  # every left-out one has its reason
    with pytest.raises(ValueError, match="name: calculator 'target_weight' is not available"):
        mb.calculator_function("target_weight")


def test_a_module_that_fails_to_import_is_listed_not_raised(monkeypatch):
    import importlib

    real = importlib.import_module

    def failing(name, *a, **k):
        if name == "medcalc.bmi_calculator":
            raise ImportError("simulated")
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", failing)
    functions, unavailable = mb._discover()
    assert "bmi_calculator" not in functions and unavailable["bmi_calculator"] == "ImportError: simulated"


def test_splits_are_disjoint_by_patient_and_unseen_calculators_are_never_trained_on():
    s = mb.make_splits(60, 30, seed=3, n_unseen=6)
    assert len(s.train) == 60 and len(s.heldout) == 30 and len(s.unseen) == 6
    patients = [{e.patient for e in part} for part in (s.train, s.heldout, s.unseen)]
    assert sum(map(len, patients)) == 96 and not (patients[0] & patients[1] or patients[0] & patients[2] or patients[1] & patients[2])
    assert len({e.prompt for e in s.train + s.heldout + s.unseen}) == 96
    seen = set(mb.CALCULATORS) - set(mb.HELDOUT_CALCULATORS)
    assert {e.calculator for e in s.train} == seen and {e.calculator for e in s.heldout} == seen
    assert {e.calculator for e in s.unseen} == set(mb.HELDOUT_CALCULATORS)
    with pytest.raises(ValueError, match="heldout_calculators"):
        mb.make_splits(4, 2, calculators=("bmi_calculator",), heldout_calculators=("bmi_calculator",))
    with pytest.raises(ValueError, match="calculators"):
        mb.make_splits(4, 2, calculators=("bmi",))


def test_generation_is_seeded():
    a = mb.generate_examples(12, seed=5)
    assert a == mb.generate_examples(12, seed=5)
    assert a != mb.generate_examples(12, seed=6)


def test_targets_are_the_package_explanation_and_answer_of_the_note():
    """The CoT target is the package's Explanation for exactly the inputs the note states (value and unit), then the
    answer line; the label target is the answer alone; every input value is in the note."""
    units = set()
    for ex in mb.generate_examples(2 * len(mb.CALCULATORS), seed=1):
        inputs = dict(ex.inputs)
        out = mb.CALCULATORS[ex.calculator].compute(inputs)
        assert ex.response_cot == f"{out['Explanation'].strip()}\nAnswer: {out['Answer']}"
        assert ex.response_label == f"Answer: {out['Answer']}" and ex.answer == pytest.approx(float(out["Answer"]))
        assert mc_parse(ex.response_cot) == pytest.approx(ex.answer) and mc_parse(ex.response_label) == pytest.approx(ex.answer)
        for key, value in inputs.items():
            if key == "sex":
                assert ("man" in ex.prompt) if value == "Male" else ("woman" in ex.prompt)
            else:
                assert str(value[0]) in ex.prompt, (key, value, ex.prompt)
                units.add(value[1])
    assert {"lbs", "kg", "in", "cm", "µmol/L", "mg/dL", "mmol/L", "g/L"} <= units  # units vary


def mc_parse(text):
    from sft_tilt.harness.medcalc import parse_answer

    return parse_answer(text)


def test_parse_and_grade():
    from sft_tilt.harness import medcalc as domain

    assert domain.parse_answer("x = 3.5 so\nAnswer: 12.25 kg") == 12.25
    assert domain.parse_answer("the value is 7 then 9") == 9.0
    assert domain.parse_answer("no number") is None
    assert domain.answer_is_correct(104.9, 100.0)  # 4.9% off, within 5%
    assert not domain.answer_is_correct(105.1, 100.0)
    assert not domain.answer_is_correct(None, 100.0)
    with pytest.raises(ValueError, match="rel_tol"):
        domain.answer_is_correct(1.0, 1.0, rel_tol=-1)
    ex = mb.generate_examples(1, seed=0)[0]
    assert domain.is_correct(ex.answer * 1.01, ex)
    from dataclasses import replace

    bounded = replace(ex, lower=ex.answer - 1, upper=ex.answer + 1)
    assert domain.is_correct(ex.answer + 0.9, bounded) and not domain.is_correct(ex.answer + 1.1, bounded)
    assert not domain.is_correct(1.0, replace(ex, answer=float("nan")))


def test_response_format_argument_is_validated():
    ex = mb.generate_examples(1, seed=0)[0]
    with pytest.raises(ValueError, match="fmt"):
        ex.response("json")
