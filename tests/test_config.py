"""Tests of mltest/config.py: discovery, precedence, sources, parsing and one-line errors."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from mltest.config import (
    OPTIONS,
    OPTIONS_BY_NAME,
    ConfigFile,
    OptionSpec,
    Settings,
    find_config_file,
    load_settings,
)
from mltest.errors import ConfigError, MltestError
from mltest.model import ShardSpec

PYPROJECT_LABEL = "pyproject.toml [tool.mltest]"
BOOKKEEPING_FIELDS = {"config_file", "sources", "active", "metrics"}  # metrics: a file-only table


# ----------------------------------------------------------------------------- helpers


def make_project(root: Path) -> Path:
    """A project root that stops the upward walk (a ``.git`` directory), so nothing above tmp_path leaks in."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".git").mkdir(exist_ok=True)
    return root


def write_pyproject(root: Path, body: str, *, section: bool = True) -> Path:
    path = make_project(root) / "pyproject.toml"
    header = "[project]\nname = 'demo'\n\n" + ("[tool.mltest]\n" if section else "")
    path.write_text(header + body, encoding="utf-8")
    return path


def write_yaml(root: Path, body: str, name: str = "mltest.yaml") -> Path:
    path = make_project(root) / name
    path.write_text(body, encoding="utf-8")
    return path


def config_error(start: Path, environ: dict[str, str] | None = None, **cli: object) -> str:
    """The message of the ConfigError that load_settings raises; asserts it is one line."""
    with pytest.raises(ConfigError) as info:
        load_settings(start, environ={} if environ is None else environ, cli=cli or None)
    message = str(info.value)
    assert "\n" not in message, f"error message is not one line: {message!r}"
    assert "Traceback" not in message
    return message


# ----------------------------------------------------------------------------- defaults and precedence


def test_defaults_without_anything(tmp_path: Path) -> None:
    settings = load_settings(make_project(tmp_path), environ={})
    assert settings == Settings()
    assert settings.active is False
    assert settings.config_file is None
    assert dict(settings.sources) == {}
    assert {source for _, _, source in settings.describe()} == {"default"}


def test_start_none_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_pyproject(tmp_path, "seed = 9\n")
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, environ={})
    assert settings.seed == 0
    assert settings.config_file is None
    assert settings.active is False


def test_file_overrides_defaults_and_names_its_source(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, 'tier = "integration"\nseed = 3\n')
    settings = load_settings(tmp_path, environ={})
    assert settings.tier == "integration"
    assert settings.seed == 3
    assert settings.device == "cuda"  # untouched default
    assert settings.config_file == path
    assert settings.sources["tier"] == PYPROJECT_LABEL
    assert settings.sources["seed"] == PYPROJECT_LABEL
    assert "device" not in settings.sources


def test_precedence_default_file_env_cli(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'tier = "integration"\nseed = 3\nslowest = 7\nunit_budget = 2\n')
    settings = load_settings(
        tmp_path,
        environ={"MLTEST_TIER": "all", "MLTEST_SEED": "11"},
        cli={"seed": 42, "tier": None, "slowest": None},
    )
    # cli beats env beats file beats default; a None cli value means "not given"
    assert settings.seed == 42
    assert settings.tier == "all"
    assert settings.slowest == 7
    assert settings.unit_budget == 2.0
    assert settings.budget_mode == "fail"
    assert settings.sources["seed"] == "command line --mltest-seed"
    assert settings.sources["tier"] == "env MLTEST_TIER"
    assert settings.sources["slowest"] == PYPROJECT_LABEL
    assert settings.sources["unit_budget"] == PYPROJECT_LABEL
    assert "budget_mode" not in settings.sources


