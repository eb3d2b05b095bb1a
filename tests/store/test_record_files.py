"""Stored records that are damaged in ways a checksum never sees: too deep to parse, headers whose counts are not
counts, archive entries the zip reader cannot open, and paths that are not regular files. Each is reported like any
damaged record (a StoreWarning naming the path, ``None`` so the caller recomputes), and none blocks the reader."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import warnings
import zipfile
from contextlib import contextmanager

import numpy as np
import pytest

from sft_tilt.store import StoreWarning, read_record, write_record


@contextmanager
def _within(seconds: int):
    """Fail instead of hanging: a blocked ``open`` is interrupted by SIGALRM, whose handler raises."""
    def expire(signum, frame):
        raise TimeoutError(f"the reader was still blocked after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _refused(path, reason: str) -> None:
    with warnings.catch_warnings(record=True) as caught, _within(10):
        warnings.simplefilter("always")
        assert read_record(path, key="key") is None
    assert len(caught) == 1 and issubclass(caught[0].category, StoreWarning), caught
    assert str(path) in str(caught[0].message) and reason in str(caught[0].message), str(caught[0].message)


def test_a_record_nested_200000_deep_is_refused(tmp_path):
    path = tmp_path / "result.json"
    path.write_text("[" * 200_000 + "]" * 200_000)
    _refused(path, "RecursionError")


def test_a_record_value_nested_200000_deep_is_refused(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"format": "sft-tilt-record/1", "key": "key", "sha256": "0", "value": ' + "[" * 200_000
                    + "]" * 200_000 + "}")
    _refused(path, "RecursionError")


def _npz_record(path, header: dict, arrays: dict) -> None:
    """An ``.npz`` laid out as write_record lays it out, with the given ``__record__`` header."""
    buf = io.BytesIO()
    np.savez(buf, __record__=np.frombuffer(json.dumps(header, allow_nan=True).encode(), np.uint8), **arrays)
    path.write_bytes(buf.getvalue())


def _sha256(text: str, arrays: list[np.ndarray]) -> str:
    """The record checksum as the store documents it: the value's JSON text, then each array's dtype, shape, bytes."""
    digest = hashlib.sha256(text.encode())
    for a in arrays:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def _valid_header(arrays: list[np.ndarray]) -> dict:
    text = json.dumps({"x": {"__array__": 0}}, sort_keys=True)
    return {"format": "sft-tilt-record/1", "key": "key", "sha256": _sha256(text, arrays), "n_arrays": len(arrays),
            "value_text": text}


def test_handmade_array_record_reads_back(tmp_path):
    """The premise of the header tests below: ``_npz_record`` with ``_valid_header`` reads back."""
    a = np.arange(4.0)
    _npz_record(tmp_path / "state.npz", _valid_header([a]), {"a0": a})
    got = read_record(tmp_path / "state.npz", key="key")
    assert got.keys() == {"x"} and np.array_equal(got["x"], a)


@pytest.mark.parametrize("n_arrays", [float("inf"), float("nan"), 1e300, 10**18, -1, 2, 1.0, "1", True, None])
def test_an_array_count_that_does_not_match_the_archive_is_refused(tmp_path, n_arrays):
    a = np.arange(4.0)
    _npz_record(tmp_path / "state.npz", {**_valid_header([a]), "n_arrays": n_arrays}, {"a0": a})
    _refused(tmp_path / "state.npz", "n_arrays")


def test_an_extra_array_in_the_archive_is_refused(tmp_path):
    a = np.arange(4.0)
    _npz_record(tmp_path / "state.npz", _valid_header([a]), {"a0": a, "a1": a})
    _refused(tmp_path / "state.npz", "n_arrays = 1 does not match the file's arrays ['a0', 'a1']")


@pytest.mark.parametrize("value_text", [5, None, ["x"]])
def test_a_value_text_that_is_not_text_is_refused(tmp_path, value_text):
    a = np.arange(4.0)
    _npz_record(tmp_path / "state.npz", {**_valid_header([a]), "value_text": value_text}, {"a0": a})
    _refused(tmp_path / "state.npz", "not a record")


@pytest.mark.parametrize("index", [1, -1, True, 0.0, "0"])
def test_an_array_reference_outside_the_stored_arrays_is_refused(tmp_path, index):
    """Even with a checksum that matches: the reference is checked, not used as a Python index."""
    a = np.arange(4.0)
    text = json.dumps({"x": {"__array__": index}}, sort_keys=True)
    _npz_record(tmp_path / "state.npz", {**_valid_header([a]), "value_text": text, "sha256": _sha256(text, [a])},
                {"a0": a})
    _refused(tmp_path / "state.npz", "is not one of the 1 stored arrays")


@pytest.mark.parametrize("compression", [zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_a_compressed_archive_entry_is_refused(tmp_path, compression):
    """np.savez stores entries uncompressed; a compressed one could expand without bound."""
    a = np.arange(4.0)
    _npz_record(tmp_path / "plain.npz", _valid_header([a]), {"a0": a})
    with zipfile.ZipFile(tmp_path / "plain.npz") as src, zipfile.ZipFile(tmp_path / "state.npz", "w", compression) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    _refused(tmp_path / "state.npz", "compressed or encrypted")


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def test_an_array_header_declaring_more_bytes_than_the_entry_holds_is_refused(tmp_path):
    """A 32-byte array whose .npy header says 10^12 float64s: refused before anything is allocated."""
    a = np.arange(4.0)
    npy = io.BytesIO()
    np.lib.format.write_array_header_1_0(npy, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("__record__.npy", _npy(np.frombuffer(json.dumps(_valid_header([a])).encode(), np.uint8)))
        z.writestr("a0.npy", npy.getvalue() + a.tobytes())
    (tmp_path / "state.npz").write_bytes(buf.getvalue())
    _refused(tmp_path / "state.npz", "declares shape (1000000000000,) of float64 (8000000000000 bytes) but holds 32")


@pytest.mark.parametrize("name", ["result.json", "state.npz"])
def test_a_fifo_in_place_of_a_record_is_refused_without_blocking(tmp_path, name):
    path = tmp_path / name
    os.mkfifo(path)
    _refused(path, "not a regular file (a FIFO)")


@pytest.mark.parametrize("name", ["result.json", "state.npz"])
def test_a_directory_in_place_of_a_record_is_refused_and_kept(tmp_path, name):
    path = tmp_path / name
    path.mkdir()
    _refused(path, "not a regular file (a directory)")
    assert path.is_dir()


def test_a_symlink_to_a_device_is_refused(tmp_path):
    path = tmp_path / "result.json"
    path.symlink_to(os.devnull)
    _refused(path, "not a regular file (a character device)")


def test_a_valid_record_still_reads_back_through_a_symlink(tmp_path):
    write_record(tmp_path / "real.json", {"a": [1, 2.5, None]}, key="key")
    (tmp_path / "result.json").symlink_to(tmp_path / "real.json")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_record(tmp_path / "result.json", key="key") == {"a": [1, 2.5, None]}
