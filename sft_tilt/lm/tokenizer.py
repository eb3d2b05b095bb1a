"""Tokenizer of the real-LM layer: byte-level BPE from a GGUF file's metadata or a ``tokenizer.json``.

Encoding a text is three steps, all run by the ``tokenizers`` library:

1. **Added tokens.** Only with ``encode(text, parse_special=True)``: the vocabulary's added tokens (control
   tokens such as ``<|im_start|>``, ``<|im_end|>``, and any other added token) are matched whole in the text
   first and the text between them is tokenized independently. By default (``parse_special=False``, what every
   data text gets) no added token is matched, whatever the file's ``special`` flags or token types say: an added
   token's spelling in the text goes through steps 2 and 3 as ordinary text, so data can never produce a control
   token; chat encodings (``encode_chat``, ``encode_chat_example``) take the ChatML markers' ids from the template
   itself. This differs from both libraries' defaults: Hugging Face (``tokenizer(text)``, with
   ``split_special_tokens=False``) matches every added token in text, special or not, and llama.cpp without
   ``parse_special`` still matches user-defined tokens (token type 4); a file may flag a marker ``special: false``
   (Qwen2.5's ``tokenizer.json`` flags ``<|fim_prefix|>`` and ``<tool_call>`` so), which would let data write it.
2. **Pre-tokenization.** Each piece of text is split by regular expressions, exactly as llama.cpp's
   ``llama-vocab.cpp`` splits it for the file's ``tokenizer.ggml.pre`` name. For SmolLM2 (``"smollm"``,
   shared with starcoder, refact, command-r, codeshell, exaone, minerva-7b) that is two regexes applied in turn:

       r"\\p{N}"                                               (every digit becomes its own piece)
       r"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"   (GPT-2's split)

   and each piece is mapped to GPT-2's printable byte alphabet (byte ``b`` -> ``bytes_to_unicode()[b]``,
   e.g. space -> ``Ġ``, newline -> ``Ċ``). The original SmolLM2 ``tokenizer.json`` says the same thing as
   ``Sequence([Digits(individual_digits=True), ByteLevel(use_regex=True)])``.
3. **BPE.** Within each piece, the adjacent pair whose merge has the lowest rank in ``tokenizer.ggml.merges``
   is merged, repeatedly, until no listed merge applies; the resulting symbols are looked up in
   ``tokenizer.ggml.tokens`` (token id = position in that list).

Decoding concatenates the tokens' byte strings and decodes UTF-8, so ``decode(encode(s)) == s`` for every
string whose UTF-8 bytes all have a token (in either ``parse_special`` mode). SmolLM2 lacks 21 byte tokens
(``Tokenizer.missing_bytes``: six control characters such as U+0006, and lead bytes of unassigned or invalid
code points); those bytes are dropped, as llama.cpp and transformers drop them too.

Known divergence (see ``tests/lm/test_lm_tokenizer.py``): ``transformers`` 5.23's GGUF tokenizer conversion
has no entry for the ``"smollm"`` pre-tokenizer and falls back to GPT-2's split *without* the digit step.
SmolLM2's vocabulary has no multi-digit tokens, so for ASCII text the two agree except where a run of two
or more whitespace characters precedes a digit (``"\\n\\n1."``, ``"x  42"``): llama.cpp (and the model's own
``tokenizer.json``) keep the run whole (``ĊĊ``), transformers' GGUF path splits it (``Ċ``, ``Ċ``). Non-ASCII
numerics differ too (``" ²"``: llama.cpp ``Ġ``, ``Â²``; transformers ``ĠÂ``, ``²``). This module follows
llama.cpp.

Chat formatting is ChatML, what SmolLM2 and Qwen2 instruction models use::

    <|im_start|>{role}\\n{content}<|im_end|>\\n      (per message)
    <|im_start|>assistant\\n                          (generation prompt, optional)

with the template's default system message (SmolLM2: "You are a helpful AI assistant named SmolLM, trained
by Hugging Face") inserted first when the conversation does not start with one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers, processors

from sft_tilt.lm.gguf_header import check_gguf_header

__all__ = ["Tokenizer", "ChatTemplate", "SUPPORTED_PRE_TOKENIZERS"]

# llama.cpp's token types (``llama_token_type`` / gguf.TokenType).
_TOKEN_TYPE_CONTROL = 3
_TOKEN_TYPE_USER_DEFINED = 4

#: ``tokenizer.ggml.pre`` names this module reproduces, grouped as in llama.cpp's ``llama-vocab.cpp``:
#: name -> regexes applied in order before GPT-2's split. That last split is ``ByteLevel(use_regex=True)``,
#: whose pattern is llama.cpp's GPT-2 regex followed by ``|\s+``, which only names the single whitespace
#: character llama.cpp leaves unmatched (and keeps as its own piece) before a non-space.
#: (llama.cpp's "default", used when the key is absent, is a different four-regex split: not supported.)
SUPPORTED_PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    **{
        name: (r"\p{N}",)
        for name in ("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b")
    },
    **{name: () for name in ("gpt-2", "phi-2", "mpt", "olmo", "jais")},
}

_CHATML_OPEN = "<|im_start|>"
_CHATML_CLOSE = "<|im_end|>"


# ----------------------------------------------------------------------------------------------------------
# Chat template
# ----------------------------------------------------------------------------------------------------------

# A literal default system block inside a Jinja string: '<|im_start|>system\n...<|im_end|>\n'
_DEFAULT_SYSTEM_RE = re.compile(r"'<\|im_start\|>system(?:\n|\\n)([^'{}]*?)<\|im_end\|>(?:\n|\\n)'")


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    """ChatML chat formatting.

    ``render(messages)`` is ``[default system block] + concat(<|im_start|>{role}\\n{content}<|im_end|>\\n)``
    ``[+ <|im_start|>assistant\\n]``; the default system block ``<|im_start|>system\\n{default_system}<|im_end|>\\n``
    is written only when ``default_system`` is set and the first message's role is not ``"system"``.

    Attributes:
      default_system: system message inserted when the conversation has none (None: insert nothing).
    """

    default_system: str | None = None

    def __post_init__(self):
        if self.default_system is not None and not isinstance(self.default_system, str):
            raise ValueError(f"default_system must be a str or None, got {type(self.default_system).__name__}")

    @classmethod
    def from_jinja(cls, source: str | None) -> "ChatTemplate":
        """Recognise a ChatML Jinja template (the ones SmolLM2 and Qwen2 ship) and read its default system text.

        No Jinja engine is used: the template must be ChatML (contain ``<|im_start|>``, ``<|im_end|>`` and
        write ``message['role']`` and ``message['content']``); anything else raises ValueError, and so does a
        template that rewrites reasoning blocks (``<think>``, Qwen3), which plain ChatML would not reproduce.
        Branches for tool calls (Qwen2.5) are not rendered: messages are plain role/content pairs.
        ``source=None`` (no template in the file) gives plain ChatML without a default system message.
        """
        if source is None:
            return cls(default_system=None)
        if not isinstance(source, str):
            raise ValueError(f"chat template must be a str, got {type(source).__name__}")
        writes_role = "message['role']" in source or 'message["role"]' in source or "message.role" in source
        writes_content = (
            "message['content']" in source or 'message["content"]' in source or "message.content" in source
        )
        if not (_CHATML_OPEN in source and _CHATML_CLOSE in source and writes_role and writes_content):
            raise ValueError(
                "chat template is not ChatML (<|im_start|>role\\ncontent<|im_end|>); only ChatML is implemented. "
                f"Template starts: {source[:120]!r}"
            )
        if "<think>" in source:
            raise ValueError("chat template rewrites <think> reasoning blocks; only plain ChatML is implemented")
        match = _DEFAULT_SYSTEM_RE.search(source)
        default_system = match.group(1).replace("\\n", "\n") if match else None
        return cls(default_system=default_system)

    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
        """The ChatML text of ``messages`` (list of ``{"role": str, "content": str}``), see the class docstring."""
        return "".join(text for _, text in self.segments(messages, add_generation_prompt))

    def segments(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False
    ) -> list[tuple[bool, str]]:
        """``render``'s text cut into ``(is_marker, text)`` pieces: ``(True, "<|im_start|>")`` and
        ``(True, "<|im_end|>")`` are the template's own control tokens, ``(False, text)`` everything else
        (roles, contents, newlines). Two text pieces are never adjacent."""
        _validate_messages(messages)
        pieces: list[tuple[bool, str]] = []

        def message(role, content):
            pieces.extend([(True, _CHATML_OPEN), (False, f"{role}\n{content}"), (True, _CHATML_CLOSE), (False, "\n")])

        if self.default_system is not None and messages[0]["role"] != "system":
            message("system", self.default_system)
        for m in messages:
            message(m["role"], m["content"])
        if add_generation_prompt:
            pieces.extend([(True, _CHATML_OPEN), (False, "assistant\n")])
        return pieces


def _validate_messages(messages) -> None:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence) or len(messages) == 0:
        raise ValueError("messages must be a non-empty list of {'role': str, 'content': str} dicts")
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise ValueError(f"messages[{i}] must be a dict with keys 'role' and 'content', got {message!r}")
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or not role or "\n" in role or _CHATML_OPEN in role or _CHATML_CLOSE in role:
            raise ValueError(f"messages[{i}]['role'] must be a non-empty one-line str, got {role!r}")
        if not isinstance(content, str):
            raise ValueError(f"messages[{i}]['content'] must be a str, got {type(content).__name__}")


# ----------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tokenizer:
    """A byte-level BPE tokenizer with its special-token ids and chat template.

    Build it with ``Tokenizer.from_gguf(path)`` or ``Tokenizer.from_hf(folder)``.

    Attributes:
      backend: the ``tokenizers.Tokenizer`` doing the work.
      bos_id, eos_id, pad_id, unk_id: special token ids (None where the model has none).
      chat_template: ChatML formatting (``ChatTemplate``).
      source: the file or folder it was read from (for messages).
    """

    backend: tokenizers.Tokenizer
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None
    chat_template: ChatTemplate
    source: str = ""
    _missing_bytes: frozenset[int] = dataclasses.field(init=False, repr=False, compare=False)
    _plain_backend: tokenizers.Tokenizer = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.backend, tokenizers.Tokenizer):
            raise ValueError(f"backend must be a tokenizers.Tokenizer, got {type(self.backend).__name__}")
        n = self.vocab_size
        for name in ("bos_id", "eos_id", "pad_id", "unk_id"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int) and 0 <= value < n):
                raise ValueError(f"{name} must be None or an int in [0, {n}), got {value!r}")
        if not isinstance(self.chat_template, ChatTemplate):
            raise ValueError(f"chat_template must be a ChatTemplate, got {type(self.chat_template).__name__}")
        missing = frozenset()
        if isinstance(self.backend.decoder, decoders.ByteLevel):
            vocab = self.backend.get_vocab(with_added_tokens=False)
            missing = frozenset(b for ch, b in _byte_level_decoder().items() if ch not in vocab)
        object.__setattr__(self, "_missing_bytes", missing)
        object.__setattr__(self, "_plain_backend", _without_added_tokens(self.backend))

    # -- construction ------------------------------------------------------------------------------------

    @classmethod
    def from_gguf(cls, path: str | os.PathLike | None = None) -> "Tokenizer":
        """Tokenizer described by a GGUF file's ``tokenizer.*`` metadata (default: ``gguf_io.default_model_path()``,
        SmolLM2-135M-Instruct).

        Reads ``tokenizer.ggml.{model, pre, tokens, merges, token_type, bos/eos/unknown/padding_token_id,
        add_bos_token, add_eos_token}`` and ``tokenizer.chat_template``. Only ``model == "gpt2"`` (byte-level
        BPE) with a pre-tokenizer in ``SUPPORTED_PRE_TOKENIZERS`` is implemented; others raise ValueError.
        Control tokens (type 3) become special tokens, user-defined ones (type 4) plain added tokens; both
        are matched whole in text with ``parse_special=True`` only (module docstring, step 1).

        Raises:
          FileNotFoundError: the file does not exist.
          ValueError: not a readable GGUF file, or metadata missing/inconsistent/unsupported (names the file).
        """
        if path is None:
            from sft_tilt.lm.gguf_io import default_model_path

            path = default_model_path()
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"{path}: is a directory, not a GGUF file")
        if path.exists() and not path.is_file():  # a FIFO, socket or device
            raise ValueError(f"{path}: not a regular file")
        if not path.is_file():
            raise FileNotFoundError(f"GGUF tokenizer: no such file: {path}")
        meta = _read_gguf_tokenizer_metadata(path)

        def need(key):
            if key not in meta:
                raise ValueError(f"{path}: GGUF metadata has no {key!r}; cannot build the tokenizer")
            return meta[key]

        def typed(key, value, kind, what, many=False):
            """``value`` if it is a ``kind`` (``many``: a list of ``kind``; a bool is no int), else ValueError."""
            items = value if many else [value]
            if (many and not isinstance(value, list)) or not all(
                isinstance(v, kind) and (kind is bool or not isinstance(v, bool)) for v in items
            ):
                raise ValueError(f"{path}: GGUF metadata {key!r} must be {what}, got {_short(value)}")
            return value

        model_type = need("tokenizer.ggml.model")
        if not isinstance(model_type, str) or model_type != "gpt2":
            raise ValueError(
                f"{path}: tokenizer.ggml.model = {model_type!r} is not supported (only 'gpt2', byte-level BPE); "
                "load the model's tokenizer.json with Tokenizer.from_hf instead"
            )
        pre = meta.get("tokenizer.ggml.pre", "default")  # llama.cpp's name when the key is missing
        if not isinstance(pre, str) or pre not in SUPPORTED_PRE_TOKENIZERS:
            raise ValueError(
                f"{path}: tokenizer.ggml.pre = {pre!r} is not supported (supported: "
                f"{sorted(SUPPORTED_PRE_TOKENIZERS)}); load the model's tokenizer.json with Tokenizer.from_hf"
            )
        tokens = typed("tokenizer.ggml.tokens", need("tokenizer.ggml.tokens"), str, "a list of strings", many=True)
        merges = typed("tokenizer.ggml.merges", need("tokenizer.ggml.merges"), str, "a list of strings", many=True)
        token_types = typed(
            "tokenizer.ggml.token_type", meta.get("tokenizer.ggml.token_type", [1] * len(tokens)), int, "a list of ints", many=True
        )
        if len(token_types) != len(tokens):
            raise ValueError(
                f"{path}: tokenizer.ggml.token_type has {len(token_types)} entries for {len(tokens)} tokens"
            )
        vocab = {token: i for i, token in enumerate(tokens)}
        if len(vocab) != len(tokens):
            raise ValueError(f"{path}: tokenizer.ggml.tokens contains duplicate tokens")
        merge_pairs = []
        for rank, merge in enumerate(merges):
            pair = merge.split(" ")
            if len(pair) != 2 or pair[0] + pair[1] not in vocab:
                raise ValueError(f"{path}: tokenizer.ggml.merges[{rank}] = {merge!r} is not 'left right' of a token")
            merge_pairs.append((pair[0], pair[1]))

        bpe = models.BPE(vocab=vocab, merges=merge_pairs, fuse_unk=False, byte_fallback=False, ignore_merges=False)
        backend = tokenizers.Tokenizer(bpe)
        backend.pre_tokenizer = pre_tokenizers.Sequence(
            [pre_tokenizers.Split(Regex(regex), behavior="isolated") for regex in SUPPORTED_PRE_TOKENIZERS[pre]]
            + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True)]
        )
        backend.decoder = decoders.ByteLevel()
        kinds = list(zip(tokens, token_types))
        backend.add_special_tokens(
            [AddedToken(t, special=True, normalized=False) for t, k in kinds if k == _TOKEN_TYPE_CONTROL]
        )
        backend.add_tokens(
            [AddedToken(t, special=False, normalized=False) for t, k in kinds if k == _TOKEN_TYPE_USER_DEFINED]
        )
        if backend.get_vocab_size(with_added_tokens=True) != len(tokens):
            raise ValueError(f"{path}: added tokens changed the vocabulary size; the token list is inconsistent")

        ids = {}
        for name, key in (("bos_id", "bos"), ("eos_id", "eos"), ("unk_id", "unknown"), ("pad_id", "padding")):
            value = meta.get(f"tokenizer.ggml.{key}_token_id")
            if value is not None:
                typed(f"tokenizer.ggml.{key}_token_id", value, int, "an int")
            if value is not None and not 0 <= value < len(tokens):
                raise ValueError(
                    f"{path}: tokenizer.ggml.{key}_token_id = {value} is outside the vocabulary [0, {len(tokens)})"
                )
            ids[name] = None if value is None else int(value)
        add_bos = typed("tokenizer.ggml.add_bos_token", meta.get("tokenizer.ggml.add_bos_token", False), bool, "a bool")
        add_eos = typed("tokenizer.ggml.add_eos_token", meta.get("tokenizer.ggml.add_eos_token", False), bool, "a bool")
        _set_bos_eos_post_processor(
            backend, tokens, ids["bos_id"] if add_bos else None, ids["eos_id"] if add_eos else None, path
        )
        try:
            chat_template = ChatTemplate.from_jinja(meta.get("tokenizer.chat_template"))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        return cls(backend=backend, chat_template=chat_template, source=str(path), **ids)

    @classmethod
    def from_hf(cls, folder: str | os.PathLike) -> "Tokenizer":
        """Tokenizer of a Hugging Face model folder: ``tokenizer.json`` plus, if present, ``tokenizer_config.json``
        (special tokens ``bos_token``/``eos_token``/``pad_token``/``unk_token``, ``chat_template``) and
        ``chat_template.jinja``. The ``tokenizer.json`` is used as written (its own pre-tokenizer and
        post-processor).

        Raises:
          FileNotFoundError: the folder or its tokenizer.json is missing.
          ValueError: a file is not valid JSON / not a tokenizer, or the chat template is not ChatML.
        """
        folder = Path(folder)
        tok_file = folder / "tokenizer.json"
        for file in (tok_file, folder / "tokenizer_config.json", folder / "chat_template.jinja"):
            if file.exists() and not file.is_file():  # a FIFO would block the read; a directory is no file
                raise ValueError(f"{file}: not a regular file")
        if not tok_file.is_file():
            raise FileNotFoundError(f"HF tokenizer: no tokenizer.json in {folder}")
        backend = _read_tokenizer_json(tok_file)
        config = {}
        cfg_file = folder / "tokenizer_config.json"
        if cfg_file.is_file():
            try:
                config = json.loads(cfg_file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
                raise ValueError(f"{cfg_file}: not valid JSON ({type(err).__name__}: {err})") from None
            if not isinstance(config, dict):
                raise ValueError(f"{cfg_file}: expected a JSON object")
        template = config.get("chat_template")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = [entry.get("template") for entry in template
                     if isinstance(entry, dict) and entry.get("name") == "default"]
            template = named[0] if named else None
        jinja_file = folder / "chat_template.jinja"
        if template is None and jinja_file.is_file():
            try:
                template = jinja_file.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise ValueError(f"{jinja_file}: not UTF-8 text ({err})") from None

        def special_id(key):
            token = config.get(key)
            if isinstance(token, dict):  # an AddedToken written out: {"content": ..., ...}
                token = token.get("content")
            if token is None:
                return None
            if not isinstance(token, str):
                raise ValueError(f"{cfg_file}: {key} must be a token string or {{'content': str}}, got "
                                 f"{_short(config.get(key))}")
            token_id = backend.token_to_id(token)
            if token_id is None:
                raise ValueError(f"{cfg_file}: {key} = {token!r} is not in the vocabulary of {tok_file}")
            return token_id

        try:
            chat_template = ChatTemplate.from_jinja(template)
        except ValueError as err:
            raise ValueError(f"{folder}: {err}") from err
        return cls(
            backend=backend,
            bos_id=special_id("bos_token"),
            eos_id=special_id("eos_token"),
            pad_id=special_id("pad_token"),
            unk_id=special_id("unk_token"),
            chat_template=chat_template,
            source=str(folder),
        )

    # -- vocabulary --------------------------------------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """Number of token ids V (ids are 0..V-1), special tokens included."""
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_text(self, token_id: int) -> str:
        """The token as spelled in the vocabulary (byte-level alphabet: ``"Ġthe"`` for the text ``" the"``)."""
        (token_id,) = self._check_ids([token_id], "token_id")
        return self.backend.id_to_token(token_id)

    def token_bytes(self, token_id: int) -> bytes:
        """The raw bytes token ``token_id`` stands for (``b" the"`` for ``"Ġthe"``; specials: their UTF-8 text)."""
        text = self.token_text(token_id)
        if self.backend.get_added_tokens_decoder().get(token_id) is not None:
            return text.encode("utf-8")
        decode_byte = _byte_level_decoder()
        if any(ch not in decode_byte for ch in text):
            return text.encode("utf-8")
        return bytes(decode_byte[ch] for ch in text)

    @property
    def missing_bytes(self) -> frozenset[int]:
        """Bytes with no token of their own in a byte-level vocabulary (empty for other vocabularies).

        BPE starts from one symbol per byte; a byte whose symbol is not in the vocabulary is dropped from
        the ids, as llama.cpp and transformers also do. SmolLM2 lacks 21: the control characters
        U+0004, U+0006, U+0013, U+0014, U+0016, U+001D and the UTF-8 lead bytes 0xC0, 0xC1, 0xF1, 0xF2,
        0xF5..0xFF (code points U+40000..U+BFFFF, all unassigned). ``decode(encode(s)) == s`` exactly when
        ``s.encode("utf-8")`` contains none of them.
        """
        return self._missing_bytes

    # -- encode / decode ---------------------------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = False, *, parse_special: bool = False) -> list[int]:
        """Token ids of ``text``.

        ``parse_special=False`` (the default, for all data text): an added token's spelling in the text
        (``"<|im_end|>"``, ``"<|fim_prefix|>"``), whether the file flags it special or not, is ordinary text and
        encodes to ordinary tokens, exactly as if the vocabulary had no added tokens; ``decode`` gives the text
        back. ``parse_special=True``: added tokens written in the text are recognised and become their ids
        (llama.cpp's ``parse_special``; for trusted text such as an already rendered template). Chat data should go through ``encode_chat`` or
        ``encode_chat_example``, which add the template's special ids themselves.

        ``add_special_tokens=True`` adds what the model's post-processor adds (for a GGUF file: BOS/EOS when
        ``tokenizer.ggml.add_bos_token``/``add_eos_token`` are set; SmolLM2 sets neither).

        Raises:
          ValueError: ``text`` is not a str or contains a lone surrogate (names ``text`` and the position).
        """
        _check_text(text, "text")
        backend = self.backend if parse_special else self._plain_backend
        return list(backend.encode(text, add_special_tokens=add_special_tokens).ids)

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of token ids: the concatenated token bytes, UTF-8 decoded (invalid bytes -> U+FFFD).

        Raises ValueError naming ``ids`` unless every id is an integer (Python or NumPy; not a bool or float)
        in ``[0, vocab_size)``.
        """
        return self.backend.decode(self._check_ids(ids, "ids"), skip_special_tokens=skip_special_tokens)

    def _check_ids(self, ids, name: str) -> list[int]:
        """``ids`` as a list of Python ints, or ValueError naming ``name``: a sequence of integers (Python or
        NumPy; no bools or floats, even integral ones) or a 1-D integer array, each in ``[0, vocab_size)``."""
        if isinstance(ids, (str, bytes)):
            raise ValueError(f"{name}: token ids must be a sequence of ints, got {type(ids).__name__}")
        if hasattr(ids, "__array__") and not isinstance(ids, (list, tuple)):
            arr = np.asarray(ids)
            if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
                raise ValueError(f"{name}: token ids must be a 1-D integer array, got {arr.dtype.name}{list(arr.shape)}")
            out = arr.tolist()
        else:
            try:
                items = list(ids)
            except TypeError as err:
                raise ValueError(f"{name}: token ids must be a sequence of ints, got {type(ids).__name__}") from err
            bad = [x for x in items if isinstance(x, (bool, np.bool_)) or not isinstance(x, (int, np.integer))]
            if bad:
                raise ValueError(f"{name}: token ids must be ints, got {_short(bad[:5])}")
            out = [int(x) for x in items]
        n = self.vocab_size
        bad = [i for i in out if not 0 <= i < n]
        if bad:
            raise ValueError(f"{name}: token ids must be ints in [0, {n}); got {_short(bad[:5])}")
        return out

    def _encode_pieces(self, pieces: Sequence[tuple[bool, str]]) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids and character spans (in the joined text) of ``ChatTemplate.segments`` output: markers become
        their special ids, text pieces are encoded with ``parse_special=False``."""
        ids, spans, pos = [], [], 0
        for is_marker, text in pieces:
            if is_marker:
                token_id = self.backend.token_to_id(text)
                if token_id is None:
                    raise ValueError(
                        f"{self.source or 'tokenizer'}: the chat template's {text} is not a token of this vocabulary"
                    )
                ids.append(token_id)
                spans.append((pos, pos + len(text)))
            else:
                encoding = self._plain_backend.encode(text, add_special_tokens=False)
                ids.extend(encoding.ids)
                spans.extend((pos + lo, pos + hi) for lo, hi in encoding.offsets)
            pos += len(text)
        return ids, spans

    # -- chat ----------------------------------------------------------------------------------------------

    def apply_chat_template(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> str:
        """ChatML text of ``messages`` (see ``ChatTemplate.render``). To get token ids use ``encode_chat``:
        encoding this text with ``parse_special=True`` would let a message's content write control tokens."""
        return self.chat_template.render(messages, add_generation_prompt=add_generation_prompt)

    def encode_chat(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = False) -> list[int]:
        """Token ids of ``apply_chat_template(messages, add_generation_prompt)`` in which only the template's
        ``<|im_start|>``/``<|im_end|>`` are special tokens; roles and contents are encoded with
        ``parse_special=False``. Equal to ``encode(text, parse_special=True)`` when no content or role spells an
        added token (text between special tokens is tokenized independently either way).

        Raises:
          ValueError: malformed ``messages``, or a content/role with a lone surrogate (names ``messages[i]``).
        """
        _validate_messages(messages)
        for i, message in enumerate(messages):
            _check_text(message["role"], f"messages[{i}]['role']")
            _check_text(message["content"], f"messages[{i}]['content']")
        return self._encode_pieces(self.chat_template.segments(messages, add_generation_prompt))[0]

    def encode_chat_example(
        self, prompt: str, response: str, system: str | None = None
    ) -> tuple[list[int], list[float]]:
        """One SFT example: token ids of the chat-formatted conversation and its loss mask.

        The text is ``apply_chat_template([system?, user: prompt, assistant: response])``, i.e. for SmolLM2

            <|im_start|>system\\n{system}<|im_end|>\\n<|im_start|>user\\n{prompt}<|im_end|>\\n
            <|im_start|>assistant\\n{response}<|im_end|>\\n

        and ``token_ids == encode_chat(messages)``: the template's ``<|im_start|>``/``<|im_end|>`` are the only
        special tokens; an added token's spelling inside ``prompt``, ``response`` or ``system`` is ordinary
        text (no BOS is added). Mask semantics: ``loss_mask[i]`` says whether token ``i`` is a *target*,
        predicted from tokens ``< i``; the SFT loss is ``sum_i mask[i] * -log p(x_i | x_<i) / sum_i mask[i]``,
        so a training step uses ``mask[1:]`` against logits at positions ``[:-1]``.
        ``loss_mask[i] = 1.0`` exactly for the tokens whose characters overlap ``response + "<|im_end|>"``
        (the response and its closing token), 0.0 for the system, user and template tokens (including the
        final ``"\\n"``). If the response starts with whitespace, BPE may fuse it with the template's
        ``"\\n"`` into one token; that token counts as a response token.

        Raises:
          ValueError (message starts with ``prompt``, ``response`` or ``system``): a text is not a str, contains a
            lone surrogate, or contains characters whose bytes the vocabulary cannot represent
            (``missing_bytes``), which would silently vanish from the training example.
        """
        _check_text(prompt, "prompt")
        _check_text(response, "response")
        if system is not None:
            _check_text(system, "system", "a str or None")
        missing = self.missing_bytes
        for name, value in (("prompt", prompt), ("response", response), ("system", system)):
            lost = sorted({ch for ch in value or "" if missing.intersection(ch.encode("utf-8"))})
            if lost:
                raise ValueError(f"{name} contains characters this vocabulary cannot represent: {lost!r}")
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": prompt})
        head = self.apply_chat_template(messages, add_generation_prompt=True)
        text = self.apply_chat_template(messages + [{"role": "assistant", "content": response}])
        start, end = len(head), len(head) + len(response) + len(_CHATML_CLOSE)
        if text[:start] != head or text[start:end] != response + _CHATML_CLOSE:
            raise ValueError("chat template does not place the response after the generation prompt")
        pieces = self.chat_template.segments(messages + [{"role": "assistant", "content": response}])
        ids, spans = self._encode_pieces(pieces)
        mask = [1.0 if (lo < end and hi > start) else 0.0 for lo, hi in spans]
        return ids, mask


