"""The ``pytest11`` entry point (``-p no:mltest`` disables it).

Until a project opts in (``[tool.mltest]``, ``mltest.yaml``, an ``MLTEST_*`` setting or any
``--mltest-*`` flag), this module only adds its options: selection, budgets and results stay exactly
as without mltest. Once opted in, it registers :class:`~mltest.harness.session.MltestSession` and the
fixtures.

Loading it imports only what adding the options and reading the settings need; the rest is imported
once a project has opted in, and only the parts the session uses (every pytest run pays for this
module's imports).
"""

from __future__ import annotations

import os

import pytest

from mltest.config import Settings, load_settings
from mltest.errors import MltestError
from mltest.harness.options import SETTINGS_KEY, add_options, given_options

__all__ = ["pytest_addoption", "pytest_configure", "pytest_load_initial_conftests", "pytest_unconfigure"]

_SAVED_ENV = pytest.StashKey[dict[str, str | None]]()
CUBLAS_DETERMINISTIC = ":4096:8"


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


def _resolve(config: pytest.Config, namespace: object) -> Settings:
    try:
        return load_settings(config.rootpath, environ=os.environ, cli=given_options(namespace))
    except MltestError as exc:
        raise pytest.UsageError(f"mltest: {exc}") from None


def _set_env(config: pytest.Config, name: str, value: str) -> None:
    """Set an environment variable for this session; pytest_unconfigure puts the old value back."""
    config.stash.setdefault(_SAVED_ENV, {}).setdefault(name, os.environ.get(name))
    os.environ[name] = value


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    """Runs before conftest.py files and test modules are imported, so before anything can touch CUDA."""
    settings = _resolve(early_config, early_config.known_args_namespace)
    early_config.stash[SETTINGS_KEY] = settings
    if not settings.active:
        return
    if settings.tier == "unit":
        _set_env(early_config, "CUDA_VISIBLE_DEVICES", "")
    if settings.deterministic and "CUBLAS_WORKSPACE_CONFIG" not in os.environ:
        _set_env(early_config, "CUBLAS_WORKSPACE_CONFIG", CUBLAS_DETERMINISTIC)
    if not os.environ.get("PYTEST_XDIST_WORKER"):  # an xdist worker never records
        from mltest.harness.recording import start_writer_early

        start_writer_early(early_config, settings)  # it opens the store while conftest files import


def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash.get(SETTINGS_KEY, None)
    if settings is None:  # pytest_load_initial_conftests was not called (an unusual embedding)
        settings = config.stash[SETTINGS_KEY] = _resolve(config, config.option)
    if not settings.active:
        return
    from mltest.harness import fixtures
    from mltest.harness.session import GpuGate, MltestSession

    session = MltestSession(config, settings)
    config.pluginmanager.register(session, "mltest-session")
    if settings.tier != "unit":
        config.pluginmanager.register(GpuGate(session), "mltest-gpu")
    config.pluginmanager.register(fixtures, "mltest-fixtures")
    if session.is_worker:
        return
    from mltest.harness.recording import RecorderPlugin, recording_skipped_reason

    reason = recording_skipped_reason(settings, os.environ)
    if reason is None:
        flags = {"seed": settings.seed, **session.state.determinism}
        session.recorder = RecorderPlugin(config, settings, flags)
        config.pluginmanager.register(session.recorder, "mltest-recorder")
    else:
        session.state.recording_note = reason


def pytest_unconfigure(config: pytest.Config) -> None:
    for name, value in config.stash.get(_SAVED_ENV, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
