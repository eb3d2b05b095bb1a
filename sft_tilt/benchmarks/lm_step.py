"""Benchmark (a script, not a test): SmolLM2-135M training and evaluation throughput, JAX vs transformers + torch.

    python -m sft_tilt.benchmarks.lm_step [--batch 8] [--seq 128] [--reps 5] [--threads N] [--no-torch]
                            [--out runs/bench_lm.json] [--markdown runs/bench_lm.md]

Workload ``plain``: random tokens ``[batch, seq]``, loss on every token; an evaluation forward (per-token
log-probs) and a training step (Adam, learning rate 1e-5, no weight decay, no clipping: the harness's SFT step,
``sft_tilt.harness.methods.make_train_step``, the one trainer of the toolkit). The harness's workload (chat-formatted
fine-tuning examples, loss on response tokens only) is added by ``python -m sft_tilt.benchmarks.harness_step``, which
runs both.

Implementations, each in its own worker process (so peak memory, ``VmHWM``, is per implementation):

* ``jax``: the harness's SFT step without a capacity (``per_token_losses``: logits ``[B, T, V]`` at every position);
* ``jax-fast``: the harness's SFT step as a run takes it, with a capacity (``sft_tilt.lm.supervised_loss``: the output
  head only at target positions, chunked);
* ``torch``: ``transformers`` + CPU torch loading the same GGUF file, logits at every position and
  ``labels = -100`` off the loss mask (what a Trainer / SFT step computes), in ``.venv-ref/``
  (``tools/bench_torch_worker.py``); left out, with a message, when that environment is absent.

Method: all workers load the model and the same batch (one ``.npz``) and wait. For each phase (eval, train) every
worker runs two warm-up steps (compilation), then the parent asks them in turn for one timed step,
``A B C A B C ...``, ``--reps`` rounds (at least 5 for a figure worth recording), so a change in machine load
hits every implementation alike; only one worker computes at a time, after a pause of ``TURN_PAUSE_S`` (a worker's
idle threads spin for a while after its turn and would slow the next one). Every worker is pinned to the same
``--threads`` CPUs (``sched_setaffinity``, which sizes XLA's and Eigen's thread pools) and torch uses that many
threads (``torch.set_num_threads``, ``OMP_NUM_THREADS``). The 1-minute load average is recorded before and after
every timed step; the result is marked *not comparable* when any reading exceeds the machine's core count by more
than half a core (the benchmark's own threads account for about the core count: :func:`not_comparable_because`).
Reported: median and min-max tokens/s (``batch * seq`` tokens per step), peak RSS per worker, and the largest
absolute difference of the per-token losses between implementations (before training).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["OTHER_LOAD_ALLOWANCE", "Workload", "plain_workload", "run_benchmark", "not_comparable_because", "markdown_table",
           "main"]

ROOT = Path(__file__).resolve().parents[2]
TORCH_WORKER = ROOT / "tools" / "bench_torch_worker.py"
IMPLEMENTATIONS = ("jax", "jax-fast", "torch")
PHASES = ("eval", "train")
LOSS_AGREEMENT = 1e-4  # nats/token: per-token losses of two implementations must agree to this
TURN_PAUSE_S = 0.3  # before each timed step: the previous worker's idle threads (OpenMP, Eigen) stop spinning


@dataclass(frozen=True)
class Workload:
    """One batch every implementation runs: ``tokens`` int32 [B, T], ``loss_mask`` float32 [B, T] (token t is a
    target where nonzero), ``attention_mask`` int32 [B, T] (1 on real tokens; right padding only)."""

    name: str
    description: str
    tokens: np.ndarray
    loss_mask: np.ndarray
    attention_mask: np.ndarray
    phases: tuple[str, ...] = PHASES
    implementations: tuple[str, ...] = IMPLEMENTATIONS
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.tokens.ndim != 2 or self.tokens.shape[1] < 2:
            raise ValueError(f"tokens: must have shape [B, T >= 2], got {self.tokens.shape}")
        for name in ("loss_mask", "attention_mask"):
            if getattr(self, name).shape != self.tokens.shape:
                raise ValueError(f"{name}: must have shape {self.tokens.shape}, got {getattr(self, name).shape}")
        unknown = [p for p in self.phases if p not in PHASES]
        if unknown or not self.phases:
            raise ValueError(f"phases: must be a non-empty subset of {PHASES}, got {self.phases}")
        unknown = [i for i in self.implementations if i not in IMPLEMENTATIONS]
        if unknown or not self.implementations:
            raise ValueError(f"implementations: must be a non-empty subset of {IMPLEMENTATIONS}, got {self.implementations}")

    @property
    def tokens_per_step(self) -> int:
        return int(self.tokens.size)

    @property
    def n_targets(self) -> int:
        return int(np.count_nonzero(self.loss_mask[:, 1:]))


def plain_workload(vocab_size: int, batch: int = 8, seq: int = 128, seed: int = 0) -> Workload:
    """Random tokens ``[batch, seq]`` (uniform over the vocabulary), every token a target."""
    for name, value in (("batch", batch), ("seq", seq)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: must be a positive int, got {value!r}")
    if seq < 2:
        raise ValueError(f"seq: must be >= 2, got {seq}")
    tokens = np.random.default_rng(seed).integers(0, vocab_size, (batch, seq)).astype(np.int32)
    ones = np.ones((batch, seq), np.float32)
    return Workload("plain", f"random tokens, batch {batch} x {seq}, loss on every token", tokens, ones,
                    ones.astype(np.int32))


# ---------------------------------------------------------------------------------------------------------------
# Workers: one process per implementation, a line protocol on stdin/stdout ("BENCH {json}" answers)
# ---------------------------------------------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB: ``VmHWM`` of /proc/self/status where it exists, else
    ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (which Linux carries across ``exec``, so a child started from a
    large process would report at least the parent's size)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _jax_worker(implementation: str, model_path: str, batch_file: str) -> None:
    """Serve ``losses`` / ``warmup`` / ``time`` / ``rss`` / ``quit`` requests for ``jax`` or ``jax-fast``."""
    import jax
    import jax.numpy as jnp

    from sft_tilt.harness.methods import MethodConfig, init_trainable, make_train_step
    from sft_tilt.lm.gguf_io import load_gguf
    from sft_tilt.lm.model import per_token_losses
    from sft_tilt.lm.supervised_loss import supervised_capacity, supervised_token_losses

    with np.load(batch_file, allow_pickle=False) as data:
        tokens, loss_mask = jnp.asarray(data["tokens"]), jnp.asarray(data["loss_mask"])
    config, params = load_gguf(model_path)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)
    if implementation == "jax":
        capacity = None
        losses_fn = jax.jit(lambda p, t, m: per_token_losses(p, config, t, m))
    else:
        capacity = supervised_capacity(np.asarray(loss_mask))
        losses_fn = jax.jit(lambda p, t, m: supervised_token_losses(p, config, t, m, capacity))
    sft = MethodConfig("sft")
    step = make_train_step(sft, config, "adam", None, capacity)  # the harness's step: it donates its state buffers
    trainable, frozen = init_trainable(sft, params, jax.random.key(0))
    opt_state = step.optimizer.init(trainable)
    opt_state.hyperparams["learning_rate"] = jnp.asarray(1e-5, jnp.float32)
    state = {"params": trainable, "opt": opt_state}
    batch = {"tokens": tokens, "loss_mask": loss_mask}

    def run(phase):
        if phase == "eval":
            jax.block_until_ready(losses_fn(state["params"], tokens, loss_mask))
        else:
            state["params"], state["opt"], loss, _ = step(state["params"], state["opt"], frozen, batch)
            jax.block_until_ready(loss)

    def losses():
        return np.asarray(losses_fn(state["params"], tokens, loss_mask), np.float64).tolist()

    _serve(run, losses, {"jax": jax.__version__, "threads": len(os.sched_getaffinity(0)),
                         "n_params": config.n_params()})


def _serve(run, losses, info: dict) -> None:
    """The worker loop shared by the JAX workers (``tools/bench_torch_worker.py`` has its own copy)."""

    def answer(obj):
        sys.stdout.write("BENCH " + json.dumps(obj) + "\n")
        sys.stdout.flush()

    answer({"ready": True, **info})
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "losses":
            answer({"losses": losses()})
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


class _Worker:
    """A worker process and its line protocol; errors are kept, not raised, so one failing implementation does
    not stop the others."""

    def __init__(self, implementation: str, command: list[str], env: dict, cpus: list[int], log: Path):
        self.implementation = implementation
        self.log = log
        self.error: str | None = None
        self.info: dict = {}

        def pin():
            os.sched_setaffinity(0, cpus)

        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log, "w"),
                                     text=True, env=env, cwd=ROOT, preexec_fn=pin)
        self.info = self.request(None) or {}

    def request(self, obj: dict | None) -> dict | None:
        if self.error is not None:
            return None
        try:
            if obj is not None:
                self.proc.stdin.write(json.dumps(obj) + "\n")
                self.proc.stdin.flush()
            for line in self.proc.stdout:
                if line.startswith("BENCH "):
                    return json.loads(line[6:])
            raise RuntimeError("the worker exited")
        except (OSError, RuntimeError, ValueError) as exc:
            self.proc.wait(timeout=60)
            tail = self.log.read_text(errors="replace")[-1500:] if self.log.exists() else ""
            self.error = f"{exc} (exit code {self.proc.returncode}): {tail}"
            return None

    def close(self) -> None:
        if self.error is None:
            self.request({"op": "quit"})
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def torch_python() -> str | None:
    """The reference environment's interpreter (``.venv-ref/bin/python``), or None when it is absent."""
    candidate = ROOT / ".venv-ref" / "bin" / "python"
    return str(candidate) if candidate.exists() else None


