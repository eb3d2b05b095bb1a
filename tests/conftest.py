"""Test configuration: float64 JAX (set before any test imports JAX) and hypothesis profiles."""

import os

os.environ.setdefault("JAX_ENABLE_X64", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings  # noqa: E402

# JIT compilation makes first examples slow; deadlines would flake on a loaded 2-core machine.
settings.register_profile("ci", deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    # in the default suite, unlike "slow": the committed real-LM results are checked on every test run
    config.addinivalue_line("markers", "real_model: reads or runs the real model (SmolLM2); part of the default suite")
