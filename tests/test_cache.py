"""The content-keyed disk cache: keys follow content, stale entries are never found, writes are atomic."""

import json
import os
from dataclasses import dataclass

import numpy as np
import pytest

from theory._cache import atomic_write_bytes, cached_json, cached_pickle, content_key, source_version


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


def test_cached_pickle_computes_once_then_reads(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"value": np.arange(4.0)}

    first = cached_pickle("ns", {"k": 1}, compute, root=tmp_path)
    second = cached_pickle("ns", {"k": 1}, compute, root=tmp_path)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["value"], second["value"])


def test_changed_key_material_is_recomputed_never_served_stale(tmp_path):
    cached_json("ns", {"code": "v1"}, lambda: 1, root=tmp_path)
    assert cached_json("ns", {"code": "v2"}, lambda: 2, root=tmp_path) == 2
    assert cached_json("ns", {"code": "v1"}, lambda: 3, root=tmp_path) == 1


def test_failed_compute_leaves_no_entry(tmp_path):
    def boom():
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cached_pickle("ns", {"k": 2}, boom, root=tmp_path)
    leftovers = list((tmp_path / "ns").glob("*")) if (tmp_path / "ns").exists() else []
    assert leftovers == []
    assert cached_pickle("ns", {"k": 2}, lambda: 7, root=tmp_path) == 7


def test_atomic_write_replaces_whole_file_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "sub" / "x.json"
    atomic_write_bytes(target, json.dumps({"a": 1}).encode())
    atomic_write_bytes(target, json.dumps({"a": 2}).encode())
    assert json.loads(target.read_text()) == {"a": 2}
    assert os.listdir(target.parent) == ["x.json"]


def test_source_version_rejects_unknown_package():
    with pytest.raises(ValueError, match="packages"):
        source_version("no_such_package_here")
