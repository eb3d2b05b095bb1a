"""Paired t intervals and the side of a boundary they decide."""

import numpy as np
import pytest
from scipy import stats

from sft_tilt.analysis.intervals import Interval, interval_from_summary, paired_interval, sd, side


def test_paired_interval_matches_t_formula():
    a = np.array([1.0, 2.0, 3.0, 4.0, 6.0])
    b = np.array([0.5, 1.0, 2.5, 3.0, 4.0])
    d = a - b
    iv = paired_interval(a, b)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert iv.n == 5 and iv.mean == pytest.approx(d.mean())
    assert iv.lo == pytest.approx(d.mean() - half) and iv.hi == pytest.approx(d.mean() + half)
    # the same as scipy's own interval
    lo, hi = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi))


def test_pairs_with_nan_dropped_and_n_one_is_inconclusive():
    iv = paired_interval([1.0, np.nan, 3.0], [0.0, 1.0, np.nan])
    assert iv.n == 1 and iv.mean == 1.0 and side(iv) == "crosses"
    assert paired_interval([np.nan], [1.0]).n == 0 and side(paired_interval([np.nan])) == "crosses"


def test_n_two_uses_t_not_two_standard_errors():
    d = np.array([1.0, 1.2])  # mean 1.1, SE 0.1: mean +- 2 SE excludes 0, the t interval (t = 12.7) does not
    iv = paired_interval(d)
    assert iv.hi - iv.mean == pytest.approx(12.706 * 0.1, rel=1e-3)
    assert side(paired_interval([0.1, 0.3])) == "crosses"  # 2 SE = 0.2 would say "above"


def test_side_on_constructed_intervals():
    assert side(Interval(1.0, 0.5, 1.5, 5)) == "above"
    assert side(Interval(-1.0, -1.5, -0.5, 5)) == "below"
    assert side(Interval(0.1, -0.1, 0.3, 5)) == "crosses"
    assert side(Interval(1.0, 0.5, 1.5, 5), boundary=0.6) == "crosses"
    assert side(Interval(1.0, 0.5, 1.5, 5), boundary=2.0) == "below"


def test_sd_is_ddof_one_and_nan_below_two():
    assert sd([1.0, 3.0]) == pytest.approx(np.sqrt(2.0))
    assert np.isnan(sd([1.0]))
    assert sd(np.array([[1.0, 2.0], [3.0, 4.0]]), axis=0) == pytest.approx([np.sqrt(2), np.sqrt(2)])


def test_welch_interval_from_summaries():
    iv = interval_from_summary(1.0, 0.1, 2, 0.5, 0.1, 2)
    se = np.sqrt(0.01 / 2 + 0.01 / 2)
    assert iv.mean == 0.5 and iv.hi - iv.mean == pytest.approx(stats.t.ppf(0.975, 2) * se)
    assert side(iv) == "above"
    assert side(interval_from_summary(0.0707, 0.0082, 2, 0.0808, 0.0034, 2)) == "crosses"
    assert interval_from_summary(1.0, 0.1, 1, 0.5, 0.1, 2).n == 1


def test_claims_and_the_run_summaries_share_one_interval():
    """One interval module: every claim module and the run summaries take their intervals from
    ``sft_tilt.analysis.intervals`` (read from the static import graph), and no other module of the package defines an
    interval, so a verdict and a summary of the same seeds cannot disagree."""
    import ast

    from sft_tilt.store import PACKAGE_DIR, imported_modules

    users = ["sft_tilt.harness.results_summary", "sft_tilt.claims.learning_rate_exchange", "sft_tilt.claims.no_free_lunch"]
    assert all("sft_tilt.analysis.intervals" in imported_modules(m) for m in users)
    defining = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        names = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        if names & {"paired_interval", "Interval", "interval_from_summary"}:
            defining.append(path.relative_to(PACKAGE_DIR).as_posix())
    assert defining == ["analysis/intervals.py"]
    values = [0.3, None, 0.5, float("nan"), 0.4]
    assert paired_interval(values) == paired_interval([0.3, 0.5, 0.4])


def _holm_rejects(p, alpha):
    """Holm's sequential procedure as stated: walk the p values upwards, reject the i-th smallest (i from 0) while it
    is at most alpha / (m - i), stop at the first that is not."""
    order = sorted(range(len(p)), key=lambda i: p[i])
    rejected = set()
    for rank, i in enumerate(order):
        if p[i] > alpha / (len(p) - rank):
            break
        rejected.add(i)
    return rejected


def test_holm_adjusted_p_values_reject_what_holms_procedure_rejects():
    from sft_tilt.analysis.intervals import holm_adjusted

    rng = np.random.default_rng(3)
    for _ in range(200):
        p = rng.uniform(0, 0.1, size=rng.integers(1, 12)) ** rng.uniform(0.5, 2)
        adjusted = holm_adjusted(p)
        for alpha in (0.01, 0.05, 0.1):
            assert {i for i, q in enumerate(adjusted) if q <= alpha} == _holm_rejects(list(p), alpha)
    assert np.isnan(holm_adjusted([0.01, np.nan])[1]) and holm_adjusted([0.01, np.nan])[0] == 0.01  # NaN not counted


def test_paired_p_value_is_the_one_sided_t_test_and_rejects_a_bad_alternative():
    from sft_tilt.analysis.intervals import paired_p_value

    a, b = np.array([1.0, 2.5, 3.2, 0.4]), np.array([0.5, 1.0, 3.0, 0.1])
    d = a - b
    t = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    assert np.isclose(paired_p_value(a, b, "greater"), stats.t.sf(t, d.size - 1))
    assert np.isclose(paired_p_value(a, b, "less"), stats.t.cdf(t, d.size - 1))
    assert paired_p_value([1.0, 1.0], [0.0, 0.0], "greater") == 0.0 and paired_p_value([1.0, 1.0], [0.0, 0.0], "less") == 1.0
    assert np.isnan(paired_p_value([1.0], [0.0]))
    with pytest.raises(ValueError, match="alternative"):
        paired_p_value(a, b, "up")
