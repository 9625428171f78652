"""The active plugin: tier selection, budgets, GPU gating, skips, sharding, xdist pinning, summary."""

from __future__ import annotations

import heapq
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Generator, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import pytest

from mltest.config import OPTIONS_BY_NAME, Settings
from mltest.harness import handoff
from mltest.harness.options import SETTINGS_KEY

if TYPE_CHECKING:  # imported where used: the unit tier without sharding needs neither
    from mltest.harness.recording import RecorderPlugin
    from mltest.harness.shard import Durations

__all__ = ["SETTINGS_KEY", "STATE_KEY", "GpuGate", "MltestSession", "RunState", "is_integration"]

STATE_KEY = pytest.StashKey["RunState"]()
WORKEROUTPUT_KEY = "mltest_collection"
WORKERINPUT_DURATIONS_KEY = "mltest_shard_durations"


TIER_MARKERS = ("integration", "gpu")


def is_integration(item: pytest.Item) -> bool:
    """Integration tier: marked ``integration`` or ``gpu`` (``gpu`` implies ``integration``)."""
    return item.get_closest_marker("integration") is not None or item.get_closest_marker("gpu") is not None


def _tier_marked(node: pytest.Item | pytest.Collector) -> bool:
    """Whether ``node`` itself carries an ``integration`` or ``gpu`` marker."""
    own = node.own_markers
    return bool(own) and any(m.name in TIER_MARKERS for m in own)


def integration_flags(items: Sequence[pytest.Item]) -> list[bool]:
    """:func:`is_integration` of each item, looking at each module and class once rather than once per
    test (``get_closest_marker`` walks every parent each time; a marker on a node marks all below it)."""
    below: dict[int, bool] = {}

    def marked(node: pytest.Collector | None) -> bool:
        if node is None:
            return False
        flag = below.get(id(node))
        if flag is None:
            flag = below[id(node)] = _tier_marked(node) or marked(node.parent)
        return flag

    return [_tier_marked(item) or marked(item.parent) for item in items]


