"""The fleet summary: sites, capacity and generation over the last 24 clock hours."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from redisolar.dao.board_sums import resum
from redisolar.dao.daily_boards import efficiency_percent
from redisolar.dao.key_manager import KeyManager
from redisolar.errors import InvalidQuery
from redisolar.timeutil import as_utc, from_ms, to_ms, utcnow

if TYPE_CHECKING:
    from redisolar.services import Services

MS_PER_HOUR = 3_600_000


def fleet_summary(services: Services, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
    """The fleet over the last ``hours`` clock hours (the current one included, so the period starts
    on the hour): sites, capacity, generation, reporting sites, capacity factor.

    One round trip whatever the fleet size (a second one the first time the capacity board's running
    sum is missing): the generation comes from the hourly fleet totals kept at ingest
    (:meth:`FleetHours.queue_period`), the capacity from the capacity board's running sum, the count
    of sites from the id index, all read in the same pipeline.
    """
    if not 1 <= hours <= 24 * 400:
        raise InvalidQuery("hours must be between 1 and 9600")
    now = as_utc(now or utcnow())
    last = to_ms(now) // MS_PER_HOUR
    start = (last - hours + 1) * MS_PER_HOUR
    keys = services.keys
    board = keys.capacity_leaderboard_key()
    pipe = services.redis.pipeline(transaction=False)
    read_fleet = services.timeseries.fleet.queue_period(pipe, start, range(last - hours + 1, last + 1))
    pipe.get(KeyManager.board_sum_key(board))
    pipe.zcard(keys.site_ids_key())
    replies = pipe.execute()
    generated, active = read_fleet(replies)
    stored_capacity, site_count = replies[-2:]
    total_capacity = float(stored_capacity) if stored_capacity is not None else resum(services.redis, board)
    generated = max(generated, 0.0)
    period_start = from_ms(start)
    efficiency = efficiency_percent(generated, total_capacity, (now - period_start) / timedelta(hours=1))
    return {
        "total_sites": int(site_count),
        "active_sites_24h": active,
        "total_capacity_kw": total_capacity,
        "total_generation_24h_wh": generated,
        "overall_efficiency_percent": efficiency or 0.0,
        "period_start": period_start.isoformat(),
        "period_end": now.isoformat(),
    }


def cached_fleet_summary(services: Services) -> dict[str, Any]:
    """:func:`fleet_summary`, kept in this process for ``settings.summary_cache_seconds`` (0: computed
    every time)."""
    ttl = services.settings.summary_cache_seconds
    if not ttl:
        return fleet_summary(services)
    now = time.monotonic()
    hit = services.summary_cache.get("summary")
    if hit is not None and hit[0] > now:
        return dict(hit[1])
    summary = fleet_summary(services)
    services.summary_cache["summary"] = (now + ttl, summary)
    return dict(summary)
