"""Runs: one fine-tuning trajectory, its run folder, caching and resumption.

A run folder ``<runs_dir>/<key>/`` (``runs_dir`` = ``$SFT_RUNS_DIR`` or ``<cache>/runs``) holds

* ``config.json``   the resolved configuration and the key material (for reading; never trusted),
* ``points.jsonl``  one line of metrics per evaluation point, each holding the run's key and a checksum of key and
  point, rewritten atomically as the run goes,
* ``state.npz``     (``checkpoint_state``, on by default) trainable parameters + optimiser state at the last
  point, and the run's compute time up to it, as a checksummed ``.npz`` of the state's leaves (no pickle); a
  resumed run adds that time to its own, so the wall time of a run computed in several segments counts them all,
  and its provenance names the step it resumed at,
* ``result.json``   the finished run (points, final accuracy, model-averaging evaluations) as a checksummed
  record carrying the run's key: a valid one means the run is never recomputed.

A run that diverges is a result, not an error: after every optimiser step the loss and the trainable
parameters, and at every evaluation point the token losses, are checked; at the first that is not finite the
run stops with a last point ``{"step": k, "diverged": true, "train_steps": [...]}`` (no evaluation) and
``result.json`` has ``diverged: true``, ``diverged_step: k`` and no accuracy or model-averaging evaluations
(a finished run has ``diverged: false``, ``diverged_step: null``). A run that stays finite but whose model gives
the uniform output has ``collapsed: true`` and ``collapsed_step``, the first evaluation step where it did
(:mod:`sft_tilt.harness.collapse`; readers recompute the flag from the points, so older results have it too).

Nothing read back is trusted: a ``result.json`` that fails to parse, whose checksum does not match its content
or whose key is not the run's is reported by path and the run recomputed; a ``points.jsonl`` line that fails its
checksum or belongs to another run (points copied from another run folder) ends the points read there, with a
warning naming the file; a checkpoint whose leaves do not match the freshly initialised state's
shapes and dtypes is ignored. Nothing is computed for a folder that cannot hold the run (:func:`check_run_folder`:
not writable, or a run file there that is a directory or another non-file), and the folder is made only once the
base model is evaluated, so a model or data problem found on loading leaves none behind.

``key`` is the content hash of the configuration, the model file's fingerprint, the library versions and the
training code's explicit version (:data:`sft_tilt.harness.versions.TRAINING_VERSION`, bumped with every change that
moves numbers), so moving files or editing reports, figures or the command line does not invalidate results; it,
the configuration and the reading of stored results are :mod:`sft_tilt.harness.stored_runs` and
:mod:`sft_tilt.harness.run_config`, which read without importing this trainer. The learning rate of each step follows
the run's schedule (:func:`sft_tilt.harness.schedules.learning_rate_schedule`) and is recorded with the step. A
killed run restarts from its last saved point (the checkpoint and the points agree on the step) and otherwise from
step 0; a sweep recomputes only unfinished runs. Batches are a pure
function of (seed, step), so a resumed run follows the same trajectory as an uninterrupted one.

Committed results: a finished run of a long preset can be committed to the repository as
``<results>/<preset>/<key>/result.json`` (``<results>``: :func:`sft_tilt.store.results_dir`; written by
:mod:`sft_tilt.harness.results_export`). ``run_one`` returns such a file when its own run folder has no finished result
and the file verifies for the run's key, so a fresh clone reads those runs instead of computing them; a committed
file that fails its checksum or key, or whose SHA-256 is not the one its preset's ``MANIFEST.json`` lists (an edit
made after the export: :mod:`sft_tilt.harness.manifest`), is reported by path and the run recomputed into the run
folder (the committed file is never written or deleted). Every result carries ``provenance``: the code key, the model file's full
SHA-256, the data configuration's hash, library versions, the machine (platform, CPU, cores, load) and the wall
time, which says where and with what a committed number was measured.

Step monitor (opt-in): ``monitor_every = N > 0`` adds to every N-th step's record (``train_steps[i]["monitor"]``)
the single-step theory's numbers for that step (:mod:`sft_tilt.harness.step_monitoring`). It reads the parameters and
does not change the step; a monitored run has a key of its own, and with ``monitor_every = 0`` (the default) the field
is left out of the configuration's description, so every other run keeps its key.

Warm start (opt-in): a run with ``warm_start`` (:class:`sft_tilt.harness.run_config.WarmStart`) first trains the
model file's parameters in a warm-up run of its own (``warm_start.run_config(cfg)``: the same loop, its own key and
run folder, so an interrupted warm-up resumes from its checkpoint) and starts from the warm model it ends at, with a
fresh optimiser state and its own batch order from step 0. The warm model's parameters are a checksummed record in
the user cache (:mod:`sft_tilt.harness.warm_starts`), never committed; missing or damaged, they are recomputed with a
warning naming the record's path. The warm model is the run's initial model everywhere: FLOW's sequence weights come
from its training-set losses, the L2 and KL anchors and LoRA's frozen base are its parameters, and model averaging
interpolates from it. It is also the run's reference: ``result["base"]`` is the warm model's evaluation, and every
point's ``domain_gain`` and ``general_change`` are the second phase's (measured from the warm model). The model
file's own evaluation is kept as ``result["pretrained"]``, and each point (and model-averaging evaluation) holds its
changes from it under ``from_pretrained`` (``domain_gain``, ``general_change``, ``general_change_mean``), so both
can be reported; ``result["warm_start"]["key"]`` names the warm-up run. The warm start enters the run key only when
present, so every other run keeps its key.

``replay_points(cfg, n)`` recomputes a run's first ``n`` evaluation points from step 0 in a temporary folder (the
reproducibility check of committed results): ``run_one(..., stop_after=k)`` stops the same loop at its first
evaluation step at or after ``k`` and returns the points without writing a result.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
import warnings
import time
from datetime import datetime, timezone
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.harness.collapse import collapsed_step
from sft_tilt.harness import engines, warm_starts
from sft_tilt.harness.lora import interpolate_params
from sft_tilt.harness.measure import HIST_BINS
from sft_tilt.harness.data_config import DataConfig
from sft_tilt.harness.methods import full_params, init_trainable, make_train_step
from sft_tilt.harness.run_config import MAX_SEED, RunConfig
from sft_tilt.harness.schedules import SCHEDULES, learning_rate_schedule
from sft_tilt.harness.session import Session, get_session
from sft_tilt.harness.stored_runs import (committed_result, load_result, model_sha256, results_dir, run_folder, run_key,
                                          runs_dir, _material)
from sft_tilt.harness.versions import TRAINING_VERSION
from sft_tilt.lm.sharding import make_mesh, place_batch, place_params, replicated
from sft_tilt.lm.supervised_loss import supervised_capacity
from sft_tilt.theory import HARD_TOKEN_THRESHOLD
from sft_tilt.store import (atomic_write_bytes, code_key, content_key, library_versions, read_record, unwritable,
                            write_record)

# the run's configuration, key and stored results live in modules that read without training (the claims and figures
# use those); they are named here too, beside the loop that computes what they read
__all__ = ["SCHEDULES", "MAX_SEED", "RUN_FILES", "learning_rate_schedule", "RunConfig", "runs_dir", "results_dir",
           "run_key", "run_folder", "check_run_folder", "unwritable", "run_one", "run_many", "load_result",
           "committed_result", "replay_points", "model_sha256", "data_hash", "Interrupted"]


class Interrupted(RuntimeError):
    """Raised by ``run_one(..., interrupt_after=k)`` to simulate a killed run (tests)."""


#: The files a run writes in its folder.
RUN_FILES = ("config.json", "points.jsonl", "state.npz", "result.json")


def check_run_folder(folder: Path, *, writable: bool = True) -> None:
    """ValueError naming the path when ``folder`` cannot hold a run: one of the files a run writes there
    (:data:`RUN_FILES`) exists as something other than a regular file (a directory named ``result.json`` would
    otherwise fail the write at the end of the whole run), or (``writable``) it cannot be created or written."""
    folder = Path(folder)
    why = unwritable(folder) if writable else None
    if why is not None:
        raise ValueError(f"run folder {folder}: {why}")
    for name in RUN_FILES:
        path = folder / name
        if (path.exists() or path.is_symlink()) and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise ValueError(f"{path}: is {kind}; a run writes a file there (remove it)")


def _batch(cfg: RunConfig, session: Session, step: int, sequence_weights: np.ndarray | None) -> tuple[dict, np.ndarray]:
    spe = cfg.steps_per_epoch
    epoch, pos = divmod(step, spe)
    perm = np.random.default_rng([cfg.seed, cfg.data.data_seed, epoch]).permutation(cfg.data.n_train)
    idx = perm[pos * cfg.batch_size : (pos + 1) * cfg.batch_size]
    enc = session.train[cfg.fmt]
    batch = {"tokens": jnp.asarray(enc.tokens[idx]), "loss_mask": jnp.asarray(enc.loss_mask[idx])}
    if sequence_weights is not None:
        batch["sequence_weights"] = jnp.asarray(sequence_weights[idx], jnp.float32)
    return batch, idx


def _changes(ev: dict, base: dict) -> dict:
    """``domain_gain = L_domain(base) - L_domain``, ``general_change = L_general - L_general(base)`` per set, and
    their mean over the sets (nats/token)."""
    change = {k: ev["general"][k] - base["general"][k] for k in ev["general"]}
    return {"domain_gain": base["domain_loss"] - ev["domain_loss"], "general_change": change,
            "general_change_mean": float(np.mean(list(change.values())))}


def _relative(ev: dict, base: dict, pretrained: dict | None = None) -> dict:
    """``ev`` with its changes from ``base`` and, for a warm-started run, from the model file's parameters
    (``pretrained``) under ``from_pretrained``."""
    out = dict(ev)
    out.update(_changes(ev, base))
    if pretrained is not None:
        out["from_pretrained"] = _changes(ev, pretrained)
    return out


def _step_record(step: int, loss, aux, epoch: int) -> dict:
    losses = np.asarray(aux["losses"], np.float64)
    mask = np.asarray(aux["mask"], np.float64)
    p = np.exp(-losses[mask > 0])
    hist, _ = np.histogram(p, bins=HIST_BINS, range=(0.0, 1.0))
    return {
        "step": step,
        "epoch": epoch,
        "loss": float(loss),
        "tau": float(aux["tau"]),
        "n_tokens": int(p.size),
        "n_above": int(np.sum(p > HARD_TOKEN_THRESHOLD)),
        "histogram": hist.astype(int).tolist(),
    }


def _save_state(folder: Path, step: int, trainable, opt_state, wall_s: float) -> None:
    """Checkpoint at ``step`` with the run's compute time so far, ``wall_s`` (every segment, this one included)."""
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get((trainable, opt_state)))]
    # the shapes are stored beside the leaves: the record gives scalars (0-d leaves) back with shape (1,)
    write_record(folder / "state.npz", {"step": step, "leaves": leaves, "shapes": [list(x.shape) for x in leaves],
                                        "wall_s": float(wall_s)}, key=folder.name)


