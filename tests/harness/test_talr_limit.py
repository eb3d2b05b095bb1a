"""The control of TALR runs: as its temperature grows, TALR's weights ``max(p^(1/tau), floor)`` tend to 1 and the
run to SFT's. On the tiny model, TALR at a fixed ``tau = 1e6`` (the registry's ``tau_mode="fixed"``) follows the
SFT run at every evaluation point, cold and warm-started, while TALR at finite temperatures does not."""

from dataclasses import replace

import jax
import numpy as np
import pytest

from tiny_harness import tiny_harness_env

pytestmark = pytest.mark.skipif(not jax.config.jax_enable_x64, reason="conftest sets JAX_ENABLE_X64")

#: nats/token: how close the trajectories of TALR at a very large temperature and of SFT must be
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with tiny_harness_env(tmp_path_factory.mktemp("talr-limit")) as environment:
        yield environment


def _trajectory(result) -> np.ndarray:
    """Every evaluation point's held-out domain loss and general-set losses (nats/token), one row per point."""
    return np.array([[p["domain_loss"], *(p["general"][k] for k in sorted(p["general"]))] for p in result["points"]])


@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_talr_at_a_very_large_temperature_follows_sft(env, warm):
    from sft_tilt.harness import runs
    from sft_tilt.harness.experiment_runs import sft_config
    from sft_tilt.harness.run_config import WarmStart
    from sft_tilt.methods.registry import MethodConfig

    sft = replace(sft_config(env["preset"], 4e-3, "label", 0), steps=3, final_accuracy=False, averaging_alphas=(),
                  warm_start=WarmStart(learning_rate=4e-3, steps=3, fmt="label") if warm else None)
    trajectories = {m: _trajectory(runs.run_one(replace(sft, method=m), progress=False))
                    for m in (MethodConfig("sft"), MethodConfig("talr", tau_mode="fixed", tau=1e6),
                              MethodConfig("talr"), MethodConfig("talr", tau_mode="fixed", tau=0.5))}
    reference, limit, dynamic, fixed = trajectories.values()
    assert reference.shape[0] == 3 and reference.shape[1] >= 2  # every point, the domain and at least one general set
    np.testing.assert_allclose(limit, reference, rtol=0, atol=TOLERANCE)
    # finite temperatures reweight the tokens: their trajectories leave SFT's by more than the tolerance
    for finite in (dynamic, fixed):
        assert np.abs(finite - reference).max() > TOLERANCE
