"""The stored warm models of warm-started runs (:class:`sft_tilt.harness.run_config.WarmStart`): their parameters
and their evaluation, in the user cache.

A warm model is the end of its warm-up phase, a run of its own (``WarmStart.run_config``) whose run key names it.
Its parameters are a checksummed ``.npz`` record (:func:`sft_tilt.store.write_record`; no pickle) at
``<cache>/warm_starts/<key>.npz`` (:func:`params_path`, ``<cache>`` = :func:`sft_tilt.store.cache_root`), never in
the repository. A record that is missing, fails its checksum or key, or whose arrays do not have the model's shapes
and dtypes is not used: :func:`read_params` returns None, with a warning naming the path for a damaged one, and the
trainer (:mod:`sft_tilt.harness.runs`) recomputes it with the same training loop. The warm model's evaluation
(held-out and general losses, held-out probability statistics, training-set losses, accuracy: what
``Session.base`` holds for the model file's parameters) is a cache entry keyed by the warm run's key
(:func:`evaluation`).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from sft_tilt.store import cache_root, cached, code_key, read_record, write_record

__all__ = ["NAMESPACE", "params_path", "read_params", "write_params", "evaluation"]

#: The cache folder of the warm models' parameters.
NAMESPACE = "warm_starts"


def params_path(key: str) -> Path:
    """Where the parameters of the warm model of warm-up run ``key`` are stored."""
    if not (isinstance(key, str) and key.isalnum()):
        raise ValueError(f"key: expected a run key (letters and digits), got {key!r}")
    return cache_root() / NAMESPACE / f"{key}.npz"


def write_params(path: Path, key: str, params) -> None:
    """Store ``params`` (a pytree of arrays) at ``path`` as a checksummed record for ``key``; the shapes are stored
    beside the leaves (a record gives 0-d arrays back with shape ``(1,)``)."""
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(jax.device_get(params))]
    write_record(path, {"leaves": leaves, "shapes": [list(x.shape) for x in leaves]}, key=key)


def read_params(path: Path, key: str, like):
    """The parameters stored at ``path`` for ``key`` as a pytree of the structure of ``like`` (the model file's
    parameters), or None when the record is missing, damaged, stored for another key or of other shapes or dtypes
    (each but the first reported by a warning naming ``path``)."""
    value = read_record(path, key=key)  # warns with the path and deletes a damaged record
    if value is None:
        return None
    fresh, treedef = jax.tree_util.tree_flatten(like)
    try:
        leaves = [np.asarray(a).reshape(shape) for a, shape in zip(value["leaves"], value["shapes"], strict=True)]
    except (KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"{path}: not a record of warm-start parameters ({exc}); it is recomputed")
        return None
    problem = "" if len(leaves) == len(fresh) else f"{len(leaves)} arrays, the model has {len(fresh)}"
    for i, (a, b) in enumerate(zip(leaves, fresh)):
        if not problem and (a.shape != np.shape(b) or a.dtype != np.asarray(b).dtype):
            problem = f"array {i} is {a.dtype}{list(a.shape)}, the model's is {np.asarray(b).dtype}{list(np.shape(b))}"
    if problem:
        warnings.warn(f"{path}: warm-start parameters do not fit the model ({problem}); they are recomputed")
        return None
    return jax.tree_util.tree_unflatten(treedef, [jnp.asarray(x) for x in leaves])


def evaluation(session, key: str, params, fmt: str) -> dict:
    """The warm model's evaluation in ``fmt``, with the training set's losses and the greedy accuracy (the fields of
    ``Session.base()[fmt]``), cached by the warm-up run's ``key``."""
    material = {**session.key_material(), "what": "warm_start_eval", "warm_start": key, "fmt": fmt,
                "code": code_key("sft_tilt.harness.session")}

    def compute():
        ev = session.evaluate(params, fmt, with_train_stats=True)
        ev["accuracy"] = session.accuracy(params, fmt)
        return ev

    return cached("harness_warm_start_eval", material, compute)