def _read_tokenizer_json(path: Path) -> tokenizers.Tokenizer:
    """The ``tokenizers`` backend of a ``tokenizer.json``, after checking its added tokens keep their ids.

    ``tokenizers`` does not read an added token's ``id``: it numbers the added tokens itself as it adds them (the
    model vocabulary's id when the model has the token, else the next free id). Where a file's id disagrees, the
    file and the tokenizer would name different embedding rows, so each ``added_tokens[i]`` must read back as
    ``token_to_id(content) == id``.

    Raises ValueError naming ``path``: not UTF-8 JSON, not a tokenizer, or an added token whose id moves.
    """
    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise ValueError(f"{path}: not valid JSON ({type(err).__name__}: {err})") from None
    try:
        backend = tokenizers.Tokenizer.from_str(text)
    except Exception as err:  # the Rust side raises a plain Exception
        raise ValueError(f"{path}: not a readable tokenizer.json ({err})") from err
    added = spec.get("added_tokens") if isinstance(spec, dict) else None
    for i, token in enumerate(added if isinstance(added, list) else []):
        content, token_id = token.get("content"), token.get("id")  # from_str has checked both types
        if backend.token_to_id(content) != token_id:
            read = backend.token_to_id(content)
            raise ValueError(f"{path}: added token {_short(content)} has id {token_id} in the file, but "
                             + (f"reads as id {read}" if read is not None else "is not read as a token")
                             + f" (added_tokens[{i}]; the model vocabulary or an earlier added token holds that "
                             "content or id, or the ids skip one)")
    return backend


