"""Recording: the ``record`` object tests use, and the run recorder that writes a run into a store.

``Record`` validates and aggregates a test's metrics and hands each finished :class:`Measurement`
to an injected callable (in pytest: the xdist hand-off; it never touches the store). ``RunRecorder``
owns one run: it writes the run row when the run starts, appends every finished test to a local
journal (flushed per test, so a ``kill -9`` loses at most the test in flight), writes to the store in
batched transactions, and replays journals that a dead process left behind.

A store that cannot be reached (:class:`~mltest.errors.BackendUnavailable`: a database restart, a
dropped connection) is retried with backoff for a few seconds; writes are idempotent, so a retry
never duplicates. When it stays down, the run goes on with the journal alone (the store is tried
again after a pause, and at the end), and ``mltest sync`` sends what the journal holds later.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import socket
import statistics
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mltest.envinfo import capture_environment
from mltest.errors import BackendUnavailable, RecordError, StoreError
from mltest.gitinfo import ci_run_url, current_commit
from mltest.model import Commit, Environment, Measurement, MetricSpec, Run, RunStatus, TestResult, utc_now
from mltest.store import Store, open_store

if TYPE_CHECKING:  # the store writer imports this module, and needs no settings
    from mltest.config import Settings

__all__ = [
    "NoisyTimingWarning",
    "Record",
    "RunRecorder",
    "TimingStats",
    "infer_direction",
    "new_run_id",
    "open_recovered",
    "open_run",
    "read_journal",
    "reap_dead_runs",
    "recording",
    "recover_spool",
    "replay_journal",
    "run_from_json",
    "run_to_json",
    "spool_path",
]

NOISE_LIMIT = 0.1
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0)
"""Seconds between the tries of a store write while the store cannot be reached: 7.5 s in all, longer
than a database restart takes."""
OFFLINE_SECONDS = 30.0
"""After a write failed every try, how long the run writes only its journal before trying the store again."""

_LOWER = ("time", "latency", "duration", "seconds", "memory", "bytes", "loss", "error", "perplexity", "wer")
_HIGHER = ("accuracy", "acc", "f1", "precision", "recall", "auc", "throughput", "score", "bleu", "iou", "map")
_LOWER_UNITS = ("s", "ms", "us", "ns", "sec", "seconds", "b", "bytes", "kb", "mb", "gb", "kib", "mib", "gib")


def infer_direction(name: str, unit: str | None = None) -> bool | None:
    """Whether higher is better, inferred from the metric's name or unit; None when it cannot tell.

    Lower is better for time, latency, duration, memory, bytes, loss, error, perplexity and WER, and
    for time or size units (s, ms, bytes, MiB, ...). Higher is better for accuracy, F1, precision,
    recall, AUC, throughput, score, BLEU, IoU and mAP, and for rates (a unit ending in ``/s``).
    Configuration (``[tool.mltest.metrics.NAME] higher_is_better``) always wins over this.
    """
    words = name.lower().replace("-", "_").split("_")
    unit_text = (unit or "").strip().lower()
    if unit_text.endswith("/s") or re.search(r"(^|_)per_s(ec|econd)?$", name.lower()):
        return True
    if any(w in _HIGHER for w in words):
        return True
    if any(w in _LOWER for w in words) or unit_text in _LOWER_UNITS:
        return False
    return None


class NoisyTimingWarning(UserWarning):
    """A timing's spread (IQR / median) is above 0.1: the number is not trustworthy."""


@dataclass(frozen=True)
class TimingStats:
    median: float
    iqr: float
    n: int
    samples: tuple[float, ...]
    mean: float
    min: float

    @property
    def relative_iqr(self) -> float:
        return self.iqr / self.median if self.median > 0 else 0.0


def _iqr(samples: Sequence[float]) -> float:
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[2] - q[0]


@dataclass
class _Metric:
    unit: str | None
    higher_is_better: bool | None
    samples: list[float] = field(default_factory=list)
    support: int | None = None


