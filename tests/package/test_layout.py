"""The house's floors: data flows store -> theory -> methods -> monitor / lm / synthetic -> harness -> claims -> figures,
never back, all inside the one ``sft_tilt`` package.

The import graph is read statically (``sft_tilt.store.imported_modules``), so a function-level import counts too.
"""

from pathlib import Path

import pytest

from sft_tilt.store import CHECKOUT_ROOT, PACKAGE_DIR, imported_modules

# which subpackages of sft_tilt each subpackage may import (itself included)
_BASE = {"store", "theory"}
ALLOWED = {
    "store": {"store"},
    "theory": {"store", "theory"},
    "analysis": {"analysis"},
    "methods": _BASE | {"methods"},
    "monitor": _BASE | {"methods", "monitor"},
    "lm": {"store", "lm"},
    "synthetic": _BASE | {"methods", "analysis", "synthetic"},
    "harness": _BASE | {"methods", "analysis", "monitor", "lm", "harness"},
    "claims": _BASE | {"methods", "analysis", "monitor", "synthetic", "harness", "claims"},
    "figures": _BASE | {"methods", "analysis", "monitor", "synthetic", "harness", "claims", "figures"},
    "torch_losses": {"torch_losses"},
    "benchmarks": _BASE | {"methods", "analysis", "monitor", "lm", "synthetic", "harness", "benchmarks"},
}


def _sub(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _modules(package: str) -> list[str]:
    root = PACKAGE_DIR / package
    out = []
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return out


def test_every_subpackage_has_a_floor():
    found = {p.name for p in PACKAGE_DIR.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert found == set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_flow_one_way(package):
    wrong = [(mod, dep) for mod in _modules(package) for dep in sorted(imported_modules(mod))
             if _sub(dep) and _sub(dep) not in ALLOWED[package]]
    assert wrong == []


def test_the_model_library_does_not_import_the_harness_or_the_synthetic_room():
    wrong = [(mod, dep) for mod in _modules("lm")
             for dep in sorted(imported_modules(mod)) if dep.startswith(("sft_tilt.harness", "sft_tilt.synthetic"))]
    assert wrong == []


def test_no_private_module_of_another_package_is_imported():
    """``sft_tilt.theory._validate`` may be used inside ``theory`` only, and no module imports a command line
    (``__main__``); other packages use the public names."""
    wrong = []
    for package in ALLOWED:
        for mod in _modules(package):
            for dep in imported_modules(mod):
                rest = dep.split(".", 2)[2] if dep.count(".") >= 2 else ""
                if _sub(dep) != package and any(part.startswith("_") and part != "__init__" for part in rest.split(".") if part):
                    wrong.append((mod, dep))
    assert wrong == []


def test_no_grab_bag_modules():
    # virtual environments (.venv, .venv-ref from `make reference-env`) hold other projects' modules
    names = {p.stem for p in Path(CHECKOUT_ROOT).rglob("*.py") if not any(part.startswith(".venv") for part in p.parts)}
    assert not names & {"utils", "helpers", "misc", "common"}


def test_the_repository_speaks_of_itself():
    """Code, docs and generated files cite the repository's own claim table and derivations, never notes that live
    outside it or a tracker's numbering."""
    import re

    outside = re.compile("|".join([r"shared" + "/", r"\bissue\s*#?\d", r"\bitems?\s+\d", r"\bissue's\b"]), re.IGNORECASE)
    roots = ["sft_tilt", "notebooks", "tools", "tests", "docs"]
    files = [p for r in roots if (CHECKOUT_ROOT / r).is_dir() for p in (CHECKOUT_ROOT / r).rglob("*")
             if p.suffix in (".py", ".md", ".txt", ".json", ".ipynb") and "fixtures" not in p.parts]
    files += [CHECKOUT_ROOT / f for f in ("README.md", "paper_checks.md", "Makefile", "pyproject.toml")]
    hits = []
    for path in files:
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            if outside.search(line):
                hits.append(f"{path.relative_to(CHECKOUT_ROOT)}:{number}: {line.strip()[:80]}")
    assert hits == []


def test_real_lm_run_keys_do_not_depend_on_reports_figures_or_the_command_line():
    """A label fix in the report, a figure, a claim rule or the CLI recomputes no fine-tuning run."""
    from sft_tilt.store import dependency_closure

    closure = set(dependency_closure("sft_tilt.harness.runs"))
    assert "sft_tilt.harness.runs" in closure and "sft_tilt.lm.model" in closure and "sft_tilt.methods.weighting" in closure
    for unrelated in ("sft_tilt.harness.report", "sft_tilt.harness.__main__", "sft_tilt.harness.presets", "sft_tilt.harness.experiments"):
        assert unrelated not in closure
    assert not any(m.startswith(("sft_tilt.figures", "sft_tilt.claims", "sft_tilt.synthetic")) for m in closure)


# the modules that train or evaluate a model: the harness's sweep runs them, a reader of results never does
_TRAINER = ("sft_tilt.harness.runs", "sft_tilt.harness.methods", "sft_tilt.harness.lora", "sft_tilt.harness.session",
            "sft_tilt.harness.measure", "sft_tilt.harness.experiments", "sft_tilt.harness.early_points",
            "sft_tilt.harness.base_model_analyses", "sft_tilt.harness.sweep_workers")


def test_the_trainer_modules_are_the_ones_that_train():
    """The list above is the trainer: the sweep's experiments reach the training loop and the optimiser through it,
    and no module outside the harness's computing side is the one LM trainer."""
    from sft_tilt.store import dependency_closure, module_file

    assert {"sft_tilt.harness.runs", "sft_tilt.harness.methods"} <= set(dependency_closure("sft_tilt.harness.experiments"))
    assert all(module_file(m) is not None for m in _TRAINER)
    assert module_file("sft_tilt.lm.training") is None  # one LM trainer: the harness's


def test_claims_and_figures_never_import_the_trainer():
    """Checking a claim or drawing a figure reads stored results: no claim or figure module reaches a module that
    trains or evaluates a model, directly or through others (function-level imports count)."""
    from sft_tilt.store import dependency_closure

    readers = _modules("claims") + _modules("figures")
    closure = set(dependency_closure(*readers))
    assert "sft_tilt.harness.experiment_results" in closure  # they do read the real-LM experiments
    assert sorted(closure & set(_TRAINER)) == []


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of ``graph`` with more than one module (the import cycles)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    """No module reaches itself through the static import graph. A module's edge to the packages above it (Python
    runs ``a/__init__`` before ``a.b``) is not a dependency of its own, so a package re-exporting its submodules is
    no cycle."""
    modules = [m for p in ALLOWED for m in _modules(p)] + ["sft_tilt"]
    graph = {m: {d for d in imported_modules(m) if d in modules and not m.startswith(d + ".")} for m in modules}
    assert _strongly_connected(graph) == []
    # the check sees a cycle when there is one
    assert _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_test_files_have_unique_names():
    """The test folders are not packages (pytest imports each file by its base name), so two test files with the same
    name in different folders cannot both be collected."""
    tests = Path(__file__).resolve().parents[1]
    names = [p.name for p in tests.rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
