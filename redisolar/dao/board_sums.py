"""Leaderboard statistics that cost the same whatever the fleet size.

Every leaderboard has a running sum of its scores (``KeyManager.board_sum_key``), kept by each write
(``zset_set.lua``, ``lb_set.lua``, ``sites_index.lua``: the capacity board's, absolutely). Count, highest and
lowest come from the sorted set itself, so the statistics of a board are one round trip. A board
whose running sum is missing (not known yet) gets it recomputed once, exactly (``zset_sum.lua``); the
reconciler recomputes sums to wipe out the rounding that increments accumulate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis.client import Pipeline

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script


@dataclass(frozen=True)
class BoardStats:
    """How many members a board has, its highest and lowest score, and the sum of its scores."""

    count: int
    highest: float
    lowest: float
    total: float


def resum(client: redis.Redis, board_key: str) -> float:
    """Recompute a board's running sum exactly from its scores and store it (O(members))."""
    call = ScriptCall(script("zset_sum"), (board_key, KeyManager.board_sum_key(board_key)), ())
    return float(run_scripts(client, [call])[0])


def board_stats(client: redis.Redis, board_key: str) -> BoardStats:
    """A board's statistics: one round trip (two the first time a running sum is missing)."""
    pipe = client.pipeline(transaction=False)
    queue_board_stats(pipe, board_key)
    return stats_of(client, board_key, pipe.execute())


def queue_board_stats(pipe: Pipeline, board_key: str) -> None:
    """Queue the four commands of a board's statistics on ``pipe`` (so a caller can
    read them in the round trip of its own commands); :func:`stats_of` reads their replies."""
    pipe.zcard(board_key)
    pipe.zrange(board_key, 0, 0, withscores=True)
    pipe.zrange(board_key, -1, -1, withscores=True)
    pipe.get(KeyManager.board_sum_key(board_key))


def stats_of(client: redis.Redis, board_key: str, replies: Sequence[Any]) -> BoardStats:
    """A board's statistics from the replies of :func:`queue_board_stats` (one more round trip the
    first time its running sum is missing)."""
    count, lowest, highest, total = replies
    if not count:
        return BoardStats(0, 0.0, 0.0, 0.0)
    return BoardStats(int(count), _score(highest), _score(lowest), _total(client, board_key, total))


def board_sum(client: redis.Redis, board_key: str) -> float:
    """The sum of a board's scores: one round trip (two the first time it is missing)."""
    return _total(client, board_key, client.get(KeyManager.board_sum_key(board_key)))


def _total(client: redis.Redis, board_key: str, stored: Any) -> float:
    return float(stored) if stored is not None else resum(client, board_key)


def _score(rows: Any) -> float:
    return float(rows[0][1]) if rows else 0.0
