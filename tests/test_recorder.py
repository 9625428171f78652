"""Tests of mltest/recorder.py: Record (values, samples, direction, timing, throughput, memory), the run
journal (RunRecorder, recover_spool, reap_dead_runs) and the ``mltest.recording`` context manager."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from gitrepo import git

import mltest
import mltest.recorder as recorder_module
from mltest.errors import RecordError, StoreError
from mltest.model import Commit, Environment, Measurement, MetricSpec, Run, TestResult
from mltest.recorder import (
    NoisyTimingWarning,
    Record,
    RunRecorder,
    TimingStats,
    infer_direction,
    read_journal,
    reap_dead_runs,
    recover_spool,
    replay_journal,
    spool_path,
)
from mltest.store import Store, open_store
from mltest.store.memory import MemoryStore

QUIET_TIMING = pytest.mark.filterwarnings("ignore::mltest.recorder.NoisyTimingWarning")


# ----------------------------------------------------------------------------- helpers


def make_record(specs: dict[str, MetricSpec] | None = None) -> tuple[Record, list[Measurement]]:
    emitted: list[Measurement] = []
    return Record("tests/test_x.py::test_y", emitted.append, specs), emitted


def only(measurements: Sequence[Measurement], metric: str) -> Measurement:
    found = [m for m in measurements if m.metric == metric]
    assert len(found) == 1, f"{metric}: {found}"
    return found[0]


def inclusive_iqr(samples: Sequence[float]) -> float:
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[2] - q[0]


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ----------------------------------------------------------------------------- record(name, value)


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, "abc", None, 1 + 2j, np.float64("nan"), torch.tensor(float("inf"))],
    ids=["nan", "+inf", "-inf", "str", "None", "complex", "np-nan", "torch-inf"],
)
def test_non_finite_or_non_numeric_values_are_refused_naming_the_metric(value: object) -> None:
    record, emitted = make_record()
    with pytest.raises(RecordError, match="val_accuracy"):
        record("val_accuracy", value)  # type: ignore[arg-type]
    assert record.flush() == []
    assert emitted == []


@pytest.mark.parametrize("value", ["0.5", b"1.0", True], ids=["numeric-str", "bytes", "bool"])
def test_strings_bytes_and_bools_are_refused_even_when_float_parses_them(value: object) -> None:
    record, _ = make_record()
    with pytest.raises(RecordError, match="'m'"):
        record("m", value)  # type: ignore[arg-type]


def test_numpy_and_torch_scalars_are_accepted_as_floats() -> None:
    record, emitted = make_record()
    record("np_metric", np.float64(0.25))
    record("np32_metric", np.float32(0.5))
    record("torch_metric", torch.tensor(0.75))
    record("int_metric", 3)
    record.flush()
    values = {m.metric: m.value for m in emitted}
    assert values == {"np_metric": 0.25, "np32_metric": 0.5, "torch_metric": 0.75, "int_metric": 3.0}
    assert all(type(m.value) is float for m in emitted)
    assert all(type(s) is float for m in emitted for s in m.samples)


def test_an_empty_metric_name_is_refused() -> None:
    record, _ = make_record()
    with pytest.raises(RecordError):
        record("", 1.0)
    with pytest.raises(RecordError):
        record("   ", 1.0)


# ----------------------------------------------------------------------------- samples


def test_recording_a_metric_again_adds_a_sample_and_the_value_is_the_median() -> None:
    record, emitted = make_record()
    for v in (3.0, 1.0, 2.0, 10.0, 4.0):
        record("loss", v, "nats")
    record.flush()
    (m,) = emitted
    assert m.metric == "loss"
    assert m.test == "tests/test_x.py::test_y"
    assert m.samples == (3.0, 1.0, 2.0, 10.0, 4.0)
    assert m.value == 3.0
    assert m.unit == "nats"
    assert m.higher_is_better is False
    assert m.iqr == pytest.approx(inclusive_iqr(m.samples))
    assert m.iqr > 0


def test_an_even_number_of_samples_has_the_middle_mean_as_median() -> None:
    record, emitted = make_record()
    record("accuracy", 0.8)
    record("accuracy", 0.9)
    record.flush()
    assert emitted[0].value == pytest.approx(0.85)
    assert emitted[0].iqr == pytest.approx(inclusive_iqr([0.8, 0.9]))


def test_a_single_sample_has_no_iqr() -> None:
    record, emitted = make_record()
    record("accuracy", 0.9)
    record.flush()
    assert emitted[0].samples == (0.9,)
    assert emitted[0].value == 0.9
    assert emitted[0].iqr is None


def test_a_conflicting_unit_is_refused_naming_the_metric() -> None:
    record, emitted = make_record()
    record("latency", 1.0, "ms")
    with pytest.raises(RecordError, match="'latency'"):
        record("latency", 0.001, "s")
    record.flush()
    assert emitted[0].samples == (1.0,)
    assert emitted[0].unit == "ms"


def test_a_conflicting_direction_is_refused_naming_the_metric() -> None:
    record, emitted = make_record()
    record("custom", 1.0, higher_is_better=True)
    with pytest.raises(RecordError, match="'custom'"):
        record("custom", 2.0, higher_is_better=False)
    record.flush()
    assert emitted[0].samples == (1.0,)
    assert emitted[0].higher_is_better is True


# ----------------------------------------------------------------------------- direction


def test_an_explicit_direction_wins_over_inference() -> None:
    record, emitted = make_record()
    record("loss", 1.0, higher_is_better=True)
    record("accuracy", 0.5, higher_is_better=False)
    record.flush()
    assert only(emitted, "loss").higher_is_better is True
    assert only(emitted, "accuracy").higher_is_better is False


def test_the_configured_metric_spec_wins_over_inference() -> None:
    specs = {
        "loss": MetricSpec("loss", unit="nats", higher_is_better=True),
        "reward": MetricSpec("reward", higher_is_better=False),
        "accuracy": MetricSpec("accuracy", unit="%"),
    }
    record, emitted = make_record(specs)
    record("loss", 1.0)
    record("reward", 2.0)
    record("accuracy", 90.0)
    record.flush()
    loss, reward, accuracy = only(emitted, "loss"), only(emitted, "reward"), only(emitted, "accuracy")
    assert (loss.unit, loss.higher_is_better) == ("nats", True)
    assert (reward.unit, reward.higher_is_better) == (None, False)
    assert (accuracy.unit, accuracy.higher_is_better) == ("%", True)  # unit from config, direction inferred


def test_an_explicit_unit_equal_to_the_configured_one_is_fine() -> None:
    record, emitted = make_record({"loss": MetricSpec("loss", unit="nats")})
    record("loss", 1.0, "nats")
    record("loss", 2.0)
    record.flush()
    assert emitted[0].unit == "nats"
    assert emitted[0].samples == (1.0, 2.0)


def test_a_unit_conflicting_with_the_configured_unit_is_refused() -> None:
    record, emitted = make_record({"loss": MetricSpec("loss", unit="nats")})
    with pytest.raises(RecordError, match="'loss'"):
        record("loss", 1.0, "bits")
    assert record.flush() == []
    assert emitted == []


def test_a_direction_conflicting_with_the_configured_direction_is_refused() -> None:
    record, _ = make_record({"reward": MetricSpec("reward", higher_is_better=True)})
    with pytest.raises(RecordError, match="'reward'"):
        record("reward", 1.0, higher_is_better=False)
    assert record.flush() == []


@pytest.mark.parametrize(
    ("name", "unit", "expected"),
    [
        ("step_time", None, False),
        ("latency_ms", None, False),
        ("peak_memory", None, False),
        ("loss", None, False),
        ("val_error", None, False),
        ("perplexity", None, False),
        ("Train-Loss", None, False),
        ("accuracy", None, True),
        ("top1_acc", None, True),
        ("f1", None, True),
        ("throughput", None, True),
        ("samples_per_s", None, True),
        ("speed", "items/s", True),
        ("foo", None, None),
        ("foo", "ms", False),
        ("foo", "MiB", False),
        ("foo", "widgets", None),
    ],
)
def test_infer_direction(name: str, unit: str | None, expected: bool | None) -> None:
    assert infer_direction(name, unit) is expected


@pytest.mark.parametrize("name", ["time_per_sample", "loss_per_step", "latency_per_sequence"])
def test_infer_direction_per_s_only_matches_a_rate_suffix(name: str) -> None:
    assert infer_direction(name) is False


def test_an_unknown_direction_is_stored_as_none() -> None:
    record, emitted = make_record()
    record("foo", 1.0)
    record.flush()
    assert emitted[0].higher_is_better is None


# ----------------------------------------------------------------------------- support


def test_support_is_stored() -> None:
    record, emitted = make_record()
    record("accuracy", 0.9, support=1000)
    record.flush()
    assert emitted[0].support == 1000


@pytest.mark.parametrize("support", [0, -3, 1.5, "10", True, None], ids=["0", "neg", "float", "str", "bool", "none"])
def test_support_must_be_a_whole_number_at_least_one(support: object) -> None:
    record, _ = make_record()
    if support is None:
        record("accuracy", 0.9, support=None)  # None means unknown: fine
        return
    with pytest.raises(RecordError, match="'accuracy'"):
        record("accuracy", 0.9, support=support)  # type: ignore[arg-type]


def test_a_call_refused_for_its_support_records_nothing() -> None:
    record, _ = make_record()
    with pytest.raises(RecordError):
        record("accuracy", 0.9, support=0)
    assert record.flush() == []


# ----------------------------------------------------------------------------- record.time


def counting(fn: Callable[[], object] = lambda: None) -> tuple[Callable[[], None], list[int]]:
    calls = [0]

    def wrapped() -> None:
        calls[0] += 1
        fn()

    return wrapped, calls


@QUIET_TIMING
def test_time_calls_fn_warmup_plus_repeat_times() -> None:
    record, emitted = make_record()
    fn, calls = counting()
    stats = record.time(fn, warmup=3, repeat=7)
    assert calls[0] == 10
    assert stats.n == 7 == len(stats.samples)
    record.flush()
    (m,) = emitted
    assert m.metric == "step_time"
    assert m.unit == "s"
    assert m.higher_is_better is False
    assert m.samples == stats.samples


@QUIET_TIMING
def test_time_defaults_to_two_warmup_and_ten_timed_calls() -> None:
    record, _ = make_record()
    fn, calls = counting()
    stats = record.time(fn)
    assert calls[0] == 12
    assert stats.n == 10


@QUIET_TIMING
def test_time_keeps_going_until_min_time() -> None:
    record, _ = make_record()
    fn, calls = counting(lambda: time.sleep(0.002))
    stats = record.time(fn, warmup=1, repeat=2, min_time=0.05)
    assert sum(stats.samples) >= 0.05
    assert calls[0] == 1 + stats.n
    assert stats.n >= 2
    if stats.n > 2:
        # it stops once min_time is reached: without the last sample the total is below it
        assert sum(stats.samples[:-1]) < 0.05


@QUIET_TIMING
def test_time_stats_are_consistent_with_the_samples() -> None:
    record, _ = make_record()
    stats = record.time(lambda: time.sleep(0.001), warmup=0, repeat=8)
    assert isinstance(stats, TimingStats)
    assert stats.n == len(stats.samples) == 8
    assert all(s >= 0.001 for s in stats.samples)
    assert stats.median == statistics.median(stats.samples)
    assert stats.iqr == pytest.approx(inclusive_iqr(stats.samples))
    assert stats.mean == pytest.approx(statistics.fmean(stats.samples))
    assert stats.min == min(stats.samples)
    assert stats.relative_iqr == pytest.approx(stats.iqr / stats.median)


@QUIET_TIMING
def test_time_with_a_name_and_twice_accumulates_samples() -> None:
    record, emitted = make_record()
    first = record.time(lambda: None, warmup=0, repeat=3, name="forward_time")
    second = record.time(lambda: None, warmup=0, repeat=4, name="forward_time")
    record.flush()
    (m,) = emitted
    assert m.metric == "forward_time"
    assert m.samples == first.samples + second.samples
    assert m.value == statistics.median(m.samples)
    assert (m.unit, m.higher_is_better) == ("s", False)


def test_noisy_timing_warns() -> None:
    record, emitted = make_record()
    toggle = [0]

    def noisy() -> None:
        toggle[0] += 1
        time.sleep(0.001 if toggle[0] % 2 else 0.005)

    with pytest.warns(NoisyTimingWarning, match="step_time"):
        stats = record.time(noisy, warmup=0, repeat=10)
    assert stats.relative_iqr > 0.1
    record.flush()
    assert len(emitted[0].samples) == 10  # still recorded


@pytest.mark.parametrize(
    "kwargs",
    [{"repeat": 0}, {"repeat": -1}, {"warmup": -1}, {"min_time": -0.5}],
    ids=["repeat0", "repeat-neg", "warmup-neg", "min_time-neg"],
)
def test_time_refuses_bad_arguments_without_calling_fn(kwargs: dict[str, float]) -> None:
    record, _ = make_record()
    fn, calls = counting()
    with pytest.raises(RecordError):
        record.time(fn, **kwargs)  # type: ignore[arg-type]
    assert calls[0] == 0
    assert record.flush() == []


# ----------------------------------------------------------------------------- throughput


def test_throughput_records_items_per_second() -> None:
    record, emitted = make_record()
    assert record.throughput(1000, 2.0) == 500
    record.flush()
    (m,) = emitted
    assert (m.metric, m.value, m.unit, m.higher_is_better) == ("throughput", 500.0, "items/s", True)


def test_throughput_with_name_and_unit() -> None:
    record, emitted = make_record()
    assert record.throughput(64, 0.5, name="tokens_per_s", unit="tokens/s") == 128.0
    record.flush()
    assert (emitted[0].metric, emitted[0].unit, emitted[0].higher_is_better) == ("tokens_per_s", "tokens/s", True)


@pytest.mark.parametrize("seconds", [0, 0.0, -1.0, math.nan, math.inf])
def test_throughput_refuses_non_positive_or_non_finite_seconds(seconds: float) -> None:
    record, _ = make_record()
    with pytest.raises(RecordError, match="throughput"):
        record.throughput(1000, seconds)
    assert record.flush() == []


# ----------------------------------------------------------------------------- memory


def test_memory_on_cpu_records_rss_in_bytes() -> None:
    record, emitted = make_record()
    with record.memory():
        pass
    record.flush()
    (m,) = emitted
    assert m.metric == "peak_memory_rss"
    assert m.unit == "bytes"
    assert m.higher_is_better is False
    assert m.value > 0


def test_memory_sees_a_50_mb_allocation() -> None:
    record, emitted = make_record()
    size = 50 * 1024 * 1024
    baseline = rss_bytes()
    with record.memory(name="block"):
        buffer = bytearray(size)
        buffer[::4096] = b"\x01" * len(range(0, size, 4096))  # touch every page
        time.sleep(0.03)  # a few sampler periods
    del buffer
    record.flush()
    m = only(emitted, "block_rss")
    assert m.value >= baseline + 40 * 1024 * 1024


# ----------------------------------------------------------------------------- flush


def test_flush_emits_each_metric_once_and_clears() -> None:
    record, emitted = make_record()
    record("accuracy", 0.9)
    record("accuracy", 0.8)
    record("loss", 0.1)
    done = record.flush()
    assert sorted(m.metric for m in emitted) == ["accuracy", "loss"]
    assert done == emitted
    assert record.measurements() == []
    assert record.flush() == []
    assert len(emitted) == 2
    record("loss", 0.2)  # a fresh start after a flush: no conflict with the old samples
    record.flush()
    assert emitted[-1].samples == (0.2,)


# ----------------------------------------------------------------------------- the run journal


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (pid reuse within a test run is not a practical concern)."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(proc.stdout)


def make_run(run_id: str = "run1", *, pid: int | None = None, hostname: str | None = None) -> Run:
    return Run(
        run_id=run_id,
        project="demo",
        tier="unit",
        commit=Commit("a" * 40, branch="main", parents=("b" * 40,), ancestry=("b" * 40, "c" * 40)),
        environment=Environment(
            python="3.11.0",
            platform="linux-x86_64",
            hostname="box",
            cpu_model="cpu",
            cpu_count=4,
            mltest_version="0.1.0",
            flags=(("seed", "0"),),
        ),
        started_at="2024-01-01T00:00:00.000000+00:00",
        hostname=socket.gethostname() if hostname is None else hostname,
        pid=os.getpid() if pid is None else pid,
    )


def measurement(test: str, metric: str = "accuracy", value: float = 0.9) -> Measurement:
    return Measurement(test, metric, value, None, True, (value,), None, 100)


def journal_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class FailingStore(MemoryStore):
    """A store whose writes of results fail (the database went away mid-run)."""

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        raise StoreError("recording results failed on memory://: the database is gone")


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    opened = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'results.db'}")
    yield opened
    opened.close()


def test_run_recorder_begin_writes_the_run_and_a_journal(tmp_path: Path) -> None:
    store = MemoryStore()
    spool = tmp_path / "spool"
    recorder = RunRecorder(store, make_run(), spool)
    recorder.begin()
    try:
        assert recorder.journal_path == spool / "run1.jsonl"
        assert recorder.journal_path.is_file()
        (first,) = journal_lines(recorder.journal_path)
        assert first["type"] == "run"
        assert first["run"]["run_id"] == "run1"  # type: ignore[index]
        stored = store.get_run("run1")
        assert stored is not None
        assert stored.status == "running"
    finally:
        recorder.finish("passed")


def test_measurements_not_yet_due_reach_the_store_without_waiting_for_another_test(
    store: Store, tmp_path: Path
) -> None:
    """A measured test that ends right after a store write is not held back until the next test ends:
    that test may hang and the runner die with the journal (an ephemeral CI machine)."""
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_seconds=3600, flush_measured_seconds=0.2)
    recorder.begin()
    try:
        recorder.add_test(TestResult("t::a", "passed", 0.1), [measurement("t::a")])  # 0.2 s since the write of
        recorder.add_test(TestResult("t::b", "passed", 0.1), [measurement("t::b")])  # the run are not yet gone
        assert store.run_measurements("run1") == []
        deadline = time.monotonic() + 5
        while len(store.run_measurements("run1")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [m.test for m in store.run_measurements("run1")] == ["t::a", "t::b"]  # no further add_test
        assert recorder.store_errors == []
    finally:
        recorder.finish("passed")
    assert [r.test for r in store.results("run1")] == ["t::a", "t::b"]


def test_finishing_cancels_the_pending_timed_flush(tmp_path: Path) -> None:
    store = MemoryStore()
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_seconds=3600, flush_measured_seconds=30)
    recorder.begin()
    recorder.add_test(TestResult("t::a", "passed", 0.1), [measurement("t::a")])
    recorder.add_test(TestResult("t::b", "passed", 0.1), [measurement("t::b")])
    timer = recorder._timer
    assert timer is not None
    recorder.finish("passed")
    timer.join(1)
    assert not timer.is_alive()
    assert [m.test for m in store.run_measurements("run1")] == ["t::a", "t::b"]


def test_run_recorder_journals_each_test_and_finish_cleans_up(tmp_path: Path) -> None:
    store = MemoryStore()
    recorder = RunRecorder(store, make_run(), tmp_path / "spool", flush_seconds=3600, flush_measured_seconds=0)
    recorder.begin()
    recorder.add_test(TestResult("t::a", "passed", 0.1))
    recorder.add_test(TestResult("t::b", "failed", 0.2), [measurement("t::b"), measurement("t::b", "loss", 0.3)])
    lines = journal_lines(recorder.journal_path)
    assert [e["type"] for e in lines] == ["run", "test", "test"]
    assert lines[1]["result"]["test"] == "t::a"  # type: ignore[index]
    assert lines[1]["measurements"] == []
    assert [m["metric"] for m in lines[2]["measurements"]] == ["accuracy", "loss"]  # type: ignore[attr-defined]
    assert (recorder.tests, recorder.measurement_count) == (2, 2)
    # a test with measurements is sent at once (together with the pending one before it)
    assert [r.test for r in store.results("run1")] == ["t::a", "t::b"]

    recorder.add_test(TestResult("t::c", "passed", 0.1))
    recorder.finish("failed")
    assert not recorder.journal_path.exists()
    run = store.get_run("run1")
    assert run is not None
    assert run.status == "failed"
    assert run.finished_at is not None
    assert [r.test for r in store.results("run1")] == ["t::a", "t::b", "t::c"]
    assert {(m.test, m.metric) for m in store.run_measurements("run1")} == {("t::b", "accuracy"), ("t::b", "loss")}
    assert recorder.store_errors == []


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    def add_results(self, run_id: str, results: Sequence[TestResult], measurements: Sequence[Measurement]) -> None:
        self.transactions += 1
        super().add_results(run_id, results, measurements)


def test_fast_tests_are_sent_in_batches_and_measurements_within_a_tenth_of_a_second(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(recorder_module.time, "monotonic", lambda: clock[0])
    store = CountingStore()
    recorder = RunRecorder(store, make_run(), tmp_path / "spool")
    recorder.begin()
    for i in range(300):  # 300 plain tests in 0.3 s: no transaction yet
        clock[0] += 0.001
        recorder.add_test(TestResult(f"t::p{i}", "passed", 0.001))
    assert store.transactions == 0
    clock[0] += 0.75  # over a second since the last flush
    recorder.add_test(TestResult("t::late", "passed", 0.001))
    assert store.transactions == 1
    assert len(store.results("run1")) == 301
    # measured tests: sent once a tenth of a second has passed, with what is pending
    recorder.add_test(TestResult("t::m1", "passed", 0.01), [measurement("t::m1")])
    assert store.transactions == 1
    clock[0] += 0.11
    recorder.add_test(TestResult("t::m2", "passed", 0.01), [measurement("t::m2")])
    assert store.transactions == 2
    assert {m.test for m in store.run_measurements("run1")} == {"t::m1", "t::m2"}
    # flush_max bounds a batch however fast the tests are
    for i in range(500):
        recorder.add_test(TestResult(f"t::q{i}", "passed", 0.0))
    assert store.transactions == 3
    recorder.finish("passed")
    assert len(store.results("run1")) == 803


def test_a_failing_store_keeps_everything_in_the_journal(tmp_path: Path, dead_pid: int) -> None:
    spool = tmp_path / "spool"
    failing = FailingStore()
    recorder = RunRecorder(failing, make_run(pid=dead_pid), spool, flush_measured_seconds=0)
    recorder.begin()
    recorder.add_test(TestResult("t::a", "passed", 0.1), [measurement("t::a")])  # must not raise
    assert len(recorder.store_errors) == 1
    assert "database is gone" in recorder.store_errors[0]
    assert failing.results("run1") == []
    try:
        with pytest.raises(StoreError):
            recorder.finish("passed")
        assert recorder.journal_path.is_file()
        assert [e["type"] for e in journal_lines(recorder.journal_path)] == ["run", "test", "finish"]
    finally:
        recorder._journal.close()  # finish() raised before closing it

    # a later process replays it into a working store, with the status finish() meant to write
    good = MemoryStore()
    assert recover_spool(good, spool) == ["run1"]
    run = good.get_run("run1")
    assert run is not None
    assert run.status == "passed"
    assert [r.test for r in good.results("run1")] == ["t::a"]
    assert [m.metric for m in good.run_measurements("run1")] == ["accuracy"]
    assert not recorder.journal_path.exists()


def test_finish_closes_the_journal_even_when_the_store_fails(tmp_path: Path) -> None:
    recorder = RunRecorder(FailingStore(), make_run(), tmp_path / "spool")
    recorder.begin()
    recorder.add_test(TestResult("t::a", "passed", 0.1))
    try:
        with pytest.raises(StoreError):
            recorder.finish("passed")
        assert recorder._journal.closed
        assert recorder.journal_path.is_file()  # kept for a replay
    finally:
        recorder._journal.close()


def test_a_recorder_without_its_journal_stores_what_another_process_journals(tmp_path: Path) -> None:
    """The store writer's recorder: the session appends the journal; this one only stores and, once the
    run is whole in the store, removes the journal."""
    store = MemoryStore()
    spool = tmp_path / "spool"
    recorder = RunRecorder(store, make_run(), spool, journal=False)
    recorder.begin()
    assert not spool.exists()  # nothing written here
    assert store.get_run("run1") is not None
    spool.mkdir()
    recorder.journal_path.write_text("the session's journal\n", encoding="utf-8")
    recorder.add_test(TestResult("t::a", "passed", 0.1))
    assert recorder.pending == 1
    recorder.flush()
    assert recorder.pending == 0
    recorder.finish("passed", "2024-01-01T01:00:00.000000+00:00")  # the session's time, from its journal
    run = store.get_run("run1")
    assert run is not None
    assert (run.status, run.finished_at) == ("passed", "2024-01-01T01:00:00.000000+00:00")
    assert [r.test for r in store.results("run1")] == ["t::a"]
    assert not recorder.journal_path.exists()


def test_read_and_replay_a_journal(tmp_path: Path, store: Store, dead_pid: int) -> None:
    path = write_journal(tmp_path / "spool", make_run("j", pid=dead_pid), tests=2, finish="passed", cut_last=True)
    entries = read_journal(path)
    assert [e["type"] for e in entries] == ["run", "test", "test"]  # the cut finish line is left out
    assert replay_journal(store, entries) == "j"
    status, _, results, _ = stored_state(store, "j")
    assert status == "aborted"  # no whole finish line
    assert len(results) == 2  # type: ignore[arg-type]
    assert read_journal(tmp_path / "missing.jsonl") == []
    assert replay_journal(store, []) is None
    assert spool_path(tmp_path) == tmp_path / ".mltest" / "spool"


def write_journal(spool: Path, run: Run, tests: int, *, finish: str | None = None, cut_last: bool = False) -> Path:
    spool.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, object]] = [{"type": "run", "run": dataclasses.asdict(run)}]
    for i in range(tests):
        result = TestResult(f"t::test_{i}", "passed", 0.01 * i)
        entries.append(
            {
                "type": "test",
                "result": dataclasses.asdict(result),
                "measurements": [dataclasses.asdict(measurement(result.test, value=i / 10))],
            }
        )
    if finish is not None:
        entries.append({"type": "finish", "status": finish, "finished_at": "2024-01-01T01:00:00.000000+00:00"})
    lines = [json.dumps(e, separators=(",", ":")) for e in entries]
    text = "".join(line + "\n" for line in lines)
    if cut_last:
        text = text[: -(len(lines[-1]) // 2 + 1)]  # a kill -9 in the middle of the last write
    path = spool / f"{run.run_id}.jsonl"
    path.write_text(text, encoding="utf-8")
    return path


def stored_state(store: Store, run_id: str) -> tuple[object, ...]:
    run = store.get_run(run_id)
    assert run is not None
    return (
        run.status,
        run.finished_at,
        [(r.test, r.outcome) for r in store.results(run_id)],
        [(m.test, m.metric, m.value, m.samples, m.support) for m in store.run_measurements(run_id)],
    )


def test_recover_spool_replays_a_dead_run_and_marks_it_aborted(tmp_path: Path, store: Store, dead_pid: int) -> None:
    spool = tmp_path / "spool"
    path = write_journal(spool, make_run("dead", pid=dead_pid), tests=3)
    assert recover_spool(store, spool) == ["dead"]
    assert not path.exists()
    status, finished_at, results, measurements = stored_state(store, "dead")
    assert status == "aborted"
    assert finished_at is not None
    assert results == [(f"t::test_{i}", "passed") for i in range(3)]
    assert [(m[0], m[2]) for m in measurements] == [(f"t::test_{i}", i / 10) for i in range(3)]  # type: ignore[index]
    run = store.get_run("dead")
    assert run is not None
    assert run.commit.sha == "a" * 40
    assert run.environment.flags == (("seed", "0"),)


def test_recover_spool_uses_the_journals_finish_status(tmp_path: Path, store: Store, dead_pid: int) -> None:
    spool = tmp_path / "spool"
    write_journal(spool, make_run("done", pid=dead_pid), tests=2, finish="failed")
    assert recover_spool(store, spool) == ["done"]
    status, finished_at, results, _ = stored_state(store, "done")
    assert status == "failed"
    assert finished_at == "2024-01-01T01:00:00.000000+00:00"
    assert len(results) == 2  # type: ignore[arg-type]


def test_recover_spool_is_idempotent(tmp_path: Path, store: Store, dead_pid: int) -> None:
    spool = tmp_path / "spool"
    run = make_run("dead", pid=dead_pid)
    write_journal(spool, run, tests=2)
    assert recover_spool(store, spool) == ["dead"]
    before = stored_state(store, "dead")
    assert recover_spool(store, spool) == []  # nothing left to replay
    assert stored_state(store, "dead") == before
    write_journal(spool, run, tests=2)  # the same journal again (a replay that died before the unlink)
    assert recover_spool(store, spool) == ["dead"]
    assert stored_state(store, "dead") == before
    assert len(store.runs()) == 1


def test_recover_spool_replays_a_cut_journal_up_to_the_last_whole_line(
    tmp_path: Path, store: Store, dead_pid: int
) -> None:
    spool = tmp_path / "spool"
    path = write_journal(spool, make_run("cut", pid=dead_pid), tests=4, cut_last=True)
    assert not path.read_text(encoding="utf-8").endswith("\n")
    assert recover_spool(store, spool) == ["cut"]
    status, _, results, measurements = stored_state(store, "cut")
    assert status == "aborted"
    assert results == [(f"t::test_{i}", "passed") for i in range(3)]
    assert len(measurements) == 3  # type: ignore[arg-type]
    assert not path.exists()


def test_recover_spool_leaves_a_live_run_alone(tmp_path: Path) -> None:
    store = MemoryStore()
    spool = tmp_path / "spool"
    path = write_journal(spool, make_run("live", pid=os.getpid()), tests=2)
    assert recover_spool(store, spool) == []
    assert path.is_file()
    assert store.runs() == []


def test_recover_spool_leaves_another_hosts_run_alone(tmp_path: Path, dead_pid: int) -> None:
    store = MemoryStore()
    spool = tmp_path / "spool"
    path = write_journal(spool, make_run("remote", pid=dead_pid, hostname="another-host.invalid"), tests=1)
    assert recover_spool(store, spool) == []
    assert path.is_file()


def test_recover_spool_without_a_spool_dir(tmp_path: Path) -> None:
    assert recover_spool(MemoryStore(), tmp_path / "missing") == []


def test_reap_dead_runs_aborts_only_dead_local_runs(dead_pid: int) -> None:
    store = MemoryStore()
    store.begin_run(make_run("dead", pid=dead_pid))
    store.begin_run(make_run("live", pid=os.getpid()))
    store.begin_run(make_run("remote", pid=dead_pid, hostname="another-host.invalid"))
    store.begin_run(make_run("done", pid=dead_pid))
    store.finish_run("done", "passed", "2024-01-01T02:00:00+00:00")
    assert reap_dead_runs(store) == ["dead"]
    statuses = {r.run_id: r.status for r in store.runs()}
    assert statuses == {"dead": "aborted", "live": "running", "remote": "running", "done": "passed"}


# ----------------------------------------------------------------------------- mltest.recording


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """A git project with [tool.mltest] whose store is a SQLite file in tmp_path; returns (root, store URL)."""
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    root = tmp_path / "proj"
    root.mkdir()
    url = f"sqlite:///{tmp_path / 'store' / 'results.db'}"
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "demo"\n\n[tool.mltest]\nstore_url = "{url}"\n\n'
        "[tool.mltest.metrics.reward]\nhigher_is_better = true\n",
        encoding="utf-8",
    )
    git(root, "init", "-q")
    git(root, "add", "pyproject.toml")
    git(root, "commit", "-q", "-m", "first")
    return root, url


def test_recording_writes_one_passed_run(project: tuple[Path, str]) -> None:
    root, url = project
    with mltest.recording("train.py::nightly", project_dir=root) as record:
        record("accuracy", 0.93, support=500)
        record("reward", 1.5)
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "passed"
        assert run.finished_at is not None
        assert run.tier == "integration"
        assert run.project == "proj"
        assert run.commit.sha == git(root, "rev-parse", "HEAD")
        assert run.commit.subject == "first"
        (result,) = store.results(run.run_id)
        assert (result.test, result.outcome) == ("train.py::nightly", "passed")
        found = {m.metric: m for m in store.run_measurements(run.run_id)}
        assert set(found) == {"accuracy", "reward"}
        assert (found["accuracy"].value, found["accuracy"].support, found["accuracy"].higher_is_better) == (
            0.93,
            500,
            True,
        )
        assert found["reward"].higher_is_better is True  # from [tool.mltest.metrics.reward]
    finally:
        store.close()
    assert list((root / ".mltest" / "spool").glob("*.jsonl")) == []


def test_recording_marks_the_run_failed_when_the_block_raises(project: tuple[Path, str]) -> None:
    root, url = project

    def train() -> None:
        with mltest.recording(project_dir=root) as record:
            record("loss", 12.0)
            raise RuntimeError("training diverged")

    with pytest.raises(RuntimeError, match="diverged"):
        train()
    store = open_store(url)
    try:
        (run,) = store.runs()
        assert run.status == "failed"
        (result,) = store.results(run.run_id)
        assert (result.test, result.outcome) == ("script", "failed")
        (m,) = store.run_measurements(run.run_id)
        assert (m.metric, m.value) == ("loss", 12.0)
    finally:
        store.close()
