"""Write tests/fixtures/lm_reference.json: an independent implementation's per-token log-probs and greedy tokens.

Runs under the *reference* environment (torch 2.13.0 CPU + transformers 5.23.0 + gguf 0.19.0, plus accelerate
1.15.0, which transformers requires to load GGUF files; ``.venv-ref``), NOT the
toolkit's JAX environment; it imports nothing from ``sims``. Hugging Face ``transformers`` loads the same GGUF file
(``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)``: its own dequantisation and its own reverse of
llama.cpp's Q/K permutation) in float32 on CPU, and the script records, for a few fixed texts:

  * ``token_ids``: the reference tokenizer's ids (so the JAX test does not depend on a tokenizer);
  * ``log_probs_f32``: ``log p(x_t | x_<t)`` for t = 1..T-1 from the float32 model (log_softmax in float32);
  * ``log_probs_f64``: the same from the model cast to float64 (to separate float32 rounding from real differences);
  * greedy continuations (``generate(do_sample=False)``, float32) of a few prompts.

Usage (from the repository root)::

    .venv-ref/bin/python tools/make_lm_reference.py --model "$(.venv/bin/python -c \
        'from sft_tilt.lm.gguf_io import default_model_path; print(default_model_path())')"
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
from pathlib import Path

TEXTS = [
    "The capital of France is Paris. It is known for the Eiffel Tower and its museums.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "In 2023, the population grew by 3.7% to 1,284,501 people; the median age was 41.5 years.",
    "Caf\u00e9 cr\u00e8me, na\u00efve r\u00e9sum\u00e9: \u00fcber-fast \u2014 \u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8 and emoji \U0001f600!",
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "<|im_start|>user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n",
]

PROMPTS = [
    ("The capital of France is", 8),
    ("<|im_start|>user\nName a primary color.<|im_end|>\n<|im_start|>assistant\n", 12),
    ("def add(a, b):\n", 12),
]

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "lm_reference.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main(argv=None) -> Path:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=os.environ.get("SFT_MODEL_PATH"), help="GGUF file (or $SFT_MODEL_PATH)")
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    if not args.model:
        parser.error("--model PATH (or SFT_MODEL_PATH) is required")
    model_path = Path(args.model).resolve()
    if not model_path.is_file():
        raise FileNotFoundError(f"GGUF file {model_path} does not exist")

    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    folder, name = str(model_path.parent), model_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()

    def log_probs(m, ids, dtype):
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].to(dtype)
        lp = torch.log_softmax(logits[:-1], dim=-1)
        return lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()

    texts = []
    for text in TEXTS:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        texts.append({"text": text, "token_ids": ids, "log_probs_f32": log_probs(model, ids, torch.float32)})
    model64 = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval().double()
    for entry in texts:
        entry["log_probs_f64"] = log_probs(model64, entry["token_ids"], torch.float64)
    del model64

    generations = []
    for prompt, n_new in PROMPTS:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new,
                                 pad_token_id=tokenizer.eos_token_id)
        new = out[0, len(ids):].tolist()
        generations.append({"prompt": prompt, "prompt_ids": ids, "new_token_ids": new,
                            "new_text": tokenizer.decode(new)})

    fixture = {
        "description": "transformers (torch CPU) reference for SmolLM2-135M-Instruct loaded from the GGUF file; "
                       "log_probs[t] = log p(token_ids[t+1] | token_ids[:t+1]). Written by tools/make_lm_reference.py.",
        "model_file": model_path.name,
        "model_sha256": sha256(model_path),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "config": {k: model.config.to_dict().get(k) for k in (
            "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "intermediate_size", "rope_theta", "rms_norm_eps", "tie_word_embeddings", "rope_parameters")},
        "texts": texts,
        "greedy": generations,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    for g in generations:
        print(repr(g["prompt"][-40:]), "->", repr(g["new_text"]))
    return out


if __name__ == "__main__":
    main()