def _finite(name: str, value: object) -> float:
    __tracebackhide__ = True  # a refused value fails the test at the test's own line, not in mltest
    if isinstance(value, (bool, str, bytes, bytearray)):
        raise RecordError(f"record({name!r}): the value {value!r} is not a number")
    if not isinstance(value, (int, float)):
        try:
            number = float(value)  # type: ignore[arg-type]  # numpy and torch scalars
        except (TypeError, ValueError):
            raise RecordError(f"record({name!r}): the value {value!r} is not a number") from None
    else:
        number = float(value)
    if math.isnan(number):
        raise RecordError(f"record({name!r}): the value is NaN; record only finite numbers")
    if math.isinf(number):
        raise RecordError(f"record({name!r}): the value is {number}; record only finite numbers")
    return number


def _cuda_in_use(device: Any) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if device is not None:
        return str(getattr(device, "type", device)).startswith("cuda")
    return bool(torch.cuda.is_available() and torch.cuda.is_initialized())


class Record:
    """What the ``record`` fixture gives a test. Call it to record a metric::

    record("accuracy", 0.93, support=len(test_set))
    stats = record.time(lambda: train_step(batch))
    record.throughput(len(batch), stats.median)
    with record.memory():
        model(batch)
    """

    def __init__(
        self,
        test: str,
        emit: Callable[[Measurement], None],
        specs: Mapping[str, MetricSpec] | None = None,
        device: Any = None,
    ) -> None:
        self.test = test
        self._emit = emit
        self._specs = specs or {}
        self._device = device
        self._metrics: dict[str, _Metric] = {}

    # ------------------------------------------------------------------ plain values
    def _metric(self, name: str, unit: str | None, higher_is_better: bool | None) -> _Metric:
        __tracebackhide__ = True
        if not isinstance(name, str) or not name.strip():
            raise RecordError(f"record(): the metric name must be a non-empty string, got {name!r}")
        spec = self._specs.get(name)
        if spec is not None:
            if unit is not None and spec.unit is not None and unit != spec.unit:
                raise RecordError(f"record({name!r}): unit {unit!r} conflicts with the configured unit {spec.unit!r}")
            if (
                higher_is_better is not None
                and spec.higher_is_better is not None
                and (higher_is_better != spec.higher_is_better)
            ):
                raise RecordError(
                    f"record({name!r}): higher_is_better={higher_is_better} conflicts with the configuration"
                )
            unit = unit if unit is not None else spec.unit
            if spec.higher_is_better is not None:
                higher_is_better = spec.higher_is_better
        explicit_direction = higher_is_better
        if higher_is_better is None:
            higher_is_better = infer_direction(name, unit)
        existing = self._metrics.get(name)
        if existing is None:
            existing = self._metrics[name] = _Metric(unit, higher_is_better)
            return existing
        # None means "not given": a later call may leave out what an earlier one said.
        unit = existing.unit if unit is None else unit
        if higher_is_better is None or explicit_direction is None:
            higher_is_better = existing.higher_is_better
        if existing.unit != unit:
            raise RecordError(
                f"record({name!r}): recorded with unit {existing.unit!r} and now {unit!r}; one metric has one unit"
            )
        if existing.higher_is_better != higher_is_better:
            raise RecordError(
                f"record({name!r}): recorded with higher_is_better={existing.higher_is_better} and now "
                f"{higher_is_better}; one metric has one direction"
            )
        return existing

    def __call__(
        self,
        name: str,
        value: float,
        unit: str | None = None,
        higher_is_better: bool | None = None,
        *,
        support: int | None = None,
    ) -> None:
        """Record ``value``. Recording the same metric again adds a sample (the stored value is the median).

        ``support`` is how many examples stand behind the value (an accuracy's test-set size).
        """
        __tracebackhide__ = True
        number = _finite(name, value)
        if support is not None and (isinstance(support, bool) or not isinstance(support, int) or support < 1):
            raise RecordError(f"record({name!r}): support must be a whole number >= 1, got {support!r}")
        metric = self._metric(name, unit, higher_is_better)
        metric.samples.append(number)
        if support is not None:
            metric.support = support

    # ------------------------------------------------------------------ timing
    def time(
        self,
        fn: Callable[[], object],
        *,
        warmup: int = 2,
        repeat: int = 10,
        min_time: float = 0.0,
        name: str = "step_time",
        device: Any = None,
    ) -> TimingStats:
        """Time ``fn()``: ``warmup`` untimed calls, then at least ``repeat`` timed calls and until
        ``min_time`` seconds have been timed. On CUDA each call is timed with CUDA events (after a
        synchronize), so asynchronous kernels are counted; on CPU with ``perf_counter``.
        Records the median (unit ``s``) with every sample; warns when IQR/median > 0.1."""
        if warmup < 0 or repeat < 1 or min_time < 0:
            raise RecordError(
                f"record.time: need warmup >= 0, repeat >= 1, min_time >= 0; got {warmup}, {repeat}, {min_time}"
            )
        device = device if device is not None else self._device
        cuda = _cuda_in_use(device)
        torch = sys.modules.get("torch") if cuda else None
        for _ in range(warmup):
            fn()
        samples: list[float] = []
        total = 0.0
        if torch is not None:
            torch.cuda.synchronize()
        while len(samples) < repeat or (total < min_time and len(samples) < 100_000):
            if torch is not None:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                elapsed = start.elapsed_time(end) / 1000.0
            else:
                t0 = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - t0
            samples.append(elapsed)
            total += elapsed
        stats = TimingStats(
            median=statistics.median(samples),
            iqr=_iqr(samples),
            n=len(samples),
            samples=tuple(samples),
            mean=statistics.fmean(samples),
            min=min(samples),
        )
        metric = self._metric(name, "s", None)
        metric.samples.extend(samples)
        if stats.relative_iqr > NOISE_LIMIT:
            warnings.warn(
                NoisyTimingWarning(
                    f"{self.test}: {name} is noisy: IQR/median = {stats.relative_iqr:.2f} > {NOISE_LIMIT} over "
                    f"{stats.n} samples; raise repeat/min_time or quiet the machine"
                ),
                stacklevel=2,
            )
        return stats

    def throughput(self, items: float, seconds: float, *, name: str = "throughput", unit: str = "items/s") -> float:
        """Record ``items / seconds`` (higher is better) and return it."""
        __tracebackhide__ = True
        items_f, seconds_f = _finite(name, items), _finite(name, seconds)
        if seconds_f <= 0:
            raise RecordError(f"record.throughput({name!r}): seconds must be > 0, got {seconds!r}")
        value = items_f / seconds_f
        self(name, value, unit, True)
        return value

    @contextmanager
    def memory(self, name: str = "peak_memory", device: Any = None) -> Iterator[None]:
        """Record peak memory of the block: on CUDA ``NAME_allocated`` and ``NAME_reserved`` (bytes, from
        ``torch.cuda.max_memory_*`` reset at entry); on CPU ``NAME_rss``, the peak resident set size
        sampled every 5 ms (Linux)."""
        device = device if device is not None else self._device
        if _cuda_in_use(device):
            torch = sys.modules["torch"]
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            yield
            torch.cuda.synchronize()
            self(f"{name}_allocated", float(torch.cuda.max_memory_allocated()), "bytes", False)
            self(f"{name}_reserved", float(torch.cuda.max_memory_reserved()), "bytes", False)
            return
        sampler = _RssSampler()
        sampler.start()
        try:
            yield
        finally:
            peak = sampler.stop()
        if peak is not None:
            self(f"{name}_rss", float(peak), "bytes", False)

    # ------------------------------------------------------------------ hand-over
    def measurements(self) -> list[Measurement]:
        out = []
        for name, metric in self._metrics.items():
            samples = tuple(metric.samples)
            out.append(
                Measurement(
                    test=self.test,
                    metric=name,
                    value=statistics.median(samples),
                    unit=metric.unit,
                    higher_is_better=metric.higher_is_better,
                    samples=samples,
                    iqr=_iqr(samples) if len(samples) > 1 else None,
                    support=metric.support,
                )
            )
        return out

    def flush(self) -> list[Measurement]:
        """Emit every metric recorded so far (called when the test ends) and forget them."""
        done = self.measurements()
        for measurement in done:
            self._emit(measurement)
        self._metrics.clear()
        return done


