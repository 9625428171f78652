"""From change points to findings: regressions, improvements, drift, recoveries and environment changes.

A series is split by environment fingerprint first (GPU, driver, image): each fingerprint's points are
their own series, so a driver upgrade is never blamed on a commit; where the fingerprint changes, the
jump between the two levels is reported as an ``environment`` finding instead.

Within one fingerprint, each change point is classified against the metric's tolerance and direction:

- bad direction, beyond tolerance: a ``regression`` (culprit range: last good measured commit to the
  first bad one, with every commit between them from the recorded first-parent history);
- good direction, beyond tolerance: an ``improvement``, or the recovery of an open regression when the
  level is back within tolerance of where the regression started (``fixed_by`` names the range);
- smaller steps add up: once the level has moved beyond tolerance in the bad direction since the last
  reported finding, a ``drift`` is reported over the range of the steps that made it.

Findings that share a culprit range are grouped into one :class:`~mltest.model.Regression`, so one bad
commit that slows down 40 tests is one entry, listing all of them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, replace

from mltest.detect.changepoint import ChangePointMethod, change_points
from mltest.detect.incremental import DetectionState, change_points_incremental
from mltest.errors import DetectionError
from mltest.model import ChangePoint, CommitRange, Finding, MetricSpec, Regression, Series, SeriesPoint

__all__ = [
    "DEFAULT_TOLERANCE",
    "MAX_RANGE_WALK",
    "Tolerance",
    "binomial_noise",
    "commit_ack_key",
    "commits_between",
    "detected_shas",
    "find_shifts",
    "group_findings",
    "state_key",
]

DEFAULT_TOLERANCE = 0.05
"""Relative tolerance for metrics whose configuration gives none (5 %)."""
MAX_RANGE_WALK = 10_000


@dataclass(frozen=True)
class Tolerance:
    """How far a level may move before it counts. A shift must exceed every bound given."""

    relative: float | None = DEFAULT_TOLERANCE
    absolute: float | None = None

    @classmethod
    def of(cls, spec: MetricSpec | None, default: float = DEFAULT_TOLERANCE) -> Tolerance:
        if spec is None or (spec.tolerance is None and spec.tolerance_abs is None):
            return cls(default, None)
        return cls(spec.tolerance, spec.tolerance_abs)

    def exceeded(self, before: float, after: float) -> bool:
        delta = abs(after - before)
        if self.absolute is not None and not delta > self.absolute:
            return False
        if self.relative is not None:
            if before == 0:
                return delta > 0
            if not delta / abs(before) > self.relative:
                return False
        return delta > 0

    def __str__(self) -> str:
        parts = []
        if self.relative is not None:
            parts.append(f"{self.relative:.1%}")
        if self.absolute is not None:
            parts.append(f"{self.absolute:g} absolute")
        return " and ".join(parts) or "any change"


def commits_between(links: Mapping[str, str], good: str | None, bad: str) -> tuple[str, ...]:
    """Commits after ``good`` up to and including ``bad``, oldest first, walking first parents from
    ``bad``. Empty when the recorded links do not reach ``good`` (a force-push, a shallow history)."""
    if good is None:
        return ()
    chain = [bad]
    sha = bad
    for _ in range(MAX_RANGE_WALK):
        parent = links.get(sha)
        if parent is None:
            return ()
        if parent == good:
            return tuple(reversed(chain))
        chain.append(parent)
        sha = parent
    return ()


def binomial_noise(points: Sequence[SeriesPoint], unit: str | None = None) -> list[float] | None:
    """The binomial standard error ``sqrt(p (1 - p) / N)`` of each accuracy-like point (NaN where the
    test-set size ``N`` is unknown); None when no point has one. Percent units are scaled."""
    scale = 100.0 if unit in ("%", "percent") else 1.0
    out = []
    for p in points:
        value = p.value / scale
        if p.support and p.support > 0 and 0.0 <= value <= 1.0:
            out.append(scale * math.sqrt(max(value * (1.0 - value), 0.0) / p.support))
        else:
            out.append(math.nan)
    return out if any(math.isfinite(v) for v in out) else None


def _fingerprint_runs(points: Sequence[SeriesPoint]) -> list[tuple[str, list[int]]]:
    """Positions of each fingerprint's points, in order of first appearance."""
    runs: dict[str, list[int]] = {}
    for i, p in enumerate(points):
        runs.setdefault(p.fingerprint, []).append(i)
    return list(runs.items())


