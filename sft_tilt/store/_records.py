"""Checksummed records on disk: JSON, or ``.npz`` without pickles when the value holds arrays.

A record stores a *value tree*: nested dicts, lists and tuples of ``str``, ``int``, ``float`` (NaN and
infinities too), ``bool``, ``None`` and NumPy arrays or scalars (JAX arrays are converted to NumPy). Nothing
else is accepted, so reading a record can never run code. Each record holds

* ``key``: what the caller says the record is for (a content key); a record found under another key is stale;
* ``sha256``: the checksum of the encoded value (its JSON text and every array's dtype, shape and bytes);
* ``value``: the encoded tree.

:func:`read_record` returns ``None`` for a missing record and, for one that is unreadable, truncated, edited or
written for another key, warns with its path, deletes it and returns ``None``: the caller recomputes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sft_tilt.store._keys import canonical, content_key
from sft_tilt.store._locations import cache_root

__all__ = [
    "FORMAT",
    "StoreWarning",
    "atomic_write_bytes",
    "encode_tree",
    "decode_tree",
    "write_record",
    "read_record",
    "cached",
    "entry_path",
]

FORMAT = "sft-tilt-record/1"


class StoreWarning(UserWarning):
    """A stored file failed to parse or verify and was discarded (the message names its path)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``.

    The file gets mode ``0o666 & ~umask`` (as ``open`` would give it), not the ``0o600`` of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------- value trees


def encode_tree(value: Any, arrays: list[np.ndarray], where: str = "value") -> Any:
    """JSON form of ``value``; arrays are appended to ``arrays`` and replaced by ``{"__array__": index}``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if hasattr(value, "__jax_array__") or type(value).__module__.startswith("jax"):
        value = np.asarray(value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise ValueError(f"{where}: object arrays cannot be stored")
        arrays.append(value if value.flags.c_contiguous else value.copy(order="C"))  # ascontiguousarray would make 0-d arrays 1-d
        return {"__array__": len(arrays) - 1}
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"__tuple__": [encode_tree(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode_tree(v, arrays, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode_tree(v, arrays, f"{where}[{k!r}]") for k, v in value.items()}
        return {"__items__": [[encode_tree(k, arrays, f"{where} key"), encode_tree(v, arrays, f"{where}[{k!r}]")]
                              for k, v in value.items()]}
    raise ValueError(f"{where}: cannot store a {type(value).__name__} (allowed: dict, list, tuple, str, int, float, "
                     "bool, None, NumPy/JAX arrays)")


def _hashable(v):
    return tuple(_hashable(x) for x in v) if isinstance(v, list) else v


def decode_tree(obj: Any, arrays: list[np.ndarray]) -> Any:
    """Inverse of :func:`encode_tree`."""
    if isinstance(obj, list):
        return [decode_tree(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        if set(obj) == {"__tuple__"}:
            return tuple(decode_tree(v, arrays) for v in obj["__tuple__"])
        if set(obj) == {"__items__"}:
            return {_hashable(decode_tree(k, arrays)): decode_tree(v, arrays) for k, v in obj["__items__"]}
        return {k: decode_tree(v, arrays) for k, v in obj.items()}
    return obj


def _checksum(text: str, arrays: list[np.ndarray]) -> str:
    digest = hashlib.sha256(text.encode())
    for a in arrays:
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


def write_record(path: Path, value: Any, key: str = "") -> None:
    """Store ``value`` at ``path`` (``.json`` without arrays, ``.npz`` with them) with ``key`` and a checksum."""
    path = Path(path)
    arrays: list[np.ndarray] = []
    text = json.dumps(encode_tree(value, arrays), sort_keys=True, allow_nan=True)
    header = {"format": FORMAT, "key": key, "sha256": _checksum(text, arrays), "n_arrays": len(arrays)}
    if path.suffix == ".json":
        if arrays:
            raise ValueError(f"value: holds arrays, so it must be stored as .npz, not {path.name}")
        atomic_write_bytes(path, json.dumps({**header, "value": json.loads(text)}, indent=1, allow_nan=True).encode())
    elif path.suffix == ".npz":
        buf = io.BytesIO()
        members = {f"a{i}": a for i, a in enumerate(arrays)}
        meta = json.dumps({**header, "value_text": text}).encode()
        np.savez(buf, __record__=np.frombuffer(meta, dtype=np.uint8), **members)
        atomic_write_bytes(path, buf.getvalue())
    else:
        raise ValueError(f"path: {path} must end in .json or .npz")


def _parse(path: Path) -> tuple[dict, str, list[np.ndarray]]:
    if path.suffix == ".json":
        rec = json.loads(path.read_text())
        if not isinstance(rec, dict) or "value" not in rec:
            raise ValueError("not a record")
        text = json.dumps(rec["value"], sort_keys=True, allow_nan=True)
        return rec, text, []
    with np.load(path, allow_pickle=False) as z:
        rec = json.loads(bytes(z["__record__"]).decode())
        if not isinstance(rec, dict):
            raise ValueError("not a record")
        arrays = [z[f"a{i}"] for i in range(int(rec["n_arrays"]))]
    return rec, rec["value_text"], arrays


def read_record(path: Path, key: str | None = None, *, discard: bool = True) -> Any | None:
    """The value stored at ``path``, or ``None`` if it is missing, damaged, edited or stored for another ``key``.

    A damaged or mismatching record is reported (:class:`StoreWarning` naming the path and the reason) and, with
    ``discard``, deleted so that it is recomputed.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        rec, text, arrays = _parse(path)
        if rec.get("format") != FORMAT:
            raise ValueError(f"unknown format {rec.get('format')!r}")
        if rec.get("sha256") != _checksum(text, arrays):
            raise ValueError("checksum mismatch (edited or corrupted)")
        if key is not None and rec.get("key") != key:
            raise ValueError("stored for another key (stale)")
        value = decode_tree(json.loads(text), arrays)
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        warnings.warn(f"{path}: discarded, will be recomputed ({type(exc).__name__}: {exc})", StoreWarning, stacklevel=2)
        if discard:
            try:
                path.unlink()
            except OSError:
                pass
        return None
    return value


def entry_path(namespace: str, material: Any, *, arrays: bool, root: Path | None = None) -> Path:
    """Where the entry for ``material`` in ``namespace`` lives (``.npz`` if it holds arrays, else ``.json``)."""
    return Path(root or cache_root()) / namespace / f"{content_key(material)}.{'npz' if arrays else 'json'}"


def cached(namespace: str, material: Any, compute: Callable[[], Any], *, root: Path | None = None) -> Any:
    """``compute()``, memoised on disk under ``namespace`` by the content key of ``material``.

    The value must be a value tree (module docstring). The first call and every later call return the same
    decoded form (tuples stay tuples, arrays come back as NumPy arrays). The key material is stored beside the
    value for inspection; a damaged or stale entry is reported by path and recomputed.
    """
    key = content_key(material)
    for has_arrays in (False, True):
        value = read_record(entry_path(namespace, material, arrays=has_arrays, root=root), key)
        if value is not None:
            return value["value"]
    value = compute()
    arrays: list[np.ndarray] = []
    encode_tree(value, arrays)  # validates the value before anything is written
    path = entry_path(namespace, material, arrays=bool(arrays), root=root)
    write_record(path, {"value": value, "key_material": canonical(material)}, key)
    return read_record(path, key)["value"]