def _start(implementation: str, model_path: str, batch_file: Path, threads: int, cpus: list[int], log: Path):
    thread_vars = {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    if implementation == "torch":
        python = torch_python()
        if python is None:
            return None
        env = dict(os.environ, PYTHONPATH="", **thread_vars)
        command = [python, str(TORCH_WORKER), model_path, str(batch_file), str(threads)]
    else:
        env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **thread_vars)
        env.pop("JAX_ENABLE_X64", None)  # float32, as the harness trains
        command = [sys.executable, "-m", "sft_tilt.benchmarks.lm_step", "--worker", implementation, "--model", model_path,
                   "--batch-file", str(batch_file)]
    return _Worker(implementation, command, env, cpus, log)


# ---------------------------------------------------------------------------------------------------------------
# The interleaved benchmark
# ---------------------------------------------------------------------------------------------------------------


def _load() -> float:
    return os.getloadavg()[0]


def _summary(seconds: list[float], tokens: int) -> dict:
    rates = [tokens / s for s in seconds]
    return {"tokens_per_s_median": statistics.median(rates), "tokens_per_s_min": min(rates),
            "tokens_per_s_max": max(rates), "seconds": seconds}


def run_workload(workload: Workload, model_path: str, reps: int, threads: int, use_torch: bool,
                 progress=print) -> dict:
    """Run one workload interleaved over its implementations (module docstring); returns its JSON record."""
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    impls = [i for i in workload.implementations if use_torch or i != "torch"]
    record: dict = {"workload": workload.name, "description": workload.description, "batch": list(workload.tokens.shape),
                    "tokens_per_step": workload.tokens_per_step, "targets_per_step": workload.n_targets,
                    "notes": workload.notes, "implementations": {}, "loads": []}
    with tempfile.TemporaryDirectory(prefix="bench_lm_") as tmp:
        batch_file = Path(tmp) / "batch.npz"
        np.savez(batch_file, tokens=workload.tokens, loss_mask=workload.loss_mask,
                 attention_mask=workload.attention_mask)
        workers = {}
        for impl in impls:  # started one after the other: each loads while the others wait
            progress(f"[{workload.name}] starting {impl}")
            worker = _start(impl, model_path, batch_file, threads, cpus, Path(tmp) / f"{impl}.log")
            if worker is None:
                record["implementations"][impl] = {"error": "not available: no .venv-ref/ (make reference-env)"}
                continue
            workers[impl] = worker
        try:
            losses = {impl: w.request({"op": "losses"}) for impl, w in workers.items()}
            losses = {impl: np.asarray(v["losses"]) for impl, v in losses.items() if v is not None}
            mask = workload.loss_mask[:, 1:] != 0
            record["loss_max_abs_diff"] = {
                f"{a} vs {b}": float(np.max(np.abs(losses[a] - losses[b])[mask]))
                for i, a in enumerate(sorted(losses)) for b in sorted(losses)[i + 1:]}
            times: dict = {impl: {phase: [] for phase in workload.phases} for impl in workers}
            for phase in workload.phases:
                for impl, w in workers.items():
                    progress(f"[{workload.name}] {phase}: warming up {impl}")
                    w.request({"op": "warmup", "phase": phase, "n": 2})
                for rep in range(reps):
                    for impl, w in workers.items():  # A B C A B C ...
                        time.sleep(TURN_PAUSE_S)
                        before = _load()
                        answer = w.request({"op": "time", "phase": phase})
                        after = _load()
                        record["loads"].append({"phase": phase, "rep": rep, "implementation": impl,
                                                "before": before, "after": after})
                        if answer is not None:
                            times[impl][phase].append(answer["seconds"])
                    progress(f"[{workload.name}] {phase}: round {rep + 1}/{reps}, load {_load():.2f}")
            for impl, w in workers.items():
                rss = w.request({"op": "rss"})
                entry = {"info": w.info}
                if w.error is not None:
                    entry["error"] = w.error
                else:
                    entry["peak_rss_mb"] = rss["peak_rss_mb"]
                    entry.update({phase: _summary(times[impl][phase], workload.tokens_per_step)
                                  for phase in workload.phases})
                record["implementations"][impl] = entry
        finally:
            for w in workers.values():
                w.close()
    return record


