"""Where a training step's arrays live on a two-axis device mesh: batch over ``data``, parameters over ``model``.

The mesh is ``jax.sharding.Mesh`` with axes ``("data", "model")`` of sizes ``data x model`` = the number of
devices (``jax.make_mesh``). The layout, as ``jax.sharding.NamedSharding`` / ``PartitionSpec``:

* **batch**: every array of a batch is split along its leading (example) axis over ``data``:
  ``PartitionSpec("data")``, so each data-parallel group sees ``B / data`` examples. Along ``model`` the batch
  is replicated.
* **parameters, gradients, optimiser state** (fully-sharded data parallel over ``model``): each *matrix* is
  split along its largest axis that ``model`` divides evenly (ties: the first), ``PartitionSpec(..., "model",
  ...)``; every device holds ``1 / model`` of it. A leaf under a ``layers`` key, or with three or more axes,
  has a leading stacking axis (one slice per transformer block or adapter) that is never split; its matrix axes
  are the remaining two. Vectors (norm gains, biases, stacked or not), scalars (Adam's step count, the learning
  rate) and matrices with no evenly divisible axis are replicated. The rule depends only on a leaf's path and
  shape, so Adam's two moments get the layout of the parameter they belong to.

Along ``data`` every parameter is replicated; along ``model`` every batch slice is. The compiler (XLA's SPMD
partitioner) inserts the collectives the layout implies: the gradient reduction over ``data`` and the gathers of
parameter shards over ``model`` that each block's matrix products need. Results equal the one-device step up to
float32 summation order (measured in ``tests/harness/test_harness_sharding.py``).

Host arrays are placed with ``jax.make_array_from_callback``, which builds a global array from the slices each
process addresses, so the same code serves one process or several (after :func:`initialize_distributed`).
"""

from __future__ import annotations

import os
import re
from typing import Mapping

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

__all__ = ["MESH_AXES", "parse_mesh", "make_mesh", "param_spec", "param_shardings", "place_params", "place_batch",
           "constrain_params", "replicated", "initialize_distributed", "DISTRIBUTED_VARIABLES"]

MESH_AXES = ("data", "model")

