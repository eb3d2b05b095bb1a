"""Experiment 3 (ci preset) and its shape fits."""

import numpy as np
import pytest

from record_names import misnamed_keys
from sft_tilt.synthetic.experiments import matched_gain as ex


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    import os

    old = os.environ.get("SFT_CACHE_DIR")
    os.environ["SFT_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    try:
        yield ex.run(ex.MatchedGainConfig.preset("ci"), progress=False)
    finally:
        if old is None:
            os.environ.pop("SFT_CACHE_DIR")
        else:
            os.environ["SFT_CACHE_DIR"] = old


def test_every_cell_reaches_the_matched_gain(result):
    assert misnamed_keys(result) == []  # one name per quantity in the record
    assert result["reached"].all()
    np.testing.assert_allclose(result["matched_domain_gain"], np.broadcast_to(result["target_gain"][:, None], result["matched_domain_gain"].shape), atol=1e-9)
    assert np.all(result["domain_gain"] >= result["target_gain"][:, None])
    # the online constants telescope to the measured end-point changes
    np.testing.assert_allclose(result["c_total_domain_gain"], result["domain_gain"], rtol=1e-9)
    np.testing.assert_allclose(result["c_total_general_change"], result["general_change"], rtol=1e-9, atol=1e-15)


def test_fixed_direction_general_change_is_step_size_independent(result):
    fx = result["fixed_matched_general_change"]
    np.testing.assert_allclose(fx, np.broadcast_to(fx[:, :1], fx.shape), rtol=1e-9)


def test_theory_bound_holds_on_every_ci_trajectory(result):
    assert result["bound_holds"].all() and result["bound_growing_holds"].all()
    assert np.all(result["general_change"] <= result["bound_constant_gain_rate"])
    assert np.all(result["general_change"] <= result["bound_growing_leakage"])


def test_config_validation():
    for kwargs, name in [(dict(learning_rates=(1.0,)), "learning_rates"), (dict(target_fractions=(0.5, 1.5)), "target_fractions"), (dict(n_slope=1), "n_slope")]:
        with pytest.raises(ValueError, match=name):
            ex.MatchedGainConfig(**kwargs)
