"""The clinical-calculation domain from the MedCalc-Bench calculators (PyPI ``medcalc-bench``, module ``medcalc``).

Source: the calculator implementations of MedCalc-Bench (Khandekar et al., NeurIPS 2024 Datasets and Benchmarks,
https://github.com/ncbi-nlp/MedCalc-Bench), packaged under Apache-2.0 as ``medcalc-bench`` (pinned 1.7.0).

How the package exposes a calculator: each module ``medcalc.<name>`` has one public function whose name contains
``expla`` (``bmi_calculator_explanation``, ``bsa_calculator_explaination``, ...) taking one dict of inputs --
quantities as ``(value, unit)`` pairs, ``"sex"`` as ``"Male"``/``"Female"`` -- and returning
``{"Explanation": str, "Answer": float}``: the step-by-step working and the answer, rounded by the package's
``round_number`` (3 decimals above 0.001, else 3 significant digits). Units in the inputs are converted by the
package itself, and the conversion is part of the explanation.

The two response formats the paper compares (finding 2) are exactly these two outputs:

* ``"cot"``:   the calculator's ``Explanation``, followed by the line ``Answer: <Answer>``;
* ``"label"``: ``Answer: <Answer>`` alone.

(The closing answer line makes both formats end in the same parseable line; some explanations end in a unit
containing a digit, ``kg/m^2``, which would otherwise be read as the answer.)

Patients and notes. A *patient* is one seeded draw of every quantity below (age, sex, height, weight, vitals,
labs), in canonical units. An example pairs one patient with one calculator: the note states the calculator's
inputs -- each in a unit drawn from those the calculator accepts (weight in kg or lb, height in cm or in,
creatinine in mg/dL or umol/L, glucose in mg/dL or mmol/L, albumin in g/dL or g/L, ...) -- with one of several
phrasings and sentence templates, plus one to three distractor values (other labs and vitals of the same patient
that the calculator does not use). The calculator receives exactly the values and units the note shows, so the
answer is that of the note. Every patient is used by one example only, so train, held-out and unseen-calculator
examples never share a patient.

Which calculators. Every module of the package is imported; a module that fails to import is listed in
:data:`UNAVAILABLE` with its error, not raised (in 1.7.0: ``target_weight``, which imports the missing helper
``convert_height_to_target_unit_explanation``). Of the 53 that import, :data:`CALCULATORS` holds the 28 whose
inputs are numeric labs and vitals this module can generate reliably; :data:`EXCLUDED` names every other one
with the reason (scores built from yes/no findings, dates, drug conversions and multi-organ scores need a
generator of clinical findings, left for later).
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from dataclasses import dataclass
from typing import Callable

import numpy as np

from sft_tilt.harness.medcalc import DomainSplits, MedCalcExample

__all__ = [
    "PACKAGE",
    "CALCULATORS",
    "EXCLUDED",
    "UNAVAILABLE",
    "HELDOUT_CALCULATORS",
    "BenchCalculator",
    "calculator_function",
    "draw_patient",
    "generate_examples",
    "make_splits",
]

PACKAGE = "medcalc"


# ----------------------------------------------------------------------------- the package's calculators


def _discover() -> tuple[dict[str, Callable], dict[str, str]]:
    """``(functions, unavailable)``: each importable module's explanation function, and each module that failed
    to import with its error (data-driven: nothing is assumed about which ones fail)."""
    package = importlib.import_module(PACKAGE)
    functions: dict[str, Callable] = {}
    unavailable: dict[str, str] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.ispkg:
            continue
        try:
            module = importlib.import_module(f"{PACKAGE}.{info.name}")
        except Exception as exc:  # a broken module of the package is listed, never fatal
            unavailable[info.name] = f"{type(exc).__name__}: {exc}"
            continue
        found = [f for n, f in inspect.getmembers(module, inspect.isfunction)
                 if f.__module__ == module.__name__ and "expla" in n and not n.startswith("_")]
        if len(found) != 1:
            unavailable[info.name] = f"expected one explanation function, found {[f.__name__ for f in found]}"
            continue
        functions[info.name] = found[0]
    return functions, unavailable


_FUNCTIONS, UNAVAILABLE = _discover()


def calculator_function(name: str) -> Callable[[dict], dict]:
    """The package's explanation function of module ``medcalc.<name>`` (``inputs -> {"Explanation", "Answer"}``)."""
    if name not in _FUNCTIONS:
        why = UNAVAILABLE.get(name, "no such module in the package")
        raise ValueError(f"name: calculator {name!r} is not available ({why})")
    return _FUNCTIONS[name]


