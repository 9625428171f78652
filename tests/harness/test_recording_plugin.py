"""The plugin's recording path: in-process runs (fast: the record fixture, outcomes, simulated CUDA memory),
then sessions in their own process, recorded through the writer process."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mltest.harness import gpu, recording, writer
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


# ----------------------------------------------------------------------------- a session in its own process
# Fresh processes, as CI runs pytest: SQLAlchemy is not imported yet, so a writer process records (an
# in-process run here records in-process: this test process has imported SQLAlchemy already).
WRITER_SUITE = """
import os, signal, pytest

def test_pass(record):
    record("loss", 0.25)

def test_fail():
    assert False

@pytest.mark.skip(reason="later")
def test_skip():
    pass
"""


@pytest.mark.integration  # a pytest process and its writer process
def test_a_session_in_its_own_process_records_through_the_writer(pytester: pytest.Pytester) -> None:
    url = _project(pytester, WRITER_SUITE)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1, failed=1, skipped=1)
    result.stdout.fnmatch_lines(["recorded run * at * (*): 3 test results, 1 measurements -> sqlite:///*"])
    assert list((pytester.path / ".mltest" / "spool").glob("*")) == []  # nothing left for `mltest sync`
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "failed"
        assert run.finished_at is not None
        assert {r.test.split("::")[1]: r.outcome for r in store.results(run.run_id)} == {
            "test_pass": "passed",
            "test_fail": "failed",
            "test_skip": "skipped",
        }
        assert [(m.metric, m.value) for m in store.run_measurements(run.run_id)] == [("loss", 0.25)]
    finally:
        store.close()


@pytest.mark.integration
def test_a_writer_that_dies_is_replaced_by_the_session_at_the_end(pytester: pytest.Pytester) -> None:
    url = _project(
        pytester,
        """
import os, signal

def test_kill_the_writer(request):
    pid = request.config.pluginmanager.get_plugin("mltest-recorder").writer_pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)

def test_after(record):
    record("accuracy", 0.5)
""",
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["recorded run * 2 test results, 1 measurements -> *"])
    assert "store error" not in result.stdout.str()
    assert list((pytester.path / ".mltest" / "spool").glob("*")) == []
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "passed"
        tests = sorted(r.test.split("::")[1] for r in store.results(run.run_id))
        assert tests == ["test_after", "test_kill_the_writer"]
        assert [m.metric for m in store.run_measurements(run.run_id)] == ["accuracy"]
    finally:
        store.close()


@pytest.mark.integration
def test_a_store_that_cannot_be_opened_stops_the_session_before_any_test(pytester: pytest.Pytester) -> None:
    (pytester.path / "results.db").mkdir()  # a directory where the database file should be
    _project(pytester, "def test_never():\n    raise AssertionError('the test ran')\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.startswith("ERROR:")]
    assert len(errors) == 1
    assert errors[0].startswith("ERROR: mltest: cannot record this run: ")
    assert errors[0].endswith("(--mltest-no-record runs without)")
    assert "the test ran" not in result.stdout.str()
    assert "no tests ran" in result.stdout.str()


@pytest.mark.integration  # a fresh interpreter
def test_loading_the_plugin_imports_no_store_and_no_heavy_library() -> None:
    """Every pytest run with mltest installed loads the plugin: it must stay light."""
    code = (
        "import sys, mltest, mltest.harness.plugin; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('sqlalchemy', 'pandas', 'numpy', 'torch', 'yaml') or m.startswith(('mltest.store', 'mltest.recorder'))))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_a_writer_that_dies_before_answering_leaves_the_recording_to_the_session(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process, with a writer process that ends at once (as one that cannot import the store would)."""

    def dead_writer(cls: type[writer.Writer], store_url: str, project_root: object) -> writer.Writer:
        quits = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        return cls(quits)

    monkeypatch.setattr(recording, "_through_writer", lambda store_url: True)
    monkeypatch.setattr(writer.Writer, "start", classmethod(dead_writer))
    url = _project(pytester, "def test_one(record):\n    record('loss', 0.5)\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["recorded run * 1 test results, 1 measurements -> *"])
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "passed"
        assert [m.metric for m in store.run_measurements(run.run_id)] == ["loss"]
    finally:
        store.close()