def _load_state(folder: Path, trainable, opt_state):
    """``(step, trainable, opt_state, wall_s)`` from the checkpoint (``wall_s``: the compute time of the segments
    before it), or None when absent or not matching the fresh state."""
    state = read_record(folder / "state.npz", key=folder.name)
    if state is None:
        return None
    fresh, treedef = jax.tree_util.tree_flatten((trainable, opt_state))
    try:
        leaves = [np.asarray(a).reshape(shape) for a, shape in zip(state["leaves"], state["shapes"], strict=True)]
        step, wall_s = state["step"], float(state["wall_s"])
    except (KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"{folder / 'state.npz'}: not a checkpoint of this format ({exc}); restarting from step 0")
        return None
    mismatch = "" if len(leaves) == len(fresh) else f"{len(leaves)} leaves, expected {len(fresh)}"
    for i, (a, b) in enumerate(zip(leaves, fresh)):
        if not mismatch and (a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype):
            mismatch = f"leaf {i} is {a.dtype}{list(a.shape)}, expected {np.asarray(b).dtype}{list(np.shape(b))}"
    if mismatch or not isinstance(step, int):
        warnings.warn(f"{folder / 'state.npz'}: does not match this run's state ({mismatch or 'no step'}); "
                      "restarting from step 0")
        return None
    trainable, opt_state = jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in leaves])
    return step, trainable, opt_state, wall_s


