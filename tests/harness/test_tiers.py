"""Tier selection, the deselection summary, budgets, skips and the do-no-harm promise (pytester, in-process)."""

from __future__ import annotations

import pytest

SUITE = """
import os, time, pytest

def test_unit_a():
    pass

def test_unit_b():
    pass

@pytest.mark.integration
def test_integration_cpu():
    pass

@pytest.mark.gpu
def test_needs_gpu():
    pass

class TestGrouped:
    pytestmark = pytest.mark.integration
    def test_in_class(self):
        pass
"""

OPT_IN = "[tool.mltest]\n"


def test_project_not_opted_in_runs_exactly_as_without_mltest(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmarkers =\n    integration: theirs\n    gpu: theirs\n")
    pytester.makepyfile(
        test_suite=SUITE + "\ndef test_sees_env():\n    assert 'CUDA_VISIBLE_DEVICES' not in os.environ\n"
    )
    with_plugin = pytester.runpytest_subprocess("--strict-markers")
    without = pytester.runpytest_subprocess("--strict-markers", "-p", "no:mltest")
    with_plugin.assert_outcomes(passed=6)
    without.assert_outcomes(passed=6)
    assert "mltest" not in with_plugin.stdout.str().replace("plugins: ", "").split("collected")[1]
    with_plugin.stdout.no_fnmatch_line("*deselected*")
    with_plugin.stdout.no_fnmatch_line("mltest: tier=*")


def test_markers_are_not_registered_until_opted_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="import pytest\n@pytest.mark.integration\ndef test_a():\n    pass\n")
    # A subprocess: in-process runs share pytest's marker cache with this (opted-in) session.
    result = pytester.runpytest_subprocess("--strict-markers")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'integration' not found in `markers`*"])


def test_plain_pytest_runs_the_unit_tier_and_says_how_to_run_the_rest(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--strict-markers")
    result.assert_outcomes(passed=2, deselected=3)
    result.stdout.fnmatch_lines(
        [
            "mltest: tier=unit, GPUs hidden*",
            "*3 integration tests deselected by the unit tier; run them with `mltest run integration`*",
        ]
    )


def test_integration_tier_selects_integration_and_gpu_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--mltest-tier=integration", "--mltest-device=cpu", "-rA")
    result.assert_outcomes(passed=2, skipped=1, deselected=2)
    result.stdout.fnmatch_lines(["*2 unit tests deselected by the integration tier*"])
    result.stdout.fnmatch_lines(["PASSED*test_integration_cpu", "PASSED*test_in_class"])


def test_all_tier_runs_everything(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--mltest-tier=all", "--mltest-device=cpu").assert_outcomes(passed=4, skipped=1)


def test_default_tier_comes_from_config_and_env_overrides_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makefile(".yaml", mltest="tier: integration\ndevice: cpu\n")
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest().assert_outcomes(passed=2, skipped=1, deselected=2)
    monkeypatch.setenv("MLTEST_TIER", "unit")
    pytester.runpytest().assert_outcomes(passed=2, deselected=3)
    pytester.runpytest("--mltest-tier=all").assert_outcomes(passed=4, skipped=1)


def test_an_mltest_flag_alone_opts_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("--mltest-tier=unit").assert_outcomes(passed=2, deselected=3)


def test_unit_tier_hides_gpus_and_restores_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makeconftest("import os\nSEEN_AT_CONFTEST = os.environ['CUDA_VISIBLE_DEVICES']\n")
    pytester.makepyfile(
        test_env="import os, conftest\ndef test_hidden():\n"
        "    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''\n    assert conftest.SEEN_AT_CONFTEST == ''\n"
    )
    pytester.runpytest().assert_outcomes(passed=1)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_bad_tier_value_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--mltest-tier=nightly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--mltest-tier: expected one of unit, integration, all; got 'nightly'*"])


def test_bad_config_file_is_a_one_line_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nunit_budgte = 3\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    expected = "pyproject.toml [tool.mltest]: unknown key 'unit_budgte' (did you mean 'unit_budget'?)"
    assert [line for line in result.stderr.lines if line.startswith("ERROR: mltest: ") and line.endswith(expected)]
    assert "Traceback" not in result.stderr.str()


BUDGET_SUITE = """
import time, pytest

def test_fast():
    pass

def test_slow():
    time.sleep(0.3)

@pytest.mark.integration
def test_slow_integration():
    time.sleep(0.3)
"""


def test_unit_test_over_budget_fails_with_duration_budget_and_fix(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nunit_budget = 0.1\n")
    pytester.makepyfile(test_budget=BUDGET_SUITE)
    result = pytester.runpytest("--mltest-tier=all", "--mltest-device=cpu")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ test_slow _*",
            "mltest: unit test took 0.3* s, over the unit-tier budget of 0.1 s: "
            "mark it @pytest.mark.integration or make it faster*",
        ]
    )


def test_budget_warn_mode_lists_instead_of_failing(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nunit_budget = 0.1\nbudget_mode = 'warn'\n")
    pytester.makepyfile(test_budget=BUDGET_SUITE)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, deselected=1)
    result.stdout.fnmatch_lines(
        ["over the unit budget of 0.1 s (budget_mode=warn):", "*0.3* s  test_budget.py::test_slow"]
    )


def test_budget_zero_turns_it_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_budget=BUDGET_SUITE)
    pytester.runpytest("--mltest-unit-budget=0").assert_outcomes(passed=2, deselected=1)


