"""Checksummed records on disk: JSON, or ``.npz`` without pickles when the value holds arrays.

A record stores a *value tree*: nested dicts, lists and tuples of ``str``, ``int``, ``float`` (NaN and
infinities too), ``bool``, ``None`` and NumPy arrays or scalars (JAX arrays are converted to NumPy). Nothing
else is accepted, so reading a record can never run code. Each record holds

* ``key``: what the caller says the record is for (a content key); a record found under another key is stale;
* ``sha256``: the checksum of the encoded value (its JSON text and every array's dtype, shape and bytes);
* ``value``: the encoded tree.

:func:`read_record` returns ``None`` for a missing record and, for one that is unreadable, truncated, edited or
written for another key, warns with its path, deletes it and returns ``None``: the caller recomputes. Nothing in
the file is trusted before it is checked: the path must be a regular file (opened without blocking, so a FIFO in
its place cannot stall the reader), counts must match what the file holds (``n_arrays`` and the archive's
entries, each ``.npy`` header's shape and the entry's bytes), archive entries must be stored uncompressed as
``np.savez`` writes them, and a JSON document nested too deeply to parse is damaged like any other.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

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
            index = obj["__array__"]
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(arrays):
                raise ValueError(f"array reference {_short(index)} is not one of the {len(arrays)} stored arrays")
            return arrays[index]
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


def _open_regular_file(path: Path) -> BinaryIO:
    """``path`` opened for binary reading, or ValueError if it is not a regular file.

    The file is opened without blocking and then examined (``fstat`` of the open descriptor, so nothing can be
    swapped in between): a FIFO would block a plain ``open`` until a writer appears, and a directory, socket or
    device is no record either.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISSOCK: "a socket",
                     stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
            kind = next((name for test, name in kinds.items() if test(mode)), "not a file")
            raise ValueError(f"not a regular file ({kind})")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _parse(path: Path) -> tuple[dict, str, list[np.ndarray]]:
    with _open_regular_file(path) as fh:
        if path.suffix == ".json":
            rec = json.loads(fh.read().decode("utf-8"))
            if not isinstance(rec, dict) or "value" not in rec:
                raise ValueError("not a record")
            text = json.dumps(rec["value"], sort_keys=True, allow_nan=True)
            return rec, text, []
        with zipfile.ZipFile(fh) as z:
            members = _stored_members(z)
            rec = json.loads(bytes(_read_member(z, members, "__record__")).decode())
            if not isinstance(rec, dict) or not isinstance(rec.get("value_text"), str):
                raise ValueError("not a record")
            n_arrays, names = rec.get("n_arrays"), set(members) - {"__record__"}
            if type(n_arrays) is not int or n_arrays != len(names) or names != {f"a{i}" for i in range(n_arrays)}:
                raise ValueError(f"n_arrays = {_short(n_arrays)} does not match the file's arrays {_short(sorted(names))}")
            arrays = [_read_member(z, members, f"a{i}") for i in range(n_arrays)]
    return rec, rec["value_text"], arrays


def _stored_members(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Array name -> zip entry of an ``.npz`` as ``np.savez`` writes it: ``<name>.npy`` entries, stored
    uncompressed and unencrypted. Anything else (which the zip reader would refuse with assorted exception types,
    or decompress without bound) is a ValueError."""
    members = {}
    for info in z.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in members:
            raise ValueError(f"archive entry {_short(info.filename)} is not one array of a record")
        # Bits 3 (sizes after the data) and 11 (UTF-8 names) are what zip writers set for plain entries; any
        # other bit (encryption, patched data, ...) or a newer format version the zip reader refuses on its own
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & ~_PLAIN_ENTRY_FLAGS:
            raise ValueError(f"archive entry {_short(info.filename)} is compressed or encrypted (flag bits "
                             f"{info.flag_bits:#x}); records store arrays uncompressed")
        if info.extract_version > zipfile.MAX_EXTRACT_VERSION:
            raise ValueError(f"archive entry {_short(info.filename)} needs zip format version "
                             f"{info.extract_version / 10:.1f}")
        members[info.filename[:-4]] = info
    return members


_PLAIN_ENTRY_FLAGS = 0x8 | 0x800
_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_member(z: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], name: str) -> np.ndarray:
    """Array ``name`` of the archive, after checking that its ``.npy`` header's shape and dtype account for exactly
    the entry's bytes (``prod(shape) * itemsize``), so a damaged header cannot make the reader allocate more."""
    if name not in members:
        raise KeyError(f"no array {name!r} in the archive")
    info = members[name]
    with z.open(info) as stream:
        version = np.lib.format.read_magic(stream)
        if version not in _NPY_HEADERS:
            raise ValueError(f"array {name!r} has .npy format version {version}")
        shape, _, dtype = _NPY_HEADERS[version](stream)
        if dtype.hasobject:
            raise ValueError(f"array {name!r} holds Python objects")
        declared, held = math.prod(shape) * dtype.itemsize, info.file_size - stream.tell()
        if declared != held:
            raise ValueError(f"array {name!r} declares shape {_short(shape)} of {dtype} ({declared} bytes) but holds "
                             f"{held} bytes")
        stream.seek(0)
        return np.lib.format.read_array(stream, allow_pickle=False)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


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
    # RecursionError: how the json module refuses a document nested deeper than the interpreter's stack
    # NotImplementedError: how the zip reader refuses features of the format it does not implement
    except (OSError, ValueError, KeyError, TypeError, IndexError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            RecursionError, NotImplementedError) as exc:
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
