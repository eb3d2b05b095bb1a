"""Bytes per device of a training step on a ``data x model`` mesh, and the smallest mesh that fits.

The layout is :mod:`sft_tilt.lm.sharding`'s: the batch split over ``data``; parameters, gradients and Adam state
sharded over ``model`` (each matrix split along its largest axis that ``model`` divides; vectors replicated).
Everything is float32 (``b = 4`` bytes per value), as the toolkit trains. Per device, with ``P_dev`` the
parameter values a device holds (``param_spec`` applied to every tensor of ``sft_tilt.lm.model.param_shapes``),
``n = (B / data) * T`` the tokens it processes, and the model's widths ``D`` (residual), ``Q = H hd`` (queries),
``KV = K hd`` (keys/values), ``F`` (MLP), ``V`` (vocabulary), ``L`` blocks, ``H`` query heads:

    parameters   = b P_dev
    gradients    = b P_dev
    optimiser    = 2 b P_dev                                  Adam's two moments (plus two scalars)
    gathered     = 2 b max(P_block, V D)   if model > 1       one block's (or the embedding's) full weights and
                                                              their full gradient, live while a block runs
    saved        = n (2 D + Q/s_q + 2 KV/s_kv + 4 F/s_f + H T/s_q)
                                                              what one block keeps for its backward pass: the
                                                              two norm outputs (2 D), q, k, v (Q + 2 KV), the
                                                              MLP's gate, up, activation and product (4 F), the
                                                              attention probabilities (H T per token)
    head         = n (D + 3 V/s_v)                            final hidden state; logits, probabilities and
                                                              their gradient
    activations with rematerialisation    = b (n L D + 2 saved + head)
                                                              each block's input is kept; in the backward pass
                                                              one block is recomputed and its values and their
                                                              gradients (2 saved) are live
    activations without rematerialisation = b ((L + 1) saved + head)
                                                              every block's values, plus one block's gradients
    total        = parameters + gradients + optimiser + gathered + activations (with rematerialisation:
                   the model library rematerialises its blocks whole on accelerators,
                   ``sft_tilt.lm.model.remat_policy``; on CPU it keeps the matmul outputs too unless SFT_REMAT=none)

``s_x`` is ``model`` when the weight producing that activation is split along its *output* axis (``wq`` for
queries and heads, ``wk`` for keys/values, ``w_gate`` for the MLP, the embedding's vocabulary axis for logits)
and 1 otherwise: XLA's partitioner then keeps the product split over ``model`` instead of gathering the weight;
a weight split along its input axis gives a replicated output. The batch is never split over ``model``.

It is an estimate: XLA may fuse away or add temporaries. ``tests/lm/test_memory_plan.py`` compares ``total`` with
the compiled step's own per-device figure (``memory_analysis()``: arguments + outputs - donated aliases +
temporaries) on the tiny model.

Model configurations come from a Hugging Face ``config.json`` (a folder holding one, read with
``sft_tilt.lm.hf_io.hf_config_to_model_config``) or from :data:`PUBLISHED_CONFIGS`, the published ``config.json``
values of the models the paper fine-tunes (nothing is downloaded).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import numpy as np

from sft_tilt.lm.config import ModelConfig
from sft_tilt.lm.hf_io import hf_config_to_model_config
from sft_tilt.lm.model import param_shapes
from sft_tilt.lm.sharding import param_spec

__all__ = ["PUBLISHED_CONFIGS", "MemoryPlan", "load_model_config", "plan_memory", "smallest_mesh", "parse_bytes",
           "format_bytes"]

BYTES = 4  # float32

#: The published ``config.json`` of each model (the fields that shape the network; Gemma 3's text model takes
#: ``Gemma3TextConfig``'s defaults for the fields its file leaves out, as transformers does).
PUBLISHED_CONFIGS: dict[str, dict] = {
    "Qwen2.5-3B-Instruct": {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu", "hidden_size": 2048,
        "intermediate_size": 11008, "max_position_embeddings": 32768, "num_attention_heads": 16,
        "num_hidden_layers": 36, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
        "tie_word_embeddings": True, "vocab_size": 151936, "attention_dropout": 0.0,
    },
    "Qwen3-4B": {
        "architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "attention_bias": False, "head_dim": 128,
        "hidden_act": "silu", "hidden_size": 2560, "intermediate_size": 9728, "max_position_embeddings": 40960,
        "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000, "tie_word_embeddings": True, "vocab_size": 151936, "attention_dropout": 0.0,
    },
    "gemma-3-4b-it": {
        "architectures": ["Gemma3ForConditionalGeneration"], "model_type": "gemma3",
        "text_config": {"hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text",
                        "num_hidden_layers": 34, "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
                        "sliding_window": 1024},
    },
}
_ALIASES = {"qwen2.5-3b": "Qwen2.5-3B-Instruct", "qwen2.5-3b-instruct": "Qwen2.5-3B-Instruct",
            "qwen3-4b": "Qwen3-4B", "gemma3-4b": "gemma-3-4b-it", "gemma-3-4b": "gemma-3-4b-it",
            "gemma-3-4b-it": "gemma-3-4b-it"}


def load_model_config(model: str) -> ModelConfig:
    """A published model's name (:data:`PUBLISHED_CONFIGS`, case-insensitive; also ``qwen2.5-3b``, ``qwen3-4b``,
    ``gemma3-4b``) or a folder with a Hugging Face ``config.json`` (or the file itself)."""
    key = str(model).strip()
    name = next((n for n in PUBLISHED_CONFIGS if n.lower() == key.lower()), _ALIASES.get(key.lower()))
    if name is not None:
        return hf_config_to_model_config(PUBLISHED_CONFIGS[name], source=name)
    path = Path(key)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(f"model: {model!r} is neither a folder with config.json nor a known model "
                         f"({sorted(PUBLISHED_CONFIGS)})")
    try:
        hf = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"model: {path} is not readable JSON ({exc})") from None
    return hf_config_to_model_config(hf, source=str(path))


@dataclass(frozen=True)
class MemoryPlan:
    """Bytes per device (module docstring) of one train step on a ``data x model`` mesh."""

    data: int
    model: int
    batch: int
    seq: int
    n_params: int
    parameters: int
    gradients: int
    optimizer: int
    gathered: int
    activations_remat: int
    activations_no_remat: int

    @property
    def devices(self) -> int:
        return self.data * self.model

    @property
    def total(self) -> int:
        """Per device, as the model library trains (rematerialised blocks)."""
        return self.parameters + self.gradients + self.optimizer + self.gathered + self.activations_remat

    @property
    def total_no_remat(self) -> int:
        return self.parameters + self.gradients + self.optimizer + self.gathered + self.activations_no_remat

    def as_dict(self) -> dict:
        return {**asdict(self), "devices": self.devices, "total": self.total, "total_no_remat": self.total_no_remat}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: must be a positive int, got {value!r}")
    return int(value)


def plan_memory(config: ModelConfig, data: int, model: int, batch: int, seq: int) -> MemoryPlan:
    """The per-device bytes of a train step with global batch ``batch`` of ``seq`` tokens on a ``data x model``
    mesh (formulas in the module docstring). ValueError naming the argument for a batch the data axis does
    not divide or a sequence longer than the model's context."""
    data, model = _positive_int("data", data), _positive_int("model", model)
    batch, seq = _positive_int("batch", batch), _positive_int("seq", seq)
    if batch % data:
        raise ValueError(f"batch: {batch} is not divisible by the data axis ({data})")
    if seq > config.max_seq_len:
        raise ValueError(f"seq: {seq} exceeds the model's context max_seq_len={config.max_seq_len}")
    shapes = param_shapes(config)
    leaves = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=lambda s: isinstance(s, tuple))[0]
    p_dev = 0
    for path, shape in leaves:
        size = math.prod(shape)
        p_dev += size // model if "model" in tuple(param_spec(path, shape, model)) else size
    n_block = sum(math.prod(s[1:]) for s in shapes["layers"].values())
    D, F, V, H, L = config.dim, config.hidden_dim, config.vocab_size, config.n_heads, config.n_layers
    Q, KV = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    s_q, s_kv, s_f = (_output_split(("layers", w), shapes["layers"][w], model) for w in ("wq", "wk", "w_gate"))
    s_v = _output_split(("embed",), shapes["embed"], model, axis=0) if config.tie_embeddings else \
        _output_split(("lm_head",), shapes["lm_head"], model)
    n = (batch // data) * seq
    saved = n * (2 * D + Q / s_q + 2 * KV / s_kv + 4 * F / s_f + H * seq / s_q)
    head = n * (D + 3 * V / s_v)
    return MemoryPlan(
        data=data, model=model, batch=batch, seq=seq, n_params=config.n_params(),
        parameters=BYTES * p_dev, gradients=BYTES * p_dev, optimizer=2 * BYTES * p_dev + 2 * BYTES,
        gathered=2 * BYTES * max(n_block, V * D) if model > 1 else 0,
        activations_remat=int(BYTES * (n * L * D + 2 * saved + head)),
        activations_no_remat=int(BYTES * ((L + 1) * saved + head)),
    )


def _output_split(path, shape, model: int, axis: int = -1) -> int:
    """``model`` when the weight at ``path`` is split along its output axis (``axis``), else 1."""
    keys = [jax.tree_util.DictKey(k) for k in path]
    spec = tuple(param_spec(keys, shape, model)) + (None,) * len(shape)
    return model if spec[axis % len(shape)] == "model" else 1


def smallest_mesh(config: ModelConfig, batch: int, seq: int, device_memory: int, max_devices: int = 4096,
                  remat: bool = True, reserve: int = 0) -> MemoryPlan | None:
    """The plan of the fewest devices (then the largest data axis) whose per-device total plus ``reserve``
    bytes (memory the caller holds besides the step, e.g. a copy of the base model) fits ``device_memory``
    bytes, over ``data x model`` meshes with ``data`` dividing ``batch``; None if none up to ``max_devices``
    does."""
    device_memory = _positive_int("device_memory", device_memory) - reserve
    for devices in range(1, _positive_int("max_devices", max_devices) + 1):
        for data in sorted((d for d in range(1, devices + 1) if devices % d == 0 and batch % d == 0), reverse=True):
            plan = plan_memory(config, data, devices // data, batch, seq)
            if (plan.total if remat else plan.total_no_remat) <= device_memory:
                return plan
    return None


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_bytes(text: str) -> int:
    """``"80GB"`` -> 80e9, ``"141GiB"`` -> 141 * 2^30 (decimal KB/MB/GB/TB, binary KiB/MiB/GiB/TiB, or bytes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).upper() not in _UNITS or float(m.group(1)) <= 0:
        raise ValueError(f"device_memory: expected a positive size such as 80GB or 141GiB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def format_bytes(n: int) -> str:
    """Bytes in GB (decimal) with two decimals, or MB below 1 GB."""
    return f"{n / 1e9:.2f} GB" if n >= 1e9 else f"{n / 1e6:.2f} MB"
