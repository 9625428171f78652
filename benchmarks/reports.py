"""Report generation: ``mltest report`` in every format on a big store, against detection alone (issue 6).

Usage (from the repository root)::

    python -m benchmarks --only reports [--quick] [--write]    # as part of the suite
    python -m benchmarks.reports [--quick] [--write]

*Store.* A SQLite file in a temporary directory, written through the public ``Store`` API with the
store benchmark's workload (:func:`benchmarks.store.insert_workload`, :func:`~benchmarks.store.write_runs`):
one run per commit of a first-parent chain, 40 tests x 5 metrics = 200 series, over 1,000 commits
(``--quick``: 100). Noise is 2 %; six step changes are planted (one commit slowing five tests at once,
a throughput drop, a memory rise, a loss rise, an accuracy drop and a speed-up), so the report has
regressions, an improvement and charts with segments.

*Method.* Each repeat starts from a copy of that store with no detection state cached (the first
report on a store, or one whose states were lost) and runs what ``mltest report`` runs
(``mltest.cli.report_cmd``): ``analyze`` (the detection ``mltest check`` runs, timed alone: the
comparison), then per format ``build_report`` (the model), ``render`` and writing the file. The whole
report of a format is detection + model + render + write. The incremental case starts from the store
as the first report left it (states cached), records one more commit (not timed) and times the HTML
report again. Every time is the fastest of the repeats (2 cores shared with other work: the fastest
run is the one least disturbed); in one process, imports done, garbage collected before each step.

*Targets.*

- HTML report of 200 series x 1,000 commits in at most 5 s, whole (detection included): a CI step
  that takes longer than the tests it reports on is not run on every commit.
- HTML file at most 5 MB: engineers download it from a CI artifact and open it in a browser, which
  parses and draws a page of that size in about a second; 200,000 points leave 25 bytes a point.
- The Markdown PR comment at most 65,536 characters, GitHub's limit on a comment body (the renderer
  caps itself at 65,000 by default).
- Everything after detection (model, render, write) at most 1x detection, in every format: the
  report formats what detection found; costing more than finding it means the formatting is wasteful.

``--quick`` scales the time and size targets linearly with the points (a smoke test).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_MD, Outcome, Row, emit, machine, met_text, table
from benchmarks.store import BRANCH, METRICS, PROJECT, RunWrites, Sizes, insert_workload, write_runs
from mltest.cli.detect_cmds import Analysis, analyze
from mltest.cli.report_cmd import FORMATS, build_report, render
from mltest.config import Settings
from mltest.model import Measurement
from mltest.report.markdown import FULL_REPORT_HINT
from mltest.report.model import Report
from mltest.store import Store, open_store

NAME = "reports"
HEADING = "## Report generation (issue 6)"
START, END = f"<!-- {NAME}:start -->", f"<!-- {NAME}:end -->"

HTML_TARGET_S = 5.0
"""The whole HTML report (detection included) of the full store, at most."""
HTML_TARGET_BYTES = 5_000_000
"""The HTML file of the full store, at most."""
MARKDOWN_LIMIT = 65_536
"""GitHub refuses a comment body over this many characters."""
RENDER_TARGET = 1.0
"""Everything after detection, at most this times detection."""

TESTS = 40
COMMITS_FULL, COMMITS_QUICK = 1_000, 100
REPEATS_FULL, REPEATS_QUICK = 3, 3
REPO_URL = "https://github.com/acme/train"
SUFFIX = {"text": "txt", "markdown": "md", "html": "html", "json": "json"}
LABEL = {"text": "terminal text", "markdown": "Markdown", "html": "HTML", "json": "JSON"}


@dataclass(frozen=True)
class Step:
    """A planted level change: from ``at`` (a fraction of the history) on, ``metric`` of these tests
    (indices, modulo the number of tests) is multiplied by ``factor``."""

    at: float
    metric: str
    tests: tuple[int, ...]
    factor: float


STEPS = (
    Step(0.30, "step_time", (0, 1, 2, 3, 4), 1.15),  # one commit slows five tests: one grouped regression
    Step(0.50, "throughput", (7,), 0.88),
    Step(0.65, "peak_memory_rss", (12,), 1.10),
    Step(0.80, "loss", (20,), 1.08),
    Step(0.90, "accuracy", (25,), 0.94),
    Step(0.95, "step_time", (30,), 0.80),  # an improvement
)


@dataclass(frozen=True)
class Shape:
    tests: int
    commits: int
    repeats: int

    @property
    def series(self) -> int:
        return self.tests * len(METRICS)

    @property
    def points(self) -> int:
        return self.series * self.commits

    @property
    def scale(self) -> float:
        """Points relative to the full benchmark (time and size targets scale linearly)."""
        return self.points / (TESTS * len(METRICS) * COMMITS_FULL)

    @property
    def label(self) -> str:
        return f"{self.series} series x {self.commits:,} commits"


FULL = Shape(TESTS, COMMITS_FULL, REPEATS_FULL)
QUICK = Shape(TESTS, COMMITS_QUICK, REPEATS_QUICK)


# ----------------------------------------------------------------------------- the store


def _scaled(m: Measurement, factor: float) -> Measurement:
    return dataclasses.replace(
        m,
        value=m.value * factor,
        samples=tuple(s * factor for s in m.samples),
        iqr=None if m.iqr is None else m.iqr * factor,
    )


def workload(shape: Shape, seed: int = 7) -> list[RunWrites]:
    """``shape.commits + 1`` runs, one per commit (the last is the incremental case's new commit),
    with :data:`STEPS` planted."""
    runs = insert_workload(Sizes(runs=shape.commits + 1, tests=shape.tests, history=0), prefix="report", seed=seed)
    out = []
    for i, writes in enumerate(runs):
        changes: dict[tuple[int, str], float] = {}
        for step in STEPS:
            if i >= int(step.at * shape.commits):
                for t in {k % shape.tests for k in step.tests}:
                    changes[(t, step.metric)] = changes.get((t, step.metric), 1.0) * step.factor
        if changes:
            tests = tuple(
                (result, tuple(_scaled(m, changes[(t, m.metric)]) if (t, m.metric) in changes else m for m in measured))
                for t, (result, measured) in enumerate(writes.tests)
            )
            writes = dataclasses.replace(writes, tests=tests)
        out.append(writes)
    return out


def _copy(src: Path, dst: Path) -> Path:
    """A consistent copy of an SQLite store (its WAL included)."""
    a, b = sqlite3.connect(src), sqlite3.connect(dst)
    try:
        a.backup(b)
    finally:
        a.close()
        b.close()
    return dst


def _remove(path: Path) -> None:
    """An SQLite file and whatever the store left beside it (WAL, shared memory)."""
    for p in (path, *(path.with_name(path.name + x) for x in ("-wal", "-shm", "-journal"))):
        p.unlink(missing_ok=True)


@contextmanager
def _opened(path: Path) -> Iterator[Store]:
    store = open_store(f"sqlite:///{path}")
    try:
        yield store
    finally:
        store.close()


def settings_for(path: Path) -> Settings:
    """What ``mltest report --store sqlite:///PATH`` would use: the project of the workload, a GitHub
    repository (commit links in every format); the config file's directory is the temporary one (no
    git checkout there: subjects come from the store, as on a CI runner without history)."""
    return Settings(
        store_url=f"sqlite:///{path}", project=PROJECT, repo_url=REPO_URL, config_file=path.parent / "pyproject.toml"
    )


# ----------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Timing:
    """One repeat, in seconds."""

    detect: float
    """``analyze`` with no state cached: what ``mltest check`` runs on this store."""
    again: float
    """``analyze`` once more, nothing new (states cached by the first)."""
    build: dict[str, float]
    """Per format: ``build_report``."""
    render: dict[str, float]
    """Per format: ``render`` and writing the file."""
    inc_detect: float
    """After one new commit: ``analyze`` (states cached)."""
    inc_html: float
    """After one new commit: the whole HTML report (detection included)."""

    def after(self, fmt: str) -> float:
        return self.build[fmt] + self.render[fmt]

    def whole(self, fmt: str) -> float:
        return self.detect + self.after(fmt)


@dataclass(frozen=True)
class Result:
    shape: Shape
    write_s: float
    """Recording the history through the store API (informational)."""
    timings: list[Timing]
    sizes: dict[str, int]
    """Per format: characters of the output (bytes for HTML, UTF-8)."""
    html_bytes: int
    md_chars: int
    md_cut: bool
    """The Markdown renderer dropped something to stay under its cap."""
    entries: int
    findings: int
    new: int
    charted: int
    """Series with at least one finding (a chart with a marked change)."""

    def best(self, get: Callable[[Timing], float]) -> float:
        """The fastest repeat of one measure."""
        return min(get(t) for t in self.timings)

    def after(self, fmt: str) -> float:
        return min(t.after(fmt) for t in self.timings)

    def whole(self, fmt: str) -> float:
        return min(t.whole(fmt) for t in self.timings)


def _clock(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """``fn(*args, **kwargs)`` and its wall time; garbage of earlier steps is collected first, so
    that no step pays for another's."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def _log(message: str) -> None:
    print(f"   {message}", file=sys.stderr, flush=True)