def _point_text(key: str, point: dict) -> str:
    """The checksummed content of a point line: the run's key and the point, as canonical JSON."""
    return json.dumps({"key": key, "point": point}, sort_keys=True)


def _point_line(key: str, point: dict) -> str:
    """One line of ``points.jsonl``: ``{"key", "point", "sha256"}``, the SHA-256 of :func:`_point_text`, so a point
    carries the run it belongs to inside what its checksum covers."""
    return json.dumps({"key": key, "point": point,
                       "sha256": hashlib.sha256(_point_text(key, point).encode()).hexdigest()}, sort_keys=True) + "\n"


def _read_points(folder: Path, *, unkeyed: bool = False) -> list[dict]:
    """The points of run ``folder.name`` whose lines verify, up to the first that does not (a torn or edited line,
    or a line of another run, ends the read with a warning naming the file).

    A line holds the run's key inside its checksummed content (:func:`_point_line`), so points of another run
    copied into the folder are never resumed. ``unkeyed`` also accepts the lines written before they held the key
    (``{"sha256", "point"}``, the checksum of the point alone): only for a finished run, whose points are then
    compared with those of its keyed ``result.json`` (the export and the committed results), never for resuming.
    """
    path = folder / "points.jsonl"
    if not path.exists():
        return []
    key = folder.name
    pts = []
    # JSON Lines: each line ends with "\n", and nothing else ends one (read_text would turn a "\r" into a line end,
    # str.splitlines would also cut at U+2028, U+2029, U+0085, which a JSON string may hold raw)
    lines = path.read_bytes().decode("utf-8", errors="replace").split("\n")
    if lines[-1] == "":  # after the last line's "\n"
        lines.pop()
    for number, line in enumerate(lines, start=1):
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("not a JSON object")
            if "key" in rec:
                if rec["key"] != key:
                    raise ValueError(f"a point of run {str(rec['key'])[:40]!r}, not of {key!r}")
                text = _point_text(key, rec["point"])
            elif unkeyed:
                text = json.dumps(rec["point"], sort_keys=True)
            else:
                raise ValueError("the line names no run (written before lines held the run key); not resumed")
            if hashlib.sha256(text.encode()).hexdigest() != rec["sha256"]:
                raise ValueError("checksum mismatch")
            if not isinstance(rec["point"], dict) or not isinstance(rec["point"].get("step"), int):
                raise ValueError("not a point")
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            warnings.warn(f"{path}: line {number} discarded with the lines after it ({exc})")
            break
        pts.append(rec["point"])
    return pts


