"""Random damage to stored files: every reader answers with a value it verified, or with None and a warning naming
the file; never another exception, never an unverified value."""

import json
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_tilt.store import StoreWarning, read_record, write_record

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


def _read_quietly(path, key):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = read_record(path, key=key)
    for w in caught:
        assert issubclass(w.category, StoreWarning) and str(path) in str(w.message)
    return value, caught


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes_as_a_record_are_refused(tmp_path_factory, data):
    for suffix in (".json", ".npz"):
        path = tmp_path_factory.mktemp("rec") / f"result{suffix}"
        path.write_bytes(data)
        value, caught = _read_quietly(path, "key")
        assert value is None and caught


@FUZZ
@given(value=json_values)
def test_random_json_documents_are_refused_unless_they_verify(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("rec") / "result.json"
    path.write_text(json.dumps(value))
    got, caught = _read_quietly(path, "key")
    assert got is None and caught


@FUZZ
@given(value=json_values, position=st.integers(min_value=0, max_value=10_000), byte=st.integers(0, 255))
def test_one_changed_byte_in_a_valid_record_is_caught(tmp_path_factory, value, position, byte):
    folder = tmp_path_factory.mktemp("rec")
    write_record(folder / "result.json", {"v": value, "x": 1.5}, key="key")
    raw = bytearray((folder / "result.json").read_bytes())
    i = position % len(raw)
    if raw[i] == byte:
        return
    raw[i] = byte
    (folder / "result.json").write_bytes(bytes(raw))
    got, caught = _read_quietly(folder / "result.json", "key")
    if got is not None:  # the change did not alter the content (e.g. whitespace): it must read back equal
        assert not caught
        assert json.dumps(got, sort_keys=True) == json.dumps({"v": value, "x": 1.5}, sort_keys=True)


@FUZZ
@given(lines=st.lists(st.text(max_size=40) | json_values.map(json.dumps), max_size=5))
def test_random_points_files_never_raise(tmp_path_factory, lines):
    from sft_tilt.harness.runs import _read_points

    folder = tmp_path_factory.mktemp("run")
    (folder / "points.jsonl").write_text("\n".join(lines))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        points = _read_points(folder)
    assert points == []  # none of these lines carries a valid checksum
