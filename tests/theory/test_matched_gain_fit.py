"""The matched-gain shape fit recovers known coefficients and tells the two shapes apart."""

import numpy as np
import pytest

from sft_tilt.theory import fit_matched_gain_shapes


def _grid():
    delta, lam = np.meshgrid([0.1, 0.2, 0.4], [1e-3, 3e-3, 1e-2, 3e-2], indexing="ij")
    return delta.ravel(), lam.ravel()


@pytest.mark.parametrize("p, name", [(1, "linear"), (2, "quadratic")])
def test_exact_data_of_one_shape_is_recovered_and_preferred(p, name):
    delta, lam = _grid()
    D = 0.3 * delta + 5.0 * delta**p * lam
    fit = fit_matched_gain_shapes(delta, lam, D)
    assert fit["better"] == name
    assert fit[name]["k1"] == pytest.approx(0.3, rel=1e-10)
    assert fit[name]["k2"] == pytest.approx(5.0, rel=1e-10)
    assert fit[name]["rss"] < 1e-25 and fit[name]["r2"] == pytest.approx(1.0)
    assert fit[name]["k2_free_intercepts"] == pytest.approx(5.0, rel=1e-9)
    other = "quadratic" if name == "linear" else "linear"
    assert fit[other]["rss"] > 1e-8


def test_residual_statistics_match_an_independent_least_squares():
    rng = np.random.default_rng(0)
    delta, lam = _grid()
    D = 0.2 * delta + 3 * delta * lam + 1e-3 * rng.standard_normal(delta.size)
    fit = fit_matched_gain_shapes(delta, lam, D)["linear"]
    # normal equations solved directly
    A = np.stack([delta, delta * lam], 1)
    coef = np.linalg.solve(A.T @ A, A.T @ D)
    res = D - A @ coef
    assert [fit["k1"], fit["k2"]] == pytest.approx(list(coef), rel=1e-8)
    assert fit["rmse"] == pytest.approx(np.sqrt(np.mean(res**2)), rel=1e-8)
    assert fit["r2"] == pytest.approx(1 - res @ res / np.sum((D - D.mean()) ** 2), rel=1e-8)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="target_gain"):
        fit_matched_gain_shapes([0.1, 0.2], [1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="degradation"):
        fit_matched_gain_shapes([0.1, 0.2, 0.3], [1, 2, 3], [0.1, np.nan, 0.2])
    with pytest.raises(ValueError, match="step_size"):
        fit_matched_gain_shapes([0.1, 0.2, 0.3], [1, 2], [0.1, 0.2, 0.3])
