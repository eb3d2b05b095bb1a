"""Export finished runs to ``results/``: the committed, reproducible real-LM result of a preset.

``export_runs(configs, preset_name)`` copies each *finished* run's ``config.json``, ``points.jsonl`` and
``result.json`` from its run folder (``$SFT_RUNS_DIR`` or ``runs/`` in the cache folder) to
``<results>/<preset_name>/<key>/`` (``<results>``: :func:`sft_tilt.store.results_dir`) and writes
``<results>/<preset_name>/index.json`` (key -> label, format, method, learning rate, seed, wall time). A run counts
as finished when its ``result.json`` verifies for its key and every line of its ``points.jsonl`` verifies and
matches the result's points; an unfinished or damaged run is skipped and named. The copies are the run folder's
bytes, so the committed records keep their checksums; the index is sorted JSON, so exporting the same runs twice
writes the same files.

``export_early`` copies the learning-rate grid's early points (:mod:`sft_tilt.harness.early_points`) to
``<results>/<preset_name>/early/``.

``export_base_analyses`` copies the cached records of the analyses measured on the base model alone (target-token
statistics, the single-step theory: :mod:`sft_tilt.harness.base_model_analyses`) to ``<results>/<preset_name>/base/``.

``stale_runs`` names the committed runs whose keys no plan of the current code produces (the code, the model or the
preset changed since), and ``prune_stale_runs`` deletes them; ``stale_base_analyses`` names the committed
base-model records of older keys.

Every function that writes under ``<results>/<preset_name>/`` ends by rewriting its ``MANIFEST.json``, the SHA-256 of
every file there (:mod:`sft_tilt.harness.manifest`): a committed file is served only while it has the hash the
manifest lists, so an edit made after the export is refused when read, or shows in review as a manifest change.

``run_one`` (:mod:`sft_tilt.harness.runs`) reads the committed ``result.json`` of a run whose key matches; this module
is not imported by it.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

from sft_tilt.harness.manifest import write_manifest
from sft_tilt.store import atomic_write_bytes, read_record

__all__ = ["export_runs", "export_early", "export_base_analyses", "stale_runs", "stale_base_analyses",
           "prune_stale_runs", "FILES"]

#: The files of a run folder that are committed (the checkpoint is dropped when a run finishes).
FILES = ("config.json", "points.jsonl", "result.json")


def _finished(folder: Path) -> tuple[dict | None, str]:
    """``(result, "")`` when the run in ``folder`` is finished and its files verify, else ``(None, why)``."""
    from sft_tilt.harness.runs import _read_points

    if not (folder / "result.json").exists():
        return None, "no result.json (unfinished or never started)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = read_record(folder / "result.json", key=folder.name, discard=False)
        points = _read_points(folder, unkeyed=True)  # checked against the keyed result below
    if not isinstance(result, dict):
        return None, "result.json does not verify: " + "; ".join(str(w.message) for w in caught)
    if points != result.get("points"):
        return None, "points.jsonl does not verify or does not match result.json's points"
    if not (folder / "config.json").is_file():
        return None, "no config.json"
    try:
        json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as exc:
        return None, f"config.json is not JSON ({exc})"
    return result, ""


def _index_row(result: dict) -> dict:
    cfg = result["config"]
    return {"label": f"{cfg['method_name']} {cfg['fmt']} learning_rate={cfg['learning_rate']:g} seed={cfg['seed']}",
            "format": cfg["fmt"], "method": cfg["method_name"], "learning_rate": cfg["learning_rate"], "seed": cfg["seed"],
            "wall_s": result.get("wall_s"), "diverged": bool(result.get("diverged"))}


def export_runs(configs: list, preset_name: str, results_dir: Path | None = None, *,
                verbose: bool = True) -> list[Path]:
    """Copy every finished run of ``configs`` (``RunConfig``) to ``<results_dir>/<preset_name>/<key>/`` and
    rewrite that folder's ``index.json``; return the exported run folders (in the order of ``configs``).

    Runs already exported and not among ``configs`` stay in the index (it lists the folder's verified runs), so
    exporting in several sittings accumulates. Unfinished runs are skipped and, with ``verbose``, named, unless
    their folder under ``<results_dir>/<preset_name>/`` already holds them finished (exported earlier).
    """
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir, run_folder

    if not isinstance(preset_name, str) or not preset_name or not preset_name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"preset_name: expected a folder name (letters, digits, - and _), got {preset_name!r}")
    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset_name
    exported, skipped = [], []
    for cfg in configs:
        folder = run_folder(cfg)
        result, why = _finished(folder)
        if result is None:
            if _finished(target / folder.name)[0] is None:  # committed in an earlier sitting: nothing to say
                skipped.append((cfg.label(), folder.name, why))
            continue
        out = target / folder.name
        out.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            atomic_write_bytes(out / name, (folder / name).read_bytes())
        exported.append(out)
    if verbose:
        for label, key, why in skipped:
            print(f"skipped {label} ({key}): {why}")
    if target.is_dir():
        _write_index(target)
        write_manifest(target)
    return exported


def export_early(configs: list, until: int, preset_name: str, results_dir: Path | None = None) -> list[Path]:
    """Copy the stored early points of ``configs`` (:mod:`sft_tilt.harness.early_points`) that are valid for the current
    code and cover ``until`` steps to ``<results_dir>/<preset_name>/early/<key>.json``; return the copies."""
    from sft_tilt.harness.stored_early_points import FOLDER, read_early, record_path
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir, run_key

    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset_name / FOLDER
    out = []
    for cfg in dict.fromkeys(configs):
        key = run_key(cfg)
        source = record_path(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valid = source.exists() and read_early(key, until) is not None
        if valid:
            atomic_write_bytes(target / source.name, source.read_bytes())
            out.append(target / source.name)
    if out:
        write_manifest(target.parent)
    return out


def export_base_analyses(preset, results_dir: Path | None = None) -> list[Path]:
    """Copy the cache entries of ``preset``'s base-model analyses (:mod:`sft_tilt.harness.base_model_analyses`) that
    verify for the current key to ``<results_dir>/<preset>/base/<namespace>/``; return the copies. An analysis
    not yet computed (no cache entry) is left out."""
    from sft_tilt.harness.stored_base_analyses import FOLDER as BASE_FOLDER, NAMESPACES, material, stored_path
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir
    from sft_tilt.store import content_key

    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset.name / BASE_FOLDER
    out = []
    for analysis, namespace in NAMESPACES.items():
        source = stored_path(preset, analysis)
        if source is None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            valid = read_record(source, key=content_key(material(preset, analysis)), discard=False) is not None
        if valid:
            atomic_write_bytes(target / namespace / source.name, source.read_bytes())
            out.append(target / namespace / source.name)
    if out:
        write_manifest(target.parent)
    return out


def stale_base_analyses(preset, results_dir: Path | None = None) -> list[Path]:
    """The committed base-model analysis records of ``preset`` whose key is not the current one (the code, the model,
    the data or the analysis's parameters changed since), which are no longer read."""
    from sft_tilt.harness.stored_base_analyses import FOLDER as BASE_FOLDER, NAMESPACES, material
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir
    from sft_tilt.store import content_key

    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset.name / BASE_FOLDER
    current = {NAMESPACES[a]: content_key(material(preset, a)) for a in NAMESPACES}
    if not target.is_dir():
        return []
    return sorted(p for p in target.rglob("*") if p.is_file()
                  and not (p.parent.name in current and p.parent.parent == target and p.stem == current[p.parent.name]))


def stale_runs(configs: list, preset_name: str, results_dir: Path | None = None) -> list[Path]:
    """The run folders under ``<results_dir>/<preset_name>/`` whose key is not the key of any of ``configs``: runs of
    an earlier version of the code, model or preset, which ``run_one`` no longer reads."""
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir, run_folder

    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset_name
    if not target.is_dir():
        return []
    from sft_tilt.harness.stored_base_analyses import FOLDER as BASE_FOLDER
    from sft_tilt.harness.stored_early_points import FOLDER

    planned = {run_folder(cfg).name for cfg in configs}
    return sorted(p for p in target.iterdir()
                  if p.is_dir() and p.name not in planned and p.name not in (FOLDER, BASE_FOLDER))


def prune_stale_runs(configs: list, preset_name: str, results_dir: Path | None = None) -> list[Path]:
    """Delete :func:`stale_runs` and rewrite the index; return the deleted folders."""
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir

    stale = stale_runs(configs, preset_name, results_dir)
    for folder in stale:
        shutil.rmtree(folder)
    target = Path(results_dir if results_dir is not None else default_results_dir()) / preset_name
    if stale and target.is_dir():
        _write_index(target)
        write_manifest(target)
    return stale


def _write_index(target: Path) -> None:
    """``index.json``: every verified run under ``target``, key -> summary row, sorted."""
    index = {}
    for path in sorted(target.glob("*/result.json")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = read_record(path, key=path.parent.name, discard=False)
        if isinstance(result, dict):
            index[path.parent.name] = _index_row(result)
    atomic_write_bytes(target / "index.json", (json.dumps(index, indent=1, sort_keys=True) + "\n").encode())
