"""Settings: one frozen object resolved from defaults < config file < ``MLTEST_*`` env < CLI flags.

The config file is ``[tool.mltest]`` in ``pyproject.toml`` or a top-level mapping in ``mltest.yaml``,
found by walking up from the project directory. Every setting is declared once in :data:`OPTIONS`;
the pytest plugin (``--mltest-*``), the ``mltest`` CLI (``--*``), the environment (``MLTEST_*``) and
the file all read that one declaration, so they cannot drift apart.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mltest.errors import ConfigError
from mltest.model import BUDGET_MODES, DEVICE_MODES, TIERS, BudgetMode, DeviceMode, MetricSpec, ShardSpec, Tier

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "ENV_PREFIX",
    "OPTIONS",
    "ConfigFile",
    "OptionSpec",
    "Settings",
    "find_config_file",
    "load_settings",
]

ENV_PREFIX = "MLTEST_"
DEFAULT_STORE_URL = "sqlite:///.mltest/results.db"
YAML_NAMES = ("mltest.yaml", "mltest.yml")


# ----------------------------------------------------------------------------- value parsers
# Each parser takes a native value (from TOML/YAML) or a string (from env/CLI) and returns the
# typed value, or raises ValueError with a message that says what was expected.


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        if isinstance(value, str) and value.strip().lower() in choices:
            return value.strip().lower()
        raise ValueError(f"expected one of {', '.join(choices)}; got {value!r}")

    return parse


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds (0 turns it off); got {value!r}")
    try:
        number = float(value) if isinstance(value, (int, float, str)) else float("nan")
    except (ValueError, OverflowError):  # OverflowError: an integer too large for a float (YAML has no limit)
        number = float("nan")
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"expected a number of seconds >= 0 (0 turns it off); got {value!r}")
    return number


def _int(minimum: int) -> Callable[[object], int]:
    def parse(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"expected a whole number >= {minimum}; got {value!r}")
        try:
            number = int(value.strip()) if isinstance(value, str) else value
        except ValueError:
            number = None
        if not isinstance(number, int) or number < minimum:
            raise ValueError(f"expected a whole number >= {minimum}; got {value!r}")
        return number

    return parse


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"expected true or false; got {value!r}")


def _text(value: object) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"expected a non-empty string; got {value!r}")


def _tolerance(value: object) -> float:
    """A relative tolerance: 0.05, or the text '5%'."""
    text = value.strip() if isinstance(value, str) else value
    try:
        if isinstance(text, str) and text.endswith("%"):
            number = float(text[:-1]) / 100
        elif isinstance(text, (int, float)) and not isinstance(text, bool):
            number = float(text)
        else:
            raise ValueError
    except (ValueError, OverflowError):
        number = float("nan")
    if not 0 <= number < 10:
        raise ValueError(f"expected a relative tolerance such as 0.05 or '5%'; got {value!r}")
    return number


def _sheets_url(value: object) -> str:
    """``gsheets://SPREADSHEET_KEY[/WORKSHEET]`` (the key is the part after ``/d/`` in the sheet's address)."""
    text = value.strip() if isinstance(value, str) else ""
    scheme, sep, rest = text.partition("://")
    if scheme.lower() != "gsheets" or not sep or not rest.split("/", 1)[0]:
        raise ValueError(
            "expected gsheets://SPREADSHEET_KEY[/WORKSHEET] (the key is the part after /d/ in the sheet's "
            f"address); got {value!r}"
        )
    return text


