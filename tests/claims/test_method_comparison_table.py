"""The method-against-SFT table reads each paired interval the way its legend says."""

import numpy as np

from sft_tilt.analysis.intervals import paired_interval
from sft_tilt.claims.method_comparison_table import reading, render_method_table


def test_reading_says_less_more_undecided_and_not_reached():
    sft = np.array([0.10, 0.12, 0.11])
    assert reading(paired_interval(sft - 0.02 + [0.0, 0.001, -0.001], sft)) == "less"
    assert reading(paired_interval(sft + 0.02 + [0.0, 0.001, -0.001], sft)) == "more"
    assert reading(paired_interval(sft + [0.03, -0.03, 0.0], sft)) == "undecided"
    assert reading(None) == "not reached"


def test_the_table_has_one_row_per_method_and_one_cell_per_step_size():
    iv = paired_interval(np.array([0.01, 0.012, 0.011]))
    m = {"target_gain": 0.3, "learning_rates": [1.0, 3.0], "n_seeds": 3, "rows": {"EAFT (mean 1)": [iv, None]},
         "variants": {"EAFT (mean 1)": "eaft, weights mean one"}}
    lines = render_method_table(m)
    row = [line for line in lines if line.startswith("| EAFT")][0]
    assert row.count("|") == 4 and "**more**" in row and "not reached" in row
