"""Computing the early points of a run: its first steps recomputed with an evaluation at every step
(:mod:`sft_tilt.harness.stored_early_points` says what a record holds and how it is read and spliced). Computed by the
sweep,

    python -m sft_tilt.harness sweep --preset cpu --experiment early [--workers 2]

for every run of the preset's learning-rate grid (``Preset.early_until`` > 0).
"""

from __future__ import annotations

from sft_tilt.harness.stored_early_points import (AGREEMENT, FOLDER, EarlyMismatch, _code_keys, committed_early_paths,
                                                  early_config, read_early, record_path, splice, with_early)

__all__ = ["compute_early", "ensure_early", "AGREEMENT", "FOLDER", "EarlyMismatch", "early_config", "record_path",
           "read_early", "splice", "with_early", "committed_early_paths"]


def compute_early(cfg, until: int, progress: bool = False) -> dict:
    """Recompute the first ``until`` steps of run ``cfg`` evaluated at every step; write and return the record."""
    from sft_tilt.store import write_record

    from sft_tilt.harness.runs import run_key, run_one

    if isinstance(until, bool) or not isinstance(until, int) or not 1 <= until <= cfg.steps:
        raise ValueError(f"until: must be an int in [1, steps={cfg.steps}], got {until!r}")
    key = run_key(cfg)
    points = run_one(early_config(cfg), progress=progress, stop_after=until)
    kept = [{"step": int(p["step"]), "domain_loss": float(p["domain_loss"]),
             "general": {k: float(v) for k, v in p["general"].items()},
             # the per-item measurements, where the evaluation records them, so resampling the evaluation sample
             # reads the spliced trajectory too (sft_tilt.analysis.crossed_bootstrap)
             **({"items": p["items"]} if isinstance(p.get("items"), dict) else {})}
            for p in points if int(p["step"]) <= until]
    if [p["step"] for p in kept] != list(range(1, until + 1)):
        raise RuntimeError(f"early points of run {key}: expected steps 1..{until}, got {[p['step'] for p in kept]}")
    record = {"run_key": key, "until": until, "code_keys": _code_keys(), "label": cfg.label(), "points": kept}
    write_record(record_path(key), record, key=key)
    return record


def ensure_early(cfg, until: int, progress: bool = False) -> dict:
    """The record of run ``cfg`` for ``until`` steps, computed when none is stored."""
    from sft_tilt.harness.runs import run_key

    return read_early(run_key(cfg), until) or compute_early(cfg, until, progress)
