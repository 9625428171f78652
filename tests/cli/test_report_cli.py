"""`mltest report` and the report model built from a real SQLite store (`build_report`).

Histories come from the helpers of test_detect_cli (synthetic, seeded, recorded through the store API);
renderers are tested on hand-built models in tests/report/, here the model itself and the command.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from test_detect_cli import PROJECT, T0, accuracy, cli, environment, record_history, sha, timing, write_config
from webhookserver import webhook_receiver

from mltest.cli.detect_cmds import analyze
from mltest.cli.report_cmd import build_report, commit_url, repo_url_from, series_key
from mltest.config import Settings, load_settings
from mltest.errors import ConfigError
from mltest.model import Commit, Run
from mltest.store import open_store


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    write_config(tmp_path, 'repo_url = "https://github.com/acme/model"\n')
    return tmp_path


def _history(root: Path) -> None:
    """60 commits: step time of t.py::a 30 % slower from commit 40 (a new regression); accuracy of
    t.py::eval drops at 20 and is back at 30 (recovered); t.py::b never moves."""
    rng = np.random.default_rng(5)

    def measure(i: int) -> list:
        acc = 0.85 if 20 <= i < 30 else 0.9
        return [
            timing(rng, "t.py::a", 0.1 * (1.3 if i >= 40 else 1.0)),
            timing(rng, "t.py::b", 0.2),
            accuracy(rng, "t.py::eval", acc),
        ]

    record_history(root, 60, measure)


def _report(root: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    settings = load_settings(root, environ={})
    store = open_store(settings.store_url, root=root)
    try:
        return build_report(settings, store, analyze(settings, store, branch="main"), environ={}, **kwargs)
    finally:
        store.close()


def test_the_model_orders_entries_and_series_and_links_commits(project: Path) -> None:
    _history(project)
    report = _report(project)
    assert report.project == PROJECT
    assert report.branch == "main"
    assert report.repo_url == "https://github.com/acme/model"
    # the history, oldest first, each commit with its position, subject and link
    assert [c.sha for c in report.commits[:60]] == [sha(i) for i in range(60)]
    assert [c.position for c in report.commits[:60]] == list(range(60))
    assert report.commit(sha(40)).subject == "commit 40"
    assert report.commit(sha(40)).url == f"https://github.com/acme/model/commit/{sha(40)}"
    # the new regression first, then the recovered one
    statuses = [(e.status, e.kind) for e in report.entries]
    assert statuses[0] == ("new", "regression")
    assert ("recovered", "regression") in statuses
    new = report.new
    assert len(new) == 1
    assert new[0].culprit == sha(40)
    [finding] = new[0].findings
    assert (finding.test, finding.metric) == ("t.py::a", "step_time")
    assert finding.rel_change == pytest.approx(0.3, abs=0.03)
    assert 0.99 < finding.confidence <= 1.0
    assert finding.series_key == series_key("t.py::a", "step_time", finding.env_key)
    # series: the regressed one first, then the one with findings, then the quiet one; all three present
    assert [(s.test, s.metric) for s in report.series] == [
        ("t.py::a", "step_time"),
        ("t.py::eval", "accuracy"),
        ("t.py::b", "step_time"),
    ]
    step = report.series[0]
    assert step.regressed
    assert finding.id in step.findings
    assert len(step.points) == 60
    assert 40 in step.change_points
    assert [(seg.start, seg.end) for seg in step.segments][-1][1] == 60
    assert step.segments[-1].level == pytest.approx(0.13, rel=0.03)
    assert all(p.low <= p.value <= p.high for p in step.points)
    quiet = report.series[2]
    assert not quiet.regressed
    assert quiet.findings == ()
    assert quiet.change_points == ()


def _ci_run(root: Path, i: int, ci_url: str | None) -> None:
    """A run at commit ``i`` (after the 60 of ``_history``) that CI recorded, with its job's URL."""
    store = open_store(f"sqlite:///{root}/results.db", root=root)
    try:
        when = (T0 + timedelta(hours=i)).isoformat()
        ancestry = tuple(sha(j) for j in reversed(range(i)))
        commit = Commit(
            sha(i), "main", parents=ancestry[:1], subject=f"commit {i}", committed_at=when, ancestry=ancestry
        )
        run = Run(f"main-{i}", PROJECT, "integration", commit, environment(), started_at=when, ci_url=ci_url)
        store.begin_run(run)
        store.add_results(run.run_id, [], [timing(np.random.default_rng(i), "t.py::b", 0.2)])
        store.finish_run(run.run_id, "passed", when)
    finally:
        store.close()


