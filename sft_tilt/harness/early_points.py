"""The first steps of a run evaluated at every step, so a fast run's matched gains are measured, not interpolated.

A run is evaluated every ``eval_every`` steps. A learning rate that passes a matched domain gain Δ* before the first
evaluation point gets, at Δ*, the chord from the base model to that point (``sft_tilt.analysis.matched_gain.from_base``):

    D(Δ*) = Δ* D_1 / G_1          (G_1, D_1: domain gain and general change at the first point)

which is linear in Δ* by construction and says nothing about how degradation grows along the way. On the ``cpu``
preset (first point at step 10, the end of the warm-up) that is every matched gain of the two largest learning rates.

Here the first ``until`` steps of a run are recomputed with ``eval_every = 1`` and its configuration otherwise
unchanged (``sft_tilt.harness.runs.run_one(..., stop_after=until)``): the same batches, learning rates and parameters, so
the recomputed point at step ``until`` must equal the run's own (:func:`splice` checks it to ``AGREEMENT``) and the
points before it fill the run's first interval. Nothing else is evaluated (no accuracies beyond what every point
measures, no checkpoints).

A record holds, for run key ``k``, the raw evaluations (domain loss, general losses per set) at steps ``1..until``,
with the code keys it was computed under (the run code's and :func:`early_config`'s). It is stored as a checksummed record
``<runs>/early/<k>.json`` and committed by ``python -m sft_tilt.harness export`` as ``results/<preset>/early/<k>.json``;
a record whose code keys differ from the current code's is stale and ignored (with a message). Computed by

    python -m sft_tilt.harness sweep --preset cpu --experiment early [--workers 2]

for every run of the preset's learning-rate grid (``Preset.early_until`` > 0).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

__all__ = ["AGREEMENT", "EarlyMismatch", "early_config", "record_path", "read_early", "compute_early", "ensure_early",
           "splice", "with_early", "committed_early_paths"]

#: Largest difference (nats/token) allowed between the recomputed point at step ``until`` and the run's own. The two
#: are the same computation, so they agree to float32 round-off of the evaluation (measured: equal bit for bit).
AGREEMENT = 1e-5
FOLDER = "early"


class EarlyMismatch(ValueError):
    """The recomputed first steps do not reproduce the run's own point: the record is not of this run's trajectory."""


def early_config(cfg):
    """``cfg`` evaluated at every step and without checkpoints; training is unchanged."""
    return dataclasses.replace(cfg, eval_every=1, checkpoint_state=False)


def _code_keys() -> dict[str, str]:
    """What the stored evaluations depend on: the run code (``run_one`` and everything it imports) and the rule
    that derives the recomputed configuration (:func:`early_config`'s source). Splicing and reading are not in it,
    so editing them keeps the records."""
    import hashlib
    import inspect

    from sft_tilt.harness.versions import TRAINING_VERSION

    rule = hashlib.sha256(inspect.getsource(early_config).encode()).hexdigest()[:16]
    return {"runs": TRAINING_VERSION, "early_config": rule}


def record_path(key: str, root: Path | None = None) -> Path:
    from sft_tilt.harness.runs import runs_dir

    return (runs_dir() if root is None else Path(root)) / FOLDER / f"{key}.json"


def committed_early_paths(key: str) -> list[Path]:
    """The committed records of run ``key``: ``<results>/*/early/<key>.json`` in name order."""
    from sft_tilt.harness.runs import results_dir

    root = results_dir()
    return sorted(root.glob(f"*/{FOLDER}/{key}.json")) if root.is_dir() else []


def _valid(record, key: str, until: int, where: Path) -> bool:
    if not isinstance(record, dict):
        return False
    if record.get("run_key") != key or record.get("code_keys") != _code_keys():
        warnings.warn(f"{where}: early points computed under other code (keys {record.get('code_keys')}); ignored, "
                      f"recompute with `python -m sft_tilt.harness sweep --experiment early`")
        return False
    return int(record.get("until", 0)) >= until


def read_early(key: str, until: int) -> dict | None:
    """The record of run ``key`` covering steps ``1..until`` (the cache first, then a committed one), else None."""
    from sft_tilt.store import read_record

    if not (isinstance(key, str) and key.isalnum()):
        raise ValueError(f"key: expected a run key (letters and digits), got {key!r}")
    cache = record_path(key)
    record = read_record(cache, key=key) if cache.exists() else None
    if _valid(record, key, until, cache):
        return record
    for path in committed_early_paths(key):
        record = read_record(path, key=key, discard=False)  # a committed file is the repository's to fix
        if _valid(record, key, until, path):
            return record
    return None


def compute_early(cfg, until: int, progress: bool = False) -> dict:
    """Recompute the first ``until`` steps of run ``cfg`` evaluated at every step; write and return the record."""
    from sft_tilt.store import write_record

    from sft_tilt.harness.runs import run_key, run_one

    if isinstance(until, bool) or not isinstance(until, int) or not 1 <= until <= cfg.steps:
        raise ValueError(f"until: must be an int in [1, steps={cfg.steps}], got {until!r}")
    key = run_key(cfg)
    points = run_one(early_config(cfg), progress=progress, stop_after=until)
    kept = [{"step": int(p["step"]), "domain_loss": float(p["domain_loss"]),
             "general": {k: float(v) for k, v in p["general"].items()}} for p in points if int(p["step"]) <= until]
    if [p["step"] for p in kept] != list(range(1, until + 1)):
        raise RuntimeError(f"early points of run {key}: expected steps 1..{until}, got {[p['step'] for p in kept]}")
    record = {"run_key": key, "until": until, "code_keys": _code_keys(), "label": cfg.label(), "points": kept}
    write_record(record_path(key), record, key=key)
    return record


def ensure_early(cfg, until: int, progress: bool = False) -> dict:
    """The record of run ``cfg`` for ``until`` steps, computed when none is stored."""
    from sft_tilt.harness.runs import run_key

    return read_early(run_key(cfg), until) or compute_early(cfg, until, progress)


def splice(summary: dict, base: dict, record: dict) -> dict:
    """``summary`` (``experiments.summarise_run``) with the record's points filling its trajectory before step
    ``until``: domain gain ``base domain loss - domain loss``, general change the mean over the sets of ``loss - base
    loss``, as the run's own points. Raises :class:`EarlyMismatch` when the record's point at ``until`` differs from
    the run's by more than ``AGREEMENT``, or the run has no point there."""
    until = int(record["until"])

    def relative(p):
        change = [p["general"][k] - base["general"][k] for k in base["general"]]
        return int(p["step"]), base["domain_loss"] - p["domain_loss"], float(np.mean(change))

    early = [relative(p) for p in record["points"] if int(p["step"]) <= until]
    own = {int(s): (g, d) for s, g, d in summary["trajectory"]}
    if until not in own:
        raise EarlyMismatch(f"run {summary.get('key')}: no evaluation point at step {until} to check the early points against")
    _, g_early, d_early = early[-1]
    g_own, d_own = own[until]
    if abs(g_early - g_own) > AGREEMENT or abs(d_early - d_own) > AGREEMENT:
        raise EarlyMismatch(f"run {summary.get('key')}: the recomputed step {until} gives G {g_early:.6f}, D {d_early:.6f} "
                            f"against the run's G {g_own:.6f}, D {d_own:.6f} (allowed {AGREEMENT:g})")
    trajectory = [summary["trajectory"][0]] + early[:-1] + [t for t in summary["trajectory"] if int(t[0]) >= until]
    return {**summary, "trajectory": trajectory, "early_until": until}


def with_early(summaries: list[dict], results: dict[str, dict], until: int) -> list[dict]:
    """Each summary spliced with its run's stored early record when there is one (``results``: run key -> result,
    for the base model's losses); the others unchanged. ``until`` = 0 leaves every summary as it is."""
    if not until:
        return summaries
    out = []
    for s in summaries:
        record = None if s.get("diverged") or s.get("trajectory") is None else read_early(s["key"], until)
        out.append(splice(s, results[s["key"]]["base"], record) if record is not None else s)
    return out
