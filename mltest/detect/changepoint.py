"""Change points in one per-commit series: a rank scan for the body, a tail test for the newest points.

Method (measured against alternatives in ``benchmarks/detection.py``; numbers in BENCHMARKS.md):

1. **Rank CUSUM, binary segmentation.** Values become ranks inside the segment under test, so heavy
   tails and outliers cannot move the statistic by more than one rank each, and no noise model is
   assumed. The standardised rank CUSUM ``T_k`` is a two-sample Wilcoxon statistic for a split at ``k``;
   its largest ``|T_k|`` is tested against a Bonferroni bound over the positions scanned, so the false
   alert rate of a noise-only series stays below ``alpha``. A significant split is kept and both halves
   are scanned again.
2. **Autocorrelation.** Shared runners make neighbouring measurements alike (AR(1) noise), which
   inflates any CUSUM. The lag-1 correlation ``rho`` is estimated from the ratio of the (trimmed)
   mean squares of lag-2 and lag-1 rank differences (``1 + rho`` for AR(1)), which level shifts
   barely touch, and the variance is inflated by the long-run factor ``(1 + rho) / (1 - rho)``.
   Where the whole segment shows nothing, seeded sub-intervals get a look (with the multiple testing
   paid for), which finds a short excursion that a single scan averages away.
3. **Pruning.** Each change point is re-tested between its neighbours and moved to the best split
   there; the ones no longer significant are dropped (binary segmentation's known flaw).
4. **Tail test.** The scan needs ``min_size`` points on both sides, so a change in the last few commits
   is tested separately: an exact permutation test of where the newest ``L >= tail_min`` points
   rank among the ``W`` before them, and their median must sit at least ``tail_shift`` robust
   standard deviations away. One point alone is never a change: it cannot be told from an outlier.
5. **Noise floor.** Where the noise of a point is known (``samples`` give repeats, or ``noise`` gives a
   standard error such as the binomial error of an accuracy), a shift must also be significant against
   it. A deterministic series that moves by less than its own sampling error is not a change.

Pure numerics: no I/O, no store; NaN points are gaps (skipped, indices still refer to ``values``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Protocol

import numpy as np
import numpy.typing as npt

from mltest.errors import DetectionError
from mltest.model import ChangePoint

__all__ = ["ChangePointMethod", "RankScan", "change_points", "long_run_factor", "noise_from_samples"]

FloatArray = npt.NDArray[np.float64]
_NORMAL = NormalDist()
MAX_RHO = 0.9


class ChangePointMethod(Protocol):
    """A change-point detector: what :func:`change_points` delegates to (inject your own)."""

    def __call__(
        self, values: FloatArray, *, noise: FloatArray | None = None
    ) -> list[ChangePoint]: ...  # pragma: no cover - protocol


def _ranks(x: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.concatenate(([0], np.flatnonzero(np.diff(xs)) + 1))
    ends = np.concatenate((starts[1:], [len(x)]))
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def long_run_factor(values: Sequence[float] | FloatArray, boundaries: Sequence[int] = ()) -> tuple[float, float]:
    """(rho, factor): lag-1 correlation of the rank series and its variance inflation ``(1+rho)/(1-rho)``.

    Without ``boundaries``, rho comes from the ratio of trimmed mean squares of lag-2 and lag-1 rank
    differences (``1 + rho`` for AR(1)), which level shifts barely move. With the change points found so
    far as ``boundaries``, it is the lag-1 autocorrelation of ranks around their segment means, pairs
    never crossing a boundary. ``rho`` is clipped to ``[0, 0.9]``: negative correlation counts as none.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 8:
        return 0.0, 1.0
    r = _ranks(x)
    if boundaries:
        edges = [0, *boundaries, len(r)]
        resid = np.concatenate([r[a:b] - r[a:b].mean() for a, b in itertools.pairwise(edges) if b > a])
        same = np.ones(len(r) - 1, dtype=bool)
        same[np.asarray(boundaries) - 1] = False
        den = float(np.mean(resid * resid))
        rho = float(np.mean((resid[:-1] * resid[1:])[same])) / den if den > 0 else 0.0
    else:
        v1, v2 = _trimmed_mean_square(np.diff(r)), _trimmed_mean_square(r[2:] - r[:-2])
        if v1 == 0:
            return 0.0, 1.0
        rho = v2 / v1 - 1.0
    # Shrink towards no correlation by the estimate's own noise (its sd under no correlation is about
    # 1.85 / sqrt(n) for the ratio, 1 / sqrt(n) for the autocorrelation): a short series with no real
    # correlation must not lose its power to a noisy rho, and a strongly correlated one barely moves.
    se = (1.0 if boundaries else 1.85) / math.sqrt(len(x))
    rho = max(rho, 0.0)
    rho = min(rho * rho * rho / (rho * rho + se * se) if rho > 0 else 0.0, MAX_RHO)
    return rho, (1.0 + rho) / (1.0 - rho)


