"""Tests of sft_tilt.lm.tokenizer against references that share no code with it.

References:
  * ``tests/fixtures/tokenizer_reference.json`` (written by ``tools/make_tokenizer_reference.py`` in the
    transformers 5.23 environment): for each text, transformers' GGUF tokenizer ids, a pure-Python
    ``regex``-package implementation of llama.cpp's ``"smollm"`` BPE, and transformers with SmolLM2's own
    ``tokenizer.json`` pre-tokenizer; plus ChatML texts rendered by Jinja from the file's template.
  * ``_HandWrittenLlamaCppBpe`` below: llama.cpp's split written out as a character scanner over
    ``unicodedata`` categories (no regex engine at all) with rank-ordered BPE merges, used for
    property tests on random text.

Finding (documented in the module docstring too): transformers 5.23's GGUF conversion has no entry for
``tokenizer.ggml.pre = "smollm"`` (``GGUF_PRE_TOKENIZER_SPLITS`` in
``transformers/integrations/gguf/gguf_tokenizer_mapping.py``) and falls back to GPT-2's byte-level split
without llama.cpp's first ``\\p{N}`` step (``llama-vocab.cpp``, case ``LLAMA_VOCAB_PRE_TYPE_SMOLLM``), which
is also the ``Digits(individual_digits=True)`` step of SmolLM2's ``tokenizer.json``. We follow llama.cpp and
the model's own tokenizer; ``test_transformers_gguf_differs_only_by_its_missing_digit_split`` pins down
that transformers' ids are exactly those of the digit-less split.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import gguf
import pytest
import tokenizers
from hypothesis import given
from hypothesis import strategies as st
from tokenizers import pre_tokenizers

from sft_tilt.lm.gguf_io import default_model_path
from sft_tilt.lm.tokenizer import ChatTemplate, Tokenizer

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tokenizer_reference.json"
REF = json.loads(FIXTURE.read_text(encoding="utf-8"))
TEXTS = [entry["text"] for entry in REF["texts"]]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.from_gguf()


@pytest.fixture(scope="module")
def gguf_vocab():
    """The file's tokenizer.* metadata as gguf.GGUFReader returns it (the module's in-process memo of that read,
    which saves the seconds a second parse of the 98 MB file costs; no tokenizer logic is involved)."""
    from sft_tilt.lm.tokenizer import _read_gguf_tokenizer_metadata

    return _read_gguf_tokenizer_metadata(default_model_path())


# ----------------------------------------------------------------------------------------------------------
# An independent llama.cpp "smollm" tokenizer: character scanner + rank-ordered BPE, no regex engine.
# ----------------------------------------------------------------------------------------------------------

# Unicode White_Space (what \s means in llama.cpp's tables and in Rust/Oniguruma; Python's isspace() also
# accepts U+001C..U+001F, which are not White_Space).
_WHITE_SPACE = set(
    map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000])
)


def _is_l(ch):
    return unicodedata.category(ch).startswith("L")


def _is_n(ch):
    return unicodedata.category(ch).startswith("N")


def _is_other(ch):
    return ch not in _WHITE_SPACE and not _is_l(ch) and not _is_n(ch)


def _gpt2_split(text):
    """Pieces of GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?L+| ?N+| ?[^\\sLN]+|\\s+(?!\\S)  with unmatched gaps kept."""
    pieces, i, n = [], 0, len(text)
    while i < n:
        end = None
        if text[i] == "'":
            for c in ("s", "t", "re", "ve", "m", "ll", "d"):
                if text.startswith(c, i + 1):
                    end = i + 1 + len(c)
                    break
        if end is None:
            j = i + 1 if text[i] == " " else i
            for cls in (_is_l, _is_n, _is_other):
                if j < n and cls(text[j]):
                    k = j
                    while k < n and cls(text[k]):
                        k += 1
                    end = k
                    break
        if end is None and text[i] in _WHITE_SPACE:
            k = i
            while k < n and text[k] in _WHITE_SPACE:
                k += 1
            end = k if k == n else (k - 1 if k - 1 > i else None)
        if end is None:  # a single whitespace before a non-space: llama.cpp keeps it as an unmatched piece
            end = i + 1
        pieces.append(text[i:end])
        i = end
    return pieces


def _bytes_to_unicode():
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class _HandWrittenLlamaCppBpe:
    def __init__(self, meta):
        tokens = meta["tokenizer.ggml.tokens"]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(meta["tokenizer.ggml.merges"])}
        types = meta["tokenizer.ggml.token_type"]
        self.specials = sorted((t for t, k in zip(tokens, types) if k in (3, 4)), key=len, reverse=True)
        self.user_defined = sorted((t for t, k in zip(tokens, types) if k == 4), key=len, reverse=True)
        self.byte = _bytes_to_unicode()

    def encode(self, text, parse_special=True):
        """llama.cpp's ``llama_tokenize(text, parse_special)``: without ``parse_special`` control tokens are not
        matched (user-defined ones still are; SmolLM2 has none)."""
        specials = self.specials if parse_special else self.user_defined
        ids, start, i = [], 0, 0
        while i <= len(text):
            special = next((s for s in specials if text.startswith(s, i)), None) if i < len(text) else ""
            if special is None:
                i += 1
                continue
            segment = text[start:i]
            # step 1 of llama.cpp's smollm split: every \p{N} character is its own piece
            digit_pieces, buf = [], ""
            for ch in segment:
                if _is_n(ch):
                    if buf:
                        digit_pieces.append(buf)
                    digit_pieces.append(ch)
                    buf = ""
                else:
                    buf += ch
            if buf:
                digit_pieces.append(buf)
            for piece in digit_pieces:
                for word in _gpt2_split(piece):
                    ids.extend(self._bpe(word))
            if special:
                ids.append(self.vocab[special])
            i += max(len(special), 1)
            start = i
        return ids

    def _bpe(self, word):
        symbols = [self.byte[b] for b in word.encode("utf-8")]
        while True:
            candidates = [(self.ranks[p], j) for j, p in enumerate(zip(symbols, symbols[1:])) if p in self.ranks]
            if not candidates:  # llama.cpp drops a byte that has no token (merged symbols always have one)
                return [self.vocab[s] for s in symbols if s in self.vocab]
            _, j = min(candidates)
            symbols[j : j + 2] = [symbols[j] + symbols[j + 1]]

    def missing_bytes(self):
        return {b for b, ch in self.byte.items() if ch not in self.vocab}


@pytest.fixture(scope="module")
def hand_bpe(gguf_vocab):
    return _HandWrittenLlamaCppBpe(gguf_vocab)


# ----------------------------------------------------------------------------------------------------------
# Exactness against the fixture
# ----------------------------------------------------------------------------------------------------------


def test_fixture_was_made_from_the_default_model_file():
    sha = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert (REF["model_file"], REF["model_sha256"]) == (default_model_path().name, sha)
    assert REF["versions"]["transformers"] == "5.23.0"
    assert len(TEXTS) >= 30 and all(isinstance(t, str) for t in TEXTS)


@pytest.mark.parametrize("key", ["llama_cpp_definition", "hf_tokenizer_json_definition"])
def test_ids_equal_reference_on_every_text(tok, key):
    """The references parse special tokens in the text (llama.cpp ``parse_special=True``)."""
    ours = {e["text"]: tok.encode(e["text"], parse_special=True) for e in REF["texts"]}
    mismatches = [(e["text"], ours[e["text"]], e[key]) for e in REF["texts"] if ours[e["text"]] != e[key]]
    # (a list of (text, ours, reference) so a failure shows what differs)
    assert not mismatches, mismatches[:3]


def test_default_encoding_reads_special_token_spellings_as_text(tok, hand_bpe):
    """``encode(text)`` (data text) == the reference ids wherever the text spells no special token, and the
    regex-free llama.cpp reference with ``parse_special=False`` everywhere."""
    spelled = [t for t in TEXTS if any(s in t for s in hand_bpe.specials)]
    assert len(spelled) >= 4
    for entry in REF["texts"]:
        text = entry["text"]
        assert tok.encode(text) == hand_bpe.encode(text, parse_special=False), text
        if text not in spelled:
            assert tok.encode(text) == entry["llama_cpp_definition"], text
        else:
            assert tok.encode(text) != entry["llama_cpp_definition"], text
            assert not {tok.bos_id, tok.eos_id, tok.unk_id} & set(tok.encode(text)), text


def test_hand_written_scanner_agrees_with_regex_reference(hand_bpe):
    """The regex-free reference used by the property tests reproduces the fixture's regex-based reference."""
    for entry in REF["texts"]:
        assert hand_bpe.encode(entry["text"]) == entry["llama_cpp_definition"], entry["text"]


