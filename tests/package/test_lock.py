"""requirements.lock (the exact versions `make` and CI install) against pyproject.toml (the ranges the toolkit
declares): every pin exact, every declared runtime and test dependency pinned, every pin inside its range."""

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]


def _declared() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]]


def _locked() -> dict[str, Requirement]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            assert canonicalize_name(req.name) not in pins, f"requirements.lock: {req.name} is pinned twice"
            pins[canonicalize_name(req.name)] = req
    return pins


def test_every_pin_is_one_exact_version():
    for name, req in _locked().items():
        (spec,) = req.specifier
        assert spec.operator == "==" and "*" not in spec.version, f"requirements.lock: {req} is not an exact pin"


def test_every_declared_dependency_is_pinned_inside_its_range():
    pins = _locked()
    for req in _declared():
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"requirements.lock: {req.name} (declared in pyproject.toml) is not pinned"
        (version,) = [s.version for s in pin.specifier]
        assert req.specifier.contains(version, prereleases=True), \
            f"requirements.lock pins {req.name}=={version}, outside pyproject.toml's {req}"


def test_the_known_bad_jax_release_is_excluded_and_not_locked():
    declared = {canonicalize_name(r.name): r for r in _declared()}
    for name in ("jax", "jaxlib"):
        assert not declared[name].specifier.contains("0.10.2"), f"pyproject.toml: {name} must exclude 0.10.2"
        assert declared[name].specifier.contains("0.10.3") and declared[name].specifier.contains("1.0")
        assert _locked()[name].specifier.contains("0.10.1")


def test_the_torch_extra_accepts_the_tested_release_and_every_later_one():
    """The losses are tested with the reference environment's torch (tools/reference-requirements.txt)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (torch,) = [Requirement(r) for r in project["optional-dependencies"]["torch"]]
    reference = [Requirement(line) for line in (ROOT / "tools" / "reference-requirements.txt").read_text().splitlines()
                 if line.startswith("torch==")]
    (tested,) = [s.version for s in reference[0].specifier]
    for version in (tested, "2.14.1", "2.15.0", "3.0"):
        assert torch.specifier.contains(version), f"the torch extra {torch} refuses torch {version}"