# ----------------------------------------------------------------------------- quantities of a patient


@dataclass(frozen=True)
class _Unit:
    """One unit a quantity may be shown in: its spelling in the note, in the package's inputs, and the factor
    ``shown = canonical * factor`` rounded to ``decimals``."""

    note: str
    package: str
    factor: float = 1.0
    decimals: int = 0


@dataclass(frozen=True)
class _Quantity:
    labels: tuple[str, ...]  # synonyms used in notes
    low: float
    high: float
    decimals: int  # of the canonical draw
    units: tuple[_Unit, ...]  # the first is canonical
    section: str  # "vitals" or "labs"


_MEQ = (_Unit("mEq/L", "mEq/L"), _Unit("mmol/L", "mmol/L"))
_MG_DL = (_Unit("mg/dL", "mg/dL"),)

QUANTITIES: dict[str, _Quantity] = {
    "height": _Quantity(("height",), 150, 195, 0, (_Unit("cm", "cm"), _Unit("in", "in", 1 / 2.54, 0)), "vitals"),
    "weight": _Quantity(("weight", "body weight"), 45, 130, 0, (_Unit("kg", "kg"), _Unit("lb", "lbs", 2.20462, 0)), "vitals"),
    "sys_bp": _Quantity(("systolic blood pressure",), 95, 180, 0, (_Unit("mmHg", "mm hg"),), "vitals"),
    "dia_bp": _Quantity(("diastolic blood pressure",), 50, 105, 0, (_Unit("mmHg", "mm hg"),), "vitals"),
    "heart_rate": _Quantity(("heart rate", "pulse"), 50, 120, 0, (_Unit("bpm", "beats per minute"),), "vitals"),
    "qt_interval": _Quantity(("QT interval", "QT"), 320, 480, 0, (_Unit("ms", "msec"),), "labs"),
    "sodium": _Quantity(("sodium", "Na"), 128, 150, 0, _MEQ, "labs"),
    "chloride": _Quantity(("chloride", "Cl"), 92, 112, 0, _MEQ, "labs"),
    "bicarbonate": _Quantity(("bicarbonate", "HCO3"), 12, 30, 0, _MEQ, "labs"),
    "albumin": _Quantity(("albumin",), 1.8, 4.5, 1, (_Unit("g/dL", "g/dL"), _Unit("g/L", "g/L", 10.0, 0)), "labs"),
    "calcium": _Quantity(("calcium", "total calcium"), 7.0, 10.5, 1, _MG_DL, "labs"),
    "creatinine": _Quantity(("creatinine", "serum creatinine"), 0.6, 3.0, 1,
                            (_Unit("mg/dL", "mg/dL"), _Unit("umol/L", "µmol/L", 88.4, 0)), "labs"),
    "bun": _Quantity(("BUN", "blood urea nitrogen"), 7, 60, 0, _MG_DL, "labs"),
    "glucose": _Quantity(("glucose", "blood glucose"), 70, 400, 0,
                         (_Unit("mg/dL", "mg/dL"), _Unit("mmol/L", "mmol/L", 1 / 18.016, 1)), "labs"),
    "total_cholestrol": _Quantity(("total cholesterol",), 140, 300, 0, _MG_DL, "labs"),
    "hdl_cholestrol": _Quantity(("HDL cholesterol", "HDL"), 30, 80, 0, _MG_DL, "labs"),
    "triglycerides": _Quantity(("triglycerides",), 60, 350, 0, _MG_DL, "labs"),
    "insulin": _Quantity(("fasting insulin", "insulin"), 2.0, 40.0, 1, (_Unit("uIU/mL", "µIU/mL"),), "labs"),
    "ast": _Quantity(("AST",), 12, 200, 0, (_Unit("U/L", "U/L"),), "labs"),
    "alt": _Quantity(("ALT",), 10, 200, 0, (_Unit("U/L", "U/L"),), "labs"),
    "platelet_count": _Quantity(("platelet count", "platelets"), 100000, 400000, -3, (_Unit("per uL", "µL"),), "labs"),
    "urine_sodium": _Quantity(("urine sodium",), 10, 150, 0, (_Unit("mEq/L", "mEq/L"),), "labs"),
    "urine_creatinine": _Quantity(("urine creatinine",), 20, 300, 0, _MG_DL, "labs"),
    # distractors only: no included calculator reads them
    "temperature": _Quantity(("temperature",), 36.2, 38.5, 1, (_Unit("C", "degrees celsius"),), "vitals"),
    "respiratory_rate": _Quantity(("respiratory rate",), 12, 26, 0, (_Unit("breaths/min", "breaths per minute"),), "vitals"),
    "oxygen_saturation": _Quantity(("oxygen saturation", "SpO2"), 90, 100, 0, (_Unit("%", "%"),), "vitals"),
    "potassium": _Quantity(("potassium", "K"), 3.2, 5.6, 1, _MEQ, "labs"),
    "hemoglobin": _Quantity(("hemoglobin",), 9.0, 16.5, 1, (_Unit("g/dL", "g/dL"),), "labs"),
}


