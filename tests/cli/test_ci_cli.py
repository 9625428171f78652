"""`mltest ci nightly` and `mltest ci unit` end to end: a real git repository (on main), a real SQLite
store, and the tiers run by a child pytest (CPU device given explicitly).

Regressions are planted the way test_detect_cli does: a synthetic, seeded history recorded through the
store API (60 commits of main; the step time of t.py::a 30 % slower from commit 40, a new regression).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gitrepo import git, isolate_git
from test_detect_cli import PROJECT, record_history, sha, timing
from webhookserver import webhook_receiver

from mltest.cli import main, store_cmds
from mltest.report.markdown import md_text
from mltest.store import open_store

SUITE = """
import os
import pytest


@pytest.mark.integration
def test_train(record):
    assert not os.environ.get("CI_TEST_FAIL"), "planted failure"
    record("accuracy", 0.9, higher_is_better=True, support=1000)


@pytest.mark.integration
def test_eval():
    pass


def test_unit_a():
    pass


def test_unit_b():
    pass


def test_unit_c():
    pass
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository on main (the cwd): [tool.mltest] with a SQLite store, and a small test suite."""
    root = tmp_path / "proj"
    root.mkdir()
    isolate_git(monkeypatch, tmp_path)
    for name in list(os.environ):
        if name.startswith(("GITHUB_", "CI_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(root)
    (root / "pyproject.toml").write_text(
        f'[tool.mltest]\nproject = "{PROJECT}"\nstore_url = "sqlite:///results.db"\nunit_budget = 0\n',
        encoding="utf-8",
    )
    (root / "tests").mkdir()
    (root / "tests" / "test_suite.py").write_text(SUITE, encoding="utf-8")
    (root / ".gitignore").write_text("results.db*\n.mltest/\n", encoding="utf-8")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "the suite")
    return root


@pytest.fixture
def step_summary(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = project.parent / "step_summary.md"
    path.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(path))
    return path


def plant_regression(root: Path) -> None:
    rng = np.random.default_rng(5)
    record_history(root, 60, lambda i: [timing(rng, "t.py::a", 0.1 * (1.3 if i >= 40 else 1.0))])


def ci(*args: str) -> int:
    return main(["ci", *args])


def junit_cases(path: Path) -> list[str]:
    return sorted(case.get("name", "") for case in ET.parse(path).getroot().iter("testcase"))


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[bytes]]]:
    with webhook_receiver("/hooks/SECRET") as hook:
        yield hook


# ----------------------------------------------------------------------------- nightly: the branch
def test_nightly_refuses_a_branch_other_than_main_in_one_line(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(project, "checkout", "-q", "-b", "feature")
    assert ci("nightly", "--device", "cpu") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("mltest: error: mltest ci nightly runs on the main branch 'main'")
    assert "on branch 'feature'" in err
    assert "--any-branch" in err
    assert not (project / ".mltest" / "artifacts").exists()  # refused before anything ran


def test_nightly_follows_the_main_branch_setting(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ci("nightly", "--device", "cpu", "--main-branch", "trunk") == 2
    assert "runs on the main branch 'trunk', and this checkout is on branch 'main'" in capsys.readouterr().err


def test_nightly_report_only_refuses_a_shard(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert ci("nightly", "--report-only", "--shard", "1/2") == 2
    assert "--report-only runs no tests: drop --shard" in capsys.readouterr().err


def test_bad_worker_count_names_the_value(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        ci("unit", "-n", "many")
    assert exit_.value.code == 2
    assert "expected auto, logical or a whole number of workers (0: no xdist); got 'many'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- nightly: end to end
@pytest.mark.integration
def test_nightly_with_a_new_regression_fails_by_policy_and_reports_it_everywhere(
    project: Path,
    step_summary: Path,
    webhook: tuple[str, list[bytes]],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plant_regression(project)
    url, received = webhook
    monkeypatch.setenv("MLTEST_WEBHOOK_URL", url)

    def broken_sync(settings: object) -> str:
        raise RuntimeError("sheet API quota exceeded\nsecond line")

    monkeypatch.setattr(store_cmds, "sync", broken_sync)
    assert ci("nightly", "--device", "cpu", "--notify-kind", "json") == 1
    out = capfd.readouterr()
    assert "SECRET" not in out.out + out.err
    assert "mltest ci: WARNING: sync failed: RuntimeError: sheet API quota exceeded\n" in out.err
    assert "exit 1: 1 new regression(s) and --policy fail" in out.err

    artifacts = project / ".mltest" / "artifacts"
    assert junit_cases(artifacts / "junit-nightly.xml") == ["test_eval", "test_train"]  # the integration tier only
    report = json.loads((artifacts / "report.json").read_text(encoding="utf-8"))
    assert report["branch"] == "main"
    [new] = [e for e in report["entries"] if e["status"] == "new"]
    assert new["findings"][0]["culprit"] == sha(40)
    assert (artifacts / "report.html").read_text(encoding="utf-8").lstrip().lower().startswith("<!doctype html")
    [payload] = [json.loads(body) for body in received]
    assert payload["regressions"][0]["culprit"] == sha(40)

    summary = step_summary.read_text(encoding="utf-8")
    assert summary.startswith("earlier step\n\n## mltest ci nightly at ")  # appended, never replaced
    head = git(project, "rev-parse", "HEAD")
    assert f"at {head[:10]} (main)" in summary
    assert "✅ tests passed" in summary
    assert "⚠️ " + md_text("sync failed: RuntimeError: sheet API quota exceeded") in summary
    assert "## mltest regression report\n\n❌ **1 new regression**" in summary  # the report itself
    assert "<code>t.py\\:\\:a</code>" in summary
    assert summary.count("## mltest ci nightly") == 1
    assert (artifacts / "summary-nightly.md").read_text(encoding="utf-8") == summary.removeprefix("earlier step\n\n")

    # The recorded CPU run is in the store, at this commit, on main.
    store = open_store(f"sqlite:///{project}/results.db", root=project)
    try:
        [run] = [r for r in store.runs(branch="main") if r.commit.sha == head]
        assert (run.tier, run.status) == ("integration", "passed")
        assert {r.test for r in store.results(run.run_id)} == {
            "tests/test_suite.py::test_train",
            "tests/test_suite.py::test_eval",
        }
    finally:
        store.close()

    # --policy report: the same regression is reported, and the job passes.
    monkeypatch.delenv("MLTEST_WEBHOOK_URL")
    assert ci("nightly", "--device", "cpu", "--policy", "report") == 0
    assert "exit 0: 1 new regression(s) reported (--policy report)" in capfd.readouterr().err
    assert step_summary.read_text(encoding="utf-8").count("## mltest ci nightly") == 2


@pytest.mark.integration
def test_nightly_a_test_failure_fails_whatever_the_policy(
    project: Path, step_summary: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI_TEST_FAIL", "1")
    assert ci("nightly", "--device", "cpu", "--policy", "report") == 1
    err = capfd.readouterr().err
    assert "tests failed (pytest exit 1)" in err
    assert "exit 1: the tests failed, whatever the policy" in err
    assert "❌ tests failed (pytest exit 1)" in step_summary.read_text(encoding="utf-8")


@pytest.mark.integration
def test_nightly_any_branch_runs_and_detects_on_that_branch(project: Path, capfd: pytest.CaptureFixture[str]) -> None:
    git(project, "checkout", "-q", "-b", "feature")
    artifacts = project / "out"
    assert ci("nightly", "--device", "cpu", "--any-branch", "--artifacts", str(artifacts)) == 0
    assert json.loads((artifacts / "report.json").read_text(encoding="utf-8"))["branch"] == "feature"
    assert "at " in (artifacts / "summary-nightly.md").read_text(encoding="utf-8").splitlines()[0]
    assert "(feature)" in (artifacts / "summary-nightly.md").read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.integration
def test_nightly_shards_record_and_the_report_job_reports_once(
    project: Path, step_summary: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    plant_regression(project)
    artifacts = project / ".mltest" / "artifacts"
    for index in (1, 2):
        assert ci("nightly", "--device", "cpu", "--shard", f"{index}/2") == 0
        assert not (artifacts / "report.html").exists()  # no detection in a shard
    one, two = (junit_cases(artifacts / f"junit-nightly-{i}-of-2.xml") for i in (1, 2))
    assert sorted(one + two) == ["test_eval", "test_train"]
    assert len(one) == len(two) == 1
    capfd.readouterr()
    assert ci("nightly", "--report-only") == 1  # the planted regression, --policy fail
    err = capfd.readouterr().err
    assert "2 integration run(s) of this commit: " in err
    assert (artifacts / "report.html").exists()
    summary = step_summary.read_text(encoding="utf-8")
    assert summary.count("## mltest ci nightly, shard ") == 2
    assert "mltest ci nightly --report-only" in summary
    assert summary.count("## mltest ci nightly, report at ") == 1
    assert (artifacts / "summary-nightly-1-of-2.md").exists()


@pytest.mark.integration
def test_report_only_without_runs_of_this_commit_fails(project: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert ci("nightly", "--report-only", "--policy", "report") == 1
    assert "no integration run of " in capfd.readouterr().err


# ----------------------------------------------------------------------------- unit
@pytest.mark.integration
def test_unit_runs_with_xdist_writes_junit_and_compares_a_pull_request_with_main(
    project: Path, step_summary: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    artifacts = project / ".mltest" / "artifacts"
    assert ci("unit", "-n", "2") == 0  # a push to main: recorded into the team store, the baseline
    out = capfd.readouterr()
    assert " -n 2" in out.err
    assert "2 workers" in out.out  # pytest-xdist started
    assert junit_cases(artifacts / "junit-unit.xml") == ["test_unit_a", "test_unit_b", "test_unit_c"]
    first = step_summary.read_text(encoding="utf-8")
    assert "## mltest ci unit" in first
    assert "✅ tests passed" in first
    assert "no recent unit runs of main" in first  # nothing to compare the very first run with

    monkeypatch.setenv("GITHUB_EVENT_NAME", "pull_request")
    monkeypatch.setenv("GITHUB_HEAD_REF", "feature")
    junit = project / "pr.xml"
    assert ci("unit", "-n", "0", "--junitxml", str(junit)) == 0
    assert junit_cases(junit) == ["test_unit_a", "test_unit_b", "test_unit_c"]
    summary = step_summary.read_text(encoding="utf-8").removeprefix(first)
    assert "## mltest compare" in summary
    assert "(<code>feature</code>) against the recent runs of <code>main</code>" in summary
    assert summary.count("<code>test\\_duration</code>") == 3
    assert "❌" not in summary.split("## mltest compare")[0]
    store = open_store(f"sqlite:///{project}/results.db", root=project)
    try:
        assert [r.commit.branch for r in store.runs()] == ["main"]  # the PR's run stayed out of the team store
    finally:
        store.close()


@pytest.mark.integration
def test_unit_passes_arguments_to_pytest_and_no_tests_is_a_failure(
    project: Path, step_summary: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert ci("unit", "-n", "0", "--", "-k", "unit_b") == 0
    assert junit_cases(project / ".mltest" / "artifacts" / "junit-unit.xml") == ["test_unit_b"]
    assert ci("unit", "-n", "0", "--", "-k", "nothing_matches") == 5
    assert "no tests ran (pytest exit 5)" in capfd.readouterr().err
    assert "❌ no tests ran" in step_summary.read_text(encoding="utf-8")


def test_job_summary_text_from_data_is_inert() -> None:
    """A branch name or an error's first line in the job summary makes no HTML, link, mention or format."""
    from mltest.cli.ci_cmd import Summary

    summary = Summary("mltest ci nightly at 0123456789 (<img src=x onerror=alert(1)> @org/team)")
    summary.say("sync: [click](https://evil.example) **now**")
    summary.warn("notify failed: <script>x</script> fixes #12")
    summary.say("tests passed", md="✅ tests passed")  # Markdown the caller made safe stays as given
    text = summary.text()
    assert "<img" not in text
    assert "<script>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "@org" not in text  # a word joiner after @: no mention
    assert "[click](" not in text
    assert "https://" not in text  # no autolink either
    assert "**now**" not in text
    assert "#12" not in text
    assert "- ✅ tests passed" in text
    assert text.startswith("## mltest ci nightly at 0123456789")
