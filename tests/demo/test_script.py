"""The demo's scripted history (mltest/demo/script.py): every edit applies, the plan is well placed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mltest.demo import MAX_COMMITS, MIN_COMMITS, Edit, ScriptedCommit, apply, copy_project, history
from mltest.errors import ConfigError


@pytest.mark.parametrize("commits", range(MIN_COMMITS, MAX_COMMITS + 1))
def test_every_length_plants_both_changes_with_room_on_both_sides(commits: int) -> None:
    steps = history(commits)
    assert len(steps) == commits
    assert steps[0].edits == ()
    planted = {step.planted: i for i, step in enumerate(steps) if step.planted}
    assert set(planted) == {"slowdown", "accuracy"}
    for position in planted.values():
        assert position >= 5, "five commits before a planted change"
        assert commits - position >= 4, "four commits from a planted change to the end"
    assert planted["slowdown"] != planted["accuracy"]
    subjects = [step.subject for step in steps]
    assert len(set(subjects)) == len(subjects)


@pytest.mark.parametrize("commits", [MIN_COMMITS - 1, MAX_COMMITS + 1, 0, -3, True, 12.0])
def test_lengths_out_of_range_are_refused(commits: object) -> None:
    with pytest.raises(ConfigError, match="--commits"):
        history(commits)  # type: ignore[arg-type]


def test_copy_gives_a_project_with_dotfiles(tmp_path: Path) -> None:
    copy_project(tmp_path / "p")
    names = {p.name for p in (tmp_path / "p").iterdir()}
    assert {".gitignore", "pyproject.toml", "data.py", "model.py", "train.py", "tests", "README.md"} <= names
    assert "gitignore" not in names
    assert ".mltest/" in (tmp_path / "p" / ".gitignore").read_text()


def test_every_commit_of_the_longest_history_changes_the_files_it_names(tmp_path: Path) -> None:
    root = tmp_path / "p"
    copy_project(root)
    for step in history(MAX_COMMITS)[1:]:
        before = {e.path: (root / e.path).read_text() if (root / e.path).exists() else "" for e in step.edits}
        changed = apply(step, root)
        assert changed == [e.path for e in step.edits]
        for path, text in before.items():
            assert (root / path).read_text() != text, f"{step.subject!r} left {path} unchanged"


def test_the_final_project_still_compiles(tmp_path: Path) -> None:
    root = tmp_path / "p"
    copy_project(root)
    for step in history(MAX_COMMITS):
        apply(step, root)
    files = sorted(str(p) for p in root.rglob("*.py"))
    proc = subprocess.run([sys.executable, "-m", "py_compile", *files], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_planted_commits_name_the_metrics_they_move() -> None:
    planted = {s.planted: s for s in history() if s.planted}
    assert set(planted["slowdown"].moves) == {"step_time", "train_samples_per_s"}
    assert planted["accuracy"].moves == ("accuracy",)
    assert all(not s.moves for s in history() if not s.planted)


def test_an_edit_whose_text_is_missing_or_repeated_is_refused(tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("a\na\n")
    with pytest.raises(ConfigError, match="found it 2 times"):
        apply(ScriptedCommit("twice", (Edit("f.py", "a\n", "b\n"),)), tmp_path)
    with pytest.raises(ConfigError, match="found it 0 times"):
        apply(ScriptedCommit("missing", (Edit("f.py", "zzz", "b"),)), tmp_path)
    assert (tmp_path / "f.py").read_text() == "a\na\n"
