"""Where the toolkit reads and writes: the checkout is recognised by its pyproject.toml, caches and outputs go to the
user's folders (never into the package), committed results to the folder named, else the checkout's results/."""

from pathlib import Path

import pytest

import sft_tilt.store._locations as locations

HERE = Path(__file__).resolve()
CHECKOUT = HERE.parents[2]  # tests/store/test_locations.py -> the checkout's root


def _project(root: Path, pyproject: str | None) -> Path:
    package = root / "sft_tilt"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    if pyproject is not None:
        (root / "pyproject.toml").write_text(pyproject)
    return package


def test_a_checkout_is_recognised_by_the_distribution_its_pyproject_names(tmp_path):
    ours = _project(tmp_path / "ours", '[project]\nname = "sft-tilt-toolkit"\nversion = "0"\n')
    other = _project(tmp_path / "other", '[project]\nname = "store"\n[tool.x]\nname = "sft-tilt-toolkit"\n')
    bare = _project(tmp_path / "site-packages", None)
    broken = _project(tmp_path / "broken", "[project\nname = ")
    assert locations.find_checkout(ours) == tmp_path / "ours"
    assert locations.find_checkout(other) is None  # another project's table, even with our name elsewhere in it
    assert locations.find_checkout(bare) is None
    assert locations.find_checkout(broken) is None


def test_this_checkout_is_found():
    assert locations.CHECKOUT_ROOT == CHECKOUT
    assert locations.PACKAGE_DIR == CHECKOUT / "sft_tilt"


def test_the_cache_is_the_named_folder_else_the_users_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SFT_CACHE_DIR", str(tmp_path / "named"))
    assert locations.cache_root() == tmp_path / "named"
    monkeypatch.delenv("SFT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # platformdirs' user cache folder on Linux
    assert locations.cache_root() == tmp_path / "xdg-cache" / "sft-tilt"
    monkeypatch.setenv("SFT_CACHE_DIR", "")  # empty counts as unset
    assert locations.cache_root() == tmp_path / "xdg-cache" / "sft-tilt"


def test_a_folder_variable_naming_a_file_is_refused_by_name(tmp_path, monkeypatch):
    file = tmp_path / "a-file"
    file.write_text("")
    monkeypatch.setenv("SFT_CACHE_DIR", str(file))
    with pytest.raises(NotADirectoryError, match="SFT_CACHE_DIR"):
        locations.cache_root()
    monkeypatch.setenv("SFT_RESULTS_DIR", str(file))
    with pytest.raises(NotADirectoryError, match="SFT_RESULTS_DIR"):
        locations.results_dir()


def test_results_are_the_named_folder_else_the_checkouts_else_the_users(tmp_path, monkeypatch):
    monkeypatch.delenv("SFT_RESULTS_DIR", raising=False)
    assert locations.results_dir() == CHECKOUT / "results"
    assert locations.describe_results_dir() == f"Committed results read from {CHECKOUT / 'results'}."
    monkeypatch.setenv("SFT_RESULTS_DIR", str(tmp_path / "mine"))
    assert locations.results_dir() == tmp_path / "mine"
    line = locations.describe_results_dir()
    assert str(tmp_path / "mine") in line and "does not exist" in line and "--results-dir" in line
    monkeypatch.delenv("SFT_RESULTS_DIR")
    monkeypatch.setattr(locations, "CHECKOUT_ROOT", None)  # as installed from a wheel
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    assert locations.results_dir() == tmp_path / "xdg-data" / "sft-tilt" / "results"
    assert locations.user_output_dir() == tmp_path / "xdg-data" / "sft-tilt"


def test_nothing_defaults_into_the_package(monkeypatch):
    for name in ("SFT_CACHE_DIR", "SFT_RESULTS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(locations, "CHECKOUT_ROOT", None)
    for folder in (locations.cache_root(), locations.results_dir(), locations.user_output_dir()):
        assert not folder.resolve().is_relative_to(locations.PACKAGE_DIR), folder
