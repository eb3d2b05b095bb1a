"""Benchmark (a script, not a test): SmolLM2-135M training and evaluation throughput, JAX vs transformers + torch.

    python -m sims.lm.bench [--batch 8] [--seq 128] [--steps 3] [--no-torch] [--out runs/bench_lm.json]

Measures, in one run on this machine:
  * matmul throughput: a jitted float32 [n, n] @ [n, n] matmul, FLOP/s = 2 n^3 / time (best of several);
  * JAX evaluation: jitted per-token log-probs of a [batch, seq] batch, tokens/s;
  * JAX training: ``make_train_step`` (AdamW, float32), tokens/s;
  * the same two figures for ``transformers`` + CPU torch loading the same GGUF file, in a subprocess under
    ``.venv-ref/`` (or this interpreter if torch and transformers import), when available;
  * peak resident memory of each process (``VmHWM``; ``resource.getrusage`` where /proc is absent);
  * model FLOP utilisation = (2 or 6) * n_params * tokens/s / matmul FLOP/s (forward 2, forward+backward 6).

Load average at start and end is recorded: the figures are only comparable on an otherwise idle machine.
Each timed figure is the median of ``--steps`` runs after one warm-up (compilation) run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[2]

TORCH_SCRIPT = textwrap.dedent("""
    import json, os, resource, statistics, sys, time
    import torch

    def peak_rss_mb():  # VmHWM: ru_maxrss would include the parent's memory carried across exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    from transformers import AutoModelForCausalLM
    path, batch, seq, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                                 dtype=torch.float32)
    tokens = torch.randint(0, model.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))

    def eval_step():
        with torch.no_grad():
            logits = model(tokens).logits[:, :-1]
            lp = torch.log_softmax(logits, -1).gather(-1, tokens[:, 1:, None])[..., 0]
        return float(lp.sum())

    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)

    def train_step():
        opt.zero_grad(set_to_none=True)
        loss = model(tokens, labels=tokens).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return float(loss)

    def timed(fn):
        fn()
        times = []
        for _ in range(steps):
            t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
        return statistics.median(times)

    model.eval()
    t_eval = timed(eval_step)
    rss_eval = peak_rss_mb()
    model.train()
    t_train = timed(train_step)
    print("RESULT" + json.dumps({
        "eval_tokens_per_s": batch * seq / t_eval, "train_tokens_per_s": batch * seq / t_train,
        "eval_step_s": t_eval, "train_step_s": t_train, "peak_rss_mb_after_eval": rss_eval,
        "peak_rss_mb": peak_rss_mb(),
        "torch": torch.__version__, "threads": torch.get_num_threads()}))
