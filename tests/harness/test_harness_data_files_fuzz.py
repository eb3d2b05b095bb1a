"""Random damage to a user's data files: the CSV and JSONL readers return examples or raise the one documented error,
a ValueError naming the file; never another exception, never a row read from a quoted field that does not close."""

import csv
import io
import json

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sft_tilt.harness.data_files import MEDCALC_BENCH_COLUMNS, read_domain_file, read_general_file
from sft_tilt.harness.medcalc import MedCalcExample

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_csv() -> str:
    out = io.StringIO(newline="")
    w = csv.DictWriter(out, fieldnames=["Row Number", *MEDCALC_BENCH_COLUMNS])
    w.writeheader()
    for i in range(4):
        answer = 20.5 + i
        w.writerow({"Row Number": i + 1, "Patient Note": f'Patient {i}, "quoted", weight 70 kg.',
                    "Question": "What is the BMI?", "Ground Truth Explanation": f"BMI = 70 / 1.75^2\nso {answer}",
                    "Ground Truth Answer": answer, "Lower Limit": answer - 1, "Upper Limit": answer + 1,
                    "Calculator ID": 6, "Output Type": "decimal"})
    return out.getvalue()


VALID_CSV = _valid_csv()
# characters that matter to CSV, and a few that matter to nothing
_CSV_PIECES = st.text(alphabet='",\r\n ab1.\\\x00', min_size=1, max_size=4)


def _read(reader, path):
    """Examples (or ``(texts, pairs)``) from ``reader``, or the ValueError; anything else fails the test."""
    try:
        value = reader(path)
    except ValueError as err:
        assert str(path) in str(err), str(err)
        event("ValueError")
        return err
    event("read")
    return value


@FUZZ
@given(edits=st.lists(st.tuples(st.sampled_from(["insert", "delete", "cut"]), st.floats(0, 1), _CSV_PIECES),
                      min_size=1, max_size=4))
def test_fuzz_csv(tmp_path_factory, edits):
    text = VALID_CSV
    for kind, where, piece in edits:
        i = int(where * len(text))
        text = {"insert": text[:i] + piece + text[i:], "delete": text[:i] + text[i + len(piece):],
                "cut": text[:i]}[kind]
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(text, newline="")
    value = _read(read_domain_file, path)
    if not isinstance(value, ValueError):
        assert value and all(isinstance(e, MedCalcExample) for e in value)


@FUZZ
@given(where=st.floats(0, 1))
def test_a_csv_cut_inside_any_quoted_field_is_refused(tmp_path_factory, where):
    """Every cut of a valid file at a point inside a quoted field (an odd number of quotes before it: a field's quotes
    open and close in pairs, and a quote inside a field is doubled) leaves a quote open: a ValueError saying so."""
    cut = int(where * len(VALID_CSV))
    if VALID_CSV[:cut].count('"') % 2 == 0:
        event("outside a quoted field")
        return
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_text(VALID_CSV[:cut], newline="")
    with pytest.raises(ValueError, match="not closed before the end of the file"):
        read_domain_file(path)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
_domain_rows = st.fixed_dictionaries({"prompt": st.text(max_size=6), "response": st.text(max_size=6)},
                                     optional={"answer": _json_values, "lower": _json_values, "upper": _json_values,
                                               "text": st.text(max_size=4)})
_lines = st.one_of(
    _domain_rows.map(json.dumps),
    _json_values.map(json.dumps),
    st.text(max_size=30),
    # an object with one of its keys written twice
    st.tuples(_domain_rows, st.text(max_size=4)).map(
        lambda t: json.dumps(t[0])[:-1] + f', "prompt": {json.dumps(t[1])}}}'),
    st.sampled_from(['{"prompt": "p", "response": "\\ud800"}', '{"answer": 1' + "0" * 400 + "}",
                     "[" * 3000 + "]" * 3000, '{"prompt": "p", "response": "r", "answer": 1e999}']),
)


@FUZZ
@given(lines=st.lists(_lines, max_size=6))
def test_fuzz_jsonl(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    value = _read(read_domain_file, path)
    if not isinstance(value, ValueError):
        assert value and all(isinstance(e, MedCalcExample) for e in value)
    value = _read(read_general_file, path)
    if not isinstance(value, ValueError):
        texts, pairs = value
        assert bool(texts) != bool(pairs)


@FUZZ
@given(row=_domain_rows, key=st.sampled_from(["prompt", "response", "answer"]), repeated=_json_values)
def test_any_key_given_twice_is_named(tmp_path_factory, row, key, repeated):
    text = json.dumps(row)
    if key in row:
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(repeated)}}}"
    else:
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(repeated)}, {json.dumps(key)}: 1}}"
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    path.write_text(text + "\n")
    with pytest.raises(ValueError, match=f"line 1, column '{key}': the key appears more than once"):
        read_domain_file(path)
