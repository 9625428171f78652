"""Which CUDA devices this process may use, and whether a ``gpu`` requirement is met.

Probing never creates a CUDA context in a process that does not run tests: counting uses
``torch.cuda.device_count()`` (driver initialisation only) or ``nvidia-smi``; free memory is read
only in the process that runs the test that asked for it.

Tests simulate GPUs by replacing :func:`device_count` and :func:`memory` on this module; every
caller looks them up here at call time.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from mltest.envinfo import nvidia_smi

__all__ = [
    "DeviceMemory",
    "GpuRequirement",
    "device_count",
    "memory",
    "peak_memory",
    "peak_memory_reset",
    "torch_available",
    "unmet_reason",
    "visible_tokens",
]

GIB = 1024**3


@dataclass(frozen=True)
class DeviceMemory:
    index: int
    name: str
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class GpuRequirement:
    """What ``@pytest.mark.gpu(count=1, min_memory_gb=None)`` asks for. ``min_memory_gb`` is GiB free per device."""

    count: int = 1
    min_memory_gb: float | None = None

    @classmethod
    def from_marker_args(cls, args: tuple[object, ...], kwargs: Mapping[str, object]) -> GpuRequirement:
        """Validate the marker's arguments; ValueError names what is wrong."""
        unknown = set(kwargs) - {"count", "min_memory_gb"}
        if unknown:
            raise ValueError(f"unknown argument(s) {', '.join(sorted(unknown))}; use count=, min_memory_gb=")
        if len(args) > 1 or (args and "count" in kwargs):
            raise ValueError("takes at most one positional argument, the GPU count")
        count = args[0] if args else kwargs.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a whole number >= 1, got {count!r}")
        memory_gb = kwargs.get("min_memory_gb")
        if memory_gb is not None and (
            isinstance(memory_gb, bool) or not isinstance(memory_gb, (int, float)) or not memory_gb > 0
        ):
            raise ValueError(f"min_memory_gb must be a number > 0, got {memory_gb!r}")
        return cls(count, None if memory_gb is None else float(memory_gb))

    def __str__(self) -> str:
        text = f"{self.count} GPU{'s' if self.count != 1 else ''}"
        if self.min_memory_gb is not None:
            text += f" with {self.min_memory_gb:g} GiB free each"
        return text


def torch_available() -> bool:
    return importlib.util.find_spec("torch") is not None


def _cvd_tokens(environ: Mapping[str, str]) -> list[str] | None:
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    tokens = []
    for token in raw.split(","):
        token = token.strip()
        if not token or token == "-1":  # CUDA stops at the first invalid entry; -1 hides everything
            break
        tokens.append(token)
    return tokens


def _smi_rows_visible(environ: Mapping[str, str]) -> list[list[str]]:
    """nvidia-smi rows (index, uuid, name, total MiB, free MiB) filtered and ordered by CUDA_VISIBLE_DEVICES.

    Integer tokens are matched to nvidia-smi's index (PCI order: set CUDA_DEVICE_ORDER=PCI_BUS_ID
    for them to agree with CUDA), other tokens as UUID prefixes.
    """
    rows = nvidia_smi("index,uuid,name,memory.total,memory.free")
    tokens = _cvd_tokens(environ)
    if tokens is None:
        return rows
    chosen = []
    for token in tokens:
        match = [r for r in rows if (r[0] == token if token.isdigit() else r[1].startswith(token))]
        if not match:
            break
        chosen.append(match[0])
    return chosen


def device_count(environ: Mapping[str, str] | None = None) -> int:
    """Number of CUDA devices this process can see, without creating a CUDA context."""
    environ = os.environ if environ is None else environ
    if torch_available():
        import torch

        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    return len(_smi_rows_visible(environ))


def visible_tokens(environ: Mapping[str, str] | None = None) -> list[str]:
    """The caller's device tokens, in CUDA order: ``CUDA_VISIBLE_DEVICES`` entries, else ``0..n-1``.

    Workers are pinned by handing each one of these tokens, so an outer ``CUDA_VISIBLE_DEVICES=2,3``
    is respected (never ``worker % device_count()``).
    """
    environ = os.environ if environ is None else environ
    count = device_count(environ)
    tokens = _cvd_tokens(environ)
    if tokens is None:
        tokens = [str(i) for i in range(count)]
    return tokens[:count]


def memory(index: int) -> DeviceMemory:
    """Free and total memory of visible device ``index``. Creates a CUDA context when torch is used."""
    if torch_available():
        import torch

        free, total = torch.cuda.mem_get_info(index)
        return DeviceMemory(index, torch.cuda.get_device_name(index), int(free), int(total))
    row = _smi_rows_visible(os.environ)[index]
    mib = 1024**2
    return DeviceMemory(index, row[2], int(float(row[4]) * mib), int(float(row[3]) * mib))


def unmet_reason(
    requirement: GpuRequirement,
    count: int,
    memory_of: Callable[[int], DeviceMemory],
    where: str = "",
) -> str | None:
    """Why ``requirement`` is not met by ``count`` visible devices, or None when it is."""
    if count < requirement.count:
        visible = f"{count} visible{where}"
        return f"needs {requirement}, {visible}"
    if requirement.min_memory_gb is None:
        return None
    # A test uses devices 0..count-1 of what it sees (cuda:0 first), so those are the ones checked.
    need = requirement.min_memory_gb * GIB
    short = [m for m in map(memory_of, range(requirement.count)) if m.free_bytes < need]
    if not short:
        return None
    detail = "; ".join(
        f"GPU {m.index} ({m.name}) has {m.free_bytes / GIB:.1f} of {m.total_bytes / GIB:.1f} GiB free" for m in short
    )
    return f"needs {requirement}{where}: {detail}"


def peak_memory_reset() -> None:
    """Reset CUDA peak-memory counters, if this process has initialised CUDA (never initialises it)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.reset_peak_memory_stats()


def peak_memory() -> tuple[int, int] | None:
    """(max allocated, max reserved) bytes since the last reset, or None when CUDA is not in use here."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_initialized():
        return None
    return int(torch.cuda.max_memory_allocated()), int(torch.cuda.max_memory_reserved())
