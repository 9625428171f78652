"""The README's promises: its two commands, its settings table, and the example it runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mltest.config import OPTIONS, Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _two_commands() -> list[str]:
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section, flags=re.S)


def test_readme_has_exactly_two_commands_and_ci_runs_the_test_command_verbatim() -> None:
    commands = _two_commands()
    assert len(commands) == 2
    main_job, test_command = commands
    assert main_job.endswith("&& mltest demo"), "the main job is the demo"
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()


def test_every_setting_is_documented_with_its_default() -> None:
    defaults = Settings()
    section = README.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    for spec in OPTIONS:
        default = getattr(defaults, spec.name)
        shown = "off" if default is None else str(default).lower()
        row = re.search(rf"^\| `{spec.name}` \| `?([^`|]+)`? \|", section, flags=re.M)
        assert row is not None, f"{spec.name} is missing from the README's settings table"
        assert row.group(1).strip() == shown, spec.name


@pytest.mark.integration
def test_the_quickstart_example_runs_both_tiers_on_the_cpu() -> None:
    """`mltest run all --device cpu` in examples/quickstart, the minimal project the Quick start points to."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTEST_") and k != "CUDA_VISIBLE_DEVICES"}
    proc = subprocess.run(
        [sys.executable, "-m", "mltest", "run", "all", "--device", "cpu", "-p", "no:cacheprovider"],
        cwd=ROOT / "examples" / "quickstart",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"4 passed, 1 skipped", proc.stdout)
    assert "1 x needs 1 GPU with 2 GiB free each; this run uses the CPU (--mltest-device=cpu)" in proc.stdout
