"""The sheet's baseline columns (``rows_builder``) against a plain reference: the algorithm before its
index (every run filtered the whole history), on the seeded random histories of test_load_series:
two fingerprints and environment keys, several runs at one commit, runs starting at the same time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_load_series import random_history

from mltest.cli import sheets_sync
from mltest.cli.detect_cmds import direction_of
from mltest.cli.sheets_sync import rows_builder
from mltest.config import Settings, load_settings
from mltest.detect.compare import compare_values
from mltest.detect.regressions import Tolerance, binomial_noise
from mltest.model import Run, SeriesPoint
from mltest.store import Store, open_store
from mltest.store.gsheets import Baseline, sheet_rows


def reference_rows(settings: Settings, store: Store, run: Run) -> list[dict[str, object]]:
    history = store.series(branch="main", env_key=run.environment.key, project=run.project)
    rows = [
        r
        for r in history
        if r.run_id != run.run_id and r.started_at < run.started_at and r.fingerprint == run.environment.fingerprint
    ]
    started = {r.run_id: r.started_at for r in rows}
    recent = set(sorted(started, key=lambda run_id: (started[run_id], run_id))[-sheets_sync.BASELINE_RUNS :])
    values: dict[tuple[str, str], list[float]] = {}
    for r in rows:
        if r.run_id in recent:
            values.setdefault((r.test, r.metric), []).append(r.value)
    baselines = {}
    measurements = store.run_measurements(run.run_id)
    for m in measurements:
        base = values.get((m.test, m.metric))
        if not base:
            continue
        noise = binomial_noise([SeriesPoint(run.commit.sha, m.value, support=m.support)], m.unit)
        comparison = compare_values(
            m.test,
            m.metric,
            base,
            m.value,
            tolerance=Tolerance.of(settings.metrics.get(m.metric)),
            higher_is_better=direction_of(settings, m.metric, m.unit, m.higher_is_better),
            noise=noise[0] if noise else None,
            unit=m.unit,
        )
        verdict = comparison.verdict
        baselines[(m.test, m.metric)] = Baseline(
            comparison.old, None if verdict in ("no baseline", "changed") else verdict == "regression"
        )
    return [dict(row) for row in sheet_rows(run, measurements, baselines=baselines)]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'results.db'}")
    try:
        yield opened
    finally:
        opened.close()


@pytest.mark.parametrize("window", [20, 3])
@pytest.mark.parametrize("seed", range(8))
def test_baselines_are_the_reference(
    store: Store, tmp_path: Path, seed: int, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sheets_sync, "BASELINE_RUNS", window)  # 3: the window is cut in most histories
    random_history(store, seed, commits=60)
    settings = load_settings(tmp_path, environ={}, cli={})
    build = rows_builder(settings, store, {})
    runs = sorted(store.runs(limit=1000), key=lambda r: (r.started_at, r.run_id))
    assert len(runs) > 30
    with_baseline = 0
    for run in runs:
        got = [dict(row) for row in build(run)]
        assert got == reference_rows(settings, store, run), run.run_id
        with_baseline += sum(row["baseline"] != "" for row in got)
    assert with_baseline > 0  # the comparison is not vacuous