def test_describe_names_every_setting_with_value_and_source(tmp_path: Path) -> None:
    write_yaml(tmp_path, "shard: 2/4\nfail_on_skip: true\n")
    settings = load_settings(tmp_path, environ={"MLTEST_UNIT_BUDGET": "1.5"}, cli={"deterministic": True})
    rows = settings.describe()
    assert [name for name, _, _ in rows] == [o.name for o in OPTIONS]
    by_name = {name: (value, source) for name, value, source in rows}
    assert by_name["shard"] == ("2/4", "mltest.yaml")
    assert by_name["fail_on_skip"] == ("true", "mltest.yaml")
    assert by_name["unit_budget"] == ("1.5", "env MLTEST_UNIT_BUDGET")
    assert by_name["deterministic"] == ("true", "command line --mltest-deterministic")
    assert by_name["tier"] == ("unit", "default")
    assert by_name["seed"] == ("0", "default")


def test_describe_shows_unset_shard_as_off_and_false_booleans() -> None:
    by_name = {name: value for name, value, _ in Settings().describe()}
    assert by_name["shard"] == "off"
    assert by_name["fail_on_skip"] == "false"
    assert by_name["unit_budget"] == "5.0"


def test_empty_env_value_is_ignored(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "seed = 3\n")
    settings = load_settings(tmp_path, environ={"MLTEST_SEED": ""})
    assert settings.seed == 3
    assert settings.sources["seed"] == PYPROJECT_LABEL


def test_unrelated_env_vars_are_ignored(tmp_path: Path) -> None:
    settings = load_settings(make_project(tmp_path), environ={"MLTEST_NOT_A_SETTING": "1", "TIER": "all"})
    assert settings.active is False
    assert settings.tier == "unit"


def test_cli_unknown_setting_is_an_error(tmp_path: Path) -> None:
    message = config_error(make_project(tmp_path), bogus=1)
    assert "bogus" in message


def test_settings_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().seed = 3  # type: ignore[misc]


def test_config_error_is_an_mltest_error() -> None:
    assert issubclass(ConfigError, MltestError)


# ----------------------------------------------------------------------------- discovery


def test_find_pyproject_section(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "seed = 1\n")
    found = find_config_file(tmp_path)
    assert isinstance(found, ConfigFile)
    assert found.path == path
    assert found.label == PYPROJECT_LABEL
    assert dict(found.data) == {"seed": 1}


@pytest.mark.parametrize("name", ["mltest.yaml", "mltest.yml"])
def test_find_yaml(tmp_path: Path, name: str) -> None:
    path = write_yaml(tmp_path, "seed: 4\n", name=name)
    found = find_config_file(tmp_path)
    assert found is not None
    assert found.path == path
    assert found.label == name
    settings = load_settings(tmp_path, environ={})
    assert settings.seed == 4
    assert settings.sources["seed"] == name


