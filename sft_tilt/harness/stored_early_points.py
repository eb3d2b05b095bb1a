"""The first steps of a run evaluated at every step, so a fast run's matched gains are measured, not interpolated:
the stored records, read without training.

A run is evaluated every ``eval_every`` steps. A learning rate that passes a matched domain gain Δ* before the first
evaluation point gets, at Δ*, the chord from the base model to that point (``sft_tilt.analysis.matched_gain.from_base``):

    D(Δ*) = Δ* D_1 / G_1          (G_1, D_1: domain gain and general change at the first point)

which is linear in Δ* by construction and says nothing about how degradation grows along the way. On the ``cpu``
preset (first point at step 10, the end of the warm-up) that is every matched gain of the two largest learning rates.

Here the first ``until`` steps of a run are recomputed with ``eval_every = 1`` and its configuration otherwise
unchanged (``sft_tilt.harness.runs.run_one(..., stop_after=until)``, in :mod:`sft_tilt.harness.early_points`): the same batches, learning rates and parameters, so
the recomputed point at step ``until`` must equal the run's own (:func:`splice` checks it to ``AGREEMENT``) and the
points before it fill the run's first interval. Nothing else is evaluated (no accuracies beyond what every point
measures, no checkpoints).

A record holds, for run key ``k``, the raw evaluations (domain loss, general losses per set) at steps ``1..until``,
with the code keys it was computed under (the run code's and :func:`early_config`'s). It is stored as a checksummed record
``<runs>/early/<k>.json`` and committed by ``python -m sft_tilt.harness export`` as ``results/<preset>/early/<k>.json``;
a record whose code keys differ from the current code's is stale and ignored (with a message). This module reads and
splices the records without training; :mod:`sft_tilt.harness.early_points` computes them, as does

    python -m sft_tilt.harness sweep --preset cpu --experiment early [--workers 2]

for every run of the preset's learning-rate grid (``Preset.early_until`` > 0).
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np

__all__ = ["AGREEMENT", "FOLDER", "EarlyMismatch", "early_config", "record_path", "read_early", "splice", "with_early",
           "committed_early_paths"]

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
    from sft_tilt.harness.stored_runs import runs_dir

    return (runs_dir() if root is None else Path(root)) / FOLDER / f"{key}.json"


def committed_early_paths(key: str) -> list[Path]:
    """The committed records of run ``key``: ``<results>/*/early/<key>.json`` in name order."""
    from sft_tilt.harness.stored_runs import results_dir

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
    from sft_tilt.harness.manifest import committed_file_problem
    from sft_tilt.store import results_dir

    for path in committed_early_paths(key):
        unlisted = committed_file_problem(path, results_dir())
        if unlisted is not None:
            warnings.warn(f"{path}: committed early points not served ({unlisted}); the committed file is left unchanged")
            continue
        record = read_record(path, key=key, discard=False)  # a committed file is the repository's to fix
        if _valid(record, key, until, path):
            return record
    return None


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
    return {**summary, "trajectory": trajectory, "early_until": until,
            "trajectory_items": _spliced_items(summary, record, until)}


def _spliced_items(summary: dict, record: dict, until: int) -> list[dict] | None:
    """The per-item measurements along the spliced trajectory: the base model's, the record's before ``until``, the
    run's own from ``until`` on; None unless the run and every early point carry them (a trajectory with items at
    some points only would be resampled on a different curve from the one it reports)."""
    own = summary.get("trajectory_items")
    early = [p for p in record["points"] if int(p["step"]) < until]
    if own is None or not all(isinstance(p.get("items"), dict) for p in early):
        return None
    kept = [items for t, items in zip(summary["trajectory"][1:], own[1:]) if int(t[0]) >= until]
    return [own[0]] + [p["items"] for p in early] + kept


def with_early(summaries: list[dict], results: dict[str, dict], until: int, require: str | None = None) -> list[dict]:
    """Each summary spliced with its run's stored early record when there is one (``results``: run key -> result,
    for the base model's losses); the others unchanged. ``until`` = 0 leaves every summary as it is. With
    ``require`` (the preset's name) a finished run without a record is not left as it is:
    :class:`sft_tilt.harness.stored_runs.MissingResults` names the sweep that computes the records."""
    if not until:
        return summaries
    out, missing = [], []
    for s in summaries:
        record = None if s.get("diverged") or s.get("trajectory") is None else read_early(s["key"], until)
        if record is None and require is not None and not s.get("diverged"):
            missing.append(s["key"])
        out.append(splice(s, results[s["key"]]["base"], record) if record is not None else s)
    if missing:
        from sft_tilt.harness.stored_runs import MissingResults, sweep_command

        raise MissingResults(f"the early points of {len(missing)} of {len(summaries)} runs are not stored (first: run "
                             f"{missing[0]}); compute them with `{sweep_command(require, 'early')}`")
    return out
