"""Bad input: the one place that proves the guarantee. Every bad file, key, value, URL or database is
one line that names the problem and where it is, with exit code 2 from the ``mltest`` command (and
pytest's usage error, exit 4, from the plugin in ``mltest run``), and never a traceback.

Input that is odd but usable is not an error: a directory outside git records against commit
``unknown`` with a note, a detached HEAD records without a branch (or with the CI variable's) with a
note, and a NaN handed to ``record`` fails that one test, naming the metric, and never reaches the store.
"""

from __future__ import annotations

import gc
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pgserver
import pytest
from gitrepo import git
from procs import make_project, mltest

from mltest.cli import main
from mltest.model import UNKNOWN_SHA, Commit, Environment, Run, TestResult, utc_now
from mltest.store import open_store

TEST_FILE = "def test_ok(record):\n    record('accuracy', 0.9)\n"


# ----------------------------------------------------------------------------- the cases
def _write(project: Path, name: str, text: str) -> Path:
    path = project / name
    path.write_text(text, encoding="utf-8")
    return path


def _pyproject(project: Path, body: str) -> Path:
    return _write(project, "pyproject.toml", body + "\n[tool.pytest.ini_options]\n")


def _store(project: Path) -> Path:
    """A SQLite store with two finished runs, configured in the project."""
    path = project / "results.db"
    _pyproject(project, f'[tool.mltest]\nstore_url = "sqlite:///{path}"\n')
    store = open_store(f"sqlite:///{path}")
    try:
        environment = Environment("3.11", "linux-x86_64", "h", "cpu", 2, "0.1.0")
        for n in range(2):
            run = Run(f"run{n}", "proj", "unit", Commit(f"{n + 1:040x}", "main"), environment, utc_now())
            store.begin_run(run)
            store.add_results(run.run_id, [TestResult("t::a", "passed", 0.5)], [])
            store.finish_run(run.run_id, "passed", utc_now())
    finally:
        store.close()
    return path


def yaml_malformed(project: Path) -> list[str]:
    path = _write(project, "mltest.yaml", "tier: unit\nseed: [1, 2\nstore_url: sqlite:///r.db\n")
    return [f"{path}: invalid YAML at line 3, column 10"]


def toml_malformed(project: Path) -> list[str]:
    path = _pyproject(project, "[tool.mltest]\ntier = 'unit'\nseed = \n")
    return [str(path), "line 3"]


def unknown_key(project: Path) -> list[str]:
    path = _write(project, "mltest.yaml", "tier: unit\nunit_budgte: 3\n")
    return [f"{path}: unknown key 'unit_budgte' (did you mean 'unit_budget'?)"]


def unknown_metric_key(project: Path) -> list[str]:
    path = _pyproject(project, "[tool.mltest]\n[tool.mltest.metrics.accuracy]\nhigher_is_beter = true\n")
    return [f"{path} [tool.mltest]: metrics.accuracy: unknown key 'higher_is_beter'", "'higher_is_better'"]


def wrong_type(project: Path) -> list[str]:
    path = _pyproject(project, "[tool.mltest]\nseed = 'many'\n")
    return [f"{path} [tool.mltest]: seed: expected a whole number >= 0; got 'many'"]


def wrong_type_yaml(project: Path) -> list[str]:
    path = _write(project, "mltest.yaml", "record: maybe\n")
    return [f"{path}: record: expected true or false; got 'maybe'"]


def wrong_type_env(project: Path) -> list[str]:
    _pyproject(project, "[tool.mltest]\n")
    return ["environment variable MLTEST_SEED: expected a whole number >= 0; got 'many'"]


def bad_store_scheme(project: Path) -> list[str]:
    _pyproject(project, "[tool.mltest]\nstore_url = 'mysql://db.example/results'\n")
    return ["unsupported store URL scheme 'mysql' in 'mysql://db.example/results'"]


def store_url_is_a_directory(project: Path) -> list[str]:
    (project / "results").mkdir()
    _pyproject(project, "[tool.mltest]\nstore_url = 'sqlite:///results'\n")
    return ["store URL 'sqlite:///results' points at the directory", str(project / "results")]


def unreachable_database(project: Path) -> list[str]:
    port = pgserver.free_port()  # nothing listens there
    _pyproject(project, f"[tool.mltest]\nstore_url = 'postgresql://ci:s3cret@127.0.0.1:{port}/results'\n")
    return [f"cannot reach the store postgresql://ci:***@127.0.0.1:{port}/results"]


def corrupted_sqlite(project: Path) -> list[str]:
    path = _store(project)
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 2 * page
    data[page:] = b"\xa5" * (len(data) - page)  # the header page survives, every table's pages are garbage
    path.write_bytes(bytes(data))
    return [f"sqlite:///{path}", "database disk image is malformed"]


def not_a_database(project: Path) -> list[str]:
    path = _store(project)
    path.write_bytes(b"these are my notes, not a database\n" * 200)
    return [f"sqlite:///{path}", "file is not a database"]


def newer_schema(project: Path) -> list[str]:
    path = _store(project)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    return [f"the store sqlite:///{path} has schema version 99, written by a newer mltest", "pip install -U mltest"]


def foreign_database(project: Path) -> list[str]:
    path = project / "results.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    _pyproject(project, f'[tool.mltest]\nstore_url = "sqlite:///{path}"\n')
    return [f"sqlite:///{path} has a 'runs' table but no mltest version: it is not an mltest store"]


@dataclass(frozen=True)
class Case:
    setup: Callable[[Path], list[str]]
    """Writes the bad input into the project; returns what the error line must contain."""
    env: dict[str, str] = field(default_factory=dict)


