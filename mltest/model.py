"""Plain, frozen data shared by every layer. No logic beyond validation and formatting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["BUDGET_MODES", "DEVICE_MODES", "TIERS", "BudgetMode", "DeviceMode", "ShardSpec", "Tier"]

Tier = Literal["unit", "integration", "all"]
TIERS: tuple[Tier, ...] = ("unit", "integration", "all")

DeviceMode = Literal["cuda", "auto", "cpu"]
"""How the integration tier picks its device.

``cuda``: a GPU is required; without one the session fails at start (the default).
``auto``: CUDA when available, else CPU; unmet ``gpu`` requirements skip.
``cpu``: an explicit CPU run; ``gpu``-marked tests skip with the reason.
"""
DEVICE_MODES: tuple[DeviceMode, ...] = ("cuda", "auto", "cpu")

BudgetMode = Literal["fail", "warn", "off"]
BUDGET_MODES: tuple[BudgetMode, ...] = ("fail", "warn", "off")


@dataclass(frozen=True)
class ShardSpec:
    """Shard ``index`` (1-based) of ``total`` CI runners."""

    index: int
    total: int

    def __post_init__(self) -> None:
        if self.total < 1 or not 1 <= self.index <= self.total:
            raise ValueError(f"shard {self.index}/{self.total} is out of range: use I/N with 1 <= I <= N")

    def __str__(self) -> str:
        return f"{self.index}/{self.total}"
