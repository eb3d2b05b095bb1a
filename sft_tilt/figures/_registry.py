"""Registry of figures: one function per figure, named after what it shows.

A figure function takes the output directory and returns the configuration that produced it
(a JSON-serialisable dict). It draws with matplotlib and calls :func:`save_figure`, which writes
``<name>.pdf``, ``<name>.png`` and ``<name>.json`` (the configuration) side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from sft_tilt.store import CHECKOUT_ROOT, PACKAGE_DIR, atomic_write_bytes, user_output_dir

__all__ = ["Figure", "FIGURES", "figure", "save_figure", "DEFAULT_OUT_DIR"]

#: Where figures go unless a folder is named: ``sft_tilt/figures/out/`` in a checkout, else ``figures/`` in the
#: user's data folder (never inside an installed package).
DEFAULT_OUT_DIR = PACKAGE_DIR / "figures" / "out" if CHECKOUT_ROOT is not None else user_output_dir() / "figures"


@dataclass(frozen=True)
class Figure:
    name: str
    description: str
    draw: Callable[[Path], dict[str, Any]]
    group: str


FIGURES: dict[str, Figure] = {}


def figure(name: str, description: str, group: str) -> Callable:
    """Decorator registering ``draw(out_dir) -> config`` as figure ``name``."""

    def register(draw: Callable[[Path], dict[str, Any]]) -> Callable[[Path], dict[str, Any]]:
        if name in FIGURES:
            raise ValueError(f"name: figure {name!r} is registered twice")
        FIGURES[name] = Figure(name=name, description=description, draw=draw, group=group)
        return draw

    return register


def save_figure(fig, out_dir: Path, name: str, config: dict[str, Any]) -> dict[str, Any]:
    """Save ``fig`` as vector PDF and PNG plus its configuration as JSON; close it; return ``config``."""
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / f"{name}.pdf", bbox_inches="tight")
    fig.savefig(out_dir / f"{name}.png", dpi=150, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(out_dir / f"{name}.json", json.dumps(config, indent=2, default=str).encode())
    return config
