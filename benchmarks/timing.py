"""Timing accuracy: ``record.time`` against PyTorch's own timer on the same workloads (issue 6).

Usage (from the repository root)::

    python -m benchmarks --only timing [--quick] [--write]    # as part of the suite
    python -m benchmarks.timing [--quick] [--rounds N] [--seconds S] [--write]

On CPU, each workload is timed by ``record.time`` (``perf_counter`` around every call) and by
``torch.utils.benchmark.Timer.blocked_autorange`` (``timeit`` around blocks of calls), with the same
measurement time each, in several interleaved rounds (the order alternates) so that drift on a
noisy machine hits both alike. Reported: the ratio of the medians (record.time / Timer) and the
spread (IQR / median) of each, pooled over the rounds. Torch runs on one thread for both (Timer's
default ``num_threads=1``; we set ``torch.set_num_threads(1)`` for record.time and restore it after).

With a GPU (``torch.cuda.is_available()``) the same is done on CUDA against CUDA events recorded by
hand around the same calls; without one the CUDA rows say "not measured: no GPU".
``--write`` replaces the timing section of ``BENCHMARKS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import statistics
import sys
import time
import timeit
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch.utils.benchmark import Measurement, Timer

from benchmarks._common import BENCHMARKS_MD, Outcome, Row, emit, machine, met_text, table
from mltest.recorder import NoisyTimingWarning, Record

NAME = "timing"
START, END = "<!-- timing:start -->", "<!-- timing:end -->"
HEADING = "## Timing accuracy (issue 6)"
THREADS = 1
AGREEMENT_TARGET = 0.05
"""The medians of record.time and the reference agree within 5 %."""
SPREAD_TARGET = 1.5
"""record.time's IQR/median is at most 1.5x the reference's."""
NOT_MEASURED = "not measured: no GPU"
BLOCKED = " (same statistic: record.time's calls in Timer's blocks)"
"""Timer's samples are means of blocks of calls, record.time's are single calls. The median of block
means sits above the per-call median whenever call times are skewed (a short workload on a busy
machine: a few slow calls pull every block's mean up, not the per-call median), so the target compares
like with like: record.time's own calls averaged in the block sizes Timer chose in the same round.
The per-call ratio is reported next to it, without a target."""
TEST_NAME = "benchmarks/timing"


# ---------------------------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    key: str
    """Metric-name part: ``small_matmul``."""
    label: str
    """For the tables: ``matmul 160x160``."""
    fn: Callable[[], object]


def matmul(n: int, device: str) -> Callable[[], object]:
    gen = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, generator=gen).to(device)
    b = torch.randn(n, n, generator=gen).to(device)
    return lambda: a @ b


def mlp_step(features: int, hidden: int, batch: int, device: str) -> Callable[[], object]:
    """One SGD step (forward, cross-entropy, backward, update) of a two-layer MLP."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 10)).to(
        device
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x = torch.randn(batch, features, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    return step


def workload_specs(device: str) -> list[tuple[str, str, Callable[[], Callable[[], object]]]]:
    """(key, label, builder): three sizes, ~45 us, ~1 ms and ~25 ms per call on one CPU thread (much
    less on a GPU, where the large matmul is made larger). Built only when measured."""
    large = 1024 if device == "cpu" else 4096
    return [
        ("small_matmul", "matmul 160x160", lambda: matmul(160, device)),
        ("mlp_step", "MLP train step 256-512-10, batch 128", lambda: mlp_step(256, 512, 128, device)),
        ("large_matmul", f"matmul {large}x{large}", lambda: matmul(large, device)),
    ]


def workloads(device: str) -> list[Workload]:
    return [Workload(key, label, build()) for key, label, build in workload_specs(device)]


# ---------------------------------------------------------------------------------------- statistics
def quartiles(samples: Sequence[float]) -> tuple[float, float]:
    """Median and IQR, linear interpolation between order statistics (what both mltest and Timer use)."""
    if len(samples) < 2:
        return (samples[0] if samples else 0.0), 0.0
    q1, q2, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    return q2, q3 - q1


def block_means(samples: Sequence[float], size: int) -> list[float]:
    """Means of consecutive blocks of ``size`` samples (a last partial block is dropped)."""
    return [statistics.fmean(samples[i : i + size]) for i in range(0, len(samples) - size + 1, size)]


@dataclass(frozen=True)
class Comparison:
    """One workload on one device: record.time against the reference, pooled over the rounds."""

    device: str
    """``cpu`` or ``cuda``."""
    key: str
    label: str
    reference: str
    """What record.time is compared with: ``Timer`` or ``CUDA events by hand``."""
    ours_median: float
    ours_iqr: float
    ref_median: float
    ref_iqr: float
    ours_n: int
    ref_n: int
    ours_seconds: float
    """Time measured by record.time, summed over the rounds."""
    ref_seconds: float
    round_ratios: tuple[float, ...] = ()
    """record.time median / reference median, per round."""
    ours_blocked_median: float | None = None
    """record.time's median after averaging its samples in consecutive blocks of the size Timer used in
    the same round (None: the reference times single calls too)."""
    ours_blocked_spread: float | None = None
    """The IQR/median of those block means."""
    block_sizes: tuple[int, ...] = ()
    noisy_warnings: int = 0
    """How many record.time calls (one per round) warned NoisyTimingWarning."""
    gc_runs: int = 0
    """Garbage collections during record.time's calls (Timer's ``timeit`` disables the collector)."""
    rounds: int = 0

    @property
    def agreement(self) -> float:
        """record.time's per-call median over the reference's median."""
        return self.ours_median / self.ref_median

    @property
    def in_blocks(self) -> bool:
        """Whether the reference averaged blocks of more than one call (Timer on short workloads)."""
        return self.ours_blocked_median is not None and max(self.block_sizes, default=1) > 1

    @property
    def like_for_like(self) -> float:
        """The same ratio with both sides the same statistic: record.time's calls averaged in the
        reference's blocks where its samples are block means, else the per-call ratio."""
        if self.ours_blocked_median is None or not self.in_blocks:
            return self.agreement
        return self.ours_blocked_median / self.ref_median

    @property
    def ours_spread(self) -> float:
        return self.ours_iqr / self.ours_median

    @property
    def ref_spread(self) -> float:
        return self.ref_iqr / self.ref_median


def agreement_met(ratio: float) -> bool:
    return abs(ratio - 1.0) <= AGREEMENT_TARGET + 1e-12  # the bound itself counts (0.95 is within 5 %)


def spread_met(ours: float, reference: float) -> bool:
    return ours <= SPREAD_TARGET * reference + 1e-12


def duration(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _prefix(device: str) -> str:
    return "CUDA" if device == "cuda" else "CPU"


def comparison_rows(c: Comparison) -> list[Row]:
    """The two summary rows of one comparison: median agreement and spread, each with its target."""
    prefix = _prefix(c.device)
    spread_ratio = c.ours_spread / c.ref_spread if c.ref_spread > 0 else float("inf")
    blocked = c.in_blocks
    rows = [
        Row(
            NAME,
            f"{prefix} {c.label}: median, record.time / {c.reference}" + (BLOCKED if blocked else ""),
            c.like_for_like,
            "ratio",
            duration(c.ours_blocked_median if c.ours_blocked_median is not None and blocked else c.ours_median),
            f"{c.reference} {duration(c.ref_median)}",
            f"{c.like_for_like:.3f}",
            f"within {AGREEMENT_TARGET:.0%}",
            agreement_met(c.like_for_like),
            None,
            f"{c.device}_{c.key}_agreement",
        ),
    ]
    if blocked:
        rows.append(
            Row(
                NAME,
                f"{prefix} {c.label}: per-call median, record.time / {c.reference}'s block median",
                c.agreement,
                "ratio",
                duration(c.ours_median),
                f"{c.reference} {duration(c.ref_median)}",
                f"{c.agreement:.3f}",
                "",
                None,
                None,
                f"{c.device}_{c.key}_per_call_agreement",
            )
        )
    return [
        *rows,
        Row(
            NAME,
            f"{prefix} {c.label}: spread (IQR/median)",
            c.ours_spread,
            "ratio",
            f"{c.ours_spread:.1%}",
            f"{c.reference} {c.ref_spread:.1%}",
            f"{spread_ratio:.2f}x",
            f"≤ {SPREAD_TARGET}x {c.reference}'s",
            spread_met(c.ours_spread, c.ref_spread),
            False,
            f"{c.device}_{c.key}_spread",
        ),
    ]


def not_measured_rows(device: str, labels: Sequence[str], reference: str) -> list[Row]:
    """Rows for a device this machine lacks: present, without a value, met=None. ``value`` must still be
    a finite number (every row is recorded into mltest's store): all of them record ``cuda_measured``
    = 0, never under the names the measured rows use."""
    prefix = _prefix(device)
    out = []
    for label in labels:
        for what, target in (
            (f"median, record.time / {reference}", f"within {AGREEMENT_TARGET:.0%}"),
            ("spread (IQR/median)", f"≤ {SPREAD_TARGET}x {reference}'s"),
        ):
            out.append(
                Row(
                    NAME,
                    f"{prefix} {label}: {what}",
                    0.0,
                    "bool",
                    NOT_MEASURED,
                    "",
                    "",
                    target,
                    None,
                    None,
                    f"{device}_measured",
                )
            )
    return out


# ---------------------------------------------------------------------------------------- measuring
def _record_time(record: Record, w: Workload, repeat: int, seconds: float) -> tuple[tuple[float, ...], bool, int]:
    """record.time on ``w``: its samples, whether it warned NoisyTimingWarning (caught: the warning is
    information here; other warnings are passed on) and how many garbage collections ran meanwhile."""
    collections = 0

    def count(phase: str, _info: dict[str, int]) -> None:
        nonlocal collections
        collections += phase == "stop"

    gc.callbacks.append(count)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", NoisyTimingWarning)
            stats = record.time(w.fn, warmup=2, repeat=repeat, min_time=seconds, name=w.key)
    finally:
        gc.callbacks.remove(count)
    noisy = False
    for item in caught:
        if issubclass(item.category, NoisyTimingWarning):
            noisy = True
        else:
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
    return stats.samples, noisy, collections


def _timer(w: Workload, seconds: float) -> Measurement:
    # timeit.default_timer: no accelerator synchronize around the blocks (Timer's default timer
    # synchronizes when a GPU is present; these workloads are on the CPU).
    timer = Timer(stmt="fn()", globals={"fn": w.fn}, timer=timeit.default_timer, num_threads=THREADS)
    return timer.blocked_autorange(min_run_time=seconds)


def _cuda_events(w: Workload, repeat: int, seconds: float) -> list[float]:
    """CUDA events recorded by hand around each call, synchronizing on the end event."""
    for _ in range(2):
        w.fn()
    torch.cuda.synchronize()
    samples: list[float] = []
    total = 0.0
    while len(samples) < repeat or (total < seconds and len(samples) < 100_000):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        w.fn()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / 1000.0)
        total += samples[-1]
    return samples


def compare(w: Workload, device: str, *, rounds: int, seconds: float, repeat: int = 10) -> Comparison:
    """``rounds`` interleaved rounds of record.time and the reference (Timer on CPU, CUDA events by
    hand on CUDA), each measuring ``seconds`` per round; who goes first alternates."""
    record = Record(TEST_NAME, lambda _m: None, device=device)
    ours_rounds: list[tuple[float, ...]] = []
    ref_rounds: list[list[float]] = []
    measurements: list[Measurement] = []
    noisy = gc_runs = 0
    for i in range(rounds):
        for which in ("ours", "ref") if i % 2 == 0 else ("ref", "ours"):
            if which == "ours":
                samples, warned, collections = _record_time(record, w, repeat, seconds)
                ours_rounds.append(samples)
                noisy += warned
                gc_runs += collections
            elif device == "cuda":
                ref_rounds.append(_cuda_events(w, repeat, seconds))
            else:
                m = _timer(w, seconds)
                measurements.append(m)
                ref_rounds.append(m.times)
    # record.time's pooled numbers as mltest stores them: the median and IQR over all samples.
    (stored,) = record.measurements()
    ours_median, ours_iqr = stored.value, stored.iqr or 0.0
    if measurements:
        (merged,) = Measurement.merge(measurements)
        ref_median, ref_iqr = merged.median, merged.iqr
        sizes = tuple(m.number_per_run for m in measurements)
        blocked = [x for s, n in zip(ours_rounds, sizes, strict=True) for x in block_means(s, n)]
        b_median, b_iqr = quartiles(blocked)
        blocked_median: float | None = b_median
        blocked_spread: float | None = b_iqr / b_median
        ref_n = sum(len(m.raw_times) for m in measurements)
        ref_seconds = sum(sum(m.raw_times) for m in measurements)
        reference = "Timer"
    else:
        ref_median, ref_iqr = quartiles([x for r in ref_rounds for x in r])
        sizes, blocked_median, blocked_spread = (), None, None
        ref_n = sum(len(r) for r in ref_rounds)
        ref_seconds = sum(sum(r) for r in ref_rounds)
        reference = "CUDA events by hand"
    return Comparison(
        device=device,
        key=w.key,
        label=w.label,
        reference=reference,
        ours_median=ours_median,
        ours_iqr=ours_iqr,
        ref_median=ref_median,
        ref_iqr=ref_iqr,
        ours_n=len(stored.samples),
        ref_n=ref_n,
        ours_seconds=sum(stored.samples),
        ref_seconds=ref_seconds,
        round_ratios=tuple(
            statistics.median(o) / statistics.median(r) for o, r in zip(ours_rounds, ref_rounds, strict=True)
        ),
        ours_blocked_median=blocked_median,
        ours_blocked_spread=blocked_spread,
        block_sizes=sizes,
        noisy_warnings=noisy,
        gc_runs=gc_runs,
        rounds=rounds,
    )


@dataclass(frozen=True)
class Overhead:
    """An empty callable timed by both: the per-call cost each adds to what it measures."""

    ours: float
    timer: float


def overhead() -> Overhead:
    record = Record(TEST_NAME, lambda _m: None, device="cpu")

    def empty() -> None:
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NoisyTimingWarning)
        ours = record.time(empty, warmup=100, repeat=20_000, name="empty").median
    return Overhead(ours, _timer(Workload("empty", "empty", empty), 0.1).median)


@dataclass
class Result:
    cpu: list[Comparison]
    cuda: list[Comparison] | None
    """None: no GPU."""
    cuda_labels: list[str]
    overhead: Overhead | None
    rounds: int
    seconds: float
    wall: float
    load: tuple[float, float] = (0.0, 0.0)
    """1-minute load average before and after (another job on the machine shows here)."""

    def rows(self) -> list[Row]:
        out = [row for c in self.cpu for row in comparison_rows(c)]
        if self.cuda is None:
            out += not_measured_rows("cuda", self.cuda_labels, "CUDA events by hand")
        else:
            out += [row for c in self.cuda for row in comparison_rows(c)]
        return out


def measure(
    *,
    rounds: int,
    seconds: float,
    cpu_workloads: Sequence[Workload] | None = None,
    cuda_workloads: Sequence[Workload] | None = None,
    cuda: bool | None = None,
    with_overhead: bool = True,
) -> Result:
    """Run every comparison. ``cuda=None``: on CUDA when torch sees a GPU."""
    cuda = torch.cuda.is_available() if cuda is None else cuda
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        cpu_list = list(cpu_workloads) if cpu_workloads is not None else workloads("cpu")
        cpu_results = []
        for w in cpu_list:
            cpu_results.append(compare(w, "cpu", rounds=rounds, seconds=seconds))
            print(f"   cpu {w.label}: ratio {cpu_results[-1].agreement:.3f}", file=sys.stderr, flush=True)
        ovh = overhead() if with_overhead else None
        # The CUDA workloads are built only on a GPU (building them allocates on the device).
        cuda_labels = [w.label for w in cuda_workloads] if cuda_workloads is not None else []
        cuda_results: list[Comparison] | None = None
        if cuda:
            cuda_list = list(cuda_workloads) if cuda_workloads is not None else workloads("cuda")
            cuda_labels = [w.label for w in cuda_list]
            cuda_results = []
            for w in cuda_list:
                cuda_results.append(compare(w, "cuda", rounds=rounds, seconds=seconds))
                print(f"   cuda {w.label}: ratio {cuda_results[-1].agreement:.3f}", file=sys.stderr, flush=True)
        elif cuda_workloads is None:
            cuda_labels = cuda_labels_without_gpu()
    finally:
        torch.set_num_threads(threads)
    return Result(
        cpu_results,
        cuda_results,
        cuda_labels,
        ovh,
        rounds,
        seconds,
        time.perf_counter() - started,
        (load_before, os.getloadavg()[0]),
    )


def cuda_labels_without_gpu() -> list[str]:
    return [label for _, label, _ in workload_specs("cuda")]


# ---------------------------------------------------------------------------------------- report
DETAIL = [
    "device",
    "workload",
    "record.time median",
    "reference median",
    "ratio",
    "per-round ratios: median (min to max)",
    "record.time IQR/median",
    "reference IQR/median",
    "record.time in Timer's blocks: median (/ Timer's), IQR/median",
    "samples (record.time / reference)",
    "noisy warnings",
    "GC runs in record.time",
]


def detail_rows(result: Result) -> list[list[str]]:
    out = []
    for c in [*result.cpu, *(result.cuda or [])]:
        blocks = f" (blocks of {'/'.join(str(n) for n in sorted(set(c.block_sizes)))})" if c.block_sizes else ""
        out.append(
            [
                _prefix(c.device),
                c.label,
                duration(c.ours_median),
                f"{c.reference}: {duration(c.ref_median)}",
                f"{c.agreement:.3f}",
                (
                    f"{statistics.median(c.round_ratios):.3f} ({min(c.round_ratios):.3f} to {max(c.round_ratios):.3f})"
                    if c.round_ratios
                    else "—"
                ),
                f"{c.ours_spread:.1%}",
                f"{c.ref_spread:.1%}",
                (
                    f"{duration(c.ours_blocked_median)} ({c.ours_blocked_median / c.ref_median:.3f}), "
                    f"{c.ours_blocked_spread:.1%}{blocks}"
                    if c.ours_blocked_median is not None and c.ours_blocked_spread is not None
                    else "—"
                ),
                f"{c.ours_n} / {c.ref_n}",
                f"{c.noisy_warnings} of {c.rounds}",
                str(c.gc_runs),
            ]
        )
    if result.cuda is None:
        out += [["CUDA", label, NOT_MEASURED, *["—"] * 9] for label in result.cuda_labels]
    return out


def report(result: Result, command: str) -> str:
    rows = result.rows()
    with_target = [r for r in rows if r.met is not None]
    missed = [r for r in with_target if r.met is False]
    verdict = f"{len(with_target) - len(missed)} of {len(with_target)} targets met" + (
        "; missed: " + "; ".join(r.case for r in missed) if missed else ""
    )
    summary = table(
        ["case", "record.time", "compared with (same run)", "ratio", "target", "met?"],
        [[r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in rows],
    )
    ovh = (
        f"Per-call cost of the timers themselves (an empty callable): record.time median "
        f"{duration(result.overhead.ours)} per call (two `perf_counter` calls, the loop and the call), "
        f"Timer {duration(result.overhead.timer)} per call (the call inside `timeit`'s loop).\n"
        if result.overhead
        else ""
    )
    return f"""{HEADING}

{START}
Reproduce from the repository root: `{command}`. On CPU each workload is timed by `record.time(fn,
warmup=2, repeat=10, min_time={result.seconds:g})` (`perf_counter` around every call) and by
`torch.utils.benchmark.Timer(stmt="fn()", timer=timeit.default_timer,
num_threads=1).blocked_autorange(min_run_time={result.seconds:g})` (`timeit` around blocks of calls:
each of its samples is a block's mean), interleaved over {result.rounds} rounds with the order
alternating; medians and IQRs are pooled over the rounds (record.time's as mltest stores them,
Timer's with `Measurement.merge`, then `.median` / `.iqr`). Torch runs on one thread for both
(`torch.set_num_threads(1)`, Timer's own default). On CUDA the reference is CUDA events recorded by
hand around each call (`Event(enable_timing=True)`, `end.synchronize()`).

- Date: {dt.date.today().isoformat()}; {result.wall:.0f} s; 1-minute load average {result.load[0]:.1f} before,
  {result.load[1]:.1f} after
- Machine: {machine()}
- Python {sys.version.split()[0]}, torch {torch.__version__}
- Targets: the medians agree within {AGREEMENT_TARGET:.0%}, compared as the same statistic (where Timer
  averages blocks of calls, record.time's calls are averaged in the same block sizes; the per-call
  ratio is shown without a target: see the details); record.time's IQR/median (per call, as mltest
  stores it) is at most {SPREAD_TARGET}x the reference's. NoisyTimingWarning (IQR/median > 0.1) is caught and counted.

**Targets:** {verdict}.

{summary}

Details. Each Timer sample is the mean of a block of calls (the block size is Timer's own choice, per
round): on a loaded machine a block also contains the time the process spent descheduled, which a
per-call median leaves out. The column "in Timer's blocks" averages record.time's own samples in
blocks of the same size, round by round, to show how much of a difference that alone makes.

{table(DETAIL, detail_rows(result))}

{ovh}{END}
"""


def settings(quick: bool) -> tuple[int, float]:
    """(rounds, seconds per timer per round)."""
    return (10, 0.2) if quick else (24, 0.5)


def run(quick: bool) -> Outcome:
    """For ``python -m benchmarks``: 24 rounds of 0.5 s per timer (10 of 0.2 s with ``quick``)."""
    rounds, seconds = settings(quick)
    result = measure(rounds=rounds, seconds=seconds)
    command = "python -m benchmarks" + (" --quick" if quick else "") + " --write"
    return Outcome(result.rows(), report(result, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 rounds of 0.2 s (default: 24 of 0.5 s)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds")
    parser.add_argument("--seconds", type=float, default=None, help="measurement time per timer per round")
    parser.add_argument("--write", action="store_true", help=f"replace the timing section of {BENCHMARKS_MD.name}")
    args = parser.parse_args(argv)
    rounds, seconds = settings(args.quick)
    rounds = args.rounds if args.rounds is not None else rounds
    seconds = args.seconds if args.seconds is not None else seconds
    result = measure(rounds=rounds, seconds=seconds)
    command = (
        "python -m benchmarks.timing"
        + (" --quick" if args.quick else "")
        + (f" --rounds {args.rounds}" if args.rounds is not None else "")
        + (f" --seconds {args.seconds:g}" if args.seconds is not None else "")
    )
    section = report(result, command + " --write")
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
