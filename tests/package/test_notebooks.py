"""The teaching notebooks (``notebooks/*.py``, jupytext percent format) run as scripts and keep their format.

Each notebook asserts its own claims against independent NumPy/SciPy computations, so "exit status 0" means every
check in it passed. They run in a fresh process (float64 set in the environment, as the notebooks require), from a
temporary working directory, with their figure folder ``SFT_NOTEBOOK_OUT`` in ``tmp_path``.

The executed copies ``notebooks/*.ipynb`` (written by ``make notebooks``) must hold exactly the cells of their
``.py`` source; the comparison parses both files itself (JSON and the percent format), so it needs no jupytext.
Each notebook ends with exercises whose reference answers pass their check cells, and a wrong answer fails them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))

# figures each notebook must write into SFT_NOTEBOOK_OUT
EXPECTED_FIGURES = {
    "01_one_step_as_a_tilt.py": ["01_one_step_bounds.png"],
    "02_hard_tokens_and_talr.py": ["02_talr_weights.png", "02_safe_step.png"],
    "03_learning_rate_tradeoff.py": ["03_matched_gain.png"],
    "04_real_model_one_step.py": ["04_real_model_one_step.png"],
    "05_step_monitor.py": ["05_step_monitor.png"],
}
MAX_EXECUTED_KIB = 400  # an executed notebook stays small enough to read in a repository browser

JUPYTEXT_HEADER = [
    "# ---",
    "# jupyter:",
    "#   jupytext:",
    "#     formats: py:percent",
    "#     text_representation:",
    "#       extension: .py",
    "#       format_name: percent",
]


def _cells(text: str) -> list[tuple[str, list[str]]]:
    """Split a percent-format file into ``(kind, lines)`` cells; ``kind`` is ``"markdown"`` or ``"code"``.

    Lines before the first ``# %%`` marker (the YAML header) are not a cell.
    """
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if line.strip() == "# %% [markdown]" else "code"
            if line.strip() not in ("# %%", "# %% [markdown]"):
                raise AssertionError(f"unexpected cell marker {line!r}")
            cells.append((kind, []))
        elif cells:
            cells[-1][1].append(line)
    return cells


def _jupytext_cells(text: str) -> list[tuple[str, str]]:
    """The ``(cell_type, source)`` pairs jupytext makes of a percent-format file: markdown lines lose their ``"# "``
    (or a bare ``"#"``), and blank lines around each cell's text are dropped."""
    out = []
    for kind, lines in _cells(text):
        if kind == "markdown":
            lines = [line[2:] if line.startswith("# ") else ("" if line == "#" else line) for line in lines]
        while lines and not lines[-1].strip():
            lines.pop()
        while lines and not lines[0].strip():
            lines.pop(0)
        out.append((kind, "\n".join(lines)))
    return out


def _ipynb_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def test_there_are_notebooks_with_known_figures():
    assert len(NOTEBOOKS) >= 2, f"expected at least two notebooks in {NOTEBOOK_DIR}"
    for nb in NOTEBOOKS:
        assert nb.name in EXPECTED_FIGURES, f"{nb.name}: add its figures to EXPECTED_FIGURES"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_jupytext_percent_header_and_cells(notebook):
    text = notebook.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[: len(JUPYTEXT_HEADER)] == JUPYTEXT_HEADER
    header_end = lines.index("# ---", 1)
    assert "#     name: python3" in lines[:header_end]
    cells = _cells(text)
    kinds = [kind for kind, _ in cells]
    assert kinds[0] == "markdown", "a notebook opens with a markdown cell (title and what it teaches)"
    assert kinds.count("markdown") >= 4 and kinds.count("code") >= 4
    for kind, body in cells:
        if kind == "markdown":
            # jupytext markdown cells: every non-blank line is a comment line ("# text" or a bare "#")
            for line in body:
                assert line == "" or line == "#" or line.startswith("# "), f"{notebook.name}: {line!r}"
            assert any(line.strip("# ") for line in body), f"{notebook.name}: empty markdown cell"
        else:
            assert any(line.strip() and not line.startswith("#") for line in body), f"{notebook.name}: empty code cell"
    # the notebooks check claims with asserts, not just print them
    assert sum(line.lstrip().startswith("assert ") for line in lines) >= 10