def _render(report: Report, fmt: str, out: Path) -> str:
    """What ``mltest report --format FMT --out PATH`` does with the model (text as in a CI log: no
    colour, 240 columns)."""
    text = render(report, fmt, color=False, width=240)
    out.write_text(text, encoding="utf-8")
    return text


def _html_report(settings: Settings, store: Store, analysis: Analysis, out: Path) -> str:
    return _render(build_report(settings, store, analysis, environ={}), "html", out)


def measure(shape: Shape, log: Callable[[str], None] = _log) -> Result:
    runs = workload(shape)
    with tempfile.TemporaryDirectory(prefix="mltest-reports-bench-") as tmp:
        root = Path(tmp)
        pristine, warm = root / "pristine.db", root / "warm.db"
        log(f"recording {shape.commits:,} runs of {shape.series} measurements")
        with _opened(pristine) as store:
            written = write_runs(store, runs[:-1], batched=True)
        timings: list[Timing] = []
        outputs: dict[str, str] = {}
        for r in range(shape.repeats):
            work = _copy(pristine, root / f"work-{r}.db")
            settings = settings_for(work)
            build: dict[str, float] = {}
            rendered: dict[str, float] = {}
            with _opened(work) as store:
                analysis, detect = _clock(analyze, settings, store, branch=BRANCH)
                _, again = _clock(analyze, settings, store, branch=BRANCH)
                for fmt in FORMATS:
                    report, build[fmt] = _clock(build_report, settings, store, analysis, environ={})
                    outputs[fmt], rendered[fmt] = _clock(_render, report, fmt, root / f"report.{SUFFIX[fmt]}")
                    del report  # one model alive at a time, as in the CLI
            if r == 0:
                _copy(work, warm)
            _remove(work)
            # The incremental case: the store as the first report left it, one more commit.
            inc = _copy(warm, root / f"inc-{r}.db")
            inc_settings = settings_for(inc)
            with _opened(inc) as store:
                write_runs(store, runs[-1:], batched=True)
                inc_analysis, inc_detect = _clock(analyze, inc_settings, store, branch=BRANCH)
                _, inc_report = _clock(_html_report, inc_settings, store, inc_analysis, root / "inc.html")
                del inc_analysis
            _remove(inc)
            timings.append(Timing(detect, again, build, rendered, inc_detect, inc_detect + inc_report))
            log(
                f"repeat {r + 1}/{shape.repeats}: detection {detect:.2f} s, "
                + ", ".join(f"{fmt} +{timings[-1].after(fmt):.2f} s" for fmt in FORMATS)
                + f"; after one new commit: HTML {inc_detect + inc_report:.2f} s"
            )
    findings = [f for reg in analysis.regressions for f in reg.findings]
    return Result(
        shape,
        written.seconds,
        timings,
        {fmt: len(text) for fmt, text in outputs.items()},
        len(outputs["html"].encode("utf-8")),
        len(outputs["markdown"]),
        FULL_REPORT_HINT in outputs["markdown"],
        len(analysis.regressions),
        len(findings),
        len(analysis.new),
        len({(f.test, f.metric, f.env_key) for f in findings}),
    )