def test_transformers_gguf_differs_only_by_its_missing_digit_split(tok):
    """transformers' GGUF ids == the same vocabulary with GPT-2's split alone (no \\p{N} step), on every text.

    Where that changes the ids (the finding), our ids are the llama.cpp / tokenizer.json ones instead.
    """
    gpt2_only = tokenizers.Tokenizer.from_str(tok.backend.to_str())
    gpt2_only.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    diverging = []
    for entry in REF["texts"]:
        text, theirs = entry["text"], entry["transformers_gguf"]
        assert theirs == gpt2_only.encode(text, add_special_tokens=False).ids, text
        ours = tok.encode(text, parse_special=True)
        if ours != theirs:
            diverging.append(text)
            assert ours == entry["llama_cpp_definition"]
    # For ASCII text the divergence is exactly "a run of >= 2 whitespace characters right before a digit"
    # (the vocabulary has no multi-digit tokens, so only the whitespace run is split differently).
    ascii_texts = [t for t in TEXTS if t.isascii()]
    run_before_digit = re.compile(r"[ \t\n\r\x0b\x0c]{2}[0-9]")
    assert {t for t in ascii_texts if t in diverging} == {t for t in ascii_texts if run_before_digit.search(t)}
    assert len(diverging) >= 4  # the fixture contains such texts; the finding must stay visible