def _write_points(folder: Path, points: list[dict]) -> None:
    atomic_write_bytes(folder / "points.jsonl", "".join(_point_line(folder.name, p) for p in points).encode())


def run_one(cfg: RunConfig, *, progress: bool = True, interrupt_after: int | None = None,
            stop_after: int | None = None, runs_root: Path | None = None) -> dict | list[dict]:
    """Run (or load) one fine-tuning trajectory and return its result dict (see module docstring).

    The run folder's verified ``result.json`` is returned first, then a committed one (:func:`committed_result`).
    ``stop_after=k`` computes the trajectory only up to its first evaluation step at or after ``k`` and returns
    those points (as stored in ``points.jsonl``) without reading or writing a result (:func:`replay_points`);
    ``runs_root`` puts the run folder there instead of :func:`runs_dir`.
    """
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, int) or stop_after < 1):
        raise ValueError(f"stop_after: must be a positive int or None, got {stop_after!r}")
    # the key needs only the model file's hash: a finished run is read, and the folder of one to compute checked,
    # before the model is loaded
    folder = (runs_dir() if runs_root is None else Path(runs_root)) / run_key(cfg)
    check_run_folder(folder, writable=False)
    result_path = folder / "result.json"
    if stop_after is None:
        done = read_record(result_path, key=folder.name)
        if done is None:
            done = committed_result(folder.name)
        if done is not None:
            return done
    check_run_folder(folder)
    session = get_session(cfg.model, cfg.tokenizer, cfg.data, progress)
    return _compute(cfg, folder, session, progress=progress, interrupt_after=interrupt_after, stop_after=stop_after)[0]