class _RssSampler:
    PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._peak: int | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> int | None:
        try:
            with open("/proc/self/statm", encoding="ascii") as f:
                return int(f.read().split()[1]) * self.PAGE
        except (OSError, ValueError, IndexError):
            return None

    def _run(self) -> None:
        while True:
            rss = self._read()
            if rss is not None and (self._peak is None or rss > self._peak):
                self._peak = rss
            if self._stop.wait(0.005):
                return

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join()
        last = self._read()
        if last is not None and (self._peak is None or last > self._peak):
            self._peak = last
        return self._peak


# ----------------------------------------------------------------------------- runs and the journal


def new_run_id() -> str:
    return uuid.uuid4().hex


def run_to_json(run: Run) -> dict[str, Any]:
    """A run as the journal's first line holds it (JSON-safe)."""
    return dataclasses.asdict(run)


def run_from_json(data: dict[str, Any]) -> Run:
    """The inverse of :func:`run_to_json`."""
    commit = data["commit"]
    env = data["environment"]
    return Run(
        **{
            **data,
            "commit": Commit(**{**commit, "parents": tuple(commit["parents"]), "ancestry": tuple(commit["ancestry"])}),
            "environment": Environment(**{**env, "flags": tuple(tuple(p) for p in env["flags"])}),
        }
    )


