"""Execute the teaching notebooks into ``notebooks/*.ipynb`` (``make notebooks``).

Each ``notebooks/NN_*.py`` (jupytext percent format, the source of truth) is converted with jupytext, run top to
bottom in a fresh Jupyter kernel (nbclient + ipykernel) from the repository root, and written next to its source as
``NN_*.ipynb`` with its printed output and inline PNG figures, so the notebooks render where the repository is
browsed. Figures are embedded at a modest resolution (``FIGURE_DPI``) to keep the files small; the PNG files the
notebooks also save go to a scratch folder outside the repository. Cell timing metadata is not recorded, so an
unchanged notebook re-executes to the same file apart from numbers that really changed.

    .venv/bin/python tools/execute_notebooks.py                 # every notebook
    .venv/bin/python tools/execute_notebooks.py notebooks/02_hard_tokens_and_talr.py

tests/package/test_notebooks.py fails when an executed notebook's cells differ from its ``.py`` source (stale).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
FIGURE_DPI = 72  # inline PNG resolution (a 6 x 4 in figure is 432 x 288 pixels)
CELL_TIMEOUT_S = 900


def execute(source: Path) -> Path:
    """Run one percent-format notebook in a kernel and write ``source.with_suffix('.ipynb')``; returns that path."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    nb = jupytext.read(source)
    nb.metadata.pop("jupytext", None)  # the pairing information describes the .py file, not this output
    client = NotebookClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT)}},
        record_timing=False,
        extra_arguments=[f"--InlineBackend.rc={{'figure.dpi': {FIGURE_DPI}}}"],
    )
    client.execute()
    target = source.with_suffix(".ipynb")
    nbformat.write(nb, target)
    return target


def main(argv: list[str]) -> int:
    sources = [Path(a).resolve() for a in argv] or sorted(NOTEBOOK_DIR.glob("[0-9][0-9]_*.py"))
    # The kernel inherits this environment: float64 JAX, inline figures (no forced backend), saved PNGs outside
    # the repository in a fixed scratch folder (its path is printed into the outputs).
    os.environ["JAX_ENABLE_X64"] = "1"
    os.environ.pop("MPLBACKEND", None)
    os.environ["SFT_NOTEBOOK_OUT"] = str(Path(tempfile.gettempdir()) / "sft_notebook_figures")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for source in sources:
        start = time.perf_counter()
        target = execute(source)
        size = target.stat().st_size
        print(f"{target.relative_to(ROOT)}: executed in {time.perf_counter() - start:.0f} s, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
