"""Where the toolkit reads and writes: the same rules in a checkout and in an installed wheel.

* :data:`CHECKOUT_ROOT` is the source checkout this package was imported from, recognised by a ``pyproject.toml``
  beside the package that names the distribution ``sft-tilt-toolkit``; it is ``None`` for an installed package
  (site-packages), which the toolkit never writes into.
* :func:`cache_root` holds every recomputable file (caches, run folders, compiled code):
  ``$SFT_CACHE_DIR``, else the user's cache folder for ``sft-tilt`` (``platformdirs.user_cache_dir``).
* :func:`results_dir` holds the committed results that reports read: ``$SFT_RESULTS_DIR``, else the checkout's
  ``results/``, else ``results/`` in the user's data folder for ``sft-tilt`` (``platformdirs.user_data_dir``),
  where ``export`` puts one's own runs.
* :func:`user_output_dir` is where generated pages and figures go by default outside a checkout.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

__all__ = ["unwritable", "APP_NAME", "DISTRIBUTION", "PACKAGE_DIR", "CHECKOUT_ROOT", "find_checkout", "cache_root", "results_dir",
           "describe_results_dir", "user_output_dir"]

#: The folder name under the user's cache and data folders.
APP_NAME = "sft-tilt"
#: The distribution name a checkout's ``pyproject.toml`` declares.
DISTRIBUTION = "sft-tilt-toolkit"

#: The ``sft_tilt`` package folder (in a checkout, or in site-packages).
PACKAGE_DIR = Path(__file__).resolve().parents[1]

def find_checkout(package_dir: Path) -> Path | None:
    """The folder holding ``package_dir`` if it is this project's source checkout, else None.

    A checkout is recognised by a ``pyproject.toml`` beside the package whose ``[project]`` table names
    :data:`DISTRIBUTION`; a site-packages folder has none, and another project's ``pyproject.toml`` names another
    distribution.
    """
    pyproject = Path(package_dir).parent / "pyproject.toml"
    try:
        with pyproject.open("rb") as file:
            project = tomllib.load(file).get("project")
    except (OSError, tomllib.TOMLDecodeError):
        return None
    name = project.get("name") if isinstance(project, dict) else None
    return pyproject.parent if name == DISTRIBUTION else None


#: The checkout this package was imported from, or None when it is installed (see :func:`find_checkout`).
CHECKOUT_ROOT = find_checkout(PACKAGE_DIR)


def _folder_from_env(name: str) -> Path | None:
    value = os.environ.get(name)
    if value is None or value == "":
        return None
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"${name}={value!r} names a file, not a folder")
    return path


def cache_root() -> Path:
    """Directory holding every cache namespace: ``$SFT_CACHE_DIR``, else ``platformdirs.user_cache_dir("sft-tilt")``."""
    override = _folder_from_env("SFT_CACHE_DIR")
    if override is not None:
        return override
    import platformdirs

    return Path(platformdirs.user_cache_dir(APP_NAME))


def results_dir() -> Path:
    """Folder of committed results: ``$SFT_RESULTS_DIR``, else the checkout's ``results/``, else
    ``<platformdirs.user_data_dir("sft-tilt")>/results`` (the folder need not exist: then no run is committed)."""
    override = _folder_from_env("SFT_RESULTS_DIR")
    if override is not None:
        return override
    if CHECKOUT_ROOT is not None:
        return CHECKOUT_ROOT / "results"
    return user_output_dir() / "results"


def describe_results_dir() -> str:
    """One sentence for a report: which results folder it read and, when that folder is absent, how to name one."""
    folder = results_dir()
    if folder.is_dir():
        return f"Committed results read from {folder}."
    return (f"Committed results: none ({folder} does not exist; name a results folder with --results-dir DIR or "
            f"$SFT_RESULTS_DIR, such as the results/ folder of a checkout).")


def user_output_dir() -> Path:
    """Where generated files go by default outside a checkout: ``platformdirs.user_data_dir("sft-tilt")``."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME))


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written under ``folder`` (creating it where missing), or None: the folder, or its nearest
    existing parent, is not a directory or not writable."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory" if existing == folder else f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
