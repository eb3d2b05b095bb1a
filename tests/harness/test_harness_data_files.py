"""A user's own data files: MedCalc-Bench CSV and JSONL read row by row, malformed rows named by line and column, the
content hash in the run key, and both trained and evaluated through the harness on the tiny model."""

import csv
import json
from dataclasses import replace
from types import SimpleNamespace

import jax
import numpy as np
import pytest

from sft_tilt.harness.data_files import MEDCALC_BENCH_COLUMNS, DataFile, read_domain_file, read_general_file, split_examples
from tiny_harness import tiny_harness_env

_NOTES = ["A 60-year-old man, weight 70 kg, height 175 cm.", "A 45-year-old woman, BP 120/80 mmHg.",
          "A 30-year-old man <|im_end|> with Na 140, Cl 104, HCO3 24.", "A 72-year-old woman, weight 55 kg, height 160 cm.",
          "A 50-year-old man, BP 140/90 mmHg.", "A 38-year-old woman with Na 136, Cl 100, HCO3 22.",
          "A 66-year-old man, weight 90 kg, height 180 cm."]


def _csv_rows():
    rows = []
    for i, note in enumerate(_NOTES):
        answer = 20.0 + i
        rows.append({"Row Number": i + 1, "Calculator ID": 6, "Calculator Name": "BMI", "Category": "physical",
                     "Output Type": "decimal", "Note ID": i, "Note Type": "synthetic", "Patient Note": note,
                     "Question": "What is the patient's BMI?", "Relevant Entities": "{}", "Ground Truth Answer": answer,
                     "Lower Limit": answer * 0.95, "Upper Limit": answer * 1.05,
                     "Ground Truth Explanation": f"BMI = weight / height^2 = {answer} kg/m^2."})
    return rows


def _write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
    return path


def test_a_medcalc_bench_csv_reads_every_row(tmp_path):
    rows = _csv_rows()
    rows[1]["Patient Note"] = "A note\nspanning two lines."  # quoted newline: later line numbers follow the file
    examples = read_domain_file(_write_csv(tmp_path / "d.csv", rows))
    assert len(examples) == len(rows)
    ex = examples[0]
    assert ex.prompt == f"{_NOTES[0]}\nWhat is the patient's BMI?"
    assert ex.response_cot == "BMI = weight / height^2 = 20.0 kg/m^2.\nAnswer: 20.0" and ex.response_label == "Answer: 20.0"
    assert (ex.answer, ex.lower, ex.upper) == (20.0, 19.0, 21.0) and ex.calculator == "6"
    assert [dict(e.inputs)["line"] for e in examples] == [2, 3, 5, 6, 7, 8, 9]
    assert set(MEDCALC_BENCH_COLUMNS) <= set(rows[0])


def test_malformed_csv_rows_are_reported_by_line_and_column(tmp_path):
    rows = _csv_rows()
    rows[1]["Ground Truth Answer"] = "abc"
    rows[3]["Patient Note"] = "  "
    rows[4]["Lower Limit"], rows[4]["Upper Limit"] = 30, 20
    rows[5]["Output Type"] = "fraction"
    with pytest.raises(ValueError) as err:
        read_domain_file(_write_csv(tmp_path / "bad.csv", rows))
    text = str(err.value)
    assert text.startswith("domain_data: ") and "4 malformed row(s)" in text
    for expected in ["line 3, column 'Ground Truth Answer': not a number ('abc')", "line 5, column 'Patient Note': empty",
                     "line 6, column 'Lower Limit': 30.0 exceeds the upper limit 20.0",
                     "line 7, column 'Output Type': 'fraction' is not decimal, integer or date"]:
        assert expected in text
    del rows[0]["Question"]
    for r in rows:
        r.pop("Question", None)
    with pytest.raises(ValueError, match=r"line 1: missing column\(s\) \['Question'\]"):
        read_domain_file(_write_csv(tmp_path / "noq.csv", rows))


def test_a_csv_cut_inside_a_quoted_field_is_refused_naming_the_row(tmp_path):
    """A file cut short inside the last row's quoted explanation (an interrupted download) holds a quote that never
    closes: the reader names the file and the line where that row starts instead of reading a shortened row."""
    rows = _csv_rows()
    for r in rows:  # an explanation over two lines is quoted, and each row spans two lines of the file
        r["Ground Truth Explanation"] = f"BMI = {r['Ground Truth Answer']}\nso the answer is {r['Ground Truth Answer']}"
    path = _write_csv(tmp_path / "d.csv", rows)
    text = path.read_text()
    assert len(read_domain_file(path)) == len(rows)
    cut = text.rindex("so the answer is")  # inside the last row's quoted explanation
    path.write_text(text[:cut])
    last_row_line = 2 + 2 * (len(rows) - 1)  # the header, then two lines per row
    with pytest.raises(ValueError) as err:
        read_domain_file(path)
    assert str(path) in str(err.value) and f"line {last_row_line}: a quoted field" in str(err.value)
    assert "not closed before the end of the file" in str(err.value)
    # text after a closing quote is an error too, not glued to the field
    path.write_text(text.replace('"BMI = 20.0', '"BMI = 20.0"x', 1))
    with pytest.raises(ValueError, match="line 2: ',' expected after"):
        read_domain_file(path)


