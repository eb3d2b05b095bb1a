"""The crossed bootstrap against independent computations: the exact bootstrap distribution enumerated on tiny cases,
plain loops over the same draws, the seeds-only and items-only limits, and coverage on simulated data with a known
truth."""

import itertools
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from sft_tilt.analysis.crossed_bootstrap import (Draws, bootstrap_p_value, draw, matched_gain_bootstrap,
                                                 mean_loss_bootstrap, percentile_interval, with_seed_interval)
from sft_tilt.analysis.intervals import Interval, paired_interval
from sft_tilt.analysis.matched_gain import first_crossing, general_change_at_gain, matched_general_change_arrays

# ---------------------------------------------------------------------------- the vectorised crossing

_value = st.one_of(st.floats(-1.0, 1.0, allow_nan=False), st.just(float("nan")))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_value, _value), min_size=1, max_size=8), st.floats(-0.5, 1.0))
def test_vectorised_crossing_is_the_scalar_rule(points, target):
    """On any curve (falling back, NaN gains or changes included) the array reading equals :func:`first_crossing`."""
    g = np.array([p[0] for p in points])
    d = np.array([p[1] for p in points])
    hit = first_crossing(g, d, target)
    got = matched_general_change_arrays(g[None, :], d[None, :], np.array([target]))[0]
    if hit is None:
        assert np.isnan(got)
    else:
        assert got == hit.general_change  # the same arithmetic, bit for bit


def test_vectorised_crossing_broadcasts_targets_over_curves():
    g = np.array([[0.0, 0.2, 0.4], [0.0, 0.1, 0.3]])
    d = np.array([[0.0, 0.02, 0.06], [0.0, 0.05, 0.01]])
    got = matched_general_change_arrays(g, d, np.array([0.3, 0.2]))
    assert got == pytest.approx([0.04, 0.05 + 0.5 * (0.01 - 0.05)])
    with pytest.raises(ValueError, match="domain_gain, general_change"):
        matched_general_change_arrays(g, d[:, :2], 0.1)


# ---------------------------------------------------------------------------- exact bootstrap distributions


def _ratio(nll, tokens, items):
    return sum(nll[i] for i in items) / sum(tokens[i] for i in items)


def test_mean_loss_bootstrap_has_the_exact_crossed_distribution():
    """Two seeds x three items: all 2^2 seed draws and 3^3 item draws are equally likely; the empirical
    distribution of 40000 resamples matches the enumerated one within binomial noise."""
    nll = np.array([[[1.0, 5.0, 2.5], [3.0, 0.5, 7.0]]])  # one cell, two seeds, three items
    tokens = np.array([1, 2, 3])
    exact = Counter()
    for seeds in itertools.product(range(2), repeat=2):
        for items in itertools.product(range(3), repeat=3):
            exact[round(np.mean([_ratio(nll[0, s], tokens, items) for s in seeds]), 10)] += 1
    total = sum(exact.values())
    B = 40000
    res = mean_loss_bootstrap(nll, tokens, resamples=B, rng=np.random.default_rng(1))
    got = Counter(np.round(res.samples[:, 0], 10))
    assert set(got) <= set(exact)
    for value, count in exact.items():
        p = count / total
        assert abs(got[value] / B - p) < 5 * np.sqrt(p * (1 - p) / B) + 1e-12, value
    assert res.point[0] == pytest.approx(np.mean([_ratio(nll[0, s], tokens, range(3)) for s in range(2)]))


def _matched_by_loops(runs, seeds, counts, domain="dom", general=("gen",)):
    """The matched-gain statistic of one resample by the scalar reading: curves from weighted sums, the common
    target, :func:`general_change_at_gain` per run, seed means per cell."""
    def loss(run, name, k):
        w = counts[name]
        return float(np.dot(w, run[name]["nll"][k]) / np.dot(w, run[name]["tokens"]))

    trajectories = {}
    for cell, cell_runs in runs.items():
        for s in set(seeds):
            run = cell_runs[s]
            K = len(run[domain]["nll"])
            trajectories[cell, s] = [(k, loss(run, domain, 0) - loss(run, domain, k),
                                      float(np.mean([loss(run, g, k) - loss(run, g, 0) for g in general]))) for k in range(K)]
    target = min(max(g for _, g, _ in t) for t in trajectories.values())
    if target <= 0:
        return {c: float("nan") for c in runs}
    out = {}
    for cell in runs:
        vals = [general_change_at_gain(trajectories[cell, s], target) for s in seeds]
        out[cell] = float("nan") if any(v is None for v in vals) else float(np.mean(vals))
    return out


