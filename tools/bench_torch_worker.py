"""The transformers + torch worker of ``python -m sft_tilt.benchmarks.lm_step`` (run under ``.venv-ref``; imports nothing from sims).

    .venv-ref/bin/python tools/bench_torch_worker.py MODEL.gguf BATCH.npz THREADS

Loads the GGUF file with ``AutoModelForCausalLM.from_pretrained(folder, gguf_file=name)`` in float32 and the batch
(``tokens``, ``loss_mask``, ``attention_mask``; ``allow_pickle=False``), then answers the benchmark's requests on
stdin with ``BENCH {json}`` lines on stdout, as ``sft_tilt.benchmarks.lm_step._serve`` does:

* eval:  ``logits = model(tokens, attention_mask).logits`` at every position, ``-log_softmax`` at the targets;
* train: ``model(tokens, attention_mask, labels).loss`` with ``labels = tokens`` where ``loss_mask != 0`` and
  ``-100`` elsewhere (what a Trainer / SFT step computes: mean over the targets, logits at every position), backward,
  ``Adam(lr=1e-5)`` without clipping or weight decay, the update of the harness's step it is timed against.
"""

import json
import os
import resource
import sys
import time

import numpy as np
import torch
from transformers import AutoModelForCausalLM


def peak_rss_mb():  # VmHWM: ru_maxrss would include the parent's memory carried across exec
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def answer(obj):
    sys.stdout.write("BENCH " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    path, batch_file, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    with np.load(batch_file, allow_pickle=False) as data:
        tokens = torch.from_numpy(data["tokens"].astype(np.int64))
        loss_mask = torch.from_numpy(data["loss_mask"].astype(np.float32))
        attention_mask = torch.from_numpy(data["attention_mask"].astype(np.int64))
    labels = torch.where(loss_mask != 0, tokens, torch.full_like(tokens, -100))
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)

    def per_token_losses():
        with torch.no_grad():
            logits = model(input_ids=tokens, attention_mask=attention_mask).logits[:, :-1].float()
            # [N, V] rows, as transformers' ForCausalLMLoss flattens them (cross_entropy over a [B, V, T] view of
            # the same logits takes another CPU kernel whose sum over V differs by up to 2e-4 nats in float32)
            nll = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                                    reduction="none", ignore_index=-100)
        return nll.reshape(labels[:, 1:].shape) * loss_mask[:, 1:]

    def run(phase):
        if phase == "eval":
            model.eval()
            per_token_losses()
        else:
            model.train()
            opt.zero_grad(set_to_none=True)
            loss = model(input_ids=tokens, attention_mask=attention_mask, labels=labels).loss
            loss.backward()
            opt.step()

    answer({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "affinity": len(os.sched_getaffinity(0))})
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "losses":
            model.eval()
            answer({"losses": per_token_losses().double().tolist()})
        elif op == "warmup":
            for _ in range(request.get("n", 2)):
                run(request["phase"])
            answer({"ok": True})
        elif op == "time":
            t0 = time.perf_counter()
            run(request["phase"])
            answer({"seconds": time.perf_counter() - t0})
        elif op == "rss":
            answer({"peak_rss_mb": peak_rss_mb()})
        elif op == "quit":
            answer({"bye": True})
            return


if __name__ == "__main__":
    main()
