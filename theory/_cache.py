"""On-disk cache of derived results, keyed by content.

A cache entry lives at ``<root>/<namespace>/<key>.<suffix>`` where ``key`` is the SHA-256 of a
canonical JSON encoding of the caller's key material (configuration, code version, library versions).
Anything that could change the result must be in the key, so a stale entry is never found, rather
than found and checked. Writes go to a temporary file that is renamed into place, so an interrupted
run never leaves a half-written entry that a later run would read.

The root is ``$SFT_CACHE_DIR`` if set, else ``.cache/`` at the repository root.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

__all__ = [
    "cache_root",
    "content_key",
    "source_version",
    "library_versions",
    "atomic_write_bytes",
    "cached_pickle",
    "cached_json",
]

_REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_root() -> Path:
    """Directory holding every cache namespace (``$SFT_CACHE_DIR`` or ``<repo>/.cache``)."""
    return Path(os.environ.get("SFT_CACHE_DIR", _REPO_ROOT / ".cache"))


def _canonical(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.dtype.str, "shape": list(obj.shape), "sha": hashlib.sha256(obj.tobytes()).hexdigest()}
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, float):
        return repr(obj)  # repr round-trips exactly, unlike json's float formatting across versions
    if hasattr(obj, "__dataclass_fields__"):
        return {"__dataclass__": type(obj).__qualname__, **_canonical({f: getattr(obj, f) for f in obj.__dataclass_fields__})}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def content_key(material: Any) -> str:
    """SHA-256 hex digest of the canonical JSON encoding of ``material``."""
    blob = json.dumps(_canonical(material), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def source_version(*packages: str) -> str:
    """Hash of every ``.py`` file of the named top-level packages of this repository.

    Used as the "code version" part of a cache key: editing any source file of a package
    invalidates every result computed by it.
    """
    digest = hashlib.sha256()
    for package in packages:
        pkg_dir = _REPO_ROOT / package
        if not pkg_dir.is_dir():
            raise ValueError(f"packages: {package!r} is not a package directory of this repository")
        for path in sorted(pkg_dir.rglob("*.py")):
            digest.update(str(path.relative_to(_REPO_ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def library_versions(names: Iterable[str] = ("numpy", "scipy", "sympy", "jax", "jaxlib", "optax")) -> dict[str, str]:
    """Installed versions of the libraries whose numerics a cached result depends on."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _entry_path(namespace: str, material: Any, suffix: str, root: Path | None) -> Path:
    return Path(root or cache_root()) / namespace / f"{content_key(material)}.{suffix}"


def cached_pickle(namespace: str, material: Any, compute: Callable[[], Any], *, root: Path | None = None) -> Any:
    """Return ``compute()``, memoised on disk under ``namespace`` by the content key of ``material``."""
    path = _entry_path(namespace, material, "pkl", root)
    if path.exists():
        with open(path, "rb") as fh:
            return pickle.load(fh)
    value = compute()
    atomic_write_bytes(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    return value


def cached_json(namespace: str, material: Any, compute: Callable[[], Any], *, root: Path | None = None) -> Any:
    """Like :func:`cached_pickle` for JSON-serialisable results (human-readable on disk)."""
    path = _entry_path(namespace, material, "json", root)
    if path.exists():
        return json.loads(path.read_text())["value"]
    value = compute()
    atomic_write_bytes(path, json.dumps({"key_material": _canonical(material), "value": value}, indent=1, default=str).encode())
    return json.loads(path.read_text())["value"]
