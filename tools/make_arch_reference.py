"""Write the per-architecture exactness fixture: tiny random transformers models and their log-probs / greedy tokens.

Runs under the *reference* environment (torch 2.13.0 CPU + transformers 5.23.0; ``.venv-ref``), NOT the toolkit's
JAX environment; it imports nothing from ``sims``. Nothing is downloaded: every model is built from a config object
constructed here, with seeded random float32 weights (norm gains and biases random too, so that every parameter
matters), and saved with ``save_pretrained`` as a Hugging Face folder (``config.json`` + ``model.safetensors``).

For each model the script records, for fixed token ids (no tokenizer needed):

  * ``log_probs_f32``: ``log p(x_t | x_<t)`` for t = 1..T-1 from the float32 model (eager attention);
  * ``log_probs_f64``: the same from the model cast to float64;
  * greedy continuations (``generate(do_sample=False)``) of fixed prompts, with and without the KV cache, and the
    smallest gap between the two best logits along the way (a tie would make the tokens ill-defined).

Sequences are longer than the sliding windows, so the local-attention masks and their caches are exercised.

Usage (from the repository root)::

    .venv-ref/bin/python tools/make_arch_reference.py            # rewrites tests/fixtures/lm_arch*
    .venv-ref/bin/python tools/make_arch_reference.py --out-dir /tmp/x   # writes /tmp/x/lm_arch*, for comparison
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SEQ_LEN = 24
PROMPT_LEN = 5
NEW_TOKENS = 15


def model_specs():
    """name -> (config class name, config kwargs). Shapes keep every file well under 200 KB of float32."""
    return {
        # Llama 3.x: llama3 rope scaling (original context 16, so low/medium/high frequency bands all occur at
        # head_dim 8), grouped-query attention, untied output head.
        "llama3": ("LlamaConfig", dict(
            vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            rope_theta=500000.0,
            rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                          "original_max_position_embeddings": 16})),
        # Qwen2 / Qwen2.5: q/k/v biases, tied head; layer 1 uses a sliding window (use_sliding_window).
        "qwen2": ("Qwen2Config", dict(
            vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, tie_word_embeddings=True,
            rope_theta=1e6, use_sliding_window=True, sliding_window=6, max_window_layers=1)),
        # Qwen3: q/k norms, head_dim 16 with 4 heads on hidden 32 (q width 64 != hidden), tied head.
        "qwen3": ("Qwen3Config", dict(
            vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-6,
            tie_word_embeddings=True, rope_theta=1e6)),
        # Gemma 3 text: local/global layers alternating (pattern 2), window 4, own RoPE bases, linear rope scaling
        # on the global layers, query_pre_attn_scalar != head_dim, final logit soft-capping.
        "gemma3": ("Gemma3TextConfig", dict(
            vocab_size=128, hidden_size=32, intermediate_size=48, num_hidden_layers=4, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-6,
            tie_word_embeddings=True, rope_theta=10000.0, rope_local_base_freq=100.0,
            rope_scaling={"rope_type": "linear", "factor": 4.0}, sliding_window=4, sliding_window_pattern=2,
            query_pre_attn_scalar=24, final_logit_softcapping=8.0, attn_logit_softcapping=None)),
    }


def main(argv=None) -> Path:
    import numpy as np
    import torch
    import transformers

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(FIXTURES), help="folder receiving lm_arch/ and lm_arch_reference.json")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

    entries = {}
    for index, (name, (config_cls, kwargs)) in enumerate(model_specs().items()):
        config = getattr(transformers, config_cls)(**kwargs)
        config._attn_implementation = "eager"
        torch.manual_seed(1000 + index)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        gemma = config.model_type == "gemma3_text"
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):  # gains around 1 (stored as w with gain 1 + w for Gemma)
                    p.copy_((0.0 if gemma else 1.0) + 0.3 * torch.randn_like(p))
                elif pname.endswith("bias"):
                    p.copy_(0.3 * torch.randn_like(p))
                elif "embed_tokens" in pname:
                    p.copy_(torch.randn_like(p))
                else:
                    p.copy_(torch.randn_like(p) / p.shape[1] ** 0.5)
        folder = out_dir / "lm_arch" / name
        if folder.exists():
            shutil.rmtree(folder)
        model.save_pretrained(folder)
        for extra in folder.iterdir():  # keep only what a loader needs
            if extra.name not in ("config.json", "model.safetensors"):
                extra.unlink()

        rng = np.random.default_rng(index)
        sequences = [rng.integers(0, config.vocab_size, SEQ_LEN).tolist() for _ in range(2)]
        model64 = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        model64.load_state_dict(model.state_dict())
        model64 = model64.double()

        def log_probs(m, ids, dtype):
            with torch.no_grad():
                logits = m(torch.tensor([ids])).logits[0].to(dtype)
            lp = torch.log_softmax(logits[:-1], dim=-1)
            return lp.gather(-1, torch.tensor(ids[1:])[:, None])[:, 0].tolist()

        texts = [{"token_ids": ids, "log_probs_f32": log_probs(model, ids, torch.float32),
                  "log_probs_f64": log_probs(model64, ids, torch.float64)} for ids in sequences]
        greedy = []
        for ids in sequences:
            prompt = ids[:PROMPT_LEN]
            runs = {}
            for use_cache in (True, False):
                with torch.no_grad():
                    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, PROMPT_LEN, dtype=torch.long),
                                         do_sample=False, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                         use_cache=use_cache, pad_token_id=0, eos_token_id=None,
                                         output_scores=True, return_dict_in_generate=True)
                new = out.sequences[0, PROMPT_LEN:].tolist()
                top2 = torch.stack(out.scores)[:, 0].topk(2, dim=-1).values
                runs[use_cache] = (new, float((top2[:, 0] - top2[:, 1]).min()))
            greedy.append({"prompt_ids": prompt, "new_token_ids_cache": runs[True][0],
                           "new_token_ids_no_cache": runs[False][0], "min_top2_logit_gap": min(runs[True][1], runs[False][1])})
        gap = min(g["min_top2_logit_gap"] for g in greedy)
        if gap < 1e-3:
            raise RuntimeError(f"{name}: greedy decoding meets a near-tie (top-2 logit gap {gap:.2g}); change the model")
        entries[name] = {
            "folder": f"lm_arch/{name}",
            "model_type": config.model_type,
            "n_params": sum(p.numel() for p in model.parameters()),
            "texts": texts,
            "greedy": greedy,
        }
        sizes = sum(f.stat().st_size for f in folder.iterdir())
        print(f"{name}: {entries[name]['n_params']} params, {sizes / 1024:.0f} KiB, "
              f"greedy min top-2 gap {gap:.3g}, "
              f"cache==no-cache: {all(g['new_token_ids_cache'] == g['new_token_ids_no_cache'] for g in greedy)}")

    fixture = {
        "description": "transformers (torch CPU, eager attention) reference for tiny random models of each "
                       "architecture; log_probs[t] = log p(token_ids[t+1] | token_ids[:t+1]). Written by "
                       "tools/make_arch_reference.py.",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
        "models": entries,
    }
    out = out_dir / "lm_arch_reference.json"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(fixture, indent=1) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