def _run_notebook(notebook: Path, tmp_path: Path, extra_env: dict | None = None) -> subprocess.CompletedProcess:
    out = tmp_path / "out"
    work = tmp_path / "cwd"
    work.mkdir()
    env = dict(os.environ, JAX_ENABLE_X64="1", MPLBACKEND="Agg", SFT_NOTEBOOK_OUT=str(out), **(extra_env or {}))
    return subprocess.run([sys.executable, str(notebook)], cwd=work, env=env, capture_output=True, text=True, timeout=600)


# The real-model notebooks run SmolLM2: 04 (float64 forward passes) is execution-bound (see tests/conftest.py); 05
# trains SmolLM2 for a few steps at two learning rates, minutes on two cores, so its run as a script is in the slow
# suite (`make test-slow`); its executed .ipynb is checked in the default suite (current with its source, outputs,
# figures, no error).
def _script_marks(notebook):
    if notebook.name.startswith("05_"):
        return [pytest.mark.slow]
    return [pytest.mark.execution_bound] if notebook.name.startswith("04_") else []


@pytest.mark.parametrize("notebook", [pytest.param(p, marks=_script_marks(p)) for p in NOTEBOOKS], ids=lambda p: p.name)
def test_notebook_runs_as_a_script(notebook, tmp_path):
    out, work = tmp_path / "out", tmp_path / "cwd"
    proc = _run_notebook(notebook, tmp_path)
    assert proc.returncode == 0, f"{notebook.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    for name in EXPECTED_FIGURES[notebook.name]:
        fig = out / name
        assert fig.is_file() and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{notebook.name}: no figure {name}"
    assert not any(work.iterdir()), f"{notebook.name} wrote into its working directory: {list(work.iterdir())}"


# A wrong toolkit function, installed by a sitecustomize module before the notebook runs: the notebook's own
# independent checks must catch it (exit status != 0 with an AssertionError), not print a wrong number.
BROKEN_TOOLKIT = {
    "01_one_step_as_a_tilt.py": (
        "sft_tilt.theory.tilt",
        "_orig = sft_tilt.theory.tilt\nsft_tilt.theory.tilt = lambda q, s, lam: _orig(q, s, 1.001 * lam)\n",
    ),
    "02_hard_tokens_and_talr.py": (
        "sft_tilt.theory.talr_weights",
        "import jax.numpy as jnp\n"
        "sft_tilt.theory.talr_weights = lambda l, tau, floor=None, mask=None: jax.nn.softmax(-jnp.asarray(l) * tau)\n",
    ),
}