""")


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status where it exists, else
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss``.

    VmHWM is preferred because Linux carries ``ru_maxrss`` across ``exec``: a subprocess started from a process
    holding 3 GB would report at least 3 GB however little it used itself.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_time(fn, steps: int, label: str) -> float:
    from tqdm import tqdm

    fn()  # warm-up: compilation
    times = []
    for _ in tqdm(range(steps), desc=label, leave=False):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(n: int = 2048, repeats: int = 5) -> float:
    """Best-of-``repeats`` float32 matmul throughput (FLOP/s) of a jitted [n, n] @ [n, n]."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    mm = jax.jit(jnp.matmul)
    mm(a, b).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        mm(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def bench_jax(batch: int, seq: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp

    from sims.lm.gguf_io import load_gguf
    from sims.lm.model import token_log_probs
    from sims.lm.training import default_optimizer, make_train_step

    config, params = load_gguf()
    params = jax.tree_util.tree_map(jnp.asarray, params)
    tokens = jax.random.randint(jax.random.key(0), (batch, seq), 0, config.vocab_size).astype(jnp.int32)
    batch_dict = {"tokens": tokens, "loss_mask": jnp.ones((batch, seq), jnp.float32)}

    eval_fn = jax.jit(lambda p, t: jnp.sum(token_log_probs(p, config, t)))
    t_eval = _median_time(lambda: eval_fn(params, tokens).block_until_ready(), steps, "jax eval")
    rss_eval = peak_rss_mb()

    optimizer = default_optimizer(learning_rate=1e-5)
    step = make_train_step(config, optimizer, donate=True)
    state = {"params": params, "opt": optimizer.init(params)}

    def train_once():
        state["params"], state["opt"], metrics = step(state["params"], state["opt"], batch_dict)
        jax.block_until_ready(metrics["loss"])

    t_train = _median_time(train_once, steps, "jax train")
    return {
        "eval_tokens_per_s": batch * seq / t_eval,
        "train_tokens_per_s": batch * seq / t_train,
        "eval_step_s": t_eval,
        "train_step_s": t_train,
        "peak_rss_mb_after_eval": rss_eval,
        "peak_rss_mb": peak_rss_mb(),
        "n_params": config.n_params(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }


def _torch_python() -> str | None:
    if importlib.util.find_spec("torch") and importlib.util.find_spec("transformers"):
        return sys.executable
    candidate = ROOT / ".venv-ref" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def bench_torch(batch: int, seq: int, steps: int) -> dict | None:
    from sims.lm.gguf_io import default_model_path

    python = _torch_python()
    if python is None:
        return None
    proc = subprocess.run([python, "-c", TORCH_SCRIPT, str(default_model_path()), str(batch), str(seq), str(steps)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    if proc.returncode != 0 or "RESULT" not in proc.stdout:
        return {"error": proc.stderr[-2000:]}
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--steps", type=int, default=3, help="timed repetitions after one warm-up")
    parser.add_argument("--no-torch", action="store_true", help="skip the transformers + torch reference")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_lm.json"))
    args = parser.parse_args(argv)
    for name in ("batch", "seq", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be positive")

    load_start = os.getloadavg()[0]
    # torch first, in a subprocess started before this process holds the model (cleaner memory and CPU)
    torch_result = None if args.no_torch else bench_torch(args.batch, args.seq, args.steps)
    flops = matmul_flops()
    result = {"batch": args.batch, "seq": args.seq, "steps": args.steps, "cpu_count": os.cpu_count(),
              "machine": platform.platform(), "matmul_gflops": flops / 1e9,
              "load_average_start": load_start}
    result["jax"] = bench_jax(args.batch, args.seq, args.steps)
    n = result["jax"]["n_params"]
    if not args.no_torch:
        result["torch"] = torch_result
    for name in ("jax", "torch"):
        r = result.get(name)
        if r and "error" not in r:
            r["eval_mfu"] = 2 * n * r["eval_tokens_per_s"] / flops
            r["train_mfu"] = 6 * n * r["train_tokens_per_s"] / flops
    if result.get("torch") and "error" not in result["torch"]:
        result["speedup_vs_torch"] = {
            k: result["jax"][f"{k}_tokens_per_s"] / result["torch"][f"{k}_tokens_per_s"] for k in ("eval", "train")}

    result["load_average_end"] = os.getloadavg()[0]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)

    print(f"matmul: {result['matmul_gflops']:.1f} GFLOP/s (float32, {os.cpu_count()} CPUs); load average "
          f"{result['load_average_start']:.1f} at start, {result['load_average_end']:.1f} at end")
    print(f"{'':8}{'eval tok/s':>12}{'train tok/s':>13}{'eval MFU':>10}{'train MFU':>11}{'peak RSS MB':>13}")
    for name in ("jax", "torch"):
        r = result.get(name)
        if name == "torch" and args.no_torch:
            continue
        if r is None:
            print(f"{name:8}(not available: no torch/transformers and no .venv-ref/)")
        elif "error" in r:
            print(f"{name:8}failed: {r['error'][-300:]}")
        else:
            print(f"{name:8}{r['eval_tokens_per_s']:12.1f}{r['train_tokens_per_s']:13.1f}"
                  f"{r['eval_mfu']:10.1%}{r['train_mfu']:11.1%}{r['peak_rss_mb']:13.0f}")
    if "speedup_vs_torch" in result:
        s = result["speedup_vs_torch"]
        print(f"JAX / torch: eval {s['eval']:.2f}x, train {s['train']:.2f}x")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