def test_special_ids_and_vocab_size_match_reference(tok):
    ids = REF["special_ids"]
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (ids["bos"], ids["eos"], ids["pad"], ids["unk"])
    assert tok.vocab_size == REF["vocab_size"]
    assert tok.token_text(tok.eos_id) == "<|im_end|>" and tok.token_text(tok.bos_id) == "<|im_start|>"


def _without_missing_bytes(text, missing):
    """What survives tokenization: the UTF-8 bytes of ``text`` minus those with no token."""
    return bytes(b for b in text.encode("utf-8") if b not in missing)


def test_missing_bytes_are_the_byte_symbols_absent_from_the_vocabulary(tok, hand_bpe):
    assert tok.missing_bytes == hand_bpe.missing_bytes()
    assert tok.missing_bytes == {0x04, 0x06, 0x13, 0x14, 0x16, 0x1D, 0xC0, 0xC1, 0xF1, 0xF2, *range(0xF5, 0x100)}


def test_decode_round_trips_every_text(tok):
    """Exact for every text without missing bytes; otherwise exactly those bytes are lost (all references agree)."""
    exact = 0
    for entry in REF["texts"]:
        text = entry["text"]
        survived = _without_missing_bytes(text, tok.missing_bytes)
        expected = survived.decode("utf-8", errors="replace")
        assert tok.decode(tok.encode(text)) == expected
        assert tok.decode(tok.encode(text, parse_special=True)) == expected
        assert tok.decode(entry["llama_cpp_definition"]) == expected
        assert tok.decode(entry["transformers_gguf"]) == entry["transformers_gguf_decoded"] == expected
        exact += survived == text.encode("utf-8")
    assert exact >= len(TEXTS) - 3


def test_token_bytes_concatenate_to_utf8_of_text(tok):
    for text in TEXTS:
        assert b"".join(tok.token_bytes(i) for i in tok.encode(text)) == _without_missing_bytes(text, tok.missing_bytes), text


def test_skip_special_tokens_drops_exactly_the_control_tokens(tok):
    text = "<|im_start|>user\nhi<|im_end|>\n<filename>x"
    assert tok.decode(tok.encode(text, parse_special=True), skip_special_tokens=True) == "user\nhi\nx"
    assert tok.decode(tok.encode(text), skip_special_tokens=True) == text  # spelled, not special: kept


def test_add_special_tokens_adds_nothing_for_smollm2(tok):
    # tokenizer.ggml.add_bos_token is False in the file and transformers adds nothing either.
    assert tok.encode("Hello world", add_special_tokens=True) == REF["texts"][1]["transformers_gguf"]


@pytest.mark.parametrize("case", REF["chats"], ids=lambda c: f"{len(c['messages'])}msgs-gen{c['add_generation_prompt']}")
def test_chat_template_matches_jinja_rendering(tok, case):
    assert tok.apply_chat_template(case["messages"], add_generation_prompt=case["add_generation_prompt"]) == case["text"]


def test_chat_template_reads_default_system_from_metadata(tok):
    assert tok.chat_template.default_system == "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