def test_summary_shows_tier_time_and_slowest_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nslowest = 1\n")
    pytester.makepyfile(test_budget=BUDGET_SUITE)
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        ["unit tier: 2 tests ran in * s wall (0.3* s of test time)", "slowest:", "*0.3* s  test_budget.py::test_slow"]
    )
    result.stdout.no_fnmatch_line("*s  test_budget.py::test_fast")


SKIP_SUITE = """
import pytest

@pytest.mark.skip(reason="dataset not mounted")
def test_a():
    pass

@pytest.mark.skip(reason="dataset not mounted")
def test_b():
    pass

def test_c():
    pytest.skip("flaky on this runner")

@pytest.mark.xfail(reason="known bug")
def test_d():
    assert False
"""


def test_skips_are_grouped_by_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makepyfile(test_skips=SKIP_SUITE)
    result = pytester.runpytest()
    result.assert_outcomes(skipped=3, xfailed=1)
    result.stdout.fnmatch_lines(["skipped (3), by reason:", "*2 x dataset not mounted", "*1 x flaky on this runner"])


def test_fail_on_skip_turns_every_skip_into_a_failure_but_not_xfail(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(OPT_IN)
    pytester.makepyfile(test_skips=SKIP_SUITE)
    result = pytester.runpytest("--mltest-fail-on-skip")
    result.assert_outcomes(failed=1, errors=2, xfailed=1)
    result.stdout.fnmatch_lines(
        ["*mltest: skipped (flaky on this runner), and --mltest-fail-on-skip turns skips into failures*"]
    )


def test_fail_on_skip_covers_module_level_skips(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nfail_on_skip = true\n")
    pytester.makepyfile(test_mod="import pytest\npytest.importorskip('no_such_module_xyz')\ndef test_a():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the session
    result.stdout.fnmatch_lines(["*mltest: module skipped (could not import 'no_such_module_xyz'*"])


def test_integration_tests_get_a_thread_method_timeout(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nintegration_timeout = 120\n")
    pytester.makepyfile(
        test_t="""
import pytest

@pytest.mark.integration
def test_default(request):
    marker = request.node.get_closest_marker("timeout")
    assert marker.args == (120.0,) and marker.kwargs == {"method": "thread"}

@pytest.mark.integration
@pytest.mark.timeout(5)
def test_own_timeout_wins(request):
    assert request.node.get_closest_marker("timeout").args == (5,)

def test_unit_has_none(request):
    assert request.node.get_closest_marker("timeout") is None
"""
    )
    pytester.runpytest("--mltest-tier=all", "--mltest-device=cpu", "-p", "timeout").assert_outcomes(passed=3)


def test_integration_timeout_really_stops_a_hung_test(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nintegration_timeout = 1\n")
    pytester.makepyfile(
        test_hang="import time, pytest\n@pytest.mark.integration\ndef test_hang():\n    time.sleep(30)\n"
    )
    result = pytester.runpytest_subprocess("--mltest-tier=integration", "--mltest-device=cpu")
    assert result.ret != 0
    assert "Timeout" in result.stdout.str() + result.stderr.str()
    assert result.duration < 20