def draw_patient(rng: np.random.Generator) -> dict:
    """One patient: ``age`` (years), ``sex`` and every quantity of :data:`QUANTITIES` in its canonical unit."""
    patient = {"age": int(rng.integers(25, 86)), "sex": str(rng.choice(["Male", "Female"]))}
    for name, q in QUANTITIES.items():
        patient[name] = _rounded(float(rng.uniform(q.low, q.high)), q.decimals)
    if patient["dia_bp"] >= patient["sys_bp"] - 20:
        patient["dia_bp"] = patient["sys_bp"] - int(rng.integers(25, 60))
    return patient


def _rounded(x: float, decimals: int):
    value = round(x, decimals)
    return int(value) if decimals <= 0 else float(value)


# ----------------------------------------------------------------------------- the included calculators


@dataclass(frozen=True)
class BenchCalculator:
    """One included calculator: the package module, its question and the patient quantities it reads
    (``age`` and ``sex`` included when it reads them)."""

    name: str
    question: str
    unit: str
    inputs: tuple[str, ...]

    def compute(self, inputs: dict) -> dict:
        """The package's ``{"Explanation", "Answer"}`` for these inputs."""
        return calculator_function(self.name)(dict(inputs))


_INCLUDED = [
    BenchCalculator("bmi_calculator", "What is the patient's body mass index (BMI) in kg/m^2?", "kg/m^2", ("weight", "height")),
    BenchCalculator("bsa_calculator", "What is the patient's body surface area in m^2?", "m^2", ("weight", "height")),
    BenchCalculator("mean_arterial_pressure", "What is the patient's mean arterial pressure in mm Hg?", "mm Hg", ("sys_bp", "dia_bp")),
    BenchCalculator("anion_gap", "What is the patient's anion gap in mEq/L?", "mEq/L", ("sodium", "chloride", "bicarbonate")),
    BenchCalculator("delta_gap", "What is the patient's delta gap in mEq/L?", "mEq/L", ("sodium", "chloride", "bicarbonate")),
    BenchCalculator("albumin_corrected_anion", "What is the patient's albumin-corrected anion gap in mEq/L?", "mEq/L",
                    ("sodium", "chloride", "bicarbonate", "albumin")),
    BenchCalculator("albumin_corrected_delta_gap", "What is the patient's albumin-corrected delta gap in mEq/L?", "mEq/L",
                    ("sodium", "chloride", "bicarbonate", "albumin")),
    BenchCalculator("albumin_delta_ratio", "What is the patient's albumin-corrected delta ratio?", "",
                    ("sodium", "chloride", "bicarbonate", "albumin")),
    BenchCalculator("calcium_correction", "What is the patient's albumin-corrected calcium in mg/dL?", "mg/dL", ("calcium", "albumin")),
    BenchCalculator("creatinine_clearance", "What is the patient's creatinine clearance (Cockcroft-Gault) in mL/min?", "mL/min",
                    ("age", "sex", "weight", "height", "creatinine")),
    BenchCalculator("mdrd_gfr", "What is the patient's GFR by the MDRD equation in mL/min/1.73 m^2?", "mL/min/1.73 m^2",
                    ("age", "sex", "creatinine")),
    BenchCalculator("ckd_epi_2021_creatinine", "What is the patient's GFR by the 2021 CKD-EPI creatinine equation in mL/min/1.73 m^2?",
                    "mL/min/1.73 m^2", ("age", "sex", "creatinine")),
    BenchCalculator("qt_calculator_bazett", "What is the patient's corrected QT interval (Bazett) in msec?", "msec", ("heart_rate", "qt_interval")),
    BenchCalculator("qt_calculator_fredericia", "What is the patient's corrected QT interval (Fridericia) in msec?", "msec",
                    ("heart_rate", "qt_interval")),
    BenchCalculator("qt_calculator_framingham", "What is the patient's corrected QT interval (Framingham) in msec?", "msec",
                    ("heart_rate", "qt_interval")),
    BenchCalculator("qt_calculator_hodges", "What is the patient's corrected QT interval (Hodges) in msec?", "msec", ("heart_rate", "qt_interval")),
    BenchCalculator("qt_calculator_rautaharju", "What is the patient's corrected QT interval (Rautaharju) in msec?", "msec",
                    ("heart_rate", "qt_interval")),
    BenchCalculator("ideal_body_weight", "What is the patient's ideal body weight in kg?", "kg", ("height", "sex")),
    BenchCalculator("adjusted_body_weight", "What is the patient's adjusted body weight in kg?", "kg", ("weight", "height", "sex")),
    BenchCalculator("maintenance_fluid_calc", "What is the patient's maintenance fluid rate in mL/hr?", "mL/hr", ("weight",)),
    BenchCalculator("ldl_calculated", "What is the patient's LDL cholesterol in mg/dL?", "mg/dL",
                    ("total_cholestrol", "hdl_cholestrol", "triglycerides")),
    BenchCalculator("sOsm", "What is the patient's calculated serum osmolality in mOsm/kg?", "mOsm/kg", ("sodium", "bun", "glucose")),
    BenchCalculator("sch", "What is the patient's sodium corrected for hyperglycemia in mEq/L?", "mEq/L", ("sodium", "glucose")),
    BenchCalculator("homa_ir", "What is the patient's HOMA-IR score?", "", ("insulin", "glucose")),
    BenchCalculator("fibrosis_4", "What is the patient's Fibrosis-4 (FIB-4) index?", "", ("age", "ast", "alt", "platelet_count")),
    BenchCalculator("free_water_deficit", "What is the patient's free water deficit in L?", "L", ("age", "sex", "weight", "sodium")),
    BenchCalculator("compute_fena", "What is the patient's fractional excretion of sodium (FENa) in %?", "%",
                    ("sodium", "creatinine", "urine_sodium", "urine_creatinine")),
]

