"""The teaching notebooks (``notebooks/*.py``, jupytext percent format) run as scripts and keep their format.

Each notebook asserts its own claims against independent NumPy/SciPy computations, so "exit status 0" means every
check in it passed. They run in a fresh process (float64 set in the environment, as the notebooks require), from a
temporary working directory, with their figure folder ``SFT_NOTEBOOK_OUT`` in ``tmp_path``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))

# figures each notebook must write into SFT_NOTEBOOK_OUT
EXPECTED_FIGURES = {
    "01_one_step_as_a_tilt.py": ["01_one_step_bounds.png"],
    "02_hard_tokens_and_talr.py": ["02_talr_weights.png", "02_safe_step.png"],
    "03_learning_rate_tradeoff.py": ["03_matched_gain.png"],
}

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


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
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
        "theory.tilt",
        "_orig = theory.tilt\ntheory.tilt = lambda q, s, lam: _orig(q, s, 1.001 * lam)\n",
    ),
    "02_hard_tokens_and_talr.py": (
        "theory.talr_weights",
        "import jax.numpy as jnp\n"
        "theory.talr_weights = lambda l, tau, floor=None, mask=None: jax.nn.softmax(-jnp.asarray(l) * tau)\n",
    ),
}


@pytest.mark.parametrize("notebook", sorted(BROKEN_TOOLKIT), ids=str)
def test_notebook_fails_loudly_when_the_toolkit_is_wrong(notebook, tmp_path):
    target, patch = BROKEN_TOOLKIT[notebook]
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import jax\nimport theory\n" + patch, encoding="utf-8")
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    proc = _run_notebook(NOTEBOOK_DIR / notebook, tmp_path, {"PYTHONPATH": pythonpath})
    assert proc.returncode != 0, f"{notebook} did not notice a wrong {target}:\n{proc.stdout[-2000:]}"
    assert "AssertionError" in proc.stderr, proc.stderr[-3000:]