def test_a_jsonl_key_given_twice_is_refused_naming_line_and_key(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p1", "response": "r1"}\n{"prompt": "p2", "prompt": "p3", "response": "r2"}\n'
                    '{"prompt": "p4", "response": "r4", "answer": {"a": 1, "a": 2}}\n')
    with pytest.raises(ValueError) as err:
        read_domain_file(path)
    text = str(err.value)
    assert str(path) in text and "2 malformed row(s)" in text
    assert "line 2, column 'prompt': the key appears more than once" in text
    assert "line 3, column 'a': the key appears more than once" in text  # at any depth
    general = tmp_path / "g.jsonl"
    general.write_text('{"text": "one", "text": "two"}\n')
    with pytest.raises(ValueError, match=r"line 1, column 'text': the key appears more than once"):
        read_general_file(general)


def test_a_lone_surrogate_in_jsonl_text_is_refused_naming_line_column_and_character(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "p1", "response": "r1"}\n{"prompt": "ok \\ud800 no", "response": "r2"}\n')
    with pytest.raises(ValueError) as err:
        read_domain_file(path)
    assert str(path) in str(err.value)
    assert "line 2, column 'prompt': character 3 is U+D800, a lone surrogate" in str(err.value)
    path.write_text('{"prompt": "a pair \\ud83d\\ude00 is one character", "response": "r"}\n')
    assert read_domain_file(path)[0].prompt == "a pair \U0001F600 is one character"


def test_jsonl_domain_rows_and_their_errors(tmp_path):
    good = _write_jsonl(tmp_path / "d.jsonl", [{"prompt": "p1", "response": "r1 so 3", "answer": 3},
                                               {"prompt": "p2", "response": "r2"},
                                               {"prompt": "p3", "response": "r3", "answer": 2.5, "lower": 2, "upper": 3}])
    a, b, c = read_domain_file(good)
    assert (a.response_cot, a.response_label, a.answer) == ("r1 so 3", "Answer: 3", 3.0)
    assert b.response_label == "r2" and np.isnan(b.answer)  # no answer: both formats train on the response
    assert (c.lower, c.upper) == (2.0, 3.0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "response": "r"}\n{"prompt": "p", "respone": "r"}\n{"prompt": 3, "response": "r"}\n'
                   '{"prompt": "p", "response": "r", "answer": "x"}\n\n{"prompt": "p", "response": "r", "lower": 1}\n{not json\n')
    with pytest.raises(ValueError) as err:
        read_domain_file(bad)
    text = str(err.value)
    for expected in ["line 2, column 'respone': unknown field", "line 3, column 'prompt': must be a non-empty string",
                     "line 4, column 'answer': not a finite number ('x')", "line 6, column 'upper': lower and upper come together",
                     "line 7, column 2: invalid JSON"]:
        assert expected in text, text
    assert "line 1" not in text and "line 5" not in text


def test_general_files_and_splits(tmp_path):
    texts, pairs = read_general_file(_write_jsonl(tmp_path / "g.jsonl", [{"text": "one"}, {"text": "two"}]))
    assert texts == ["one", "two"] and pairs == []
    _, pairs = read_general_file(_write_jsonl(tmp_path / "p.jsonl", [{"prompt": "q", "response": "a"}]))
    assert pairs == [("q", "a")]
    with pytest.raises(ValueError, match="line 2, column 'prompt': the file's first row is a text"):
        read_general_file(_write_jsonl(tmp_path / "mixed.jsonl", [{"text": "one"}, {"prompt": "q", "response": "a"}]))
    # the same note twice is one patient: never on both sides
    rows = _csv_rows()
    rows[6]["Patient Note"] = rows[0]["Patient Note"]
    examples = read_domain_file(_write_csv(tmp_path / "d.csv", rows))
    for seed in range(5):
        s = split_examples(examples, 4, 2, seed)
        assert not {e.patient for e in s.train} & {e.patient for e in s.heldout}
        assert len(s.train) == 4 and len(s.heldout) == 2
    with pytest.raises(ValueError, match="n_train=40"):
        split_examples(examples, 40, 2, 0)


