"""The torch worker of ``python -m sft_tilt.benchmarks.matmul_ceiling`` (run under ``.venv-ref``; imports nothing from sims).

    .venv-ref/bin/python tools/matmul_torch_worker.py THREADS

Answers ``{"op": "time", "product": {...}, "inner": n}`` lines on stdin with ``BENCH {"seconds": s}`` on stdout: the
mean time of ``n`` calls of ``torch.matmul`` on float32 operands of the product's stored shapes, each read through a
transposed view where the product says so (as autograd calls the BLAS for a linear layer's gradients).
"""

import json
import sys
import time

import numpy as np
import torch


def answer(obj):
    sys.stdout.write("BENCH " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    torch.set_num_threads(int(sys.argv[1]))
    operands = {}

    def run(p, inner):
        key = json.dumps(p, sort_keys=True)
        if key not in operands:
            rng = np.random.default_rng(0)
            a = torch.from_numpy(rng.standard_normal(p["a"], dtype=np.float32))
            b = torch.from_numpy(rng.standard_normal(p["b"], dtype=np.float32))
            operands[key] = (a.t() if p["transpose_a"] else a, b.t() if p["transpose_b"] else b)
        a, b = operands[key]
        with torch.no_grad():
            t0 = time.perf_counter()
            for _ in range(inner):
                torch.matmul(a, b)
            return (time.perf_counter() - t0) / inner

    answer({"ready": True, "torch": torch.__version__, "threads": torch.get_num_threads()})
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "time":
            answer({"seconds": run(request["product"], request["inner"])})
        elif request["op"] == "quit":
            answer({"bye": True})
            return


if __name__ == "__main__":
    main()
