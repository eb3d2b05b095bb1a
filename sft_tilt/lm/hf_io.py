"""Read and write Hugging Face checkpoint folders (``config.json`` + ``*.safetensors``): Llama (2, 3.x, SmolLM2),
Qwen2 / Qwen2.5, Qwen3 and Gemma 3 text models.

Tensor names (``model.`` prefix; weights stored ``[out, in]``, transposed here to the model's ``[in, out]``):

    model.embed_tokens.weight                       -> embed            [V, D]  (not transposed)
    model.layers.{i}.input_layernorm.weight         -> attn_norm[i]
    model.layers.{i}.self_attn.{q,k,v,o}_proj.weight -> wq/wk/wv/wo[i]
    model.layers.{i}.self_attn.{q,k,v}_proj.bias    -> bq/bk/bv[i]       (Qwen2, or Llama with attention_bias)
    model.layers.{i}.self_attn.{q,k}_norm.weight    -> q_norm/k_norm[i]  (Qwen3, Gemma 3)
    model.layers.{i}.post_attention_layernorm.weight -> mlp_norm[i]       (Llama, Qwen: the norm before the MLP)
                                                    -> attn_post_norm[i] (Gemma 3: the norm after attention)
    model.layers.{i}.pre_feedforward_layernorm.weight  -> mlp_norm[i]       (Gemma 3)
    model.layers.{i}.post_feedforward_layernorm.weight -> mlp_post_norm[i]  (Gemma 3)
    model.layers.{i}.mlp.{gate,up,down}_proj.weight -> w_gate/w_up/w_down[i]
    model.norm.weight                               -> final_norm
    lm_head.weight                                  -> lm_head           (absent when tie_word_embeddings)

A Gemma 3 image-text checkpoint (``model_type="gemma3"``, Gemma3ForConditionalGeneration: every released Gemma 3
size from 4B up) is read as its text model: ``text_config`` gives the config, the language-model tensors are
found under ``language_model.model.`` (transformers 4 files) or ``model.language_model.`` (transformers 5), and
the ``vision_tower`` / ``multi_modal_projector`` tensors are skipped (they only process images).

``config.json`` fields -> ``ModelConfig`` (see ``sft_tilt.lm.config``):

    vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size
        -> vocab_size, dim, n_layers, n_heads, n_kv_heads, hidden_dim
    head_dim -> head_dim_override;  rms_norm_eps -> norm_eps;  max_position_embeddings -> max_seq_len
    tie_word_embeddings -> tie_embeddings;  attention_bias -> attention_bias (always true for Qwen2)
    rope_theta / rope_parameters.rope_theta -> rope_theta;  rope_scaling / rope_parameters (rope_type "linear",
        "llama3") -> rope_scaling;  Gemma 3: rope_parameters.full_attention / .sliding_attention, or rope_theta,
        rope_scaling (global layers) and rope_local_base_freq (sliding layers) -> rope_theta, rope_scaling,
        rope_local_theta
    layer_types (or Gemma 3's sliding_window_pattern: every p-th layer global; Qwen's use_sliding_window with
        max_window_layers) and sliding_window -> layer_types, sliding_window
    Gemma 3: query_pre_attn_scalar, final_logit_softcapping -> same names; hidden_activation="gelu_pytorch_tanh"
        -> mlp_activation="gelu_tanh"; implied: qk_norm, norm_unit_offset, post_norms, embed_scale
    Qwen3: implied qk_norm

A missing field takes transformers' default for that family (``Gemma3TextConfig``, ``Qwen3Config``, ...), except
that the Llama/Qwen shape fields are required. A field the loader does not know raises ValueError naming it,
unless it is in ``IGNORED_CONFIG_FIELDS`` (fields known not to change the computation: token ids, dtype,
initialiser range, ...) or its value is null. Fields that would change the computation in a way this decoder
does not implement (other rope types, dropout, MLP biases, bidirectional attention, ...) raise ValueError too.

The Q/K rows are already in the rotate-half order the model uses (no permutation, unlike GGUF). Tensors of any
floating dtype (float64, float32, float16, bfloat16) are converted to float32.

Checkpoints are untrusted input: ``config.json`` fields must have their JSON types (an integer field holding
2.7 is an error, not 2), every tensor must be finite after the conversion, defined once across the shards,
and used: a tensor the config does not account for (a layer beyond ``num_hidden_layers``, an
``lm_head.weight`` that differs from the tied embedding) is an error rather than silently ignored. The only
tensors skipped are the ``rotary_emb.inv_freq`` buffers older transformers versions saved (recomputed from
``rope_theta``) and the image tower of a Gemma 3 image-text checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from sft_tilt.lm.config import LAYER_TYPES, ModelConfig, RopeScaling
from sft_tilt.lm.model import param_shapes, validate_params

__all__ = ["load_hf_checkpoint", "save_hf_checkpoint", "hf_config_to_model_config", "model_config_to_hf_config",
           "IGNORED_CONFIG_FIELDS"]

_ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM",
                  "gemma3": "Gemma3ForCausalLM"}
_MODEL_TYPES = {"llama": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "gemma3_text": "gemma3"}  # HF -> ours
_HF_MODEL_TYPE = {v: k for k, v in _MODEL_TYPES.items()}

#: ``config.json`` fields known not to change the text model's forward computation (token ids, bookkeeping,
#: initialisation, generation-time cache choice, classification heads).
IGNORED_CONFIG_FIELDS = frozenset({
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "_name_or_path",
    "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
    "initializer_range", "use_cache", "cache_implementation", "pretraining_tp", "output_attentions",
    "output_hidden_states", "return_dict", "id2label", "label2id", "problem_type", "tokenizer_class",
    "_attn_implementation_autoset", "is_decoder", "is_encoder_decoder", "add_cross_attention",
    "tie_encoder_decoder", "chunk_size_feed_forward", "task_specific_params", "finetuning_task",
    "unsloth_version", "unsloth_fixed",
})
# Gemma 3 image-text wrapper: fields that only concern images.
_IMAGE_FIELDS = frozenset({"vision_config", "boi_token_index", "eoi_token_index", "image_token_index",
                           "mm_tokens_per_image"})
_IMAGE_TENSOR = re.compile(r"(model\.)?(vision_tower|multi_modal_projector)\..*")
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
    "q_norm": "self_attn.q_norm.weight",
    "k_norm": "self_attn.k_norm.weight",
    "mlp_norm": "post_attention_layernorm.weight",
    "w_gate": "mlp.gate_proj.weight",
    "w_up": "mlp.up_proj.weight",
    "w_down": "mlp.down_proj.weight",
}
# With post_norms (Gemma) the names of the norms around the MLP shift by one.
_POST_NORM_LAYER_NAMES = dict(_LAYER_NAMES, attn_post_norm="post_attention_layernorm.weight",
                              mlp_norm="pre_feedforward_layernorm.weight",
                              mlp_post_norm="post_feedforward_layernorm.weight")

_MISSING = object()
# transformers 5.23's Gemma3TextConfig defaults, used when a field is absent (released image-text configs omit many).
_GEMMA3_DEFAULTS = dict(vocab_size=262_208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                        num_attention_heads=8, num_key_value_heads=4, head_dim=256, max_position_embeddings=131_072,
                        query_pre_attn_scalar=256, sliding_window=4096, rope_theta=1_000_000.0,
                        rope_local_base_freq=10_000.0, sliding_window_pattern=6)


def _layer_names(config: ModelConfig) -> dict[str, str]:
    return _POST_NORM_LAYER_NAMES if config.post_norms else _LAYER_NAMES


class _Fields:
    """Typed access to a config dict, remembering which fields were read (the rest must be known-harmless)."""

    def __init__(self, hf: dict, source: str, prefix: str = ""):
        self.hf, self.source, self.prefix, self.read = hf, source, prefix, set()

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.source}: {message}")

    def get(self, key, kinds, what, default=_MISSING, container=None, name=None):
        """``hf[key]`` (or ``container[key]``) if it is one of ``kinds`` (a bool is not an int), else ValueError."""
        if container is None:
            container, name = self.hf, self.prefix + key
            self.read.add(key)
        value = container.get(key)
        if value is None:
            if default is _MISSING:
                raise self.error(f"required field {name!r} is missing")
            return default
        if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise self.error(f"field {name!r} must be {what}, got {value!r}")
        return value

    def integer(self, key, default=_MISSING, **kw):
        return self.get(key, (int,), "an integer", default, **kw)

    def number(self, key, default=_MISSING, **kw):
        value = self.get(key, (int, float), "a finite number", default, **kw)
        return value if value is None or value is default else float(value)

    def flag(self, key, default=_MISSING, **kw):
        return self.get(key, (bool,), "true or false", default, **kw)

    def text(self, key, default=_MISSING, **kw):
        return self.get(key, (str,), "a string", default, **kw)

    def obj(self, key, default=_MISSING, **kw):
        return self.get(key, (dict,), "an object", default, **kw)

    def finish(self, extra_ignored=frozenset()) -> None:
        unknown = sorted(k for k in set(self.hf) - self.read - IGNORED_CONFIG_FIELDS - extra_ignored
                         if self.hf[k] is not None)
        if unknown:
            names = [self.prefix + k for k in unknown]
            raise self.error(f"unknown config field(s) {names} may change the computation and are not supported "
                             "(fields known not to matter are listed in sft_tilt.lm.hf_io.IGNORED_CONFIG_FIELDS)")


def _rope_dict(f: _Fields, params: dict, name: str, default_theta) -> tuple[float, RopeScaling | None]:
    """(theta, scaling) from one rope parameter dict (``rope_type``/``type``, ``rope_theta``, ``factor``, ...)."""
    rope_type = params.get("rope_type", params.get("type", "default"))
    if "rope_type" in params and "type" in params and params["type"] != params["rope_type"]:
        raise f.error(f"field {name!r} has rope_type={params['rope_type']!r} but type={params['type']!r}")
    if not isinstance(rope_type, str):
        raise f.error(f"field '{name}.rope_type' must be a string, got {rope_type!r}")
    allowed = {"rope_type", "type", "rope_theta"}
    allowed |= {"default": set(), "linear": {"factor"},
                "llama3": {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"},
                }.get(rope_type, set())
    if rope_type not in ("default", "linear", "llama3"):
        raise f.error(f"rope scaling {rope_type!r} (field {name!r}) is not supported (supported: default, linear, "
                      "llama3)")
    prf = params.get("partial_rotary_factor")
    if prf is not None and prf != 1 and prf != 1.0:
        raise f.error(f"partial rotary embeddings ({name}.partial_rotary_factor={prf!r}) are not supported")
    allowed.add("partial_rotary_factor")
    unknown = sorted(str(k) for k in params if k not in allowed and params[k] is not None)
    if unknown:
        raise f.error(f"rope scaling {rope_type!r}: unknown field(s) {[f'{name}.{k}' for k in unknown]} in {name!r}")
    theta = f.number("rope_theta", default_theta, container=params, name=f"{name}.rope_theta")
    if rope_type == "default":
        return theta, None
    try:
        factor = f.number("factor", container=params, name=f"{name}.factor")
        if rope_type == "linear":
            return theta, RopeScaling("linear", factor)
        return theta, RopeScaling(
            "llama3", factor,
            low_freq_factor=f.number("low_freq_factor", container=params, name=f"{name}.low_freq_factor"),
            high_freq_factor=f.number("high_freq_factor", container=params, name=f"{name}.high_freq_factor"),
            original_max_position_embeddings=f.integer(
                "original_max_position_embeddings", f.hf.get("max_position_embeddings"), container=params,
                name=f"{name}.original_max_position_embeddings"),
        )
    except ValueError as err:
        message = str(err)
        if message.startswith(f.source + ": "):
            message = message[len(f.source) + 2:]
        raise f.error(f"rope scaling {rope_type!r} in {name!r} is invalid ({message})") from err


def _rope(f: _Fields, default_theta: float) -> tuple[float, RopeScaling | None]:
    """Rope of a model with one rotary table: transformers 4's ``rope_theta`` + ``rope_scaling`` or transformers 5's
    ``rope_parameters`` (with ``rope_scaling`` winning, as transformers does; the two may not disagree)."""
    scaling = f.obj("rope_scaling", {})
    parameters = f.obj("rope_parameters", {})
    top_theta = f.number("rope_theta", None)
    for key in set(scaling) & set(parameters):
        if scaling[key] != parameters[key]:
            raise f.error(f"fields 'rope_scaling' and 'rope_parameters' disagree on {key!r}")
    merged = dict(parameters, **scaling)
    if top_theta is not None and merged.get("rope_theta") not in (None, top_theta):
        raise f.error(f"field 'rope_theta'={top_theta} disagrees with {merged['rope_theta']!r} in 'rope_parameters'")
    name = f.prefix + ("rope_scaling" if scaling else "rope_parameters")
    return _rope_dict(f, merged, name, top_theta if top_theta is not None else default_theta)


def _gemma3_rope(f: _Fields):
    """(global theta, global scaling, local theta) of a Gemma 3 config in either transformers format."""
    parameters = f.obj("rope_parameters", {})
    scaling = f.obj("rope_scaling", {})
    top_theta = f.number("rope_theta", None)
    local_theta = f.number("rope_local_base_freq", None)
    unknown = sorted(str(k) for k in parameters if k not in LAYER_TYPES)
    if unknown:
        raise f.error(f"field '{f.prefix}rope_parameters' must map {list(LAYER_TYPES)} to rope parameters; "
                      f"unknown key(s) {unknown}")
    nested = {}
    for kind in LAYER_TYPES:
        value = parameters.get(kind) or {}
        if not isinstance(value, dict):
            raise f.error(f"field '{f.prefix}rope_parameters.{kind}' must be an object, got {value!r}")
        nested[kind] = dict(value)
    for key, value in scaling.items():  # transformers: rope_scaling updates the global layers' parameters
        if key in nested["full_attention"] and nested["full_attention"][key] != value:
            raise f.error(f"fields 'rope_scaling' and 'rope_parameters.full_attention' disagree on {key!r}")
        nested["full_attention"][key] = value
    for kind, theta, default in (("full_attention", top_theta, _GEMMA3_DEFAULTS["rope_theta"]),
                                 ("sliding_attention", local_theta, _GEMMA3_DEFAULTS["rope_local_base_freq"])):
        given = nested[kind].get("rope_theta")
        if theta is not None and given is not None and given != theta:
            raise f.error(f"rope_theta of {kind} layers is given twice with different values ({theta}, {given!r})")
        if given is None:
            nested[kind]["rope_theta"] = theta if theta is not None else default
    g_theta, g_scaling = _rope_dict(f, nested["full_attention"], f"{f.prefix}rope_parameters.full_attention", None)
    l_theta, l_scaling = _rope_dict(f, nested["sliding_attention"], f"{f.prefix}rope_parameters.sliding_attention",
                                    None)
    if l_scaling is not None:
        raise f.error("rope scaling of the sliding_attention layers is not supported")
    return g_theta, g_scaling, l_theta


def _layer_types(f: _Fields, n_layers: int):
    """``layer_types`` as a list of LAYER_TYPES entries, or None when absent."""
    value = f.get("layer_types", (list,), "a list", None)
    if value is None:
        return None
    if len(value) != n_layers or any(not isinstance(t, str) or t not in LAYER_TYPES for t in value):
        raise f.error(f"field '{f.prefix}layer_types' must list num_hidden_layers={n_layers} entries of "
                      f"{list(LAYER_TYPES)}, got {value!r}")
    return value


def hf_config_to_model_config(hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
    """Translate a transformers ``config.json`` dict (Llama, Qwen2, Qwen3, Gemma 3 text or image-text) into a
    ModelConfig (field mapping in the module docstring).

    Raises ValueError naming ``source`` and the field for a config that is not a JSON object, an unsupported
    architecture, an unknown field, an unsupported option (rope type, MLP biases, dropout, ...), and a missing or
    mistyped field (integers must be JSON integers, numbers finite, flags booleans).
    """
    if not isinstance(hf, dict):
        raise ValueError(f"{source}: expected a JSON object, got {type(hf).__name__}")
    if hf.get("model_type") == "gemma3":  # image-text wrapper: the text model is text_config
        outer = _Fields(hf, source)
        text = outer.obj("text_config")
        tie = outer.flag("tie_word_embeddings", None)
        outer.finish(_IMAGE_FIELDS)
        if tie is not None and text.get("tie_word_embeddings", True) != tie:
            raise outer.error("fields 'tie_word_embeddings' and 'text_config.tie_word_embeddings' disagree")
        text = dict(text)
        text.setdefault("model_type", "gemma3_text")
        return _text_config(text, source, "text_config.")
    return _text_config(hf, source, "")


def _text_config(hf: dict, source: str, prefix: str) -> ModelConfig:
    f = _Fields(hf, source, prefix)
    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    if not isinstance(model_type, str) or model_type not in _MODEL_TYPES:
        raise f.error(f"unsupported architecture model_type={model_type!r} architectures={archs!r} "
                      f"(supported: {', '.join(_MODEL_TYPES)}, gemma3)")
    arch = _MODEL_TYPES[model_type]
    gemma = arch == "gemma3"
    required = _MISSING

    def shape_default(key):
        return _GEMMA3_DEFAULTS[key] if gemma else required

    dim = f.integer("hidden_size", shape_default("hidden_size"))
    n_heads = f.integer("num_attention_heads", shape_default("num_attention_heads"))
    if n_heads < 1:
        raise f.error(f"field '{prefix}num_attention_heads' must be positive, got {n_heads}")
    n_layers = f.integer("num_hidden_layers", shape_default("num_hidden_layers"))
    head_dim = f.integer("head_dim", {"qwen3": 128, "gemma3": 256}.get(arch))
    fields: dict[str, Any] = dict(
        vocab_size=f.integer("vocab_size", shape_default("vocab_size")),
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=f.integer("num_key_value_heads", _GEMMA3_DEFAULTS["num_key_value_heads"] if gemma else n_heads),
        hidden_dim=f.integer("intermediate_size", shape_default("intermediate_size")),
        norm_eps=f.number("rms_norm_eps", 1e-6),
        max_seq_len=f.integer("max_position_embeddings",
                              {"gemma3": 131_072, "qwen2": 32_768, "qwen3": 32_768}.get(arch, 2048)),
        tie_embeddings=f.flag("tie_word_embeddings", gemma),
        architecture=arch,
        head_dim_override=head_dim,
    )
    if f.number("attention_dropout", 0.0) != 0.0:
        raise f.error(f"attention dropout ({prefix}attention_dropout={hf['attention_dropout']}) is not implemented")
    bias = f.flag("attention_bias", False)
    if arch == "qwen2":
        fields["attention_bias"] = True  # transformers' Qwen2 always has q/k/v biases, whatever the field says
    elif arch == "llama":
        fields["attention_bias"] = bias
        if f.flag("mlp_bias", False):
            raise f.error(f"{prefix}mlp_bias=True is not supported")
    elif bias:
        raise f.error(f"{prefix}attention_bias=True is not supported for {model_type} (it adds an o_proj bias)")

    if gemma:
        activation = f.text("hidden_activation", "gelu_pytorch_tanh")
        if activation != "gelu_pytorch_tanh":
            raise f.error(f"field '{prefix}hidden_activation'={activation!r} is not supported (gelu_pytorch_tanh)")
        f.read.add("hidden_act")  # not read by transformers' Gemma 3 (it uses hidden_activation)
        theta, scaling, local_theta = _gemma3_rope(f)
        if f.flag("use_bidirectional_attention", False):
            raise f.error(f"{prefix}use_bidirectional_attention=True is not supported (the decoder is causal)")
        if f.number("attn_logit_softcapping", None) is not None:
            raise f.error(f"field '{prefix}attn_logit_softcapping' is set, but transformers' Gemma 3 does not apply "
                          "it; refusing to guess whether the checkpoint expects it")
        window = f.integer("sliding_window", _GEMMA3_DEFAULTS["sliding_window"])
        pattern = f.integer("sliding_window_pattern", None)
        private = f.integer("_sliding_window_pattern", None)
        if pattern is not None and private is not None and pattern != private:
            raise f.error("fields 'sliding_window_pattern' and '_sliding_window_pattern' disagree")
        pattern = pattern if pattern is not None else private
        types = _layer_types(f, n_layers)
        if pattern is not None and pattern < 1:
            raise f.error(f"field '{prefix}sliding_window_pattern' must be positive, got {pattern}")
        implied = ["sliding_attention" if (i + 1) % (pattern or 6) else "full_attention" for i in range(n_layers)]
        if types is None:
            types = implied
        elif pattern is not None and types != implied:
            raise f.error(f"fields '{prefix}layer_types' and '{prefix}sliding_window_pattern'={pattern} disagree")
        fields.update(
            qk_norm=True, norm_unit_offset=True, post_norms=True, mlp_activation="gelu_tanh", embed_scale=True,
            query_pre_attn_scalar=f.number("query_pre_attn_scalar", float(_GEMMA3_DEFAULTS["query_pre_attn_scalar"])),
            final_logit_softcap=f.number("final_logit_softcapping", None),
            rope_theta=theta, rope_scaling=scaling, rope_local_theta=local_theta,
            layer_types=tuple(types) if "sliding_attention" in types else None,
            sliding_window=window if "sliding_attention" in types else None,
        )
    else:
        activation = f.text("hidden_act", "silu")
        if activation != "silu":
            raise f.error(f"field '{prefix}hidden_act'={activation!r} is not supported (silu)")
        fields["rope_theta"], fields["rope_scaling"] = _rope(f, 10000.0)
        if arch in ("qwen2", "qwen3"):
            fields["qk_norm"] = arch == "qwen3"
            # transformers: sliding_window only counts with use_sliding_window; layers >= max_window_layers slide
            use_window = f.flag("use_sliding_window", False)
            window = f.integer("sliding_window", None)
            max_window_layers = f.integer("max_window_layers", 28)
            window = window if use_window else None
            types = _layer_types(f, n_layers)
            if types is None and window is not None:
                types = ["sliding_attention" if i >= max_window_layers else "full_attention" for i in range(n_layers)]
            if window is not None and types is not None and "sliding_attention" in types:
                fields.update(layer_types=tuple(types), sliding_window=window)
    f.finish()
    try:
        return ModelConfig(**fields)
    except ValueError as err:
        if str(err).startswith(source):
            raise
        raise ValueError(f"{source}: fields describe an invalid model ({err})") from err


def model_config_to_hf_config(config: ModelConfig) -> dict[str, Any]:
    """The ``config.json`` dict transformers (4.x and 5.x) would read for this model."""
    if config.architecture == "qwen2" and not config.attention_bias:
        raise ValueError("a qwen2 checkpoint always has attention biases; set attention_bias=True")
    family = {
        "llama": dict(qk_norm=False, norm_unit_offset=False, post_norms=False, mlp_activation="silu",
                      embed_scale=False, query_pre_attn_scalar=None, final_logit_softcap=None, rope_local_theta=None,
                      layer_types=None),
        "qwen2": dict(qk_norm=False, norm_unit_offset=False, post_norms=False, mlp_activation="silu",
                      embed_scale=False, query_pre_attn_scalar=None, final_logit_softcap=None, rope_local_theta=None),
        "qwen3": dict(qk_norm=True, norm_unit_offset=False, post_norms=False, mlp_activation="silu",
                      embed_scale=False, query_pre_attn_scalar=None, final_logit_softcap=None, rope_local_theta=None,
                      attention_bias=False),
        "gemma3": dict(qk_norm=True, norm_unit_offset=True, post_norms=True, mlp_activation="gelu_tanh",
                       embed_scale=True, attention_bias=False),
    }[config.architecture]
    wrong = {k: getattr(config, k) for k, v in family.items() if getattr(config, k) != v}
    if config.attn_logit_softcap is not None:
        wrong["attn_logit_softcap"] = config.attn_logit_softcap
    if config.architecture == "gemma3" and config.query_pre_attn_scalar is None:
        wrong["query_pre_attn_scalar"] = None
    if wrong:
        raise ValueError(f"a {config.architecture} checkpoint cannot express {wrong}")
    hf: dict[str, Any] = {
        "architectures": [_ARCHITECTURES[config.architecture]],
        "model_type": _HF_MODEL_TYPE[config.architecture],
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
        "torch_dtype": "float32",
    }
    if config.rope_scaling is not None:
        s = config.rope_scaling
        hf["rope_scaling"] = {"rope_type": s.rope_type, "factor": float(s.factor)}
        if s.rope_type == "llama3":
            hf["rope_scaling"].update(low_freq_factor=float(s.low_freq_factor), high_freq_factor=float(s.high_freq_factor),
                                      original_max_position_embeddings=s.original_max_position_embeddings)
    if config.architecture == "gemma3":
        qpas = config.query_pre_attn_scalar  # transformers 5 validates it as an int
        hf.update(hidden_activation="gelu_pytorch_tanh", query_pre_attn_scalar=int(qpas) if qpas == int(qpas) else qpas,
                  final_logit_softcapping=config.final_logit_softcap, attn_logit_softcapping=None,
                  rope_local_base_freq=float(config.rope_local_theta if config.rope_local_theta is not None
                                             else config.rope_theta),
                  attention_bias=False)
    else:
        hf["hidden_act"] = "silu"
    if config.architecture == "llama":
        hf["attention_bias"] = config.attention_bias
        hf["mlp_bias"] = False
    if config.architecture == "qwen3":
        hf["attention_bias"] = False
    if config.layer_types is not None:
        hf.update(layer_types=list(config.layer_types), sliding_window=config.sliding_window)
        if config.architecture in ("qwen2", "qwen3"):
            first = config.layer_types.index("sliding_attention")
            hf.update(use_sliding_window=True, max_window_layers=first)
            if any(t != "sliding_attention" for t in config.layer_types[first:]):
                raise ValueError(f"a {config.architecture} checkpoint can only slide on the layers from "
                                 f"max_window_layers on, not {config.layer_types}")
    elif config.architecture == "gemma3":  # no sliding layer: say so explicitly
        hf.update(layer_types=["full_attention"] * config.n_layers, sliding_window=None)
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
    if config_path.exists() and not config_path.is_file():  # a FIFO would block the read
        raise ValueError(f"{config_path}: not a regular file")
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
    for file in files:
        if not file.is_file():  # a FIFO would block the reader's open, a directory is no shard
            raise ValueError(f"{file}: not a regular file")

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
    prefix, head_name = "model.", "lm_head.weight"
    skipped: set[str] = set()
    if hf.get("model_type") == "gemma3":  # image-text checkpoint: read the language model, skip the image tower
        prefix = "model.language_model." if "model.language_model.embed_tokens.weight" in tensors else \
            "language_model.model."
        if prefix == "language_model.model." and "language_model.lm_head.weight" in tensors:
            head_name = "language_model.lm_head.weight"
        skipped = {n for n in tensors if _IMAGE_TENSOR.fullmatch(n)}

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
    names = _layer_names(config)
    layers: dict[str, list] = {k: [] for k in shapes["layers"]}
    for i in range(config.n_layers):
        for key in layers:
            shape = shapes["layers"][key][1:]
            layers[key].append(get(f"{prefix}layers.{i}.{names[key]}", shape, transpose=len(shape) == 2))
    params: dict[str, Any] = {
        "embed": get(f"{prefix}embed_tokens.weight", shapes["embed"], transpose=False),
        "layers": {k: np.stack(v) for k, v in layers.items()},
        "final_norm": get(f"{prefix}norm.weight", shapes["final_norm"], transpose=False),
    }
    if not config.tie_embeddings:
        params["lm_head"] = get(head_name, shapes["lm_head"], transpose=True)
    elif head_name in tensors:  # some exporters save the tied head too: accepted only as an exact copy
        head = get(head_name, shapes["embed"], transpose=False)
        if not np.array_equal(head, params["embed"]):
            raise ValueError(
                f"{tensors[head_name][0]}: tensor {head_name!r} differs from {prefix}embed_tokens.weight, "
                f"but {config_path.name} says tie_word_embeddings=true (the head would be ignored)"
            )
    unknown = sorted(n for n in set(tensors) - used - skipped if not _IGNORED_TENSOR.fullmatch(n))
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
    hf_config = model_config_to_hf_config(config)  # raises before anything is written
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {
        "model.embed_tokens.weight": np.asarray(params["embed"], np.float32),
        "model.norm.weight": np.asarray(params["final_norm"], np.float32),
    }
    names = _layer_names(config)
    for key, stacked in params["layers"].items():
        for i in range(config.n_layers):
            w = np.asarray(stacked[i], np.float32)
            out[f"model.layers.{i}.{names[key]}"] = w.T if w.ndim == 2 else w
    if not config.tie_embeddings:
        out["lm_head.weight"] = np.asarray(params["lm_head"], np.float32).T
    out = {k: np.ascontiguousarray(v) for k, v in out.items()}

    tmp = folder / "model.safetensors.tmp"
    save_file(out, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, folder / "model.safetensors")
    tmp = folder / "config.json.tmp"
    tmp.write_text(json.dumps(hf_config, indent=2) + "\n")
    os.replace(tmp, folder / "config.json")
    return folder
