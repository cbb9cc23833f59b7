"""Leaderboards in sorted sets (the seed's Step 4 API).

- ``capacity``: one sorted set, kept by the sites DAO as sites are created, changed and deleted.
- ``generation`` and ``efficiency``: one sorted set per UTC day, kept exact at ingest (see
  :mod:`redisolar.dao.daily_boards`); without a ``day`` argument, methods use today's (UTC) boards.

Members are ``site:ID``. Reading a page costs two round trips whatever its length: the ranks, then the
sites' fields in one pipeline (a site's hash lives in its own slot, ``{site:ID}``, so no script could
read them together on a cluster; redis-py's cluster pipeline sends each node its share).

Sharded day boards (``FLEET_SHARDS`` = S > 1: a site's scores are in part ``site_id % S``): readers merge
the S parts in the same number of round trips. Order and ranks are those of one board (ZREVRANGE's:
score descending, equal scores by member descending, byte-wise): a page of ranks ``offset + 1 ..
offset + limit`` reads the first ``offset + limit`` of each part and merges them (at most S × that many
rows); a site's rank is the sum over the parts of the members ordered before it (``lb_around.lua``,
which also returns the neighbours of that position in each part); counts, sums add up, the highest
and lowest are the parts' extremes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import redis
from redis.client import Pipeline

from redisolar.dao.board_sums import BoardStats, board_stats, queue_board_stats, resum, stats_of
from redisolar.dao.daily_boards import HOURS_PER_DAY, DailyBoards, day_number_of, day_of, efficiency_percent
from redisolar.dao.key_manager import LEADERBOARD_TYPES, KeyManager, key_manager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.sites.hashes import text
from redisolar.errors import InvalidQuery
from redisolar.localtime import fleet_today, local_day_hours
from redisolar.models.site import LeaderboardEntry, check_site_id
from redisolar.timeutil import utcnow

MAX_PAGE = 1000


class LeaderboardDao:
    """Rankings of sites by capacity, and by each UTC day's generation and efficiency."""

    def __init__(
        self,
        redis_client: redis.Redis,
        site_dao: SiteDaoRedis | None = None,
        *,
        keys: KeyManager | None = None,
    ) -> None:
        self.redis = redis_client
        self.keys = keys or key_manager
        self.site_dao = site_dao or SiteDaoRedis(redis_client, keys=self.keys)

    # -- keys --------------------------------------------------------------------------------------
    def leaderboard_key(self, leaderboard_type: str, day: date | None = None, shard: int = 0) -> str:
        """The sorted set of a leaderboard (``day`` defaults to today, UTC, for daily boards; ``shard``
        is the part of a sharded day board)."""
        if leaderboard_type == "capacity":
            return self.keys.capacity_leaderboard_key()
        if leaderboard_type in ("generation", "efficiency"):
            return self.keys.daily_leaderboard_key(leaderboard_type, day or utcnow().date(), shard)
        raise InvalidQuery(
            f"Unknown leaderboard type: {leaderboard_type!r} (use one of {', '.join(LEADERBOARD_TYPES)})"
        )

    def leaderboard_keys(self, leaderboard_type: str, day: date | None = None) -> list[str]:
        """Every part of a leaderboard (one but for sharded day boards)."""
        if leaderboard_type == "capacity":
            return [self.leaderboard_key(leaderboard_type)]
        return [self.leaderboard_key(leaderboard_type, day, k) for k in self.keys.shards()]

    def site_board_key(self, leaderboard_type: str, site_id: int, day: date | None = None) -> str:
        """The part of a leaderboard that holds a site's score."""
        shard = 0 if leaderboard_type == "capacity" else self.keys.fleet_shard(site_id)
        return self.leaderboard_key(leaderboard_type, day, shard)

    # -- writes (scores set directly; ingest keeps the daily boards current by itself) --------------
    def update_capacity_leaderboard(self, site_id: int, capacity: float) -> None:
        """Set a site's capacity score (kW)."""
        self._set_scores(self.keys.capacity_leaderboard_key(), {self.keys.member(site_id): float(capacity)})

    def _set_scores(self, key: str, scores: dict[str, float | None]) -> None:
        """Set (or with None remove) members' scores, keeping the board's running sum."""
        run_scripts(self.redis, [self._scores_call(key, scores)])

    def _scores_call(self, key: str, scores: dict[str, float | None]) -> ScriptCall:
        args = [x for member, score in scores.items() for x in (member, "" if score is None else repr(score))]
        return ScriptCall(script("zset_set"), (key, self.keys.board_sum_key(key)), tuple(args))

    def update_generation_leaderboard(
        self, site_id: int, total_generation: float, day: date | None = None
    ) -> None:
        """Set a site's generation score (Wh) for a day (default today, UTC)."""
        self._set_daily("generation", site_id, total_generation, day)

    def update_efficiency_leaderboard(
        self, site_id: int, efficiency_percent: float, day: date | None = None
    ) -> None:
        """Set a site's efficiency score (%) for a day (default today, UTC)."""
        self._set_daily("efficiency", site_id, efficiency_percent, day)

    def _set_daily(self, kind: str, site_id: int, score: float, day: date | None) -> None:
        day = day or utcnow().date()
        self._set_scores(self.site_board_key(kind, site_id, day), {self.keys.member(site_id): float(score)})
        self.redis.zadd(self.keys.leaderboard_days_key(), {str(day_number_of(day)): day_number_of(day)})

    # -- reads -------------------------------------------------------------------------------------
    def get_capacity_leaders(self, limit: int = 10, offset: int = 0) -> list[LeaderboardEntry]:
        """Top sites by capacity."""
        return self.get_leaders("capacity", limit, offset)

    def get_generation_leaders(
        self, limit: int = 10, offset: int = 0, day: date | None = None
    ) -> list[LeaderboardEntry]:
        """Top sites by a day's generation (default today, UTC)."""
        return self.get_leaders("generation", limit, offset, day)

    def get_efficiency_leaders(
        self, limit: int = 10, offset: int = 0, day: date | None = None
    ) -> list[LeaderboardEntry]:
        """Top sites by a day's efficiency (default today, UTC)."""
        return self.get_leaders("efficiency", limit, offset, day)

    def get_leaders(
        self, leaderboard_type: str, limit: int = 10, offset: int = 0, day: date | None = None
    ) -> list[LeaderboardEntry]:
        """A page of a leaderboard, best first, ranks starting at ``offset + 1``."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidQuery(f"limit must be 1..{MAX_PAGE} and offset not negative")
        keys = self.leaderboard_keys(leaderboard_type, day)
        if len(keys) == 1:
            return self._page(keys[0], offset, offset + limit - 1)
        return self._entries(self._merged_top(keys, offset + limit)[offset:], offset)

    def _page(self, key: str, first: int, last: int) -> list[LeaderboardEntry]:
        """Ranks ``first..last`` (0-based) of a board with their sites, in two round trips."""
        rows: Any = self.redis.zrange(key, first, last, desc=True, withscores=True)
        return self._entries(rows, first)

    def _merged_top(self, keys: Sequence[str], count: int) -> list[tuple[str, float]]:
        """The first ``count`` members of a sharded board, in its order: the first ``count`` of each
        part, merged (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zrange(key, 0, count - 1, desc=True, withscores=True)
        return _in_order(row for rows in pipe.execute() for row in rows)[:count]

    def _entries(self, rows: Any, first: int) -> list[LeaderboardEntry]:
        """Entries for ``(member, score)`` rows of ranks ``first``, ``first + 1``... (0-based), with
        their sites (one round trip); a site deleted since it was ranked is left out."""
        ids = [int(text(member).rsplit(":", 1)[1]) for member, _ in rows]
        sites = self.site_dao.find_by_ids(ids)
        return [
            LeaderboardEntry(site=site, score=float(score), rank=first + 1 + i)
            for i, ((_, score), site) in enumerate(zip(rows, sites, strict=True))
            if site is not None
        ]

    def get_site_rank(self, site_id: int, leaderboard_type: str, day: date | None = None) -> int | None:
        """A site's 1-based rank (highest score first), or None when it is not on the board."""
        keys = self.leaderboard_keys(leaderboard_type, day)
        if len(keys) == 1:
            rank = self._rank(keys[0], site_id)
            return rank + 1 if rank is not None else None
        around = self._around(keys, leaderboard_type, site_id, day, 0)
        return around[0] + 1 if around is not None else None

    def _rank(self, key: str, site_id: int) -> int | None:
        """The 0-based rank of a site on a board, best first."""
        rank: Any = self.redis.zrevrank(key, self.keys.member(site_id))
        return int(rank) if rank is not None else None

    def get_site_score(self, site_id: int, leaderboard_type: str, day: date | None = None) -> float | None:
        """A site's score, or None when it is not on the board."""
        score = self.redis.zscore(
            self.site_board_key(leaderboard_type, site_id, day), self.keys.member(site_id)
        )
        return float(score) if score is not None else None

    def get_leaderboard_stats(self, leaderboard_type: str, day: date | None = None) -> dict[str, Any]:
        """Count, highest, lowest and average score: one round trip whatever the board's size (the
        average comes from the board's running sum)."""
        keys = self.leaderboard_keys(leaderboard_type, day)
        return _stats_body(board_stats(self.redis, keys[0]) if len(keys) == 1 else self._merged_stats(keys))

    def get_leaders_and_stats(
        self, leaderboard_type: str, limit: int = 10, offset: int = 0, day: date | None = None
    ) -> tuple[list[LeaderboardEntry], dict[str, Any]]:
        """:meth:`get_leaders` and :meth:`get_leaderboard_stats` together: an unsharded board's page
        and statistics are read in one round trip, then its sites in a second."""
        if not 1 <= limit <= MAX_PAGE or offset < 0:
            raise InvalidQuery(f"limit must be 1..{MAX_PAGE} and offset not negative")
        keys = self.leaderboard_keys(leaderboard_type, day)
        if len(keys) != 1:
            entries = self.get_leaders(leaderboard_type, limit, offset, day)
            return entries, self.get_leaderboard_stats(leaderboard_type, day)
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(keys[0], offset, offset + limit - 1, desc=True, withscores=True)
        queue_board_stats(pipe, keys[0])
        rows, *stats = pipe.execute()
        return self._entries(rows, offset), _stats_body(stats_of(self.redis, keys[0], stats))

    def _merged_stats(self, keys: Sequence[str]) -> BoardStats:
        """The statistics of a sharded board: its parts' (one round trip; one more per part whose
        running sum is missing)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
            pipe.zrange(key, 0, 0, withscores=True)
            pipe.zrange(key, -1, -1, withscores=True)
            pipe.get(KeyManager.board_sum_key(key))
        replies = pipe.execute()
        parts = [(key, *replies[4 * i : 4 * i + 4]) for i, key in enumerate(keys)]
        parts = [part for part in parts if part[1]]
        if not parts:
            return BoardStats(0, 0.0, 0.0, 0.0)
        return BoardStats(
            sum(int(count) for _, count, _, _, _ in parts),
            max(float(highest[0][1]) for _, _, _, highest, _ in parts),
            min(float(lowest[0][1]) for _, _, lowest, _, _ in parts),
            sum(
                float(total) if total is not None else resum(self.redis, key) for key, _, _, _, total in parts
            ),
        )

    def get_sites_around_rank(
        self, site_id: int, leaderboard_type: str, context_size: int = 2, day: date | None = None
    ) -> list[LeaderboardEntry]:
        """The site's entry with up to ``context_size`` neighbours on each side (empty if absent)."""
        if not 0 <= context_size <= 100:
            raise InvalidQuery("context must be between 0 and 100")
        keys = self.leaderboard_keys(leaderboard_type, day)
        if len(keys) == 1:
            rank = self._rank(keys[0], site_id)
            if rank is None:
                return []
            return self._page(keys[0], max(0, rank - context_size), rank + context_size)
        around = self._around(keys, leaderboard_type, site_id, day, context_size)
        if around is None:
            return []
        rank, rows = around
        return self._entries(rows, rank - min(rank, context_size))

    def _around(
        self, keys: Sequence[str], leaderboard_type: str, site_id: int, day: date | None, context: int
    ) -> tuple[int, list[tuple[str, float]]] | None:
        """A site's 0-based rank on a sharded board and the rows of ranks ``rank - context .. rank +
        context`` (fewer at the top or bottom), or None when it is not on the board: two round trips
        (its score, then ``lb_around.lua`` on every part)."""
        member = self.keys.member(site_id)
        score = self.redis.zscore(self.site_board_key(leaderboard_type, site_id, day), member)
        if score is None:
            return None
        args = (repr(float(score)), member, context)
        replies = run_scripts(self.redis, [ScriptCall(script("lb_around"), (key,), args) for key in keys])
        rank = sum(int(before) for before, _ in replies)
        rows = _in_order(
            (text(flat[i]), float(flat[i + 1])) for _, flat in replies for i in range(0, len(flat), 2)
        )
        mine = next(i for i, (m, _) in enumerate(rows) if m == member)
        return rank, rows[max(0, mine - context) : mine + context + 1]

    # -- maintenance -------------------------------------------------------------------------------
    def fleet_today(self, timezone: str = "UTC") -> date:
        """The date a fleet's day boards mean by "today": the current date in ``timezone``
        (``DEFAULT_TIMEZONE``), unless no site has reached it yet (no board of that date) while
        yesterday's board exists: then yesterday, the date the fleet's sites are still living (a US
        fleet under the default UTC between 00:00 and 08:00 UTC). One round trip."""
        today = fleet_today(timezone)
        number = day_number_of(today)
        pipe = self.redis.pipeline(transaction=False)
        index = self.keys.leaderboard_days_key()
        pipe.zscore(index, number)
        pipe.zscore(index, number - 1)
        has_today, has_yesterday = pipe.execute()
        if has_today is None and has_yesterday is not None:
            return today - timedelta(days=1)
        return today

    def daily_board_days(self) -> list[date]:
        """The UTC days that have daily boards, oldest first."""
        days: Any = self.redis.zrange(self.keys.leaderboard_days_key(), 0, -1)
        return [day_of(int(d)) for d in days]

    def remove_site_from_leaderboards(self, site_id: int) -> None:
        """Remove a site from the capacity board and from every day's generation/efficiency boards."""
        self.remove_site_from_day_boards(site_id, capacity=True)

    def remove_site_from_day_boards(self, site_id: int, *, capacity: bool = False) -> None:
        """Remove a site from every day's generation/efficiency boards (and versions), and with
        ``capacity`` from the capacity board (a deleted site; a changed time zone keeps it there)."""
        member = self.keys.member(check_site_id(site_id))
        shard = self.keys.fleet_shard(site_id)
        days = self.daily_board_days()
        boards = [self.keys.capacity_leaderboard_key()] * capacity + [
            self.keys.daily_leaderboard_key(kind, day, shard)
            for day in days
            for kind in ("generation", "efficiency")
        ]

        def forget_versions(pipe: Pipeline) -> None:
            for day in days:
                pipe.hdel(self.keys.daily_versions_key(day, shard), member)

        run_scripts(
            self.redis, [self._scores_call(board, {member: None}) for board in boards], forget_versions
        )

    def rebuild_capacity_leaderboard(self) -> int:
        """Repair the capacity board (with every site index) from the sites. Returns the site count.

        The board is an index of the sites (``sites_index.lua`` keeps it with each site's write), so
        its rebuild is the sites' reconcile: one single-slot call per site that differs."""
        return self.site_dao.reconcile().sites

    def rescore_efficiency(self, site_id: int, capacity_kw: float, timezone: str | None = None) -> None:
        """After a capacity change: the site's efficiency on every day board, from its generation
        score there and the length of its local day of that date in ``timezone`` (two round trips;
        the boards' running sums follow)."""
        days = self.daily_board_days()
        member = self.keys.member(site_id)
        shard = self.keys.fleet_shard(site_id)
        pipe = self.redis.pipeline(transaction=False)
        for day in days:
            pipe.zscore(self.keys.daily_leaderboard_key("generation", day, shard), member)
        calls = [
            self._scores_call(
                self.keys.daily_leaderboard_key("efficiency", day, shard),
                {member: efficiency_percent(float(generation), capacity_kw, _hours(day, timezone))},
            )
            for day, generation in zip(days, pipe.execute(), strict=True)
            if generation is not None
        ]
        run_scripts(self.redis, calls)

    def resum_daily_boards(self, day: date) -> None:
        """Recompute a day's boards' running sums exactly (they accumulate rounding as they change)."""
        for kind in ("generation", "efficiency"):
            for key in self.leaderboard_keys(kind, day):
                resum(self.redis, key)

    def clear_daily_boards(self, days: Sequence[date]) -> None:
        """Delete every part of these days' boards, versions and sums (before a rebuild of them from
        the readings: the reconciler, after ``FLEET_SHARDS`` changed). One key a command: the parts
        may be on different nodes."""
        for day in days:
            for shard in self.keys.shards():
                generation = self.keys.daily_leaderboard_key("generation", day, shard)
                efficiency = self.keys.daily_leaderboard_key("efficiency", day, shard)
                self.redis.delete(
                    generation,
                    efficiency,
                    self.keys.daily_versions_key(day, shard),
                    self.keys.board_sum_key(generation),
                    self.keys.board_sum_key(efficiency),
                )  # one part's keys share a slot

    def prune_daily_boards(self, keep_days: int) -> int:
        """Forget day boards older than ``keep_days`` days before today (their keys expire by
        themselves), and index the days of that window whose boards exist but are missing from the
        index (a crash after a board's creation, before its day was indexed). Returns how many days
        were dropped from the index."""
        today = day_number_of(utcnow().date())
        dropped = self.redis.zremrangebyscore(self.keys.leaderboard_days_key(), "-inf", today - keep_days - 1)
        DailyBoards(self.redis, self.keys, 0).repair_index(range(today - keep_days, today + 2))
        return int(dropped)


def _hours(day: date, timezone: str | None) -> float:
    """The length of the local ``day`` in ``timezone`` (24 without one, or at the ends of the calendar)."""
    if not timezone:
        return HOURS_PER_DAY
    try:
        return local_day_hours(day, timezone)
    except (ValueError, OverflowError):
        return HOURS_PER_DAY


def _in_order(rows: Any) -> list[tuple[str, float]]:
    """``(member, score)`` rows in a board's order: score descending, then member descending (as
    ZREVRANGE orders equal scores; members are ASCII, so text order is byte order)."""
    return sorted(((text(m), float(score)) for m, score in rows), key=lambda r: (r[1], r[0]), reverse=True)


def _stats_body(stats: BoardStats) -> dict[str, Any]:
    """A board's statistics as the API answers them (count, highest, lowest and average score)."""
    if stats.count == 0:
        return {"total_sites": 0, "highest_score": 0, "lowest_score": 0, "average_score": 0}
    return {
        "total_sites": stats.count,
        "highest_score": stats.highest,
        "lowest_score": stats.lowest,
        "average_score": stats.total / stats.count,
    }