def state_key(scope: str, series: Series, fingerprint: str) -> str:
    """The key of one fingerprint's detection state in a ``states`` mapping of :func:`find_shifts`.
    ``scope`` names what else decides the points (project, branch, tier)."""
    return "\x1f".join((scope, series.test, series.metric, series.env_key, fingerprint))


def find_shifts(
    series: Series,
    *,
    tolerance: Tolerance,
    higher_is_better: bool,
    links: Mapping[str, str] | None = None,
    method: ChangePointMethod | None = None,
    states: MutableMapping[str, str] | None = None,
    scope: str = "",
    **options: float,
) -> list[Finding]:
    """Every finding in one series, oldest first (see the module docstring).

    With ``states`` (serialised :class:`~mltest.detect.incremental.DetectionState` by
    :func:`state_key`), detection is incremental: a series that only grew rescans its tail, and the
    new states are written back into ``states``.
    """
    links = links or {}
    points = series.points
    findings: list[Finding] = []
    for fingerprint, positions in _fingerprint_runs(points):
        sub = [points[i] for i in positions]
        key = state_key(scope, series, fingerprint) if states is not None and method is None else None
        found = _detect(series, sub, method, options, states, key)
        findings.extend(_classify(series, sub, tolerance, higher_is_better, links, found))
    findings.extend(_environment_changes(series, tolerance, higher_is_better, links))
    findings.sort(key=lambda f: _position(points, f.range.bad))
    return findings


def detected_shas(series: Series, states: Mapping[str, str], scope: str = "") -> tuple[str, ...] | None:
    """The first commit of every new segment that :func:`find_shifts` found in ``series`` (from the
    ``states`` it left), oldest first; ``None`` when a fingerprint of it has no state."""
    shas: list[str] = []
    for fingerprint, positions in _fingerprint_runs(series.points):
        state = DetectionState.loads(states.get(state_key(scope, series, fingerprint)))
        if state is None or state.length != len(positions):
            return None
        shas.extend(series.points[positions[cp.index]].sha for cp in state.change_points)
    order = {p.sha: i for i, p in enumerate(series.points)}
    return tuple(sorted(shas, key=order.__getitem__))


def _position(points: Sequence[SeriesPoint], sha: str) -> int:
    for i, p in enumerate(points):
        if p.sha == sha:
            return i
    return len(points)


def _detect(
    series: Series,
    points: Sequence[SeriesPoint],
    method: ChangePointMethod | None,
    options: Mapping[str, float],
    states: MutableMapping[str, str] | None = None,
    key: str | None = None,
) -> list[ChangePoint]:
    values = [p.value for p in points]
    samples = [p.samples for p in points] if any(len(p.samples) >= 2 for p in points) else None
    noise = binomial_noise(points, series.unit)
    try:
        if states is None or key is None:
            return change_points(values, samples=samples, noise=noise, method=method, **options)
        text = states.get(key)
        found, state = change_points_incremental(
            values, samples=samples, noise=noise, state=DetectionState.loads(text), **options
        )
        if DetectionState.loads(text) != state:
            states[key] = state.dumps()
        return found
    except DetectionError as exc:
        raise DetectionError(f"{series.test} {series.metric} [{series.env_key}]: {exc}") from None


def _range(points: Sequence[SeriesPoint], index: int, links: Mapping[str, str]) -> CommitRange:
    good, bad = points[index - 1].sha, points[index].sha
    return CommitRange(good, bad, commits_between(links, good, bad))


def _is_bad(before: float, after: float, higher_is_better: bool) -> bool:
    return after < before if higher_is_better else after > before


