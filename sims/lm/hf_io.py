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
floating dtype (float32, float16, bfloat16) are converted to float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from sims.lm.config import ModelConfig
from sims.lm.model import param_shapes, validate_params

__all__ = ["load_hf_checkpoint", "save_hf_checkpoint", "hf_config_to_model_config", "model_config_to_hf_config"]

_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}
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

    Raises ValueError naming ``source`` for an unsupported architecture, rope scaling, partial head_dim,
    MLP biases, or missing fields.
    """
    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    if model_type not in _ARCHITECTURES:
        raise ValueError(
            f"{source}: unsupported architecture model_type={model_type!r} architectures={archs} "
            f"(supported: {', '.join(_ARCHITECTURES)})"
        )
    rope = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling")
    rope_type = (scaling or {}).get("rope_type", (scaling or {}).get("type")) or rope.get("rope_type", "default")
    if rope_type not in ("default", None):
        raise ValueError(f"{source}: rope scaling {rope_type!r} is not supported")
    if hf.get("mlp_bias"):
        raise ValueError(f"{source}: mlp_bias=True is not supported")
    try:
        dim, n_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
        if hf.get("head_dim") not in (None, dim // n_heads):
            raise ValueError(f"{source}: head_dim={hf['head_dim']} != hidden_size / num_attention_heads is not supported")
        return ModelConfig(
            vocab_size=int(hf["vocab_size"]),
            dim=dim,
            n_layers=int(hf["num_hidden_layers"]),
            n_heads=n_heads,
            n_kv_heads=int(hf.get("num_key_value_heads") or n_heads),
            hidden_dim=int(hf["intermediate_size"]),
            rope_theta=float(hf.get("rope_theta") or rope.get("rope_theta") or 10000.0),
            norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
            max_seq_len=int(hf.get("max_position_embeddings", 2048)),
            tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=True if model_type == "qwen2" else bool(hf.get("attention_bias", False)),
            architecture=model_type,
        )
    except KeyError as err:
        raise ValueError(f"{source}: required field {err.args[0]!r} is missing") from err


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
    for a missing folder/file and ValueError naming the file for corrupt JSON/safetensors, an unsupported
    architecture, a missing tensor, or a tensor whose shape disagrees with ``config.json``.
    """
    from safetensors import safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} does not exist")
    try:
        hf = json.loads(config_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_path}: not valid JSON ({err})") from err
    config = hf_config_to_model_config(hf, source=str(config_path))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors file in {folder}")

    tensors: dict[str, tuple[Path, Any]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="numpy") as f:
                for name in f.keys():
                    tensors[name] = (file, f.get_tensor(name))
        except Exception as err:
            raise ValueError(f"{file}: not a readable safetensors file ({type(err).__name__}: {err})") from err

    def get(name: str, shape: tuple, transpose: bool) -> np.ndarray:
        if name not in tensors:
            raise ValueError(f"{folder}: tensor {name!r} is missing from {[f.name for f in files]}")
        file, value = tensors[name]
        arr = np.asarray(value).astype(np.float32)
        if transpose:
            arr = arr.T
        if arr.shape != shape:
            raise ValueError(
                f"{file}: tensor {name!r} has shape {arr.T.shape if transpose else arr.shape}, "
                f"but {config_path.name} implies {shape[::-1] if transpose else shape}"
            )
        return np.ascontiguousarray(arr)

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
