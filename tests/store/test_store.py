"""The store: content keys, code keys from the import graph, checksummed pickle-free records and the cache."""

import json
import os
import stat
import warnings
from dataclasses import dataclass, field

import numpy as np
import pytest

import sft_tilt.store
from sft_tilt.store import atomic_write_bytes, cached, content_key, read_record, write_record


@dataclass(frozen=True)
class _Config:
    lam: float
    n: int


def test_content_key_ignores_dict_order_but_not_values():
    assert content_key({"a": 1, "b": 2.5}) == content_key({"b": 2.5, "a": 1})
    assert content_key({"a": 1, "b": 2.5}) != content_key({"a": 1, "b": 2.5000000001})


def test_content_key_distinguishes_float_and_int_and_array_contents():
    assert content_key({"x": 1}) != content_key({"x": 1.0})
    assert content_key(np.arange(3.0)) != content_key(np.arange(3.0) + 1e-12)
    assert content_key(np.arange(3, dtype=np.float32)) != content_key(np.arange(3, dtype=np.float64))


def test_dataclass_config_keys_by_field_values():
    assert content_key(_Config(0.1, 3)) == content_key(_Config(0.1, 3))
    assert content_key(_Config(0.1, 3)) != content_key(_Config(0.2, 3))


@dataclass(frozen=True)
class _ExtendedConfig:
    """``_Config`` with a field added later, marked to stay out of the key at its default."""

    lam: float
    n: int
    mode: str = field(default="old", metadata={sft_tilt.store.OMIT_AT_DEFAULT: True})


def test_a_field_marked_omit_at_default_keeps_the_old_key_until_it_is_set():
    # the key of the older class's instance, written out: the added field must not change it at its default
    old = {"__dataclass__": "_ExtendedConfig", "lam": "0.1", "n": 3}
    assert sft_tilt.store.canonical(_ExtendedConfig(0.1, 3)) == old
    assert sft_tilt.store.canonical(_ExtendedConfig(0.1, 3, "new")) == {**old, "mode": "new"}
    assert content_key(_ExtendedConfig(0.1, 3, "new")) != content_key(_ExtendedConfig(0.1, 3))


