"""Benchmark of the single-step checker: instances per second, jit + vmap versus plain NumPy, and the ratio to the
machine's memory-bandwidth bound. ``python -m sft_tilt.benchmarks.synthetic`` (a script, not a test).

For vocabulary sizes 256, 4096 and 65536 it times, on the same random instances (float64):

* ``full jax``: ``jax.jit(jax.vmap(sft_tilt.synthetic.experiments.single_step.check_instance))``: the fused battery of experiment 1
  (tilt, measured dL on P1 and P2, the single-step identity, trade-off identity, Jensen/Hoeffding/Bennett, leakage
  bounds, CE update-norm bounds);
* ``core``: the core of the battery (tilt by log-sum-exp, dL on P1 and P2, identity via the CGF,
  Jensen/Hoeffding/Bennett) written once (:func:`core_checks`) and run both as plain NumPy and as
  ``jax.jit`` of the same code on ``jax.numpy`` (equal work: the fair JAX-versus-NumPy comparison; the full battery
  does several times more arithmetic, e.g. series-evaluated tilt excesses in every theory function);
* the **bandwidth bound**: a checker must at least read its inputs ``q, P1, P2, s`` once, ``32 V`` bytes per
  instance; with the copy bandwidth ``B`` measured here (``np.copyto`` of a 256 MiB array, best of 5, counting
  read + write), the bound is ``B / (32 V)`` instances per second and the table reports ``achieved / bound``.

Timings are the best of ``repeats`` runs after a warm-up (compilation excluded).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("JAX_ENABLE_X64", "1")

import numpy as np  # noqa: E402

VOCABS = (256, 4096, 65536)


def measure_bandwidth(nbytes: int = 256 * 2**20, repeats: int = 5) -> float:
    """Copy bandwidth in bytes/second (read + write of an ``nbytes`` array), best of ``repeats``."""
    src = np.ones(nbytes // 8)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return 2 * nbytes / best


def core_checks(xp, q, p1, p2, s, learning_rate):
    """Core of the battery written once against an array module ``xp`` (``numpy`` or ``jax.numpy``), vectorised
    over the leading axis: tilt by log-sum-exp, dL on P1 and P2, the identity via the CGF, Jensen, Hoeffding,
    Bennett (independent of the theory package's code)."""
    learning_rate = learning_rate[:, None]
    logq = xp.log(q)
    z = logq + learning_rate * s
    m = z.max(-1, keepdims=True)
    log_z = m + xp.log(xp.exp(z - m).sum(-1, keepdims=True))
    logq_lam = z - log_z
    D = xp.sum(p1 * (logq - logq_lam), -1)
    G = -xp.sum(p2 * (logq - logq_lam), -1)
    mu = xp.sum(q * s, -1)
    ident = -learning_rate[:, 0] * xp.sum(p1 * s, -1) + log_z[:, 0]
    first = learning_rate[:, 0] * (mu - xp.sum(p1 * s, -1))
    d = s - mu[:, None]
    var = xp.sum(q * d * d, -1)
    x = learning_rate[:, 0] * d.max(-1)
    big = xp.abs(x) > 1e-8
    xs = xp.where(big, x, 1.0)
    h = xp.where(big, (xp.expm1(xs) - xs) / xs**2, 0.5)
    hoeff = first + learning_rate[:, 0] ** 2 * (s.max(-1) - s.min(-1)) ** 2 / 8
    benn = first + var * learning_rate[:, 0] ** 2 * h
    return {"D": D, "identity_error": xp.abs(D - ident), "tradeoff": D + G, "jensen": D - first, "hoeffding": hoeff - D, "bennett": benn - D}


def _best(fn, repeats):
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sft_tilt.benchmarks.synthetic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes-per-batch", type=int, default=64 * 2**20, help="input bytes per timed batch (default 64 MiB)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)

    import jax
    import jax.numpy as jnp

    from sft_tilt.theory import ensure_float64
    from sft_tilt.synthetic.experiments.single_step import check_instance
    from sft_tilt.synthetic.worlds import random_tilt_instances

    ensure_float64()
    bw = measure_bandwidth()
    checker = jax.jit(jax.vmap(check_instance))
    print(f"devices: {jax.devices()}  copy bandwidth: {bw / 1e9:.2f} GB/s (read + write)")
    from functools import partial

    core_jax = jax.jit(partial(core_checks, jnp))
    header = (f"{'vocab':>7} {'batch':>6} {'full jax':>10} {'core jax':>10} {'core numpy':>11} {'core jax/np':>11} "
              f"{'bound':>10} {'full/bound':>10} {'core jax/bound':>14} {'core np/bound':>13} {'|dD|':>8}")
    print("instances per second; bound = copy bandwidth / (32 V bytes read per instance)")
    print(header)
    print("-" * len(header))
    rows = []
    for V in VOCABS:
        n = max(1, args.bytes_per_batch // (32 * V))
        inst = random_tilt_instances(jax.random.key(V), n, V)
        arrays = [inst.q, inst.p1, inst.p2, inst.s, inst.learning_rate, inst.kind]
        jax.block_until_ready(checker(*arrays))  # compile + warm-up
        t_jax = _best(lambda: jax.block_until_ready(checker(*arrays)), args.repeats)
        np_arrays = [np.asarray(a) for a in arrays[:5]]
        with np.errstate(all="ignore"):
            ref = core_checks(np, *np_arrays)
        out = checker(*arrays)
        dD = float(np.max(np.abs(np.asarray(out["general_change"]) - ref["D"]) / (1 + np.abs(ref["D"]))))
        jax.block_until_ready(core_jax(*arrays[:5]))
        t_core = _best(lambda: jax.block_until_ready(core_jax(*arrays[:5])), args.repeats)
        with np.errstate(all="ignore"):
            t_np = _best(lambda: core_checks(np, *np_arrays), args.repeats)
        bound = bw / (32 * V)
        r = {"vocab": V, "batch": n, "full": n / t_jax, "core_jax": n / t_core, "core_numpy": n / t_np, "bound": bound, "max_rel_diff_D": dD}
        rows.append(r)
        print(f"{V:>7} {n:>6} {r['full']:>10.4g} {r['core_jax']:>10.4g} {r['core_numpy']:>11.4g} {r['core_jax'] / r['core_numpy']:>11.2f} "
              f"{bound:>10.4g} {r['full'] / bound:>10.3f} {r['core_jax'] / bound:>14.3f} {r['core_numpy'] / bound:>13.3f} {dD:>8.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
