"""Run a vmapped function over a sweep's leading axis, sharded across every available JAX device.

``map_sharded(fn, *arrays)`` computes ``jax.vmap(fn)(*arrays)`` with the leading (cell) axis of each input
placed on a 1-D device mesh ``Mesh(jax.devices(), ("cells",))`` with ``NamedSharding(mesh, P("cells"))``; the
jitted computation then runs each device's slice where it lives (one CPU, eight GPUs, or, after
``jax.distributed.initialize()``, every device of a multi-host cluster: ``jax.devices()`` is global there).
The leading axis is padded (by repeating the last cell) to a multiple of the device count and the padding
dropped from the result, so results do not depend on the number of devices: each cell is computed by the
same per-cell program whatever its neighbours are.

Multi-host note: this module places host-local NumPy/JAX inputs with ``jax.device_put``; on several hosts every
process must call it with the same full inputs (SPMD), which is how the experiments use it (inputs are small
configuration grids, the work is per cell).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["sweep_mesh", "map_sharded", "map_sharded_chunks"]

_COMPILED: dict[Any, Callable] = {}


def sweep_mesh(devices=None) -> Mesh:
    """1-D mesh named ``"cells"`` over ``devices`` (default: all of ``jax.devices()``)."""
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices: empty device list")
    return Mesh(np.array(devs), ("cells",))


def _vmapped(fn: Callable) -> Callable:
    if fn not in _COMPILED:
        _COMPILED[fn] = jax.jit(jax.vmap(fn))
    return _COMPILED[fn]


def map_sharded(fn: Callable, *arrays, devices=None):
    """``jax.vmap(fn)(*arrays)`` with the leading axis sharded over ``devices`` (module docstring).

    Args:
        fn: per-cell function of array arguments (the same callable object is compiled once and reused).
        arrays: inputs with a common leading length ``n >= 1`` (pytrees of arrays allowed).
        devices: optional explicit device list.
    Returns:
        the pytree of outputs with leading length ``n``.
    """
    leaves = jax.tree_util.tree_leaves(arrays)
    if not leaves:
        raise ValueError("arrays: need at least one input array")
    n = int(np.shape(leaves[0])[0])
    if n < 1 or any(int(np.shape(x)[0]) != n for x in leaves):
        raise ValueError(f"arrays: every input needs the same leading length >= 1, got {[np.shape(x) for x in leaves]}")
    mesh = sweep_mesh(devices)
    k = mesh.devices.size
    pad = (-n) % k

    def place(x):
        x = jnp.asarray(x)
        if pad:
            x = jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)], axis=0)
        return jax.device_put(x, NamedSharding(mesh, PartitionSpec("cells")))

    placed = jax.tree_util.tree_map(place, arrays)
    out = _vmapped(fn)(*placed)
    return jax.tree_util.tree_map(lambda x: x[:n], out)


def map_sharded_chunks(fn: Callable, *arrays, chunk: int, devices=None, progress: str | None = None):
    """:func:`map_sharded` over consecutive chunks of ``chunk`` cells (bounded memory), concatenated as NumPy.

    ``progress``: a tqdm description to show a bar over chunks (``None``: no bar).
    """
    if not (isinstance(chunk, int) and chunk >= 1):
        raise ValueError(f"chunk: must be an integer >= 1, got {chunk!r}")
    leaves = jax.tree_util.tree_leaves(arrays)
    n = int(np.shape(leaves[0])[0])
    starts = range(0, n, chunk)
    if progress is not None:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc=progress, unit="chunk")
    parts = []
    for a in starts:
        sl = jax.tree_util.tree_map(lambda x: x[a : a + chunk], arrays)
        parts.append(jax.tree_util.tree_map(np.asarray, map_sharded(fn, *sl, devices=devices)))
    return jax.tree_util.tree_map(lambda *xs: np.concatenate(xs, axis=0), *parts)
