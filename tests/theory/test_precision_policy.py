"""Float64 policy of theory (sft_tilt.theory._precision): checked in a fresh interpreter with JAX in float32 mode.

Each test runs a script in a subprocess whose environment has no JAX_ENABLE_X64, so JAX starts in its default
float32 mode. Before the policy, that mode gave "lam: must be finite" for lam = 1e300, "q_before: is zero where P
has mass" for q = 1e-40, and -1.0 for leakage(q, q, q, s). Expected values are closed forms computed here with
the math module.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PRELUDE = """
import json, sys
import jax, jax.numpy as jnp, numpy as np
import sft_tilt.theory
assert sft_tilt.theory.__file__.startswith(sys.argv[1]), sft_tilt.theory.__file__
out = {"x64_before": bool(jax.config.jax_enable_x64), "default_dtype": str(jnp.zeros(()).dtype),
       "lam_1e300_in_float32": float(jnp.asarray(1e300)), "q_1e40_is_zero_in_float32": bool(jnp.asarray(1e-40) == 0)}
def error(f):
    try:
        f()
    except Exception as exc:
        return [type(exc).__name__, str(exc)]
    return None
"""
EPILOGUE = """
out["x64_after"] = bool(jax.config.jax_enable_x64)
out["default_dtype_after"] = str(jnp.zeros(()).dtype)
print(json.dumps(out))
"""


def run_float32(body: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run(
        [sys.executable, "-c", PRELUDE + body + EPILOGUE, str(ROOT)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the faults' preconditions hold in the subprocess: float32 mode, 1e300 -> inf, 1e-40 -> 0
    assert out["x64_before"] is False and out["default_dtype"] == "float32"
    assert math.isinf(out["lam_1e300_in_float32"]) and out["q_1e40_is_zero_in_float32"]
    # ... and the caller's global setting is unchanged afterwards
    assert out["x64_after"] is False and out["default_dtype_after"] == "float32"
    return out


@pytest.fixture(scope="module")
def float32_results():
    return run_float32(
        """
V = sft_tilt.theory.tilt_excess([0.5, 0.5], [0.0, 1.0], 1e300)
out["V"] = [float(V), str(V.dtype)]
dL = sft_tilt.theory.code_length_change([0.5, 0.5], np.array([1e-40, 1.0 - 1e-40]), [0.5, 0.5])
out["dL"] = [float(dL), str(dL.dtype)]
q, s = [0.3, 0.7], [0.1, 2.0]
out["leak_qqq"] = error(lambda: sft_tilt.theory.leakage(q, q, q, s))
out["leak_P1_is_q"] = float(sft_tilt.theory.leakage(q, [0.2, 0.8], q, s))
out["leak_P2_is_q"] = float(sft_tilt.theory.leakage([0.2, 0.8], q, q, s))
# float32 arrays made by the caller are widened exactly, not computed in float32
small = sft_tilt.theory.tilt_excess(jnp.asarray([0.5, 0.5]), jnp.asarray([0.0, 1.0]), 1e-12)
out["V_small"] = [float(small), str(small.dtype)]
out["jit"] = error(lambda: jax.jit(sft_tilt.theory.tilt_excess)(jnp.asarray([0.5, 0.5]), jnp.asarray([0.0, 1.0]), 1.0))
out["jit_constants"] = error(lambda: jax.jit(lambda: sft_tilt.theory.tilt_excess([0.5, 0.5], [0.0, 1.0], 1.0))())
with jax.enable_x64(True):
    inside = jax.jit(sft_tilt.theory.tilt_excess)(jnp.asarray([0.5, 0.5]), jnp.asarray([0.0, 1.0]), 1.0)
out["jit_inside_context"] = [float(inside), str(inside.dtype)]
out["bad_input"] = error(lambda: sft_tilt.theory.tilt_excess([0.5, 0.5], [0.0, 1.0], -1.0))
# training-time TALR weights follow the input dtype and give the tau -> 0 limit
w = sft_tilt.theory.talr_weights(jnp.asarray([1.0, 1.0, 2.0]), 1e-320)
out["talr"] = [np.asarray(w).tolist(), str(w.dtype)]
"""
    )


def test_huge_step_is_computed_not_refused(float32_results):
    value, dtype = float32_results["V"]
    # V = log(cosh(lam/2)) = lam/2 - log 2 + log(1 + e^-lam) for s in {0, 1}, q uniform
    assert dtype == "float64"
    assert value == pytest.approx(1e300 / 2 - math.log(2.0), rel=1e-15)


def test_tiny_probability_is_not_flushed_to_zero(float32_results):
    value, dtype = float32_results["dL"]
    expected = 0.5 * math.log(1e-40 / 0.5) + 0.5 * math.log((1.0 - 1e-40) / 0.5)
    assert dtype == "float64"
    assert value == pytest.approx(expected, rel=1e-14)


def test_leakage_of_identical_distributions(float32_results):
    kind, message = float32_results["leak_qqq"]
    assert kind == "ValueError" and message.startswith("P2:")
    assert float32_results["leak_P1_is_q"] == 0.0  # E_q s - E_P1 s is exactly 0: not -1, not a rounding residual
    # P2 = q: no first-order gain; E_q s - E_P1 s = (0.3*0.1 + 0.7*2) - (0.2*0.1 + 0.8*2) < 0
    assert float32_results["leak_P2_is_q"] == -math.inf


def test_float32_arrays_are_widened(float32_results):
    value, dtype = float32_results["V_small"]
    lam = 1e-12  # V = log cosh(lam/2) = lam^2/8 - lam^4/192 + ...
    assert dtype == "float64" and value == pytest.approx(lam**2 / 8, rel=1e-12)


def test_traced_calls_refuse_with_a_clear_error(float32_results):
    for key in ("jit", "jit_constants"):
        kind, message = float32_results[key]
        assert kind == "RuntimeError" and message.startswith("tilt_excess:") and "JAX_ENABLE_X64=1" in message
    value, dtype = float32_results["jit_inside_context"]
    assert dtype == "float64" and value == pytest.approx(math.log(math.cosh(0.5)), rel=1e-14)
    kind, message = float32_results["bad_input"]
    assert kind == "ValueError" and message.startswith("lam:")


def test_talr_follows_the_input_dtype(float32_results):
    weights, dtype = float32_results["talr"]
    assert dtype == "float32" and weights == [0.5, 0.5, 0.0]
