"""Several sweep workers on one machine, each pinned to its own CPUs.

    python -m sft_tilt.harness sweep --preset cpu --cheapest-first --workers 2 --quiet

Why: the harness's runs are small (a training batch of 2 sequences), and XLA's CPU thread pool speeds one such step
up by far less than its thread count, so N one-thread runs side by side finish more training steps per hour than one
run with N threads (the measurements are on the documentation's performance page). The thread count does not change
the numbers: the losses of six steps and the scores were bit for bit equal.

Protocol. The parent clears the claims folder (``<runs folder>/.claims``), then starts ``N`` workers: the same
command with ``--worker-index i`` added, each pinned to one of ``N`` disjoint groups of the CPUs this process may use
(``os.sched_setaffinity``) and with XLA's thread pool sized to its group (``XLA_FLAGS``). Every worker walks the same
ordered list of runs and computes a run only after creating its claim file (``O_CREAT | O_EXCL``: exactly one worker
succeeds), so no run is computed twice and a fast worker takes over the runs a slow one has not reached. A finished run
is only read. A worker that dies leaves its claim and its checkpoints: the other workers skip that run, the parent
reports the failure, and the next sweep clears the claims and resumes the run from its last checkpoint. Stop every
worker with the parent (``pkill -f "sft_tilt.harness sweep"`` stops them all at once).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = ["CLAIMS_FOLDER", "available_cpus", "cpu_groups", "worker_environment", "claims_folder", "clear_claims", "claim", "release",
           "run_claimed", "launch_workers", "harness_command"]

#: Name of the claims folder inside the run folder (a dot folder: never a run key).
CLAIMS_FOLDER = ".claims"


def _check_workers(n_workers) -> int:
    if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
        raise ValueError(f"workers: must be a positive int, got {n_workers!r}")
    return n_workers


def available_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity mask where the platform has one)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_groups(n_workers: int, cpus: Sequence[int] | None = None) -> list[tuple[int, ...]]:
    """``n_workers`` disjoint, contiguous groups covering ``cpus`` (default: :func:`available_cpus`), sizes differing by
    at most one (the first groups get the extra CPUs)."""
    n_workers = _check_workers(n_workers)
    cpus = available_cpus() if cpus is None else [int(c) for c in cpus]
    if len(set(cpus)) != len(cpus):
        raise ValueError(f"cpus: lists a CPU twice: {cpus}")
    if n_workers > len(cpus):
        raise ValueError(f"workers: {n_workers} workers need at least {n_workers} CPUs, this process may use "
                         f"{len(cpus)} ({cpus})")
    size, extra = divmod(len(cpus), n_workers)
    groups, start = [], 0
    for i in range(n_workers):
        end = start + size + (1 if i < extra else 0)
        groups.append(tuple(cpus[start:end]))
        start = end
    return groups


def worker_environment(environ: dict[str, str], n_threads: int) -> dict[str, str]:
    """A copy of ``environ`` whose ``XLA_FLAGS`` (kept, with these appended) size XLA's CPU thread pool to
    ``n_threads``, and whose BLAS/OpenMP thread counts match."""
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"n_threads: must be a positive int, got {n_threads!r}")
    env = dict(environ)
    multi = "true" if n_threads > 1 else "false"
    flags = f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={n_threads}"
    env["XLA_FLAGS"] = f"{env['XLA_FLAGS']} {flags}" if env.get("XLA_FLAGS", "").strip() else flags
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(n_threads)
    return env


def claims_folder(runs_root: Path | None = None) -> Path:
    """``<runs folder>/.claims`` (default runs folder: :func:`sft_tilt.harness.runs.runs_dir`)."""
    if runs_root is None:
        from sft_tilt.harness.runs import runs_dir

        runs_root = runs_dir()
    return Path(runs_root) / CLAIMS_FOLDER


def clear_claims(folder: Path) -> None:
    """Remove every claim file of ``folder`` (the parent does this before starting workers: a claim left by a worker
    that died must not keep its run from being resumed)."""
    folder = Path(folder)
    if folder.is_dir():
        for path in folder.glob("*.claim"):
            path.unlink(missing_ok=True)


def claim(folder: Path, key: str) -> bool:
    """Create ``folder/<key>.claim`` holding this process's id; False when it exists (another worker has the run)."""
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"key: not a run key: {key!r}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(folder / f"{key}.claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{os.getpid()}\n")
    return True


def release(folder: Path, key: str) -> None:
    """Remove ``folder/<key>.claim``."""
    (Path(folder) / f"{key}.claim").unlink(missing_ok=True)


def run_claimed(items: Sequence, key: Callable[[object], str], run: Callable[[object], object], folder: Path) -> list[str]:
    """Walk ``items`` in order and ``run`` each one whose claim this process gets; the keys it ran, in order.

    The claim is released after the run (whether it finished or raised), so a run that raised is tried again by the
    next sweep; the exception propagates and ends the worker."""
    done = []
    for item in items:
        k = key(item)
        if not claim(folder, k):
            continue
        try:
            run(item)
        finally:
            release(folder, k)
        done.append(k)
    return done


def launch_workers(command: Sequence[str], n_workers: int, *, cpus: Sequence[int] | None = None,
                   environ: dict[str, str] | None = None) -> list[int]:
    """Start ``n_workers`` processes ``command + ["--worker-index", str(i)]``, each pinned to its group of
    :func:`cpu_groups` with the thread counts of :func:`worker_environment`; wait for all and return their exit codes.

    Interrupted (Ctrl-C), the parent terminates the workers before re-raising."""
    groups = cpu_groups(n_workers, cpus)
    environ = dict(os.environ if environ is None else environ)
    procs = []
    try:
        for i, group in enumerate(groups):
            pin = (lambda g: (lambda: os.sched_setaffinity(0, g)))(group) if hasattr(os, "sched_setaffinity") else None
            procs.append(subprocess.Popen([*command, "--worker-index", str(i)],
                                          env=worker_environment(environ, len(group)), preexec_fn=pin))
        return [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        raise


def harness_command(argv: Sequence[str]) -> list[str]:
    """The command line of a worker: this interpreter running ``python -m sft_tilt.harness`` with ``argv``."""
    return [sys.executable, "-m", "sft_tilt.harness", *argv]