def _measurement_from_json(data: dict[str, Any]) -> Measurement:
    return Measurement(**{**data, "samples": tuple(data["samples"])})


def _alive(hostname: str | None, pid: int | None) -> bool:
    """Whether the process that wrote a run may still be running (unknown hosts count as alive)."""
    if hostname != socket.gethostname():
        return True  # another machine's run: only its heartbeat can tell
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunRecorder:
    """Writes one run. Journal first (flushed per test), store in batches; see the module docstring."""

    def __init__(
        self,
        store: Store,
        run: Run,
        spool_dir: Path,
        *,
        flush_seconds: float = 1.0,
        flush_max: int = 500,
        flush_measured_seconds: float = 0.1,
        retry_delays: Sequence[float] = RETRY_DELAYS,
        offline_seconds: float = OFFLINE_SECONDS,
        journal: bool = True,
    ) -> None:
        """``journal=False``: another process writes the journal at ``journal_path`` (the pytest session,
        when this recorder runs in its store writer); this one only removes it once the run is stored."""
        self.store = store
        self.run = run
        self.spool_dir = spool_dir
        self.journal_path = spool_dir / f"{run.run_id}.jsonl"
        self._flush_seconds = flush_seconds
        self._flush_max = flush_max
        self._flush_measured_seconds = flush_measured_seconds
        self._pending_results: list[TestResult] = []
        self._pending_measurements: list[Measurement] = []
        self._last_flush = time.monotonic()
        self._journal: Any = None
        self._journaling = journal
        self.tests = 0
        self.measurement_count = 0
        self.store_errors: list[str] = []
        """Failed store writes whose records are, for now, only in the journal."""
        self.recovered_errors: list[str] = []
        """Failed store writes that a later write made good (the finished run is whole in the store)."""
        self._retry_delays = tuple(retry_delays)
        self._offline_seconds = offline_seconds
        self._offline_until: float | None = None
        self._lock = threading.RLock()
        """Held by every store write: the timer that flushes waiting measurements runs in its own thread."""
        self._timer: threading.Timer | None = None
        self._finished = False

    def begin(self) -> None:
        if self._journaling:
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            self._journal = open(self.journal_path, "a", encoding="utf-8")  # noqa: SIM115 - held for the run
            self._write({"type": "run", "run": run_to_json(self.run)})
        self._send(lambda: self.store.begin_run(self.run))

    def _send(self, write: Callable[[], None]) -> None:
        """Do one store write; while the store cannot be reached, try again after each of the retry
        delays, then raise. Right after a write that failed every try, one try only."""
        offline = self._offline_until is not None and time.monotonic() < self._offline_until
        delays = () if offline else self._retry_delays
        for delay in (*delays, None):
            try:
                write()
            except BackendUnavailable:
                if delay is None:
                    self._offline_until = time.monotonic() + self._offline_seconds
                    raise
                time.sleep(delay)
            else:
                self._offline_until = None
                return

    def _write(self, entry: dict[str, Any]) -> None:
        if not self._journaling:
            return
        self._journal.write(json.dumps(entry, separators=(",", ":")) + "\n")
        self._journal.flush()  # in the OS page cache now: a kill -9 of this process cannot lose it

    def add_test(self, result: TestResult, measurements: Sequence[Measurement] = ()) -> None:
        with self._lock:
            self._add_test(result, measurements)

    def _add_test(self, result: TestResult, measurements: Sequence[Measurement]) -> None:
        if self._journaling:
            self._write(
                {
                    "type": "test",
                    "result": dataclasses.asdict(result),
                    "measurements": [dataclasses.asdict(m) for m in measurements],
                }
            )
        self.tests += 1
        self.measurement_count += len(measurements)
        self._pending_results.append(result)
        self._pending_measurements.extend(measurements)
        # Batched: a store transaction costs about a millisecond, so plain results go once a second
        # (or every ``flush_max`` tests). Measurements go within ``flush_measured_seconds``: on an
        # ephemeral CI runner the local journal dies with a killed job, the store does not.
        since = time.monotonic() - self._last_flush
        due = since >= (self._flush_measured_seconds if self._pending_measurements else self._flush_seconds)
        if due or len(self._pending_results) >= self._flush_max:
            self.flush(raise_errors=False)
        elif self._pending_measurements and self._timer is None:
            # Not due yet, and the next test may hang or never come: a timer sends them when they are.
            self._timer = threading.Timer(max(self._flush_measured_seconds - since, 0.0), self._timed_flush)
            self._timer.daemon = True
            self._timer.start()

    def _timed_flush(self) -> None:
        with self._lock:
            self._timer = None
            if self._finished:
                return
            try:
                self.flush(raise_errors=False)
            except Exception as exc:  # a thread must not die with an exception; the journal has the records
                self.store_errors.append(f"{type(exc).__name__}: {exc}")

    @property
    def pending(self) -> int:
        """Test results not yet sent to the store."""
        return len(self._pending_results)

    def flush(self, *, raise_errors: bool = True) -> None:
        with self._lock:
            self._flush(raise_errors)

    def _flush(self, raise_errors: bool) -> None:
        if not self._pending_results and not self._pending_measurements:
            return
        if not raise_errors and self._offline_until is not None and time.monotonic() < self._offline_until:
            return  # the store was down moments ago: journal only, for now
        results, measurements = self._pending_results, self._pending_measurements
        try:
            self._send(lambda: self.store.add_results(self.run.run_id, results, measurements))
        except StoreError as exc:
            if raise_errors:
                raise  # the caller reports it (listing it here too showed it twice)
            self.store_errors.append(str(exc))
            return  # still in the journal: the next flush, or `mltest sync`, sends it
        self._pending_results = []
        self._pending_measurements = []
        self._last_flush = time.monotonic()

    def finish(self, status: RunStatus, finished_at: str | None = None) -> None:
        """Send what is pending and mark the run finished (``finished_at``: now), then remove the journal.
        Raises :class:`StoreError` when the store cannot take it; the journal then stays."""
        with self._lock:
            self._finished = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._finish(status, finished_at or utc_now())

    def _finish(self, status: RunStatus, finished_at: str) -> None:
        self._write({"type": "finish", "status": status, "finished_at": finished_at})
        try:
            self.flush()
            self._send(lambda: self.store.finish_run(self.run.run_id, status, finished_at))
        finally:
            if self._journal is not None:
                self._journal.close()  # on a store error the journal stays, for `mltest sync`
        self.journal_path.unlink(missing_ok=True)
        # Everything is in the store now: earlier failures cost nothing, and no record waits for a sync.
        self.recovered_errors.extend(self.store_errors)
        self.store_errors.clear()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The whole entries of a journal, in order: a line cut by a kill ends the list."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by the kill: everything before it is whole
    return entries


