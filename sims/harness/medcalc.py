"""A seeded generator of clinical-calculation problems in the spirit of MedCalc-Bench.

Each problem is a short patient note plus a question asking for one clinical quantity, with the
answer computed from the published formula:

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

Two response formats (the paper's finding 2): ``"cot"`` (formula, substituted values, arithmetic,
answer) and ``"label"`` (the answer only). Answers are the exact formula value rounded to the
calculator's precision; grading uses a relative tolerance (:func:`answer_is_correct`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = [
    "CALCULATORS",
    "FORMATS",
    "SYSTEM_PROMPT",
    "MedCalcExample",
    "DomainSplits",
    "bmi",
    "mean_arterial_pressure",
    "anion_gap",
    "corrected_calcium",
    "cockcroft_gault",
    "qtc_bazett",
    "ideal_body_weight_devine",
    "bsa_mosteller",
    "ldl_friedewald",
    "serum_osmolality",
    "generate_examples",
    "make_splits",
    "parse_answer",
    "answer_is_correct",
]

FORMATS = ("cot", "label")

#: The system message of every domain conversation (short, so a chain-of-thought example fits 160 tokens).
SYSTEM_PROMPT = "You are a clinical calculator."


# ----------------------------------------------------------------------------- formulas


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name}: must be a finite positive number, got {value!r}")
    return float(value)


def _sex(sex: str) -> str:
    if sex not in ("male", "female"):
        raise ValueError(f"sex: must be 'male' or 'female', got {sex!r}")
    return sex


def bmi(weight_kg: float, height_cm: float) -> float:
    """Body-mass index ``W / (H/100)^2`` in kg/m^2."""
    w, h = _positive("weight_kg", weight_kg), _positive("height_cm", height_cm) / 100.0
    return w / (h * h)


def mean_arterial_pressure(sbp: float, dbp: float) -> float:
    """Mean arterial pressure ``DBP + (SBP - DBP)/3`` in mmHg."""
    s, d = _positive("sbp", sbp), _positive("dbp", dbp)
    if d > s:
        raise ValueError(f"dbp: diastolic {d} exceeds systolic {s}")
    return d + (s - d) / 3.0


def anion_gap(sodium: float, chloride: float, bicarbonate: float) -> float:
    """Serum anion gap ``Na - (Cl + HCO3)`` in mEq/L."""
    return _positive("sodium", sodium) - (_positive("chloride", chloride) + _positive("bicarbonate", bicarbonate))


def corrected_calcium(calcium: float, albumin: float, normal_albumin: float = 4.0) -> float:
    """Albumin-corrected calcium (Payne) ``Ca + 0.8 (4.0 - albumin)`` in mg/dL (albumin in g/dL)."""
    return _positive("calcium", calcium) + 0.8 * (_positive("normal_albumin", normal_albumin) - _positive("albumin", albumin))


def cockcroft_gault(age: float, weight_kg: float, creatinine: float, sex: str) -> float:
    """Creatinine clearance (Cockcroft-Gault) ``(140 - age) W / (72 Cr)``, times 0.85 if female, in mL/min."""
    a = _positive("age", age)
    if a >= 140:
        raise ValueError(f"age: must be below 140, got {a}")
    value = (140.0 - a) * _positive("weight_kg", weight_kg) / (72.0 * _positive("creatinine", creatinine))
    return value * (0.85 if _sex(sex) == "female" else 1.0)


def qtc_bazett(qt_ms: float, heart_rate: float) -> float:
    """Corrected QT (Bazett) ``QT / sqrt(RR)`` with ``RR = 60 / HR`` seconds; QT and QTc in ms."""
    rr = 60.0 / _positive("heart_rate", heart_rate)
    return _positive("qt_ms", qt_ms) / math.sqrt(rr)


def ideal_body_weight_devine(height_cm: float, sex: str) -> float:
    """Ideal body weight (Devine) ``50 | 45.5 + 2.3 (H_cm/2.54 - 60)`` in kg (50 for male, 45.5 for female)."""
    inches = _positive("height_cm", height_cm) / 2.54
    return (50.0 if _sex(sex) == "male" else 45.5) + 2.3 * (inches - 60.0)


def bsa_mosteller(height_cm: float, weight_kg: float) -> float:
    """Body-surface area (Mosteller) ``sqrt(H_cm W / 3600)`` in m^2."""
    return math.sqrt(_positive("height_cm", height_cm) * _positive("weight_kg", weight_kg) / 3600.0)


def ldl_friedewald(total_cholesterol: float, hdl: float, triglycerides: float) -> float:
    """LDL cholesterol (Friedewald) ``TC - HDL - TG/5`` in mg/dL."""
    return _positive("total_cholesterol", total_cholesterol) - _positive("hdl", hdl) - _positive("triglycerides", triglycerides) / 5.0


def serum_osmolality(sodium: float, glucose: float, bun: float) -> float:
    """Calculated serum osmolality ``2 Na + glucose/18 + BUN/2.8`` in mOsm/kg (glucose, BUN in mg/dL)."""
    return 2.0 * _positive("sodium", sodium) + _positive("glucose", glucose) / 18.0 + _positive("bun", bun) / 2.8


# ----------------------------------------------------------------------------- calculators


@dataclass(frozen=True)
class Calculator:
    """One calculator: how to draw its inputs, compute, phrase the question and show the working."""

    name: str
    question: str
    unit: str
    decimals: int
    sample: Callable[[np.random.Generator], dict]
    compute: Callable[[dict], float]
    working: Callable[[dict, float], str]  # formula, substituted values, arithmetic


def _fmt(x: float, d: int) -> str:
    return f"{x:.{d}f}"


def _sample_bmi(rng):
    return {"height_cm": int(rng.integers(150, 196)), "weight_kg": int(rng.integers(45, 131))}


def _work_bmi(v, ans):
    h = v["height_cm"] / 100
    return (
        f"BMI = weight / height^2 = {v['weight_kg']} / {h:.2f}^2 = {v['weight_kg']} / {h * h:.4f} = {ans:.1f} kg/m^2."
    )


def _sample_map(rng):
    dbp = int(rng.integers(50, 106))
    return {"sbp": dbp + int(rng.integers(25, 81)), "dbp": dbp}


def _work_map(v, ans):
    return (
        f"MAP = DBP + (SBP - DBP) / 3 = {v['dbp']} + ({v['sbp']} - {v['dbp']}) / 3 = "
        f"{v['dbp']} + {v['sbp'] - v['dbp']} / 3 = {ans:.1f} mmHg."
    )


def _sample_ag(rng):
    return {"sodium": int(rng.integers(128, 151)), "chloride": int(rng.integers(92, 113)), "bicarbonate": int(rng.integers(12, 31))}


def _work_ag(v, ans):
    return (
        f"AG = Na - (Cl + HCO3) = {v['sodium']} - ({v['chloride']} + {v['bicarbonate']}) = "
        f"{v['sodium']} - {v['chloride'] + v['bicarbonate']} = {ans:.0f} mEq/L."
    )


def _sample_ca(rng):
    return {"calcium": round(float(rng.uniform(7.0, 10.5)), 1), "albumin": round(float(rng.uniform(1.8, 4.5)), 1)}


def _work_ca(v, ans):
    return (
        f"Corrected Ca = Ca + 0.8 x (4.0 - albumin) = {v['calcium']:.1f} + 0.8 x (4.0 - {v['albumin']:.1f}) = "
        f"{v['calcium']:.1f} + {0.8 * (4.0 - v['albumin']):.2f} = {ans:.2f} mg/dL."
    )


def _sample_cg(rng):
    return {
        "age": int(rng.integers(25, 90)),
        "weight_kg": int(rng.integers(45, 121)),
        "creatinine": round(float(rng.uniform(0.6, 3.0)), 1),
        "sex": str(rng.choice(["male", "female"])),
    }


def _work_cg(v, ans):
    factor = " x 0.85" if v["sex"] == "female" else ""
    num = (140 - v["age"]) * v["weight_kg"]
    den = 72 * v["creatinine"]
    return (
        f"CrCl = (140 - age) x weight / (72 x Cr){factor} = (140 - {v['age']}) x {v['weight_kg']} / (72 x {v['creatinine']:.1f}){factor} = "
        f"{num} / {den:.1f}{factor} = {ans:.1f} mL/min."
    )


def _sample_qtc(rng):
    return {"qt_ms": int(rng.integers(320, 481)), "heart_rate": int(rng.integers(50, 121))}


def _work_qtc(v, ans):
    rr = 60 / v["heart_rate"]
    return (
        f"QTc = QT / sqrt(RR), RR = 60 / HR = 60 / {v['heart_rate']} = {rr:.3f} s. "
        f"QTc = {v['qt_ms']} / {math.sqrt(rr):.3f} = {ans:.0f} ms."
    )


def _sample_ibw(rng):
    return {"height_cm": int(rng.integers(155, 196)), "sex": str(rng.choice(["male", "female"]))}


def _work_ibw(v, ans):
    base = "50" if v["sex"] == "male" else "45.5"
    inches = v["height_cm"] / 2.54
    return (
        f"IBW = {base} + 2.3 x (height in inches - 60). Height = {v['height_cm']} / 2.54 = {inches:.2f} in. "
        f"IBW = {base} + 2.3 x {inches - 60:.2f} = {ans:.1f} kg."
    )


def _sample_bsa(rng):
    return {"height_cm": int(rng.integers(150, 196)), "weight_kg": int(rng.integers(45, 131))}


def _work_bsa(v, ans):
    prod = v["height_cm"] * v["weight_kg"]
    return (
        f"BSA = sqrt(height x weight / 3600) = sqrt({v['height_cm']} x {v['weight_kg']} / 3600) = "
        f"sqrt({prod / 3600:.3f}) = {ans:.2f} m^2."
    )


def _sample_ldl(rng):
    return {"total_cholesterol": int(rng.integers(140, 301)), "hdl": int(rng.integers(30, 81)), "triglycerides": int(rng.integers(60, 351))}


def _work_ldl(v, ans):
    return (
        f"LDL = TC - HDL - TG / 5 = {v['total_cholesterol']} - {v['hdl']} - {v['triglycerides']} / 5 = "
        f"{v['total_cholesterol']} - {v['hdl']} - {v['triglycerides'] / 5:.1f} = {ans:.1f} mg/dL."
    )


def _sample_osm(rng):
    return {"sodium": int(rng.integers(128, 151)), "glucose": int(rng.integers(70, 401)), "bun": int(rng.integers(7, 61))}


def _work_osm(v, ans):
    return (
        f"Osm = 2 x Na + glucose / 18 + BUN / 2.8 = 2 x {v['sodium']} + {v['glucose']} / 18 + {v['bun']} / 2.8 = "
        f"{2 * v['sodium']} + {v['glucose'] / 18:.2f} + {v['bun'] / 2.8:.2f} = {ans:.1f} mOsm/kg."
    )


CALCULATORS: dict[str, Calculator] = {
    c.name: c
    for c in [
        Calculator("bmi", "What is the BMI in kg/m^2?", "kg/m^2", 1, _sample_bmi,
                   lambda v: bmi(v["weight_kg"], v["height_cm"]), _work_bmi),
        Calculator("map", "What is the mean arterial pressure in mmHg?", "mmHg", 1, _sample_map,
                   lambda v: mean_arterial_pressure(v["sbp"], v["dbp"]), _work_map),
        Calculator("anion_gap", "What is the anion gap in mEq/L?", "mEq/L", 0, _sample_ag,
                   lambda v: anion_gap(v["sodium"], v["chloride"], v["bicarbonate"]), _work_ag),
        Calculator("corrected_calcium", "What is the albumin-corrected calcium in mg/dL?", "mg/dL", 2, _sample_ca,
                   lambda v: corrected_calcium(v["calcium"], v["albumin"]), _work_ca),
        Calculator("cockcroft_gault", "What is the Cockcroft-Gault creatinine clearance in mL/min?",
                   "mL/min", 1, _sample_cg, lambda v: cockcroft_gault(v["age"], v["weight_kg"], v["creatinine"], v["sex"]), _work_cg),
        Calculator("qtc_bazett", "What is the QTc (Bazett) in ms?", "ms", 0, _sample_qtc,
                   lambda v: qtc_bazett(v["qt_ms"], v["heart_rate"]), _work_qtc),
        Calculator("ibw_devine", "What is the ideal body weight (Devine) in kg?", "kg", 1, _sample_ibw,
                   lambda v: ideal_body_weight_devine(v["height_cm"], v["sex"]), _work_ibw),
        Calculator("bsa_mosteller", "What is the body-surface area (Mosteller) in m^2?", "m^2", 2,
                   _sample_bsa, lambda v: bsa_mosteller(v["height_cm"], v["weight_kg"]), _work_bsa),
        Calculator("ldl_friedewald", "What is the LDL cholesterol (Friedewald) in mg/dL?", "mg/dL", 1,
                   _sample_ldl, lambda v: ldl_friedewald(v["total_cholesterol"], v["hdl"], v["triglycerides"]), _work_ldl),
        Calculator("serum_osmolality", "What is the calculated serum osmolality in mOsm/kg?", "mOsm/kg", 1, _sample_osm,
                   lambda v: serum_osmolality(v["sodium"], v["glucose"], v["bun"]), _work_osm),
    ]
}

# ----------------------------------------------------------------------------- patient notes

_COMPLAINTS = [
    "fatigue and shortness of breath", "a routine check-up", "dizziness", "palpitations", "swelling of both ankles",
    "chest discomfort", "poorly controlled diabetes", "follow-up of chronic kidney disease", "nausea and vomiting",
    "a preoperative assessment", "headache", "generalised weakness",
]
_HISTORY = ["hypertension", "type 2 diabetes", "no past history", "asthma", "hypothyroidism", "atrial fibrillation", "COPD"]


def _note(rng: np.random.Generator, v: dict) -> str:
    """A short patient note stating the calculator's inputs among routine findings."""
    sex = v.get("sex") or str(rng.choice(["male", "female"]))
    age = v.get("age") or int(rng.integers(25, 90))
    person = "man" if sex == "male" else "woman"
    parts = [
        f"A {age}-year-old {person} ({rng.choice(_HISTORY)}) presents with {rng.choice(_COMPLAINTS)}."
    ]
    vitals = []
    if "sbp" in v:
        vitals.append(f"blood pressure {v['sbp']}/{v['dbp']} mmHg")
    if "heart_rate" in v:
        vitals.append(f"heart rate {v['heart_rate']} bpm")
    if "height_cm" in v:
        vitals.append(f"height {v['height_cm']} cm")
    if "weight_kg" in v:
        vitals.append(f"weight {v['weight_kg']} kg")
    if not vitals:  # a routine finding so every note has vitals
        vitals.append(f"temperature {rng.uniform(36.2, 37.9):.1f} C")
    parts.append("Exam: " + ", ".join(vitals) + ".")
    labs = []
    names = {
        "sodium": ("sodium", "mEq/L"), "chloride": ("chloride", "mEq/L"), "bicarbonate": ("bicarbonate", "mEq/L"),
        "calcium": ("calcium", "mg/dL"), "albumin": ("albumin", "g/dL"), "creatinine": ("creatinine", "mg/dL"),
        "total_cholesterol": ("total cholesterol", "mg/dL"), "hdl": ("HDL", "mg/dL"), "triglycerides": ("triglycerides", "mg/dL"),
        "glucose": ("glucose", "mg/dL"), "bun": ("BUN", "mg/dL"),
    }
    for key, (label, unit) in names.items():
        if key in v:
            value = v[key]
            labs.append(f"{label} {value:.1f} {unit}" if isinstance(value, float) else f"{label} {value} {unit}")
    if "qt_ms" in v:
        labs.append(f"ECG QT interval {v['qt_ms']} ms")
    if labs:
        parts.append("Results: " + ", ".join(labs) + ".")
    return " ".join(parts)