def test_yaml_wins_over_pyproject_without_section(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "", section=False)
    path = write_yaml(tmp_path, "tier: all\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.config_file == path
    assert settings.tier == "all"


def test_walks_up_from_a_subdirectory(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, 'device = "cpu"\n')
    deep = tmp_path / "src" / "pkg" / "deeper"
    deep.mkdir(parents=True)
    found = find_config_file(deep)
    assert found is not None
    assert found.path == path
    settings = load_settings(deep, environ={})
    assert settings.device == "cpu"
    assert settings.active is True


def test_walk_stops_at_pyproject_without_section(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "seed = 5\n")  # the outer project opted in...
    inner = tmp_path / "vendored"
    inner.mkdir()
    (inner / "pyproject.toml").write_text("[project]\nname = 'inner'\n\n[tool.other]\nx = 1\n", encoding="utf-8")
    start = inner / "src"
    start.mkdir()
    # ...but the inner project's root ends the walk: it has not opted in.
    assert find_config_file(start) is None
    settings = load_settings(start, environ={})
    assert settings.active is False
    assert settings.config_file is None
    assert settings.seed == 0


def test_walk_stops_at_git_directory(tmp_path: Path) -> None:
    write_yaml(tmp_path, "seed: 5\n")
    repo = tmp_path / "checkout"
    (repo / ".git").mkdir(parents=True)
    start = repo / "pkg"
    start.mkdir()
    assert find_config_file(start) is None
    assert load_settings(start, environ={}).active is False


def test_config_next_to_git_is_found(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "seed: 5\n")  # write_yaml puts a .git next to it
    assert (tmp_path / ".git").is_dir()
    found = find_config_file(tmp_path)
    assert found is not None
    assert found.path == path


def test_yaml_and_pyproject_section_both_present_is_an_error(tmp_path: Path) -> None:
    pyproject = write_pyproject(tmp_path, "seed = 1\n")
    yaml_path = write_yaml(tmp_path, "seed: 2\n")
    with pytest.raises(ConfigError) as info:
        find_config_file(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(yaml_path) in message
    assert str(pyproject) in message
    assert "[tool.mltest]" in message
    assert config_error(tmp_path) == message


# ----------------------------------------------------------------------------- active


def test_active_with_empty_pyproject_section(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    settings = load_settings(tmp_path, environ={})
    assert settings.active is True
    assert settings == Settings()
    assert dict(settings.sources) == {}


def test_active_with_empty_yaml(tmp_path: Path) -> None:
    write_yaml(tmp_path, "")
    settings = load_settings(tmp_path, environ={})
    assert settings.active is True
    assert settings.config_file == tmp_path / "mltest.yaml"


def test_active_with_env_var(tmp_path: Path) -> None:
    settings = load_settings(make_project(tmp_path), environ={"MLTEST_SLOWEST": "2"})
    assert settings.active is True
    assert settings.slowest == 2
    assert settings.config_file is None


def test_active_with_cli_value(tmp_path: Path) -> None:
    settings = load_settings(make_project(tmp_path), environ={}, cli={"tier": "unit"})
    assert settings.active is True
    assert settings.sources["tier"] == "command line --mltest-tier"


def test_not_active_with_only_none_cli_values(tmp_path: Path) -> None:
    cli = {o.name: None for o in OPTIONS}
    settings = load_settings(make_project(tmp_path), environ={}, cli=cli)
    assert settings.active is False


def test_not_active_with_pyproject_without_section(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "", section=False)
    assert load_settings(tmp_path, environ={}).active is False


def test_active_is_not_part_of_equality(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "")
    assert load_settings(tmp_path, environ={}) == load_settings(None, environ={})


# ----------------------------------------------------------------------------- file errors


def test_unknown_key_suggests_the_nearest_in_pyproject(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "unit_budgte = 3\n")
    message = config_error(tmp_path)
    assert str(path) in message
    assert "[tool.mltest]" in message
    assert "'unit_budgte'" in message
    assert "did you mean 'unit_budget'" in message


def test_unknown_key_suggests_the_nearest_in_yaml(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "tier: unit\ndevcie: cpu\n")
    message = config_error(tmp_path)
    assert str(path) in message
    assert "'devcie'" in message
    assert "did you mean 'device'" in message


def test_unknown_key_without_a_near_match_lists_valid_keys(tmp_path: Path) -> None:
    write_yaml(tmp_path, "zzzzzz: 1\n")
    message = config_error(tmp_path)
    assert "'zzzzzz'" in message
    assert "did you mean" not in message
    for option in OPTIONS:
        assert option.name in message


@pytest.mark.parametrize(
    ("key", "toml_value", "expected"),
    [
        ("tier", '"nightly"', "expected one of unit, integration, all"),
        ("device", '"tpu"', "expected one of cuda, auto, cpu"),
        ("budget_mode", '"loud"', "expected one of fail, warn, off"),
        ("unit_budget", '"fast"', "expected a number of seconds"),
        ("unit_budget", "-1", "expected a number of seconds >= 0"),
        ("unit_budget", "inf", "expected a number of seconds"),
        ("unit_budget", "nan", "expected a number of seconds"),
        ("unit_budget", "true", "expected a number of seconds"),
        ("integration_timeout", "-0.5", "expected a number of seconds >= 0"),
        ("seed", "-3", "expected a whole number >= 0"),
        ("seed", "true", "expected a whole number >= 0"),
        ("seed", "1.5", "expected a whole number >= 0"),
        ("seed", '"seven"', "expected a whole number >= 0"),
        ("slowest", "-1", "expected a whole number >= 0"),
        ("shard", '"3/2"', "expected I/N with 1 <= I <= N"),
        ("shard", '"0/2"', "expected I/N with 1 <= I <= N"),
        ("shard", '"x"', "expected I/N with 1 <= I <= N"),
        ("shard", '"2"', "expected I/N with 1 <= I <= N"),
        ("shard", "2", "expected I/N with 1 <= I <= N"),
        ("fail_on_skip", '"maybe"', "expected true or false"),
        ("fail_on_skip", "1", "expected true or false"),
        ("deterministic", '"sure"', "expected true or false"),
    ],
)
def test_bad_value_in_pyproject_names_file_key_and_expectation(
    tmp_path: Path, key: str, toml_value: str, expected: str
) -> None:
    path = write_pyproject(tmp_path, f"{key} = {toml_value}\n")
    message = config_error(tmp_path)
    assert str(path) in message
    assert f"{key}:" in message
    assert expected in message


@pytest.mark.parametrize(
    ("key", "yaml_value", "expected"),
    [
        ("tier", "nightly", "expected one of unit, integration, all"),
        ("unit_budget", "fast", "expected a number of seconds"),
        ("seed", "-3", "expected a whole number >= 0"),
        ("seed", "yes", "expected a whole number >= 0"),  # YAML 1.1: yes is a boolean
        ("shard", "3/2", "expected I/N with 1 <= I <= N"),
        ("fail_on_skip", "maybe", "expected true or false"),
        ("tier", "[unit]", "expected one of unit, integration, all"),
    ],
)
def test_bad_value_in_yaml_names_file_key_and_expectation(
    tmp_path: Path, key: str, yaml_value: str, expected: str
) -> None:
    path = write_yaml(tmp_path, f"{key}: {yaml_value}\n")
    message = config_error(tmp_path)
    assert str(path) in message
    assert f"{key}:" in message
    assert expected in message


def test_bad_value_under_a_dashed_key_names_the_key_as_written(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'unit-budget = "fast"\n')
    message = config_error(tmp_path)
    assert "unit-budget:" in message
    assert "'fast'" in message


def test_bad_value_message_repr_keeps_it_one_line(tmp_path: Path) -> None:
    write_yaml(tmp_path, 'tier: "night\\nly"\n')
    message = config_error(tmp_path)
    assert "tier:" in message


def test_invalid_toml(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "tier = \n")
    message = config_error(tmp_path)
    assert str(path) in message
    assert "invalid TOML" in message
    assert "line" in message


def test_invalid_toml_in_a_parent_pyproject_is_reported_while_walking(tmp_path: Path) -> None:
    path = write_pyproject(tmp_path, "tier = = 1\n")
    child = tmp_path / "child"
    child.mkdir()
    with pytest.raises(ConfigError, match="invalid TOML") as info:
        find_config_file(child)
    assert str(path) in str(info.value)


def test_tool_mltest_that_is_not_a_table(tmp_path: Path) -> None:
    path = make_project(tmp_path) / "pyproject.toml"
    path.write_text("[tool]\nmltest = 3\n", encoding="utf-8")
    message = config_error(tmp_path)
    assert str(path) in message
    assert "[tool.mltest]" in message
    assert "table" in message


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("tier: unit\n  seed: 3\n", 2),
        ("tier: unit\nseed: [1, 2\n", 3),
        ("a: b: c\n", 1),
        ("tier: unit\ndevice: cpu\n\tseed: 3\n", 3),
    ],
)
def test_invalid_yaml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write_yaml(tmp_path, text)
    message = config_error(tmp_path)
    assert str(path) in message
    assert "invalid YAML" in message
    assert f"line {line}," in message


@pytest.mark.parametrize(("text", "kind"), [("- tier\n- unit\n", "list"), ("just a string\n", "str"), ("3\n", "int")])
def test_yaml_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write_yaml(tmp_path, text)
    message = config_error(tmp_path)
    assert str(path) in message
    assert "mapping" in message
    assert kind in message


# ----------------------------------------------------------------------------- env errors


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        ("MLTEST_TIER", "nightly", "expected one of unit, integration, all"),
        ("MLTEST_UNIT_BUDGET", "fast", "expected a number of seconds"),
        ("MLTEST_SEED", "-3", "expected a whole number >= 0"),
        ("MLTEST_SEED", "1.5", "expected a whole number >= 0"),
        ("MLTEST_SHARD", "3/2", "expected I/N"),
        ("MLTEST_FAIL_ON_SKIP", "maybe", "expected true or false"),
        ("MLTEST_DETERMINISTIC", "2", "expected true or false"),
    ],
)
def test_bad_env_value_names_the_variable(tmp_path: Path, var: str, value: str, expected: str) -> None:
    message = config_error(make_project(tmp_path), environ={var: value})
    assert var in message
    assert expected in message
    assert repr(value) in message


