"""The stored records of what the real-LM experiments measure on the base model alone (target-token statistics, the
single-step theory, one step of SFT and TALR under each optimiser), read without loading a model; :mod:`sft_tilt.harness.base_model_analyses` computes them.

Each is a checksummed record keyed by the content key of its material: the model file's fingerprint, the
tokenizer, the data configuration, the analysis's own parameters, the explicit version of the analyses
(:data:`sft_tilt.harness.versions.BASE_ANALYSES_VERSION`) and the library versions. The material is computed from the
preset alone (the model file is hashed, not loaded), so a stored record is found without a session:

1. ``<results>/<preset>/base/<namespace>/<key>.(json|npz)`` (committed by ``python -m sft_tilt.harness export``), read
   when it verifies for its key; one that does not is reported by path and left as it is;
2. else the cache entry (``sft_tilt.store.cached``) the computation wrote.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from sft_tilt.harness.stored_runs import MissingResults, model_fingerprint, sweep_command
from sft_tilt.harness.versions import BASE_ANALYSES_VERSION
from sft_tilt.store import content_key, entry_path, library_versions, read_record

__all__ = ["FOLDER", "NAMESPACES", "HARD_BELOW", "material", "committed_path", "stored_path", "read_stored",
           "stored_analysis"]

#: A target token is hard when the base model gives it probability at most this (the paper's threshold).
HARD_BELOW = 0.2

#: Folder of ``<results>/<preset>/`` that holds the committed records.
FOLDER = "base"
#: The cache namespace of each analysis.
NAMESPACES = {"target_token_statistics": "harness_target_tokens", "single_step": "harness_single_step",
              "optimizer_step": "harness_optimizer_step"}


def _identity(preset) -> dict:
    """What the session's own cache keys hold (``Session.key_material``), without loading the model."""
    return {"model": model_fingerprint(preset.resolved_model()), "tokenizer": str(preset.tokenizer or ""),
            "data": preset.data}


def material(preset, analysis: str) -> dict:
    """The key material of ``analysis`` (a key of :data:`NAMESPACES`) for ``preset``."""
    if analysis == "target_token_statistics":
        own = {"formats": tuple(preset.formats), "hard_below": HARD_BELOW}
    elif analysis == "single_step":
        # "lrs" names the learning rates inside the key material only: renamed, it would change the key of the
        # committed records (the record itself says "learning_rates")
        own = {"formats": tuple(preset.single_step_formats), "lrs": tuple(preset.single_step_learning_rates),
               "batch": preset.single_step_batch, "optimizer": preset.optimizer, "method": preset.method("sft")}
    elif analysis == "optimizer_step":
        from dataclasses import asdict

        from sft_tilt.harness.optimizer_step_plan import PLAN

        own = {"plan": asdict(PLAN), "formats": tuple(f for f in PLAN.formats if f in preset.formats)}
    else:
        raise ValueError(f"analysis: expected one of {sorted(NAMESPACES)}, got {analysis!r}")
    return {**_identity(preset), "what": analysis, **own, "code": BASE_ANALYSES_VERSION, "libs": library_versions()}


def committed_path(preset, analysis: str, results_dir: Path | None = None) -> Path | None:
    """Where the committed record of ``analysis`` for ``preset`` lies, if it exists (``.json`` or ``.npz``)."""
    from sft_tilt.harness.stored_runs import results_dir as default_results_dir

    key = content_key(material(preset, analysis))
    folder = Path(results_dir if results_dir is not None else default_results_dir()) / preset.name / FOLDER
    for suffix in (".json", ".npz"):
        path = folder / NAMESPACES[analysis] / f"{key}{suffix}"
        if path.exists():
            return path
    return None


def stored_path(preset, analysis: str) -> Path | None:
    """The cache entry of ``analysis`` for ``preset``, if one exists (it is verified when read)."""
    m = material(preset, analysis)
    for arrays in (False, True):
        path = entry_path(NAMESPACES[analysis], m, arrays=arrays)
        if path.exists():
            return path
    return None


def read_stored(preset, analysis: str):
    """The stored value of ``analysis`` (a key of :data:`NAMESPACES`) for ``preset``: the committed record when its
    preset's manifest lists it with its SHA-256 (:mod:`sft_tilt.harness.manifest`) and it verifies, else the cache entry when it verifies, else None. A committed record that does not verify is reported
    by path and left as it is."""
    m = material(preset, analysis)
    key = content_key(m)
    path = committed_path(preset, analysis)
    if path is not None:
        from sft_tilt.harness.manifest import committed_file_problem
        from sft_tilt.store import results_dir

        unlisted = committed_file_problem(path, results_dir())
        if unlisted is not None:
            warnings.warn(f"{path}: committed record not served ({unlisted}); it is recomputed into the cache, the "
                          "committed file is left unchanged")
            path = None
    if path is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = read_record(path, key=key, discard=False)
        if isinstance(value, dict) and "value" in value:
            return _current_names(analysis, value["value"])
        why = "; ".join(str(w.message) for w in caught) or "not a record of this analysis"
        warnings.warn(f"{path}: committed record does not verify ({why}); it is recomputed into the cache, the "
                      f"committed file is left unchanged")
    for arrays in (False, True):
        entry = entry_path(NAMESPACES[analysis], m, arrays=arrays)
        if entry.exists():
            value = read_record(entry, key=key)
            if isinstance(value, dict) and "value" in value:
                return _current_names(analysis, value["value"])
    return None


def _current_names(analysis: str, value):
    """The single-step record with its learning rates under ``learning_rates``: the records committed before the
    project used one name per quantity call them ``lrs``."""
    if analysis == "single_step" and isinstance(value, dict) and "lrs" in value:
        value = {("learning_rates" if k == "lrs" else k): v for k, v in value.items()}
    return value


def stored_analysis(preset, analysis: str):
    """:func:`read_stored`, or :class:`sft_tilt.harness.stored_runs.MissingResults` naming the sweep that computes
    the analysis when it is not stored."""
    value = read_stored(preset, analysis)
    if value is None:
        raise MissingResults(f"the {preset.name!r} preset's base-model analysis {analysis!r} is not stored; compute it "
                             f"with `{sweep_command(preset.name, 'base')}`")
    return value
