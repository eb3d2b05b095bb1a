"""Content keys: SHA-256 of a canonical JSON encoding of the key material."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["OMIT_AT_DEFAULT", "key_field_values", "canonical", "content_key", "library_versions"]

#: Dataclass field metadata ``{OMIT_AT_DEFAULT: True}`` keeps the field out of the key material while it holds its
#: default, so a field added to a configuration leaves the key of everything computed before it unchanged.
OMIT_AT_DEFAULT = "omit_from_key_at_default"


def key_field_values(obj: Any) -> dict[str, Any]:
    """The fields of dataclass instance ``obj`` that enter its key material: all of them, less each field marked
    :data:`OMIT_AT_DEFAULT` while it equals its default."""
    out = {}
    for name, f in obj.__dataclass_fields__.items():
        value = getattr(obj, name)
        if not (f.metadata.get(OMIT_AT_DEFAULT) and value == f.default):
            out[name] = value
    return out


def canonical(obj: Any) -> Any:
    """A JSON-encodable form of ``obj`` in which equal content gives equal text.

    Dicts are sorted by key, floats are written with ``repr`` (exact round trip), arrays by dtype, shape and the
    SHA-256 of their bytes, dataclasses by type name and field values (:func:`key_field_values`).
    """
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "sha": hashlib.sha256(obj.tobytes()).hexdigest()}
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return canonical(obj.item())
    if isinstance(obj, float):
        return repr(obj)  # repr round-trips exactly, unlike json's float formatting across versions
    if hasattr(obj, "__dataclass_fields__"):
        return {"__dataclass__": type(obj).__qualname__, **canonical(key_field_values(obj))}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def content_key(material: Any) -> str:
    """SHA-256 hex digest of the canonical JSON encoding of ``material``."""
    blob = json.dumps(canonical(material), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def library_versions(names: Iterable[str] = ("numpy", "scipy", "sympy", "jax", "jaxlib", "optax")) -> dict[str, str]:
    """Installed versions of the libraries whose numerics a stored result depends on."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out
