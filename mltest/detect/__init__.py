"""Regression detection: pure functions over plain sequences, returning dataclasses. No I/O, no store."""

from __future__ import annotations

from mltest.detect.changepoint import ChangePointMethod, RankScan, change_points

__all__ = ["ChangePointMethod", "RankScan", "change_points"]
