"""Test configuration: float64 JAX (set before any test imports JAX) and hypothesis profiles."""

import os
import shutil
import sys
import tempfile

# the shared helpers (tiny_harness, random_instances) live beside this file; the tests live in subfolders that
# mirror the package's subpackages
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

# One XLA compilation cache per test session, shared by the xdist workers (which inherit the controller's
# environment) and the subprocesses tests start: many tests compile the same programs (the tiny model's steps, the
# real model's forward at the same shapes). A fresh folder each session, so nothing compiled by other code is read.
_COMPILE_CACHE_PREFIX = os.path.join(tempfile.gettempdir(), "sft-test-xla-")
if "PYTEST_XDIST_WORKER" not in os.environ and "SFT_TEST_COMPILE_CACHE" not in os.environ:
    os.environ["SFT_TEST_COMPILE_CACHE"] = tempfile.mkdtemp(prefix=os.path.basename(_COMPILE_CACHE_PREFIX))
    os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ["SFT_TEST_COMPILE_CACHE"]
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"

# Under pytest-xdist each worker is a process of its own, and XLA's CPU thread pool takes every core by default, so
# two workers on two cores would run four busy threads. Each worker gets its share of the cores instead, set as the
# sweep's workers set theirs (XLA's pool and the BLAS/OpenMP thread counts); subprocesses that set their own
# XLA_FLAGS keep XLA's default pool.
if "PYTEST_XDIST_WORKER" in os.environ:
    from sft_tilt.harness.sweep_workers import available_cpus, worker_environment

    _share = max(1, len(available_cpus()) // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))))
    os.environ.update(worker_environment(os.environ, _share))

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

# JIT compilation makes first examples slow; deadlines would flake on a loaded 2-core machine.
settings.register_profile("ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # in the default suite, unlike "slow": the committed real-LM results are checked on every test run
    config.addinivalue_line("markers", "real_model: reads or runs the real model (SmolLM2); part of the default suite")
    # `make test` runs the suite in two passes: these tests at XLA's default optimisation, then the rest with
    # XLA_FLAGS=--xla_backend_optimization_level=0. Most tests spend their time compiling small programs (the tiny
    # model, synthetic kernels), which that flag makes about 30% faster; a test that runs large compiled programs
    # (the real model, long synthetic sweeps) would be slower without LLVM's optimisations, so it carries this mark.
    # Measured on the 2-core machine, whole suite at each setting: the unmarked tests' durations summed to 210 s
    # less, the marked ones' to 120 s more. Both settings compute the same IEEE arithmetic (XLA uses no fast-math
    # here); every test passes under both.
    config.addinivalue_line("markers", "execution_bound: runs large compiled programs; `make test` runs it at XLA's "
                                       "default optimisation, the rest of the suite without backend optimisation")


def pytest_unconfigure(config):
    folder = os.environ.get("SFT_TEST_COMPILE_CACHE", "")
    if not hasattr(config, "workerinput") and folder.startswith(_COMPILE_CACHE_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)  # the controller made this session's compilation cache


@pytest.fixture
def fixed_method_table(monkeypatch):
    """``render_paper_checks`` without running the synthetic methods sweep (about 50 s when nothing is cached): the
    method-against-SFT section is drawn from a fixed two-row table. Tests about the rest of the report use it; the
    section's own rendering and readings are tested on their own."""
    import numpy as np

    from sft_tilt.analysis.intervals import paired_interval

    table = {"target_gain": 0.3, "learning_rates": [3.0, 30.0], "n_seeds": 3,
             "rows": {"TALR (mean 1)": [paired_interval(np.array([-0.01, -0.012, -0.011])), None],
                      "DFT (mean 1)": [paired_interval(np.array([0.01, -0.02, 0.0])),
                                       paired_interval(np.array([0.02, 0.025, 0.022]))]},
             "variants": {"TALR (mean 1)": "talr, weights mean one", "DFT (mean 1)": "dft, weights mean one"}}
    monkeypatch.setattr("sft_tilt.claims.method_comparison_table.measure", lambda: table)
    return table
