"""Helpers of the reliability tests: real ``mltest`` processes on a throwaway project, and waiting for
what they leave on disk (signal files, the run's journal)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from gitrepo import git

__all__ = [
    "SIGNALS_HELPER",
    "journal_text",
    "make_project",
    "mltest",
    "mltest_env",
    "start_mltest",
    "wait_until",
]

TIMEOUT = 300.0

SIGNALS_HELPER = '''
import os, pathlib, time

SIGNALS = pathlib.Path(os.environ["RELIABILITY_SIGNALS"])


def signal(name):
    """Tell the outer test that this point was reached."""
    (SIGNALS / name).touch()


def wait_for(name, timeout=120.0):
    """Block until the outer test says go."""
    deadline = time.monotonic() + timeout
    while not (SIGNALS / name).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {name!r} signal within {timeout} s")
        time.sleep(0.02)
'''
"""A ``signals.py`` for the inner project: its tests signal the outer test and wait for it."""


def mltest_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment without what would leak into an inner run: MLTEST_* settings, CI variables
    (they name a commit and a branch), hidden GPUs, pytest options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTEST_", "GITHUB_", "CI_", "GITLAB_"))}
    for name in ("CI", "CUDA_VISIBLE_DEVICES", "PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def mltest(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """``python -m mltest ARGS`` in ``cwd``, to the end; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "mltest", *args],
        cwd=cwd,
        env=mltest_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_mltest(
    cwd: Path, *args: str, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m mltest ARGS`` in ``cwd`` in the background, stdout and stderr to ``log`` (a file, not
    a pipe: nobody reads a pipe while the outer test waits, and a full pipe would block the run)."""
    return subprocess.Popen(
        [sys.executable, "-m", "mltest", *args],
        cwd=cwd,
        env=mltest_env(env),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def make_project(
    root: Path,
    store_url: str,
    tests: Mapping[str, str],
    *,
    config: str = "",
    in_git: bool = True,
) -> Path:
    """A project in ``root``: ``[tool.mltest]`` with ``store_url`` (plus ``config`` lines), ``signals.py``,
    the test files ``tests`` (name -> source) and, with ``in_git``, one commit on branch main."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(
        f'[tool.mltest]\nstore_url = "{store_url}"\ndevice = "cpu"\n{config}\n'
        "[tool.pytest.ini_options]\naddopts = []\n",
        encoding="utf-8",
    )
    (root / "signals.py").write_text(SIGNALS_HELPER, encoding="utf-8")
    for name, source in tests.items():
        (root / name).write_text(source, encoding="utf-8")
    if in_git:
        git(root, "init", "-q", "-b", "main")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "the model")
    return root


def wait_until(
    condition: Callable[[], bool], what: str, *, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` s, or at once when
    ``proc`` (the run being watched) has exited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the run exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.02)


def journal_text(project: Path) -> str:
    """Everything in the project's spool (the journals of unfinished runs), or '' when there is none."""
    spool = project / ".mltest" / "spool"
    if not spool.is_dir():
        return ""
    return "".join(path.read_text(encoding="utf-8") for path in sorted(spool.glob("*.jsonl")))
