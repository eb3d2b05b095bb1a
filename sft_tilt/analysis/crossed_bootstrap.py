"""Intervals over seeds and the evaluation sample at once: the crossed (two-way) bootstrap.

Every run of a comparison is scored on one evaluation sample: the same held-out problems, general texts and
multiple-choice items. A t interval over seeds (:mod:`sft_tilt.analysis.intervals`) treats that sample as fixed, so it
says nothing about how a result would move on other items from the same source. The crossed bootstrap resamples
both factors, independently of each other:

* seeds: ``S`` seed positions drawn with replacement, the same positions for every cell compared (two cells' runs with
  the same seed share data order and initialisation, so a comparison stays paired by seed, as the t intervals are);
* items: for each set its ``n`` items drawn with replacement, the same draw for every seed, cell and evaluation point
  (all were scored on the same items, so a difference between cells is paired on the resampled items too), and an
  independent draw per set.

With ``w_bi`` the number of times item ``i`` of a set is drawn in resample ``b``, the set's mean loss at evaluation
point ``k`` of a run is a ratio of sums,

    L_b(k) = sum_i w_bi nll_i(k) / sum_i w_bi tokens_i,

(``nll_i`` the summed NLL of item ``i``'s target tokens, ``tokens_i`` their number), and along a run whose point 0 is
the base model

    G_b(k) = L_b^domain(0) - L_b^domain(k),        D_b(k) = mean over the general sets of L_b^set(k) - L_b^set(0).

The matched general change is read where the resampled curve first reaches the target gain
(:func:`sft_tilt.analysis.matched_gain.matched_general_change_arrays`), so the matched point moves with the resample;
a target that is the largest gain every run reaches is recomputed in each resample from its seeds and items. A cell's
statistic is its mean over the drawn seeds; a comparison is the difference of two cells' statistics in the same
resample. With ``B`` resamples the interval is the percentile interval

    [q_{(1 - c)/2}, q_{(1 + c)/2}]    of the B resampled statistics (c = CONFIDENCE; q_a the ceil(a B)-th smallest),

around the statistic of the full sample (all seeds, all items once); a resample where the statistic is undefined
(some curve never reaches the target) counts as below every value for the lower bound and above every value for the
upper one. Drawing only seeds gives the ordinary bootstrap over seeds, drawing only items the ordinary bootstrap over
the evaluation sample. Drawing both counts the seed-by-item interaction once in each factor, so the crossed variance
is somewhat larger than the truth: conservative. With few seeds the seed factor's percentile interval is narrower
than the t interval over the same seeds (the bootstrap knows nothing of t's small-sample quantile), which is why the
decision rules take the union of the two (:func:`with_seed_interval`).

All arithmetic is float64; draws come from a seeded :class:`numpy.random.Generator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from sft_tilt.analysis.intervals import CONFIDENCE, Interval
from sft_tilt.analysis.matched_gain import matched_general_change_arrays

__all__ = ["DEFAULT_RESAMPLES", "DEFAULT_SEED", "Draws", "BootstrapResult", "draw", "resampled_mean_loss",
           "mean_loss_bootstrap", "matched_gain_bootstrap", "percentile_interval", "bootstrap_p_value",
           "with_seed_interval"]

DEFAULT_RESAMPLES = 2000
#: the generator's seed when none is given: a verdict must not change from one run of the checks to the next
DEFAULT_SEED = 20260101


@dataclass(frozen=True)
class Draws:
    """One set of resamples: ``seeds`` ``(B, S)`` seed positions, ``items`` per set ``(B, n)`` item counts (how
    often each item is drawn; every row sums to ``n``)."""

    seeds: np.ndarray
    items: dict[str, np.ndarray]

    @property
    def resamples(self) -> int:
        return int(self.seeds.shape[0])


def _resamples(resamples) -> int:
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples: must be a positive integer, got {resamples!r}")
    return int(resamples)


def _generator(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng(DEFAULT_SEED)
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise ValueError(f"rng: must be a numpy Generator, an integer seed or None, got {type(rng).__name__}")


def _counts(indices: np.ndarray, n: int) -> np.ndarray:
    """``(B, n)`` draw counts from ``(B, n)`` drawn indices."""
    counts = np.zeros((indices.shape[0], n), dtype=np.float64)
    np.add.at(counts, (np.repeat(np.arange(indices.shape[0]), indices.shape[1]), indices.ravel()), 1.0)
    return counts


def draw(rng, n_seeds: int, item_sizes: Mapping[str, int], resamples: int = DEFAULT_RESAMPLES,
         resample_seeds: bool = True, resample_items: bool = True) -> Draws:
    """``resamples`` independent draws of ``n_seeds`` seed positions and, per set of ``item_sizes`` (set name ->
    number of items), of its items, each with replacement; a factor not resampled keeps every seed or item once."""
    b = _resamples(resamples)
    gen = _generator(rng)
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, (int, np.integer)) or n_seeds < 1:
        raise ValueError(f"n_seeds: must be a positive integer, got {n_seeds!r}")
    seeds = gen.integers(0, n_seeds, size=(b, n_seeds)) if resample_seeds else np.tile(np.arange(n_seeds), (b, 1))
    items = {}
    for name, n in item_sizes.items():
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"item_sizes: set {name!r} must have a positive number of items, got {n!r}")
        items[name] = _counts(gen.integers(0, n, size=(b, n)), n) if resample_items else np.ones((b, n))
    return Draws(seeds, items)


def _identity(n_seeds: int, item_sizes: Mapping[str, int]) -> Draws:
    """The full sample as one resample: every seed and every item once."""
    return Draws(np.arange(n_seeds)[None, :], {k: np.ones((1, n)) for k, n in item_sizes.items()})


def _check_draws(draws: Draws, n_seeds: int, item_sizes: Mapping[str, int]) -> None:
    seeds = np.asarray(draws.seeds)
    if seeds.ndim != 2 or seeds.shape[1] != n_seeds or seeds.shape[0] < 1 or seeds.min() < 0 or seeds.max() >= n_seeds:
        raise ValueError(f"draws: seed positions must be (B, {n_seeds}) integers in [0, {n_seeds}), got shape {seeds.shape}")
    for name, n in item_sizes.items():
        c = draws.items.get(name)
        if c is None or np.shape(c) != (seeds.shape[0], n):
            raise ValueError(f"draws: set {name!r} needs ({seeds.shape[0]}, {n}) item counts, got "
                             f"{None if c is None else np.shape(c)}")


def resampled_mean_loss(nll, tokens, counts) -> np.ndarray:
    """``L_b = sum_i counts[b, i] nll[..., i] / sum_i counts[b, i] tokens[i]`` for every resample ``b``: shape
    ``(B, *nll.shape[:-1])``. NaN entries of ``nll`` (padding) stay NaN."""
    nll = np.asarray(nll, dtype=np.float64)
    counts = np.asarray(counts, dtype=np.float64)
    num = np.tensordot(counts, nll, axes=([1], [nll.ndim - 1]))  # (B, ...)
    den = counts @ np.asarray(tokens, dtype=np.float64)  # (B,)
    return num / den.reshape((-1,) + (1,) * (num.ndim - 1))


def _tokens(tokens, n: int, what: str) -> np.ndarray:
    t = np.asarray(tokens, dtype=np.float64)
    if t.shape != (n,):
        raise ValueError(f"{what}: needs one token count per item ({n}), got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t <= 0) or np.any(t != np.round(t)):
        raise ValueError(f"{what}: token counts must be positive integers")
    return t


@dataclass(frozen=True)
class BootstrapResult:
    """Per cell the full-sample statistic (``point``, the mean over seeds of ``per_seed``) and its ``B`` resampled
    values (``samples``, ``(B, cells)``); ``resampled`` says which factors were drawn; ``target`` and
    ``target_samples`` the matched gain where there is one."""

    cells: tuple[str, ...]
    point: np.ndarray
    per_seed: np.ndarray
    samples: np.ndarray
    n_seeds: int
    resampled: str
    target: float | None = None
    target_samples: np.ndarray | None = None

    def _column(self, cell: str) -> int:
        if cell not in self.cells:
            raise ValueError(f"cell: {cell!r} is not one of {self.cells}")
        return self.cells.index(cell)

    def statistic(self, a: str, b: str | None = None) -> tuple[float, np.ndarray]:
        """The full-sample value and the resampled values of cell ``a``'s statistic, minus cell ``b``'s when given
        (in the same resample: paired on seeds and items)."""
        i = self._column(a)
        if b is None:
            return float(self.point[i]), self.samples[:, i]
        j = self._column(b)
        return float(self.point[i] - self.point[j]), self.samples[:, i] - self.samples[:, j]

    def interval(self, a: str, b: str | None = None, confidence: float = CONFIDENCE) -> Interval:
        point, samples = self.statistic(a, b)
        return percentile_interval(samples, point, self.n_seeds, confidence)

    def p_value(self, a: str, b: str | None = None, boundary: float = 0.0, alternative: str = "two-sided") -> float:
        return bootstrap_p_value(self.statistic(a, b)[1], boundary, alternative)


def percentile_interval(samples, point: float, n: int, confidence: float = CONFIDENCE) -> Interval:
    """The percentile interval of ``samples`` at coverage ``confidence`` around ``point`` (module docstring): a NaN
    sample (statistic undefined in that resample) lies below every value for the lower bound and above for the
    upper; ``n`` is the number of seeds. No interval (infinite bounds) when ``point`` is not a number."""
    s = np.asarray(samples, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("samples: need at least one resampled value")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence: must lie in (0, 1), got {confidence!r}")
    if not np.isfinite(point):
        return Interval(float(point), -np.inf, np.inf, n)
    alpha = (1 - confidence) / 2
    # the empirical quantile (no interpolation, which an infinite value would turn into NaN)
    lo = float(np.quantile(np.where(np.isnan(s), -np.inf, s), alpha, method="inverted_cdf"))
    hi = float(np.quantile(np.where(np.isnan(s), np.inf, s), 1 - alpha, method="inverted_cdf"))
    return Interval(float(point), lo, hi, n)


def bootstrap_p_value(samples, boundary: float = 0.0, alternative: str = "two-sided") -> float:
    """The bootstrap p value of the statistic against ``boundary``: for ``"greater"`` (the statistic exceeds the
    boundary) ``(1 + #{T_b <= boundary}) / (B + 1)``, for ``"less"`` ``(1 + #{T_b >= boundary}) / (B + 1)``, two-sided
    twice the smaller (at most 1); an undefined resample counts against the alternative. The percentile interval at
    coverage c excludes the boundary on the alternative's side about when this is below (1 - c) / 2 (one-sided)."""
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError(f"alternative: must be 'two-sided', 'greater' or 'less', got {alternative!r}")
    s = np.asarray(samples, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("samples: need at least one resampled value")
    undefined = np.isnan(s)
    below = (1 + np.sum((s <= boundary) | undefined)) / (s.size + 1)
    above = (1 + np.sum((s >= boundary) | undefined)) / (s.size + 1)
    if alternative == "greater":
        return float(below)
    if alternative == "less":
        return float(above)
    return float(min(1.0, 2 * min(below, above)))


def with_seed_interval(bootstrap: Interval, seeds_t: Interval) -> Interval:
    """The union of the crossed bootstrap interval and the t interval over seeds of the same statistic: a boundary
    is excluded only when both exclude it, so the evaluation sample's uncertainty is added without giving up the t
    interval's small-sample width. The mean is the bootstrap's full-sample value."""
    if seeds_t.n < 2 or not np.isfinite(seeds_t.lo):
        return Interval(bootstrap.mean, -np.inf, np.inf, bootstrap.n)
    return Interval(bootstrap.mean, min(bootstrap.lo, seeds_t.lo), max(bootstrap.hi, seeds_t.hi), bootstrap.n)


def _resampled_label(resample_seeds: bool, resample_items: bool) -> str:
    return {(True, True): "seeds and evaluation items", (True, False): "seeds", (False, True): "evaluation items",
            (False, False): "nothing"}[(resample_seeds, resample_items)]


def mean_loss_bootstrap(nll, tokens, cells: Sequence[str] | None = None, resamples: int = DEFAULT_RESAMPLES, rng=None,
                        resample_seeds: bool = True, resample_items: bool = True, draws: Draws | None = None) -> BootstrapResult:
    """The crossed bootstrap of one set's mean loss per cell: ``nll`` ``(cells, seeds, items)`` summed NLL per item,
    ``tokens`` ``(items,)``; a cell's statistic is the mean over seeds of ``sum nll / sum tokens``. A loss change
    against the base model is the same statistic of ``nll - nll_base`` (same items, same token counts). ``draws``
    replaces the random draws (set name ``"items"``)."""
    x = np.asarray(nll, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"nll: must be (cells, seeds, items), got shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"nll: needs at least one cell, seed and item, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("nll: every value must be finite")
    t = _tokens(tokens, x.shape[2], "tokens")
    names = tuple(cells) if cells is not None else tuple(str(i) for i in range(x.shape[0]))
    if len(names) != x.shape[0]:
        raise ValueError(f"cells: {len(names)} names for {x.shape[0]} cells")
    sizes = {"items": x.shape[2]}
    d = draw(rng, x.shape[1], sizes, resamples, resample_seeds, resample_items) if draws is None else draws
    _check_draws(d, x.shape[1], sizes)

    def stat(dr: Draws):
        per_seed = resampled_mean_loss(x, t, dr.items["items"])  # (B, C, S)
        idx = np.broadcast_to(dr.seeds[:, None, :], per_seed.shape)
        return np.take_along_axis(per_seed, idx, axis=2).mean(-1), per_seed[0]

    point, per_seed = stat(_identity(x.shape[1], sizes))
    samples, _ = stat(d)
    return BootstrapResult(names, point[0], per_seed, samples, x.shape[1], _resampled_label(resample_seeds, resample_items))


def _stack_runs(runs, sets: Sequence[str]):
    """``runs`` (cell -> seeds -> set -> {"nll": (points, items), "tokens": (items,)}) as per set a NaN-padded
    ``(cells, seeds, points, items)`` array and its token counts, after checking shapes and values."""
    if not isinstance(runs, Mapping) or not runs:
        raise ValueError("runs: need at least one cell (cell name -> per-seed runs)")
    cells = tuple(runs)
    n_seeds = {c: len(runs[c]) for c in cells}
    if min(n_seeds.values()) == 0:
        raise ValueError(f"runs: every cell needs at least one seed, got {n_seeds}")
    if len(set(n_seeds.values())) != 1:
        raise ValueError(f"runs: cells are paired by seed and need the same number of seeds, got {n_seeds}")
    S = next(iter(n_seeds.values()))
    points = np.zeros((len(cells), S), dtype=int)
    for ci, c in enumerate(cells):
        for s, run in enumerate(runs[c]):
            lengths = set()
            for name in sets:
                if name not in run:
                    raise ValueError(f"runs: cell {c!r} seed position {s} has no items of set {name!r}")
                nll = np.asarray(run[name]["nll"], dtype=np.float64)
                if nll.ndim != 2 or nll.shape[0] < 1:
                    raise ValueError(f"runs: cell {c!r} seed position {s} set {name!r}: nll must be (points, items) "
                                     f"with a base point, got shape {nll.shape}")
                lengths.add(nll.shape[0])
            if len(lengths) != 1:
                raise ValueError(f"runs: cell {c!r} seed position {s}: the sets have different numbers of points {sorted(lengths)}")
            points[ci, s] = lengths.pop()
    K = int(points.max())
    stacked, tokens = {}, {}
    for name in sets:
        first = runs[cells[0]][0][name]
        n = np.asarray(first["nll"]).shape[1]
        if n == 0:
            raise ValueError(f"runs: set {name!r} has no items")
        t = _tokens(first["tokens"], n, f"runs: set {name!r} tokens")
        arr = np.full((len(cells), S, K, n), np.nan)
        for ci, c in enumerate(cells):
            for s, run in enumerate(runs[c]):
                nll = np.asarray(run[name]["nll"], dtype=np.float64)
                if nll.shape[1] != n:
                    raise ValueError(f"runs: set {name!r} has {n} items in the first run but {nll.shape[1]} in cell {c!r} "
                                     f"seed position {s}: every run must be scored on the same items")
                if not np.all(np.isfinite(nll)):
                    raise ValueError(f"runs: set {name!r} of cell {c!r} seed position {s} has non-finite nll values")
                if not np.array_equal(_tokens(run[name]["tokens"], n, f"runs: set {name!r} tokens"), t):
                    raise ValueError(f"runs: set {name!r} of cell {c!r} seed position {s} has other token counts than the "
                                     f"first run: not the same items")
                arr[ci, s, : nll.shape[0]] = nll
        stacked[name], tokens[name] = arr, t
    return cells, S, stacked, tokens


def matched_gain_bootstrap(runs, domain: str, general: Sequence[str], target_gain: float | None = None,
                           resamples: int = DEFAULT_RESAMPLES, rng=None, resample_seeds: bool = True,
                           resample_items: bool = True, draws: Draws | None = None) -> BootstrapResult:
    """The crossed bootstrap of the general change at a matched domain gain (module docstring).

    ``runs``: cell -> the cell's runs in seed order (the same seeds, in the same order, in every cell), each run a
    mapping set name -> ``{"nll": (points, items), "tokens": (items,)}`` with point 0 the base model's evaluation;
    ``domain`` names the set whose loss decrease is the domain gain, ``general`` the sets whose mean loss change is
    the general change. ``target_gain``: a fixed Δ*, or None for the largest gain every drawn run reaches (the
    smallest over runs of their largest gain; recomputed per resample, no target when it is not positive). The
    statistic per cell is the mean over seeds of the matched general change; ``draws`` replaces the random draws."""
    if not isinstance(domain, str) or not domain:
        raise ValueError(f"domain: must name a set, got {domain!r}")
    general = tuple(general)
    if not general or not all(isinstance(g, str) and g for g in general):
        raise ValueError(f"general: must name at least one set, got {general!r}")
    if domain in general:
        raise ValueError(f"general: the domain set {domain!r} cannot also be a general set")
    if target_gain is not None and not np.isfinite(float(target_gain)):
        raise ValueError(f"target_gain: must be a finite number or None, got {target_gain!r}")
    cells, S, stacked, tokens = _stack_runs(runs, (domain, *general))
    sizes = {k: v.shape[-1] for k, v in stacked.items()}
    d = draw(rng, S, sizes, resamples, resample_seeds, resample_items) if draws is None else draws
    _check_draws(d, S, sizes)

    def stat(dr: Draws):
        loss = {k: resampled_mean_loss(stacked[k], tokens[k], dr.items[k]) for k in stacked}  # (B, C, S, K)
        gain = loss[domain][..., :1] - loss[domain]
        change = np.mean([loss[g] - loss[g][..., :1] for g in general], axis=0)
        idx = dr.seeds[:, None, :]
        if target_gain is None:
            reach = np.nanmax(gain, axis=-1)  # the base point (gain 0) is never padding
            target = np.take_along_axis(reach, np.broadcast_to(idx, reach.shape[:2] + (S,)), axis=2).min(axis=(1, 2))
            target = np.where(target > 0, target, np.nan)
        else:
            target = np.full(gain.shape[0], float(target_gain))
        matched = matched_general_change_arrays(gain, change, target[:, None, None])  # (B, C, S)
        drawn = np.take_along_axis(matched, np.broadcast_to(idx, matched.shape), axis=2)
        return drawn.mean(-1), matched, target

    point, per_seed, target = stat(_identity(S, sizes))
    samples, _, target_samples = stat(d)
    return BootstrapResult(cells, point[0], per_seed[0], samples, S, _resampled_label(resample_seeds, resample_items),
                           float(target[0]), target_samples)