# ----------------------------------------------------------------------------------------------------------
# Properties on random text
# ----------------------------------------------------------------------------------------------------------

_SPECIAL_FRAGMENTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<filename>", "  1", "\n\n2", "\t\t3", "'s", "'LL", " 'd", "<|im_", "\u00a0", "\u3000"]
# Assigned characters only: Unicode categories of unassigned code points differ between Unicode versions
# (Python's unicodedata vs the Rust regex tables). Control characters, including ones with no byte token, stay in.
_assigned = st.characters(exclude_categories=("Cs", "Cn"), max_codepoint=0x2FFFF).filter(
    lambda c: unicodedata.category(c) not in ("Cn", "Cs")
)
_texts = st.lists(
    st.one_of(st.text(_assigned, max_size=12), st.text(" \t\n\r0123456789abc'", max_size=12), st.sampled_from(_SPECIAL_FRAGMENTS)),
    max_size=8,
).map("".join)


@given(text=_texts)
def test_ids_equal_hand_written_llama_cpp_reference_on_random_text(tok, hand_bpe, text):
    assert tok.encode(text, parse_special=True) == hand_bpe.encode(text, parse_special=True)
    assert tok.encode(text) == hand_bpe.encode(text, parse_special=False)


@given(text=_texts)
def test_decode_inverts_encode_on_random_text(tok, text):
    survived = _without_missing_bytes(text, tok.missing_bytes)
    for ids in (tok.encode(text), tok.encode(text, parse_special=True)):
        assert b"".join(tok.token_bytes(i) for i in ids) == survived
        assert tok.decode(ids) == survived.decode("utf-8", errors="replace")
        if survived == text.encode("utf-8"):
            assert tok.decode(ids) == text


# ----------------------------------------------------------------------------------------------------------
# SFT examples: ids and response-only loss mask
# ----------------------------------------------------------------------------------------------------------

_RESPONSES = ["4", "BMI = 70 / 1.75^2 = 22.86 kg/m\u00b2.", "Line 1\nLine 2\n\n3. done", "\u65e5\u672c \U0001f642 caf\u00e9", "<|endoftext|> odd"]


@pytest.mark.parametrize("system", [None, "You are a careful clinical calculator."])
@pytest.mark.parametrize("response", _RESPONSES)
def test_chat_example_is_prompt_then_response_tokens(tok, system, response):
    """ids = encode(head, parse_special) + encode(response) + [<|im_end|>] + encode("\\n"); mask = 0s, 1s, 0
    (response not starting with whitespace, so no token crosses the boundary). A special token's spelling in
    the response ("<|endoftext|> odd") is text."""
    prompt = "Compute 12 + 30.\nShow  2 steps."
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    head = tok.apply_chat_template(messages, add_generation_prompt=True)
    a, b, c = tok.encode(head, parse_special=True), tok.encode(response) + [tok.eos_id], tok.encode("\n")
    ids, mask = tok.encode_chat_example(prompt, response, system=system)
    assert ids == a + b + c
    assert mask == [0.0] * len(a) + [1.0] * len(b) + [0.0] * len(c)
    assert ids[len(a) + len(b) - 1] == tok.eos_id  # the closing <|im_end|> is a target
    conversation = messages + [{"role": "assistant", "content": response}]
    assert ids == tok.encode_chat(conversation)
    if "<|" not in response:  # no special spelled in the text: one pass with special parsing agrees
        assert ids == tok.encode(tok.apply_chat_template(conversation), parse_special=True)
    if system is None:
        assert tok.decode(ids).startswith("<|im_start|>system\nYou are a helpful AI assistant named SmolLM")


@pytest.mark.parametrize("response", ["  two leading spaces", "\n\nnewlines first", " 7", "\t\t8 tabs"])
def test_chat_example_mask_marks_tokens_touching_the_response_bytes(tok, response):
    """Mask recomputed from byte spans (token_bytes): 1 iff the token's bytes overlap the response + <|im_end|>."""
    ids, mask = tok.encode_chat_example("q", response)
    head = tok.apply_chat_template([{"role": "user", "content": "q"}], add_generation_prompt=True).encode("utf-8")
    lo, hi = len(head), len(head) + len((response + "<|im_end|>").encode("utf-8"))
    expected, pos = [], 0
    for i in ids:
        n = len(tok.token_bytes(i))
        expected.append(1.0 if pos < hi and pos + n > lo else 0.0)
        pos += n
    assert mask == expected
    assert sum(mask) >= len(tok.encode(response.strip())) + 1


