"""Real MedCalc-Bench rows scored beside the generated problems, and the per-row measurements of every evaluation set
(the evaluation sample's items, for intervals that resample them)."""

import csv
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sft_tilt.harness.data_config import DataConfig
from sft_tilt.harness.data_files import DataFile
from sft_tilt.harness.medcalc import MedCalcExample
from sft_tilt.harness.medcalc_bench import CALCULATORS
from sft_tilt.harness.medcalc_bench_test import (BENCH_CALCULATOR_IDS, TEST_SET_SHA256, TEST_SET_URL,
                                                 missing_test_set_message, real_rows, public_test_set_file)
from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")


def test_every_generated_calculator_has_one_test_set_id():
    assert set(BENCH_CALCULATOR_IDS) == set(CALCULATORS)
    ids = list(BENCH_CALCULATOR_IDS.values())
    assert len(set(ids)) == len(ids) and all(i.isdigit() for i in ids)


def _example(calculator: str, prompt: str) -> MedCalcExample:
    return MedCalcExample(calculator=calculator, inputs=(("line", prompt),), prompt=prompt, response_cot="x\nAnswer: 1",
                          response_label="Answer: 1", answer=1.0, unit="")


def test_real_rows_takes_the_first_rows_that_fit_per_calculator_in_the_asked_order():
    rows = [_example("6", "a"), _example("5", "b"), _example("6", "long c"), _example("6", "d"), _example("5", "e"),
            _example("6", "f")]
    fits = lambda e: not e.prompt.startswith("long")  # noqa: E731
    got = real_rows(rows, ("bmi_calculator", "mean_arterial_pressure"), 2, fits)
    assert [e.prompt for e in got] == ["a", "d", "b", "e"]


@pytest.mark.parametrize("calculators, n, match", [
    (("bmi_calculator",), 3, r"n_real: bmi_calculator \(Calculator ID 6\) has 3 rows, 2 of them"),
    (("no_such",), 1, "calculators: .*no_such"),
    (("bmi_calculator",), 0, "n_per_calculator: must be a positive int"),
])
def test_real_rows_refuses_what_it_cannot_give(calculators, n, match):
    rows = [_example("6", "a"), _example("6", "long b"), _example("6", "c")]
    with pytest.raises(ValueError, match=match):
        real_rows(rows, calculators, n, lambda e: not e.prompt.startswith("long"))


def test_the_test_set_is_named_by_its_hash_and_located_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_MEDCALC_BENCH_TEST", str(tmp_path / "elsewhere.csv"))
    f = public_test_set_file()
    assert f.path == str(tmp_path / "elsewhere.csv") and f.sha256 == TEST_SET_SHA256
    message = missing_test_set_message(f.path)
    assert f.path in message and TEST_SET_URL in message and "SFT_MEDCALC_BENCH_TEST" in message


def test_later_data_fields_stay_out_of_the_description_at_their_defaults(tmp_path):
    plain = DataConfig()
    assert not {"real_data", "n_real", "seq_len_real"} & set(plain.describe())
    from sft_tilt.store import canonical

    assert not {"real_data", "n_real", "seq_len_real"} & set(canonical(plain))
    real = DataConfig(real_data=DataFile(str(tmp_path / "t.csv"), "0" * 64), n_real=2)
    assert real.describe()["n_real"] == 2 and real.describe()["real_data"]["sha256"] == "0" * 64
    with pytest.raises(ValueError, match="n_real"):
        DataConfig(n_real=2)
    with pytest.raises(ValueError, match="n_real"):
        DataConfig(real_data=DataFile(str(tmp_path / "t.csv"), "0" * 64))


_NOTES = ["A 60-year-old man, weight 70 kg, height 175 cm.", "A 45-year-old woman, weight 60 kg, height 160 cm.",
          "A 30-year-old man <|im_end|> weighing 80 kg, 180 cm tall.", "Mean arterial pressure: BP 120/80 mmHg.",
          "BP 140/90 mmHg in a 50-year-old man.", "Unrelated row of another calculator."]


def _write_test_set(path):
    ids = [BENCH_CALCULATOR_IDS["bmi_calculator"]] * 3 + [BENCH_CALCULATOR_IDS["mean_arterial_pressure"]] * 2 + ["28"]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["Row Number", "Calculator ID", "Calculator Name", "Category", "Output Type", "Note ID",
                    "Note Type", "Patient Note", "Question", "Relevant Entities", "Ground Truth Answer", "Lower Limit",
                    "Upper Limit", "Ground Truth Explanation"])
        for i, (note, cid) in enumerate(zip(_NOTES, ids)):
            w.writerow([i + 1, cid, "name", "lab", "decimal", i, "Extracted", note, "What is the value?", "{}",
                        f"{20.5 + i}", f"{19.5 + i}", f"{21.5 + i}", f"Working for row {i}: {20.5 + i}."])
    return path


