"""Code keys: the source a result depends on, found from the static import graph.

``code_key("sft_tilt.harness.runs")`` hashes the source of ``sft_tilt/harness/runs.py`` and of every module of this
repository it imports, directly or through other modules (``import a.b``, ``from a import b``,
``from . import b`` and imports inside functions all count). A package imported on the way contributes its
``__init__.py``. Modules outside the repository (numpy, jax, ...) are covered by
:func:`sft_tilt.store.library_versions` instead.

The graph is read from the files with :mod:`ast`, without importing anything, so it is the same in every
process; results are memoised per process (the code a process runs is the code it read first).
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

from sft_tilt.store._locations import PACKAGE_DIR

__all__ = ["REPO_PACKAGES", "module_file", "imported_modules", "dependency_closure", "code_key"]

#: The package whose modules enter code keys.
REPO_PACKAGES = ("sft_tilt",)


def module_file(name: str) -> Path | None:
    """The source file of repository module ``name`` (a package's ``__init__.py``), or None if not in the repo."""
    if name.split(".")[0] not in REPO_PACKAGES:
        return None
    base = PACKAGE_DIR.parent.joinpath(*name.split("."))
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _is_package(name: str) -> bool:
    f = module_file(name)
    return f is not None and f.name == "__init__.py"


@functools.lru_cache(maxsize=None)
def imported_modules(name: str) -> frozenset[str]:
    """Repository modules that module ``name`` imports directly (its parent packages included)."""
    path = module_file(name)
    if path is None:
        raise ValueError(f"name: {name!r} is not a module of this repository")
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if _is_package(name) else name.rpartition(".")[0]
    found: set[str] = set()

    def add(mod: str) -> None:
        parts = mod.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ first
            prefix = ".".join(parts[:i])
            if module_file(prefix) is not None:
                found.add(prefix)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            add(base)
            for alias in node.names:  # ``from pkg import submodule``
                if alias.name != "*" and module_file(f"{base}.{alias.name}") is not None:
                    add(f"{base}.{alias.name}")
    for i in range(1, len(name.split("."))):
        add(".".join(name.split(".")[:i]))
    found.discard(name)
    return frozenset(found)


def dependency_closure(*names: str) -> tuple[str, ...]:
    """``names`` and every repository module reachable from them in the import graph, sorted."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(imported_modules(mod) - seen)
    return tuple(sorted(seen))


@functools.lru_cache(maxsize=None)
def code_key(*names: str) -> str:
    """SHA-256 (16 hex digits) of the paths and sources of :func:`dependency_closure` of ``names``."""
    if not names:
        raise ValueError("names: at least one module is needed")
    digest = hashlib.sha256()
    for mod in dependency_closure(*names):
        path = module_file(mod)
        digest.update(path.relative_to(PACKAGE_DIR.parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