def _tiny_runs(rng, cells=("a", "b"), seeds=2, points=3, n_dom=2, n_gen=2):
    runs = {}
    tok_dom, tok_gen = rng.integers(1, 4, n_dom), rng.integers(1, 4, n_gen)
    for c in cells:
        runs[c] = []
        for _ in range(seeds):
            # domain NLL falls along the run, general NLL rises, with item-level noise
            dom = np.array([tok_dom * (2.0 - 0.4 * k) + rng.uniform(-0.3, 0.3, n_dom) for k in range(points)])
            gen = np.array([tok_gen * (1.0 + 0.05 * k) + rng.uniform(-0.05, 0.05, n_gen) for k in range(points)])
            runs[c].append({"dom": {"nll": dom, "tokens": tok_dom}, "gen": {"nll": gen, "tokens": tok_gen}})
    return runs


def test_matched_gain_bootstrap_has_the_exact_crossed_distribution():
    """Two cells x two seeds, two domain and two general items: 4 seed draws x 4 x 4 item draws, each statistic
    computed by the scalar matched-gain reading; the bootstrap's difference a - b follows that distribution."""
    rng = np.random.default_rng(3)
    runs = _tiny_runs(rng)
    exact = Counter()
    for seeds in itertools.product(range(2), repeat=2):
        for dom in itertools.product(range(2), repeat=2):
            for gen in itertools.product(range(2), repeat=2):
                counts = {"dom": np.bincount(dom, minlength=2).astype(float), "gen": np.bincount(gen, minlength=2).astype(float)}
                m = _matched_by_loops(runs, list(seeds), counts)
                exact[round(m["a"] - m["b"], 9)] += 1
    B = 40000
    res = matched_gain_bootstrap(runs, "dom", ["gen"], resamples=B, rng=np.random.default_rng(7))
    _, diff = res.statistic("a", "b")
    got = Counter(np.round(diff, 9))
    assert set(got) <= set(exact)
    for value, count in exact.items():
        p = count / 64
        assert abs(got[value] / B - p) < 5 * np.sqrt(p * (1 - p) / B) + 1e-12, value


def test_matched_gain_bootstrap_equals_loops_over_the_same_draws():
    rng = np.random.default_rng(11)
    runs = _tiny_runs(rng, cells=("sft", "talr", "flow"), seeds=3, points=5, n_dom=6, n_gen=9)
    # a shorter run (fewer evaluation points) is padded, not misread
    runs["flow"][1] = {k: {"nll": v["nll"][:4], "tokens": v["tokens"]} for k, v in runs["flow"][1].items()}
    draws = draw(np.random.default_rng(5), 3, {"dom": 6, "gen": 9}, resamples=60)
    res = matched_gain_bootstrap(runs, "dom", ["gen"], draws=draws)
    for b in range(draws.resamples):
        counts = {k: draws.items[k][b] for k in draws.items}
        want = _matched_by_loops(runs, list(draws.seeds[b]), counts)
        for i, c in enumerate(res.cells):
            assert res.samples[b, i] == pytest.approx(want[c], abs=1e-12, nan_ok=True)
    full = _matched_by_loops(runs, [0, 1, 2], {"dom": np.ones(6), "gen": np.ones(9)})
    assert res.point == pytest.approx([full[c] for c in res.cells], abs=1e-12)


def test_fixed_target_and_no_gain():
    rng = np.random.default_rng(2)
    runs = _tiny_runs(rng, cells=("a",), seeds=2, points=3)
    res = matched_gain_bootstrap(runs, "dom", ["gen"], target_gain=0.1, resamples=50, rng=0)
    assert res.target == 0.1 and np.all(res.target_samples == 0.1)
    flat = {"a": [{"dom": {"nll": np.tile(r["dom"]["nll"][:1], (3, 1)), "tokens": r["dom"]["tokens"]}, "gen": r["gen"]}
                  for r in runs["a"]]}
    res = matched_gain_bootstrap(flat, "dom", ["gen"], resamples=20, rng=0)  # no gain: no target, no value
    assert np.isnan(res.point[0]) and np.all(np.isnan(res.samples))
    iv = res.interval("a")
    assert iv.lo == -np.inf and iv.hi == np.inf


# ---------------------------------------------------------------------------- the two limits