def run_benchmark(workloads: list[Workload], model_path: str | None = None, reps: int = 5, threads: int | None = None,
                  use_torch: bool = True, progress=print) -> dict:
    """Every workload, interleaved; the record says whether the machine was quiet enough to compare."""
    from sft_tilt.lm.gguf_io import default_model_path

    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps: must be a positive int, got {reps!r}")
    available = len(os.sched_getaffinity(0))
    threads = available if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= available:
        raise ValueError(f"threads: must be an int in [1, {available}] (the CPUs this process may use), got {threads!r}")
    model_path = str(default_model_path() if model_path is None else model_path)
    cores = os.cpu_count() or available
    result = {"machine": platform.platform(), "cpu_count": cores, "threads": threads, "reps": reps,
              "model": Path(model_path).name, "load_average_start": _load(),
              "torch_environment": torch_python() is not None, "workloads": []}
    for workload in workloads:
        result["workloads"].append(run_workload(workload, model_path, reps, threads, use_torch, progress))
    result["load_average_end"] = _load()
    readings = [result["load_average_start"], result["load_average_end"]] + [
        x for w in result["workloads"] for entry in w["loads"] for x in (entry["before"], entry["after"])]
    result["load_average_max"] = max(readings)
    result["not_comparable_because"] = not_comparable_because(readings, cores, reps)
    result["comparable"] = not result["not_comparable_because"]
    return result