def _shard(value: object) -> ShardSpec | None:
    if value is None:
        return None
    if isinstance(value, ShardSpec):
        return value
    text = str(value).strip()
    index, slash, total = text.partition("/")
    try:
        if not slash:
            raise ValueError
        return ShardSpec(int(index), int(total))
    except ValueError:
        raise ValueError(f"expected I/N with 1 <= I <= N, for example 2/4; got {value!r}") from None


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class OptionSpec:
    """One setting, declared once for the file, the environment, pytest and the CLI."""

    name: str
    default: object
    help: str
    parse: Callable[[object], Any]
    metavar: str = "VALUE"
    is_bool: bool = False
    flag: str | None = None
    """The flag's name when it differs from the setting's (``store_url`` is ``--mltest-store``)."""

    @property
    def dashed(self) -> str:
        return self.flag or self.name.replace("_", "-")

    @property
    def env_var(self) -> str:
        return ENV_PREFIX + self.name.upper()

    @property
    def pytest_flag(self) -> str:
        return "--mltest-" + self.dashed

    @property
    def cli_flag(self) -> str:
        return "--" + self.dashed

    @property
    def help_with_default(self) -> str:
        default = "off" if self.default is None else _show(self.default)
        return f"{self.help} (env {self.env_var}; default: {default})"

    def argparse_type(self, text: str) -> Any:
        """The ``type=`` of an argparse option: bad values name the option and the value."""
        try:
            return self.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "tier",
        "unit",
        "tier to run: unit (CPU, every commit), integration (GPU, nightly) or all",
        _choice(*TIERS),
        metavar="{" + ",".join(TIERS) + "}",
    ),
    OptionSpec(
        "device",
        "cuda",
        "integration-tier device: cuda requires a GPU, auto uses one when present, cpu allows a CPU run",
        _choice(*DEVICE_MODES),
        metavar="{" + ",".join(DEVICE_MODES) + "}",
    ),
    OptionSpec(
        "unit_budget",
        5.0,
        "per-test time budget of the unit tier, in seconds; 0 turns it off",
        _seconds,
        metavar="SECONDS",
    ),
    OptionSpec(
        "budget_mode",
        "fail",
        "what a unit test over budget does: fail, warn (listed in the summary) or off",
        _choice(*BUDGET_MODES),
        metavar="{" + ",".join(BUDGET_MODES) + "}",
    ),
    OptionSpec(
        "integration_timeout",
        3600.0,
        "default timeout of integration tests in seconds, via pytest-timeout's thread method when "
        "installed; 0 turns it off",
        _seconds,
        metavar="SECONDS",
    ),
    OptionSpec("fail_on_skip", False, "turn every skipped test into a failure", _bool, is_bool=True),
    OptionSpec("seed", 0, "seed of the 'seed' fixture (random, numpy, torch)", _int(0), metavar="N"),
    OptionSpec(
        "deterministic",
        False,
        "deterministic mode: torch deterministic algorithms, cuDNN benchmark off, CUBLAS_WORKSPACE_CONFIG set",
        _bool,
        is_bool=True,
    ),
    OptionSpec(
        "shard",
        None,
        "run only shard I of N of the selected tests, for example 2/4",
        _shard,
        metavar="I/N",
    ),
    OptionSpec("slowest", 5, "how many of the slowest tests the summary lists", _int(0), metavar="N"),
    OptionSpec(
        "store_url",
        DEFAULT_STORE_URL,
        "results store: sqlite:///PATH (relative to the project root) or postgresql://USER@HOST/DB",
        _text,
        metavar="URL",
        flag="store",
    ),
    OptionSpec(
        "project",
        None,
        "project name stored with every run (default: the project directory's name)",
        _text,
        metavar="NAME",
    ),
    OptionSpec(
        "repo_url",
        None,
        "repository web URL for commit links in reports, e.g. https://github.com/ORG/REPO "
        "(default: from GitHub Actions or GitLab CI variables)",
        _text,
        metavar="URL",
    ),
    OptionSpec("record", True, "record runs, test outcomes and measurements into the store", _bool, is_bool=True),
    OptionSpec(
        "record_pull_requests",
        False,
        "also record unit-tier runs of pull requests (off: a PR's unit tier never writes to the store)",
        _bool,
        is_bool=True,
    ),
    OptionSpec(
        "main_branch",
        "main",
        "the main branch: `mltest ci nightly` runs only there, and sharding balances by its recorded durations",
        _text,
        metavar="BRANCH",
    ),
    OptionSpec(
        "sheets_url",
        None,
        "also send finished runs to a Google Sheet, gsheets://SPREADSHEET_KEY[/WORKSHEET] (needs mltest[gsheets]); "
        "the store stays the source of truth",
        _sheets_url,
        metavar="URL",
    ),
    OptionSpec(
        "sheets_credentials",
        None,
        "service-account JSON file for the sheet (else MLTEST_SHEETS_CREDENTIALS_JSON holds the JSON itself, "
        "else GOOGLE_APPLICATION_CREDENTIALS names the file)",
        _text,
        metavar="PATH",
    ),
)
OPTIONS_BY_NAME: Mapping[str, OptionSpec] = MappingProxyType({o.name: o for o in OPTIONS})


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "off"
    return str(value)