#: The included calculators (package module name -> calculator), those of them the package provides.
CALCULATORS: dict[str, BenchCalculator] = {c.name: c for c in _INCLUDED if c.name in _FUNCTIONS}

_WHY = {
    "findings": "a score built from yes/no clinical findings (history, symptoms, exam signs); needs a findings generator",
    "dates": "dates (menstrual period, cycle length), not labs or vitals",
    "drugs": "drug and dose conversions, not labs or vitals",
    "multi-organ": "many inputs across organ systems incl. ventilation, GCS, drugs; needs a consistent ICU-patient generator",
}
_EXCLUDED_REASONS = {
    "apache_ii": "multi-organ", "sofa": "multi-organ", "psi_score": "multi-organ", "framingham_risk_score": "findings",
    "caprini_score": "findings", "cardiac_risk_index": "findings", "cci": "findings", "centor_score": "findings",
    "cha2ds2_vasc_score": "findings", "child_pugh_score": "findings", "curb_65": "findings", "feverpain": "findings",
    "glasgow_bleeding_score": "findings", "glasgow_coma_score": "findings", "has_bled_score": "findings",
    "heart_score": "findings", "perc_rule": "findings", "sirs_criteria": "findings", "wells_criteria_dvt": "findings",
    "wells_criteria_pe": "findings", "meldna": "findings", "conception_date": "dates", "estimated_due_date": "dates",
    "gestational_age": "dates", "mme": "drugs", "steroid_conversion": "drugs",
}

#: Importable calculators left out of the generated domain, with the reason.
EXCLUDED: dict[str, str] = {name: _WHY.get(_EXCLUDED_REASONS.get(name, ""), "not yet reviewed for generation")
                            for name in _FUNCTIONS if name not in CALCULATORS}

#: Calculators kept out of training by default: the unseen-calculator evaluation set of :func:`make_splits`.
HELDOUT_CALCULATORS = tuple(c for c in ("qt_calculator_rautaharju", "albumin_delta_ratio", "ckd_epi_2021_creatinine")
                            if c in CALCULATORS)


# ----------------------------------------------------------------------------- notes

