"""Tests of the ``mltest`` command (mltest/cli/): in-process via ``main``, end to end via ``python -m mltest``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mltest
from mltest.cli import main
from mltest.cli.options import to_pytest_args
from mltest.config import OPTIONS, Settings
from mltest.model import ShardSpec

SUBPROCESS_TIMEOUT = 60


# ----------------------------------------------------------------------------- helpers


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No MLTEST_* variable of the surrounding run reaches the code under test."""
    for name in list(os.environ):
        if name.startswith("MLTEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.fixture
def project(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> Path:
    """An empty project directory (its ``.git`` ends the config walk) that is the current directory."""
    root = tmp_path / "proj"
    (root / ".git").mkdir(parents=True)
    clean_env.chdir(root)
    return root


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTEST_")}
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
        env.pop(name, None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


def run_mltest(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mltest", *args],
        cwd=cwd,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
        check=False,
    )


def write_suite(root: Path, tests: dict[str, str]) -> None:
    """A tiny pytest project: an ini section pins the rootdir; each test body is one statement."""
    (root / "pyproject.toml").write_text("[project]\nname = 'demo'\n\n[tool.pytest.ini_options]\n", encoding="utf-8")
    body = "".join(f"def {name}():\n    {statement}\n\n\n" for name, statement in tests.items())
    (root / "test_demo.py").write_text(body, encoding="utf-8")


def show_rows(out: str) -> dict[str, tuple[str, str]]:
    """``config show`` table -> {name: (value, source)}."""
    rows = {}
    for line in out.splitlines()[1:]:
        name, value, source = line.split(maxsplit=2)
        rows[name] = (value, source)
    return rows


# ----------------------------------------------------------------------------- --version and usage


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"mltest {mltest.__version__}"


def test_version_matches_installed_distribution() -> None:
    from importlib.metadata import version

    assert mltest.__version__ == version("mltest")
    assert mltest.__version__ != "0+unknown"


def test_version_end_to_end(tmp_path: Path) -> None:
    result = run_mltest(tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"mltest {mltest.__version__}"


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2
    assert "usage: mltest" in capsys.readouterr().err


def test_config_without_action_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config"])
    assert info.value.code == 2
    assert "usage: mltest config" in capsys.readouterr().err


def test_unknown_argument_of_config_show_is_rejected(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config", "show", "--bogus"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --bogus" in err


# ----------------------------------------------------------------------------- config show


def test_config_show_lists_every_setting_with_its_source(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "pyproject.toml"
    config.write_text("[tool.mltest]\ntier = 'integration'\nshard = '2/4'\n", encoding="utf-8")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first == f"config file: {config} (opted in)"
    rows = show_rows(out)
    assert list(rows) == [o.name for o in OPTIONS]
    assert rows["tier"] == ("integration", "pyproject.toml [tool.mltest]")
    assert rows["shard"] == ("2/4", "pyproject.toml [tool.mltest]")
    assert rows["seed"] == ("0", "default")
    assert rows["fail_on_skip"] == ("false", "default")


def test_config_show_from_a_subdirectory(
    project: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "mltest.yaml").write_text("seed: 5\n", encoding="utf-8")
    sub = project / "src" / "pkg"
    sub.mkdir(parents=True)
    clean_env.chdir(sub)
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"config file: {project / 'mltest.yaml'} (opted in)"
    assert show_rows(out)["seed"] == ("5", "mltest.yaml")


def test_config_show_project_option(tmp_path: Path, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    (other / ".git").mkdir(parents=True)
    (other / "mltest.yaml").write_text("slowest: 9\n", encoding="utf-8")
    assert main(["config", "show", "--project-dir", str(other)]) == 0
    assert show_rows(capsys.readouterr().out)["slowest"] == ("9", "mltest.yaml")


def test_config_show_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = project / "mltest.yaml"
    config.write_text("device: cpu\n", encoding="utf-8")
    assert main(["config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config_file"] == str(config)
    assert data["active"] is True
    assert list(data["settings"]) == [o.name for o in OPTIONS]
    for name, entry in data["settings"].items():
        assert set(entry) == {"value", "source"}, name
    assert data["settings"]["device"] == {"value": "cpu", "source": "mltest.yaml"}
    assert data["settings"]["tier"] == {"value": "unit", "source": "default"}


def test_config_show_flag_shows_command_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "mltest.yaml").write_text("seed: 5\n", encoding="utf-8")
    assert main(["config", "show", "--seed", "7", "--fail-on-skip"]) == 0
    rows = show_rows(capsys.readouterr().out)
    assert rows["seed"][0] == "7"
    assert rows["seed"][1].startswith("command line")
    assert rows["fail_on_skip"][0] == "true"
    assert rows["fail_on_skip"][1].startswith("command line")


def test_config_show_no_flag_turns_a_boolean_off(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "mltest.yaml").write_text("deterministic: true\n", encoding="utf-8")
    assert main(["config", "show", "--json", "--no-deterministic"]) == 0
    entry = json.loads(capsys.readouterr().out)["settings"]["deterministic"]
    assert entry["value"] == "false"
    assert entry["source"].startswith("command line")


def test_config_show_env_var_shows_env(
    project: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "mltest.yaml").write_text("unit_budget: 3\n", encoding="utf-8")
    clean_env.setenv("MLTEST_UNIT_BUDGET", "1.5")
    clean_env.setenv("MLTEST_SHARD", "1/3")
    assert main(["config", "show", "--json"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["unit_budget"] == {"value": "1.5", "source": "env MLTEST_UNIT_BUDGET"}
    assert settings["shard"] == {"value": "1/3", "source": "env MLTEST_SHARD"}


def test_config_show_flag_beats_env(
    project: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MLTEST_TIER", "integration")
    assert main(["config", "show", "--json", "--tier", "all"]) == 0
    entry = json.loads(capsys.readouterr().out)["settings"]["tier"]
    assert entry["value"] == "all"
    assert entry["source"].startswith("command line")


def test_config_show_not_opted_in(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'demo'\n", encoding="utf-8")
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("config file: none found (not opted in")
    assert {source for _, source in show_rows(out).values()} == {"default"}


def test_config_show_json_not_opted_in(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config_file"] is None
    assert data["active"] is False


def test_config_show_env_var_opts_in(
    project: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MLTEST_SEED", "3")
    assert main(["config", "show"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "config file: none found (opted in)"


def test_config_show_end_to_end(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "mltest.yaml").write_text("tier: all\n", encoding="utf-8")
    result = run_mltest(tmp_path, "config", "show", "--json", "--seed", "4", MLTEST_SLOWEST="2")
    assert result.returncode == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["tier"] == {"value": "all", "source": "mltest.yaml"}
    assert settings["slowest"] == {"value": "2", "source": "env MLTEST_SLOWEST"}
    assert settings["seed"]["value"] == "4"
    assert settings["seed"]["source"].startswith("command line")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("name", "text", "key"),
    [
        ("mltest.yaml", "tier: nightly\n", "tier"),
        ("mltest.yaml", "unit_budgte: 3\n", "unit_budgte"),
        ("pyproject.toml", "[tool.mltest]\nseed = -3\n", "seed"),
        ("pyproject.toml", "[tool.mltest]\nshard = '3/2'\n", "shard"),
    ],
)
def test_bad_config_file_is_one_error_line(
    project: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, key: str
) -> None:
    (project / name).write_text(text, encoding="utf-8")
    assert main(["config", "show"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err_lines = captured.err.splitlines()
    assert len(err_lines) == 1, captured.err
    assert err_lines[0].startswith("mltest: error: ")
    assert str(project / name) in err_lines[0]
    assert key in err_lines[0]
    assert "Traceback" not in captured.err


def test_bad_env_value_is_one_error_line(
    project: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("MLTEST_SEED", "many")
    assert main(["config", "show"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("mltest: error: ")
    assert "MLTEST_SEED" in err
    assert "'many'" in err


def test_bad_config_end_to_end_has_no_traceback(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "mltest.yaml").write_text("fail_on_skip: maybe\n", encoding="utf-8")
    result = run_mltest(tmp_path, "config", "show")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith("mltest: error: ")
    assert "fail_on_skip" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--tier", "nightly"), ("--seed", "-3"), ("--shard", "3/2"), ("--unit-budget", "fast"), ("--device", "tpu")],
)
def test_bad_flag_value_is_an_argparse_error(
    project: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["config", "show", flag, value])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert repr(value) in err
    assert "Traceback" not in err


def test_bad_flag_value_of_run_is_an_argparse_error(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "unit", "--seed", "x"])
    assert info.value.code == 2
    assert "argument --seed:" in capsys.readouterr().err


def test_run_rejects_an_unknown_tier(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["run", "nightly"])
    assert info.value.code == 2
    assert "nightly" in capsys.readouterr().err


# ----------------------------------------------------------------------------- flags into pytest


def test_to_pytest_args() -> None:
    args = to_pytest_args(
        {"seed": 7, "shard": ShardSpec(2, 4), "fail_on_skip": True, "deterministic": False, "tier": None}
    )
    assert args == ["--mltest-fail-on-skip", "--mltest-seed=7", "--mltest-no-deterministic", "--mltest-shard=2/4"]


def test_to_pytest_args_round_trip_through_the_option_parsers() -> None:
    values = {
        "unit_budget": 2.5,
        "integration_timeout": 0.0,
        "seed": 3,
        "slowest": 0,
        "shard": ShardSpec(1, 2),
        "device": "cpu",
        "budget_mode": "warn",
    }
    for arg in to_pytest_args(values):
        flag, _, text = arg.partition("=")
        spec = next(o for o in OPTIONS if o.pytest_flag == flag)
        assert spec.parse(text) == values[spec.name]


def test_every_setting_has_a_config_show_flag(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["config", "show", "--json"]
    expected = Settings(
        tier="all",
        device="cpu",
        unit_budget=1.0,
        budget_mode="warn",
        integration_timeout=9.0,
        fail_on_skip=True,
        seed=4,
        deterministic=True,
        shard=ShardSpec(1, 2),
        slowest=3,
        store_url="sqlite:///other.db",
        project="proj",
        repo_url="https://git.example/proj",
        record=True,
        record_pull_requests=True,
        sheets_url="gsheets://KEY/w",
        sheets_credentials="sa.json",
        main_branch="trunk",
    )
    for spec in OPTIONS:
        value = getattr(expected, spec.name)
        argv += [spec.cli_flag] if spec.is_bool else [spec.cli_flag, str(value)]
    assert main(argv) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert {name: entry["value"] for name, entry in settings.items()} == {
        name: value for name, value, _ in expected.describe()
    }
    assert all(entry["source"].startswith("command line") for entry in settings.values())


# ----------------------------------------------------------------------------- mltest run (subprocess)


def test_run_unit_passing_suite_returns_0(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_ok": "assert 1 + 1 == 2"})
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "tier=unit" in result.stdout  # the plugin is active through --mltest-tier


def test_run_unit_failing_suite_returns_1(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_ok": "assert True", "test_bad": "assert 1 == 2"})
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 passed" in result.stdout


def test_run_unit_without_tests_returns_5(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n", encoding="utf-8")
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 5, result.stdout + result.stderr
    assert "collected 0 items" in result.stdout


def test_run_unit_deselects_integration_tests(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n", encoding="utf-8")
    (tmp_path / "test_demo.py").write_text(
        "import pytest\n\n\ndef test_unit():\n    pass\n\n\n"
        "@pytest.mark.integration\ndef test_slow():\n    raise AssertionError\n",
        encoding="utf-8",
    )
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 deselected" in result.stdout


def test_run_passes_unknown_args_to_pytest(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True", "test_beta": "assert False"})
    result = run_mltest(tmp_path, "run", "unit", "-k", "alpha", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 1 deselected" in result.stdout


def test_run_passes_args_after_double_dash_to_pytest(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True", "test_beta": "assert False"})
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider", "--", "-k", "beta")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed, 1 deselected" in result.stdout
    assert "FAILED test_demo.py::test_beta" in result.stdout


def test_run_args_after_double_dash_are_not_read_as_settings(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True"})
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider", "--", "--seed", "3")
    # --seed after -- is pytest's, which does not know it: pytest's usage error, not an mltest setting
    assert result.returncode == 4, result.stdout + result.stderr
    assert "--seed" in result.stderr
    assert "seed=3" not in result.stdout


def test_run_setting_flags_reach_the_plugin(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True"})
    result = run_mltest(tmp_path, "run", "unit", "--seed", "7", "--unit-budget", "3", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    header = next(line for line in result.stdout.splitlines() if line.startswith("mltest: tier="))
    assert "tier=unit" in header
    assert "seed=7" in header
    assert "unit budget=3s" in header


def test_run_tier_overrides_the_config_file(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True"})
    (tmp_path / "mltest.yaml").write_text("tier: integration\n", encoding="utf-8")
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tier=unit" in result.stdout
    assert "1 passed" in result.stdout


def test_run_with_bad_config_file_is_a_usage_error_without_traceback(tmp_path: Path) -> None:
    write_suite(tmp_path, {"test_alpha": "assert True"})
    (tmp_path / "mltest.yaml").write_text("seed: -3\n", encoding="utf-8")
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider")
    assert result.returncode == 4, result.stdout + result.stderr
    assert str(tmp_path / "mltest.yaml") in result.stderr
    assert "seed" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_run_with_filterwarnings_error_and_mltest_on_sys_path(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n', encoding="utf-8"
    )
    (tmp_path / "test_demo.py").write_text("def test_ok():\n    pass\n", encoding="utf-8")
    source_root = Path(mltest.__file__).resolve().parent.parent  # what a regular install puts on sys.path
    result = run_mltest(tmp_path, "run", "unit", "-p", "no:cacheprovider", PYTHONPATH=str(source_root))
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert "PytestAssertRewriteWarning" not in output
    assert result.returncode == 0, output
    assert "1 passed" in result.stdout