def _independent_row_nll(params, config, tokens, mask):
    """Summed NLL of each row's masked targets by a plain full-vocabulary forward pass (no supervised-slot path)."""
    from sft_tilt.lm.model import forward

    logits = forward(params, config, jnp.asarray(tokens))
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float64), axis=-1)
    target = jnp.take_along_axis(logp, jnp.asarray(tokens)[:, 1:, None], axis=-1)[..., 0]
    m = np.asarray(mask)[:, 1:].astype(np.float64)
    return -(np.asarray(target) * m).sum(axis=1), m.sum(axis=1)


def test_real_rows_and_per_row_measures_on_the_tiny_model(tmp_path):
    from sft_tilt.harness.session import Session, UnusableInput

    csv_path = _write_test_set(tmp_path / "test_data.csv")
    (tmp_path / "env").mkdir()
    with tiny_harness_env(tmp_path / "env") as env:
        preset = env["preset"]
        data = dataclasses.replace(preset.data, calculators=("bmi_calculator", "mean_arterial_pressure"),
                                   real_data=DataFile.from_path(csv_path), n_real=2, seq_len_real=160, n_choice=4)
        session = Session(env["model"], preset.tokenizer, data)
        assert [e.prompt.split("\n")[0] for e in session.real_rows["real"]] == _NOTES[:2] + _NOTES[3:5]
        assert "real_unseen" not in session.real  # no unseen calculators in this configuration
        ev = session.evaluate(session.params, "cot")
        items = ev["items"]
        # each set's mean NLL is its rows' summed NLL over their tokens, and the rows are what an independent
        # forward pass gives
        for name, enc, value in [("domain", session.heldout["cot"], ev["domain_loss"]),
                                 ("real", session.real["real"]["cot"], ev["real"]["loss"])]:
            nll, tokens = _independent_row_nll(session.params, session.config, enc.tokens, enc.loss_mask)
            np.testing.assert_allclose(items[name]["nll"], nll, rtol=2e-5)
            np.testing.assert_array_equal(items[name]["tokens"], tokens)
            assert sum(items[name]["nll"]) / sum(items[name]["tokens"]) == pytest.approx(value, rel=1e-12)
            assert set(items[name]["answer_correct"]) <= {0, 1} and len(items[name]["top1"]) == enc.n
        for name, value in ev["general"].items():
            rows = items["general"][name]
            assert sum(rows["nll"]) / sum(rows["tokens"]) == pytest.approx(value, rel=1e-12)
            assert sum(rows["top1"]) / sum(rows["tokens"]) == pytest.approx(ev["general_top1"][name], rel=1e-12)
        assert len(items["choice"]["correct"]) == 4
        assert np.mean(items["choice"]["correct"]) == pytest.approx(ev["choice"]["accuracy"])

        narrow = session.evaluate(session.params, "cot", wide=False)
        assert "choice" not in narrow and "real" not in narrow
        assert set(narrow["items"]) == {"domain", "general"}
        assert narrow["domain_loss"] == ev["domain_loss"] and narrow["general"] == ev["general"]

        missing = dataclasses.replace(data, real_data=DataFile(str(tmp_path / "absent.csv"), TEST_SET_SHA256))
        with pytest.raises(UnusableInput, match="absent.csv not found: it is the MedCalc-Bench test set"):
            Session(env["model"], preset.tokenizer, missing)
        too_many = dataclasses.replace(data, n_real=3)
        with pytest.raises(UnusableInput, match="n_real: mean_arterial_pressure"):
            Session(env["model"], preset.tokenizer, too_many)


def test_costly_sets_are_scored_at_every_kth_evaluation_point_and_the_last(tmp_path):
    from sft_tilt.harness.run_config import RunConfig

    data = DataConfig(n_train=8, n_heldout=4)
    every_third = RunConfig(model="m", data=data, batch_size=2, steps=10, eval_every=2, wide_eval_every=3)
    assert [s for s in every_third.eval_steps if every_third.wide_evaluation_at(s)] == [6, 10]
    plain = RunConfig(model="m", data=data, batch_size=2, steps=10, eval_every=2)
    assert all(plain.wide_evaluation_at(s) for s in plain.eval_steps)
    assert "wide_eval_every" not in plain.describe() and every_third.describe()["wide_eval_every"] == 3
    with pytest.raises(ValueError, match="step: 3 is not an evaluation step"):
        plain.wide_evaluation_at(3)
    with pytest.raises(ValueError, match="wide_eval_every: must be a positive int"):
        RunConfig(model="m", data=data, batch_size=2, wide_eval_every=0)