def test_the_ci_job_of_the_newest_run_is_in_the_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(project)
    assert _report(project).ci_url is None  # runs recorded outside CI
    _ci_run(project, 60, "https://ci:t0ken@ci.example/acme/model/-/jobs/60")
    report = _report(project)
    assert report.ci_url == "https://ci.example/acme/model/-/jobs/60"  # credentials never reach a link
    assert cli(project, "report") == 0
    assert "CI job: https://ci.example/acme/model/-/jobs/60" in capsys.readouterr().out.splitlines()
    assert cli(project, "report", "--format", "markdown") == 0
    assert "[CI job](https://ci.example/acme/model/-/jobs/60)" in capsys.readouterr().out
    assert cli(project, "check", "--json") == 1
    assert json.loads(capsys.readouterr().out)["ci_url"] == "https://ci.example/acme/model/-/jobs/60"
    # Only the newest run counts, and only an http(s) URL.
    _ci_run(project, 61, "javascript:alert(1)")
    assert _report(project).ci_url is None


def test_drift_steps_reach_the_model(project: Path) -> None:
    write_config(
        project, 'repo_url = "https://github.com/acme/model"\n[tool.mltest.metrics.step_time]\ntolerance = 0.05\n'
    )
    rng = np.random.default_rng(4)
    record_history(project, 80, lambda i: [timing(rng, "t.py::a", 0.1 * 1.03 ** (i // 20), sd=0.003)])
    [entry] = _report(project).entries
    [finding] = entry.findings
    assert (entry.kind, finding.steps) == ("drift", 2)
    assert finding.note == f"steps at {sha(20)[:10]}, {sha(40)[:10]}"


def test_since_starts_the_history_at_a_commit_or_a_date(project: Path) -> None:
    _history(project)
    by_sha = _report(project, since=sha(35)[:8])
    assert by_sha.commits[0].sha == sha(35)
    assert all(len(s.points) == 25 for s in by_sha.series)
    assert [e.status for e in by_sha.entries] == ["new"]  # the recovered one is before the window
    by_date = _report(project, since="2026-01-02T20:00")  # commit i is at T0 + i hours
    assert by_date.commits[0].sha == sha(44)
    with pytest.raises(ConfigError, match="--since 'nope'"):
        _report(project, since="nope")


def test_repo_url_comes_from_the_setting_or_ci_and_must_be_a_web_address(tmp_path: Path) -> None:
    settings = Settings()
    assert repo_url_from(settings, {}) is None
    assert repo_url_from(settings, {"GITHUB_REPOSITORY": "o/r"}) == "https://github.com/o/r"
    github = {"GITHUB_SERVER_URL": "https://ghe.example/", "GITHUB_REPOSITORY": "o/r"}
    assert repo_url_from(settings, github) == "https://ghe.example/o/r"
    assert repo_url_from(settings, {"CI_PROJECT_URL": "https://gitlab.example/g/p"}) == "https://gitlab.example/g/p"
    assert repo_url_from(Settings(repo_url="https://x.example/r/"), github) == "https://x.example/r"
    with pytest.raises(ConfigError, match="starting with https://"):
        repo_url_from(Settings(repo_url="javascript:alert(1)"), {})
    assert commit_url(None, "abc") is None
    assert commit_url("https://x.example/r", "abc") == "https://x.example/r/commit/abc"
    # Credentials in the setting never reach a link (or an error message).
    assert repo_url_from(Settings(repo_url="https://ci:t0ken@x.example/r"), {}) == "https://x.example/r"
    assert repo_url_from(Settings(repo_url="https://t0ken@x.example"), {}) == "https://x.example"
    with pytest.raises(ConfigError) as bad:
        repo_url_from(Settings(repo_url="ftp://ci:t0ken@x.example/r"), {})
    assert "t0ken" not in str(bad.value)


def test_report_command_writes_json_to_a_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(project)
    out = project / "out" / "report.json"
    assert cli(project, "report", "--format", "json", "--out", str(out)) == 0
    assert f"wrote {out}" in capsys.readouterr().err
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["project"] == PROJECT
    assert data["entries"][0]["status"] == "new"


def test_report_command_errors_are_one_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(project)
    assert cli(project, "report", "--since", "zzz") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mltest: error: --since 'zzz'")
    assert len(err.splitlines()) == 1


def test_notify_posts_the_new_regression_to_a_webhook_and_never_prints_its_url(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with webhook_receiver("/hooks/SECRET-TOKEN") as (url, received):
        _history(project)
        monkeypatch.setenv("MLTEST_WEBHOOK_URL", url)
        assert cli(project, "notify", "--kind", "json") == 0
        out = capsys.readouterr()
        assert "SECRET" not in out.out + out.err
        [body] = received
        payload = json.loads(body)
        [regression] = payload["regressions"]
        assert regression["culprit"] == sha(40)
        monkeypatch.delenv("MLTEST_WEBHOOK_URL")
        assert cli(project, "notify") == 2
        assert "no webhook" in capsys.readouterr().err