#: Load (in cores) that other processes may add before a run stops being comparable.
OTHER_LOAD_ALLOWANCE = 0.5


def not_comparable_because(load_averages, cores: int, reps: int) -> list[str]:
    """Why a run's figures may not be compared (empty when they may): a 1-minute load average reading above the
    machine's core count plus OTHER_LOAD_ALLOWANCE, or fewer than 5 timed repetitions.

    The benchmark itself keeps up to ``cores`` threads busy (one implementation steps at a time, with as many
    threads as cores), so on an otherwise idle machine its own load average sits at about the core count; other
    work competing for the CPUs shows as readings above that."""
    reasons = []
    peak = max(load_averages)
    if peak > cores + OTHER_LOAD_ALLOWANCE:
        reasons.append(f"the 1-minute load average reached {peak:.2f} > {cores} cores + {OTHER_LOAD_ALLOWANCE} "
                       f"(other work competed for the CPUs)")
    if reps < 5:
        reasons.append(f"only {reps} timed repetitions (< 5)")
    return reasons


def markdown_table(result: dict) -> str:
    """The README table: one row per workload, phase and implementation, and the run's conditions."""
    lines = []
    if not result["comparable"]:
        lines.append(f"**NOT COMPARABLE: {'; '.join(result['not_comparable_because'])}.**\n")
    lines.append(f"`python -m sft_tilt.benchmarks.lm_step` / `python -m sft_tilt.benchmarks.harness_step`, interleaved, {result['reps']} timed "
                 f"steps each after 2 warm-up steps, {result['threads']} threads each on a {result['cpu_count']}-core "
                 f"machine; 1-minute load average {result['load_average_start']:.2f} at start, at most "
                 f"{result['load_average_max']:.2f}, {result['load_average_end']:.2f} at end.\n")
    lines.append("| workload | phase | implementation | tokens/s (median) | min-max | vs torch | peak RSS |")
    lines.append("|---|---|---|---|---|---|---|")
    for w in result["workloads"]:
        torch = w["implementations"].get("torch", {})
        for phase in PHASES:
            for impl, entry in w["implementations"].items():
                if "error" in entry or phase not in entry:
                    if "error" in entry and phase == PHASES[0]:
                        lines.append(f"| {w['workload']} | | {impl} | {entry['error'][:80]} | | | |")
                    continue
                s = entry[phase]
                ratio = ""
                if phase in torch:
                    ratio = f"{s['tokens_per_s_median'] / torch[phase]['tokens_per_s_median']:.2f}x"
                lines.append(f"| {w['workload']} | {phase} | {impl} | {s['tokens_per_s_median']:.0f} | "
                             f"{s['tokens_per_s_min']:.0f}-{s['tokens_per_s_max']:.0f} | {ratio} | "
                             f"{entry['peak_rss_mb'] / 1024:.2f} GB |")
    lines.append("")
    for w in result["workloads"]:
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in w.get("loss_max_abs_diff", {}).items())
        lines.append(f"- {w['workload']}: {w['description']}; {w['tokens_per_step']} tokens per step, "
                     f"{w['targets_per_step']} of them targets. Per-token losses, max abs difference: {diffs or 'n/a'}.")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description or __doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--reps", type=int, default=5, help="timed steps per implementation and phase (>= 5 to record)")
    parser.add_argument("--threads", type=int, default=None, help="threads per implementation (default: all CPUs)")
    parser.add_argument("--model", default=None, help="GGUF file (default: the packaged SmolLM2-135M-Instruct)")
    parser.add_argument("--no-torch", action="store_true", help="skip the transformers + torch reference")
    parser.add_argument("--out", default=str(ROOT / "runs" / "bench_lm.json"))
    parser.add_argument("--markdown", default=None, help="the table's file (default: --out with .md)")
    parser.add_argument("--worker", choices=("jax", "jax-fast"), help=argparse.SUPPRESS)
    parser.add_argument("--batch-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        for name in ("batch", "seq", "reps"):
            if getattr(args, name) < 1:
                parser.error(f"--{name} must be positive")
        if args.seq < 2:
            parser.error("--seq must be at least 2")
        available = len(os.sched_getaffinity(0))
        if args.threads is not None and not 1 <= args.threads <= available:
            parser.error(f"--threads must lie in [1, {available}]")
    return args


def report(result: dict, args: argparse.Namespace) -> None:
    """Write the JSON and markdown files and print the table and the loss agreement check."""
    out = Path(args.out)
    markdown = Path(args.markdown) if args.markdown else out.with_suffix(".md")
    _write(out, json.dumps(result, indent=2) + "\n")
    table = markdown_table(result)
    _write(markdown, table)
    print(table)
    for w in result["workloads"]:
        for pair, diff in w.get("loss_max_abs_diff", {}).items():
            verdict = "agree" if diff <= LOSS_AGREEMENT else f"DISAGREE (> {LOSS_AGREEMENT:g})"
            print(f"{w['workload']}: per-token losses {pair}: max abs diff {diff:.2e} nats, {verdict}")
    if not result["torch_environment"] and not args.no_torch:
        print("torch: not benchmarked, no .venv-ref/ (run `make reference-env`); JAX alone was measured")
    print(f"threads per implementation: {result['threads']} (CPUs 0-{result['threads'] - 1} of this process's "
          f"affinity; torch.set_num_threads, OMP_NUM_THREADS; XLA sizes its pool from the affinity)")
    print("comparable: " + ("yes" if result["comparable"] else "NO, " + "; ".join(result["not_comparable_because"])))
    print(f"wrote {out} and {markdown}")


def main(argv=None, extra_workloads=()) -> dict:
    """Command line; ``extra_workloads(args) -> list[Workload]`` adds workloads (``sft_tilt.benchmarks.harness_step``)."""
    args = parse_args(argv)
    if args.worker is not None:
        from sft_tilt.lm.gguf_io import default_model_path

        _jax_worker(args.worker, str(args.model or default_model_path()), args.batch_file)
        return {}
    from sft_tilt.lm.gguf_io import default_model_path, gguf_metadata

    metadata = gguf_metadata(args.model or default_model_path())
    vocab_size = next((int(v) for k, v in metadata.items() if k.endswith(".vocab_size")), None)
    if vocab_size is None:  # some files only imply it by their token list
        from sft_tilt.lm.gguf_io import load_gguf

        vocab_size = load_gguf(args.model or default_model_path())[0].vocab_size
    workloads = [plain_workload(vocab_size, args.batch, args.seq)]
    for make in extra_workloads:
        workloads += make(args)
    result = run_benchmark(workloads, args.model, args.reps, args.threads, not args.no_torch)
    report(result, args)
    return result


if __name__ == "__main__":
    main()
