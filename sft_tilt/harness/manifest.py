"""The manifest of committed results: the SHA-256 of every file a preset commits, checked whenever one is read.

A committed record carries a checksum of its content and the key it was written for. That catches a damaged file,
not an edited one: whoever edits a number can recompute both. ``<results>/<preset>/MANIFEST.json`` lists every
file under ``<results>/<preset>/`` with its SHA-256,

    {"format": "sft-tilt-manifest/1", "files": {"<path inside the preset folder>": "<sha256 hex>", ...}}

(paths with ``/``, sorted). It is written by the export (:mod:`sft_tilt.harness.results_export`) after every file it
copies, so an edit to a committed file shows in review as a change of ``MANIFEST.json`` too, or, made without
one, is refused when read: :func:`committed_file_problem` says why a committed file must not be served (no
manifest, not listed, another hash), and the readers of committed runs, early points and base-model analyses
report such a file by path and compute instead. The repository's test of its committed results checks every file
against its preset's manifest and that the manifest lists every file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sft_tilt.store import atomic_write_bytes

__all__ = ["MANIFEST", "FORMAT", "file_sha256", "write_manifest", "read_manifest", "manifest_problems",
           "committed_file_problem"]

#: The manifest's file name in each preset folder.
MANIFEST = "MANIFEST.json"
FORMAT = "sft-tilt-manifest/1"


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> dict[str, Path]:
    """The files a preset folder commits: every regular file under it but the manifest and leftover temporary files
    of an interrupted atomic write (``.<name>.<random>.tmp``)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST and not (path.name.startswith(".") and path.name.endswith(".tmp")):
            out[path.relative_to(folder).as_posix()] = path
    return out


def write_manifest(folder: Path) -> Path:
    """Write ``folder/MANIFEST.json`` listing every file under ``folder`` (a preset's committed results) with its
    SHA-256; sorted JSON, so the same files give the same bytes. Returns its path."""
    folder = Path(folder)
    files = {name: file_sha256(path) for name, path in _files(folder).items()}
    text = json.dumps({"format": FORMAT, "files": files}, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(folder / MANIFEST, text.encode())
    return folder / MANIFEST


def read_manifest(folder: Path) -> dict[str, str]:
    """``{path inside folder: sha256}`` from ``folder/MANIFEST.json``; ValueError naming the file when it is missing
    or not a manifest."""
    path = Path(folder) / MANIFEST
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ValueError(f"{path}: no manifest (the export writes one)") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ValueError(f"{path}: not a readable manifest ({type(exc).__name__}: {str(exc)[:200]})") from None
    files = data.get("files") if isinstance(data, dict) and data.get("format") == FORMAT else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ValueError(f"{path}: not a manifest of format {FORMAT}")
    return files


def manifest_problems(folder: Path) -> list[str]:
    """Everything in ``folder`` its manifest does not vouch for: a file not listed, a listed file missing, a file
    whose SHA-256 is not the listed one (empty: the manifest holds)."""
    folder = Path(folder)
    try:
        listed = read_manifest(folder)
    except ValueError as exc:
        return [str(exc)]
    present = _files(folder)
    problems = [f"{folder / name}: not listed in {folder / MANIFEST}" for name in sorted(set(present) - set(listed))]
    problems += [f"{folder / name}: listed in {folder / MANIFEST} but missing" for name in sorted(set(listed) - set(present))]
    problems += [f"{present[name]}: SHA-256 {file_sha256(present[name])} is not the manifest's {listed[name]}"
                 for name in sorted(set(listed) & set(present)) if file_sha256(present[name]) != listed[name]]
    return problems


def committed_file_problem(path: Path, root: Path) -> str | None:
    """Why the committed file ``path`` (under ``root/<preset>/``) must not be served, or None: its preset folder has
    no readable manifest, the manifest does not list it, or lists another SHA-256 (the file was edited after the
    export, however valid its own checksum)."""
    path, root = Path(path), Path(root)
    try:
        preset = path.relative_to(root).parts[0]
    except (ValueError, IndexError):
        return f"not under the results folder {root}"
    folder = root / preset
    try:
        listed = read_manifest(folder)
    except ValueError as exc:
        return str(exc)
    name = path.relative_to(folder).as_posix()
    if not path.is_file():  # a FIFO would block the read, a directory cannot be hashed
        return "not a regular file"
    if name not in listed:
        return f"not listed in {folder / MANIFEST}"
    digest = file_sha256(path)
    if digest != listed[name]:
        return f"its SHA-256 {digest} is not the one {folder / MANIFEST} lists ({listed[name]}): edited after the export"
    return None
