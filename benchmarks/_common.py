"""Helpers shared by the benchmark scripts: the machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
INTRO = "# Benchmarks\n\nNumbers produced by the scripts in benchmarks/; each section says how to reproduce it.\n"


def machine() -> str:
    """Platform, CPU model and core count (and the GPU, when torch sees one)."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    text = f"{platform.platform()}, {platform.machine()}{f' ({cpu})' if cpu else ''}, os.cpu_count()={os.cpu_count()}"
    try:
        import torch

        if torch.cuda.is_available():
            text += f", GPU: {torch.cuda.get_device_name(0)}"
        else:
            text += ", no GPU"
    except ImportError:
        pass
    return text


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def write_section(section: str, start: str, end: str, path: Path = BENCHMARKS_MD) -> None:
    """Replace the text between the ``start`` and ``end`` markers, or append ``section``."""
    text = path.read_text(encoding="utf-8") if path.exists() else INTRO
    body = section.split(start, 1)[1].split(end, 1)[0]
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + start + body + end + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")


@dataclass(frozen=True)
class Row:
    """One line of the summary table: mltest's value, what it was compared with in the same run, the
    ratio and the target. ``value``/``unit`` are also recorded into mltest's own store."""

    benchmark: str
    case: str
    value: float
    unit: str
    shown: str
    comparison: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    """None: the row has no target (reported for information)."""
    higher_is_better: bool | None = None
    metric: str = ""
    """The metric name it is recorded under (default: derived from ``case``)."""

    @property
    def metric_name(self) -> str:
        if self.metric:
            return self.metric
        return "".join(c if c.isalnum() else "_" for c in self.case.lower()).strip("_")


@dataclass(frozen=True)
class Outcome:
    rows: list[Row]
    section: str | None = None
    """The benchmark's detail section for BENCHMARKS.md, between ``start`` and ``end``."""
    start: str = ""
    end: str = ""
    notes: list[str] = field(default_factory=list)


def emit(section: str, start: str, end: str, write: bool) -> None:
    """What each benchmark's own ``main`` ends with: print the section, and with ``--write`` put it
    into BENCHMARKS.md."""
    print(section)
    if write:
        write_section(section, start, end)
        print(f"wrote {BENCHMARKS_MD}", file=sys.stderr)


def met_text(met: bool | None) -> str:
    return "—" if met is None else ("yes" if met else "**no**")
