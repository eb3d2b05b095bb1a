"""The house's floors: data flows store -> theory -> sims -> claims -> figures, never back.

The import graph is read statically (``store.imported_modules``), so a function-level import counts too.
"""

from pathlib import Path

import pytest

from store import REPO_ROOT, imported_modules

# which top-level packages each package may import (itself included)
ALLOWED = {
    "store": {"store"},
    "theory": {"store", "theory"},
    "sims": {"store", "theory", "sims"},
    "claims": {"store", "theory", "sims", "claims"},
    "figures": {"store", "theory", "sims", "claims", "figures"},
}


def _modules(package: str) -> list[str]:
    root = REPO_ROOT / package
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(REPO_ROOT).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    wrong = [(mod, dep) for mod in _modules(package) for dep in sorted(imported_modules(mod))
             if dep.split(".")[0] not in ALLOWED[package]]
    assert wrong == []


def test_the_model_library_does_not_import_the_harness_or_the_synthetic_room():
    wrong = [(mod, dep) for mod in _modules("sims") if mod.startswith("sims.lm")
             for dep in sorted(imported_modules(mod)) if dep.startswith(("sims.harness", "sims.synthetic"))]
    assert wrong == []


def test_no_private_module_of_another_package_is_imported():
    """``theory._validate`` may be used inside ``theory`` only, and no module imports a command line
    (``__main__``); other packages use the public names."""
    wrong = []
    for package in ALLOWED:
        for mod in _modules(package):
            for dep in imported_modules(mod):
                top, _, rest = dep.partition(".")
                if top != package and any(part.startswith("_") and part != "__init__" for part in rest.split(".") if part):
                    wrong.append((mod, dep))
    assert wrong == []


def test_no_grab_bag_modules():
    # virtual environments (.venv, .venv-ref from `make reference-env`) hold other projects' modules
    names = {p.stem for p in Path(REPO_ROOT).rglob("*.py") if not any(part.startswith(".venv") for part in p.parts)}
    assert not names & {"utils", "helpers", "misc", "common"}


def test_the_repository_speaks_of_itself():
    """Code, docs and generated files cite the repository's own claim table and derivations, never notes that live
    outside it or a tracker's numbering."""
    import re

    outside = re.compile("|".join([r"shared" + "/", r"\bissue\s*#?\d", r"\bitems?\s+\d", r"\bissue's\b"]), re.IGNORECASE)
    roots = ["store", "theory", "sims", "claims", "figures", "notebooks", "tools", "tests", "torch_losses"]
    files = [p for r in roots if (REPO_ROOT / r).is_dir() for p in (REPO_ROOT / r).rglob("*")
             if p.suffix in (".py", ".md", ".txt", ".json", ".ipynb") and "fixtures" not in p.parts]
    files += [REPO_ROOT / f for f in ("README.md", "paper_checks.md", "Makefile", "pyproject.toml")]
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if outside.search(line):
                hits.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()[:80]}")
    assert hits == []


def test_real_lm_run_keys_do_not_depend_on_reports_figures_or_the_command_line():
    """A label fix in the report, a figure, a claim rule or the CLI recomputes no fine-tuning run."""
    from store import dependency_closure

    closure = set(dependency_closure("sims.harness.runs"))
    assert "sims.harness.runs" in closure and "sims.lm.model" in closure and "sims.weighting" in closure
    for unrelated in ("sims.harness.report", "sims.harness.__main__", "sims.harness.presets", "sims.harness.experiments"):
        assert unrelated not in closure
    assert not any(m.startswith(("figures", "claims", "sims.synthetic")) for m in closure)