def replay_journal(store: Store, entries: Sequence[dict[str, Any]]) -> str | None:
    """Write a journal's run into ``store`` (idempotent upserts), finished with the journal's status, or
    aborted when it has none. Returns the run id; None when the entries do not start with a run."""
    if not entries or entries[0].get("type") != "run":
        return None
    run = run_from_json(entries[0]["run"])
    store.begin_run(run)
    results = [TestResult(**e["result"]) for e in entries if e["type"] == "test"]
    measurements = [_measurement_from_json(m) for e in entries if e["type"] == "test" for m in e["measurements"]]
    store.add_results(run.run_id, results, measurements)
    finish = next((e for e in entries if e["type"] == "finish"), None)
    if finish is not None:
        store.finish_run(run.run_id, finish["status"], finish["finished_at"])
    else:
        store.mark_aborted([run.run_id], utc_now())
    return run.run_id


def recover_spool(store: Store, spool_dir: Path) -> list[str]:
    """Replay the journals of runs whose process is gone, then mark those runs finished or aborted.

    Replays are idempotent (upserts keyed by run, test and metric). Returns the replayed run ids.
    """
    if not spool_dir.is_dir():
        return []
    replayed = []
    for path in sorted(spool_dir.glob("*.jsonl")):
        entries = read_journal(path)
        if not entries or entries[0].get("type") != "run":
            continue
        run = entries[0]["run"]
        if _alive(run.get("hostname"), run.get("pid")):
            continue
        run_id = replay_journal(store, entries)
        path.unlink(missing_ok=True)
        if run_id is not None:
            replayed.append(run_id)
    return replayed


