"""The public MedCalc-Bench test set (real patient notes) as held-out sets of the generated domain's calculators.

Source: MedCalc-Bench (Khandekar et al., *MedCalc-Bench: Evaluating Large Language Models for Medical
Calculations*, NeurIPS 2024 Datasets and Benchmarks; https://github.com/ncbi-nlp/MedCalc-Bench), file
``dataset/test_data.csv`` at commit ``0abf68500d995c535bc68fb4246cb7f726ef3e94``: 1,047 rows of 55 calculators,
about 20 per calculator, with patient notes extracted from published case reports or written from templates, each
with a question, the ground-truth explanation and answer, and the answer's limits. Licence CC-BY-SA 4.0 (the notes of
PMC-Patients are CC-BY-SA; the other sources are MIT or public). The toolkit does not ship the file: a user downloads
it (:data:`TEST_SET_URL`) and puts it at :func:`public_test_set_path` (``$SFT_MEDCALC_BENCH_TEST``, else
``medcalc_bench/test_data.csv`` in the user data folder). Its SHA-256 is fixed here (:data:`TEST_SET_SHA256`), so a
preset that scores it names the same runs on every machine, with or without the file; a computation that needs the
file and does not find it says which file it lacks and where to get it.

Rows become problems as every MedCalc-Bench CSV does (:mod:`sft_tilt.harness.data_files`: prompt = note + question,
chain-of-thought target = explanation + ``Answer: <answer>``, label target = ``Answer: <answer>``). The test set names
calculators by ``Calculator ID``; :data:`BENCH_CALCULATOR_IDS` maps the generated domain's calculator modules
(:mod:`sft_tilt.harness.medcalc_bench`) to them, so a run scores the real rows of the calculators it trains on and,
separately, of its unseen calculators. Real notes differ from the generated ones in length, wording and the
distractors they contain: the gap between the two is what tells whether a gain on generated problems transfers.
"""

from __future__ import annotations

import os
from pathlib import Path

from sft_tilt.harness.data_files import DataFile
from sft_tilt.harness.medcalc import MedCalcExample

__all__ = ["TEST_SET_SHA256", "TEST_SET_URL", "BENCH_CALCULATOR_IDS", "public_test_set_path", "public_test_set_file",
           "missing_test_set_message", "real_calculator_groups", "real_rows"]

#: SHA-256 of ``dataset/test_data.csv`` at the commit named in the module docstring (3,997,932 bytes).
TEST_SET_SHA256 = "1c5979b3e75d67f53a46c19dd4c827ebff25e866d9bf05a1a80f1b9e3272d09a"
#: Where the file can be downloaded (the commit is fixed, so the bytes are).
TEST_SET_URL = ("https://raw.githubusercontent.com/ncbi-nlp/MedCalc-Bench/"
                "0abf68500d995c535bc68fb4246cb7f726ef3e94/dataset/test_data.csv")

#: The test set's ``Calculator ID`` of each calculator module of the generated domain (names as the test set spells
#: them: ``bmi_calculator`` is "Body Mass Index (BMI)", ``sch`` is "Sodium Correction for Hyperglycemia", ...).
BENCH_CALCULATOR_IDS: dict[str, str] = {
    "creatinine_clearance": "2",  # Creatinine Clearance (Cockcroft-Gault Equation)
    "ckd_epi_2021_creatinine": "3",  # CKD-EPI Equations for Glomerular Filtration Rate
    "mean_arterial_pressure": "5",  # Mean Arterial Pressure (MAP)
    "bmi_calculator": "6",  # Body Mass Index (BMI)
    "calcium_correction": "7",  # Calcium Correction for Hypoalbuminemia
    "mdrd_gfr": "9",  # MDRD GFR Equation
    "ideal_body_weight": "10",  # Ideal Body Weight
    "qt_calculator_bazett": "11",  # QTc Bazett Calculator
    "fibrosis_4": "19",  # Fibrosis-4 (FIB-4) Index for Liver Fibrosis
    "maintenance_fluid_calc": "22",  # Maintenance Fluids Calculations
    "sch": "26",  # Sodium Correction for Hyperglycemia
    "sOsm": "30",  # Serum Osmolality
    "homa_ir": "31",  # HOMA-IR (Homeostatic Model Assessment for Insulin Resistance)
    "free_water_deficit": "38",  # Free Water Deficit
    "anion_gap": "39",  # Anion Gap
    "compute_fena": "40",  # Fractional Excretion of Sodium (FENa)
    "ldl_calculated": "44",  # LDL Calculated
    "qt_calculator_fredericia": "56",  # QTc Fridericia Calculator
    "qt_calculator_framingham": "57",  # QTc Framingham Calculator
    "qt_calculator_hodges": "58",  # QTc Hodges Calculator
    "qt_calculator_rautaharju": "59",  # QTc Rautaharju Calculator
    "bsa_calculator": "60",  # Body Surface Area Calculator
    "adjusted_body_weight": "62",  # Adjusted Body Weight
    "delta_gap": "63",  # Delta Gap
    "albumin_corrected_anion": "65",  # Albumin Corrected Anion Gap
    "albumin_corrected_delta_gap": "66",  # Albumin Corrected Delta Gap
    "albumin_delta_ratio": "67",  # Albumin Corrected Delta Ratio
}

