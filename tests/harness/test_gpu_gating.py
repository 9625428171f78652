"""GPU gating. This machine has no GPU: tests named *simulated* replace mltest.harness.gpu's probes
(device_count, memory) inside the test process to pretend CUDA devices exist. The no-GPU tests are real."""

from __future__ import annotations

import pytest

from mltest.harness import gpu
from mltest.harness.gpu import GIB, DeviceMemory, GpuRequirement, unmet_reason

SUITE = """
import pytest

@pytest.mark.integration
def test_any_device(device):
    assert device.type == EXPECTED_DEVICE

@pytest.mark.gpu
def test_one_gpu():
    pass

@pytest.mark.gpu(count=2)
def test_two_gpus():
    pass

@pytest.mark.gpu(min_memory_gb=40)
def test_big_gpu():
    pass
"""


def _suite(pytester: pytest.Pytester, expected_device: str) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(test_gpu_suite=SUITE.replace("EXPECTED_DEVICE", repr(expected_device)))


def simulate(monkeypatch: pytest.MonkeyPatch, free_gib: list[float]) -> None:
    """Pretend len(free_gib) CUDA devices with that much free memory each (80 GiB total)."""
    monkeypatch.setattr(gpu, "device_count", lambda environ=None: len(free_gib))
    monkeypatch.setattr(gpu, "memory", lambda i: DeviceMemory(i, "Simulated H100", int(free_gib[i] * GIB), 80 * GIB))


def test_integration_tier_without_gpu_fails_at_start_with_one_line(pytester: pytest.Pytester) -> None:
    _suite(pytester, "cuda")
    result = pytester.runpytest("--mltest-tier=integration")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert errors == [
        "ERROR: mltest: the integration tier requires a GPU but no CUDA device is visible; run it on a GPU "
        "runner, or pass --mltest-device=cpu (mltest run --device cpu) to allow a CPU run"
    ]
    result.stdout.no_fnmatch_line("*passed*")
    result.stdout.no_fnmatch_line("*skipped*")


def test_all_tier_also_requires_the_gpu(pytester: pytest.Pytester) -> None:
    _suite(pytester, "cuda")
    assert pytester.runpytest("--mltest-tier=all").ret == pytest.ExitCode.USAGE_ERROR


def test_device_cpu_runs_any_device_tests_on_cpu_and_skips_gpu_tests_with_reason(pytester: pytest.Pytester) -> None:
    _suite(pytester, "cpu")
    result = pytester.runpytest("--mltest-tier=integration", "--mltest-device=cpu")
    result.assert_outcomes(passed=1, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*1 x needs 1 GPU; this run uses the CPU (--mltest-device=cpu)",
            "*1 x needs 2 GPUs; this run uses the CPU (--mltest-device=cpu)",
            "*1 x needs 1 GPU with 40 GiB free each; this run uses the CPU (--mltest-device=cpu)",
        ]
    )


def test_device_cpu_with_fail_on_skip_fails_the_gpu_tests(pytester: pytest.Pytester) -> None:
    _suite(pytester, "cpu")
    result = pytester.runpytest("--mltest-tier=integration", "--mltest-device=cpu", "--mltest-fail-on-skip")
    result.assert_outcomes(passed=1, errors=3)


def test_device_auto_without_gpu_falls_back_to_cpu(pytester: pytest.Pytester) -> None:
    _suite(pytester, "cpu")
    result = pytester.runpytest("--mltest-tier=integration", "--mltest-device=auto")
    result.assert_outcomes(passed=1, skipped=3)