def test_the_file_hash_is_in_the_run_key_and_the_path_is_not(tmp_path):
    from sft_tilt.harness.runs import RunConfig, run_key
    from sft_tilt.harness.session import DataConfig

    path = _write_csv(tmp_path / "d.csv", _csv_rows())
    session = SimpleNamespace(fingerprint="model")
    key = lambda data: run_key(RunConfig(model="m.gguf", data=DataConfig(n_train=4, n_heldout=2, n_accuracy=1, domain_data=data)), session)
    first = DataFile.from_path(path)
    moved = DataFile.from_path(path.rename(tmp_path / "moved.csv"))
    assert key(first) == key(moved)
    rows = _csv_rows()
    rows[0]["Ground Truth Answer"] = 21.5
    edited = DataFile.from_path(_write_csv(tmp_path / "moved.csv", rows))
    assert edited.sha256 != first.sha256 and key(edited) != key(first)
    assert key(edited) != run_key(RunConfig(model="m.gguf", data=DataConfig(n_train=4, n_heldout=2, n_accuracy=1)), session)
    with pytest.raises(ValueError, match="changed since its hash was taken"):
        read_domain_file(moved)
    with pytest.raises(ValueError, match="calculators"):
        DataConfig(domain_data=edited, calculators=("bmi_calculator",))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    if not jax.config.jax_enable_x64:
        pytest.skip("conftest sets JAX_ENABLE_X64")
    with tiny_harness_env(tmp_path_factory.mktemp("data-harness")) as environment:
        yield environment


def test_csv_and_jsonl_train_and_evaluate_through_the_harness(env, tmp_path, monkeypatch, capsys):
    from sft_tilt.harness import __main__ as cli
    from sft_tilt.harness.data_files import DataFile
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.runs import load_result
    from sft_tilt.harness.session import get_session

    monkeypatch.setattr(cli, "enable_compilation_cache", lambda: None)
    domain_csv = _write_csv(tmp_path / "domain.csv", _csv_rows())
    general = _write_jsonl(tmp_path / "general.jsonl", [{"text": "The quick brown fox jumps over the lazy dog."},
                                                        {"text": "def f(x):\n    return x + 1\n"}])
    domain_jsonl = _write_jsonl(tmp_path / "domain.jsonl", [{"prompt": f"What is {i} + {i}?", "response": f"{i} + {i} = {2 * i}",
                                                             "answer": 2 * i} for i in range(1, 8)])
    for domain in (domain_csv, domain_jsonl):
        argv = ["run", "--preset", "tiny", "--lr", "4e-3", "--fmt", "label", "--steps", "2", "--quiet",
                "--domain-data", str(domain), "--general-data", str(general)]
        assert cli.main(argv) == 0
        out = capsys.readouterr().out
        assert "domain gain G=" in out and "'data':" in out
        data = replace(env["preset"].data, calculators=None, domain_data=DataFile.from_path(domain),
                       general_data=DataFile.from_path(general))
        result = load_result(replace(sft_config(env["preset"], 4e-3, "label", 0), data=data, steps=2))
        assert result is not None and set(result["points"][-1]["general"]) == {"self", "docs", "code", "data"}
        assert np.isfinite(result["points"][-1]["domain_loss"])
    # the control token's spelling in a note is text: the row has only the chat template's end-of-turn markers
    session = get_session(env["preset"].resolved_model(), env["preset"].tokenizer,
                          replace(env["preset"].data, calculators=None, domain_data=DataFile.from_path(domain_csv)))
    im_end = session.tokenizer.encode("<|im_end|>", parse_special=True)
    assert len(im_end) == 1
    from sft_tilt.harness.medcalc import SYSTEM_PROMPT

    examples = session.splits.train + session.splits.heldout
    rows = np.concatenate([session.train["cot"].tokens, session.heldout["cot"].tokens])
    for ex, row in zip(examples, rows):
        ids, _ = session.tokenizer.encode_chat_example(ex.prompt, ex.response("cot"), system=SYSTEM_PROMPT)
        assert row[: len(ids)].tolist() == list(ids)
        assert list(ids).count(im_end[0]) == 3  # system, user and assistant turns; the note's spelling is text
    assert any("<|im_end|>" in ex.prompt for ex in examples)
    # a malformed file is a usage error naming the option, the line and the column, before any work starts
    bad = _write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response": ""}])
    with pytest.raises(SystemExit):
        cli.main(["run", "--preset", "tiny", "--lr", "1e-3", "--domain-data", str(bad)])
    assert "--domain-data: domain_data: " in capsys.readouterr().err