# ----------------------------------------------------------------------------- reporting


def targets(shape: Shape) -> tuple[float, float]:
    """(HTML seconds, HTML bytes) for this shape: the full targets, scaled linearly with the points."""
    return HTML_TARGET_S * shape.scale, HTML_TARGET_BYTES * shape.scale


def _s(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 0.1 else f"{1000 * seconds:.1f} ms"


def _mb(size: float) -> str:
    return f"{size / 1e6:.2f} MB"


def rows(result: Result) -> list[Row]:
    shape = result.shape
    quick = shape.scale != 1
    suffix = "_quick" if quick else ""
    scaled = " (scaled)" if quick else ""
    html_target_s, html_target_bytes = targets(shape)
    detect = result.best(lambda t: t.detect)
    html = result.whole("html")
    out = [
        Row(
            benchmark=NAME,
            case=f"HTML report, {shape.label}: detection + model + render + write",
            value=html,
            unit="s",
            shown=_s(html),
            comparison=f"detection alone {_s(detect)}",
            ratio=f"{html / detect:.2f}x detection",
            target=f"≤ {_s(html_target_s)}{scaled}",
            met=html <= html_target_s,
            higher_is_better=False,
            metric=f"html_report_s{suffix}",
        )
    ]
    for fmt in FORMATS:
        after = result.after(fmt)
        out.append(
            Row(
                benchmark=NAME,
                case=f"{LABEL[fmt]} report, {shape.label}: after detection (model + render + write)",
                value=after,
                unit="s",
                shown=_s(after),
                comparison=f"detection alone {_s(detect)}; whole report {_s(result.whole(fmt))}",
                ratio=f"{after / detect:.2f}x detection",
                target=f"≤ {RENDER_TARGET:g}x detection",
                met=after <= RENDER_TARGET * detect,
                higher_is_better=False,
                metric=f"{fmt}_after_detection_s{suffix}",
            )
        )
    out.append(
        Row(
            benchmark=NAME,
            case=f"HTML report file, {shape.label}",
            value=float(result.html_bytes),
            unit="bytes",
            shown=_mb(result.html_bytes),
            comparison=f"JSON report {_mb(result.sizes['json'])}",
            ratio=f"{result.html_bytes / shape.points:.1f} bytes/point",
            target=f"≤ {_mb(html_target_bytes)}{scaled}",
            met=result.html_bytes <= html_target_bytes,
            higher_is_better=False,
            metric=f"html_bytes{suffix}",
        )
    )
    out.append(
        Row(
            benchmark=NAME,
            case=f"Markdown PR comment, {shape.label} ({result.entries} entries)",
            value=float(result.md_chars),
            unit="chars",
            shown=f"{result.md_chars:,} chars",
            comparison=f"terminal text {result.sizes['text']:,} chars"
            + ("; the renderer cut entries" if result.md_cut else ""),
            ratio=f"{result.md_chars / MARKDOWN_LIMIT:.1%} of the limit",
            target=f"≤ {MARKDOWN_LIMIT:,} chars (GitHub)",
            met=result.md_chars <= MARKDOWN_LIMIT,
            higher_is_better=False,
            metric=f"markdown_chars{suffix}",
        )
    )
    inc = result.best(lambda t: t.inc_html)
    inc_detect = result.best(lambda t: t.inc_detect)
    out.append(
        Row(
            benchmark=NAME,
            case=f"HTML report after one new commit, {shape.label} (detection states cached)",
            value=inc,
            unit="s",
            shown=_s(inc),
            comparison=f"first report {_s(html)}; detection {_s(inc_detect)} against {_s(detect)}",
            ratio=f"{inc / html:.2f}x the first",
            higher_is_better=False,
            metric=f"html_report_incremental_s{suffix}",
        )
    )
    return out


def detail_table(result: Result) -> str:
    detect = result.best(lambda t: t.detect)
    body = [
        ["detection (`analyze`), no state cached", _s(detect), "—", "—", "—"],
        ["detection again, nothing new (states cached)", _s(result.best(lambda t: t.again)), "—", "—", "—"],
        [
            "detection after one new commit (states cached)",
            _s(result.best(lambda t: t.inc_detect)),
            "—",
            "—",
            "—",
        ],
    ]
    for fmt in FORMATS:
        size = f"{result.html_bytes:,} bytes" if fmt == "html" else f"{result.sizes[fmt]:,} chars"
        body.append(
            [
                f"{LABEL[fmt]} report",
                _s(result.whole(fmt)),
                _s(min(t.build[fmt] for t in result.timings)),
                _s(min(t.render[fmt] for t in result.timings)),
                size,
            ]
        )
    return table(["step", "whole (fastest)", "`build_report`", "`render` + write", "output"], body)


def report(result: Result, command: str) -> str:
    shape = result.shape
    rs = rows(result)
    summary = table(
        ["case", "mltest", "compared with (same run)", "ratio", "target", "met?"],
        [[r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in rs],
    )
    html_s, html_bytes = targets(shape)
    quick = (
        f"\n**Quick mode**: {shape.commits:,} commits instead of {COMMITS_FULL:,}; the time and size targets "
        f"scaled linearly ({_s(html_s)}, {_mb(html_bytes)}).\n"
        if shape.scale != 1
        else ""
    )
    steps = "; ".join(
        f"{s.metric} x{s.factor:g} at {s.at:.0%} of the history ({len({k % shape.tests for k in s.tests})} test"
        f"{'s' if len({k % shape.tests for k in s.tests}) > 1 else ''})"
        for s in STEPS
    )
    return f"""{HEADING}

{START}
`{command}` on {dt.date.today().isoformat()}. Machine: {machine()}.
{quick}
**Store.** SQLite, written through the `Store` API with the store benchmark's workload (recorded in
{result.write_s:.1f} s): {shape.tests} tests x {len(METRICS)} metrics = {shape.series} series, one run at
each of {shape.commits:,} commits of a first-parent chain, 2 % noise. Planted steps: {steps}. Detection
found {result.entries} entries ({result.new} new regressions) with {result.findings} findings in
{result.charted} series.

**Method.** Each of {shape.repeats} repeats starts from a copy of the store with no detection state
cached and runs what `mltest report` runs: `analyze` (what `mltest check` runs: the comparison), then
per format `build_report`, `render` and writing the file (terminal text: 240 columns, no colour, as in
a CI log). After one new commit: a copy of the store as the first report left it (states cached), one
more run recorded (not timed), the HTML report again. Times are the fastest of the repeats, in one
process with imports done, garbage collected before each timed step.

{summary}

{detail_table(result)}
{END}
"""


def run(quick: bool) -> Outcome:
    result = measure(QUICK if quick else FULL)
    command = "python -m benchmarks --only reports" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(result), report(result, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{COMMITS_QUICK} commits (default {COMMITS_FULL:,})")
    parser.add_argument("--write", action="store_true", help=f"replace the reports section of {BENCHMARKS_MD.name}")
    args: Any = parser.parse_args(argv)
    started = time.perf_counter()
    result = measure(QUICK if args.quick else FULL)
    section = report(result, "python -m benchmarks.reports" + (" --quick" if args.quick else "") + " --write")
    emit(section, START, END, args.write)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
