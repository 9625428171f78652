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

**Speed.** A series is a few hundred points, so the cost is the number of numpy calls, not the
arithmetic in them; the method is organised to make few. Ranks are computed once per series, and every
CUSUM of any interval comes from two cumulative sums of them (``_Ranks``). All splits of all seeded
sub-intervals of a segment are one flat gather over index arrays that depend only on the segment's
length and are kept (``_Seeds``); long segments go length by length instead, which keeps their arrays
in the CPU's caches. What does not depend on the variance factor is kept per segment, so the passes
at another factor and the pruning's re-tests cost a division. The tail test tries all its sizes at
once, and a count that needs no sorting rules out most series before anything is sorted. Exact
p-values are computed only where they could reach significance. The results are those of testing
one interval and one size at a time, bit for bit (``tests/detect/test_changepoint.py`` pins the
shortcuts against the plain computations).
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
_SQRT2 = math.sqrt(2)
_NAN = np.full(1, np.nan)
_NAN.flags.writeable = False
MAX_RHO = 0.9


class ChangePointMethod(Protocol):
    """A change-point detector: what :func:`change_points` delegates to (inject your own)."""

    def __call__(
        self, values: FloatArray, *, noise: FloatArray | None = None
    ) -> list[ChangePoint]: ...  # pragma: no cover - protocol


_add = np.add.reduce  # ``ndarray.sum`` and ``np.mean`` without their Python-level wrappers (same sums)


