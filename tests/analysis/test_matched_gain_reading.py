"""The one matched-gain interpolation, against numpy's linear interpolation and hand-built curves."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sft_tilt.analysis.matched_gain import (Crossing, first_crossing, from_base, gain_crossing, general_change_at_gain,
                                            matched_general_change, matched_targets)

_finite = st.floats(-1.0, 1.0, allow_nan=False)


@given(st.lists(st.floats(0.001, 1.0), min_size=1, max_size=12), st.lists(_finite, min_size=13, max_size=13),
       st.floats(0.0, 1.0))
def test_on_an_increasing_curve_it_is_numpys_linear_interpolation(steps, changes, fraction):
    """An increasing curve from the base model (G_0 = 0) crosses every target in (0, G_max] once: the matched value is
    ``np.interp`` there (an independent implementation of the same chord)."""
    gain = np.concatenate([[0.0], np.cumsum(steps)])
    change = np.asarray(changes[: gain.size])
    target = fraction * gain[-1]
    if target <= 0:
        return
    assert matched_general_change(gain, change, target) == pytest.approx(np.interp(target, gain, change), abs=1e-12)
    trajectory = [(10 * k, g, d) for k, (g, d) in enumerate(zip(gain, change))]
    value, before, after = gain_crossing(trajectory, target)
    assert value == pytest.approx(np.interp(target, gain, change), abs=1e-12)
    k = int(np.searchsorted(gain, target))  # first index with gain >= target
    assert (before, after) == (10 * (k - 1), 10 * k)
    assert from_base(trajectory, target) == (k == 1)


def test_letters_are_the_papers_domain_gain_then_general_change():
    """A trajectory point is (step, G, D): G the domain gain that is matched, D the general change that is read."""
    trajectory = [(0, 0.0, 0.0), (10, 0.2, 0.02), (20, 0.4, 0.06)]
    assert gain_crossing(trajectory, 0.3) == pytest.approx((0.04, 10, 20))
    assert general_change_at_gain(trajectory, 0.3) == pytest.approx(0.04)
    assert general_change_at_gain([(0, 0.0, 0.0), (1, -0.1, 0.02)], 0.05) is None  # the domain loss rose


def test_the_first_crossing_wins_on_a_curve_that_falls_back():
    gain = [0.0, 0.5, 0.1, 0.9]
    change = [0.0, 0.1, 0.3, 0.4]
    assert first_crossing(gain, change, 0.3) == Crossing(pytest.approx(0.06), 0, 1)
    assert first_crossing(gain, change, 0.7) == Crossing(pytest.approx(0.3 + 0.1 * 0.75), 2, 3)


def test_a_curve_that_starts_at_the_target_reads_its_first_point_not_a_chord():
    assert first_crossing([0.4, 0.6], [0.01, 0.05], 0.3) == Crossing(0.01, 0, 0)
    assert matched_general_change([0.0, 0.2], [0.0, 0.1], 0.0) == 0.0
    trajectory = [(0, 0.0, 0.0), (5, 0.3, 0.01)]
    assert gain_crossing(trajectory, 0.0) == (0.0, 0, 0) and not from_base(trajectory, 0.0)
    assert from_base(trajectory, 0.3)  # reached exactly at the first evaluation point: a chord from the base model


def test_never_reached_or_not_finite_is_undefined_not_nan_or_inf():
    assert first_crossing([0.0, 0.1], [0.0, 0.2], 0.5) is None
    assert np.isnan(matched_general_change([0.0, 0.1], [0.0, 0.2], 0.5))
    assert first_crossing([], [], 0.1) is None
    assert first_crossing([0.0, np.nan, 0.5], [0.0, 0.1, 0.2], 0.3) is None  # a diverged point before the crossing
    assert first_crossing([0.0, 0.5], [0.0, np.inf], 0.3) is None
    assert first_crossing([np.nan, np.nan], [0.0, 0.0], 0.3) is None
    assert gain_crossing([(0, 0.0, 0.0), (1, 1e308, 1e308)], 1e-300) is not None  # extreme but finite values


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="target_gain"):
        first_crossing([0.0, 1.0], [0.0, 1.0], float("nan"))
    with pytest.raises(ValueError, match="general_change"):
        first_crossing([0.0, 1.0], [0.0], 0.5)
    with pytest.raises(ValueError, match="1-D"):
        first_crossing([[0.0, 1.0]], [[0.0, 1.0]], 0.5)
    with pytest.raises(ValueError, match="trajectory"):
        gain_crossing([(0, 0.0)], 0.5)
    with pytest.raises(ValueError, match="trajectories"):
        matched_targets([], (0.5,))


def test_matched_targets_are_fractions_of_the_smallest_reach():
    a = [(0, 0.0, 0.0), (1, 0.4, 0.0), (2, 0.8, 0.0)]
    b = [(0, 0.0, 0.0), (1, 0.6, 0.0), (2, 0.5, 0.0)]
    assert matched_targets([a, b], (0.5, 1.0)) == pytest.approx([0.3, 0.6])
    assert matched_targets([a, [(0, 0.0, 0.0), (1, -0.1, 0.0)]], (0.5,)) == []
