"""Every figure of the toolkit, from one registry.

``python -m sft_tilt.figures --list`` lists the figures, ``python -m sft_tilt.figures NAME...`` draws some,
``python -m sft_tilt.figures all`` draws all of them into ``sft_tilt/figures/out/`` and rewrites ``paper_checks.md`` from the
claim checks of :mod:`claims` (the figures only draw; the claims' evidence and decision rules live there).
"""

import os

# Bound checks run in float64. This must precede the first JAX import, which importing any
# submodule below triggers (through theory); the LM code sets float32 explicitly where it wants it.
os.environ.setdefault("JAX_ENABLE_X64", "1")

from sft_tilt.figures._registry import DEFAULT_OUT_DIR, FIGURES, figure, save_figure

# Importing a module registers its figures.
from sft_tilt.figures import theory_figures as _theory_figures  # noqa: E402,F401
from sft_tilt.figures import synthetic_figures as _synthetic_figures  # noqa: E402,F401
from sft_tilt.figures import real_lm_figures as _real_lm_figures  # noqa: E402,F401

__all__ = ["FIGURES", "figure", "save_figure", "DEFAULT_OUT_DIR"]