def test_cached_computes_once_then_reads_the_same_value(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": np.arange(4.0), "pair": (1, 2.5), "nan": float("nan"), 3: [None, True, "x"]}

    first = cached("ns", {"k": 1}, compute, root=tmp_path)
    second = cached("ns", {"k": 1}, compute, root=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["value"], np.arange(4.0))
    assert first["pair"] == (1, 2.5) and np.isnan(first["nan"]) and first[3] == [None, True, "x"]
    assert second.keys() == first.keys()
    np.testing.assert_array_equal(second["value"], first["value"])


def test_changed_key_material_is_recomputed_never_served_stale(tmp_path):
    cached("ns", {"code": "v1"}, lambda: 1, root=tmp_path)
    assert cached("ns", {"code": "v2"}, lambda: 2, root=tmp_path) == 2
    assert cached("ns", {"code": "v1"}, lambda: 3, root=tmp_path) == 1


def test_failed_compute_leaves_no_entry(tmp_path):
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached("ns", {"k": 2}, boom, root=tmp_path)
    leftovers = list((tmp_path / "ns").glob("*")) if (tmp_path / "ns").exists() else []
    assert leftovers == []
    assert cached("ns", {"k": 2}, lambda: 7, root=tmp_path) == 7


def test_values_that_could_run_code_are_refused(tmp_path):
    class Evil:
        pass

    with pytest.raises(ValueError, match="cannot store a Evil"):
        cached("ns", {"k": 3}, lambda: {"x": Evil()}, root=tmp_path)
    with pytest.raises(ValueError, match="object arrays"):
        cached("ns", {"k": 4}, lambda: np.array([{}], dtype=object), root=tmp_path)


@pytest.mark.parametrize("damage", ["garbage", "truncate", "edit", "empty_object", "pickle"])
def test_damaged_entry_is_reported_by_path_and_recomputed(tmp_path, damage):
    with_arrays = damage in ("truncate", "pickle")
    value = {"a": np.arange(5.0)} if with_arrays else {"a": 1.5}
    cached("ns", {"k": damage}, lambda: value, root=tmp_path)
    (entry,) = (tmp_path / "ns").iterdir()
    if damage == "garbage":
        entry.write_bytes(b"\x80\x04not json")
    elif damage == "truncate":
        entry.write_bytes(entry.read_bytes()[:40])
    elif damage == "edit":
        rec = json.loads(entry.read_text())
        rec["value"]["value"]["a"] = 99.0  # a forged number without a matching checksum
        entry.write_text(json.dumps(rec))
    elif damage == "empty_object":
        entry.write_text("{}")
    else:  # a pickle that would run code if it were unpickled
        import pickle

        entry.write_bytes(pickle.dumps({"a": 1}))
    with pytest.warns(sft_tilt.store.StoreWarning, match=entry.name):
        again = cached("ns", {"k": damage}, lambda: {"a": "recomputed"}, root=tmp_path)
    assert again == {"a": "recomputed"}


def test_record_for_another_key_is_stale(tmp_path):
    write_record(tmp_path / "r.json", {"x": 1}, key="abc")
    assert read_record(tmp_path / "r.json", key="abc") == {"x": 1}
    with pytest.warns(sft_tilt.store.StoreWarning, match="another key"):
        assert read_record(tmp_path / "r.json", key="other") is None
    assert not (tmp_path / "r.json").exists()


def test_records_with_arrays_must_be_npz(tmp_path):
    with pytest.raises(ValueError, match="npz"):
        write_record(tmp_path / "r.json", {"x": np.zeros(2)})
    write_record(tmp_path / "r.npz", {"x": np.zeros(2, np.float32)})
    back = read_record(tmp_path / "r.npz")
    assert back["x"].dtype == np.float32 and back["x"].shape == (2,)


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "x.json"
    atomic_write_bytes(target, json.dumps({"a": 1}).encode())
    atomic_write_bytes(target, json.dumps({"a": 2}).encode())
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["x.json"]


def test_written_files_follow_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == 0o644


# ----------------------------------------------------------------------------- code keys


def _fake_repo(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _with_repo(monkeypatch, root):
    import sft_tilt.store._code as code

    monkeypatch.setattr(code, "PACKAGE_DIR", root / "sft_tilt")
    code.imported_modules.cache_clear()
    code.code_key.cache_clear()
    return code


def test_code_key_follows_imports_and_ignores_unimported_modules(tmp_path, monkeypatch):
    _fake_repo(tmp_path, {
        "sft_tilt/__init__.py": "",
        "sft_tilt/harness/__init__.py": '"""doc"""',
        "sft_tilt/harness/runs.py": "from sft_tilt.harness import model\nfrom . import data\ndef f():\n    import sft_tilt.theory\n",
        "sft_tilt/harness/model.py": "X = 1\n",
        "sft_tilt/harness/data.py": "import numpy\n",
        "sft_tilt/harness/report.py": "from sft_tilt.harness.runs import f\n",
        "sft_tilt/theory/__init__.py": "from sft_tilt.theory._tilt import *\n",
        "sft_tilt/theory/_tilt.py": "Y = 2\n",
    })
    code = _with_repo(monkeypatch, tmp_path)
    try:
        closure = code.dependency_closure("sft_tilt.harness.runs")
        assert set(closure) == {"sft_tilt", "sft_tilt.harness", "sft_tilt.harness.runs", "sft_tilt.harness.model",
                                "sft_tilt.harness.data", "sft_tilt.theory", "sft_tilt.theory._tilt"}
        key = code.code_key("sft_tilt.harness.runs")
        (tmp_path / "sft_tilt/harness/report.py").write_text("# a label fix\n")
        code.code_key.cache_clear()
        assert code.code_key("sft_tilt.harness.runs") == key  # a report edit keeps the key
        (tmp_path / "sft_tilt/theory/_tilt.py").write_text("Y = 3\n")
        code.imported_modules.cache_clear()
        code.code_key.cache_clear()
        assert code.code_key("sft_tilt.harness.runs") != key  # a dependency two imports away changes it
    finally:
        code.imported_modules.cache_clear()
        code.code_key.cache_clear()


def test_code_key_rejects_modules_outside_the_repository():
    with pytest.raises(ValueError, match="name"):
        sft_tilt.store.code_key("numpy")


def test_zero_dimensional_arrays_keep_their_shape(tmp_path):
    write_record(tmp_path / "r.npz", {"count": np.asarray(3, np.int32), "v": np.arange(6.0).reshape(2, 3).T})
    back = read_record(tmp_path / "r.npz")
    assert back["count"].shape == () and back["count"].dtype == np.int32 and int(back["count"]) == 3
    np.testing.assert_array_equal(back["v"], np.arange(6.0).reshape(2, 3).T)