def _without_added_tokens(backend: tokenizers.Tokenizer) -> tokenizers.Tokenizer:
    """A copy of ``backend`` that knows no added token, special or not: what data text is encoded with.

    ``tokenizers`` matches every added token whole in the text before the model sees it; its
    ``encode_special_tokens`` switch turns off only those flagged ``special``. A file's flags are not a safe
    guide (Qwen2.5's ``tokenizer.json`` marks ``<|fim_prefix|>`` and ``<tool_call>`` ``special: false``; a file could
    mark ``<|im_end|>`` so), so the copy drops the added-token list altogether: normaliser, pre-tokenizer, model
    and post-processor are the backend's own, and an added token's spelling goes through them as ordinary text.
    """
    spec = json.loads(backend.to_str())
    spec["added_tokens"] = []
    return tokenizers.Tokenizer.from_str(json.dumps(spec))


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_text(value, name: str, expected: str = "a str") -> None:
    """ValueError naming ``name`` unless ``value`` is a str that UTF-8 can encode (no lone surrogates)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be {expected}, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(
            f"{name} contains a lone surrogate U+{ord(value[err.start]):04X} at position {err.start} "
            "(not encodable as UTF-8)"
        ) from None


def _set_bos_eos_post_processor(backend, tokens, bos_id, eos_id, path):
    """Post-processor for ``add_special_tokens=True``: ``[BOS] + ids [+ EOS]`` as the GGUF flags say."""
    if bos_id is None and eos_id is None:
        return
    named = [(tokens[i], i) for i in dict.fromkeys(i for i in (bos_id, eos_id) if i is not None)]
    single = [tokens[bos_id]] if bos_id is not None else []
    single += ["$A"] + ([tokens[eos_id]] if eos_id is not None else [])
    pair = single + [piece if piece != "$A" else "$B:1" for piece in single]
    try:
        backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=named)
    except Exception as err:  # the Rust side raises a plain Exception
        raise ValueError(f"{path}: cannot build the BOS/EOS post-processor ({err})") from err


_BYTE_DECODER: dict[str, int] | None = None


def _byte_level_decoder() -> dict[str, int]:
    """GPT-2's byte alphabet inverted: printable character -> byte (``bytes_to_unicode`` of the GPT-2 code)."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
        chars, n = {}, 0
        for b in range(256):
            if b in printable:
                chars[chr(b)] = b
            else:
                chars[chr(256 + n)] = b
                n += 1
        _BYTE_DECODER = chars
    return _BYTE_DECODER


def _read_gguf_tokenizer_metadata(path: Path) -> dict:
    """The ``tokenizer.*`` key/values of a GGUF file, as Python values (strings, ints, lists).

    Parsing a real file takes seconds, so results are memoised in-process by (resolved path, size, mtime).
    """
    stat = path.stat()
    return _read_gguf_tokenizer_metadata_cached(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_gguf_tokenizer_metadata_cached(path: str, size: int, mtime_ns: int) -> dict:
    del size, mtime_ns  # part of the cache key only
    import gguf  # local import: gguf pulls numpy memmaps and is only needed here

    check_gguf_header(path)  # the reader trusts the header's counts and offsets; refuse a file they do not fit
    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as err:  # bad magic, truncated file, ...: gguf raises ValueError/struct.error/...
        raise ValueError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from err
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("tokenizer."):
            try:
                meta[key] = field.contents()
            except Exception as err:
                raise ValueError(f"{path}: cannot read GGUF metadata {key!r} ({err})") from err
    return meta
