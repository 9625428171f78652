"""Detection quality and speed: mltest's ``change_points`` against Apache Otava 0.8.0 (issue 4).

Usage (from the repository root)::

    python -m benchmarks --only detection [--quick] [--write]         # as part of the suite
    python -m benchmarks.detection [--quick] [--series N] [--otava-python PATH] [--write]

Synthetic per-commit series (200 points, unit-sd noise, fixed seeds) in three families: noise only
(false alerts), one step (power), and one to four steps (F1). Both detectors see the same values:
mltest in this process, Otava in its own interpreter (``--otava-python``, or a virtual environment
that this script creates in ``.bench/otava-venv`` on first use and reuses afterwards). Prints a
markdown report; ``--write`` also replaces the detection section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, emit, machine, table
from mltest.detect import change_points

FloatArray = npt.NDArray[np.float64]
NoiseKind = Literal["gaussian", "lognormal", "ar1", "t3", "outliers"]
Family = Literal["noise", "power", "steps"]

DRIVER = Path(__file__).resolve().with_name("_otava_driver.py")
OTAVA_VENV = ROOT / ".bench" / "otava-venv"

HEADING = "## Detection quality and speed (issue 4)"
START, END = "<!-- detection:start -->", "<!-- detection:end -->"

OTAVA_VERSION = "0.8.0"
# The defaults of Otava's own CLI (`otava analyze`): otava/series.py AnalysisOptions and the
# argparse defaults in otava/main.py (window 50, p-value 0.001, magnitude 0.0).
OTAVA_WINDOW_LEN = 50
OTAVA_MAX_PVALUE = 0.001

N_POINTS = 200
BASE_LEVEL = 100.0
"""Series sit around 100 (say, milliseconds) with unit-sd noise, so every value is positive as a real
metric's would be (neither detector depends on the level; Otava's relative magnitude needs a non-zero mean)."""
TOLERANCE = 5
"""A detection counts for a true change point at most this many commits away."""
SERIES_FULL, SERIES_QUICK = 500, 60
WARMUP = 5
LOGNORMAL_SIGMA = 0.5
AR_RHO = 0.5
OUTLIER_SHARE, OUTLIER_SIZE = 0.02, 8.0
POWER_RANGE = (50, 150)
STEP_RANGE, STEP_GAP, STEP_COUNTS, STEP_SIZES = (25, 175), 25, (1, 2, 3, 4), (2.0, 3.0, 4.0)
SPEED_TARGET = 10.0

NOISE_LABELS: dict[NoiseKind, str] = {
    "gaussian": "Gaussian",
    "lognormal": "lognormal(0.5)",
    "ar1": "AR(1) rho=0.5",
    "t3": "Student-t(3)",
    "outliers": "Gaussian + 2% outliers",
}


# ---------------------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Target:
    """``value op bound``; ``percent`` bounds print as percentages."""

    op: Literal["<=", ">="]
    bound: float
    percent: bool = True

    def met(self, value: float) -> bool:
        return value <= self.bound if self.op == "<=" else value >= self.bound

    def __str__(self) -> str:
        shown = _pct(self.bound) if self.percent else f"{self.bound:g}"
        return f"{'≤' if self.op == '<=' else '≥'} {shown}"


# ---------------------------------------------------------------------------------------- corpora
@dataclass(frozen=True)
class CorpusSpec:
    key: str
    family: Family
    noise: NoiseKind
    seed: int
    step: float = 0.0
    """The step size of the ``power`` family, in noise sds."""
    target: Target | None = None

    @property
    def label(self) -> str:
        return NOISE_LABELS[self.noise]


@dataclass(frozen=True)
class Corpus:
    spec: CorpusSpec
    series: FloatArray
    """One row per series, ``N_POINTS`` columns."""
    truth: list[list[int]]
    """True change points of each series (first index of each new segment)."""


SPECS: tuple[CorpusSpec, ...] = (
    CorpusSpec("noise-gaussian", "noise", "gaussian", 101, target=Target("<=", 0.02)),
    CorpusSpec("noise-lognormal", "noise", "lognormal", 102, target=Target("<=", 0.02)),
    CorpusSpec("noise-ar1", "noise", "ar1", 103, target=Target("<=", 0.02)),
    CorpusSpec("noise-t3", "noise", "t3", 104),
    CorpusSpec("noise-outliers", "noise", "outliers", 105),
    CorpusSpec("power-gaussian-1", "power", "gaussian", 201, step=1.0, target=Target(">=", 0.90)),
    CorpusSpec("power-gaussian-2", "power", "gaussian", 202, step=2.0, target=Target(">=", 0.99)),
    CorpusSpec("power-lognormal-1", "power", "lognormal", 203, step=1.0),
    CorpusSpec("power-lognormal-2", "power", "lognormal", 204, step=2.0),
    CorpusSpec("power-ar1-1", "power", "ar1", 205, step=1.0),
    CorpusSpec("power-ar1-2", "power", "ar1", 206, step=2.0),
    CorpusSpec("steps-gaussian", "steps", "gaussian", 301, target=Target(">=", 0.98, percent=False)),
    CorpusSpec("steps-lognormal", "steps", "lognormal", 302, target=Target(">=", 0.98, percent=False)),
    CorpusSpec("steps-outliers", "steps", "outliers", 303, target=Target(">=", 0.98, percent=False)),
    CorpusSpec("steps-ar1", "steps", "ar1", 304),
)


def noise(kind: NoiseKind, rng: np.random.Generator, n: int, protect: Sequence[int] = ()) -> FloatArray:
    """Zero-mean, unit-sd noise of ``kind``; ``protect`` are change points no outlier may touch."""
    if kind == "gaussian":
        return rng.standard_normal(n)
    if kind == "lognormal":
        s2 = LOGNORMAL_SIGMA**2
        mean, sd = math.exp(s2 / 2), math.sqrt((math.exp(s2) - 1) * math.exp(s2))
        return (rng.lognormal(0.0, LOGNORMAL_SIGMA, n) - mean) / sd
    if kind == "ar1":
        # x_t = rho x_{t-1} + e_t, scaled to unit marginal sd and started in the stationary state.
        e = rng.standard_normal(n) * math.sqrt(1 - AR_RHO**2)
        x = np.empty(n)
        x[0] = rng.standard_normal()
        for t in range(1, n):
            x[t] = AR_RHO * x[t - 1] + e[t]
        return x
    if kind == "t3":
        return rng.standard_t(3, n) / math.sqrt(3.0)  # t(3) has variance 3
    if kind == "outliers":
        x = rng.standard_normal(n)
        where = outlier_positions(rng, n, round(OUTLIER_SHARE * n), protect)
        x[where] += OUTLIER_SIZE * rng.choice([-1.0, 1.0], len(where))
        return x
    raise ValueError(f"unknown noise {kind!r}")


def outlier_positions(rng: np.random.Generator, n: int, count: int, protect: Sequence[int] = ()) -> list[int]:
    """``count`` isolated positions (no two adjacent), none next to a change point ``c`` (``c - 1``, ``c``)."""
    blocked = {p for c in protect for p in (c - 1, c)}
    chosen: list[int] = []
    for p in rng.permutation(n).tolist():
        if p in blocked:
            continue
        chosen.append(p)
        blocked.update((p - 1, p, p + 1))
        if len(chosen) == count:
            break
    return sorted(chosen)


def spaced_positions(rng: np.random.Generator, k: int) -> list[int]:
    """``k`` positions in ``STEP_RANGE`` at least ``STEP_GAP`` apart, uniform over all such sets."""
    lo, hi = STEP_RANGE
    slack = (hi - lo + 1) - (STEP_GAP - 1) * (k - 1)
    base = np.sort(rng.choice(slack, size=k, replace=False))
    return [int(lo + b + (STEP_GAP - 1) * i) for i, b in enumerate(base)]


def _levels(positions: Sequence[int], deltas: Sequence[float], n: int) -> FloatArray:
    levels = np.full(n, BASE_LEVEL)
    for p, d in zip(positions, deltas, strict=True):
        levels[p:] += d
    return levels


def one_series(spec: CorpusSpec, rng: np.random.Generator, n: int = N_POINTS) -> tuple[FloatArray, list[int]]:
    """One series of ``spec``'s family and its true change points."""
    if spec.family == "noise":
        return BASE_LEVEL + noise(spec.noise, rng, n), []
    if spec.family == "power":
        positions = [int(rng.integers(POWER_RANGE[0], POWER_RANGE[1] + 1))]
        deltas = [spec.step * float(rng.choice([-1.0, 1.0]))]
    else:
        positions = spaced_positions(rng, int(rng.choice(STEP_COUNTS)))
        sizes = rng.choice(STEP_SIZES, len(positions)) * rng.choice([-1.0, 1.0], len(positions))
        deltas = [float(d) for d in sizes]
    return _levels(positions, deltas, n) + noise(spec.noise, rng, n, protect=positions), positions