def test_simulated_required_gpu_unmet_requirements_fail_not_skip(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(monkeypatch, [21.5])
    _suite(pytester, "cuda")
    result = pytester.runpytest("--mltest-tier=integration", "-rA")
    result.assert_outcomes(passed=2, errors=2)  # setup failures: exit code 1, never a skip
    result.stdout.fnmatch_lines(["mltest: tier=integration, device=cuda (--mltest-device=cuda; 1 GPU visible)*"])
    result.stdout.fnmatch_lines(
        [
            "*mltest: GPU requirement not met: needs 2 GPUs, 1 visible; a GPU was required*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*mltest: GPU requirement not met: needs 1 GPU with 40 GiB free each: "
            "GPU 0 (Simulated H100) has 21.5 of 80.0 GiB free; a GPU was required*",
        ]
    )


def test_simulated_auto_mode_skips_unmet_requirements_with_the_exact_reason(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(monkeypatch, [21.5])
    _suite(pytester, "cuda")
    result = pytester.runpytest("--mltest-tier=integration", "--mltest-device=auto")
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*1 x needs 2 GPUs, 1 visible"])


def test_simulated_requirements_met_all_pass(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    simulate(monkeypatch, [79.0, 79.0])
    _suite(pytester, "cuda")
    pytester.runpytest("--mltest-tier=integration").assert_outcomes(passed=4)


def test_simulated_worker_view_names_cuda_visible_devices(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    simulate(monkeypatch, [79.0])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    _suite(pytester, "cuda")
    result = pytester.runpytest("--mltest-tier=integration")
    result.stdout.fnmatch_lines(["*needs 2 GPUs, 1 visible to this process (CUDA_VISIBLE_DEVICES=3)*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("gpu(count=0)", "count must be a whole number >= 1, got 0"),
        ("gpu(count='two')", "count must be a whole number >= 1, got 'two'"),
        ("gpu(min_memory_gb=-1)", "min_memory_gb must be a number > 0, got -1"),
        ("gpu(memory=4)", "unknown argument(s) memory; use count=, min_memory_gb="),
        ("gpu(1, 2)", "takes at most one positional argument, the GPU count"),
    ],
)
def test_simulated_bad_gpu_marker_fails_that_test_clearly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, marker: str, message: str
) -> None:
    simulate(monkeypatch, [79.0])
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(test_bad=f"import pytest\n@pytest.mark.{marker}\ndef test_x():\n    pass\n")
    result = pytester.runpytest("--mltest-tier=integration")
    result.assert_outcomes(errors=1)
    assert f"mltest: bad @pytest.mark.gpu on test_bad.py::test_x: {message}" in result.stdout.str()


# ------------------------------------------------------------------ pure logic


def test_requirement_from_marker_args() -> None:
    assert GpuRequirement.from_marker_args((), {}) == GpuRequirement(1, None)
    assert GpuRequirement.from_marker_args((2,), {"min_memory_gb": 16}) == GpuRequirement(2, 16.0)
    assert str(GpuRequirement(2, 16.0)) == "2 GPUs with 16 GiB free each"


def test_unmet_reason_checks_the_first_count_devices() -> None:
    mems = {0: 10.0, 1: 70.0}

    def memory_of(i: int) -> DeviceMemory:
        return DeviceMemory(i, "A100", int(mems[i] * GIB), 80 * GIB)

    assert unmet_reason(GpuRequirement(1, 8), 2, memory_of) is None
    reason = unmet_reason(GpuRequirement(1, 40), 2, memory_of)
    assert reason == "needs 1 GPU with 40 GiB free each: GPU 0 (A100) has 10.0 of 80.0 GiB free"
    assert unmet_reason(GpuRequirement(3), 2, memory_of) == "needs 3 GPUs, 2 visible"


@pytest.mark.parametrize(
    ("cvd", "count", "tokens"),
    [
        (None, 2, ["0", "1"]),
        ("2,3", 2, ["2", "3"]),
        ("GPU-aaaa,GPU-bbbb", 2, ["GPU-aaaa", "GPU-bbbb"]),
        ("", 0, []),
        ("1,-1,2", 1, ["1"]),
        ("4,5,6", 2, ["4", "5"]),
    ],
)
def test_visible_tokens_respect_the_callers_cuda_visible_devices(
    monkeypatch: pytest.MonkeyPatch, cvd: str | None, count: int, tokens: list[str]
) -> None:
    monkeypatch.setattr(gpu, "device_count", lambda environ=None: count)
    environ = {} if cvd is None else {"CUDA_VISIBLE_DEVICES": cvd}
    assert gpu.visible_tokens(environ) == tokens


def test_device_count_is_zero_on_this_cpu_machine() -> None:
    """Real probe, no simulation: torch is installed (CPU build) and reports no CUDA device."""
    assert gpu.device_count({}) == 0