_COMPLAINTS = [
    "fatigue and shortness of breath", "a routine check-up", "dizziness", "palpitations", "swelling of both ankles",
    "chest discomfort", "poorly controlled diabetes", "follow-up of chronic kidney disease", "nausea and vomiting",
    "a preoperative assessment", "headache", "generalised weakness", "abdominal pain", "a fall at home",
]
_HISTORY = ["hypertension", "type 2 diabetes", "no past history", "asthma", "hypothyroidism", "atrial fibrillation", "COPD"]
_OPENERS = [
    "A {age}-year-old {person} with a history of {history} presents with {complaint}.",
    "{Person}, {age} years old ({history}), is seen for {complaint}.",
    "We saw a {age}-year-old {person} today for {complaint}; past history: {history}.",
    "Patient: {age}-year-old {person}. Reason for visit: {complaint}. History: {history}.",
]
_PHRASES = ["{label} {value} {unit}", "{label} of {value} {unit}", "{label} was {value} {unit}", "{label}: {value} {unit}"]
_SECTIONS = {"vitals": ["On examination: {items}.", "Vitals: {items}.", "Exam showed {items}."],
             "labs": ["Labs: {items}.", "Laboratory results: {items}.", "Blood tests showed {items}."]}


def _show(rng: np.random.Generator, name: str, canonical) -> tuple[str, tuple]:
    """The phrase stating one quantity in a drawn unit, and the ``(value, unit)`` the package receives."""
    q = QUANTITIES[name]
    unit = q.units[int(rng.integers(len(q.units)))]
    value = _rounded(canonical * unit.factor, unit.decimals if unit.factor != 1.0 else q.decimals)
    label = q.labels[int(rng.integers(len(q.labels)))]
    phrase = _PHRASES[int(rng.integers(len(_PHRASES)))].format(label=label, value=value, unit=unit.note)
    if name == "qt_interval":
        phrase = "ECG " + phrase
    return phrase, (value, unit.package)


def _note_and_inputs(rng: np.random.Generator, patient: dict, calc: BenchCalculator) -> tuple[str, dict]:
    sex, age = patient["sex"], patient["age"]
    opener = _OPENERS[int(rng.integers(len(_OPENERS)))]
    person = "man" if sex == "Male" else "woman"
    text = opener.format(age=age, person=person, Person=("A man" if sex == "Male" else "A woman"),
                         history=rng.choice(_HISTORY), complaint=rng.choice(_COMPLAINTS))
    inputs: dict = {}
    if "sex" in calc.inputs:
        inputs["sex"] = sex
    if "age" in calc.inputs:
        inputs["age"] = (age, "years")
    needed = [n for n in calc.inputs if n not in ("age", "sex")]
    others = [n for n in QUANTITIES if n not in needed]
    distractors = [others[i] for i in rng.choice(len(others), size=int(rng.integers(1, 4)), replace=False)]
    shown = needed + distractors
    order = rng.permutation(len(shown))
    items: dict[str, list[str]] = {"vitals": [], "labs": []}
    joint_bp = "sys_bp" in shown and "dia_bp" in shown and bool(rng.integers(2))
    for i in order:
        name = shown[int(i)]
        if joint_bp and name in ("sys_bp", "dia_bp"):
            if name == "sys_bp":  # both pressures in one phrase, where the systolic one falls
                items["vitals"].append(f"blood pressure {patient['sys_bp']}/{patient['dia_bp']} mmHg")
            if name in needed:
                inputs[name] = (patient[name], "mm hg")
            continue
        phrase, pair = _show(rng, name, patient[name])
        items[QUANTITIES[name].section].append(phrase)
        if name in needed:
            inputs[name] = pair
    sentences = [text]
    for section in ("vitals", "labs"):
        if items[section]:
            template = _SECTIONS[section][int(rng.integers(len(_SECTIONS[section])))]
            sentences.append(template.format(items=", ".join(items[section])))
    return " ".join(sentences), inputs


