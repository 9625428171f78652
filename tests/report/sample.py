"""Hand-built reports for renderer tests (renderers are pure functions of the model).

``sample_report()`` is a small, realistic report: 12 commits, one new regression (step time and
throughput at one culprit), one acknowledged accuracy drop over a two-commit range, one recovered
regression, one improvement and one environment change, plus unaffected series. ``hostile=True``
puts hostile text in every user-controlled field; ``ci_url`` names the CI job of the newest run.
``with_drift(report)`` adds a new drift (two steps) first. ``big_report(series, commits)`` scales it up.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math

from mltest.report.model import CommitView, EntryView, FindingView, PointView, Report, SegmentView, SeriesView

HOSTILE_SUBJECT = (
    '<img src=x onerror=alert(1)> =HYPERLINK("http://evil") | ] ) [x](javascript:alert(1)) \x1b[31mred\x1b[0m'
)
HOSTILE_TEST = "tests/t.py::test_x[<script>alert('t')</script>|`]"
HOSTILE_METRIC = "step_time</td><script>alert(2)</script>"


def sha(i: int) -> str:
    return hashlib.sha1(f"commit {i}".encode()).hexdigest()


def series_key(test: str, metric: str, env: str) -> str:
    return "s-" + hashlib.sha1(f"{test}\0{metric}\0{env}".encode()).hexdigest()[:10]


def _series(
    test: str,
    metric: str,
    env: str,
    values: list[float],
    *,
    unit: str | None,
    higher: bool | None,
    cps: tuple[int, ...] = (),
    findings: tuple[str, ...] = (),
    regressed: bool = False,
) -> SeriesView:
    points = tuple(PointView(sha(i), v, v * 0.98, v * 1.02, 5, 1, "fp-a100") for i, v in enumerate(values))
    bounds = [0, *cps, len(values)]
    segments = tuple(
        SegmentView(a, b, sorted(values[a:b])[(b - a) // 2]) for a, b in itertools.pairwise(bounds) if b > a
    )
    return SeriesView(
        series_key(test, metric, env), test, metric, env, unit, higher, points, segments, cps, findings, regressed
    )


def _finding(
    fid: str,
    kind: str,
    test: str,
    metric: str,
    env: str,
    before: float,
    after: float,
    *,
    unit: str | None,
    higher: bool | None,
    good: int | None,
    bad: int,
    status: str = "open",
    fixed_by: int | None = None,
    p: float = 0.001,
) -> FindingView:
    commits = tuple(sha(i) for i in range((good if good is not None else bad - 1) + 1, bad + 1))
    return FindingView(
        id=fid,
        kind=kind,
        status=status,
        test=test,
        metric=metric,
        env_key=env,
        unit=unit,
        higher_is_better=higher,
        before=before,
        after=after,
        rel_change=(after - before) / abs(before) if before else math.inf,
        p_value=p,
        confidence=1 - p,
        good=sha(good) if good is not None else None,
        bad=sha(bad),
        culprit=sha(bad) if len(commits) == 1 else None,
        commits=commits,
        fixed_by=sha(fixed_by) if fixed_by is not None else None,
        series_key=series_key(test, metric, env),
        fixed_after=sha(fixed_by - 1) if fixed_by is not None else None,
    )


def sample_report(
    *, hostile: bool = False, repo_url: str | None = "https://github.com/acme/model", ci_url: str | None = None
) -> Report:
    env = "A100-SXM4-80GB x1" if not hostile else "A100 <b>x1</b> | `env`"
    train = "tests/test_train.py::test_training" if not hostile else HOSTILE_TEST
    step = "step_time" if not hostile else HOSTILE_METRIC
    subjects = [f"commit number {i}" for i in range(12)]
    if hostile:
        subjects = [HOSTILE_SUBJECT] * 12
    subjects[6] = subjects[6] if hostile else "Validate every training row for NaN/inf before the step"
    commits = tuple(
        CommitView(
            sha(i),
            subjects[i],
            f"2026-11-{i + 1:02d}T10:00:00+00:00",
            f"{repo_url}/commit/{sha(i)}" if repo_url else None,
            i,
        )
        for i in range(12)
    )
    f_step = _finding("f-step", "regression", train, step, env, 0.10, 0.13, unit="s", higher=False, good=5, bad=6)
    f_thr = _finding(
        "f-thr", "regression", train, "samples_per_s", env, 1000.0, 770.0, unit="samples/s", higher=True, good=5, bad=6
    )
    f_acc = _finding(
        "f-acc",
        "regression",
        "tests/test_eval.py::test_accuracy",
        "accuracy",
        env,
        0.91,
        0.89,
        unit=None,
        higher=True,
        good=7,
        bad=9,
        p=0.004,
    )
    f_mem = _finding(
        "f-mem",
        "regression",
        train,
        "peak_memory_allocated",
        env,
        2.0e9,
        2.6e9,
        unit="bytes",
        higher=False,
        good=2,
        bad=3,
        status="recovered",
        fixed_by=5,
    )
    f_lat = _finding(
        "f-lat",
        "improvement",
        "tests/test_serve.py::test_latency",
        "latency",
        env,
        0.020,
        0.015,
        unit="s",
        higher=False,
        good=3,
        bad=4,
    )
    f_env = _finding("f-env", "environment", train, "loss", env, 0.5, 0.55, unit=None, higher=False, good=9, bad=10)
    entries = (
        EntryView("r-new", "regression", "new", (f_step, f_thr)),
        EntryView("r-ack", "regression", "acknowledged", (f_acc,), "bigger eval set, expected (alice, 2026-11-10)"),
        EntryView("r-rec", "regression", "recovered", (f_mem,)),
        EntryView("r-imp", "improvement", "open", (f_lat,)),
        EntryView("r-env", "environment", "open", (f_env,)),
    )
    series = (
        _series(
            train,
            step,
            env,
            [0.1] * 6 + [0.13] * 6,
            unit="s",
            higher=False,
            cps=(6,),
            findings=("f-step",),
            regressed=True,
        ),
        _series(
            train,
            "samples_per_s",
            env,
            [1000.0] * 6 + [770.0] * 6,
            unit="samples/s",
            higher=True,
            cps=(6,),
            findings=("f-thr",),
            regressed=True,
        ),
        _series(
            "tests/test_eval.py::test_accuracy",
            "accuracy",
            env,
            [0.91] * 9 + [0.89] * 3,
            unit=None,
            higher=True,
            cps=(9,),
            findings=("f-acc",),
        ),
        _series(
            train,
            "peak_memory_allocated",
            env,
            [2.0e9] * 3 + [2.6e9] * 2 + [2.0e9] * 7,
            unit="bytes",
            higher=False,
            cps=(3, 5),
            findings=("f-mem",),
        ),
        _series(
            "tests/test_serve.py::test_latency",
            "latency",
            env,
            [0.02] * 4 + [0.015] * 8,
            unit="s",
            higher=False,
            cps=(4,),
            findings=("f-lat",),
        ),
        _series(train, "loss", env, [0.5] * 10 + [0.55] * 2, unit=None, higher=False, cps=(10,), findings=("f-env",)),
        _series(
            "tests/test_data.py::test_loader",
            "throughput",
            env,
            [500.0 + (i % 3) for i in range(12)],
            unit="items/s",
            higher=True,
        ),
    )
    return Report(
        project="acme-model" if not hostile else "acme <i>model</i>",
        branch="main",
        generated_at="2026-11-30T08:00:00+00:00",
        store="sqlite:///.mltest/results.db",
        commits=commits,
        entries=entries,
        series=series,
        repo_url=repo_url,
        undirected=("foo_metric",),
        ci_url=ci_url,
    )


def with_drift(report: Report) -> Report:
    """``report`` with a new drift entry first: step time up 6 % in two 3 % steps (commits 2 and 8)."""
    f = _finding(
        "f-drift", "drift", "tests/test_train.py::test_step", "step_time", "A100-SXM4-80GB x1", 0.1, 0.106,
        unit="s", higher=False, good=1, bad=8,
    )  # fmt: skip
    f = dataclasses.replace(f, steps=2, note=f"steps at {sha(2)[:10]}, {sha(8)[:10]}")
    return dataclasses.replace(report, entries=(EntryView("r-drift", "drift", "new", (f,)), *report.entries))


def big_report(series: int, commits: int) -> Report:
    """``series`` series x ``commits`` commits, one new regression in every tenth series."""
    env = "A100-SXM4-80GB x1"
    views = []
    entries = []
    for s in range(series):
        test, metric = f"tests/test_{s // 10}.py::test_{s}", f"metric_{s % 10}"
        step = s % 10 == 0
        values = [1.0 + 0.01 * ((i * 7 + s) % 5) + (0.3 if step and i >= commits // 2 else 0.0) for i in range(commits)]
        fid = f"f-{s}"
        cps = (commits // 2,) if step else ()
        views.append(
            _series(
                test,
                metric,
                env,
                values,
                unit="s",
                higher=False,
                cps=cps,
                findings=(fid,) if step else (),
                regressed=step,
            )
        )
        if step:
            f = _finding(
                fid,
                "regression",
                test,
                metric,
                env,
                1.0,
                1.3,
                unit="s",
                higher=False,
                good=commits // 2 - 1,
                bad=commits // 2,
            )
            entries.append(f)
    commit_views = tuple(CommitView(sha(i), f"commit {i}", None, None, i) for i in range(commits))
    return Report(
        project="big",
        branch="main",
        generated_at="2026-11-30T08:00:00+00:00",
        store="sqlite:///r.db",
        commits=commit_views,
        entries=(EntryView("r-big", "regression", "new", tuple(entries)),) if entries else (),
        series=tuple(views),
    )