def test_bad_env_value_wins_over_good_file_value(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "seed = 3\n")
    message = config_error(tmp_path, environ={"MLTEST_SEED": "x"})
    assert "MLTEST_SEED" in message


# ----------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("True", True),
        ("yes", True),
        ("YeS", True),
        ("on", True),
        ("ON", True),
        (" true ", True),
        ("0", False),
        ("false", False),
        ("FALSE", False),
        ("no", False),
        ("No", False),
        ("off", False),
        ("OFF", False),
    ],
)
def test_env_booleans(tmp_path: Path, text: str, expected: bool) -> None:
    root = make_project(tmp_path)
    settings = load_settings(root, environ={"MLTEST_FAIL_ON_SKIP": text, "MLTEST_DETERMINISTIC": text})
    assert settings.fail_on_skip is expected
    assert settings.deterministic is expected
    assert settings.sources["fail_on_skip"] == "env MLTEST_FAIL_ON_SKIP"


def test_env_false_overrides_file_true(tmp_path: Path) -> None:
    write_pyproject(tmp_path, "fail_on_skip = true\n")
    settings = load_settings(tmp_path, environ={"MLTEST_FAIL_ON_SKIP": "off"})
    assert settings.fail_on_skip is False
    assert settings.sources["fail_on_skip"] == "env MLTEST_FAIL_ON_SKIP"