def reap_dead_runs(store: Store) -> list[str]:
    """Runs still 'running' whose process on this host is gone become 'aborted'."""
    dead = [r.run_id for r in store.runs(limit=500) if r.status == "running" and not _alive(r.hostname, r.pid)]
    store.mark_aborted(dead, utc_now())
    return dead


def spool_path(project_root: Path) -> Path:
    """Where the journals of a project's runs are kept."""
    return project_root / ".mltest" / "spool"


def spool_dir(settings: Settings) -> Path:
    return spool_path(settings.project_root)


def open_recovered(url: str, project_root: Path) -> Store:
    """Open the store at ``url`` and settle what crashed runs of the project left behind (journals,
    stale rows)."""
    store = open_store(url, root=project_root)
    try:
        recover_spool(store, spool_path(project_root))
        reap_dead_runs(store)
    except BaseException:
        store.close()
        raise
    return store


def open_store_recovered(settings: Settings) -> Store:
    """Open the configured store and settle what crashed runs left behind (journals, stale rows)."""
    return open_recovered(settings.store_url, settings.project_root)


def open_run(
    settings: Settings,
    *,
    tier: str,
    environ: Mapping[str, str],
    flags: Mapping[str, object] | None = None,
    import_torch: bool = True,
    store: Store | None = None,
) -> tuple[RunRecorder, tuple[str, ...]]:
    """Start a run at the checked-out commit: the run row is in the store (status running) on return.

    Returns the recorder and notes for the user (not in git, shallow clone, ...)."""
    store = store if store is not None else open_store_recovered(settings)
    info = current_commit(settings.project_root, environ)
    run = Run(
        run_id=new_run_id(),
        project=settings.project_name,
        tier=tier,
        commit=info.commit,
        environment=capture_environment(flags, environ, import_torch=import_torch),
        started_at=utc_now(),
        ci_url=ci_run_url(environ),
        hostname=socket.gethostname(),
        pid=os.getpid(),
    )
    recorder = RunRecorder(store, run, spool_dir(settings))
    recorder.begin()
    return recorder, info.notes


@contextmanager
def recording(
    test: str = "script",
    *,
    tier: str = "integration",
    store: str | None = None,
    project_dir: Path | str | None = None,
) -> Iterator[Record]:
    """Record from code outside pytest (a training script, a notebook)::

        with mltest.recording("train.py::nightly") as record:
            record("accuracy", evaluate(model), support=len(test_set))
            record.time(lambda: train_step(batch))

    One run, one test named ``test``, written to the configured store (``store`` overrides the URL).
    The run is 'passed' when the block completes and 'failed' when it raises.
    """
    from mltest.config import load_settings

    root = Path(project_dir) if project_dir is not None else Path.cwd()
    settings = load_settings(root.resolve(), environ=os.environ, cli={"store_url": store})
    recorder, _ = open_run(settings, tier=tier, environ=os.environ)
    collected: list[Measurement] = []
    record = Record(test, collected.append, settings.metrics)
    started = time.perf_counter()
    outcome: RunStatus = "failed"
    try:
        yield record
        outcome = "passed"
    finally:
        try:
            record.flush()
            recorder.add_test(TestResult(test, outcome, time.perf_counter() - started), collected)
            recorder.finish(outcome)
        finally:
            recorder.store.close()