def generate(spec: CorpusSpec, count: int) -> Corpus:
    """``count`` series from ``spec``'s seed (a smaller count gives a prefix of a larger one)."""
    rng = np.random.default_rng(spec.seed)
    rows, truth = zip(*(one_series(spec, rng) for _ in range(count)), strict=True)
    return Corpus(spec, np.vstack(rows), list(truth))


# ---------------------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class Score:
    """Pooled counts of a one-to-one matching (micro-averaged over a corpus)."""

    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0

    def __add__(self, other: Score) -> Score:
        return Score(
            self.true_positives + other.true_positives,
            self.false_positives + other.false_positives,
            self.false_negatives + other.false_negatives,
        )

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        real = self.true_positives + self.false_negatives
        return self.true_positives / real if real else 1.0

    @property
    def f1(self) -> float:
        denominator = 2 * self.true_positives + self.false_positives + self.false_negatives
        return 2 * self.true_positives / denominator if denominator else 1.0


def match(detected: Sequence[int], truth: Sequence[int], tolerance: int = TOLERANCE) -> Score:
    """Match detections to true change points one to one, closest pairs first, within ``tolerance``.

    A true change point takes at most one detection: a second one nearby is a false positive.
    """
    pairs = sorted(
        (abs(d - t), i, j) for i, d in enumerate(detected) for j, t in enumerate(truth) if abs(d - t) <= tolerance
    )
    used_d: set[int] = set()
    used_t: set[int] = set()
    for _, i, j in pairs:
        if i not in used_d and j not in used_t:
            used_d.add(i)
            used_t.add(j)
    tp = len(used_d)
    return Score(tp, len(detected) - tp, len(truth) - tp)


