"""The seed and device fixtures, and deterministic mode."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from mltest.harness import gpu


def test_seed_seeds_random_numpy_and_torch_and_is_reported(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nseed = 1234\n")
    pytester.makepyfile(
        test_seed="""
import random
import numpy
import torch

def test_first(seed):
    assert seed == 1234
    draws = (random.random(), float(numpy.random.rand()), float(torch.rand(1)))
    random.seed(1234); numpy.random.seed(1234); torch.manual_seed(1234)
    assert draws == (random.random(), float(numpy.random.rand()), float(torch.rand(1)))
"""
    )
    result = pytester.runpytest("--junitxml=out.xml")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["mltest: tier=unit*seed=1234*"])
    props = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "out.xml").iter("property")}
    assert props == {"mltest_seed": "1234"}


def test_seed_flag_overrides_config(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nseed = 1\n")
    pytester.makepyfile(test_seed="def test_s(seed):\n    assert seed == 99\n")
    pytester.runpytest("--mltest-seed=99").assert_outcomes(passed=1)


def test_device_fixture_is_cpu_in_the_unit_tier(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(test_dev="import torch\ndef test_d(device):\n    assert device == torch.device('cpu')\n")
    pytester.runpytest().assert_outcomes(passed=1)


def test_device_fixture_without_torch_names_the_extra(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates a machine without torch by making the probe report it missing."""
    monkeypatch.setattr(gpu, "torch_available", lambda: False)
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(test_dev="def test_d(device):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    assert (
        "the 'device' fixture needs the 'torch' package, which is not installed: pip install 'mltest[torch]'"
        in result.stdout.lines
    )


def test_fixtures_do_not_exist_for_projects_that_did_not_opt_in(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_dev="def test_d(seed):\n    pass\n")
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'seed' not found*"])


def test_deterministic_mode_sets_flags_before_cuda_and_reports_them(pytester: pytest.Pytester) -> None:
    import torch

    assert not torch.are_deterministic_algorithms_enabled()
    pytester.makepyprojecttoml("[tool.mltest]\ndeterministic = true\n")
    pytester.makeconftest("import os\nCUBLAS_AT_CONFTEST = os.environ.get('CUBLAS_WORKSPACE_CONFIG')\n")
    pytester.makepyfile(
        test_det="""
import os, torch, conftest

def test_flags():
    assert conftest.CUBLAS_AT_CONFTEST == ":4096:8"
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
"""
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "mltest: deterministic mode: seed=0, CUBLAS_WORKSPACE_CONFIG=:4096:8, "
            "torch.use_deterministic_algorithms=True, torch.backends.cudnn.benchmark=False, "
            "torch.backends.cudnn.deterministic=True"
        ]
    )
    # The session put everything back: this process is not left deterministic.
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ


def test_deterministic_mode_keeps_a_users_cublas_setting(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    pytester.makepyfile(
        test_det="import os\ndef test_c():\n    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'\n"
    )
    result = pytester.runpytest("--mltest-deterministic")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*CUBLAS_WORKSPACE_CONFIG=:16:8*"])