def _warm_model(cfg: RunConfig, session: Session, progress: bool):
    """``(params, key)``: the warm model ``cfg.warm_start`` ends at and the run key of its warm-up run.

    Read from its stored record (:mod:`sft_tilt.harness.warm_starts`); when that is missing or damaged, the warm-up
    run is computed by this module's training loop in its own run folder (resumed from its checkpoint if it was
    interrupted) and its final parameters stored, with a warning naming the record's path."""
    warm_cfg = cfg.warm_start.run_config(cfg)
    key = run_key(warm_cfg, session)
    path = warm_starts.params_path(key)
    params = warm_starts.read_params(path, key, session.params)
    if params is None:
        warnings.warn(f"{path}: no stored warm-start parameters; computing the warm-up run {warm_cfg.label()} "
                      f"({warm_cfg.steps} steps) and storing its final parameters there")
        folder = runs_dir() / key
        check_run_folder(folder)
        result, params = _compute(warm_cfg, folder, session, progress=progress)
        if result["diverged"]:
            raise ValueError(f"warm_start: the warm-up run {warm_cfg.label()} diverged at step "
                             f"{result['diverged_step']} (run folder {folder}); no warm model to start from")
        warm_starts.write_params(path, key, params)
    return params, key


def _compute(cfg: RunConfig, folder: Path, session: Session, *, progress: bool = True,
             interrupt_after: int | None = None, stop_after: int | None = None):
    """``(result, params)``: run ``cfg`` in ``folder`` (resuming from its checkpoint) and write its result there;
    with ``stop_after``, ``(points, params)`` and no result (:func:`run_one`)."""
    warm_key = None
    params0 = session.params
    if cfg.warm_start is not None:
        params0, warm_key = _warm_model(cfg, session, progress)
    t0 = time.perf_counter()
    # a replay of a method that does not read the initial losses needs no base evaluation (minutes at the cpu
    # preset's size): its points then hold the measurements without the changes from the base model
    replay_only = stop_after is not None and not cfg.method.spec.needs_initial_losses
    if replay_only:
        base = pretrained = None
    elif warm_key is None:
        base, pretrained = session.base()[cfg.fmt], None
    else:  # the warm model is the reference of the run's changes; the model file's values are kept beside it
        base, pretrained = warm_starts.evaluation(session, warm_key, params0, cfg.fmt), session.base()[cfg.fmt]
    base_public = None if replay_only else {k: v for k, v in base.items() if k not in ("train_token_losses",)}
    chance = None if replay_only else session.base().get("chance")
    # made once the base model is evaluated, so a model or data problem found there leaves no run folder behind
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "config.json", json.dumps({"config": cfg.describe(),
                                                          "key_material": _material(cfg, session.fingerprint)},
                                                         indent=1, default=str).encode())
    sequence_weights = None
    if cfg.method.spec.needs_initial_losses:
        sequence_weights = np.asarray(cfg.method.initial_sequence_weights(jnp.asarray(base["train_sequence_nll"])), np.float32)

    trainable, frozen = init_trainable(cfg.method, params0, jax.random.key(cfg.seed))
    mesh = None if cfg.mesh == (1, 1) else make_mesh(*cfg.mesh)
    # the output head runs only at response tokens: slots for the batch of batch_size rows with the most of them
    capacity = supervised_capacity(session.train[cfg.fmt].loss_mask, cfg.batch_size)
    fast = cfg.engine == "fast"
    step_fn = make_train_step(cfg.method, session.config, cfg.optimizer, mesh, capacity, check_finite=fast)
    opt_state = step_fn.optimizer.init(trainable)
    schedule = learning_rate_schedule(cfg.learning_rate, cfg.steps, cfg.warmup_steps, cfg.schedule)

    points = _read_points(folder)
    start, earlier_s = 0, 0.0  # earlier_s: compute time of the segments before a resumed checkpoint
    if points and cfg.checkpoint_state:
        restored = _load_state(folder, trainable, opt_state)
        if (restored is not None and restored[0] in {p["step"] for p in points}
                and (stop_after is None or restored[0] <= stop_after)):
            start, trainable, opt_state, earlier_s = restored
    if mesh is not None:
        trainable, frozen, opt_state = place_params(trainable, mesh), place_params(frozen, mesh), place_params(opt_state, mesh)
    if start == 0:
        points = []
    else:
        points = [p for p in points if p["step"] <= start]

    from tqdm.auto import tqdm

    probe = None
    if cfg.monitor_every:
        from sft_tilt.harness.step_monitoring import general_probe, monitor_step
        from sft_tilt.monitor import is_monitored_step

        probe = general_probe(session)
    bar = tqdm(total=cfg.steps, initial=start, desc=cfg.label(), leave=False, disable=not progress)
    records: list[dict] = []
    eval_steps = set(cfg.eval_steps)
    diverged = None
    last_saved = time.perf_counter()
    for step in range(start, cfg.steps):
        batch, _ = _batch(cfg, session, step, sequence_weights)
        if fast:
            batch = engines.trim_batch(batch)
        if mesh is not None:
            batch = place_batch(batch, mesh)
        # the optimiser holds its learning rate in its state (make_optimizer), so the schedule is set from here and
        # one compiled step serves every step's learning rate
        learning_rate = schedule(step)
        opt_state.hyperparams["learning_rate"] = jnp.asarray(learning_rate, jnp.float32)
        # the step donates its parameter buffers: a monitored step keeps a copy of the parameters before it
        before = (jax.tree_util.tree_map(jnp.copy, trainable)
                  if probe is not None and is_monitored_step(step, cfg.monitor_every) else None)
        trainable, opt_state, loss, aux = step_fn(trainable, opt_state, frozen, batch)
        records.append(dict(_step_record(step, loss, aux, step // cfg.steps_per_epoch), learning_rate=learning_rate))
        if before is not None and bool(np.isfinite(float(loss))) and _all_finite(trainable):
            records[-1]["monitor"] = monitor_step(cfg.method, session.config, before, trainable, frozen, probe, batch,
                                                  learning_rate)
            before = None
        bar.update(1)
        finite = bool(np.isfinite(float(loss))) and (bool(aux["finite"]) if "finite" in aux else _all_finite(trainable))
        if step + 1 in eval_steps or not finite:
            ev = {}
            if finite:
                ev = session.evaluate(_gathered(full_params(cfg.method, trainable, frozen), mesh), cfg.fmt,
                                      finite_only=True, engine=cfg.engine, wide=cfg.wide_evaluation_at(step + 1))
                finite = ev is not None
            ev = (ev if base is None else _relative(ev, base, pretrained)) if finite else {"diverged": True}
            ev.update(step=step + 1, epochs=(step + 1) / cfg.steps_per_epoch, train_steps=records)
            records = []
            points.append(ev)
            _write_points(folder, points)
            if not finite:
                diverged = step + 1
                break
            if (cfg.checkpoint_state and step + 1 < cfg.steps  # after the last step the result is written instead
                    and engines.checkpoint_due(cfg.engine, time.perf_counter() - last_saved)):
                _save_state(folder, step + 1, *_gathered((trainable, opt_state), mesh),
                            earlier_s + time.perf_counter() - t0)
                last_saved = time.perf_counter()
            if interrupt_after is not None and step + 1 >= interrupt_after and step + 1 < cfg.steps:
                bar.close()
                raise Interrupted(f"simulated interruption after step {step + 1}")
            if stop_after is not None and step + 1 >= stop_after:
                break
    bar.close()
    params = _gathered(full_params(cfg.method, trainable, frozen), mesh)
    if stop_after is not None:  # a replay: the points so far, as points.jsonl stores them; no result written
        return json.loads(json.dumps(_jsonable(points))), params

    result = {"config": cfg.describe(), "key": folder.name, "base": _jsonable(base_public), "chance": chance, "points": points,
              "diverged": diverged is not None, "diverged_step": diverged}
    if warm_key is not None:
        result["warm_start"] = {"key": warm_key}
        result["pretrained"] = _jsonable({k: v for k, v in pretrained.items() if k != "train_token_losses"})
    collapsed = collapsed_step(result)  # finite, but the uniform output (sft_tilt.harness.collapse)
    result.update(collapsed=collapsed is not None, collapsed_step=collapsed)
    if diverged is not None:  # nothing to evaluate: the parameters or their losses are not finite
        result.update(averaging=[], wall_s=earlier_s + time.perf_counter() - t0, resumed_at=start or None)
        return _finish(folder, result, cfg), params
    if cfg.final_accuracy:
        result["accuracy"] = session.accuracy(params, cfg.fmt)
    averaging = []
    for alpha in cfg.averaging_alphas:
        mixed = interpolate_params(params0, params, alpha)
        # the costly sets only where every evaluation point scores them (averaging is judged on losses)
        ev = _relative(session.evaluate(mixed, cfg.fmt, engine=cfg.engine, wide=cfg.wide_eval_every == 1), base,
                       pretrained)
        ev["alpha"] = alpha
        if cfg.averaging_accuracy:
            ev["accuracy"] = session.accuracy(mixed, cfg.fmt)
        averaging.append(ev)
    result["averaging"] = averaging
    result.update(wall_s=earlier_s + time.perf_counter() - t0, resumed_at=start or None)
    return _finish(folder, result, cfg), params


def _gathered(tree, mesh):
    """A mesh-sharded pytree as whole host arrays (evaluation and checkpoints run as on one device); unchanged
    without a mesh. Gathered to a replicated layout first, which every process can read."""
    if mesh is None:
        return tree
    whole = jax.jit(lambda t: t, out_shardings=replicated(mesh))(tree)
    return jax.tree_util.tree_map(lambda x: jnp.asarray(np.asarray(x)), whole)


def _finish(folder: Path, result: dict, cfg: RunConfig) -> dict:
    """Add the provenance, write ``result.json``, drop the checkpoint, and return the result as read back."""
    result["provenance"] = dict(_provenance(cfg, result["wall_s"]), resumed_at_step=result.pop("resumed_at", None))
    write_record(folder / "result.json", _jsonable(result), key=folder.name)
    state = folder / "state.npz"
    if state.exists():
        state.unlink()
    return read_record(folder / "result.json", key=folder.name)


def replay_points(cfg: RunConfig, n_points: int, *, progress: bool = False) -> list[dict]:
    """The first ``n_points`` evaluation points of run ``cfg`` recomputed from step 0 in a temporary run folder
    (the cached and the committed run are neither read nor touched): the same loop as :func:`run_one`, stopped
    after the ``n_points``-th evaluation step, so a learning-rate schedule sees the run's full length. Compared
    with a stored run's points it checks that the run reproduces. Unless the method reads the initial model's
    losses (FLOW), the base model is not evaluated and the points hold the measurements only (``domain_loss``,
    ``general``, statistics, accuracies), not their changes from the base model. A warm-started run reads its warm
    model from the cache (computing it there when missing, :func:`_warm_model`): the warm model is an input of the
    replay, not the run being checked."""
    if isinstance(n_points, bool) or not isinstance(n_points, int) or not 1 <= n_points <= len(cfg.eval_steps):
        raise ValueError(f"n_points: must be an int in [1, {len(cfg.eval_steps)}] (the run's evaluation points), "
                         f"got {n_points!r}")
    with tempfile.TemporaryDirectory(prefix="sft-replay-") as tmp:
        return run_one(cfg, progress=progress, stop_after=cfg.eval_steps[n_points - 1], runs_root=Path(tmp))


def data_hash(data: DataConfig) -> str:
    """Content hash of a data configuration: its sizes and seeds, a data file by its content's hash (not its path)."""
    d = data.describe()
    for name in ("domain_data", "general_data", "real_data"):
        if getattr(data, name) is not None:
            d[name] = getattr(data, name).key_material()
    return content_key(d)


def _machine() -> dict:
    """Where a run was computed: platform, Python, CPU model, logical cores and the load average at the end."""
    processor = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                processor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {"platform": platform.platform(), "python": platform.python_version(), "processor": processor,
            "logical_cores": os.cpu_count(), "loadavg": load}


def _provenance(cfg: RunConfig, wall_s: float) -> dict:
    """What a result was computed with and where (stored in ``result.json``, not part of the key)."""
    return {"training_version": TRAINING_VERSION, "code_key": code_key(__name__), "model_sha256": model_sha256(cfg.model), "data_hash": data_hash(cfg.data),
            "libraries": library_versions(), "machine": _machine(), "wall_s": float(wall_s),
            "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds")}


@jax.jit
def _finite_flag(tree):
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]))


def _all_finite(tree) -> bool:
    """Whether every entry of every leaf is finite: one compiled pass over the pytree (per leaf, eagerly, it was
    hundreds of dispatched operations per training step)."""
    return bool(_finite_flag(tree))


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None if np.isnan(obj) else obj
    return obj


def run_many(configs: list[RunConfig], *, progress: bool = True, desc: str = "runs") -> list[dict]:
    """Run every configuration (finished ones are loaded, not recomputed) with a progress bar and ETA."""
    from tqdm.auto import tqdm

    results = []
    for cfg in tqdm(configs, desc=desc, disable=not progress):
        results.append(run_one(cfg, progress=progress))
    return results