def _make_example(rng: np.random.Generator, patient_id: int, calc: BenchCalculator) -> MedCalcExample | None:
    """One example, or None when the calculator is undefined at this patient (a zero denominator: e.g. the delta
    ratio at albumin 4.0 g/dL); the caller draws another patient from the same stream."""
    patient = draw_patient(rng)
    note, inputs = _note_and_inputs(rng, patient, calc)
    try:
        out = calc.compute(inputs)
        answer = float(out["Answer"])
    except (ZeroDivisionError, ValueError, OverflowError):
        return None
    if not math.isfinite(answer):
        return None
    answer_text = str(out["Answer"])
    return MedCalcExample(
        calculator=calc.name,
        inputs=tuple(sorted((k, v) for k, v in inputs.items())),
        prompt=f"{note}\n{calc.question}",
        response_cot=f"{out['Explanation'].strip()}\nAnswer: {answer_text}",
        response_label=f"Answer: {answer_text}",
        answer=answer,
        unit=calc.unit,
        patient=patient_id,
    )


def _check_names(argument: str, names) -> tuple[str, ...]:
    names = tuple(names)
    unknown = [c for c in names if c not in CALCULATORS]
    if unknown or not names:
        raise ValueError(f"{argument}: unknown or empty {unknown or list(names)}; included: {sorted(CALCULATORS)}"
                         + (f"; unavailable in the package: {sorted(UNAVAILABLE)}" if set(unknown) & set(UNAVAILABLE) else ""))
    return names


def generate_examples(n: int, seed: int, calculators: tuple[str, ...] | None = None, first_patient: int = 0) -> list[MedCalcExample]:
    """``n`` examples, one new patient each (patients ``first_patient, first_patient + 1, ...`` of the seeded
    stream), calculators cycled in the given order; prompts are distinct (a repeated prompt is redrawn)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: must be a non-negative int, got {n!r}")
    names = _check_names("calculators", calculators if calculators is not None else CALCULATORS)
    out: list[MedCalcExample] = []
    seen: set[str] = set()
    for i in range(n):
        patient_id = first_patient + i
        rng = np.random.default_rng([seed, patient_id])
        for _ in range(100):
            ex = _make_example(rng, patient_id, CALCULATORS[names[i % len(names)]])
            if ex is not None and ex.prompt not in seen:
                break
        else:
            raise ValueError(f"n: could not draw {n} distinct, defined examples of {names}")
        seen.add(ex.prompt)
        out.append(ex)
    return out


def make_splits(n_train: int, n_heldout: int, seed: int = 0, calculators: tuple[str, ...] | None = None,
                heldout_calculators: tuple[str, ...] | None = None, n_unseen: int = 0) -> DomainSplits:
    """Train and held-out examples of ``calculators`` and ``n_unseen`` examples of ``heldout_calculators``, every
    example with its own patient (train: patients ``0..n_train-1``, held-out and unseen after them).

    ``calculators`` defaults to every included calculator except ``heldout_calculators`` (default
    :data:`HELDOUT_CALCULATORS`); the two must not overlap, so no unseen calculator is ever trained on.
    Calculators are cycled, so both splits cover every calculator when they are at least as large as their number.
    """
    if not isinstance(n_train, int) or n_train < 1:
        raise ValueError(f"n_train: must be a positive int, got {n_train!r}")
    if not isinstance(n_heldout, int) or n_heldout < 1:
        raise ValueError(f"n_heldout: must be a positive int, got {n_heldout!r}")
    if not isinstance(n_unseen, int) or n_unseen < 0:
        raise ValueError(f"n_unseen: must be a non-negative int, got {n_unseen!r}")
    unseen_names = HELDOUT_CALCULATORS if heldout_calculators is None else tuple(heldout_calculators)
    if unseen_names:
        _check_names("heldout_calculators", unseen_names)
    names = (tuple(c for c in CALCULATORS if c not in unseen_names) if calculators is None
             else _check_names("calculators", calculators))
    if set(names) & set(unseen_names):
        raise ValueError(f"heldout_calculators: {sorted(set(names) & set(unseen_names))} are also in calculators "
                         "(an unseen calculator must never be trained on)")
    if n_unseen and not unseen_names:
        raise ValueError("n_unseen: no heldout_calculators to draw from")
    # one stream of patients: a calculator cycle restarts with each split, so both cover every calculator
    train = generate_examples(n_train, seed, names, first_patient=0)
    heldout = generate_examples(n_heldout, seed, names, first_patient=n_train)
    unseen = generate_examples(n_unseen, seed, unseen_names, first_patient=n_train + n_heldout) if n_unseen else []
    prompts = [e.prompt for e in train + heldout + unseen]
    if len(set(prompts)) != len(prompts):
        raise ValueError("seed: two splits drew the same prompt; choose another seed")
    return DomainSplits(train=tuple(train), heldout=tuple(heldout), seed=seed, unseen=tuple(unseen))
