"""Content keys: SHA-256 of a canonical JSON encoding of the key material."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["canonical", "content_key", "library_versions"]


def canonical(obj: Any) -> Any:
    """A JSON-encodable form of ``obj`` in which equal content gives equal text.

    Dicts are sorted by key, floats are written with ``repr`` (exact round trip), arrays by dtype, shape and the
    SHA-256 of their bytes, dataclasses by type name and field values (those its ``canonical_fields()`` returns, when
    it has that method: a configuration leaves out fields added later while they hold their defaults, so keys made
    before them stay).
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
        fields = (obj.canonical_fields() if callable(getattr(obj, "canonical_fields", None))
                  else {f: getattr(obj, f) for f in obj.__dataclass_fields__})
        return {"__dataclass__": type(obj).__qualname__, **canonical(fields)}
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