# ----------------------------------------------------------------------------------------------------------
# Other constructors and a tiny file written here
# ----------------------------------------------------------------------------------------------------------


def _write_gguf(path, tokens, merges, token_types=None, model="gpt2", pre="smollm", chat_template=None, **flags):
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model(model)
    if pre is not None:
        writer.add_tokenizer_pre(pre)
    if tokens is not None:
        writer.add_token_list(tokens)
    if merges is not None:
        writer.add_token_merges(merges)
    if token_types is not None:
        writer.add_token_types(token_types)
    for name, value in flags.items():
        getattr(writer, f"add_{name}")(value)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


_TINY_TOKENS = ["<s>", "</s>", "<think>", "a", "b", "c", "Ġ", "1", "2", "ab", "abc", "Ġa", "ĠĠ"]
_TINY_TYPES = [3, 3, 4] + [1] * 10


def test_tiny_gguf_with_bos_flag_user_token_and_plain_chatml(tmp_path):
    path = _write_gguf(
        tmp_path / "tiny.gguf", _TINY_TOKENS, ["a b", "ab c", "Ġ a", "Ġ Ġ"], _TINY_TYPES,
        bos_token_id=0, eos_token_id=1, add_bos_token=True,
    )
    t = Tokenizer.from_gguf(path)
    ident = {s: i for i, s in enumerate(_TINY_TOKENS)}
    # "abc  12 a": pieces abc | "  " | 1 | 2 | " a"  (digits isolated first, so the space run stays whole)
    assert t.encode("abc  12 a") == [ident["abc"], ident["ĠĠ"], ident["1"], ident["2"], ident["Ġa"]]
    assert t.encode("abc", add_special_tokens=True) == [ident["<s>"], ident["abc"]]
    assert t.encode("<think>ab</s>", parse_special=True) == [ident["<think>"], ident["ab"], ident["</s>"]]
    # without parse_special every added token is text, the control token </s> and (unlike llama.cpp) the
    # user-defined <think> alike: their bytes have no tokens here and vanish
    assert t.encode("<think>ab</s>") == [ident["ab"]]
    assert t.decode([0, ident["<think>"], ident["ab"], 1], skip_special_tokens=True) == "<think>ab"
    assert (t.bos_id, t.eos_id, t.pad_id, t.unk_id, t.vocab_size) == (0, 1, None, None, len(_TINY_TOKENS))
    assert t.chat_template == ChatTemplate(default_system=None)
    assert t.apply_chat_template([{"role": "user", "content": "x"}]) == "<|im_start|>user\nx<|im_end|>\n"


def test_from_hf_folder_reproduces_reference_ids_and_template(tok, gguf_vocab, tmp_path):
    tok.backend.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<|im_start|>", "eos_token": {"content": "<|im_end|>"}, "pad_token": "<|im_end|>",
        "unk_token": "<|endoftext|>", "chat_template": gguf_vocab["tokenizer.chat_template"],
    }))
    hf = Tokenizer.from_hf(tmp_path)
    assert (hf.bos_id, hf.eos_id, hf.pad_id, hf.unk_id) == (1, 2, 2, 0)
    for entry in REF["texts"]:
        assert hf.encode(entry["text"], parse_special=True) == entry["llama_cpp_definition"]
    for case in REF["chats"]:
        assert hf.apply_chat_template(case["messages"], case["add_generation_prompt"]) == case["text"]


def test_chat_template_from_qwen_style_jinja_reads_its_default_system():
    source = (
        "{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
        "{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\\n' }}{%- endif %}"
        "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
        "{%- endfor %}"
    )
    template = ChatTemplate.from_jinja(source)
    assert template.default_system == "You are Qwen, created by Alibaba Cloud."
    assert template.render([{"role": "user", "content": "hi"}], add_generation_prompt=True) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


# ----------------------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------------------


def test_chat_templates_that_are_not_plain_chatml_are_refused():
    with pytest.raises(ValueError, match="not ChatML"):
        ChatTemplate.from_jinja("{% for m in messages %}[INST] {{ m.content }} [/INST]{% endfor %}")
    qwen3_like = "{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n" \
        "{%- endfor %}{%- if enable_thinking is false %}<think>\n\n</think>\n\n{%- endif %}"
    with pytest.raises(ValueError, match="<think>"):
        ChatTemplate.from_jinja(qwen3_like)
    with pytest.raises(ValueError, match="default_system"):
        ChatTemplate(default_system=3)


