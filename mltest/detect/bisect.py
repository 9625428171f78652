"""Noise-aware binary search for the first bad commit: the strategy only (the CLI runs the tests).

The search starts from measurements at a good and a bad commit. Each probe's repeats are classified
by which end they resemble: ``good`` when their median lies in the good third of the gap and they
differ from the bad samples beyond noise, ``bad`` the other way round, ``unclear`` otherwise (the
caller may measure again with more repeats). The search needs about ``log2(k) + 1`` probes for
``k`` commits, and ends by naming the first bad commit, or by saying why the evidence does not allow it.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from mltest.detect.stats import welch_t_test
from mltest.errors import DetectionError

__all__ = ["BisectSearch", "Probe", "ProbeVerdict"]

ProbeVerdict = Literal["good", "bad", "unclear"]


@dataclass(frozen=True)
class Probe:
    sha: str
    samples: tuple[float, ...]
    verdict: ProbeVerdict

    @property
    def level(self) -> float:
        return statistics.median(self.samples)


@dataclass
class BisectSearch:
    """``commits`` oldest first: ``commits[0]`` is known good, ``commits[-1]`` known bad."""

    commits: Sequence[str]
    good_samples: Sequence[float]
    bad_samples: Sequence[float]
    alpha: float = 0.01
    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self) -> None:
        if len(self.commits) < 2:
            raise DetectionError("bisect needs a good and a bad commit (at least two commits)")
        if len(self.good_samples) < 2 or len(self.bad_samples) < 2:
            raise DetectionError("bisect needs at least two measurements at the good and at the bad commit")
        self._lo = 0
        self._hi = len(self.commits) - 1

    @property
    def separated(self) -> bool:
        """Whether the good and bad ends differ beyond noise at all (else nothing can be found)."""
        p = welch_t_test(self.good_samples, self.bad_samples)
        return not math.isnan(p) and p < self.alpha

    @property
    def remaining(self) -> int:
        """Commits that may still be the first bad one."""
        return self._hi - self._lo

    @property
    def done(self) -> bool:
        return self._hi - self._lo <= 1

    @property
    def first_bad(self) -> str | None:
        return self.commits[self._hi] if self.done else None

    @property
    def last_good(self) -> str:
        return self.commits[self._lo]

    @property
    def suspects(self) -> tuple[str, ...]:
        """The range still in question: after the last good commit, up to the first bad one."""
        return tuple(self.commits[self._lo + 1 : self._hi + 1])

    def next_commit(self) -> str | None:
        """The commit to measure next (the middle of the range still in question)."""
        if self.done:
            return None
        return self.commits[(self._lo + self._hi) // 2]

    def classify(self, samples: Sequence[float]) -> ProbeVerdict:
        """``good`` when the samples sit in the good third of the gap and differ from the bad end
        beyond noise, ``bad`` the other way round; ``unclear`` otherwise (noise, or a level between
        the two: the regression may be several commits' doing)."""
        good_level = statistics.median(self.good_samples)
        bad_level = statistics.median(self.bad_samples)
        gap = bad_level - good_level
        if gap == 0 or not samples:
            return "unclear"
        where = (statistics.median(samples) - good_level) / gap
        if 1 / 3 <= where <= 2 / 3:
            return "unclear"
        closer_to_good = where < 1 / 3
        if len(samples) < 2:
            return "good" if closer_to_good else "bad"
        p = welch_t_test(samples, self.bad_samples if closer_to_good else self.good_samples)
        if math.isnan(p) or p >= self.alpha:
            return "unclear"
        return "good" if closer_to_good else "bad"

    def record(self, sha: str, samples: Sequence[float]) -> Probe:
        """Add the measurements of ``sha`` (normally :meth:`next_commit`) and narrow the range."""
        if sha not in self.commits:
            raise DetectionError(f"commit {sha[:10]} is not in the range being bisected")
        verdict = self.classify(samples)
        probe = Probe(sha, tuple(samples), verdict)
        self.probes.append(probe)
        at = list(self.commits).index(sha)
        if verdict == "good" and self._lo < at < self._hi:
            self._lo = at
        elif verdict == "bad" and self._lo < at < self._hi:
            self._hi = at
        return probe

    @staticmethod
    def max_probes(commits: int) -> int:
        """Probes a search over ``commits`` commits (good and bad ends included) needs at most."""
        return max(0, math.ceil(math.log2(max(commits - 1, 1))))