def test_seeds_only_limit_is_the_bootstrap_of_per_seed_values():
    """Without item resampling the statistic in each resample is the mean of the drawn seeds' full-sample values,
    and its percentile interval is scipy's percentile bootstrap of those values (different draws: agree to noise)."""
    from scipy import stats

    rng = np.random.default_rng(4)
    nll = rng.gamma(2.0, 1.0, size=(1, 12, 30))
    tokens = rng.integers(1, 5, 30)
    per_seed = nll[0].sum(1) / tokens.sum()
    draws = draw(np.random.default_rng(9), 12, {"items": 30}, resamples=200, resample_items=False)
    res = mean_loss_bootstrap(nll, tokens, draws=draws)
    assert res.samples[:, 0] == pytest.approx(per_seed[draws.seeds].mean(1), rel=1e-12)
    B = 20000
    iv = mean_loss_bootstrap(nll, tokens, resamples=B, rng=3, resample_items=False).interval("0")
    ref = stats.bootstrap((per_seed,), np.mean, n_resamples=B, method="percentile", random_state=5).confidence_interval
    width = ref.high - ref.low
    assert iv.lo == pytest.approx(ref.low, abs=0.05 * width) and iv.hi == pytest.approx(ref.high, abs=0.05 * width)


def test_items_only_limit_is_the_bootstrap_of_the_ratio_over_items():
    """With one seed and only items drawn, each resample is sum nll / sum tokens over the drawn items, and the
    interval agrees with scipy's percentile bootstrap of that ratio (paired resampling of nll and tokens)."""
    from scipy import stats

    rng = np.random.default_rng(6)
    nll = rng.gamma(2.0, 1.0, size=40) * np.arange(1, 41) % 7 + 0.1
    tokens = rng.integers(1, 6, 40)
    draws = draw(np.random.default_rng(8), 1, {"items": 40}, resamples=100, resample_seeds=False)
    res = mean_loss_bootstrap(nll[None, None, :], tokens, draws=draws)
    for b in range(100):
        idx = np.repeat(np.arange(40), draws.items["items"][b].astype(int))
        assert res.samples[b, 0] == pytest.approx(nll[idx].sum() / tokens[idx].sum(), rel=1e-12)
    B = 20000
    iv = mean_loss_bootstrap(nll[None, None, :], tokens, resamples=B, rng=1, resample_seeds=False).interval("0")
    ref = stats.bootstrap((nll, tokens), lambda a, t: a.sum() / t.sum(), paired=True, vectorized=False,
                          n_resamples=B, method="percentile", random_state=2).confidence_interval
    width = ref.high - ref.low
    assert iv.lo == pytest.approx(ref.low, abs=0.05 * width) and iv.hi == pytest.approx(ref.high, abs=0.05 * width)


# ---------------------------------------------------------------------------- coverage with a known truth


def test_crossed_intervals_cover_a_known_difference_that_seeds_alone_miss():
    """Item NLL = cell mean + seed effect + item effect + a cell-by-item effect + noise; the true difference of the
    two cells' means over the item population is known. The crossed interval covers it about 95% of the time; the
    seeds-only interval, blind to which items were drawn, far less (the cell-by-item effect is fixed across seeds)."""
    rng = np.random.default_rng(12)
    truth = 0.3
    reps, S, n = 150, 10, 40
    hits = {"crossed": 0, "seeds": 0}
    for r in range(reps):
        seed_effect = rng.normal(0, 1.0, S)[None, :, None]
        item_effect = rng.normal(0, 1.0, n)[None, None, :]
        cell_item = rng.normal(0, 0.6, (2, 1, n))
        noise = rng.normal(0, 0.3, (2, S, n))
        nll = 5.0 + np.array([truth, 0.0])[:, None, None] + seed_effect + item_effect + cell_item + noise
        for mode, items in (("crossed", True), ("seeds", False)):
            res = mean_loss_bootstrap(nll, np.ones(n), cells=("a", "b"), resamples=800, rng=r, resample_items=items)
            iv = res.interval("a", "b")
            hits[mode] += iv.lo <= truth <= iv.hi
    assert hits["crossed"] / reps >= 0.88
    assert hits["seeds"] / reps <= 0.6


# ---------------------------------------------------------------------------- intervals, p values, errors