def test_missing_file_raises_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf"):
        Tokenizer.from_gguf(tmp_path / "nope.gguf")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer.from_hf(tmp_path)


def test_corrupt_files_raise_value_error_naming_them(tmp_path):
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(ValueError, match=r"garbage\.gguf: not a GGUF file \(bad magic\)"):
        Tokenizer.from_gguf(garbage)
    good = _write_gguf(tmp_path / "good.gguf", _TINY_TOKENS, ["a b"], _TINY_TYPES)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ValueError, match="truncated.gguf"):
        Tokenizer.from_gguf(truncated)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.from_hf(tmp_path)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "llama"}, "tokenizer.ggml.model = 'llama' is not supported"),
        ({"pre": "qwen2"}, "tokenizer.ggml.pre = 'qwen2' is not supported"),
        ({"tokens": None}, "no 'tokenizer.ggml.tokens'"),
        ({"merges": ["a z"]}, r"merges\[0\]"),
        ({"token_types": [1, 1]}, "token_type has 2 entries"),
        ({"chat_template": "{{ bos_token }}{% for m in messages %}[INST] {{ m.content }}{% endfor %}"}, "not ChatML"),
        ({"eos_token_id": 99}, "eos_token_id = 99 is outside"),
    ],
)
def test_unsupported_or_inconsistent_metadata_raises_value_error(tmp_path, kwargs, message):
    args = {"tokens": _TINY_TOKENS, "merges": ["a b"], "token_types": _TINY_TYPES, **kwargs}
    path = _write_gguf(tmp_path / "bad.gguf", args.pop("tokens"), args.pop("merges"), args.pop("token_types"), **args)
    with pytest.raises(ValueError, match=message) as info:
        Tokenizer.from_gguf(path)
    assert "bad.gguf" in str(info.value)


def test_bad_arguments_raise_value_error(tok):
    with pytest.raises(ValueError, match="text"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="token ids"):
        tok.decode([0, tok.vocab_size])
    with pytest.raises(ValueError, match="token ids"):
        tok.token_text(-1)
    with pytest.raises(ValueError, match="messages"):
        tok.apply_chat_template([])
    with pytest.raises(ValueError, match=r"messages\[0\]\['role'\]"):
        tok.apply_chat_template([{"role": "user\nx", "content": "hi"}])
    with pytest.raises(ValueError, match=r"messages\[1\]\['content'\]"):
        tok.apply_chat_template([{"role": "user", "content": "a"}, {"role": "user", "content": None}])
    with pytest.raises(ValueError, match="system"):
        tok.encode_chat_example("p", "r", system=3)
    with pytest.raises(ValueError, match="response contains characters this vocabulary cannot represent"):
        tok.encode_chat_example("p", "lost\x06byte")


# ----------------------------------------------------------------------------------------------------------
# Regenerating the reference (optional dependencies)
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.reference
def test_regenerated_reference_equals_fixture(tok, tmp_path):
    """Re-run the reference script in the reference environment and compare with the committed fixture."""
    python = Path(os.environ.get("SFT_REFERENCE_PYTHON", REPO / ".venv-ref" / "bin" / "python"))
    if not python.is_file():
        pytest.skip(f"reference environment not found: {python} (set SFT_REFERENCE_PYTHON)")
    probe = subprocess.run([str(python), "-c", "import transformers, regex, gguf"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"{python} cannot import transformers/regex/gguf")
    out = tmp_path / "reference.json"
    subprocess.run(
        [str(python), str(REPO / "tools" / "make_tokenizer_reference.py"), "--model", str(default_model_path()), "--out", str(out)],
        check=True, env={**os.environ, "PYTHONPATH": ""},
    )
    fresh = json.loads(out.read_text(encoding="utf-8"))
    assert fresh["texts"] == REF["texts"] and fresh["chats"] == REF["chats"]
    assert fresh["special_ids"] == REF["special_ids"] and fresh["model_sha256"] == REF["model_sha256"]
    for entry in fresh["texts"]:  # the references parse special tokens in the text, as llama.cpp does
        assert tok.encode(entry["text"], parse_special=True) == entry["llama_cpp_definition"]