def test_env_values_are_parsed(tmp_path: Path) -> None:
    environ = {
        "MLTEST_TIER": " Integration ",
        "MLTEST_DEVICE": "AUTO",
        "MLTEST_UNIT_BUDGET": "2.5",
        "MLTEST_BUDGET_MODE": "warn",
        "MLTEST_INTEGRATION_TIMEOUT": "0",
        "MLTEST_SEED": " 17 ",
        "MLTEST_SHARD": "2/4",
        "MLTEST_SLOWEST": "0",
    }
    settings = load_settings(make_project(tmp_path), environ=environ)
    assert settings.tier == "integration"
    assert settings.device == "auto"
    assert settings.unit_budget == 2.5
    assert settings.budget_mode == "warn"
    assert settings.integration_timeout == 0.0
    assert settings.seed == 17
    assert settings.shard == ShardSpec(2, 4)
    assert settings.slowest == 0
    assert {settings.sources[o.name] for o in OPTIONS if o.env_var in environ} == {f"env {var}" for var in environ}


@pytest.mark.parametrize("text", ["2/4", " 2/4 ", "2 / 4"])
def test_shard_text_parses_to_shardspec(text: str) -> None:
    assert OPTIONS_BY_NAME["shard"].parse(text) == ShardSpec(2, 4)