@dataclass(frozen=True)
class Settings:
    """The effective settings of one run. ``sources`` says where each value came from."""

    tier: Tier = "unit"
    device: DeviceMode = "cuda"
    unit_budget: float = 5.0
    budget_mode: BudgetMode = "fail"
    integration_timeout: float = 3600.0
    fail_on_skip: bool = False
    seed: int = 0
    deterministic: bool = False
    shard: ShardSpec | None = None
    slowest: int = 5
    store_url: str = DEFAULT_STORE_URL
    project: str | None = None
    repo_url: str | None = None
    record: bool = True
    record_pull_requests: bool = False
    main_branch: str = "main"
    sheets_url: str | None = None
    sheets_credentials: str | None = None
    metrics: Mapping[str, MetricSpec] = field(default_factory=lambda: MappingProxyType({}))
    """``[tool.mltest.metrics.NAME]`` tables: unit, direction and tolerance per metric."""
    config_file: Path | None = field(default=None, compare=False)
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), compare=False)
    active: bool = field(default=False, compare=False)
    """True when the project opted in: a config section, an ``MLTEST_*`` setting or an ``--mltest-*`` flag."""

    @property
    def project_root(self) -> Path:
        """Where relative store paths and the spool live: the config file's directory, else the cwd."""
        return self.config_file.parent if self.config_file is not None else Path.cwd()

    @property
    def project_name(self) -> str:
        return self.project or self.project_root.name

    def describe(self) -> list[tuple[str, str, str]]:
        """(name, value, source) for every setting, in declaration order, then the metrics."""
        rows = [(o.name, _show(getattr(self, o.name)), self.sources.get(o.name, "default")) for o in OPTIONS]
        for name, spec in self.metrics.items():
            parts = [f"{k}={_show(v)}" for k, v in vars(spec).items() if k != "name" and v is not None]
            rows.append((f"metrics.{name}", ", ".join(parts) or "(inferred)", self.sources.get("metrics", "default")))
        return rows


# ----------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class ConfigFile:
    path: Path
    label: str
    """How errors name it: ``pyproject.toml [tool.mltest]`` or ``mltest.yaml``."""
    data: Mapping[str, object]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _read_pyproject(path: Path) -> Mapping[str, object] | None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except (ValueError, RecursionError) as exc:  # TOMLDecodeError; an integer over Python's digit limit; nesting
        raise ConfigError(f"{path}: invalid TOML: {_first_line(exc)}") from None
    tool = document.get("tool")
    section = tool.get("mltest") if isinstance(tool, dict) else None
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.mltest] must be a table of settings")
    return section


def _read_yaml(path: Path) -> Mapping[str, object]:
    import yaml  # only for mltest.yaml: most projects configure in pyproject.toml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML{where}: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    except (ValueError, RecursionError) as exc:  # a bad date (2020-13-45), an integer over the digit limit, nesting
        raise ConfigError(f"{path}: invalid YAML: {_first_line(exc)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level, got {type(document).__name__}")
    return document


def find_config_file(start: Path) -> ConfigFile | None:
    """The config of the project containing ``start``, or None.

    Walks up from ``start``; the first directory holding ``mltest.yaml`` or a ``pyproject.toml`` with
    ``[tool.mltest]`` wins. A ``pyproject.toml`` without the section, or a ``.git``, ends the walk:
    that is the project's root and the project has not opted in.
    """
    for directory in (start, *start.parents):
        pyproject = directory / "pyproject.toml"
        section = _read_pyproject(pyproject) if pyproject.is_file() else None
        yamls = [directory / name for name in YAML_NAMES if (directory / name).is_file()]
        if len(yamls) > 1:
            raise ConfigError(f"{yamls[0]} and {yamls[1]} both configure mltest: keep one of them")
        if yamls and section is not None:
            raise ConfigError(f"{yamls[0]} and {pyproject} [tool.mltest] both configure mltest: keep one of them")
        if yamls:
            return ConfigFile(yamls[0], yamls[0].name, _read_yaml(yamls[0]))
        if section is not None:
            return ConfigFile(pyproject, "pyproject.toml [tool.mltest]", section)
        if pyproject.is_file() or (directory / ".git").exists():
            return None
    return None


