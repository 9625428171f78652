"""The plugin's recording path, in-process (fast): the record fixture, outcomes, simulated CUDA memory."""

from __future__ import annotations

import pytest

from mltest.harness import gpu
from mltest.store import open_store


def _project(pytester: pytest.Pytester, body: str) -> str:
    url = f"sqlite:///{pytester.path / 'results.db'}"
    pytester.makepyprojecttoml(f'[tool.mltest]\nstore_url = "{url}"\n')
    pytester.makepyfile(test_suite=body)
    return url


def test_outcomes_and_measurements_are_recorded(pytester: pytest.Pytester) -> None:
    url = _project(
        pytester,
        """
import pytest

def test_pass(record):
    record("loss", 0.25)
    record("loss", 0.35)

def test_fail():
    assert False

@pytest.fixture
def broken():
    raise RuntimeError("no data")

def test_error(broken):
    pass

@pytest.mark.skip(reason="later")
def test_skip():
    pass

@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False
""",
    )
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1, errors=1, skipped=1, xfailed=1)
    result.stdout.fnmatch_lines(["recorded run * at * (*): 5 test results, 1 measurements -> sqlite:///*"])
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "failed"
        assert run.tier == "unit"
        outcomes = {r.test.split("::")[1]: r.outcome for r in store.results(run.run_id)}
        assert outcomes == {
            "test_pass": "passed",
            "test_fail": "failed",
            "test_error": "error",
            "test_skip": "skipped",
            "test_xfail": "xfailed",
        }
        (loss,) = store.run_measurements(run.run_id)
        assert (loss.metric, loss.value, loss.samples, loss.higher_is_better) == ("loss", 0.3, (0.25, 0.35), False)
    finally:
        store.close()


def test_record_refuses_nan_in_the_test(pytester: pytest.Pytester) -> None:
    _project(pytester, "def test_nan(record):\n    record('accuracy', float('nan'))\n")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*RecordError: record('accuracy'): the value is NaN; record only finite numbers"])


def test_configured_metric_conflict_is_refused(pytester: pytest.Pytester) -> None:
    url = f"sqlite:///{pytester.path / 'results.db'}"
    pytester.makepyprojecttoml(f'[tool.mltest]\nstore_url = "{url}"\n[tool.mltest.metrics.latency]\nunit = "ms"\n')
    pytester.makepyfile(test_suite="def test_l(record):\n    record('latency', 3.0, unit='s')\n")
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*record('latency'): unit 's' conflicts with the configured unit 'ms'"])


def test_simulated_cuda_peak_memory_is_recorded_for_integration_tests(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulates one CUDA device and its peak-memory counters inside this process."""
    resets: list[int] = []
    monkeypatch.setattr(gpu, "device_count", lambda environ=None: 1)
    monkeypatch.setattr(gpu, "peak_memory_reset", lambda: resets.append(1))
    monkeypatch.setattr(gpu, "peak_memory", lambda: (3 * 2**30, 4 * 2**30))
    url = _project(
        pytester,
        "import pytest\n@pytest.mark.integration\ndef test_gpu_train():\n    pass\ndef test_unit():\n    pass\n",
    )
    pytester.runpytest("--mltest-tier=all").assert_outcomes(passed=2)
    assert resets == [1]  # reset before the integration test only
    store = open_store(url)
    try:
        (run,) = store.runs()
        measured = {(m.test.split("::")[1], m.metric): m.value for m in store.run_measurements(run.run_id)}
    finally:
        store.close()
    assert measured == {
        ("test_gpu_train", "gpu_memory_peak_allocated"): float(3 * 2**30),
        ("test_gpu_train", "gpu_memory_peak_reserved"): float(4 * 2**30),
    }


def test_no_cuda_no_memory_metrics(pytester: pytest.Pytester) -> None:
    url = _project(pytester, "import pytest\n@pytest.mark.integration\ndef test_t():\n    pass\n")
    pytester.runpytest("--mltest-tier=integration", "--mltest-device=cpu").assert_outcomes(passed=1)
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert store.run_measurements(run.run_id) == []
    finally:
        store.close()