CASES = {
    "yaml-malformed": Case(yaml_malformed),
    "toml-malformed": Case(toml_malformed),
    "unknown-key": Case(unknown_key),
    "unknown-metric-key": Case(unknown_metric_key),
    "wrong-type": Case(wrong_type),
    "wrong-type-yaml": Case(wrong_type_yaml),
    "wrong-type-env": Case(wrong_type_env, {"MLTEST_SEED": "many"}),
    "bad-store-scheme": Case(bad_store_scheme),
    "store-url-directory": Case(store_url_is_a_directory),
    "unreachable-database": Case(unreachable_database),
    "corrupted-sqlite": Case(corrupted_sqlite),
    "not-a-database": Case(not_a_database),
    "newer-schema": Case(newer_schema),
    "foreign-database": Case(foreign_database),
}


def one_error_line(err: str, prefix: str, expected: list[str]) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    [line] = lines
    assert line.startswith(prefix), line
    for fragment in expected:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "s3cret" not in line
    return line


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_one_line_naming_the_problem_and_where_exit_2(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    expected = case.setup(project)
    for name, value in case.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project)
    for argv in (["runs"], ["sync"]):  # settings, then the store: what every command reading the store does
        code = main(argv)
        gc.collect()  # a refused store left no connection behind (a ResourceWarning is an error here)
        captured = capsys.readouterr()
        assert code == 2, captured
        assert captured.out == ""
        one_error_line(captured.err, "mltest: error: ", expected)


@pytest.mark.integration  # starts `mltest run` processes
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_to_mltest_run_is_one_pytest_usage_error(case: Case, tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    expected = case.setup(project)
    _write(project, "test_model.py", TEST_FILE)
    proc = mltest(project, "run", "unit", "-p", "no:cacheprovider", env=case.env)
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage error: no test ran
    line = one_error_line(proc.stderr, "ERROR: ", expected)
    assert "mltest" in line or "pyproject.toml" in line  # pytest reads pyproject.toml before mltest does
    assert "Traceback" not in proc.stdout


# ----------------------------------------------------------------------------- usable input: notes, not errors
def stored_runs(project: Path) -> list[dict[str, object]]:
    listed = mltest(project, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    runs: list[dict[str, object]] = json.loads(listed.stdout)
    return runs


@pytest.mark.integration
def test_outside_git_records_against_unknown_with_a_note(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj", "sqlite:///results.db", {"test_model.py": TEST_FILE}, in_git=False)
    proc = mltest(project, "run", "unit", "-p", "no:cacheprovider", env={"GIT_CEILING_DIRECTORIES": str(tmp_path)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (
        "note: not in a git checkout and no CI commit variables: results are recorded against commit 'unknown'"
    ) in proc.stdout.splitlines()
    assert "Traceback" not in proc.stdout + proc.stderr
    [run] = stored_runs(project)
    assert (run["sha"], run["branch"], run["status"]) == (UNKNOWN_SHA, None, "passed")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("env", "branch", "note"),
    [
        ({}, None, "note: detached HEAD at {short} and no CI branch variable: the branch is recorded as unknown"),
        ({"GITHUB_REF_NAME": "main"}, "main", None),
    ],
    ids=["no-ci-variables", "branch-from-ci"],
)
def test_a_detached_head_records_with_a_note_or_the_ci_branch(
    tmp_path: Path, env: dict[str, str], branch: str | None, note: str | None
) -> None:
    project = make_project(tmp_path / "proj", "sqlite:///results.db", {"test_model.py": TEST_FILE})
    git(project, "checkout", "-q", "--detach")
    head = git(project, "rev-parse", "HEAD")
    proc = mltest(project, "run", "unit", "-p", "no:cacheprovider", env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note: ")]
    assert notes == ([note.format(short=head[:10])] if note else [])
    [run] = stored_runs(project)
    assert (run["sha"], run["branch"], run["status"]) == (head, branch, "passed")


@pytest.mark.integration
def test_a_nan_fails_its_test_naming_the_metric_and_never_reaches_the_store(tmp_path: Path) -> None:
    suite = (
        "def test_nan(record):\n    record('accuracy', 0.9)\n    record('loss', float('nan'))\n\n"
        "def test_fine(record):\n    record('loss', 0.25)\n"
    )
    project = make_project(tmp_path / "proj", "sqlite:///results.db", {"test_model.py": suite})
    proc = mltest(project, "run", "unit", "-p", "no:cacheprovider")
    assert proc.returncode == 1, proc.stdout + proc.stderr  # a test failed: not a usage error
    lines = proc.stdout.splitlines()
    # The failure points at the test's own line (mltest's frames are hidden) and says why in one line.
    assert ">       record('loss', float('nan'))" in lines
    assert "mltest/recorder.py" not in proc.stdout
    error = "mltest.errors.RecordError: record('loss'): the value is NaN; record only finite numbers"
    assert [line[1:].strip() for line in lines if line.startswith("E ")] == [error], proc.stdout
    assert any(line.startswith("FAILED test_model.py::test_nan - mltest.errors.RecordError") for line in lines)
    assert "1 failed, 1 passed" in proc.stdout
    assert proc.stderr == ""
    [run] = stored_runs(project)
    assert run["status"] == "failed"
    store = open_store("sqlite:///results.db", root=project)
    try:
        outcomes = {r.test.split("::")[1]: r.outcome for r in store.results(str(run["run_id"]))}
        measured = {(m.test.split("::")[1], m.metric): m.value for m in store.run_measurements(str(run["run_id"]))}
    finally:
        store.close()
    assert outcomes == {"test_nan": "failed", "test_fine": "passed"}
    # What the test recorded before the NaN is kept (it explains the failure); the NaN is nowhere.
    assert measured == {("test_nan", "accuracy"): 0.9, ("test_fine", "loss"): 0.25}
