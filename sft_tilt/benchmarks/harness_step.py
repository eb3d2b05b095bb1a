"""Benchmark (a script, not a test): the harness's real job, interleaved JAX vs transformers + torch.

    python -m sft_tilt.benchmarks.harness_step [the options of python -m sft_tilt.benchmarks.lm_step] [--sft-batch 8]

Runs ``sft_tilt.benchmarks.lm_step``'s ``plain`` workload and adds ``sft``: ``--sft-batch`` chat-formatted MedCalc fine-tuning
examples (chain-of-thought responses) encoded exactly as a harness session encodes its training set
(``encode_chat_set`` with the model's chat template, ``SYSTEM_PROMPT``, right-padded to the ``default`` preset's ``seq_len_cot``
tokens, variable real lengths), loss on response tokens only. Compared:

* ``jax``: the harness's SFT step with logits at every position (``per_token_losses``, without a capacity);
* ``jax-fast``: the harness's SFT step as a run takes it, the output head only at response tokens
  (``sft_tilt.lm.supervised_loss``);
* ``torch``: what a user would otherwise run, transformers + torch computing logits at every position of the
  padded batch with ``labels = -100`` on prompt and padding tokens (a Trainer / SFT step's default).

The per-token losses of every pair must agree to 1e-4 nats (printed). Method and output: ``sft_tilt.benchmarks.lm_step``.
"""

from __future__ import annotations

import numpy as np

from sft_tilt.harness.encoding import encode_chat_set
from sft_tilt.harness.medcalc import SYSTEM_PROMPT
from sft_tilt.harness.medcalc_bench import generate_examples
from sft_tilt.harness.presets import get_preset
from sft_tilt.benchmarks.lm_step import Workload, main as lm_main

__all__ = ["sft_workload", "main"]


def sft_workload(model_path=None, batch: int = 8, seed: int = 0, fmt: str = "cot") -> Workload:
    """``batch`` MedCalc examples in ``fmt``, encoded as a harness session encodes its training set."""
    from sft_tilt.lm.gguf_io import default_model_path
    from sft_tilt.lm.tokenizer import Tokenizer

    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: must be a positive int, got {batch!r}")
    data = get_preset("default").data  # the default preset's calculators and windows
    tokenizer = Tokenizer.from_gguf(model_path or default_model_path())
    pad_id = int(tokenizer.pad_id if tokenizer.pad_id is not None else 0)
    examples = generate_examples(batch, seed, calculators=data.calculators)
    enc = encode_chat_set(tokenizer, [(e.prompt, e.response(fmt)) for e in examples], data.seq_len(fmt), pad_id,
                          SYSTEM_PROMPT)
    lengths = np.array([len(tokenizer.encode_chat_example(e.prompt, e.response(fmt), system=SYSTEM_PROMPT)[0])
                        for e in examples])
    attention = (np.arange(enc.seq_len)[None, :] < lengths[:, None]).astype(np.int32)
    return Workload("sft", f"{batch} MedCalc {fmt} examples, chat template, padded to {enc.seq_len} tokens "
                    f"(real lengths {lengths.min()}-{lengths.max()}), loss on response tokens only",
                    enc.tokens, enc.loss_mask, attention, notes={"real_lengths": lengths.tolist()})


def main(argv=None) -> dict:
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--sft-batch", type=int, default=8)
    known, rest = parser.parse_known_args(argv)
    if known.sft_batch < 1:
        raise SystemExit("--sft-batch must be positive")
    return lm_main(rest, extra_workloads=[lambda args: [sft_workload(args.model, known.sft_batch)]])


if __name__ == "__main__":
    main()
