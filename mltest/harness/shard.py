"""Deterministic sharding of the selected tests across N CI runners."""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

__all__ = ["assign_shards"]


def assign_shards(
    nodeids: Sequence[str],
    total: int,
    durations: Mapping[str, float] | None = None,
    default_duration: float = 1.0,
) -> list[int]:
    """The 0-based shard of each node id, so that every test lands in exactly one shard.

    Longest-processing-time first: tests sorted by (duration descending, node id) go one by one to
    the shard with the least expected time (lowest index on ties). With no durations every test
    weighs the same and this is a round-robin over the sorted node ids. The result depends only on
    the set of node ids, never on collection order, so every runner (and every xdist worker)
    computes the same split.
    """
    if total < 1:
        raise ValueError(f"shard count must be >= 1, got {total}")
    durations = durations or {}
    weight = {nid: durations.get(nid, default_duration) for nid in nodeids}
    order = sorted(set(nodeids), key=lambda nid: (-weight[nid], nid))
    heap = [(0.0, index) for index in range(total)]
    shard_of: dict[str, int] = {}
    for nid in order:
        load, index = heapq.heappop(heap)
        shard_of[nid] = index
        heapq.heappush(heap, (load + weight[nid], index))
    return [shard_of[nid] for nid in nodeids]