ENVIRONMENT_VARIABLE = "SFT_MEDCALC_BENCH_TEST"


def public_test_set_path() -> Path:
    """``$SFT_MEDCALC_BENCH_TEST`` if set, else ``medcalc_bench/test_data.csv`` in the user data folder
    (``platformdirs.user_data_dir("sft-tilt")``)."""
    override = os.environ.get(ENVIRONMENT_VARIABLE)
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("sft-tilt")) / "medcalc_bench" / "test_data.csv"


def public_test_set_file() -> DataFile:
    """The test set as a :class:`DataFile` with its known SHA-256 (the file is not read: a configuration names it
    on a machine without it; reading it checks the hash)."""
    return DataFile(path=str(public_test_set_path()), sha256=TEST_SET_SHA256)


def missing_test_set_message(path) -> str:
    """What a computation that needs the test set says when ``path`` does not hold it."""
    return (f"real_data: {path} not found: it is the MedCalc-Bench test set (test_data.csv, SHA-256 {TEST_SET_SHA256}, "
            f"CC-BY-SA 4.0), downloadable from {TEST_SET_URL}; put it there or set {ENVIRONMENT_VARIABLE} to its path")


def real_calculator_groups(data) -> dict[str, tuple[str, ...]]:
    """The calculators whose real rows a data configuration scores: ``{"real": the trained ones, "real_unseen": the
    unseen ones}``, the second only when ``n_unseen`` draws unseen problems; empty without ``real_data``."""
    if data.real_data is None:
        return {}
    from sft_tilt.harness.medcalc_bench import CALCULATORS, HELDOUT_CALCULATORS

    unseen = tuple(data.unseen_calculators or HELDOUT_CALCULATORS)
    trained = tuple(data.calculators or (c for c in CALCULATORS if c not in unseen))
    return {"real": trained, **({"real_unseen": unseen} if data.n_unseen else {})}


def real_rows(examples: list[MedCalcExample], calculators: tuple[str, ...], n_per_calculator: int,
              fits) -> list[MedCalcExample]:
    """For each of ``calculators`` (module names) in order, the first ``n_per_calculator`` rows of ``examples``
    (file order) with its ``Calculator ID`` for which ``fits(example)`` is true (a row too long for the scoring
    window is passed over, and the choice does not depend on the response format: the caller measures the longer,
    chain-of-thought, text). ValueError naming the calculator when fewer rows fit."""
    if isinstance(n_per_calculator, bool) or not isinstance(n_per_calculator, int) or n_per_calculator < 1:
        raise ValueError(f"n_per_calculator: must be a positive int, got {n_per_calculator!r}")
    unknown = [c for c in calculators if c not in BENCH_CALCULATOR_IDS]
    if unknown:
        raise ValueError(f"calculators: {unknown} have no MedCalc-Bench test rows (known: {sorted(BENCH_CALCULATOR_IDS)})")
    out: list[MedCalcExample] = []
    for name in calculators:
        wanted = BENCH_CALCULATOR_IDS[name]
        rows = [e for e in examples if e.calculator == wanted]
        chosen = [e for e in rows if fits(e)][:n_per_calculator]
        if len(chosen) < n_per_calculator:
            raise ValueError(f"n_real: {name} (Calculator ID {wanted}) has {len(rows)} rows, {len(chosen)} of them "
                             f"within the scoring window; asked for {n_per_calculator}")
        out.extend(chosen)
    return out
