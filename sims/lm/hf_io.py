"""Read and write Hugging Face checkpoint folders (``config.json`` + ``*.safetensors``) for Llama and Qwen2.

Tensor names (``model.`` prefix; weights stored ``[out, in]``, transposed here to the model's ``[in, out]``):

    model.embed_tokens.weight                       -> embed            [V, D]  (not transposed)
    model.layers.{i}.input_layernorm.weight         -> attn_norm[i]
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight -> wq/wk/wv/wo[i]
    model.layers.{i}.self_attn.{q,k,v}_proj.bias    -> bq/bk/bv[i]       (Qwen2, or Llama with attention_bias)
    model.layers.{i}.post_attention_layernorm.weight -> mlp_norm[i]
    model.layers.{i}.mlp.{gate,up,down}_proj.weight -> w_gate/w_up/w_down[i]
    model.norm.weight                               -> final_norm
    lm_head.weight                                  -> lm_head           (absent when tie_word_embeddings)

The Q/K rows are already in the rotate-half order the model uses (no permutation, unlike GGUF). Tensors of any
floating dtype (float64, float32, float16, bfloat16) are converted to float32.

Checkpoints are untrusted input: ``config.json`` fields must have their JSON types (an integer field holding
2.7 is an error, not 2), every tensor must be finite after the conversion, defined once across the shards,
and used: a tensor the config does not account for (a layer beyond ``num_hidden_layers``, an
``lm_head.weight`` that differs from the tied embedding) is an error rather than silently ignored. The only
tensors skipped are the ``rotary_emb.inv_freq`` buffers older transformers versions saved (recomputed from
``rope_theta``).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from sims.lm.config import ModelConfig
from sims.lm.model import param_shapes, validate_params

__all__ = ["load_hf_checkpoint", "save_hf_checkpoint", "hf_config_to_model_config", "model_config_to_hf_config"]

_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
_IGNORED_TENSOR = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")
_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_LAYER_NAMES = {
    "attn_norm": "input_layernorm.weight",
    "wq": "self_attn.q_proj.weight",
    "wk": "self_attn.k_proj.weight",
    "wv": "self_attn.v_proj.weight",
    "wo": "self_attn.o_proj.weight",
    "bq": "self_attn.q_proj.bias",
    "bk": "self_attn.k_proj.bias",
    "bv": "self_attn.v_proj.bias",
    "mlp_norm": "post_attention_layernorm.weight",
    "w_gate": "mlp.gate_proj.weight",
    "w_up": "mlp.up_proj.weight",
    "w_down": "mlp.down_proj.weight",
}


def hf_config_to_model_config(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Translate a transformers ``config.json`` dict (LlamaConfig / Qwen2Config) into a ModelConfig.

    Raises ValueError naming ``source`` and the field for a config that is not a JSON object, an unsupported
    architecture, rope scaling, partial head_dim or MLP biases, and a missing or mistyped field (integers must
    be JSON integers, numbers finite, flags booleans).
    """
    if not isinstance(hf, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(hf).__name__}")
    missing = object()

    def field(key, kinds, what, default=missing, within=None):
        """``hf[key]`` (or ``hf[within][key]``) if it is one of ``kinds`` (a bool is not an int), else ValueError."""
        container, name = (hf, key) if within is None else (within[1], f"{within[0]}.{key}")
        value = container.get(key)
        if value is None:
            if default is missing:
                raise ValueError(f"{source}: required field {name!r} is missing")
            return default
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ValueError(f"{source}: field {name!r} must be {what}, got {value!r}")
        return value

    def integer(key, default=missing):
        return field(key, (int,), "an integer", default)

    def number(key, default=missing, within=None):
        return float(field(key, (int, float), "a finite number", default, within))

    def flag(key, default):
        return field(key, (bool,), "true or false", default)

    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    if not isinstance(model_type, str) or model_type not in _ARCHITECTURES:
        raise ValueError(
            f"{source}: unsupported architecture model_type={model_type!r} architectures={archs!r} "
            f"(supported: {', '.join(_ARCHITECTURES)})"
        )
    rope = field("rope_parameters", (dict,), "an object", {})
    scaling = field("rope_scaling", (dict,), "an object", {})
    rope_type = scaling.get("rope_type", scaling.get("type")) or rope.get("rope_type", "default")
    if rope_type not in ("default", None):
        raise ValueError(f"{source}: rope scaling {rope_type!r} is not supported")
    if flag("mlp_bias", False):
        raise ValueError(f"{source}: mlp_bias=True is not supported")
    dim, n_heads = integer("hidden_size"), integer("num_attention_heads")
    if n_heads < 1:
        raise ValueError(f"{source}: field 'num_attention_heads' must be positive, got {n_heads}")
    head_dim = integer("head_dim", None)
    if head_dim not in (None, dim // n_heads):
        raise ValueError(f"{source}: head_dim={head_dim} != hidden_size / num_attention_heads is not supported")
    if hf.get("rope_theta") is not None:
        rope_theta = number("rope_theta")
    else:  # transformers 5 keeps it in rope_parameters
        rope_theta = number("rope_theta", 10000.0, within=("rope_parameters", rope))
    try:
        return ModelConfig(
            vocab_size=integer("vocab_size"),
            dim=dim,
            n_layers=integer("num_hidden_layers"),
            n_heads=n_heads,
            n_kv_heads=integer("num_key_value_heads", n_heads),
            hidden_dim=integer("intermediate_size"),
            rope_theta=rope_theta,
            norm_eps=number("rms_norm_eps", 1e-6),
            max_seq_len=integer("max_position_embeddings", 2048),
            tie_embeddings=flag("tie_word_embeddings", False),
            attention_bias=True if model_type == "qwen2" else flag("attention_bias", False),
            architecture=model_type,
        )
    except ValueError as err:
        if str(err).startswith(source):
            raise
        raise ValueError(f"{source}: fields describe an invalid model ({err})") from err


def model_config_to_hf_config(config: ModelConfig) -> dict[str, Any]:
    """The ``config.json`` dict transformers would read for this model."""
    if config.architecture == "qwen2" and not config.attention_bias:
        raise ValueError("a qwen2 checkpoint always has attention biases; set attention_bias=True")
    hf = {
        "architectures": [_ARCHITECTURES[config.architecture]],
        "model_type": config.architecture,
        "vocab_size": config.vocab_size,
        "hidden_size": config.dim,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "intermediate_size": config.hidden_dim,
        "rope_theta": float(config.rope_theta),
        "rms_norm_eps": float(config.norm_eps),
        "max_position_embeddings": config.max_seq_len,
        "tie_word_embeddings": config.tie_embeddings,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    }
    if config.architecture == "llama":
        hf["attention_bias"] = config.attention_bias
        hf["mlp_bias"] = False
    return hf


def load_hf_checkpoint(folder: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """Load ``(config, params)`` (float32 NumPy) from a Hugging Face folder with ``config.json`` and ``*.safetensors``.

    All ``*.safetensors`` files in the folder are read (sharded checkpoints included). Raises FileNotFoundError
    for a missing folder/file and ValueError naming the file and field or tensor for corrupt JSON/safetensors,
    an unsupported architecture, a mistyped field, a missing, duplicated, unknown or misshapen tensor, a
    non-floating tensor, or non-finite values (see the module docstring).
    """
    from safetensors import safe_open

    folder = Path(folder)
    if folder.is_file():
        raise ValueError(f"{folder}: is a file; a checkpoint is a folder with config.json and *.safetensors")
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist")
    try:
        hf = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ValueError(f"{config_path}: not valid JSON ({type(err).__name__}: {err})") from err
    config = hf_config_to_model_config(hf, source=str(config_path))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {folder}")

    tensors: dict[str, tuple[Path, Any]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as f:
                for name in f.keys():
                    if name in tensors:
                        raise ValueError(f"{file}: tensor {name!r} is also defined in {tensors[name][0]}")
                    tensors[name] = (file, f.get_tensor(name))
        except ValueError as err:
            if str(err).startswith(str(file)):
                raise
            raise ValueError(f"{file}: not a readable safetensors file ({type(err).__name__}: {err})") from err
        except Exception as err:
            raise ValueError(f"{file}: not a readable safetensors file ({type(err).__name__}: {err})") from err
    used: set[str] = set()

    def get(name: str, shape: tuple, transpose: bool) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"{folder}: tensor {name!r} is missing from {[f.name for f in files]}")
        used.add(name)
        file, value = tensors[name]
        value = np.asarray(value)
        if value.dtype.name not in _FLOAT_DTYPES:
            raise ValueError(
                f"{file}: tensor {name!r} has dtype {value.dtype.name}; only {', '.join(_FLOAT_DTYPES)} are supported"
            )
        stored = shape[::-1] if transpose else shape
        if value.shape != stored:
            raise ValueError(f"{file}: tensor {name!r} has shape {value.shape}, but {config_path.name} implies {stored}")
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, reported below
            arr = value.astype(np.float32)
        finite = np.isfinite(arr)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"{file}: tensor {name!r} has {int((~finite).sum())} non-finite values (as float32; first at "
                f"index {first}: {value[first]})"
            )
        return np.ascontiguousarray(arr.T if transpose else arr)

    shapes = param_shapes(config)
    layers: dict[str, list] = {k: [] for k in shapes["layers"]}
    for i in range(config.n_layers):
        for key in layers:
            shape = shapes["layers"][key][1:]
            layers[key].append(get(f"model.layers.{i}.{_LAYER_NAMES[key]}", shape, transpose=len(shape) == 2))
    params: dict[str, Any] = {
        "embed": get("model.embed_tokens.weight", shapes["embed"], transpose=False),
        "layers": {k: np.stack(v) for k, v in layers.items()},
        "final_norm": get("model.norm.weight", shapes["final_norm"], transpose=False),
    }
    if not config.tie_embeddings:
        params["lm_head"] = get("lm_head.weight", shapes["lm_head"], transpose=True)
    elif "lm_head.weight" in tensors:  # some exporters save the tied head too: accepted only as an exact copy
        head = get("lm_head.weight", shapes["embed"], transpose=False)
        if not np.array_equal(head, params["embed"]):
            raise ValueError(
                f"{tensors['lm_head.weight'][0]}: tensor 'lm_head.weight' differs from model.embed_tokens.weight, "
                f"but {config_path.name} says tie_word_embeddings=true (the head would be ignored)"
            )
    unknown = sorted(n for n in set(tensors) - used if not _IGNORED_TENSOR.fullmatch(n))
    if unknown:
        raise ValueError(
            f"{folder}: {len(unknown)} tensor(s) that {config_path.name} (num_hidden_layers="
            f"{config.n_layers}, tie_word_embeddings={str(config.tie_embeddings).lower()}) does not account for: "
            f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
        )
    validate_params(config, params, source=str(folder))
    return config, params


def save_hf_checkpoint(folder: str | os.PathLike, config: ModelConfig, params: dict) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (float32) that ``load_hf_checkpoint`` and transformers read.

    Each file is written under a temporary name and renamed, so a half-written checkpoint is never read.
    """
    from safetensors.numpy import save_file

    validate_params(config, params, source="save_hf_checkpoint(params)")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": np.asarray(params["embed"], np.float32),
        "model.norm.weight": np.asarray(params["final_norm"], np.float32),
    }
    for key, stacked in params["layers"].items():
        for i in range(config.n_layers):
            w = np.asarray(stacked[i], np.float32)
            out[f"model.layers.{i}.{_LAYER_NAMES[key]}"] = w.T if w.ndim == 2 else w
    if not config.tie_embeddings:
        out["lm_head.weight"] = np.asarray(params["lm_head"], np.float32).T
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}

    tmp = folder / "model.safetensors.tmp"
    save_file(out, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / "model.safetensors")
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(model_config_to_hf_config(config), indent=2) + "\n")
    os.replace(tmp, folder / "config.json")
    return folder
