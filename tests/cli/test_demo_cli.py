"""`mltest demo` end to end: a real git history, real torch training in real pytest processes, the
embedded SQLite store, detection. The assertions read the store and the outcome of the run itself."""

from __future__ import annotations

from pathlib import Path

import pytest
from gitrepo import isolate_git

from mltest.cli import demo_cmd, main
from mltest.demo import MIN_COMMITS
from mltest.store import open_store


@pytest.fixture(autouse=True)
def _no_outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate_git(monkeypatch, tmp_path)


@pytest.mark.integration
def test_the_demo_names_both_culprits_and_no_neutral_commit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines: list[str] = []
    outcome = demo_cmd.demo(commits=MIN_COMMITS, workdir=tmp_path / "work", seed=3, device="cpu", echo=lines.append)

    # The scripted history is in git, one commit per step, on main.
    assert [c.position for c in outcome.commits] == list(range(MIN_COMMITS))
    assert len({c.sha for c in outcome.commits}) == MIN_COMMITS

    # Every commit was recorded: a unit run and an integration run each, on branch main.
    store = open_store(outcome.store_url, root=outcome.repo)
    runs = store.runs(limit=1000)
    assert sorted((r.tier, r.commit.sha) for r in runs) == sorted(
        (tier, c.sha) for c in outcome.commits for tier in ("unit", "integration")
    )
    assert {r.commit.branch for r in runs} == {"main"}
    assert {r.status for r in runs} == {"passed"}
    for c in outcome.commits:
        assert {"accuracy", "step_time", "train_samples_per_s"} <= c.values.keys()

    # Detection named exactly the two planted commits, each for the metrics it moved.
    by_kind = {p.commit.planted: p for p in outcome.planted}
    slow, acc = by_kind["slowdown"], by_kind["accuracy"]
    assert slow.ok, demo_cmd.summary(outcome)
    assert acc.ok, demo_cmd.summary(outcome)
    assert {f.metric for f in slow.found} >= {"step_time", "train_samples_per_s"}
    assert {f.metric for f in acc.found} == {"accuracy"}
    assert all(f.range.culprit == slow.commit.sha for f in slow.found)
    step = next(f for f in slow.found if f.metric == "step_time")
    assert step.after > 1.3 * step.before, "the per-row loop makes the step much slower"
    accuracy = acc.found[0]
    assert 0.01 < accuracy.before - accuracy.after < 0.1
    assert outcome.false_flags == ()
    assert outcome.ok

    # The values behind the verdict are the recorded ones: the level moves at the planted commit.
    position = slow.commit.position
    before = [c.values["step_time"] for c in outcome.commits[:position]]
    after = [c.values["step_time"] for c in outcome.commits[position:]]
    assert min(after) > max(before)
    position = acc.commit.position
    assert {c.values["accuracy"] for c in outcome.commits[:position]} == {accuracy.before}

    # What it printed: per-commit progress, the report naming both subjects, the verdict.
    text = "\n".join(lines)
    assert sum(1 for line in lines if line.startswith("[")) == MIN_COMMITS
    assert slow.commit.subject in text
    assert acc.commit.subject in text
    assert "none of the 10 neutral commits was flagged" in text
    assert "demo passed" in text
    assert outcome.repo.is_dir(), "a --workdir the user gave is kept"

    # The HTML report of this real store: every recorded series has its chart data, both entries are new.
    assert outcome.report is not None
    assert outcome.report == outcome.repo / ".mltest" / "report.html"
    page = outcome.report.read_text(encoding="utf-8")
    assert f"HTML report (charts of every series): {outcome.report}" in text
    for metric in ("accuracy", "step_time", "train_samples_per_s"):
        assert metric in page
    assert slow.commit.sha[:10] in page
    assert acc.commit.sha[:10] in page
    assert "http://" not in page.split("<body", 1)[0]  # nothing loaded from the network


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_too_few_commits_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--commits", "5"])
    assert exc.value.code == 2
    assert f"choose {MIN_COMMITS} to" in capsys.readouterr().err


def test_a_non_empty_workdir_is_refused_and_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    err = _error(["demo", "--workdir", str(tmp_path)], capsys)
    assert "not an empty directory" in err
    assert str(tmp_path) in err
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_without_torch_it_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = demo_cmd.importlib.util.find_spec
    monkeypatch.setattr(demo_cmd.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    err = _error(["demo", "--workdir", str(tmp_path / "w")], capsys)
    assert "pip install torch" in err
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_a_temporary_workdir_is_removed_unless_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clean-up path, with the expensive part replaced by a failure right after the repository exists."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def boom(*args: object, **kwargs: object) -> str:
        raise demo_cmd.MltestError("stop here")

    monkeypatch.setattr(demo_cmd, "_run_tier", boom)
    with pytest.raises(demo_cmd.MltestError):
        demo_cmd.demo(echo=lambda line: None)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(demo_cmd.MltestError):
        demo_cmd.demo(keep=True, echo=lambda line: None)
    (kept,) = tmp_path.iterdir()
    assert (kept / "tinyclf" / ".git").is_dir()