def _trimmed_mean_square(d: FloatArray, trim: float = 0.1) -> float:
    """Mean square of the differences without the largest ``trim`` share of them: a level shift makes a
    few large differences (lag-2 differences cross each shift twice, lag-1 once, which would bias rho
    upwards), and they are the ones dropped. Dropping the same share of both keeps the ratio unbiased."""
    squares = np.sort(d * d)
    keep = max(len(squares) - max(int(trim * len(squares)), 1), 1)
    return float(np.mean(squares[:keep]))


def noise_from_samples(samples: Sequence[Sequence[float]]) -> FloatArray:
    """Standard error of each point's median from its repeats (NaN where fewer than two)."""
    out = np.full(len(samples), np.nan)
    for i, reps in enumerate(samples):
        arr = np.asarray(reps, dtype=float)
        arr = arr[np.isfinite(arr)]
        if len(arr) >= 2:
            # sd / sqrt(n), times 1.2533: the median's efficiency relative to the mean under normality.
            out[i] = 1.2533 * float(np.std(arr, ddof=1)) / math.sqrt(len(arr))
    return out


def _median(values: FloatArray) -> float:
    """``np.median`` without its overheads (no NaN here: gaps are removed before detection)."""
    m = len(values)
    half = m // 2
    if m % 2:
        return float(np.partition(values, half)[half])
    part = np.partition(values, (half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def _sorted_median(sorted_values: FloatArray) -> float:
    m = len(sorted_values)
    return float(sorted_values[m // 2] if m % 2 else (sorted_values[m // 2 - 1] + sorted_values[m // 2]) / 2)


def _clipped(x: FloatArray, half_width: int = 3) -> FloatArray:
    """``x`` with each value clipped to 3 robust sds around its running median (which follows steps)."""
    n = len(x)
    sigma = 1.4826 * _median(np.abs(np.diff(x))) / math.sqrt(2) if n > 1 else 0.0
    if sigma == 0 or n < 2 * half_width + 1:
        return x
    windows = np.lib.stride_tricks.sliding_window_view(np.pad(x, half_width, mode="edge"), 2 * half_width + 1)
    level = np.median(windows, axis=1)
    return level + np.clip(x - level, -3 * sigma, 3 * sigma)


EXACT_MAX = 40
"""Segments this short are tested with exact Wilcoxon p-values (the normal approximation is
conservative in the far tail, which is where a short series with a big change sits)."""


@functools.lru_cache(maxsize=4096)
def _u_counts(n1: int, n2: int) -> tuple[float, ...]:
    """Counts of the Mann-Whitney ``U`` statistic (0 .. n1*n2) over all splits of ``n1 + n2`` untied
    values, by the recurrence ``c(n1, n2, u) = c(n1 - 1, n2, u - n2) + c(n1, n2 - 1, u)``."""
    if n1 == 0 or n2 == 0:
        return (1.0,)
    left = _u_counts(n1 - 1, n2)  # the largest value is in the first group: it beats all n2
    right = _u_counts(n1, n2 - 1)
    out = np.zeros(n1 * n2 + 1)
    out[n2 : n2 + len(left)] += left
    out[: len(right)] += right
    return tuple(out.tolist())


@functools.lru_cache(maxsize=4096)
def _u_cdf(n1: int, n2: int) -> FloatArray:
    """``P(U <= u)`` for u = 0 .. n1*n2 (read-only: shared by every caller)."""
    counts = np.asarray(_u_counts(n1, n2))
    cdf: FloatArray = np.cumsum(counts) / counts.sum()
    cdf.flags.writeable = False
    return cdf


def _exact_split(
    seg: FloatArray, a: int, offsets: npt.NDArray[np.int64], factor: float, t: FloatArray
) -> _Split | None:
    """The split of an untied short segment with the smallest exact two-sided Wilcoxon p-value,
    Bonferroni over ``offsets``; with autocorrelation (``factor`` > 1) the exact p becomes a z-score
    that is shrunk like the CUSUM's. ``None`` when every value is the same."""
    m = len(seg)
    ranks = _ranks(seg)  # mid-ranks: a tie counts half to each side
    if ranks[0] == ranks[-1] and np.all(ranks == ranks[0]):
        return None
    rank_sums = np.cumsum(ranks)
    best_p, best_j = 1.0, -1
    for j, k in enumerate(offsets.tolist()):
        cdf = _u_cdf(k, m - k)
        # With ties U can be a half-integer. Its tail under the untied distribution (which is wider
        # than the tied one) is a conservative p-value.
        u = float(rank_sums[k - 1]) - k * (k + 1) / 2
        lower = float(cdf[math.floor(u)])
        high = math.ceil(u)
        upper = 1.0 - float(cdf[high - 1]) if high > 0 else 1.0
        p = min(1.0, 2.0 * min(lower, upper))
        if p < best_p:
            best_p, best_j = p, j
    if best_j < 0:
        return None
    z = _NORMAL.inv_cdf(1.0 - best_p / 2.0) / math.sqrt(factor) if best_p > 0 else math.inf
    p_adj = min(1.0, len(offsets) * math.erfc(z / math.sqrt(2)))
    return _Split(a + int(offsets[best_j]), math.copysign(z, float(t[best_j])), p_adj)


EXACT_MARGIN = 1.0
"""How far below the significance bound a normal z-score may be for the exact p-value to matter. The
exact z-score of a short segment exceeds the normal one by about 0.6 at most (perfect separation
of 5 or 10 of 20 points); below this margin the exact computation is skipped, as it cannot help."""


def _upper_z(q: float) -> float:
    """The z with upper-tail probability ``q``: ``inv_cdf(1 - q)``, also where ``1 - q`` rounds to 1."""
    return _NORMAL.inv_cdf(1.0 - q) if 1.0 - q < 1.0 else -_NORMAL.inv_cdf(max(q, 1e-300))


@functools.lru_cache(maxsize=1024)
def _hopeless(positions: int, alpha: float) -> float:
    """|z| below which even an exact p-value cannot reach ``alpha`` over ``positions`` tries."""
    return _upper_z(alpha / (2.0 * positions)) - EXACT_MARGIN


class _Ranks:
    """Rank CUSUMs of any split of any interval of ``x``, from cumulative sums of its ranks.

    The scores are the ranks in the whole series. Inside an interval they are a monotone function of
    the interval's own ranks, and under no change they are exchangeable there, so centring by the
    interval's mean score and scaling by its permutation variance gives an exact-moment linear rank
    statistic (ties included) without sorting any interval.
    """

    def __init__(self, x: FloatArray) -> None:
        self.x = x
        self.n = len(x)
        r = _ranks(x) if len(x) else np.zeros(0)
        self.c1 = np.concatenate(([0.0], np.cumsum(r)))
        self.c2 = np.concatenate(([0.0], np.cumsum(r * r)))
        self.memo: dict[tuple[int, int, float], _Split | None] = {}

    def cusum(
        self, a: npt.NDArray[np.int64], length: int, offsets: npt.NDArray[np.int64]
    ) -> tuple[FloatArray, FloatArray]:
        """(centred score sums of ``x[a:a+o]`` within ``x[a:a+length]``, one row per start ``a`` and
        one column per offset ``o``; the score variance of each interval, as a column)."""
        starts = a[:, None]
        ends = starts + length
        c1, c2 = self.c1, self.c2
        mean = (c1[ends] - c1[starts]) / length
        sums = c1[starts + offsets[None, :]] - c1[starts] - offsets[None, :] * mean
        s2 = (c2[ends] - c2[starts]) / length - mean * mean
        return sums, np.maximum(s2, 0.0)


@dataclass(frozen=True)
class _Split:
    index: int
    statistic: float
    p_value: float


@dataclass(frozen=True)
class RankScan:
    """The default detector (see the module docstring). All options are keyword arguments of
    :func:`change_points`."""

    alpha: float = 0.01
    """Allowed chance that a noise-only segment produces a change point (per scan)."""
    min_size: int = 5
    """Points needed on both sides of a change found by the scan."""
    tail_min: int = 2
    """Newest points needed for the tail test to report a change (2 or more: one is an outlier)."""
    tail_window: int = 60
    """How many points before the tail it is compared with, at most."""
    tail_shift: float = 3.5
    """How far (in robust standard deviations of those points) the tail's median must have moved."""

    def __post_init__(self) -> None:
        for name in ("min_size", "tail_min", "tail_window"):
            value = getattr(self, name)
            whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())  # not nan/inf
            if isinstance(value, bool) or not whole:
                raise DetectionError(f"{name}={value!r} must be a whole number of points")
            object.__setattr__(self, name, int(value))
        for name in ("alpha", "tail_shift"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DetectionError(f"{name}={value!r} must be a number")
        if not 0 < self.alpha < 1:
            raise DetectionError(f"alpha={self.alpha!r} is out of range: use a probability such as 0.01")
        if self.min_size < 2:
            raise DetectionError(f"min_size={self.min_size!r} is too small: use 2 or more points per segment")
        if self.tail_min < 2:
            raise DetectionError(f"tail_min={self.tail_min!r}: one point cannot be told from an outlier; use 2+")
        if self.tail_window < self.min_size:
            raise DetectionError(f"tail_window={self.tail_window!r} must be at least min_size={self.min_size}")
        if not self.tail_shift >= 0:
            raise DetectionError(f"tail_shift={self.tail_shift!r} must be zero or more (robust sds)")

    # ------------------------------------------------------------------ scan
    def _best_split(self, ranks: _Ranks, a: int, b: int, factor: float) -> _Split | None:
        """The most significant split of ``x[a:b]`` (a rank CUSUM), Bonferroni over its positions."""
        key = (a, b, factor)
        if key in ranks.memo:
            return ranks.memo[key]
        m = b - a
        split = None
        if m >= 2 * self.min_size:
            offsets = np.arange(self.min_size, m - self.min_size + 1)
            c1, c2 = ranks.c1, ranks.c2
            total = c1[b] - c1[a]
            s2 = (c2[b] - c2[a]) / m - (total / m) ** 2
            if s2 > 1e-12:
                sums = c1[a + offsets] - c1[a] - offsets * (total / m)
                # Permutation variance of a sum of k of m scores: k (m - k) / (m - 1) * s2.
                t = sums / np.sqrt(offsets * (m - offsets) * (s2 * factor / (m - 1)))
                j = int(np.argmax(np.abs(t)))
                stat = float(t[j])
                p = min(1.0, len(offsets) * math.erfc(abs(stat) / math.sqrt(2)))
                split = _Split(a + int(offsets[j]), stat, p)
                if m <= EXACT_MAX and abs(stat) > _hopeless(len(offsets), self.alpha):
                    split = _exact_split(ranks.x[a:b], a, offsets, factor, t) or split
        ranks.memo[key] = split
        return split

    def _seeded(self, ranks: _Ranks, a: int, b: int, factor: float) -> _Split | None:
        """The best split over seeded sub-intervals of ``x[a:b]`` (halving lengths, half-overlapping),
        its p-value Bonferroni-adjusted over every position tried.

        A single scan of a segment misses a short excursion between two larger moves (up, then back
        down); an interval that holds only one of its edges sees it plainly (seeded binary segmentation,
        Kovacs et al. 2020). Every interval of one length is scanned in one vectorised step.
        """
        m = b - a
        best_stat, best_index, tried = 0.0, -1, 0
        length = m // 2
        while length >= 4 * self.min_size:
            starts = a + np.unique(np.append(np.arange(0, m - length + 1, max(1, length // 2)), m - length))
            offsets = np.arange(self.min_size, length - self.min_size + 1)
            sums, s2 = ranks.cusum(starts, length, offsets)
            var = offsets[None, :] * (length - offsets[None, :]) / (length - 1) * s2 * factor
            t = np.divide(sums, np.sqrt(var), out=np.zeros_like(sums), where=var > 1e-12)
            row, col = divmod(int(np.argmax(np.abs(t))), len(offsets))
            stat, index = float(t[row, col]), int(starts[row] + offsets[col])
            if length <= EXACT_MAX and abs(stat) > _hopeless(tried + t.size + m, self.alpha):
                # The most extreme interval of this length, with its exact p-value turned into a z-score
                # (a short excursion is where the normal approximation is most conservative).
                start = int(starts[row])
                exact = _exact_split(ranks.x[start : start + length], start, offsets, factor, t[row])
                if exact is not None and abs(exact.statistic) > abs(stat):
                    stat, index = exact.statistic, exact.index
            if abs(stat) > abs(best_stat):
                best_stat, best_index = stat, index
            tried += t.size
            length //= 2
        if best_index < 0:
            return None
        p = min(1.0, (tried + m) * math.erfc(abs(best_stat) / math.sqrt(2)))
        return _Split(best_index, best_stat, p)

    def _segment(self, ranks: _Ranks, factor: float, known: Sequence[_Split] = ()) -> list[_Split]:
        """Binary segmentation; ``known`` splits (still significant at this ``factor``) are kept and
        only the segments between them are searched further."""
        found: list[_Split] = list(known)
        edges = [0, *(s.index for s in known), ranks.n]
        stack = list(itertools.pairwise(edges))
        while stack:
            a, b = stack.pop()
            split = self._best_split(ranks, a, b, factor)
            if split is None or split.p_value >= self.alpha:
                split = self._seeded(ranks, a, b, factor)
            if split is not None and split.p_value < self.alpha:
                found.append(split)
                stack.extend(((a, split.index), (split.index, b)))
        found.sort(key=lambda s: s.index)
        return self._refine(ranks.x, self._prune(ranks, factor, found))

    def _refine(self, x: FloatArray, splits: list[_Split]) -> list[_Split]:
        """Move each change point to the least-squares split nearby, on outlier-clipped values.

        The rank statistic's maximum is biased towards the longer side near the ends of a segment
        (ranks are bounded); least squares is the Gaussian maximum-likelihood split, and clipping each
        value to 3 robust sds around a running median keeps an outlier from pulling it.
        """
        if not splits:
            return splits
        w = _clipped(x)
        scale = float(np.max(np.abs(w - w.mean())))
        w = (w - w.mean()) / scale if scale > 0 else w - w.mean()  # squares of huge or tiny units stay finite
        bounds = [0, *(s.index for s in splits), len(x)]
        refined: list[_Split] = []
        for i, split in enumerate(splits):
            # Left of it: the already refined neighbour, so two neighbours cannot meet at one index.
            a = refined[-1].index if refined else 0
            b = bounds[i + 2]
            reach = 3 * self.min_size
            k = np.arange(max(a + self.min_size, split.index - reach), min(b - self.min_size, split.index + reach) + 1)
            if len(k) == 0:  # no room to move it: keep it where the scan put it, if that is still a split
                if a < split.index < b:
                    refined.append(split)
                continue
            seg = w[a:b]
            cums = np.cumsum(seg)
            total, m = cums[-1], len(seg)
            left = cums[k - a - 1]
            # Between-segment sum of squares: the split that maximises it minimises the residual one.
            gain = left**2 / (k - a) + (total - left) ** 2 / (m - (k - a))
            refined.append(_Split(int(k[int(np.argmax(gain))]), split.statistic, split.p_value))
        return refined

    def _prune(self, ranks: _Ranks, factor: float, splits: list[_Split]) -> list[_Split]:
        """Re-test each change point between its neighbours until the set is stable."""
        for _ in range(2 * len(splits) + 2):
            changed = False
            bounds = [0, *(s.index for s in splits), ranks.n]
            kept: list[_Split] = []
            for i in range(len(splits)):
                moved = self._best_split(ranks, bounds[i], bounds[i + 2], factor)
                if moved is None or moved.p_value >= self.alpha:
                    changed = True
                    continue
                changed |= moved.index != splits[i].index
                kept.append(moved)
            deduped = {s.index: s for s in kept}
            changed |= len(deduped) != len(kept)
            splits = sorted(deduped.values(), key=lambda s: s.index)
            if not changed:
                break
        return splits

    # ------------------------------------------------------------------ tail
    def _tail(self, x: FloatArray, last: int) -> _Split | None:
        """A change in the newest points, where the scan has too few of them to reach significance.

        Exact permutation test on the order of the newest ``L`` points among the ``W`` before them: if
        ``j`` of those lie beyond the least extreme of the newest, ``p = 2 C(j+L, L) / C(W+L, L)``, doubled
        for trying several sizes; and the least extreme new point must sit ``tail_shift`` robust sds away.
        Of the tails that pass, the best split (least absolute deviation from the two medians) wins.
        """
        n = len(x)
        best: _Split | None = None
        best_cost = math.inf
        for size in range(self.tail_max, self.tail_min - 1, -1):
            start = n - size
            if start - last < self.min_size:
                continue
            ref = np.sort(x[max(last, start - self.tail_window) : start])
            tail = np.sort(x[start:])
            level, tail_level = _sorted_median(ref), _sorted_median(tail)
            up = tail_level > level
            # How many earlier points lie beyond the newest point nearest to the old level.
            beyond = (
                len(ref) - int(np.searchsorted(ref, tail[0], "left"))
                if up
                else int(np.searchsorted(ref, tail[-1], "right"))
            )
            # The sizes tried are nested and strongly dependent: a factor of 2 for trying several.
            p = min(1.0, 4.0 * math.comb(beyond + size, size) / math.comb(len(ref) + size, size))
            if p >= self.alpha:
                continue
            spread = 1.4826 * _sorted_median(np.sort(np.abs(ref - level)))
            # Every new point must have moved, not just their median: one outlier is never a change.
            shift = (tail[0] - level) if up else (level - tail[-1])
            if shift <= 0 or (spread > 0 and shift < self.tail_shift * spread):
                continue
            stat = math.inf if spread == 0 else shift / spread
            before = x[last:start]
            cost = float(np.abs(before - _median(before)).sum() + np.abs(tail - tail_level).sum())
            if cost < best_cost:
                best, best_cost = _Split(start, stat if up else -stat, p), cost
        return best

    @property
    def tail_max(self) -> int:
        """The longest tail tested: beyond it, the scan alone has the power."""
        return 2 * self.min_size

    # ------------------------------------------------------------------ all together
    def __call__(self, values: FloatArray, *, noise: FloatArray | None = None) -> list[ChangePoint]:
        n = len(values)
        if n < 2 * self.tail_min:
            return []
        _, factor = long_run_factor(values)
        ranks = _Ranks(values)
        splits = self._segment(ranks, factor)
        if not splits and factor > 1.2:
            # Big level shifts in a short series can pass for autocorrelation. Segment as if the noise
            # were independent; if the correlation within those segments is much lower, it was the
            # shifts (true AR noise keeps most of its correlation inside any segmentation).
            pilot = self._segment(ranks, 1.0)
            if pilot:
                _, within = long_run_factor(values, [s.index for s in pilot])
                if within < 0.75 * factor:
                    splits = self._segment(ranks, within)
        if splits:
            # Level shifts bias the first estimate of rho upwards: re-estimate it within the segments.
            _, within = long_run_factor(values, [s.index for s in splits])
            if within < 0.9 * factor:  # a smaller factor only makes the splits found more significant
                splits = self._segment(ranks, within, splits)
        splits = _with_level_change(values, splits)
        if splits and n - splits[-1].index <= self.min_size:
            # The scan cannot place a change closer to the end than min_size; the tail test can.
            tail = self._tail(values, splits[-2].index if len(splits) > 1 else 0)
            if tail is not None:
                splits[-1] = tail
        last = splits[-1].index if splits else 0
        if n - last > self.tail_min:
            tail = self._tail(values, last)
            if tail is not None:
                splits.append(tail)
        bounds = [0, *(s.index for s in splits), n]
        points = []
        for i, split in enumerate(splits):
            before = values[bounds[i] : split.index]
            after = values[split.index : bounds[i + 2]]
            level_before, level_after = _median(before), _median(after)
            points.append(
                ChangePoint(
                    index=split.index,
                    before=level_before,
                    after=level_after,
                    statistic=math.copysign(abs(split.statistic), level_after - level_before),
                    p_value=split.p_value,
                    n_before=len(before),
                    n_after=len(after),
                )
            )
        if noise is not None:
            points = _above_noise_floor(points, noise, bounds, self.alpha)
        return points


def _with_level_change(x: FloatArray, splits: list[_Split]) -> list[_Split]:
    """Drop splits whose two segments have the same median, until none is left.

    On heavily tied data (a metric that is nearly always the same value) the rank statistic's normal
    approximation overstates significance; a "change" that leaves the level where it was is not one.
    """
    while splits:
        bounds = [0, *(s.index for s in splits), len(x)]
        same = [
            i for i, s in enumerate(splits) if _median(x[bounds[i] : s.index]) == _median(x[s.index : bounds[i + 2]])
        ]
        if not same:
            break
        del splits[same[0]]
    return splits


def _above_noise_floor(
    points: list[ChangePoint], noise: FloatArray, bounds: list[int], alpha: float
) -> list[ChangePoint]:
    """Drop shifts that the known per-point noise explains (z-test of the two levels)."""
    z_crit = _upper_z(alpha / 2)
    kept = []
    for i, cp in enumerate(points):
        before = noise[bounds[i] : cp.index]
        after = noise[cp.index : bounds[i + 2]]
        known_b, known_a = before[np.isfinite(before)], after[np.isfinite(after)]
        if not len(known_b) or not len(known_a):
            kept.append(cp)
            continue
        # The standard error of a segment's level: a typical point's error over sqrt(points).
        se = math.sqrt(float(np.median(known_b)) ** 2 / cp.n_before + float(np.median(known_a)) ** 2 / cp.n_after)
        if se == 0 or abs(cp.delta) / se >= z_crit:
            kept.append(cp)
    return kept


def change_points(
    values: Sequence[float] | FloatArray,
    *,
    samples: Sequence[Sequence[float]] | None = None,
    noise: Sequence[float] | float | None = None,
    method: ChangePointMethod | None = None,
    **options: float,
) -> list[ChangePoint]:
    """Change points of the per-commit series ``values``, oldest first.

    ``samples[i]`` are the repeats behind ``values[i]`` (optional); with two or more they give the
    point's noise floor. ``noise`` gives it directly: one standard error, or one per point (for an
    accuracy, ``sqrt(p (1 - p) / N)``). ``method`` replaces the detector; ``options`` configure the
    default :class:`RankScan` (``alpha``, ``min_size``, ``tail_min``, ``tail_window``, ``tail_shift``).

    NaN values are gaps: skipped, and every ``index`` still refers to a position in ``values``.
    """
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DetectionError(f"values must be numbers: {exc}") from None
    if x.ndim != 1:
        raise DetectionError(f"values must be one series (1-D), got shape {x.shape}")
    if np.isinf(x).any():
        raise DetectionError("values contain an infinity: record finite numbers (NaN marks a gap)")
    # Near the largest double, sums, medians and squares overflow: scale by a power of two (exact; ranks
    # and p-values do not change) and scale the levels back.
    shift = _overflow_shift(x, noise)
    if shift:
        x = np.ldexp(x, -shift)
        if samples is not None:
            samples = [np.ldexp(np.asarray(reps, dtype=float), -shift) for reps in samples]
        if noise is not None:
            noise = np.ldexp(np.asarray(noise, dtype=float), -shift)
    with np.errstate(over="ignore", invalid="ignore"):  # repeats far beyond their value: spread inf or nan
        floor = _noise_vector(len(x), samples, noise)
    detector: ChangePointMethod
    if method is None:
        try:
            detector = RankScan(**options)  # type: ignore[arg-type]
        except TypeError as exc:
            raise DetectionError(f"unknown detection option: {exc}") from None
    elif options:
        raise DetectionError(f"options {sorted(options)} configure the default method; give them to {method!r}")
    else:
        detector = method
    valid = np.flatnonzero(~np.isnan(x))
    found = detector(x[valid], noise=None if floor is None else floor[valid])
    if shift:
        found = [replace(cp, before=math.ldexp(cp.before, shift), after=math.ldexp(cp.after, shift)) for cp in found]
    if len(valid) == len(x):
        return found
    # Map positions among the valid points back to positions in ``values``.
    return [
        ChangePoint(
            int(valid[cp.index]),
            cp.before,
            cp.after,
            cp.statistic,
            cp.p_value,
            cp.n_before,
            cp.n_after,
        )
        for cp in found
    ]


SAFE_MAGNITUDE = 2.0**500
"""Values, repeats and noise up to this magnitude are detected as they are; larger ones are scaled."""


def _overflow_shift(x: FloatArray, noise: Sequence[float] | float | None) -> int:
    """The power of two to scale by so that the largest finite value or noise is at most SAFE_MAGNITUDE
    (0: none needed)."""
    parts = [x] if noise is None else [x, np.asarray(noise, dtype=float).ravel()]
    biggest = 0.0
    for part in parts:
        finite = np.abs(part[np.isfinite(part)])
        if finite.size:
            biggest = max(biggest, float(finite.max()))
    return max(math.frexp(biggest)[1] - math.frexp(SAFE_MAGNITUDE)[1], 0) if biggest > SAFE_MAGNITUDE else 0


def _noise_vector(
    n: int, samples: Sequence[Sequence[float]] | None, noise: Sequence[float] | float | None
) -> FloatArray | None:
    if samples is not None and len(samples) != n:
        raise DetectionError(f"samples has {len(samples)} entries for {n} values: give one list of repeats per value")
    floor: FloatArray | None = None
    if noise is not None:
        arr = np.asarray(noise, dtype=float)
        floor = np.full(n, float(arr)) if arr.ndim == 0 else arr
        if len(floor) != n:
            raise DetectionError(f"noise has {len(floor)} entries for {n} values: give one, or one per value")
        if (floor[np.isfinite(floor)] < 0).any():
            raise DetectionError("noise must be standard errors (zero or more)")
    if samples is not None:
        from_samples = noise_from_samples(samples)
        floor = from_samples if floor is None else np.fmax(floor, from_samples)
    return floor