def test_percentile_interval_and_p_value_on_known_samples():
    s = np.arange(-10, 91, dtype=float)  # 101 values, 11 of them <= 0
    assert bootstrap_p_value(s, 0.0, "greater") == pytest.approx(12 / 102)
    assert bootstrap_p_value(s, 0.0, "less") == pytest.approx(92 / 102)  # 91 values >= 0, plus one
    assert bootstrap_p_value(s, 0.0) == pytest.approx(24 / 102)
    iv = percentile_interval(s[::-1], 40.0, 3)
    # the ceil(0.025 * 101) = 3rd smallest and the ceil(0.975 * 101) = 99th smallest of -10..90
    assert (iv.mean, iv.lo, iv.hi, iv.n) == (40.0, -8.0, 88.0, 3)
    # an undefined resample lies below every value for the lower bound and above for the upper: with one NaN among
    # 102 the bounds are the ceil(2.55) = 3rd smallest of (-inf, -10, ..., 90) and the ceil(99.45) = 100th of (-10, ..., 90, inf)
    iv = percentile_interval(np.append(s, np.nan), 40.0, 3)
    assert (iv.lo, iv.hi) == (-9.0, 89.0)
    # with five the lower bound is -inf and the upper +inf
    iv = percentile_interval(np.append(s, [np.nan] * 5), 40.0, 3)
    assert (iv.lo, iv.hi) == (-np.inf, np.inf)


def test_union_with_the_seed_t_interval():
    boot = Interval(1.0, 0.8, 1.2, 3)
    assert with_seed_interval(boot, paired_interval([0.5, 1.0, 1.5])).lo < 0.8
    assert with_seed_interval(boot, Interval(1.0, 0.95, 1.05, 3)) == boot
    assert with_seed_interval(boot, paired_interval([1.0])).lo == -np.inf


def test_bad_input_is_named():
    rng = np.random.default_rng(0)
    runs = _tiny_runs(rng)
    with pytest.raises(ValueError, match="runs: cells are paired"):
        matched_gain_bootstrap({"a": runs["a"], "b": runs["b"][:1]}, "dom", ["gen"], resamples=5)
    bad = {"a": [dict(r, gen={"nll": r["gen"]["nll"][:, :1], "tokens": r["gen"]["tokens"][:1]}) for r in runs["a"]],
           "b": runs["b"]}
    with pytest.raises(ValueError, match="runs: set 'gen' has 1 items"):
        matched_gain_bootstrap(bad, "dom", ["gen"], resamples=5)
    nan = {"a": [dict(r, dom={"nll": np.where(True, np.nan, r["dom"]["nll"]), "tokens": r["dom"]["tokens"]}) for r in runs["a"]]}
    with pytest.raises(ValueError, match="non-finite"):
        matched_gain_bootstrap(nan, "dom", ["gen"], resamples=5)
    with pytest.raises(ValueError, match="has no items of set 'other'"):
        matched_gain_bootstrap(runs, "dom", ["other"], resamples=5)
    with pytest.raises(ValueError, match="general: the domain set"):
        matched_gain_bootstrap(runs, "dom", ["dom"], resamples=5)
    with pytest.raises(ValueError, match="runs: need at least one cell"):
        matched_gain_bootstrap({}, "dom", ["gen"])
    with pytest.raises(ValueError, match="resamples"):
        matched_gain_bootstrap(runs, "dom", ["gen"], resamples=0)
    with pytest.raises(ValueError, match="nll: needs at least one"):
        mean_loss_bootstrap(np.zeros((1, 2, 0)), np.zeros(0))
    with pytest.raises(ValueError, match="tokens: needs one token count per item"):
        mean_loss_bootstrap(np.zeros((1, 2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="tokens: token counts must be positive"):
        mean_loss_bootstrap(np.zeros((1, 2, 3)), np.array([1, 0, 2]))
    with pytest.raises(ValueError, match="nll: every value must be finite"):
        mean_loss_bootstrap(np.full((1, 2, 3), np.inf), np.ones(3))
    with pytest.raises(ValueError, match="rng"):
        mean_loss_bootstrap(np.zeros((1, 2, 3)), np.ones(3), rng="seed")
    with pytest.raises(ValueError, match="draws: set 'items'"):
        mean_loss_bootstrap(np.zeros((1, 2, 3)), np.ones(3), draws=Draws(np.zeros((4, 2), int), {"items": np.ones((4, 2))}))


def test_same_seed_same_result():
    rng = np.random.default_rng(1)
    runs = _tiny_runs(rng)
    a = matched_gain_bootstrap(runs, "dom", ["gen"], resamples=100, rng=42)
    b = matched_gain_bootstrap(runs, "dom", ["gen"], resamples=100, rng=42)
    assert np.array_equal(a.samples, b.samples, equal_nan=True)
