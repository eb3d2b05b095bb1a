"""The LICENSE file is the Apache License 2.0 that pyproject.toml declares."""

import importlib.metadata
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_declares_apache_2_and_ships_the_license_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]


def test_the_license_file_is_the_apache_2_text():
    """Compared with the Apache-2.0 text jax ships (a dependency, so present wherever the toolkit is), ignoring
    only how the lines are indented."""
    jax = importlib.metadata.distribution("jax")
    (reference,) = [f for f in jax.files if f.name == "LICENSE" and "licenses" in f.parts]

    def words(text: str) -> list[str]:
        return text.split()

    ours = (ROOT / "LICENSE").read_text()
    assert ours.lstrip().startswith("Apache License\n") and "Version 2.0, January 2004" in ours
    assert words(ours) == words(reference.locate().read_text())