def test_shard_passthrough_values() -> None:
    parse = OPTIONS_BY_NAME["shard"].parse
    assert parse(None) is None
    spec = ShardSpec(1, 3)
    assert parse(spec) is spec


def test_file_values_are_parsed(tmp_path: Path) -> None:
    write_pyproject(
        tmp_path,
        'tier = "ALL"\ndevice = "cpu"\nunit_budget = 0\nbudget_mode = "off"\nintegration_timeout = 60\n'
        'fail_on_skip = true\nseed = 123\ndeterministic = "yes"\nshard = "1/2"\nslowest = 10\n'
        'store_url = "sqlite:///r.db"\nproject = "p"\nrepo_url = "https://git.example/p"\nrecord = false\n'
        'record_pull_requests = true\nsheets_url = "gsheets://KEY/w"\nsheets_credentials = "sa.json"\n'
        'main_branch = "trunk"\n',
    )
    settings = load_settings(tmp_path, environ={})
    assert settings == Settings(
        tier="all",
        device="cpu",
        unit_budget=0.0,
        budget_mode="off",
        integration_timeout=60.0,
        fail_on_skip=True,
        seed=123,
        deterministic=True,
        shard=ShardSpec(1, 2),
        slowest=10,
        store_url="sqlite:///r.db",
        project="p",
        repo_url="https://git.example/p",
        record=False,
        record_pull_requests=True,
        sheets_url="gsheets://KEY/w",
        sheets_credentials="sa.json",
        main_branch="trunk",
    )
    assert isinstance(settings.unit_budget, float)
    assert isinstance(settings.integration_timeout, float)
    assert set(settings.sources) == {o.name for o in OPTIONS}
    assert set(settings.sources.values()) == {PYPROJECT_LABEL}


def test_dashed_keys_accepted_in_pyproject(tmp_path: Path) -> None:
    write_pyproject(tmp_path, 'unit-budget = 2\nbudget-mode = "warn"\nfail-on-skip = true\n')
    settings = load_settings(tmp_path, environ={})
    assert settings.unit_budget == 2.0
    assert settings.budget_mode == "warn"
    assert settings.fail_on_skip is True
    assert settings.sources["unit_budget"] == PYPROJECT_LABEL


