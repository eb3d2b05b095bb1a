"""The clinical-calculation generator: formulas against hand-worked cases, splits, formats, grading."""

import math

import pytest

from sims.harness import medcalc as mc


# Each case worked by hand from the published formula; the arithmetic is in the comment.
def test_bmi_hand_case():
    # 70 kg, 175 cm: 1.75^2 = 3.0625; 70 / 3.0625 = 22.857142...
    assert mc.bmi(70, 175) == pytest.approx(22.857142857, rel=1e-9)


def test_mean_arterial_pressure_hand_case():
    # 120/80: 80 + (120 - 80)/3 = 80 + 13.333... = 93.333...
    assert mc.mean_arterial_pressure(120, 80) == pytest.approx(93.333333333, rel=1e-9)


def test_anion_gap_hand_case():
    # Na 140, Cl 104, HCO3 24: 140 - (104 + 24) = 140 - 128 = 12
    assert mc.anion_gap(140, 104, 24) == 12


def test_corrected_calcium_hand_case():
    # Ca 8.0 mg/dL, albumin 2.5 g/dL: 8.0 + 0.8 x (4.0 - 2.5) = 8.0 + 1.2 = 9.2
    assert mc.corrected_calcium(8.0, 2.5) == pytest.approx(9.2, abs=1e-12)


def test_cockcroft_gault_hand_cases():
    # 60 y, 72 kg, Cr 1.0: (140 - 60) x 72 / (72 x 1.0) = 80 x 72 / 72 = 80 mL/min; female: 80 x 0.85 = 68
    assert mc.cockcroft_gault(60, 72, 1.0, "male") == pytest.approx(80.0, abs=1e-12)
    assert mc.cockcroft_gault(60, 72, 1.0, "female") == pytest.approx(68.0, abs=1e-12)


def test_qtc_bazett_hand_cases():
    # HR 60: RR = 60/60 = 1 s, QTc = 400 / 1 = 400
    assert mc.qtc_bazett(400, 60) == pytest.approx(400.0, abs=1e-12)
    # HR 100: RR = 0.6 s, sqrt(0.6) = 0.7745967, QTc = 400 / 0.7745967 = 516.3978
    assert mc.qtc_bazett(400, 100) == pytest.approx(516.39778, rel=1e-6)


def test_ideal_body_weight_devine_hand_cases():
    # male 180 cm: 180 / 2.54 = 70.8661417 in; 50 + 2.3 x 10.8661417 = 50 + 24.992126 = 74.992126
    assert mc.ideal_body_weight_devine(180, "male") == pytest.approx(74.992126, rel=1e-7)
    # female 160 cm: 160 / 2.54 = 62.992126 in; 45.5 + 2.3 x 2.992126 = 45.5 + 6.881890 = 52.381890
    assert mc.ideal_body_weight_devine(160, "female") == pytest.approx(52.381890, rel=1e-7)


def test_bsa_mosteller_hand_case():
    # 180 cm, 80 kg: sqrt(180 x 80 / 3600) = sqrt(14400 / 3600) = sqrt(4) = 2
    assert mc.bsa_mosteller(180, 80) == pytest.approx(2.0, abs=1e-12)


def test_ldl_friedewald_hand_case():
    # TC 200, HDL 50, TG 150: 200 - 50 - 150/5 = 200 - 50 - 30 = 120
    assert mc.ldl_friedewald(200, 50, 150) == pytest.approx(120.0, abs=1e-12)