class RunState:
    """What the plugin knows about this run; lives in ``config.stash[STATE_KEY]``.

    A plain class (not a dataclass): every pytest run of an opted-in project imports this module, and
    building a dataclass costs about a millisecond."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.device = "cpu"
        """The integration tier's resolved device: ``cuda`` or ``cpu``. Unit tests always get ``cpu``."""
        self.gpu_count = 0
        self.cuda_already_initialised = False
        self.determinism: dict[str, Any] = {}
        self.worker_gpus: dict[str, str] = {}
        self.worker_threads: int | None = None
        self.recording_note: str | None = None
        self.collection: dict[str, Any] = {}
        self.durations: dict[str, float] = {}
        self.skips: Counter[str] = Counter()
        self.skipped: set[str] = set()
        self.over_budget: list[tuple[str, float]] = []
        self.shard_durations: Durations | None = None
        """The recorded durations sharding balances by (read once; workers get the controller's)."""
        self.started = time.perf_counter()


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
        return reason.removeprefix("Skipped: ")
    return str(longrepr)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class MltestSession:
    """Registered as ``mltest-session`` once the project has opted in."""

    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.state = RunState(settings)
        config.stash[STATE_KEY] = self.state
        self.is_worker = hasattr(config, "workerinput")
        self.is_controller = not self.is_worker and bool(getattr(config.option, "numprocesses", None))
        self.recorder: RecorderPlugin | None = None
        """The session's recording, fed each report (set when the session records)."""
        budget_on = settings.tier != "integration" and settings.unit_budget and settings.budget_mode != "off"
        self._budget = settings.unit_budget if budget_on else math.inf
        """Seconds a passed unit test may take before the budget check looks at it."""
        self._pending = handoff.pending(config)
        self._runs_tests = not self.is_controller
        """Whether this process runs the tests it reports (not the xdist controller)."""
        self._integration: set[str] = set()
        """Node ids of the selected integration tests, in the ``all`` tier (the budget spares them)."""
        if settings.tier == "unit":
            torch = sys.modules.get("torch")
            self.state.cuda_already_initialised = bool(torch is not None and torch.cuda.is_initialized())
        else:
            self._resolve_device()
        if settings.deterministic:
            self._apply_determinism()

    # ------------------------------------------------------------------ configure
    def _resolve_device(self) -> None:
        from mltest.harness import gpu

        mode = self.settings.device
        if mode == "cpu":
            return
        count = gpu.device_count()
        self.state.gpu_count = count
        if count > 0:
            self.state.device = "cuda"
        elif mode == "cuda":
            cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
            seen = f" (CUDA_VISIBLE_DEVICES={cvd!r})" if cvd is not None else ""
            raise pytest.UsageError(
                f"mltest: the {self.settings.tier} tier requires a GPU but no CUDA device is visible{seen}; "
                "run it on a GPU runner, or pass --mltest-device=cpu (mltest run --device cpu) to allow a CPU run"
            )

    def _apply_determinism(self) -> None:
        from mltest.harness import gpu

        flags: dict[str, Any] = {
            "seed": self.settings.seed,
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        }
        if gpu.torch_available():
            import torch

            previous = (
                torch.are_deterministic_algorithms_enabled(),
                torch.backends.cudnn.benchmark,
                torch.backends.cudnn.deterministic,
            )
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            self._torch_previous: tuple[bool, bool, bool] | None = previous
            flags.update(
                {
                    "torch.use_deterministic_algorithms": True,
                    "torch.backends.cudnn.benchmark": False,
                    "torch.backends.cudnn.deterministic": True,
                }
            )
        else:
            self._torch_previous = None
            flags["torch"] = "not installed: only the environment is set"
        self.state.determinism = flags

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self.settings.deterministic and self._torch_previous is not None:
            import torch

            algorithms, benchmark, deterministic = self._torch_previous
            torch.use_deterministic_algorithms(algorithms)
            torch.backends.cudnn.benchmark = benchmark
            torch.backends.cudnn.deterministic = deterministic

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line(
            "markers", "integration: nightly integration tier (GPU when available); deselected by the unit tier"
        )
        config.addinivalue_line(
            "markers",
            "gpu(count=1, min_memory_gb=None): needs `count` CUDA devices with `min_memory_gb` GiB free each; "
            "implies integration",
        )

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        s, st = self.settings, self.state
        parts = [f"tier={s.tier}"]
        if s.tier == "unit":
            parts.append("GPUs hidden (CUDA_VISIBLE_DEVICES='')")
            parts.append(f"unit budget={s.unit_budget:g}s ({s.budget_mode})" if s.unit_budget else "unit budget off")
        else:
            if s.device == "cpu":
                parts.append("device=cpu (--mltest-device=cpu: gpu tests skip)")
            else:
                parts.append(f"device={st.device} (--mltest-device={s.device}; {_plural(st.gpu_count, 'GPU')} visible)")
        parts.append(f"seed={s.seed}")
        if s.shard is not None:
            parts.append(f"shard={s.shard}")
        if s.fail_on_skip:
            parts.append("fail-on-skip")
        parts.append(f"config={s.config_file}" if s.config_file else "config=none")
        lines = ["mltest: " + ", ".join(parts)]
        if st.determinism:
            lines.append("mltest: deterministic mode: " + ", ".join(f"{k}={v}" for k, v in st.determinism.items()))
        if st.cuda_already_initialised:
            lines.append(
                "mltest: WARNING: CUDA was initialised before mltest could hide the GPUs (by a plugin or "
                "conftest imported first); unit tests in this process can see GPUs"
            )
        return lines

    # ------------------------------------------------------------------ collection
    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        tier = self.settings.tier
        kept: list[pytest.Item] = []
        deselected: list[pytest.Item] = []
        counts = Counter[str]()
        flags = integration_flags(items)
        for item, integration in zip(items, flags, strict=True):
            if tier == "all" or (tier == "integration") == integration:
                kept.append(item)
            else:
                deselected.append(item)
                counts["integration" if integration else "unit"] += 1
        if tier == "all":  # where the unit budget needs to tell them apart
            self._integration = {item.nodeid for item, integration in zip(items, flags, strict=True) if integration}
        self._add_timeouts(kept, tier != "unit")
        shard_other = 0
        shard_info: dict[str, Any] = {}
        if self.settings.shard is not None:
            from mltest.harness.shard import plan_shards

            spec = self.settings.shard
            durations = self._shard_durations()
            plan = plan_shards([i.nodeid for i in kept], spec.total, durations.seconds)
            mine = [i for i, shard in zip(kept, plan.assignment, strict=True) if shard == spec.index - 1]
            shard_other = len(kept) - len(mine)
            deselected.extend(i for i, shard in zip(kept, plan.assignment, strict=True) if shard != spec.index - 1)
            kept = mine
            shard_info = {
                "shard_loads": list(plan.loads),
                "shard_known": plan.known,
                "shard_fallback": plan.fallback,
                "shard_source": durations.source,
                "shard_warning": durations.warning,
            }
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept
        self.state.collection = {
            "selected": len(kept),
            "deselected_integration": counts["integration"],
            "deselected_unit": counts["unit"],
            "shard_other": shard_other,
            **shard_info,
        }
        if self.is_worker:
            config.workeroutput[WORKEROUTPUT_KEY] = self.state.collection  # type: ignore[attr-defined]

    def _shard_durations(self) -> Durations:
        """The recorded durations the split balances by: read once per session from the store; an xdist
        worker gets the controller's copy, so the workers cannot disagree."""
        from mltest.harness.shard import Durations, load_durations

        if self.state.shard_durations is None:
            given = getattr(self.config, "workerinput", {}).get(WORKERINPUT_DURATIONS_KEY)
            self.state.shard_durations = (
                Durations(dict(given["seconds"]), str(given["source"]), given["warning"])
                if given is not None
                else load_durations(self.settings, os.environ)
            )
        return self.state.shard_durations

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """xdist controller: hand every worker the same recorded durations (read once, here)."""
        if self.settings.shard is None:
            return
        durations = self._shard_durations()
        node.workerinput[WORKERINPUT_DURATIONS_KEY] = {
            "seconds": dict(durations.seconds),
            "source": durations.source,
            "warning": durations.warning,
        }

    def _add_timeouts(self, items: Sequence[pytest.Item], any_integration: bool) -> None:
        timeout = self.settings.integration_timeout
        if not timeout or not any_integration or not self.config.pluginmanager.hasplugin("timeout"):
            return
        for item in items:
            if is_integration(item) and item.get_closest_marker("timeout") is None:
                # The thread method: a hung CUDA call ignores signals, so SIGALRM would never fire.
                item.add_marker(pytest.mark.timeout(timeout, method="thread"))

    # ------------------------------------------------------------------ each test
    @pytest.hookimpl(tryfirst=True)  # before the terminal, junitxml, -x and xdist's hand-over see the report
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Each phase's report, three per test, so it stays lean: the slow paths are for the reports that
        need them. In the process that ran the test: the unit budget, ``fail_on_skip`` and the hand-off
        entries; in the process that reports (the same one without xdist): the summary's numbers and
        the recording."""
        outcome = report.outcome
        if self._runs_tests:
            if outcome == "passed":
                if report.duration > self._budget and report.when == "call":
                    self._over_budget(report)
                    outcome = report.outcome
            elif outcome == "skipped" and self.settings.fail_on_skip and not hasattr(report, "wasxfail"):
                report.outcome = outcome = "failed"
                report.longrepr = (
                    f"mltest: skipped ({_skip_reason(report)}), and --mltest-fail-on-skip turns skips into failures"
                )
            if self._pending:  # some test has entries waiting: perhaps this one
                handoff.attach(report, self._pending)
        if self.is_worker:
            return
        nodeid = report.nodeid
        durations = self.state.durations
        total = durations[nodeid] = durations.get(nodeid, 0.0) + report.duration
        if outcome == "skipped" and report.when in ("setup", "call") and not hasattr(report, "wasxfail"):
            self.state.skips[_skip_reason(report)] += 1
            self.state.skipped.add(nodeid)
        entries = getattr(report, handoff.REPORT_ATTR, None)
        if entries:
            for entry in entries:
                if entry.get("kind") == "over_budget":
                    self.state.over_budget.append((nodeid, float(entry["duration"])))
            handoff.deliver(self.config, report)  # measurements reach the recorder before the report
        recorder = self.recorder
        # The recorder needs a passed test's teardown only (its duration is ``total``), and every report
        # of a test that did something else.
        if recorder is not None and (
            report.when == "teardown" or outcome != "passed" or recorder.unfinished or hasattr(report, "wasxfail")
        ):
            recorder.report(report, nodeid, outcome, total)

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self, collector: pytest.Collector
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        if report.skipped and self.settings.fail_on_skip:
            report.outcome = "failed"
            report.longrepr = (
                f"mltest: module skipped ({_skip_reason(report)}), and --mltest-fail-on-skip turns skips into failures"
            )
        return report

    def _over_budget(self, report: pytest.TestReport) -> None:
        """A passed test took longer than the unit budget: unless it is an integration test (it may be,
        in the ``all`` tier), fail it or list it."""
        settings = self.settings
        if report.nodeid in self._integration:
            return
        if settings.budget_mode == "warn":
            handoff.queue(
                self._pending,
                report.nodeid,
                "over_budget",
                {"duration": report.duration, "budget": settings.unit_budget},
            )
            return
        report.outcome = "failed"
        report.longrepr = (
            f"mltest: unit test took {report.duration:.2f} s, over the unit-tier budget of "
            f"{settings.unit_budget:g} s: mark it @pytest.mark.integration or make it faster "
            f"(budget: unit_budget / {OPTIONS_BY_NAME['unit_budget'].pytest_flag}; "
            f"budget_mode = warn only lists it)"
        )

    # ------------------------------------------------------------------ reporting process
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if not self.is_worker and report.skipped:
            self.state.skips[_skip_reason(report)] += 1

    # ------------------------------------------------------------------ xdist (controller side)
    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_setupnodes(self, config: pytest.Config, specs: Sequence[Any]) -> None:
        """Before any worker starts: cap CPU threads per worker, and pin each worker to one of the caller's GPUs."""
        if "OMP_NUM_THREADS" not in os.environ:
            # N workers each running torch/numpy with every core's worth of threads oversubscribe the
            # machine (seen here: a tiny matmul 80x slower); give each worker its share of the cores.
            threads = str(max(1, (os.cpu_count() or 1) // max(1, len(specs))))
            for spec in specs:
                spec.env.setdefault("OMP_NUM_THREADS", threads)
            self.state.worker_threads = int(threads)
        if self.settings.tier == "unit" or self.state.device != "cuda":
            return
        from mltest.harness import gpu

        tokens = gpu.visible_tokens()
        if not tokens:
            return
        for number, spec in enumerate(specs):
            token = tokens[number % len(tokens)]
            spec.env["CUDA_VISIBLE_DEVICES"] = token
            self.state.worker_gpus[spec.id or f"gw{number}"] = token
        if len(specs) > len(tokens):
            reporter = config.pluginmanager.get_plugin("terminalreporter")
            if reporter is not None:
                reporter.write_line(
                    f"mltest: WARNING: {len(specs)} workers share {_plural(len(tokens), 'GPU')} "
                    f"({self._pinning()}); expect contention in timings and memory",
                    yellow=True,
                )

    def _pinning(self) -> str:
        return ", ".join(f"{w}->GPU {t}" for w, t in sorted(self.state.worker_gpus.items()))

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        collection = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
        if collection and not self.state.collection:
            self.state.collection = dict(collection)

    # ------------------------------------------------------------------ summary
    def _shard_summary(self, write: Any, collection: dict[str, Any]) -> None:
        spec = self.settings.shard
        loads = collection.get("shard_loads")
        if spec is None or loads is None:
            return
        from mltest.harness.shard import fmt_seconds

        selected, total = collection["selected"], collection["selected"] + collection["shard_other"]
        write(
            f"shard {spec}: {selected} of {total} selected tests, expected {fmt_seconds(loads[spec.index - 1])} "
            f"(shards: {' '.join(fmt_seconds(x) for x in loads)}); the rest run in the other shards"
        )
        if collection.get("shard_warning"):
            write(f"WARNING: {collection['shard_warning']}", yellow=True)
            return
        known, fallback = collection["shard_known"], collection["shard_fallback"]
        if known == 0:
            source = collection["shard_source"]
            write(f"shard durations: none recorded in {source}; each test counted at {fallback:g} s")
            return
        unknown = total - known
        write(
            f"shard durations: {known} of {total} tests timed by {collection['shard_source']}"
            + (f"; {unknown} new, counted at {fallback:.3g} s (the median)" if unknown else "")
        )

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state, settings = self.state, self.settings
        write = terminalreporter.write_line
        terminalreporter.section("mltest")
        wall = time.perf_counter() - state.started
        ran = {k: v for k, v in state.durations.items() if k not in state.skipped}
        total = sum(ran.values())
        write(
            f"{settings.tier} tier: {_plural(len(ran), 'test')} ran in {wall:.2f} s wall ({total:.2f} s of test time)"
        )
        collection = state.collection
        if collection.get("deselected_integration"):
            n = collection["deselected_integration"]
            write(
                f"{_plural(n, 'integration test')} deselected by the unit tier; run them with "
                "`mltest run integration` (or --mltest-tier=integration)"
            )
        if collection.get("deselected_unit"):
            write(
                f"{_plural(collection['deselected_unit'], 'unit test')} deselected by the integration tier; "
                "`mltest run all` runs both"
            )
        if settings.shard is not None and collection:
            self._shard_summary(write, collection)
        if state.recording_note:
            write(f"not recorded: {state.recording_note}")
        if state.worker_gpus:
            write(f"GPU pinning: {self._pinning()}")
        if state.worker_threads is not None:
            write(f"CPU threads per worker: OMP_NUM_THREADS={state.worker_threads} (set OMP_NUM_THREADS to choose)")
        slowest = heapq.nlargest(settings.slowest, ran.items(), key=itemgetter(1))
        if slowest:
            write("slowest:")
            for nodeid, seconds in slowest:
                write(f"  {seconds:8.2f} s  {nodeid}")
        if state.over_budget:
            write(f"over the unit budget of {settings.unit_budget:g} s (budget_mode=warn):", yellow=True)
            for nodeid, seconds in state.over_budget:
                write(f"  {seconds:8.2f} s  {nodeid}", yellow=True)
        if state.skips:
            write(f"skipped ({sum(state.skips.values())}), by reason:", yellow=True)
            for reason, n in state.skips.most_common():
                write(f"  {n:4d} x {reason}", yellow=True)


class GpuGate:
    """Registered as ``mltest-gpu`` when the tier may run integration tests (not the unit tier, where no
    test sees a GPU): ``gpu`` requirements and the peak GPU memory of integration tests on CUDA."""

    def __init__(self, session: MltestSession) -> None:
        self.settings = session.settings
        self.state = session.state

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            return
        from mltest.harness import gpu

        try:
            requirement = gpu.GpuRequirement.from_marker_args(marker.args, marker.kwargs)
        except ValueError as exc:
            pytest.fail(f"mltest: bad @pytest.mark.gpu on {item.nodeid}: {exc}", pytrace=False)
        if self.state.device == "cpu":
            pytest.skip(f"needs {requirement}; this run uses the CPU (--mltest-device={self.settings.device})")
        cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" to this process (CUDA_VISIBLE_DEVICES={cvd})" if cvd is not None else ""
        reason = gpu.unmet_reason(requirement, self.state.gpu_count, gpu.memory, where)
        if reason is None:
            return
        if self.settings.device == "cuda":
            pytest.fail(
                f"mltest: GPU requirement not met: {reason}; a GPU was required (--mltest-device=cuda), "
                "so this fails instead of skipping",
                pytrace=False,
            )
        pytest.skip(reason)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, None, None]:
        """On CUDA, every integration test's peak GPU memory is recorded (counters reset first)."""
        on_cuda = self.state.device == "cuda" and is_integration(item)
        from mltest.harness import gpu

        if on_cuda:
            gpu.peak_memory_reset()
        try:
            return (yield)
        finally:
            peak = gpu.peak_memory() if on_cuda else None
            if peak is not None:
                for metric, value in zip(("gpu_memory_peak_allocated", "gpu_memory_peak_reserved"), peak, strict=True):
                    handoff.add(
                        item,
                        "measurement",
                        {
                            "test": item.nodeid,
                            "metric": metric,
                            "value": float(value),
                            "unit": "bytes",
                            "higher_is_better": False,
                            "samples": [float(value)],
                            "iqr": None,
                            "support": None,
                        },
                    )