def _ranks(x: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank."""
    n = len(x)
    order = x.argsort()  # any order of tied values gives them the same (average) rank
    xs = x[order]
    ranks = np.empty(n)
    new = xs[1:] != xs[:-1]
    if new.all():  # no ties, the usual case: the ranks are the positions in sorted order
        ranks[order] = np.arange(1.0, n + 1.0)
        return ranks
    starts = np.concatenate(([0], np.flatnonzero(new) + 1))
    ends = np.concatenate((starts[1:], [n]))
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
    return _long_run(_ranks(x), boundaries)


def _long_run(r: FloatArray, boundaries: Sequence[int]) -> tuple[float, float]:
    """:func:`long_run_factor` of a gap-free series from its ranks ``r`` (computed once per series)."""
    n = len(r)
    if n < 8:
        return 0.0, 1.0
    if boundaries:
        segments = [(a, b) for a, b in itertools.pairwise([0, *boundaries, n]) if b > a]
        level = np.empty(n)
        for a, b in segments:
            level[a:b] = float(_add(r[a:b])) / (b - a)
        resid = r - level
        den = float(_add(resid * resid)) / n
        products = resid[:-1] * resid[1:]
        pairs = np.concatenate([products[a : b - 1] for a, b in segments])  # no pair across a boundary
        rho = float(_add(pairs)) / len(pairs) / den if den > 0 else 0.0
    else:
        v1, v2 = _trimmed_mean_square(r[1:] - r[:-1]), _trimmed_mean_square(r[2:] - r[:-2])
        if v1 == 0:
            return 0.0, 1.0
        rho = v2 / v1 - 1.0
    # Shrink towards no correlation by the estimate's own noise (its sd under no correlation is about
    # 1.85 / sqrt(n) for the ratio, 1 / sqrt(n) for the autocorrelation): a short series with no real
    # correlation must not lose its power to a noisy rho, and a strongly correlated one barely moves.
    se = (1.0 if boundaries else 1.85) / math.sqrt(n)
    rho = max(rho, 0.0)
    rho = min(rho * rho * rho / (rho * rho + se * se) if rho > 0 else 0.0, MAX_RHO)
    return rho, (1.0 + rho) / (1.0 - rho)


def _trimmed_mean_square(d: FloatArray, trim: float = 0.1) -> float:
    """Mean square of the differences without the largest ``trim`` share of them: a level shift makes a
    few large differences (lag-2 differences cross each shift twice, lag-1 once, which would bias rho
    upwards), and they are the ones dropped. Dropping the same share of both keeps the ratio unbiased."""
    squares = d * d
    squares.sort()
    keep = max(len(squares) - max(int(trim * len(squares)), 1), 1)
    return float(_add(squares[:keep])) / keep


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
    part = values.copy()
    if m % 2:
        part.partition(half)
        return float(part[half])
    part.partition((half - 1, half))
    return float((part[half - 1] + part[half]) / 2)


def _sorted_median(sorted_values: FloatArray) -> float:
    m = len(sorted_values)
    return float(sorted_values[m // 2] if m % 2 else (sorted_values[m // 2 - 1] + sorted_values[m // 2]) / 2)


def _clipped(x: FloatArray, half_width: int = 3) -> FloatArray:
    """``x`` with each value clipped to 3 robust sds around its running median (which follows steps)."""
    n = len(x)
    sigma = 1.4826 * _median(np.abs(x[1:] - x[:-1])) / math.sqrt(2) if n > 1 else 0.0
    if sigma == 0 or n < 2 * half_width + 1:
        return x
    # Every window of 2 * half_width + 1 values around each point, the ends padded with the end values.
    padded = np.empty(n + 2 * half_width)
    padded[:half_width] = x[0]
    padded[half_width : n + half_width] = x
    padded[n + half_width :] = x[-1]
    windows = padded[_windows(n, half_width)]
    windows.partition(half_width, axis=1)
    level = windows[:, half_width]
    clipped: FloatArray = level + np.minimum(np.maximum(x - level, -3 * sigma), 3 * sigma)
    return clipped


def _windows(n: int, half_width: int) -> npt.NDArray[np.intp]:
    """Indices of every window of ``2 * half_width + 1`` values in ``n + 2 * half_width`` (kept for short series)."""
    return _windows_cached(n, half_width) if n <= 4096 else _window_index(n, half_width)


def _window_index(n: int, half_width: int) -> npt.NDArray[np.intp]:
    index: npt.NDArray[np.intp] = np.arange(n)[:, None] + np.arange(2 * half_width + 1)
    index.flags.writeable = False
    return index


_windows_cached = functools.lru_cache(maxsize=16)(_window_index)


EXACT_MAX = 40
"""Segments this short are tested with exact Wilcoxon p-values (the normal approximation is
conservative in the far tail, which is where a short series with a big change sits)."""


@functools.lru_cache(maxsize=4096)
def _u_counts(n1: int, n2: int) -> FloatArray:
    """Counts of the Mann-Whitney ``U`` statistic (0 .. n1*n2) over all splits of ``n1 + n2`` untied
    values, by the recurrence ``c(n1, n2, u) = c(n1 - 1, n2, u - n2) + c(n1, n2 - 1, u)`` (read-only:
    shared by every caller)."""
    if n1 == 0 or n2 == 0:
        out = np.ones(1)
    else:
        left = _u_counts(n1 - 1, n2)  # the largest value is in the first group: it beats all n2
        right = _u_counts(n1, n2 - 1)
        out = np.zeros(n1 * n2 + 1)
        out[n2 : n2 + len(left)] += left
        out[: len(right)] += right
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4096)
def _u_cdf(n1: int, n2: int) -> FloatArray:
    """``P(U <= u)`` for u = 0 .. n1*n2 (read-only: shared by every caller)."""
    counts = _u_counts(n1, n2)
    cdf: FloatArray = np.cumsum(counts) / counts.sum()
    cdf.flags.writeable = False
    return cdf


@dataclass(frozen=True)
class _ExactTable:
    """The exact ``U`` distributions of every split ``k = lo .. m - lo`` of ``m`` untied values."""

    cdf: FloatArray
    """``P(U <= u)`` of each split, end to end."""
    base: npt.NDArray[np.int64]
    """Where each split's cdf starts in ``cdf``."""
    least: FloatArray
    """``k (k + 1) / 2``: the smallest rank sum of ``k`` values (``U`` is the rank sum less this)."""


@functools.lru_cache(maxsize=1024)
def _exact_table(m: int, lo: int) -> _ExactTable:
    offsets = np.arange(lo, m - lo + 1)
    cdfs = [_u_cdf(k, m - k) for k in offsets.tolist()]
    base = np.concatenate(([0], np.cumsum([len(c) for c in cdfs[:-1]], dtype=np.int64)))
    table = _ExactTable(np.concatenate(cdfs), base, offsets * (offsets + 1) / 2)
    for array in (table.cdf, table.base, table.least):
        array.flags.writeable = False
    return table


def _exact_split(seg: FloatArray, a: int, lo: int, factor: float, t: FloatArray) -> _Split | None:
    """The split ``k = lo .. len(seg) - lo`` of an untied short segment with the smallest exact
    two-sided Wilcoxon p-value, Bonferroni over those splits; with autocorrelation (``factor`` > 1) the
    exact p becomes a z-score that is shrunk like the CUSUM's (``t``: its values, one per split, for the
    sign). ``None`` when every value is the same."""
    ranks = _ranks(seg)  # mid-ranks: a tie counts half to each side
    if ranks[0] == ranks[-1] and np.all(ranks == ranks[0]):
        return None
    m = len(seg)
    table = _exact_table(m, lo)
    u = ranks.cumsum()[lo - 1 : m - lo] - table.least  # U of each split k = lo .. m - lo: U >= 0
    # With ties U can be a half-integer. Its tail under the untied distribution (which is wider than
    # the tied one) is a conservative p-value.
    lower = table.cdf[table.base + u.astype(np.int64)]  # truncation: the floor of U
    high = np.ceil(u).astype(np.int64)
    upper = 1.0 - table.cdf[table.base + high - 1]
    if np.minimum.reduce(high) == 0:
        upper[high == 0] = 1.0
    p = np.minimum(1.0, 2.0 * np.minimum(lower, upper))
    best_j = int(p.argmin())  # the first of the smallest, as a scan in order keeps it
    best_p = float(p[best_j])
    if best_p >= 1.0:
        return None
    z = _NORMAL.inv_cdf(1.0 - best_p / 2.0) / math.sqrt(factor) if best_p > 0 else math.inf
    p_adj = min(1.0, len(p) * math.erfc(z / math.sqrt(2)))
    return _Split(a + lo + best_j, math.copysign(z, float(t[best_j])), p_adj)


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


@dataclass(frozen=True)
class _Scan:
    """The splits ``offsets`` of a segment of ``m`` points that the rank CUSUM tries (whole numbers,
    stored as floats: the arithmetic with them is in floats, and needs no conversion)."""

    offsets: FloatArray
    spread: FloatArray
    """``k (m - k)``: the permutation variance of a sum of ``k`` of the ``m`` scores, over theirs."""


def _scan(m: int, min_size: int) -> _Scan:
    return _scan_cached(m, min_size) if m <= CACHED_LENGTH else _scan_build(m, min_size)


def _scan_build(m: int, min_size: int) -> _Scan:
    offsets = np.arange(min_size, m - min_size + 1)
    scan = _Scan(offsets.astype(float), (offsets * (m - offsets)).astype(float))
    scan.offsets.flags.writeable = scan.spread.flags.writeable = False
    return scan


@dataclass(frozen=True)
class _SeedSplits:
    """Every split of every seeded sub-interval in flat arrays, for one gather each: its row (the
    sub-interval), the row's start, the split position, both of those for one gather (``ends``), the
    offset in the row, and the permutation variance ``k (L - k) / (L - 1)`` of a sum of ``k`` of the
    row's ``L`` scores, over theirs."""

    row: npt.NDArray[np.int64]
    start: npt.NDArray[np.int64]
    split: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    """``split`` then ``start``."""
    offset: FloatArray
    spread: FloatArray


@dataclass(frozen=True)
class _Seeds:
    """The seeded sub-intervals of a segment of ``m`` points (positions relative to its start): halving
    lengths, longest first, each length's rows half-overlapping. Their splits are numbered in one flat
    order (by length, then row, then split)."""

    min_size: int
    lengths: tuple[tuple[int, int, int, int, int], ...]
    """One ``(length, first split, splits per row, splits, first row)`` per length: the first split is
    also the number tried at longer lengths."""
    row_start: npt.NDArray[np.int64]
    row_end: npt.NDArray[np.int64]
    row_len: npt.NDArray[np.int64]
    first: npt.NDArray[np.int64]
    """The first split of each length (for ``np.maximum.reduceat``)."""
    short: tuple[int, ...]
    """The lengths (their positions in ``lengths``) short enough for exact p-values."""
    positions: int
    """Splits tried in all: the Bonferroni count."""
    splits: _SeedSplits | None
    """The splits as flat index arrays: kept for short segments (see ``CACHED_LENGTH``), where one
    gather over all of them beats a step per length; ``None`` for long ones."""

    def split(self, j: int) -> tuple[int, int]:
        """(start of its row, split position) of split ``j``."""
        if self.splits is not None:
            return int(self.splits.start[j]), int(self.splits.split[j])
        for _, first, per_row, count, first_row in self.lengths:
            if j < first + count:
                row, col = divmod(j - first, per_row)
                start = int(self.row_start[first_row + row])
                return start, start + self.min_size + col
        raise IndexError(j)  # pragma: no cover - j comes from an argmax over the splits


def _seeds(m: int, min_size: int) -> _Seeds | None:
    return _seeds_cached(m, min_size) if m <= CACHED_LENGTH else _seeds_build(m, min_size, flat=False)


def _seeds_build(m: int, min_size: int, flat: bool = True) -> _Seeds | None:
    """Halving lengths from ``m // 2`` down to ``4 * min_size``, half-overlapping, the last flush with
    the segment's end (``None`` when the segment is too short for any)."""
    lengths: list[tuple[int, int, int, int, int]] = []
    row_starts: list[int] = []
    row_lengths: list[int] = []
    tried = 0
    length = m // 2
    while length >= 4 * min_size:
        starts = list(range(0, m - length + 1, max(1, length // 2)))
        if starts[-1] != m - length:
            starts.append(m - length)
        per_row = length - 2 * min_size + 1
        lengths.append((length, tried, per_row, len(starts) * per_row, len(row_starts)))
        row_starts += starts
        row_lengths += [length] * len(starts)
        tried += len(starts) * per_row
        length //= 2
    if not lengths:
        return None
    row_start = np.array(row_starts, dtype=np.int64)
    row_len = np.array(row_lengths, dtype=np.int64)
    splits = None
    if flat:
        per_row_count = row_len - (2 * min_size - 1)
        el_row = np.repeat(np.arange(len(row_starts)), per_row_count)
        el_first = np.cumsum(per_row_count) - per_row_count  # each row's first split in the flat order
        el_offset = np.arange(tried) - el_first[el_row] + min_size
        el_start = row_start[el_row]
        el_len = row_len[el_row]
        el_split = el_start + el_offset
        splits = _SeedSplits(
            row=el_row,
            start=el_start,
            split=el_split,
            ends=np.concatenate((el_split, el_start)),
            offset=el_offset.astype(float),
            spread=el_offset * (el_len - el_offset) / (el_len - 1),
        )
        for array in (splits.row, splits.start, splits.split, splits.ends, splits.offset, splits.spread):
            array.flags.writeable = False
    seeds = _Seeds(
        min_size=min_size,
        lengths=tuple(lengths),
        row_start=row_start,
        row_end=row_start + row_len,
        row_len=row_len,
        first=np.array([first for _, first, _, _, _ in lengths], dtype=np.int64),
        short=tuple(i for i, (length, *_) in enumerate(lengths) if length <= EXACT_MAX),
        positions=tried,
        splits=splits,
    )
    for array in (seeds.row_start, seeds.row_end, seeds.row_len, seeds.first):
        array.flags.writeable = False
    return seeds


CACHED_LENGTH = 256
"""Scan positions and seeded intervals are kept for segments up to this long (their arrays grow with the
length, and a long series has many lengths: longer ones are built each time, which their scan dwarfs)."""
_scan_cached = functools.lru_cache(maxsize=256)(_scan_build)
_seeds_cached = functools.lru_cache(maxsize=256)(_seeds_build)


class _Ranks:
    """Rank CUSUMs of any split of any interval of ``x``, from cumulative sums of its ranks.

    The scores are the ranks in the whole series. Inside an interval they are a monotone function of
    the interval's own ranks, and under no change they are exchangeable there, so centring by the
    interval's mean score and scaling by its permutation variance gives an exact-moment linear rank
    statistic (ties included) without sorting any interval.

    One per series: it also keeps what does not depend on the variance factor (the centred sums of each
    segment scanned, the clipped values of the refinement), so a second pass at another factor, or the
    pruning's re-tests, cost only the division.
    """

    def __init__(self, x: FloatArray, r: FloatArray) -> None:
        self.x = x
        self.n = n = len(x)
        self.c1 = np.empty(n + 1)
        self.c1[0] = 0.0
        r.cumsum(out=self.c1[1:])
        self.c2 = np.empty(n + 1)
        self.c2[0] = 0.0
        (r * r).cumsum(out=self.c2[1:])
        self.memo: dict[tuple[int, int, float], _Split | None] = {}
        self.sums: dict[tuple[int, int], tuple[FloatArray, float, FloatArray] | None] = {}
        self.seeded: dict[tuple[int, int], tuple[FloatArray, FloatArray, bool]] = {}
        self.medians: dict[tuple[int, int], float] = {}
        self._scaled: FloatArray | None = None

    def scan_sums(self, a: int, b: int, min_size: int) -> tuple[FloatArray, float, FloatArray] | None:
        """(centred score sums of ``x[a:a+k]`` for ``k = min_size .. b - a - min_size``, the score
        variance of ``x[a:b]``, ``k (b - a - k)`` for each), or ``None`` where there is no such ``k`` or
        all scores are (nearly) the same."""
        key = (a, b)
        sums = self.sums
        if key in sums:
            return sums[key]
        m = b - a
        found = None
        if m >= 2 * min_size:
            c1, c2 = self.c1, self.c2
            start = c1.item(a)
            mean = (c1.item(b) - start) / m
            s2 = (c2.item(b) - c2.item(a)) / m - mean**2
            if s2 > 1e-12:
                scan = _scan(m, min_size)
                found = (c1[a + min_size : b - min_size + 1] - start - scan.offsets * mean, s2, scan.spread)
        sums[key] = found
        return found

    def median(self, a: int, b: int) -> float:
        """The median of ``x[a:b]`` (not empty)."""
        key = (a, b)
        found = self.medians.get(key)
        if found is None:
            found = self.medians[key] = _median(self.x[a:b])
        return found

    def seeded_sums(self, a: int, b: int, seeds: _Seeds, flat: _SeedSplits) -> tuple[FloatArray, FloatArray, bool]:
        """(centred score sums of every split of every seeded sub-interval of ``x[a:b]``, their
        permutation variances at factor 1, whether all of those are above 1e-12), for a segment whose
        splits are kept flat (``flat``: ``seeds.splits``)."""
        key = (a, b)
        found = self.seeded.get(key)
        if found is None:
            c1, c2 = self.c1[a:], self.c2[a:]
            mean = (c1[seeds.row_end] - c1[seeds.row_start]) / seeds.row_len
            s2 = np.maximum((c2[seeds.row_end] - c2[seeds.row_start]) / seeds.row_len - mean * mean, 0.0)
            ends = c1[flat.ends]  # each split, then each start
            sums = ends[: len(flat.row)] - ends[len(flat.row) :] - flat.offset * mean[flat.row]
            base = flat.spread * s2[flat.row]
            found = self.seeded[key] = (sums, base, bool(np.minimum.reduce(base) > 1e-12))
        return found

    def seeded_length(self, a: int, seeds: _Seeds, g: int) -> tuple[FloatArray, FloatArray, bool]:
        """:meth:`seeded_sums` of the sub-intervals of length ``seeds.lengths[g]`` only (rows by splits),
        for a long segment: a step per length keeps its arrays small enough for the CPU's caches."""
        length, _, per_row, count, first_row = seeds.lengths[g]
        starts = seeds.row_start[first_row : first_row + count // per_row, None]
        c1, c2 = self.c1[a:], self.c2[a:]
        c1_start = c1[starts]
        mean = (c1[starts + length] - c1_start) / length
        s2 = np.maximum((c2[starts + length] - c2[starts]) / length - mean * mean, 0.0)
        offsets = np.arange(seeds.min_size, length - seeds.min_size + 1)
        sums = c1[starts + offsets] - c1_start - offsets.astype(float) * mean
        base = (offsets * (length - offsets) / (length - 1)) * s2
        return sums, base, bool(np.minimum.reduce(base, axis=None) > 1e-12)

    def scaled(self) -> FloatArray:
        """The clipped values, centred and scaled to at most 1 (squares of huge or tiny units stay finite)."""
        if self._scaled is None:
            w = _clipped(self.x)
            mean = float(_add(w)) / len(w)
            scale = float(np.maximum.reduce(np.abs(w - mean)))
            self._scaled = (w - mean) / scale if scale > 0 else w - mean
        return self._scaled


def _cusum_z(sums: FloatArray, spread: FloatArray, positive: bool, factor: float) -> FloatArray:
    """The standardised CUSUMs ``sums / sqrt(spread * factor)``; zero where that variance is not above
    1e-12 (an interval of equal scores has no split)."""
    var = spread * factor
    if positive and factor >= 1.0:  # then every variance is above 1e-12 too
        z: FloatArray = sums / np.sqrt(var)
        return z
    return np.divide(sums, np.sqrt(var), out=np.zeros(var.shape), where=var > 1e-12)


@dataclass(frozen=True)
class _Split:
    index: int
    statistic: float
    p_value: float


@functools.lru_cache(maxsize=4096)
def _tail_limit(size: int, window: int, alpha: float) -> int:
    """The most earlier points out of ``window`` that may lie beyond the newest ``size`` for the tail
    test's p-value (see :meth:`RankScan._tail`) to stay below ``alpha`` (-1: none may)."""
    limit = -1
    ways, total = 1, math.comb(window + size, size)  # ways = C(beyond + size, size), from beyond = 0 up
    for beyond in range(window + 1):
        if _tail_p_of(ways, total) >= alpha:
            break
        limit = beyond
        ways = ways * (beyond + size + 1) // (beyond + 1)
    return limit


def _tail_p(beyond: int, size: int, window: int) -> float:
    return _tail_p_of(math.comb(beyond + size, size), math.comb(window + size, size))


def _tail_p_of(ways: int, total: int) -> float:
    # The sizes tried are nested and strongly dependent: a factor of 2 for trying several.
    return min(1.0, 4.0 * ways / total)


@dataclass(frozen=True)
class _TailRows:
    """Where the tail test of :meth:`RankScan._tail` looks, for one distance from its last change point
    to the end of the series: one row per tail size tried (largest first), indices counted back from
    the end (negative), rows padded to a common width (the padding is set to NaN, which sorts last
    and lies beyond nothing), and flat indices into the sorted rows for their medians."""

    rows: tuple[tuple[int, int, int], ...]
    """(tail size, earlier points compared with, the most of them that may lie beyond) per row."""
    largest: int
    size_index: npt.NDArray[np.int64]
    """Each row's size less one."""
    limits: npt.NDArray[np.int64]
    """The most earlier points that may lie beyond, per row."""
    ref_index: npt.NDArray[np.int64]
    ref_padded: bool
    """Whether some rows are padded: then ``ref_index`` points into the values with NaN appended."""
    ref_low: npt.NDArray[np.int64]
    ref_high: npt.NDArray[np.int64]
    tail_index: npt.NDArray[np.int64]
    """Into the values with NaN appended."""
    tail_low: npt.NDArray[np.int64]
    tail_high: npt.NDArray[np.int64]


def _tail_rows(span: int, scan: RankScan) -> _TailRows | None:
    return _tail_rows_cached(span, scan.tail_min, scan.tail_max, scan.min_size, scan.tail_window, scan.alpha)


@functools.lru_cache(maxsize=1024)
def _tail_rows_cached(
    span: int, tail_min: int, tail_max: int, min_size: int, window: int, alpha: float
) -> _TailRows | None:
    """``span``: points from the last change point to the end (at most ``window + tail_max``: beyond
    that, the rows are the same)."""
    largest = min(tail_max, span - min_size)
    if largest < tail_min:
        return None
    sizes = np.arange(largest, tail_min - 1, -1)
    firsts = np.maximum(-sizes - window, -span)  # the earlier points: [firsts, -sizes)
    widths = -sizes - firsts
    width = int(widths.max())
    # Indices count back from the end of the values with a NaN appended (which is at -1): padding.
    cols = np.arange(width)
    pad = cols >= widths[:, None]
    padded = bool(pad.any())
    ref_index = np.where(pad, -1, firsts[:, None] + cols - padded)  # without padding: into the values
    tail_cols = np.arange(largest)
    tail_index = np.where(tail_cols >= sizes[:, None], -1, -sizes[:, None] + tail_cols - 1)
    rows = np.arange(len(sizes))
    limits = [_tail_limit(size, w, alpha) for size, w in zip(sizes.tolist(), widths.tolist(), strict=True)]
    found = _TailRows(
        rows=tuple(zip(sizes.tolist(), widths.tolist(), limits, strict=True)),
        largest=largest,
        size_index=sizes - 1,
        limits=np.array(limits, dtype=np.int64),
        ref_index=ref_index,
        ref_padded=padded,
        ref_low=rows * width + (widths - 1) // 2,
        ref_high=rows * width + widths // 2,
        tail_index=tail_index,
        tail_low=rows * largest + (sizes - 1) // 2,
        tail_high=rows * largest + sizes // 2,
    )
    for array in (found.ref_index, found.tail_index, found.ref_low, found.ref_high, found.tail_low, found.tail_high):
        array.flags.writeable = False
    found.size_index.flags.writeable = found.limits.flags.writeable = False
    return found


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
        memo = ranks.memo
        if key in memo:
            return memo[key]
        split = None
        found = ranks.scan_sums(a, b, self.min_size)
        if found is not None:
            sums, s2, spread = found
            m = b - a
            # Permutation variance of a sum of k of m scores: k (m - k) / (m - 1) * s2.
            t = sums / np.sqrt(spread * (s2 * factor / (m - 1)))
            j = int(np.abs(t).argmax())
            stat = t.item(j)
            p = min(1.0, len(t) * math.erfc(abs(stat) / _SQRT2))
            split = _Split(a + self.min_size + j, stat, p)
            if m <= EXACT_MAX and abs(stat) > _hopeless(len(t), self.alpha):
                split = _exact_split(ranks.x[a:b], a, self.min_size, factor, t) or split
        memo[key] = split
        return split

    def _seeded(self, ranks: _Ranks, a: int, b: int, factor: float) -> _Split | None:
        """The best split over seeded sub-intervals of ``x[a:b]`` (halving lengths, half-overlapping),
        its p-value Bonferroni-adjusted over every position tried.

        A single scan of a segment misses a short excursion between two larger moves (up, then back
        down); an interval that holds only one of its edges sees it plainly (seeded binary segmentation,
        Kovacs et al. 2020). Every split of every interval is scanned in one vectorised step; the most
        extreme of each length gets an exact p-value where it is short and close enough to matter.
        """
        m = b - a
        if m // 2 < 4 * self.min_size:
            return None
        seeds = _seeds(m, self.min_size)
        if seeds is None:
            return None
        # The longest interval wins a tie, and in it the first split: as a scan by length would.
        groups: list[tuple[int, float, FloatArray]] | None = None  # per length: best split, its CUSUM, all
        if seeds.splits is not None:  # every length in one array
            t = _cusum_z(*ranks.seeded_sums(a, b, seeds, seeds.splits), factor)
            at = np.abs(t)
            j = int(at.argmax())
            stat = t.item(j)
            most = [abs(stat)] if len(seeds.lengths) == 1 else np.maximum.reduceat(at, seeds.first).tolist()
        else:  # a long segment: length by length
            groups = []
            for g, (length, *_) in enumerate(seeds.lengths):
                t = _cusum_z(*ranks.seeded_length(a, seeds, g), factor).ravel()
                k = int(np.abs(t).argmax())
                groups.append((k, t.item(k), t if length <= EXACT_MAX else t[:0]))
            most = [abs(stat) for _, stat, _ in groups]
            g = most.index(max(most))
            j, stat = seeds.lengths[g][1] + groups[g][0], groups[g][1]
        exact = False
        for i in seeds.short:
            _, first, _, count, _ = seeds.lengths[i]
            if most[i] > _hopeless(first + count + m, self.alpha):
                exact = True
                break
        if exact:
            if groups is None:
                groups = []
                for _, first, _, count, _ in seeds.lengths:
                    k = int(at[first : first + count].argmax())
                    groups.append((k, t.item(first + k), t[first : first + count]))
            best_stat, best_index = self._seeded_exact(ranks, a, m, factor, seeds, groups)
        else:
            best_stat, best_index = stat, a + seeds.split(j)[1]
            if best_stat == 0:
                return None
        if best_index < 0:
            return None
        p = min(1.0, (seeds.positions + m) * math.erfc(abs(best_stat) / math.sqrt(2)))
        return _Split(best_index, best_stat, p)

    def _seeded_exact(
        self,
        ranks: _Ranks,
        a: int,
        m: int,
        factor: float,
        seeds: _Seeds,
        groups: list[tuple[int, float, FloatArray]],
    ) -> tuple[float, int]:
        """:meth:`_seeded`'s best (statistic, index) length by length (``groups``: each length's most
        extreme split, its CUSUM, and all its CUSUMs where it is short), the most extreme interval of a
        short length with its exact p-value turned into a z-score (a short excursion is where the
        normal approximation is most conservative)."""
        best_stat, best_index = 0.0, -1
        for (length, first, per_row, count, _), (j, stat, t) in zip(seeds.lengths, groups, strict=True):
            start, split = seeds.split(first + j)
            index = a + split
            if length <= EXACT_MAX and abs(stat) > _hopeless(first + count + m, self.alpha):
                row = j // per_row * per_row
                start += a
                found = _exact_split(
                    ranks.x[start : start + length], start, self.min_size, factor, t[row : row + per_row]
                )
                if found is not None and abs(found.statistic) > abs(stat):
                    stat, index = found.statistic, found.index
            if abs(stat) > abs(best_stat):
                best_stat, best_index = stat, index
        return best_stat, best_index

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
        return self._refine(ranks, self._prune(ranks, factor, found))

    def _refine(self, ranks: _Ranks, splits: list[_Split]) -> list[_Split]:
        """Move each change point to the least-squares split nearby, on outlier-clipped values.

        The rank statistic's maximum is biased towards the longer side near the ends of a segment
        (ranks are bounded); least squares is the Gaussian maximum-likelihood split, and clipping each
        value to 3 robust sds around a running median keeps an outlier from pulling it.
        """
        if not splits:
            return splits
        w = ranks.scaled()
        bounds = [0, *(s.index for s in splits), ranks.n]
        refined: list[_Split] = []
        for i, split in enumerate(splits):
            # Left of it: the already refined neighbour, so two neighbours cannot meet at one index.
            a = refined[-1].index if refined else 0
            b = bounds[i + 2]
            reach = 3 * self.min_size
            lo = max(a + self.min_size, split.index - reach)
            hi = min(b - self.min_size, split.index + reach) + 1
            if lo >= hi:  # no room to move it: keep it where the scan put it, if that is still a split
                if a < split.index < b:
                    refined.append(split)
                continue
            cums = w[a:b].cumsum()
            total, m = cums.item(-1), b - a
            ka = np.arange(float(lo - a), float(hi - a))  # sizes of the left part
            left = cums[lo - a - 1 : hi - a - 1]
            # Between-segment sum of squares: the split that maximises it minimises the residual one.
            gain = left**2 / ka + (total - left) ** 2 / (m - ka)
            refined.append(_Split(lo + int(gain.argmax()), split.statistic, split.p_value))
        return refined

    def _prune(self, ranks: _Ranks, factor: float, splits: list[_Split]) -> list[_Split]:
        """Re-test each change point between its neighbours until the set is stable."""
        if not splits:
            return splits
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

        Every size is tested at once: one row per size (largest first), each row's earlier points and
        newest points sorted, padded with NaN (which sorts last and counts as beyond nothing).
        """
        n = len(x)
        g = _tail_rows(min(n - last, self.tail_window + self.tail_max), self)
        if g is None:
            return None
        extended = np.concatenate((x, _NAN)) if g.ref_padded else x
        ref = extended[g.ref_index]
        # How many earlier points lie beyond the newest point nearest to the old level, either way: the
        # smallest and the largest of each tail are running extremes of the newest points, newest first.
        newest = x[-g.largest :][::-1]
        lowest = np.minimum.accumulate(newest).take(g.size_index)
        highest = np.maximum.accumulate(newest).take(g.size_index)
        above = np.add.reduce(ref >= lowest[:, None], axis=1)
        below = np.add.reduce(ref <= highest[:, None], axis=1)
        if not (np.logical_or.reduce(above <= g.limits) or np.logical_or.reduce(below <= g.limits)):
            return None  # no size can pass, whichever way it moved (the usual case: no change at the end)
        ref.sort(axis=1)
        if not g.ref_padded:
            extended = np.concatenate((x, _NAN))
        tail = extended[g.tail_index]
        tail.sort(axis=1)
        level = (ref.take(g.ref_low) + ref.take(g.ref_high)) / 2
        tail_level = (tail.take(g.tail_low) + tail.take(g.tail_high)) / 2
        up = (tail_level > level).tolist()
        beyond_up, beyond_down = above.tolist(), below.tolist()
        best: _Split | None = None
        best_cost = math.inf
        for i, (size, width, limit) in enumerate(g.rows):
            count = beyond_up[i] if up[i] else beyond_down[i]
            if count > limit:  # p >= alpha
                continue
            p = _tail_p(count, size, width)
            if p >= self.alpha:  # what the limit already says; kept so that the limit is only a shortcut
                continue
            start = n - size
            old, new = ref[i, :width], tail[i, :size]
            row_level, row_tail_level, row_up = level.item(i), tail_level.item(i), up[i]
            spread = 1.4826 * _sorted_median(np.sort(np.abs(old - row_level)))
            # Every new point must have moved, not just their median: one outlier is never a change.
            shift = (new.item(0) - row_level) if row_up else (row_level - new.item(-1))
            if shift <= 0 or (spread > 0 and shift < self.tail_shift * spread):
                continue
            stat = math.inf if spread == 0 else shift / spread
            before = x[last:start]
            cost = float(np.abs(before - _median(before)).sum() + np.abs(new - row_tail_level).sum())
            if cost < best_cost:
                best, best_cost = _Split(start, stat if row_up else -stat, p), cost
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
        r = _ranks(values)
        _, factor = _long_run(r, ())
        ranks = _Ranks(values, r)
        splits = self._segment(ranks, factor)
        if not splits and factor > 1.2:
            # Big level shifts in a short series can pass for autocorrelation. Segment as if the noise
            # were independent; if the correlation within those segments is much lower, it was the
            # shifts (true AR noise keeps most of its correlation inside any segmentation).
            pilot = self._segment(ranks, 1.0)
            if pilot:
                _, within = _long_run(r, [s.index for s in pilot])
                if within < 0.75 * factor:
                    splits = self._segment(ranks, within)
        if splits:
            # Level shifts bias the first estimate of rho upwards: re-estimate it within the segments.
            _, within = _long_run(r, [s.index for s in splits])
            if within < 0.9 * factor:  # a smaller factor only makes the splits found more significant
                splits = self._segment(ranks, within, splits)
        splits = _with_level_change(ranks, splits)
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
            level_before = ranks.median(bounds[i], split.index)
            level_after = ranks.median(split.index, bounds[i + 2])
            points.append(
                ChangePoint(
                    index=split.index,
                    before=level_before,
                    after=level_after,
                    statistic=math.copysign(abs(split.statistic), level_after - level_before),
                    p_value=split.p_value,
                    n_before=split.index - bounds[i],
                    n_after=bounds[i + 2] - split.index,
                )
            )
        if noise is not None:
            points = _above_noise_floor(points, noise, bounds, self.alpha)
        return points


_DEFAULT = RankScan()
"""The detector of :func:`change_points` without options (immutable, so shared)."""


def _with_level_change(ranks: _Ranks, splits: list[_Split]) -> list[_Split]:
    """Drop splits whose two segments have the same median, until none is left.

    On heavily tied data (a metric that is nearly always the same value) the rank statistic's normal
    approximation overstates significance; a "change" that leaves the level where it was is not one.
    """
    while splits:
        bounds = [0, *(s.index for s in splits), ranks.n]
        same = [
            i for i, s in enumerate(splits) if ranks.median(bounds[i], s.index) == ranks.median(s.index, bounds[i + 2])
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
    # One pass tells the usual series (finite, no gaps) from one with NaN or an infinity.
    biggest = float(np.abs(x).max()) if len(x) else 0.0
    gaps = not math.isfinite(biggest)
    if gaps and np.isinf(x).any():
        raise DetectionError("values contain an infinity: record finite numbers (NaN marks a gap)")
    # Near the largest double, sums, medians and squares overflow: scale by a power of two (exact; ranks
    # and p-values do not change) and scale the levels back.
    shift = _overflow_shift(x, noise) if gaps or noise is not None else _shift_for(biggest)
    if shift:
        x = np.ldexp(x, -shift)
        if samples is not None:
            samples = [np.ldexp(np.asarray(reps, dtype=float), -shift) for reps in samples]
        if noise is not None:
            noise = np.ldexp(np.asarray(noise, dtype=float), -shift)
    floor = None
    if samples is not None or noise is not None:
        with np.errstate(over="ignore", invalid="ignore"):  # repeats far beyond their value: spread inf or nan
            floor = _noise_vector(len(x), samples, noise)
    detector: ChangePointMethod
    if method is None and not options:
        detector = _DEFAULT
        if not gaps and not shift:  # the default detector only reads the values: no copy needed
            return detector(x, noise=floor)
    elif method is None:
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
    return _shift_for(biggest)


def _shift_for(biggest: float) -> int:
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