def f1_score(indices: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> Score:
    return sum((match(d, t) for d, t in zip(indices, truth, strict=True)), Score())


def alert_share(indices: Sequence[Sequence[int]]) -> float:
    """Share of series with any change point."""
    return sum(1 for found in indices if found) / len(indices)


def located_share(indices: Sequence[Sequence[int]], truth: Sequence[Sequence[int]]) -> float:
    """Share of one-change series with a change point within ``TOLERANCE`` of the true one."""
    hits = sum(1 for found, (t,) in zip(indices, truth, strict=True) if any(abs(d - t) <= TOLERANCE for d in found))
    return hits / len(indices)


def oracle_located(corpus: Corpus) -> float:
    """Located share of :func:`oracle_split` on a one-step corpus."""
    return located_share([[oracle_split(x)] for x in corpus.series], corpus.truth)


def oracle_split(x: FloatArray) -> int:
    """Gaussian maximum-likelihood position of exactly one mean change: argmax |CUSUM_k| / sqrt(k (n-k) / n)."""
    n = len(x)
    k = np.arange(1, n)
    cusum = np.cumsum(x - x.mean())[:-1]
    return int(k[int(np.argmax(np.abs(cusum) / np.sqrt(k * (n - k) / n)))])


# ---------------------------------------------------------------------------------------- running
@dataclass(frozen=True)
class ToolRun:
    indices: list[list[int]]
    seconds: float


def run_mltest(series: FloatArray, detect: Callable[[FloatArray], list[int]] | None = None) -> ToolRun:
    """mltest in this process: ``WARMUP`` series untimed, then every series in one timed loop."""
    run = detect or (lambda x: [cp.index for cp in change_points(x)])
    for x in series[:WARMUP]:
        run(x)
    start = time.perf_counter()
    indices = [run(x) for x in series]
    return ToolRun(indices, time.perf_counter() - start)


def run_otava(series: FloatArray, python: Path) -> ToolRun:
    """Otava in its own interpreter through ``_otava_driver.py`` (timing excludes start, import, load)."""
    with tempfile.TemporaryDirectory(prefix="mltest-bench-") as tmp:
        corpus = Path(tmp) / "corpus.json"
        corpus.write_text(json.dumps(series.tolist()), encoding="utf-8")
        args = [str(corpus), str(OTAVA_WINDOW_LEN), str(OTAVA_MAX_PVALUE), str(WARMUP)]
        proc = subprocess.run([str(python), str(DRIVER), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"otava driver failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result = json.loads(lines[-1])
    return ToolRun([list(map(int, found)) for found in result["indices"]], float(result["seconds"]))


def otava_python(given: str | None) -> Path:
    """The interpreter that runs Otava: ``given``, else ``.bench/otava-venv`` (created on first use)."""
    if given:
        return Path(given)
    bindir = "Scripts" if os.name == "nt" else "bin"
    python = OTAVA_VENV / bindir / ("python.exe" if os.name == "nt" else "python")
    if not python.exists():
        print(f"creating {OTAVA_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(OTAVA_VENV)], check=True)
    if subprocess.run([str(python), "-c", "import otava"], capture_output=True, check=False).returncode != 0:
        print(f"installing apache-otava=={OTAVA_VERSION} into {OTAVA_VENV} ...", file=sys.stderr)
        pip = [str(python), "-m", "pip", "install", "--quiet", f"apache-otava=={OTAVA_VERSION}"]
        subprocess.run(pip, check=True)
    return python


def otava_about(python: Path) -> tuple[str, str]:
    """(apache-otava version, Python version) of the interpreter that runs Otava."""
    code = (
        "import importlib.metadata as m, platform; print(m.version('apache-otava')); print(platform.python_version())"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return out[0], out[1]


@dataclass(frozen=True)
class Result:
    corpus: Corpus
    mltest: ToolRun
    otava: ToolRun

    @property
    def count(self) -> int:
        return len(self.corpus.truth)


def run_all(count: int, python: Path, specs: Sequence[CorpusSpec] = SPECS) -> list[Result]:
    results = []
    for spec in specs:
        corpus = generate(spec, count)
        print(f"{spec.key}: mltest ...", file=sys.stderr, flush=True)
        ours = run_mltest(corpus.series)
        print(f"{spec.key}: otava ...", file=sys.stderr, flush=True)
        theirs = run_otava(corpus.series, python)
        results.append(Result(corpus, ours, theirs))
    return results


# ---------------------------------------------------------------------------------------- report
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _met(target: Target | None, value: float) -> tuple[str, str]:
    if target is None:
        return "—", "—"
    return str(target), "yes" if target.met(value) else "**no**"


def noisetable(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        ours, theirs = alert_share(r.mltest.indices), alert_share(r.otava.indices)
        rows.append([r.corpus.spec.label, _pct(ours), _pct(theirs), *_met(r.corpus.spec.target, ours)])
    return table(["noise", "mltest: any alert", "Otava: any alert", "target (mltest)", "met?"], rows)


def powertable(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        truth, ours = r.corpus.truth, alert_share(r.mltest.indices)
        oracle = oracle_located(r.corpus)
        rows.append(
            [
                r.corpus.spec.label,
                f"{r.corpus.spec.step:g} sd",
                _pct(ours),
                _pct(located_share(r.mltest.indices, truth)),
                _pct(alert_share(r.otava.indices)),
                _pct(located_share(r.otava.indices, truth)),
                _pct(oracle),
                *_met(r.corpus.spec.target, ours),
            ]
        )
    header = [
        "noise",
        "step",
        "mltest alerts",
        "mltest located",
        "Otava alerts",
        "Otava located",
        "oracle located",
        "target (mltest alerts)",
        "met?",
    ]
    return table(header, rows)


def stepstable(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        ours, theirs = f1_score(r.mltest.indices, r.corpus.truth), f1_score(r.otava.indices, r.corpus.truth)
        rows.append(
            [
                r.corpus.spec.label,
                str(ours.true_positives + ours.false_negatives),
                f"{ours.precision:.3f} / {ours.recall:.3f} / **{ours.f1:.3f}**",
                f"{ours.false_positives} / {ours.false_negatives}",
                f"{theirs.precision:.3f} / {theirs.recall:.3f} / **{theirs.f1:.3f}**",
                f"{theirs.false_positives} / {theirs.false_negatives}",
                *_met(r.corpus.spec.target, ours.f1),
            ]
        )
    header = [
        "noise",
        "true change points",
        "mltest P / R / F1",
        "mltest FP / FN",
        "Otava P / R / F1",
        "Otava FP / FN",
        "target (mltest F1)",
        "met?",
    ]
    return table(header, rows)


def speedtable(results: Sequence[Result]) -> str:
    rows = []
    for r in results:
        ours, theirs = r.mltest.seconds, r.otava.seconds
        rows.append(
            [
                r.corpus.spec.key,
                f"{ours:.2f} s",
                f"{1000 * ours / r.count:.2f}",
                f"{theirs:.2f} s",
                f"{1000 * theirs / r.count:.2f}",
                f"{theirs / ours:.1f}x",
                "",
                "",
            ]
        )
    ours = sum(r.mltest.seconds for r in results)
    theirs = sum(r.otava.seconds for r in results)
    total = sum(r.count for r in results)
    target = Target(">=", SPEED_TARGET, percent=False)
    rows.append(
        [
            "**all corpora**",
            f"{ours:.2f} s",
            f"{1000 * ours / total:.2f}",
            f"{theirs:.2f} s",
            f"{1000 * theirs / total:.2f}",
            f"**{theirs / ours:.1f}x**",
            f"{target}x",
            "yes" if target.met(theirs / ours) else "**no**",
        ]
    )
    header = ["corpus", "mltest total", "mltest ms/series", "Otava total", "Otava ms/series", "Otava / mltest"]
    return table([*header, "target", "met?"], rows)


def target_checks(results: Sequence[Result]) -> list[tuple[str, Target, float]]:
    """(what, target, mltest's value) for every target, the speed ratio last."""
    checks = []
    for r in results:
        spec = r.corpus.spec
        if spec.target is None:
            continue
        if spec.family == "steps":
            what, value = f"F1, steps, {spec.label}", f1_score(r.mltest.indices, r.corpus.truth).f1
        elif spec.family == "power":
            what, value = f"alerts, {spec.step:g} sd step, {spec.label}", alert_share(r.mltest.indices)
        else:
            what, value = f"false alerts, {spec.label}", alert_share(r.mltest.indices)
        checks.append((what, spec.target, value))
    ratio = sum(r.otava.seconds for r in results) / sum(r.mltest.seconds for r in results)
    checks.append(("speed, Otava time / mltest time", Target(">=", SPEED_TARGET, percent=False), ratio))
    return checks


def summary(results: Sequence[Result]) -> str:
    checks = target_checks(results)
    missed = [
        f"{what} ({_pct(value) if target.percent else f'{value:.3g}'}, target {target})"
        for what, target, value in checks
        if not target.met(value)
    ]
    met = f"{len(checks) - len(missed)} of {len(checks)} met"
    return f"{met}; missed: {'; '.join(missed)}." if missed else f"{met}."


def report(results: Sequence[Result], command: str, otava: tuple[str, str]) -> str:
    by_family = {f: [r for r in results if r.corpus.spec.family == f] for f in ("noise", "power", "steps")}
    count = results[0].count
    otava_version, otava_python_version = otava
    oracle = [oracle_located(r.corpus) for r in by_family["power"] if r.corpus.spec.key == "power-gaussian-1"]
    oracle_note = f" (Gaussian noise: {_pct(oracle[0])})" if oracle else ""
    return f"""{HEADING}

{START}
Reproduce from the repository root: `{command}`. Without `--otava-python PATH` the script installs
Apache Otava {OTAVA_VERSION} into `.bench/otava-venv` on first use and reuses it. `--quick` runs
{SERIES_QUICK} series per corpus as a smoke test.

- Date: {dt.date.today().isoformat()}
- Machine: {machine()}
- mltest on Python {platform.python_version()}; apache-otava {otava_version} on Python {otava_python_version}
- {count} series per corpus, {N_POINTS} points each (one value per commit), fixed seeds per corpus

**Detectors.**

- *mltest* `change_points(values)` with its defaults (`alpha=0.01`, `min_size=5`): a rank CUSUM (a
  two-sample Wilcoxon statistic for every split) with binary segmentation, its maximum tested against
  a Bonferroni bound over the positions scanned; variance inflated by `(1 + rho) / (1 - rho)` for
  AR(1)-like noise, with rho estimated from lag-1 and lag-2 rank differences; seeded sub-intervals
  when a whole segment shows nothing; each change point re-tested between its neighbours (pruning)
  and moved to the least-squares split nearby on outlier-clipped values; an exact permutation test
  for a change in the newest few points.
- *Apache Otava {OTAVA_VERSION}* `compute_change_points(values, window_len={OTAVA_WINDOW_LEN},
  max_pvalue={OTAVA_MAX_PVALUE})`: the defaults of its own CLI (`otava analyze`: `--window 50`,
  `-P 0.001`, `--magnitude 0.0`; `AnalysisOptions` in `otava/series.py`). E-divisive on sliding
  windows, weak change points at 10x the p-value, merged bottom-up by t-tests.

**Corpora.** Every series is `{BASE_LEVEL:g} + level + noise`, noise with mean 0 and sd 1:
Gaussian; lognormal(0, 0.5) minus its mean, divided by its sd; AR(1) `x_t = 0.5 x_(t-1) + e_t`
scaled to unit marginal sd (stationary start); Student-t(3) divided by sqrt(3); Gaussian plus
{round(OUTLIER_SHARE * N_POINTS)} isolated outliers (2%, never adjacent to each other) of +-8 sd,
never on either side of a change point.

1. *Noise only*: no change; metric: share of series with any change point.
2. *One step*: a step of 1 or 2 sd (random sign) at a position uniform in [{POWER_RANGE[0]}, {POWER_RANGE[1]}].
   *alerts*: share of series with any change point; *located*: share with one within {TOLERANCE}
   commits of the true one. *oracle located* is the Gaussian maximum-likelihood single split
   (argmax of `|CUSUM_k| / sqrt(k (n - k) / n)` of the raw values), which knows there is exactly one
   change: at 1 sd even it places it within {TOLERANCE} commits only part of the time{oracle_note}, which
   is why the power targets are about alerts.
3. *Steps*: 1 to 4 change points per series (uniform), positions in [{STEP_RANGE[0]}, {STEP_RANGE[1]}]
   at least {STEP_GAP} apart, each step 2, 3 or 4 sd with a random sign, levels cumulative. F1 pools
   the corpus: detections are matched one to one to true change points within {TOLERANCE} commits,
   closest pairs first; unmatched detections (a second one near the same change included) are false
   positives, unmatched true change points false negatives.

Rows marked — have no target (reported for context). Targets apply to mltest; Otava is the reference.

**Targets:** {summary(results)}

### False alerts on noise only

{noisetable(by_family["noise"])}

### Power: one step

{powertable(by_family["power"])}

### F1 on multi-step series (tolerance {TOLERANCE} commits)

{stepstable(by_family["steps"])}

### Speed

Wall time of the detection loop only (`time.perf_counter`): mltest in-process, Otava in its own
interpreter via `benchmarks/_otava_driver.py`, both after {WARMUP} untimed warm-up series and
excluding interpreter start, imports, corpus generation and JSON loading. One process, one core each.

{speedtable(results)}
{END}
"""


def rows(results: Sequence[Result]) -> list[Row]:
    """The summary rows: each quality target, mltest beside Otava on the same corpus, and the speed."""
    out = []
    for what, target, value in target_checks(results):
        if what.startswith("speed"):
            ours = sum(r.mltest.seconds for r in results)
            theirs = sum(r.otava.seconds for r in results)
            series = sum(r.count for r in results)
            out.append(
                Row(
                    "detector",
                    "time per series",
                    1000 * ours / series,
                    "ms",
                    f"{1000 * ours / series:.2f} ms",
                    f"Otava {1000 * theirs / series:.2f} ms",
                    f"{value:.1f}x faster",
                    f"{target}x faster",
                    target.met(value),
                    False,
                    "ms_per_series",
                )
            )
            continue
        result = next(r for r in results if r.corpus.spec.target is target)
        spec = result.corpus.spec
        if spec.family == "steps":
            theirs = f1_score(result.otava.indices, result.corpus.truth).f1
            shown, other = f"{value:.3f}", f"Otava {theirs:.3f}"
        else:
            theirs = alert_share(result.otava.indices)
            shown, other = _pct(value), f"Otava {_pct(theirs)}"
        ratio = f"{value / theirs:.2f}" if theirs > 0 else "—"
        out.append(
            Row(
                "detector",
                what,
                value,
                "ratio",
                shown,
                other,
                ratio,
                str(target),
                target.met(value),
                spec.family != "noise",
            )
        )
    return out


def run(quick: bool) -> Outcome:
    """For ``python -m benchmarks``: Otava from ``.bench/otava-venv`` (created on first use)."""
    count = SERIES_QUICK if quick else SERIES_FULL
    python = otava_python(None)
    results = run_all(count, python)
    command = "python -m benchmarks" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(results), report(results, command, otava_about(python)), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{SERIES_QUICK} series per corpus (smoke test)")
    parser.add_argument("--series", type=int, help=f"series per corpus (default {SERIES_FULL})")
    parser.add_argument("--otava-python", help="a Python that has apache-otava installed")
    parser.add_argument("--write", action="store_true", help=f"replace the detection section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    count = args.series or (SERIES_QUICK if args.quick else SERIES_FULL)
    python = otava_python(args.otava_python)
    about = otava_about(python)
    if about[0] != OTAVA_VERSION:
        print(f"warning: apache-otava {about[0]} is installed, the benchmark is for {OTAVA_VERSION}", file=sys.stderr)
    results = run_all(count, python)
    command = "python -m benchmarks.detection" + (" --quick" if args.quick and not args.series else "")
    command += f" --series {args.series}" if args.series else ""
    section = report(results, command + " --write", about)
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