def _unknown_key(where: str, key: str, valid: list[str]) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    return ConfigError(f"{where}: unknown key {key!r} ({hint})")


_METRIC_KEYS = {"unit": _text, "higher_is_better": _bool, "tolerance": _tolerance, "tolerance_abs": _seconds}


def _parse_metrics(where: str, raw: object) -> Mapping[str, MetricSpec]:
    """``metrics.NAME = {unit, higher_is_better, tolerance (relative: 0.05 or '5%'), tolerance_abs}``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: metrics: expected a table of metric names, got {type(raw).__name__}")
    specs: dict[str, MetricSpec] = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: metrics.{name}: expected a table such as {{higher_is_better = true}}")
        parsed: dict[str, Any] = {}
        for key, value in table.items():
            parse = _METRIC_KEYS.get(str(key))
            if parse is None:
                raise _unknown_key(f"{where}: metrics.{name}", str(key), list(_METRIC_KEYS))
            try:
                parsed[str(key)] = parse(value)
            except ValueError as exc:
                message = str(exc).replace("seconds", "units") if key == "tolerance_abs" else str(exc)
                raise ConfigError(f"{where}: metrics.{name}.{key}: {message}") from None
        specs[str(name)] = MetricSpec(str(name), **parsed)
    return MappingProxyType(specs)


# ----------------------------------------------------------------------------- resolution


def load_settings(
    start: Path | None,
    *,
    environ: Mapping[str, str] | None = None,
    cli: Mapping[str, object] | None = None,
    cli_flag: Callable[[OptionSpec], str] = lambda spec: spec.pytest_flag,
) -> Settings:
    """Resolve the settings: defaults < config file < ``MLTEST_*`` environment < ``cli``.

    ``start`` is where the config file search begins (None: no file). ``cli`` maps setting names
    to already-parsed values; None values mean "not given"; ``cli_flag`` names a value's flag in
    ``sources`` (``--mltest-seed`` for pytest, ``--seed`` for the mltest CLI).
    """
    config_file = find_config_file(start) if start is not None else None
    environ = {} if environ is None else environ
    values: dict[str, object] = {}
    sources: dict[str, str] = {}

    if config_file is not None:
        where = (
            str(config_file.path)
            if config_file.label == config_file.path.name
            else (f"{config_file.path} [tool.mltest]")
        )
        for key, raw in config_file.data.items():
            if key == "metrics":
                values["metrics"] = _parse_metrics(where, raw)
                sources["metrics"] = config_file.label
                continue
            spec = OPTIONS_BY_NAME.get(str(key).replace("-", "_"))
            if spec is None:
                raise _unknown_key(where, str(key), [*OPTIONS_BY_NAME, "metrics"])
            if spec.name in values:
                raise ConfigError(f"{where}: '{key}' sets {spec.name} a second time: keep one spelling")
            try:
                values[spec.name] = spec.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{where}: {key}: {exc}") from None
            sources[spec.name] = config_file.label

    env_given = False
    for spec in OPTIONS:
        raw_env = environ.get(spec.env_var)
        if raw_env is None or raw_env == "":
            continue
        env_given = True
        try:
            values[spec.name] = spec.parse(raw_env)
        except ValueError as exc:
            raise ConfigError(f"environment variable {spec.env_var}: {exc}") from None
        sources[spec.name] = f"env {spec.env_var}"

    cli_given = False
    for name, value in (cli or {}).items():
        if value is None:
            continue
        if name not in OPTIONS_BY_NAME:
            raise ConfigError(f"unknown setting '{name}'")
        cli_given = True
        values[name] = value
        sources[name] = f"command line {cli_flag(OPTIONS_BY_NAME[name])}"

    return Settings(
        **values,  # type: ignore[arg-type]
        config_file=config_file.path if config_file is not None else None,
        sources=MappingProxyType(sources),
        active=config_file is not None or env_given or cli_given,
    )