#: The environment variables that make :func:`initialize_distributed` start ``jax.distributed``.
DISTRIBUTED_VARIABLES = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def parse_mesh(text: str) -> tuple[int, int]:
    """``"DATAxMODEL"`` (e.g. ``"2x4"``) -> ``(2, 4)``; a ValueError naming ``mesh`` otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        raise ValueError(f"mesh: expected DATAxMODEL with two positive integers (e.g. 2x4), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def make_mesh(data: int, model: int, devices=None) -> Mesh:
    """The ``data x model`` mesh over ``devices`` (default: all of ``jax.devices()``, every host's after
    ``jax.distributed.initialize``); the product must equal the number of devices."""
    for name, value in (("data", data), ("model", model)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"mesh: {name} axis must be a positive int, got {value!r}")
    devices = list(jax.devices() if devices is None else devices)
    if data * model != len(devices):
        raise ValueError(f"mesh: {data}x{model} needs {data * model} devices, there are {len(devices)}")
    # Auto axes: the compiler propagates the layout through the model (the model code names no sharding)
    return jax.make_mesh((data, model), MESH_AXES, axis_types=(AxisType.Auto, AxisType.Auto), devices=devices)


def _is_stacked(path) -> bool:
    return any(isinstance(k, jax.tree_util.DictKey) and k.key == "layers" for k in path)


def param_spec(path, shape: tuple[int, ...], n_model: int) -> PartitionSpec:
    """The ``PartitionSpec`` of one parameter-shaped leaf (the rule in the module docstring)."""
    shape = tuple(shape)
    lead = 1 if (_is_stacked(path) or len(shape) >= 3) and len(shape) >= 1 else 0
    matrix = list(range(lead, len(shape)))
    if len(matrix) != 2 or n_model == 1:
        return PartitionSpec()
    divisible = [a for a in matrix if shape[a] % n_model == 0]
    if not divisible:
        return PartitionSpec()
    axis = max(divisible, key=lambda a: (shape[a], -a))
    return PartitionSpec(*[("model" if a == axis else None) for a in range(len(shape))])


def param_shardings(tree, mesh: Mesh):
    """A pytree of ``NamedSharding`` matching ``tree`` (parameters, gradients or optimiser state)."""
    n_model = mesh.shape["model"]
    return jax.tree_util.tree_map_with_path(
        lambda path, x: NamedSharding(mesh, param_spec(path, np.shape(x), n_model)), tree)


def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def _place(x, sharding: NamedSharding):
    if isinstance(x, jax.Array) and x.sharding == sharding:
        return x
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def place_params(tree, mesh: Mesh):
    """Put a parameter-shaped pytree (host or device arrays, the same full values on every process) onto the
    mesh with :func:`param_shardings`."""
    return jax.tree_util.tree_map(_place, tree, param_shardings(tree, mesh))


def place_batch(batch: Mapping, mesh: Mesh) -> dict:
    """Split every array of ``batch`` along its leading axis over ``data`` (a ValueError naming the entry when
    the leading size is not divisible by the ``data`` axis)."""
    n = mesh.shape["data"]
    for key, value in batch.items():
        if np.ndim(value) < 1 or np.shape(value)[0] % n:
            raise ValueError(f"batch[{key!r}]: leading size {np.shape(value)[:1]} is not divisible by the mesh's "
                             f"data axis ({n})")
    return {key: _place(value, NamedSharding(mesh, PartitionSpec("data"))) for key, value in batch.items()}


def constrain_params(tree, mesh: Mesh):
    """Inside ``jax.jit``: pin a parameter-shaped pytree (gradients, updated parameters, optimiser state) to
    :func:`param_shardings` with ``jax.lax.with_sharding_constraint``."""
    return jax.lax.with_sharding_constraint(tree, param_shardings(tree, mesh))


def initialize_distributed(environ: Mapping[str, str] | None = None) -> bool:
    """Start ``jax.distributed`` for a run over several processes (hosts); return whether it was started.

    * ``JAX_COORDINATOR_ADDRESS`` (``host:port`` of process 0) set: ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``
      must be set too, and ``jax.distributed.initialize(address, num_processes, process_id)`` is called
      (``JAX_LOCAL_DEVICE_IDS``, optional, is read by JAX itself).
    * otherwise, under a Slurm job with more than one task (``SLURM_JOB_ID`` and ``SLURM_NTASKS`` > 1) or an
      Open MPI launch (``OMPI_MCA_orte_hnp_uri``): ``jax.distributed.initialize()`` with JAX's cluster
      auto-detection.
    * otherwise nothing happens (one process: today's single-host behaviour).

    Must run before anything touches a device. A ValueError names the variable that is missing or malformed.
    """
    env = os.environ if environ is None else environ
    address = env.get("JAX_COORDINATOR_ADDRESS")
    if address:
        values = {}
        for name in DISTRIBUTED_VARIABLES[1:]:
            text = env.get(name)
            if text is None:
                raise ValueError(f"{name}: must be set with JAX_COORDINATOR_ADDRESS ({DISTRIBUTED_VARIABLES})")
            try:
                values[name] = int(text)
            except ValueError:
                raise ValueError(f"{name}: must be an integer, got {text!r}") from None
        n, pid = values["JAX_NUM_PROCESSES"], values["JAX_PROCESS_ID"]
        if n < 1:
            raise ValueError(f"JAX_NUM_PROCESSES: must be >= 1, got {n}")
        if not 0 <= pid < n:
            raise ValueError(f"JAX_PROCESS_ID: must lie in [0, {n}), got {pid}")
        jax.distributed.initialize(coordinator_address=address, num_processes=n, process_id=pid)
        return True
    slurm = "SLURM_JOB_ID" in env and env.get("SLURM_NTASKS", "1").isdigit() and int(env.get("SLURM_NTASKS", "1")) > 1
    if slurm or "OMPI_MCA_orte_hnp_uri" in env:
        jax.distributed.initialize()
        return True
    return False