@pytest.mark.parametrize("notebook", sorted(BROKEN_TOOLKIT), ids=str)
def test_notebook_fails_loudly_when_the_toolkit_is_wrong(notebook, tmp_path):
    target, patch = BROKEN_TOOLKIT[notebook]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import jax\nimport sft_tilt.theory\n" + patch, encoding="utf-8")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    proc = _run_notebook(NOTEBOOK_DIR / notebook, tmp_path, {"PYTHONPATH": pythonpath})
    assert proc.returncode != 0, f"{notebook} did not notice a wrong {target}:\n{proc.stdout[-2000:]}"
    assert "AssertionError" in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_notebook_is_current_with_its_source(notebook):
    """notebooks/NN_*.ipynb holds the cells of NN_*.py (run ``make notebooks`` after editing a notebook)."""
    executed = notebook.with_suffix(".ipynb")
    assert executed.is_file(), f"{executed.name} is missing: run `make notebooks`"
    cells = _ipynb_cells(executed)
    want = _jupytext_cells(notebook.read_text(encoding="utf-8"))
    got = [(c["cell_type"], _source(c)) for c in cells]
    assert len(got) == len(want), f"{executed.name} has {len(got)} cells, its source {len(want)}: run `make notebooks`"
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"{executed.name} cell {i} is stale (run `make notebooks`):\n{g[1][:300]!r}\n!=\n{w[1][:300]!r}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_executed_notebook_has_outputs_figures_and_no_errors(notebook):
    executed = notebook.with_suffix(".ipynb")
    if not executed.is_file():
        pytest.fail(f"{executed.name} is missing: run `make notebooks`")
    assert executed.stat().st_size <= MAX_EXECUTED_KIB * 1024, f"{executed.name} is larger than {MAX_EXECUTED_KIB} KiB"
    code = [c for c in _ipynb_cells(executed) if c["cell_type"] == "code"]
    assert all(c.get("execution_count") for c in code), f"{executed.name}: some code cell was not executed"
    outputs = [o for c in code for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"], f"{executed.name}: a cell raised"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= len(EXPECTED_FIGURES[notebook.name]), f"{executed.name}: figures are not embedded"


def test_percent_parser_agrees_with_jupytext():
    """The staleness check's own parser reads every notebook exactly as jupytext does (runs where jupytext is
    installed: `make notebooks` installs it)."""
    jupytext = pytest.importorskip("jupytext")
    for notebook in NOTEBOOKS:
        nb = jupytext.read(notebook)
        assert [(c.cell_type, c.source) for c in nb.cells] == _jupytext_cells(notebook.read_text(encoding="utf-8"))


def test_staleness_check_notices_an_edited_source(tmp_path):
    """Guard: one changed code line makes the comparison fail."""
    notebook = NOTEBOOKS[0]
    text = notebook.read_text(encoding="utf-8").replace("rng = np.random.default_rng(", "rng = np.random.default_rng(1 + ", 1)
    assert text != notebook.read_text(encoding="utf-8")
    got = [(c["cell_type"], _source(c)) for c in _ipynb_cells(notebook.with_suffix(".ipynb"))]
    assert got != _jupytext_cells(text)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_ends_with_two_or_three_checked_exercises(notebook):
    """An "## Exercises" section; for each exercise N a markdown statement, then an answer cell
    ("# Answer to exercise N ...") and a check cell ("# Check of exercise N ...") that asserts."""
    cells = _jupytext_cells(notebook.read_text(encoding="utf-8"))
    start = next(i for i, (kind, src) in enumerate(cells) if kind == "markdown" and src.startswith("## Exercises"))
    tail = cells[start:]
    statements = [src for kind, src in tail if kind == "markdown" and re.search(r"\*\*Exercise \d+\.\*\*", src)]
    assert 2 <= len(statements) <= 3, f"{notebook.name}: {len(statements)} exercises"
    for n in range(1, len(statements) + 1):
        answer = [i for i, (kind, src) in enumerate(tail) if kind == "code" and src.startswith(f"# Answer to exercise {n}")]
        check = [i for i, (kind, src) in enumerate(tail) if kind == "code" and src.startswith(f"# Check of exercise {n}")]
        assert len(answer) == 1 and len(check) == 1 and check[0] > answer[0], f"{notebook.name}: exercise {n} cells"
        assert "assert " in tail[check[0]][1], f"{notebook.name}: the check of exercise {n} asserts nothing"


# A wrong answer substituted into an answer cell: the notebook must stop at that exercise's check.
WRONG_ANSWERS = {
    "02_hard_tokens_and_talr.py": ("tau_answer = np.log(0.05 / 0.9) / np.log(0.1)", "tau_answer = 1.0", "Exercise 1"),
}


@pytest.mark.parametrize("notebook", sorted(WRONG_ANSWERS), ids=str)
def test_a_wrong_exercise_answer_fails_its_check(notebook, tmp_path):
    right, wrong, exercise = WRONG_ANSWERS[notebook]
    text = (NOTEBOOK_DIR / notebook).read_text(encoding="utf-8")
    assert text.count(right) == 1, f"{notebook}: the reference answer {right!r} is not in the notebook once"
    edited = tmp_path / notebook
    edited.write_text(text.replace(right, wrong), encoding="utf-8")
    proc = _run_notebook(edited, tmp_path)
    assert proc.returncode != 0, f"{notebook}: the wrong answer {wrong!r} passed the check"
    assert "AssertionError" in proc.stderr and exercise in proc.stderr, proc.stderr[-3000:]