def test_serum_osmolality_hand_case():
    # Na 140, glucose 180, BUN 28: 2 x 140 + 180/18 + 28/2.8 = 280 + 10 + 10 = 300
    assert mc.serum_osmolality(140, 180, 28) == pytest.approx(300.0, abs=1e-12)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: mc.bmi(-70, 175), "weight_kg"),
        (lambda: mc.bmi(70, float("nan")), "height_cm"),
        (lambda: mc.cockcroft_gault(60, 72, 1.0, "other"), "sex"),
        (lambda: mc.mean_arterial_pressure(80, 120), "dbp"),
        (lambda: mc.qtc_bazett(400, 0), "heart_rate"),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_splits_are_disjoint_and_cover_every_calculator():
    s = mc.make_splits(60, 30, seed=3)
    assert len(s.train) == 60 and len(s.heldout) == 30
    train_keys = {(e.calculator, e.inputs) for e in s.train}
    held_keys = {(e.calculator, e.inputs) for e in s.heldout}
    assert not train_keys & held_keys
    assert not {e.prompt for e in s.train} & {e.prompt for e in s.heldout}
    assert len(train_keys) == 60 and len(held_keys) == 30
    assert {e.calculator for e in s.train} == set(mc.CALCULATORS)
    assert {e.calculator for e in s.heldout} == set(mc.CALCULATORS)


def test_generation_is_seeded():
    a = mc.generate_examples(12, seed=5)
    b = mc.generate_examples(12, seed=5)
    c = mc.generate_examples(12, seed=6)
    assert a == b
    assert a != c


def test_answers_match_the_formula_recomputed_from_the_note_inputs():
    """Every answer equals the formula applied to the inputs (recomputed here), rounded to the calculator's
    precision; the CoT ends with that answer, the label-only response is the answer alone."""
    formulas = {
        "bmi": lambda v: v["weight_kg"] / (v["height_cm"] / 100) ** 2,
        "map": lambda v: (2 * v["dbp"] + v["sbp"]) / 3,
        "anion_gap": lambda v: v["sodium"] - v["chloride"] - v["bicarbonate"],
        "corrected_calcium": lambda v: v["calcium"] + 0.8 * (4 - v["albumin"]),
        "cockcroft_gault": lambda v: (140 - v["age"]) * v["weight_kg"] / (72 * v["creatinine"]) * (0.85 if v["sex"] == "female" else 1),
        "qtc_bazett": lambda v: v["qt_ms"] * math.sqrt(v["heart_rate"] / 60),
        "ibw_devine": lambda v: (50 if v["sex"] == "male" else 45.5) + 2.3 * (v["height_cm"] / 2.54 - 60),
        "bsa_mosteller": lambda v: math.sqrt(v["height_cm"] * v["weight_kg"] / 3600),
        "ldl_friedewald": lambda v: v["total_cholesterol"] - v["hdl"] - v["triglycerides"] / 5,
        "serum_osmolality": lambda v: 2 * v["sodium"] + v["glucose"] / 18 + v["bun"] / 2.8,
    }
    for ex in mc.generate_examples(40, seed=1):
        v = dict(ex.inputs)
        dec = mc.CALCULATORS[ex.calculator].decimals
        expected = round(formulas[ex.calculator](v), dec)
        assert ex.answer == pytest.approx(expected, abs=10 ** (-dec) * 0.51)
        assert mc.parse_answer(ex.response_cot) == pytest.approx(ex.answer)
        assert mc.parse_answer(ex.response_label) == pytest.approx(ex.answer)
        assert len(ex.response_label) < len(ex.response_cot)
        for key, value in v.items():  # every input is stated in the note
            if key != "sex":
                shown = f"{value:.1f}" if isinstance(value, float) else str(value)
                assert shown in ex.prompt, (key, shown, ex.prompt)


def test_parse_and_grade():
    assert mc.parse_answer("x = 3.5 so\nAnswer: 12.25 kg") == 12.25
    assert mc.parse_answer("the value is 7 then 9") == 9.0
    assert mc.parse_answer("no number") is None
    assert mc.answer_is_correct(104.9, 100.0)  # 4.9% off, within 5%
    assert not mc.answer_is_correct(105.1, 100.0)
    assert not mc.answer_is_correct(None, 100.0)
    with pytest.raises(ValueError, match="rel_tol"):
        mc.answer_is_correct(1.0, 1.0, rel_tol=-1)


def test_response_format_argument_is_validated():
    ex = mc.generate_examples(1, seed=0)[0]
    with pytest.raises(ValueError, match="fmt"):
        ex.response("json")
