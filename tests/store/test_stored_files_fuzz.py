"""Random damage to stored files: every reader answers with a value it verified, or with None and a warning naming
the file; never another exception, never an unverified value."""

import json
import warnings

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sft_tilt.store import StoreWarning, read_record, write_record

# example counts and deadlines from the loaded profile (conftest: "ci" by default, HYPOTHESIS_PROFILE=thorough)
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

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


_array_values = st.lists(st.integers(-5, 5), min_size=0, max_size=6).map(lambda v: np.asarray(v, np.int64)) | \
    st.lists(st.floats(allow_nan=True), min_size=1, max_size=4).map(np.asarray)


def _same(a, b) -> bool:
    """Equal value trees, arrays compared by dtype, shape and bytes (so NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and a.tobytes() == b.tobytes())
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return json.dumps(a) == json.dumps(b)


@FUZZ
@given(arrays=st.lists(_array_values, min_size=1, max_size=3), position=st.floats(0, 1), byte=st.integers(0, 255))
def test_one_changed_byte_in_a_valid_array_record_is_caught(tmp_path_factory, arrays, position, byte):
    path = tmp_path_factory.mktemp("rec") / "state.npz"
    value = {"arrays": arrays, "step": 3}
    write_record(path, value, key="key")
    raw = bytearray(path.read_bytes())
    i = min(int(position * len(raw)), len(raw) - 1)
    if raw[i] == byte:
        return
    raw[i] = byte
    path.write_bytes(bytes(raw))
    got, caught = _read_quietly(path, "key")
    if got is not None:  # a byte the content does not depend on (zip timestamps, padding): it must read back equal
        assert not caught and _same(got, value)


@FUZZ
@given(header=st.dictionaries(st.sampled_from(["format", "key", "sha256", "n_arrays", "value_text"]), json_values,
                              max_size=5),
       n_members=st.integers(0, 3))
def test_random_array_record_headers_are_refused(tmp_path_factory, header, n_members):
    """An ``.npz`` whose ``__record__`` header is any JSON (``n_arrays`` Infinity, NaN, 1e300, "2", ...)."""
    import io

    path = tmp_path_factory.mktemp("rec") / "state.npz"
    buf = io.BytesIO()
    meta = json.dumps(header, allow_nan=True).encode()
    np.savez(buf, __record__=np.frombuffer(meta, dtype=np.uint8), **{f"a{i}": np.arange(i) for i in range(n_members)})
    path.write_bytes(buf.getvalue())
    got, caught = _read_quietly(path, "key")
    assert got is None and caught


def test_every_byte_of_an_array_record_changed_to_a_zip_flag_value_is_caught(tmp_path):
    """Exhaustive over positions, for the byte values that set a zip entry's flag bits (encrypted, patched data) or
    its format version: the zip reader refuses those with NotImplementedError, which must become a warning."""
    path = tmp_path / "state.npz"
    value = {"arrays": [np.zeros(0, dtype=np.int64), np.zeros(5, dtype=np.int64)], "step": 3}
    write_record(path, value, key="key")
    original = path.read_bytes()
    for i in range(len(original)):
        for byte in (0x20, 0x40, 0x41, 0xFF):
            if original[i] == byte:
                continue
            path.write_bytes(original[:i] + bytes([byte]) + original[i + 1:])
            got, caught = _read_quietly(path, "key")
            if got is not None:
                assert not caught and _same(got, value), f"byte {i} -> {byte:#x}"
