"""Stored fine-tuning runs, read without training: where they lie, their keys, and the error that names the command
computing a missing one.

A run is found by its key (:func:`run_key`): the content hash of its configuration (:class:`RunConfig`), the model
file's fingerprint, the library versions and the training code's explicit version
(:data:`sft_tilt.harness.versions.TRAINING_VERSION`). Its finished result is read from its run folder
``<runs_dir>/<key>/result.json`` first, then from a committed ``<results_dir>/<preset>/<key>/result.json``; both are
checksummed records that must verify for the key. Computing them is the harness's sweep (:mod:`sft_tilt.harness.runs`,
``python -m sft_tilt.harness sweep``); everything here only reads, so the claims and figures can use it without
importing the trainer.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

from sft_tilt.harness.run_config import RunConfig
from sft_tilt.harness.versions import TRAINING_VERSION
from sft_tilt.harness.manifest import committed_file_problem
from sft_tilt.store import cache_root, content_key, library_versions, read_record, results_dir

__all__ = ["MissingResults", "model_sha256", "model_fingerprint", "runs_dir", "results_dir", "run_key", "run_folder",
           "load_result", "committed_result", "sweep_command", "read_results"]


class MissingResults(LookupError):
    """Results a reader needs are not stored; the message names the command that computes them."""


def sweep_command(preset_name: str, experiment: str, methods=()) -> str:
    """The command that computes ``experiment`` of preset ``preset_name`` (only the runs of ``methods`` when given)."""
    only = "".join(f" --method {m}" for m in methods)
    return f"python -m sft_tilt.harness sweep --preset {preset_name} --experiment {experiment}{only}"


_MODEL_SHA256: dict = {}


def model_sha256(path: str | os.PathLike) -> str:
    """Full SHA-256 (hex) of a model file, or of a checkpoint folder: of its regular files in name order, each as
    name, NUL, the file's SHA-256. Memoised per process by path, sizes and modification times."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"path: model {path} does not exist")
    files = [path] if path.is_file() else sorted((f for f in path.iterdir() if f.is_file()), key=lambda f: f.name)
    stamp = (str(path.resolve()), tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    if stamp not in _MODEL_SHA256:
        digests = []
        for f in files:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 22), b""):
                    h.update(chunk)
            digests.append((f.name, h.digest()))
        if path.is_file():
            _MODEL_SHA256[stamp] = digests[0][1].hex()
        else:
            folder = hashlib.sha256()
            for name, digest in digests:
                folder.update(name.encode() + b"\0" + digest)
            _MODEL_SHA256[stamp] = folder.hexdigest()
    return _MODEL_SHA256[stamp]


def model_fingerprint(path: str | os.PathLike) -> str:
    """The model's identity in run and cache keys: the first 16 hex digits of :func:`model_sha256` (one hash of
    the file serves the keys and the provenance)."""
    return model_sha256(path)[:16]


def runs_dir() -> Path:
    """Folder of the run folders (``$SFT_RUNS_DIR`` or ``<cache>/runs``)."""
    return Path(os.environ.get("SFT_RUNS_DIR", cache_root() / "runs"))


def _material(cfg: RunConfig, fingerprint: str) -> dict:
    d = cfg.describe()
    d.pop("model")
    d.pop("tokenizer")
    # an averaging method trains exactly as the method it names (trains_as); both share a run when the alphas agree
    d["method"] = dict(d["method"], name=cfg.method.trains_as)
    d.pop("method_name")
    for name in ("domain_data", "general_data", "real_data"):  # a data file counts by its content hash, not its path
        if getattr(cfg.data, name) is not None:
            d["data"][name] = getattr(cfg.data, name).key_material()
    # one device is today's run; a mesh changes results at float32 round-off (tests/harness/test_harness_sharding.py),
    # and greedy accuracy can flip on such a difference, so a sharded run has its own key
    if tuple(d.pop("mesh")) != (1, 1):
        d["mesh"] = list(cfg.mesh)
    # the reference engine computed every committed run and is not in the key; another engine is, with its version
    if d.pop("engine") != "reference":
        from sft_tilt.harness.engines import key_material

        d["engine"] = key_material(cfg.engine)
    return {"run": d, "model": fingerprint, "code": TRAINING_VERSION, "libs": library_versions()}


def run_key(cfg: RunConfig, session=None) -> str:
    """The run's key. Without a session (:class:`sft_tilt.harness.session.Session`) only the model file is hashed
    (memoised), nothing is loaded: the key needs the model's fingerprint, which is the session's."""
    fingerprint = session.fingerprint if session is not None else model_fingerprint(cfg.model)
    return content_key(_material(cfg, fingerprint))[:20]


def run_folder(cfg: RunConfig, session=None) -> Path:
    return runs_dir() / run_key(cfg, session)


def load_result(cfg: RunConfig) -> dict | None:
    """The finished run's result if its ``result.json`` (else a committed one) is present and verifies, else None."""
    folder = run_folder(cfg)
    return read_record(folder / "result.json", key=folder.name) or committed_result(folder.name)


def committed_result(key: str) -> dict | None:
    """The committed result of run ``key``: the first ``<results>/*/<key>/result.json`` (name order) that its
    preset's manifest lists with its SHA-256 (:mod:`sft_tilt.harness.manifest`) and that verifies for ``key``, else
    None. A committed file that fails the manifest, its checksum or its key is reported by path and left as it is
    (``read_record`` would delete a damaged cache entry; a committed file is the repository's to fix)."""
    if not (isinstance(key, str) and key.isalnum()):
        raise ValueError(f"key: expected a run key (letters and digits), got {key!r}")
    root = results_dir()
    if not root.is_dir():
        return None
    for path in sorted(root.glob(f"*/{key}/result.json")):
        unlisted = committed_file_problem(path, root)
        if unlisted is not None:
            warnings.warn(f"{path}: committed result not served ({unlisted}); the run is recomputed into "
                          f"{runs_dir() / key}, the committed file is left unchanged")
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = read_record(path, key=key, discard=False)
        if isinstance(value, dict):
            return value
        why = "; ".join(str(w.message).partition("will be recomputed (")[2].rstrip(")") or str(w.message)
                        for w in caught) or "not a result"
        warnings.warn(f"{path}: committed result does not verify for key {key} ({why}); the run is recomputed "
                      f"into {runs_dir() / key}, the committed file is left unchanged")
    return None


def read_results(configs, preset_name: str, experiment: str) -> list[dict]:
    """The finished results of ``configs`` (runs of experiment ``experiment`` of preset ``preset_name``), in order;
    :class:`MissingResults` naming the sweep that computes them when any is not stored."""
    configs = list(configs)
    results = [load_result(c) for c in configs]
    missing = [c for c, r in zip(configs, results) if r is None]
    if missing:
        methods = sorted({c.method.trains_as for c in missing})
        raise MissingResults(
            f"{len(missing)} of {len(configs)} runs of the {preset_name!r} preset's experiment {experiment!r} are not "
            f"stored (first: {missing[0].label()}); compute them with `{sweep_command(preset_name, experiment, methods)}`")
    return results