def test_dashed_keys_accepted_in_yaml(tmp_path: Path) -> None:
    write_yaml(tmp_path, "integration-timeout: 90\nunit-budget: 1\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.integration_timeout == 90.0
    assert settings.unit_budget == 1.0
    assert settings.sources["integration_timeout"] == "mltest.yaml"


def test_yaml_native_types(tmp_path: Path) -> None:
    write_yaml(tmp_path, "fail_on_skip: yes\ndeterministic: off\nseed: 8\nunit_budget: 0.25\n")
    settings = load_settings(tmp_path, environ={})
    assert settings.fail_on_skip is True
    assert settings.deterministic is False
    assert settings.seed == 8
    assert settings.unit_budget == 0.25


# ----------------------------------------------------------------------------- declarations


def test_options_are_exactly_the_settings_fields() -> None:
    setting_fields = {f.name for f in dataclasses.fields(Settings)} - BOOKKEEPING_FIELDS
    assert {o.name for o in OPTIONS} == setting_fields
    assert len(OPTIONS) == len(setting_fields)  # no duplicate declarations


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_option_default_matches_settings_field_default(option: OptionSpec) -> None:
    by_name = {f.name: f for f in dataclasses.fields(Settings)}
    field = by_name[option.name]
    assert field.default is not dataclasses.MISSING
    assert field.default == option.default
    assert type(field.default) is type(option.default)
    assert getattr(Settings(), option.name) == option.default


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_option_default_survives_its_own_parser(option: OptionSpec) -> None:
    if option.default is not None:
        assert option.parse(option.default) == option.default


def test_option_names_flags_and_env_vars() -> None:
    spec = OPTIONS_BY_NAME["unit_budget"]
    assert spec.dashed == "unit-budget"
    assert spec.env_var == "MLTEST_UNIT_BUDGET"
    assert spec.pytest_flag == "--mltest-unit-budget"
    assert spec.cli_flag == "--unit-budget"
    assert list(OPTIONS_BY_NAME) == [o.name for o in OPTIONS]


@pytest.mark.parametrize(
    ("name", "bad"),
    [
        ("tier", "nightly"),
        ("seed", "-3"),
        ("seed", "x"),
        ("unit_budget", "fast"),
        ("shard", "3/2"),
        ("slowest", "1.5"),
        ("device", "tpu"),
    ],
)
def test_argparse_type_raises_argument_type_error(name: str, bad: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as info:
        OPTIONS_BY_NAME[name].argparse_type(bad)
    assert repr(bad) in str(info.value)
    assert "expected" in str(info.value)


def test_argparse_type_parses_good_text() -> None:
    assert OPTIONS_BY_NAME["seed"].argparse_type("7") == 7
    assert OPTIONS_BY_NAME["shard"].argparse_type("2/4") == ShardSpec(2, 4)
    assert OPTIONS_BY_NAME["tier"].argparse_type("Integration") == "integration"
    assert OPTIONS_BY_NAME["unit_budget"].argparse_type("0.5") == 0.5


def test_argparse_type_error_reaches_argparse_as_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="demo")
    spec = OPTIONS_BY_NAME["seed"]
    parser.add_argument(spec.cli_flag, type=spec.argparse_type)
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["--seed", "-3"])
    assert info.value.code == 2
    assert "expected a whole number >= 0; got '-3'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("tier", "unit"),
        ("device", "cuda"),
        ("unit_budget", "5.0"),
        ("integration_timeout", "3600.0"),
        ("fail_on_skip", "false"),
        ("deterministic", "false"),
        ("seed", "0"),
        ("shard", "off"),
        ("slowest", "5"),
    ],
)
def test_help_with_default_ends_with_the_default_in_parentheses(name: str, shown: str) -> None:
    spec = OPTIONS_BY_NAME[name]
    text = spec.help_with_default
    assert text.startswith(spec.help)
    assert text.endswith(f"default: {shown})")
    assert f"(env {spec.env_var}; default: {shown})" in text


def test_two_spellings_of_one_key_are_refused(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.mltest]\nunit-budget = 2\nunit_budget = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="'unit_budget' sets unit_budget a second time: keep one spelling"):
        load_settings(tmp_path, environ={})


def test_mltest_yaml_and_yml_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "mltest.yaml").write_text("seed: 1\n", encoding="utf-8")
    (tmp_path / "mltest.yml").write_text("seed: 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="both configure mltest: keep one of them"):
        load_settings(tmp_path, environ={})


def test_cli_source_names_the_flag_the_caller_used(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={}, cli={"seed": 7}, cli_flag=lambda spec: spec.cli_flag)
    assert settings.sources["seed"] == "command line --seed"
    assert load_settings(tmp_path, environ={}, cli={"seed": 7}).sources["seed"] == "command line --mltest-seed"


def test_an_unknown_key_is_shown_escaped(tmp_path: Path) -> None:
    write_yaml(tmp_path, 'seed: 4\n"evil\\e[31m\\u202ekey": 1\n')
    with pytest.raises(ConfigError) as info:
        load_settings(tmp_path, environ={})
    message = str(info.value)
    assert "\x1b" not in message
    assert "\u202e" not in message
    assert "unknown key 'evil\\x1b[31m\\u202ekey'" in message
