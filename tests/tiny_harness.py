"""A tiny random GGUF model on disk with private cache and run folders: the harness's test environment."""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path

import jax

_VARIABLES = ("SFT_RUNS_DIR", "SFT_CACHE_DIR", "SFT_RESULTS_DIR", "SFT_TINY_MODEL", "SFT_REAL_LM_PRESET")


@contextlib.contextmanager
def tiny_harness_env(root: Path):
    """Write a tiny model (SmolLM2's vocabulary, random weights) under ``root``, point the harness's cache, run
    folders, committed results, tiny model and real-LM preset at it, yield ``{"root", "model", "preset"}``, and restore the
    environment afterwards."""
    from sft_tilt.lm.config import ModelConfig
    from sft_tilt.lm.gguf_io import save_gguf
    from sft_tilt.lm.model import init_params

    cfg = ModelConfig.tiny(vocab_size=49152, max_seq_len=512)
    path = Path(root) / "tiny.gguf"
    save_gguf(path, cfg, init_params(cfg, jax.random.key(0)))
    old = {k: os.environ.get(k) for k in _VARIABLES}
    os.environ.update(SFT_RUNS_DIR=str(Path(root) / "runs"), SFT_CACHE_DIR=str(Path(root) / "cache"),
                      SFT_RESULTS_DIR=str(Path(root) / "results"), SFT_TINY_MODEL=str(path), SFT_REAL_LM_PRESET="tiny")
    try:
        from sft_tilt.harness.presets import get_preset

        yield {"root": Path(root), "model": str(path), "preset": get_preset("tiny")}
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def counting_train_steps(monkeypatch, runs) -> list:
    """Make ``runs.run_one`` count the optimiser steps it computes: returns the list it appends one entry to per
    step (``runs`` is the ``sft_tilt.harness.runs`` module)."""
    calls = []
    make = runs.make_train_step

    def counting(*a, **k):
        step = make(*a, **k)

        @functools.wraps(step)  # keeps the step's attributes (its optimiser)
        def counted(*args):
            calls.append(1)
            return step(*args)

        return counted

    monkeypatch.setattr(runs, "make_train_step", counting)
    return calls