def _classify(
    series: Series,
    points: Sequence[SeriesPoint],
    tolerance: Tolerance,
    higher_is_better: bool,
    links: Mapping[str, str],
    found: Iterable[ChangePoint],
) -> list[Finding]:
    base = {
        "test": series.test,
        "metric": series.metric,
        "env_key": series.env_key,
        "unit": series.unit,
        "higher_is_better": higher_is_better,
    }
    done: list[Finding] = []
    open_: list[Finding] = []
    reference: float | None = None  # the level the last reported finding left things at
    creeping: list[tuple[ChangePoint, CommitRange]] = []  # sub-tolerance bad steps since the reference
    for cp in found:
        if reference is None:
            reference = cp.before
        rng = _range(points, cp.index, links)
        bad = _is_bad(cp.before, cp.after, higher_is_better)
        if not bad:
            recovered = [f for f in open_ if not _worse_beyond(f.before, cp.after, tolerance, higher_is_better)]
            for f in recovered:
                open_.remove(f)
                done.append(replace(f, status="recovered", fixed_by=rng))
            if recovered:
                reference, creeping = cp.after, []
                continue
        if tolerance.exceeded(cp.before, cp.after):
            finding = Finding(
                kind="regression" if bad else "improvement",
                range=rng,
                before=cp.before,
                after=cp.after,
                p_value=cp.p_value,
                **base,  # type: ignore[arg-type]
            )
            (open_ if bad else done).append(finding)
            reference, creeping = cp.after, []
            continue
        if bad:
            creeping.append((cp, rng))
            if _worse_beyond(reference, cp.after, tolerance, higher_is_better):
                first = creeping[0][1]
                whole = CommitRange(first.good, rng.bad, commits_between(links, first.good, rng.bad))
                open_.append(
                    Finding(
                        kind="drift",
                        range=whole,
                        before=reference,
                        after=cp.after,
                        p_value=max(c.p_value for c, _ in creeping),
                        steps=len(creeping),
                        note="steps at " + ", ".join(str(r) for _, r in creeping),
                        **base,  # type: ignore[arg-type]
                    )
                )
                reference, creeping = cp.after, []
    return done + open_


def _worse_beyond(before: float, after: float, tolerance: Tolerance, higher_is_better: bool) -> bool:
    return _is_bad(before, after, higher_is_better) and tolerance.exceeded(before, after)


def _median(values: Sequence[float]) -> float:
    """The median of a few values; the middle pair halved before adding, so that two values near the
    largest float do not overflow to infinity (``np.median`` would, with a RuntimeWarning)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else ordered[mid - 1] / 2 + ordered[mid] / 2


def _environment_changes(
    series: Series, tolerance: Tolerance, higher_is_better: bool, links: Mapping[str, str]
) -> list[Finding]:
    """A jump where the fingerprint changes: the old level (last points) against the new (first)."""
    points = series.points
    out = []
    window = 5
    for i in range(1, len(points)):
        old_fp, new_fp = points[i - 1].fingerprint, points[i].fingerprint
        if old_fp == new_fp:
            continue
        before = [p.value for p in points[:i] if p.fingerprint == old_fp][-window:]
        after = [p.value for p in points[i:] if p.fingerprint == new_fp][:window]
        old_level, new_level = _median(before), _median(after)
        if not tolerance.exceeded(old_level, new_level):
            continue
        better = not _is_bad(old_level, new_level, higher_is_better)
        out.append(
            Finding(
                kind="environment",
                test=series.test,
                metric=series.metric,
                env_key=series.env_key,
                range=_range(points, i, links),
                before=old_level,
                after=new_level,
                p_value=math.nan,
                unit=series.unit,
                higher_is_better=higher_is_better,
                status="recovered" if better else "open",
                note=f"{old_fp or 'unknown'} -> {new_fp or 'unknown'}",
            )
        )
    return out


def commit_ack_key(kind: str, sha: str) -> str:
    """The acknowledgement key that covers ``kind`` entries whose first bad commit is ``sha``: an
    acknowledged range stays acknowledged when later runs (a bisect) narrow it to one of its commits."""
    return f"{kind}@{sha}"


def group_findings(findings: Iterable[Finding], acknowledged: Mapping[str, str] | None = None) -> list[Regression]:
    """One entry per (kind, culprit range): new (open, unacknowledged) regressions first, then other open
    entries, then the recovered. ``acknowledged`` maps entry or finding ids to the acknowledgement."""
    acknowledged = acknowledged or {}
    groups: dict[tuple[str, str | None, str], list[Finding]] = {}
    for f in findings:
        groups.setdefault((f.kind, f.range.good, f.range.bad), []).append(f)
    out = []
    for members in groups.values():
        rng = max((f.range for f in members), key=lambda r: len(r.commits))
        members.sort(key=lambda f: (f.test, f.metric, f.env_key))
        entry = Regression(kind=members[0].kind, range=rng, findings=tuple(members))
        ack = acknowledged.get(entry.id) or acknowledged.get(commit_ack_key(entry.kind, entry.range.bad))
        if ack is None and all(f.id in acknowledged for f in members):
            ack = acknowledged[members[0].id]
        out.append(replace(entry, acknowledged=ack) if ack is not None else entry)
    order = {"regression": 0, "drift": 1, "environment": 2, "improvement": 3}
    out.sort(key=lambda r: (not r.is_new, r.status != "open", order.get(r.kind, 9)))
    return out
