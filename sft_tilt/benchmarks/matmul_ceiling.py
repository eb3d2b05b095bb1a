"""Benchmark (a script, not a test): the speed limit that matrix products put on a training step, JAX vs torch.

    python -m sft_tilt.benchmarks.matmul_ceiling [--batch 8] [--seq 128] [--reps 7] [--threads N] [--out FILE.json]

A training step of a dense decoder spends nearly all of its arithmetic in the products with the weights. For each
weight ``W`` [n, m] of the model (per block: ``wq``, ``wk``, ``wv``, ``wo``, ``w_gate``, ``w_up``, ``w_down``; once: the
output head ``[D, V]``) and ``R = batch * seq`` rows, one step computes three products:

    forward        Y  = X W          [R, n] x [n, m]          2 R n m FLOPs
    input grad     dX = dY W^T       [R, m] x [m, n]          (W read transposed)
    weight grad    dW = X^T dY       [n, R] x [R, m]          (X read transposed)

Each product is timed in isolation, in JAX (``jax.jit`` of ``jnp.dot``, float32, XLA's CPU backend), in JAX through
``sft_tilt.lm.native_matmul`` (``jax-native``: NumPy's OpenBLAS sgemm called from the compiled program through XLA's FFI;
left out where it cannot be built) and in torch (``torch.matmul`` on transposed views, as autograd calls it), in worker
processes pinned to the same CPUs, their
turns interleaved (``A B A B ...``, ``--reps`` rounds, median of each). Summed with their counts (``n_layers`` of
each block product) they give the step's *matmul-only time* in each library; ``torch_time / jax_time`` (and
``torch_time / jax-native_time``) is then the
largest JAX/torch training-speed ratio reachable while both run the same products with these kernels (everything
else in a step, norms, attention, the optimiser, only adds to each side). The forward products alone bound
evaluation the same way. Attention's score and value products (batched, about 4 % of the FLOPs at 128 tokens) are
left out.

Torch runs in ``.venv-ref/`` (``tools/matmul_torch_worker.py``); without it only JAX is timed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["step_products", "summarise", "main"]

ROOT = Path(__file__).resolve().parents[2]
TORCH_WORKER = ROOT / "tools" / "matmul_torch_worker.py"
KINDS = ("forward", "input_grad", "weight_grad")


def step_products(config, rows: int) -> list[dict]:
    """The weight products of one training step: dicts with ``name``, ``kind``, operand shapes ``a``/``b`` as stored
    (``transpose_a``/``transpose_b`` say which is read transposed), ``flops`` and ``count`` (times per step)."""
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ValueError(f"rows: must be a positive int, got {rows!r}")
    D, F, V, L = config.dim, config.hidden_dim, config.vocab_size, config.n_layers
    Q, KV = config.n_heads * config.head_dim, config.n_kv_heads * config.head_dim
    weights = [("wq", D, Q, L), ("wk", D, KV, L), ("wv", D, KV, L), ("wo", Q, D, L), ("w_gate", D, F, L),
               ("w_up", D, F, L), ("w_down", F, D, L), ("head", D, V, 1)]
    products = []
    for name, n, m, count in weights:
        flops = 2 * rows * n * m
        products += [
            {"name": name, "kind": "forward", "a": [rows, n], "b": [n, m], "transpose_a": False, "transpose_b": False},
            {"name": name, "kind": "input_grad", "a": [rows, m], "b": [n, m], "transpose_a": False, "transpose_b": True},
            {"name": name, "kind": "weight_grad", "a": [rows, n], "b": [rows, m], "transpose_a": True, "transpose_b": False},
        ]
        for p in products[-3:]:
            p.update(flops=flops, count=count)
    # identical products (wk and wv; w_gate and w_up) are timed once and counted twice
    merged: dict[tuple, dict] = {}
    for p in products:
        key = (p["kind"], tuple(p["a"]), tuple(p["b"]), p["transpose_a"], p["transpose_b"])
        if key in merged:
            merged[key]["count"] += p["count"]
            merged[key]["name"] += "+" + p["name"]
        else:
            merged[key] = dict(p)
    return list(merged.values())


def summarise(products: list[dict], seconds: dict[str, list[list[float]]]) -> dict:
    """Step totals from per-product timings ``seconds[impl][i]`` (the reps of product i): for each implementation the
    matmul-only time of a training step (all kinds) and of an evaluation (forward only), with GFLOP/s; and, when
    both are present, ``torch / jax`` of each total (the speed ceiling of JAX relative to torch)."""
    out: dict = {"products": [], "totals": {}}
    for i, p in enumerate(products):
        row = {k: p[k] for k in ("name", "kind", "a", "b", "flops", "count")}
        for impl, per_product in seconds.items():
            med = statistics.median(per_product[i])
            row[impl] = {"median_ms": 1e3 * med, "gflops": p["flops"] / med / 1e9}
        out["products"].append(row)
    for impl, per_product in seconds.items():
        train = sum(statistics.median(per_product[i]) * p["count"] for i, p in enumerate(products))
        evaluation = sum(statistics.median(per_product[i]) * p["count"] for i, p in enumerate(products)
                         if p["kind"] == "forward")
        flops_train = sum(p["flops"] * p["count"] for p in products)
        flops_eval = sum(p["flops"] * p["count"] for p in products if p["kind"] == "forward")
        out["totals"][impl] = {"train_s": train, "eval_s": evaluation, "train_gflops": flops_train / train / 1e9,
                               "eval_gflops": flops_eval / evaluation / 1e9}
    if {"jax", "torch"} <= set(seconds):
        t, j = out["totals"]["torch"], out["totals"]["jax"]
        out["ceiling"] = {"train": t["train_s"] / j["train_s"], "eval": t["eval_s"] / j["eval_s"]}
    if {"jax-native", "torch"} <= set(seconds):
        t, j = out["totals"]["torch"], out["totals"]["jax-native"]
        out["native_ceiling"] = {"train": t["train_s"] / j["train_s"], "eval": t["eval_s"] / j["eval_s"]}
    return out


def _jax_worker(native: bool = False) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    if native:
        from sft_tilt.lm.native_matmul import native_product

        def product(a, b, p):
            return native_product(a, b, p["transpose_a"], p["transpose_b"])
    else:
        def product(a, b, p):
            return jnp.dot(a.T if p["transpose_a"] else a, b.T if p["transpose_b"] else b)

    compiled = {}

    def run(p: dict, inner: int) -> float:
        key = json.dumps(p, sort_keys=True)
        if key not in compiled:
            rng = np.random.default_rng(0)
            a = jnp.asarray(rng.standard_normal(p["a"], dtype=np.float32))
            b = jnp.asarray(rng.standard_normal(p["b"], dtype=np.float32))
            f = jax.jit(lambda a, b: product(a, b, p))
            jax.block_until_ready(f(a, b))
            compiled[key] = (f, a, b)
        f, a, b = compiled[key]
        t0 = time.perf_counter()
        for _ in range(inner):  # one at a time, as torch's calls run: no queued executions sharing the cores
            jax.block_until_ready(f(a, b))
        return (time.perf_counter() - t0) / inner

    _serve(run, {"jax": jax.__version__, "native": native, "threads": len(os.sched_getaffinity(0))})


def _serve(run, info: dict) -> None:
    """A worker's loop: ``{"op": "time", "product": ..., "inner": n}`` lines in, ``BENCH {"seconds": s}`` out (the
    line protocol of ``sft_tilt.benchmarks.lm_step``'s workers; ``tools/matmul_torch_worker.py`` has its own copy)."""

    def answer(obj):
        sys.stdout.write("BENCH " + json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ready": True, **info})
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "time":
            answer({"seconds": run(request["product"], request["inner"])})
        elif request["op"] == "quit":
            answer({"bye": True})
            return


def _inner_repeats(flops: float) -> int:
    """Repeats per timed turn: about 50 ms of work at 100 GFLOP/s, at least 1."""
    return max(1, int(5e9 / flops))


def run_benchmark(batch: int = 8, seq: int = 128, reps: int = 7, threads: int | None = None,
                  use_torch: bool = True, pause: float = 0.3, use_native: bool = True) -> dict:
    from sft_tilt.benchmarks.lm_step import _Worker, _load, not_comparable_because, torch_python
    from sft_tilt.lm.config import ModelConfig

    for name, value in (("batch", batch), ("seq", seq), ("reps", reps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive int, got {value!r}")
    cpus = sorted(os.sched_getaffinity(0))
    threads = threads or len(cpus)
    if not 1 <= threads <= len(cpus):
        raise ValueError(f"threads: must be between 1 and {len(cpus)}, got {threads}")
    cpus = cpus[:threads]
    config = ModelConfig.smollm2_135m()
    products = step_products(config, batch * seq)
    thread_vars = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    logs = Path(tempfile.mkdtemp(prefix="matmul_ceiling_"))
    workers = {"jax": _Worker("jax", [sys.executable, "-m", "sft_tilt.benchmarks.matmul_ceiling", "--worker"],
                              dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **thread_vars), cpus,
                              logs / "jax.log")}
    if use_native:
        from sft_tilt.lm.native_matmul import available

        reason = available()
        if reason is None:
            workers["jax-native"] = _Worker("jax-native", [sys.executable, "-m", "sft_tilt.benchmarks.matmul_ceiling", "--worker",
                                                           "--native"],
                                            dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **thread_vars),
                                            cpus, logs / "jax-native.log")
        else:
            print(f"jax-native left out: {reason}", file=sys.stderr)
    python = torch_python() if use_torch else None
    if python is not None:
        workers["torch"] = _Worker("torch", [python, str(TORCH_WORKER), str(threads)],
                                   dict(os.environ, PYTHONPATH="", **thread_vars), cpus, logs / "torch.log")
    loads = [_load()]
    seconds = {impl: [[] for _ in products] for impl in workers}
    for i, p in enumerate(products):
        inner = _inner_repeats(p["flops"])
        for w in workers.values():  # warm-up: compilation, first-touch of the operands
            w.request({"op": "time", "product": p, "inner": 1})
        for _ in range(reps):
            for impl, w in workers.items():
                time.sleep(pause)  # the previous turn's idle threads stop spinning (OpenMP, Eigen) before this one
                answer = w.request({"op": "time", "product": p, "inner": inner})
                if answer is None:
                    raise RuntimeError(f"the {impl} worker failed: {w.error}")
                seconds[impl][i].append(answer["seconds"])
        loads.append(_load())
    infos = {impl: w.info for impl, w in workers.items()}
    for w in workers.values():
        w.close()
    result = summarise(products, seconds)
    result.update(batch=batch, seq=seq, reps=reps, pause_s=pause, threads=threads, cpus=cpus, load_averages=loads, versions=infos,
                  not_comparable=not_comparable_because(loads, os.cpu_count() or threads, reps),
                  machine={"platform": platform.platform(), "processor": platform.processor(),
                           "cores": os.cpu_count()})
    return result


def report(result: dict) -> str:
    impls = [k for k in ("jax", "jax-native", "torch") if k in result["totals"]]
    lines = [f"matmul products of one training step, SmolLM2-135M, {result['batch']} x {result['seq']} rows, "
             f"{result['threads']} threads, medians of {result['reps']} interleaved turns; "
             f"load average {min(result['load_averages']):.2f}-{max(result['load_averages']):.2f}",
             "| product | kind | count | " + " | ".join(f"{i} ms | {i} GFLOP/s" for i in impls) + " |",
             "|---|---|---|" + "---|---|" * len(impls)]
    for row in result["products"]:
        cells = " | ".join(f"{row[i]['median_ms']:.2f} | {row[i]['gflops']:.0f}" for i in impls)
        lines.append(f"| {row['name']} {row['a']}x{row['b']} | {row['kind']} | {row['count']} | {cells} |")
    for impl in impls:
        t = result["totals"][impl]
        lines.append(f"{impl}: training-step matmuls {t['train_s']:.2f} s ({t['train_gflops']:.0f} GFLOP/s), "
                     f"evaluation matmuls {t['eval_s']:.2f} s ({t['eval_gflops']:.0f} GFLOP/s)")
    if "ceiling" in result:
        c = result["ceiling"]
        lines.append(f"ceiling of JAX/torch speed set by the matmuls: training {c['train']:.2f}x, "
                     f"evaluation {c['eval']:.2f}x")
    if "native_ceiling" in result:
        c = result["native_ceiling"]
        lines.append(f"the same with the native sgemm (jax-native): training {c['train']:.2f}x, "
                     f"evaluation {c['eval']:.2f}x")
    if result.get("not_comparable"):
        lines.append("NOT COMPARABLE: " + "; ".join(result["not_comparable"]))
    return "\n".join(lines)


def main(argv=None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-native", action="store_true", help="leave out jax-native (the FFI sgemm)")
    parser.add_argument("--native", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _jax_worker(args.native)
        return None
    result = run_benchmark(args.batch, args.seq, args.reps, args.threads, not args.no_torch, use_native=not args.no_native)
    print(report(result))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
