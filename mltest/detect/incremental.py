"""Incremental change points: appending a commit rescans the tail of a series, not all of it.

A nightly pipeline appends one commit to every series and then asks for change points several times
(``mltest check``, ``report``, ``notify``). Recomputing a 10,000-commit series each time costs tens of
milliseconds per series; what can still move is only the end of it. The state kept per series is the
number of points it covered, a digest of those points (values, repeats, noise) and of the options, and
the change points found.

Given a longer series whose first ``length`` points hash to the same digest:

- change points with at least ``settle`` points after them are *settled*: new points do not move them
  (a change point is re-tested between its neighbours, and both neighbours are fixed);
- the scan restarts at the settled change point before the newest one, so the newest is tested again
  with the new points (but at most ``window`` points before the old end: a long quiet stretch is not
  scanned again), and its change points replace the ones after where it restarted;
- the levels on both sides of where the scan restarted are recomputed over their whole segments.

Anything else (a point inserted or re-measured in the middle, other options, a shorter series, an
unreadable state) falls back to a full scan: the state is a cache, never a source of truth. How often
the result differs from a full scan is measured by ``benchmarks/incremental.py``.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from mltest.detect.changepoint import change_points
from mltest.model import ChangePoint

__all__ = ["SETTLE", "STATE_VERSION", "WINDOW", "DetectionState", "change_points_incremental"]

FloatArray = npt.NDArray[np.float64]

STATE_VERSION = 1
"""Bump whenever the detector's results change: states of another version are recomputed, not trusted.
(The digest also covers mltest's version, so a release never trusts an older release's states.)"""
SETTLE = 50
"""Points after a change point that make it settled."""
WINDOW = 300
"""Points before the old end that are always scanned again."""


@dataclass(frozen=True)
class DetectionState:
    """What :func:`change_points_incremental` needs from its previous call."""

    length: int
    digest: str
    change_points: tuple[ChangePoint, ...]

    def dumps(self) -> str:
        return json.dumps(
            {
                "version": STATE_VERSION,
                "length": self.length,
                "digest": self.digest,
                "change_points": [_cp_json(cp) for cp in self.change_points],
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None) -> DetectionState | None:
        """The state in ``text``; ``None`` when it is missing, of another version or unreadable."""
        if not text:
            return None
        try:
            data = json.loads(text)
            if data.get("version") != STATE_VERSION:
                return None
            cps = tuple(
                ChangePoint(
                    index=int(c["index"]),
                    before=float(c["before"]),
                    after=float(c["after"]),
                    statistic=float(c["statistic"]),
                    p_value=float(c["p_value"]),
                    n_before=int(c["n_before"]),
                    n_after=int(c["n_after"]),
                )
                for c in data["change_points"]
            )
            length, digest = int(data["length"]), str(data["digest"])
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError):
            return None
        indices = [cp.index for cp in cps]
        if length < 0 or any(not 0 < i < length for i in indices) or indices != sorted(set(indices)):
            return None
        return cls(length, digest, cps)


def _cp_json(cp: ChangePoint) -> dict[str, Any]:
    # JSON has no NaN or infinity: keep them as strings ("nan", "inf"), which float() reads back.
    return {k: (repr(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(cp).items()}


def _digest(
    values: FloatArray,
    samples: Sequence[Sequence[float]] | None,
    noise: FloatArray | None,
    options: Mapping[str, float],
    length: int,
) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((STATE_VERSION, _mltest_version(), sorted(options.items()), length)).encode())
    h.update(np.ascontiguousarray(values[:length], dtype=np.float64).tobytes())
    if noise is not None:
        h.update(b"noise")
        h.update(np.ascontiguousarray(noise[:length], dtype=np.float64).tobytes())
    if samples is not None:
        h.update(b"samples")
        for reps in samples[:length]:
            arr = np.asarray(reps, dtype=np.float64)
            h.update(len(arr).to_bytes(8, "little"))
            h.update(arr.tobytes())
    return h.hexdigest()


@functools.cache
def _mltest_version() -> str:
    try:
        return importlib.metadata.version("mltest")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _median(x: FloatArray) -> tuple[float, int]:
    x = x[~np.isnan(x)]
    return (float(np.median(x)), len(x)) if len(x) else (math.nan, 0)


def _signed(cp: ChangePoint) -> ChangePoint:
    """``cp`` with its statistic's sign following its (recomputed) levels."""
    return replace(cp, statistic=math.copysign(cp.statistic, cp.after - cp.before))


def change_points_incremental(
    values: Sequence[float] | FloatArray,
    *,
    samples: Sequence[Sequence[float]] | None = None,
    noise: Sequence[float] | float | None = None,
    state: DetectionState | None = None,
    **options: float,
) -> tuple[list[ChangePoint], DetectionState]:
    """:func:`~mltest.detect.change_points` of ``values`` (same arguments and options), reusing
    ``state`` from a call on a prefix of them; returns the change points and the state to keep."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    noise_arr: FloatArray | None = None
    if noise is not None:
        arr = np.asarray(noise, dtype=float)
        noise_arr = np.full(n, float(arr)) if arr.ndim == 0 else arr
    settle, window = SETTLE, max(WINDOW, SETTLE)

    def full() -> tuple[list[ChangePoint], DetectionState]:
        result = change_points(values, samples=samples, noise=noise, method=None, **options)
        return result, DetectionState(n, _digest(x, samples, noise_arr, options, n), tuple(result))

    usable = (
        state is not None
        and x.ndim == 1
        and 2 <= state.length <= n
        and (noise_arr is None or len(noise_arr) == n)
        and (samples is None or len(samples) == n)
    )
    if state is None or not usable or _digest(x, samples, noise_arr, options, state.length) != state.digest:
        return full()
    if state.length == n:
        return list(state.change_points), state
    old = state.length
    settled = [cp for cp in state.change_points if cp.index <= old - settle]
    # Rescan from the settled change point before the newest one, so that the newest is tested again
    # between its neighbours with the new points; a stretch longer than ``window`` is not rescanned.
    start = max(settled[-2].index if len(settled) > 1 else 0, old - window)
    if start <= 0:
        return full()
    tail = change_points(
        x[start:],
        samples=None if samples is None else samples[start:],
        noise=None if noise_arr is None else noise_arr[start:].tolist(),
        method=None,
        **options,
    )
    kept = [cp for cp in state.change_points if cp.index <= start]
    result = [*kept, *(replace(cp, index=cp.index + start) for cp in tail)]
    # The segments on both sides of ``start`` now reach past it: recompute their levels.
    first_new = result[len(kept)].index if tail else n
    if kept:
        last = kept[-1]
        after, n_after = _median(x[last.index : first_new])
        result[len(kept) - 1] = _signed(replace(last, after=after, n_after=n_after))
    if tail:
        before, n_before = _median(x[kept[-1].index if kept else 0 : first_new])
        result[len(kept)] = _signed(replace(result[len(kept)], before=before, n_before=n_before))
    return result, DetectionState(n, _digest(x, samples, noise_arr, options, n), tuple(result))