# ----------------------------------------------------------------------------- examples and splits


@dataclass(frozen=True)
class MedCalcExample:
    """One problem: the prompt (note + question), both response formats and the numeric answer."""

    calculator: str
    inputs: tuple  # sorted (name, value) pairs: the identity of the problem
    prompt: str
    response_cot: str
    response_label: str
    answer: float
    unit: str

    def response(self, fmt: str) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"fmt: must be one of {FORMATS}, got {fmt!r}")
        return self.response_cot if fmt == "cot" else self.response_label


def _make_example(rng: np.random.Generator, calc: Calculator) -> MedCalcExample:
    v = calc.sample(rng)
    exact = calc.compute(v)
    answer = round(exact, calc.decimals)
    answer_text = _fmt(answer, calc.decimals)
    note = _note(rng, v)
    prompt = f"{note}\n{calc.question}"
    cot = f"{calc.working(v, exact)}\nAnswer: {answer_text}"
    return MedCalcExample(
        calculator=calc.name,
        inputs=tuple(sorted(v.items())),
        prompt=prompt,
        response_cot=cot,
        response_label=f"Answer: {answer_text}",
        answer=float(answer),
        unit=calc.unit,
    )


def generate_examples(n: int, seed: int, calculators: tuple[str, ...] | None = None) -> list[MedCalcExample]:
    """``n`` distinct problems (distinct calculator+inputs), calculators cycled in a seeded order."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n: must be a non-negative int, got {n!r}")
    names = tuple(calculators) if calculators is not None else tuple(CALCULATORS)
    unknown = [c for c in names if c not in CALCULATORS]
    if unknown or not names:
        raise ValueError(f"calculators: unknown or empty {unknown or names}; known: {sorted(CALCULATORS)}")
    rng = np.random.default_rng(seed)
    seen: set = set()
    out: list[MedCalcExample] = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 100 * n + 100:
            raise ValueError(f"n: could not draw {n} distinct problems")
        calc = CALCULATORS[names[len(out) % len(names)]]
        ex = _make_example(rng, calc)
        key = (ex.calculator, ex.inputs)
        if key in seen:
            continue
        seen.add(key)
        out.append(ex)
    return out


@dataclass(frozen=True)
class DomainSplits:
    """Disjoint train and held-out problems (no calculator+inputs pair and no prompt in both)."""

    train: tuple[MedCalcExample, ...]
    heldout: tuple[MedCalcExample, ...]
    seed: int = field(default=0)


def make_splits(n_train: int, n_heldout: int, seed: int = 0, calculators: tuple[str, ...] | None = None) -> DomainSplits:
    """Draw ``n_train + n_heldout`` distinct problems from one seeded stream and split them.

    Problems are drawn calculator-by-calculator in turn, so both splits cover every calculator
    when they are at least as large as the number of calculators.
    """
    if not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_train: must be a positive int, got {n_train!r}")
    if not isinstance(n_heldout, int) or n_heldout < 1:
        raise ValueError(f"n_heldout: must be a positive int, got {n_heldout!r}")
    pool = generate_examples(n_train + n_heldout, seed, calculators)
    # interleave so that each split cycles through the calculators
    heldout_idx = set(np.random.default_rng(seed + 7919).permutation(len(pool))[:n_heldout].tolist())
    train = tuple(ex for i, ex in enumerate(pool) if i not in heldout_idx)
    heldout = tuple(ex for i, ex in enumerate(pool) if i in heldout_idx)
    return DomainSplits(train=train, heldout=heldout, seed=seed)


# ----------------------------------------------------------------------------- grading

_ANSWER_RE = re.compile(r"Answer:\s*(-?\d+(?:\.\d+)?)")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def parse_answer(text: str) -> float | None:
    """The number after the last ``Answer:``; failing that, the last number in ``text``; else None."""
    found = _ANSWER_RE.findall(text)
    if found:
        return float(found[-1])
    numbers = _NUMBER_RE.findall(text)
    return float(numbers[-1]) if numbers else None


def answer_is_correct(predicted: float | None, truth: float, rel_tol: float = 0.05, abs_tol: float = 0.0) -> bool:
    """``|predicted - truth| <= max(rel_tol |truth|, abs_tol)`` (MedCalc-Bench style tolerance)."""
    if rel_tol < 0 or abs_tol < 0:
        raise ValueError(f"rel_tol/abs_tol: must be non-negative, got {rel_tol}, {abs_tol}")
    if predicted is None or not math.isfinite(predicted):
        return False
    return abs(predicted - truth) <= max(rel_tol * abs(truth), abs_tol)
