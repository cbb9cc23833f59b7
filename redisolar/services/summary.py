"""The fleet summary: sites, capacity and generation over the last 24 clock hours."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from redisolar.dao.daily_boards import efficiency_percent
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from redisolar.services import Services


def fleet_summary(services: Services, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
    """The fleet over the last ``hours`` clock hours (the current one included, so the period starts
    on the hour): sites, capacity, generation, reporting sites, capacity factor.

    Three round trips whatever the fleet size: the generation comes from the hourly fleet totals
    kept at ingest, the capacity from a server-side sum.
    """
    fleet = services.timeseries.get_fleet_generation(now or utcnow(), hours)
    total_capacity = services.sites.get_total_capacity()
    period_hours = (fleet.period_end - fleet.period_start) / timedelta(hours=1)
    efficiency = efficiency_percent(fleet.wh_generated, total_capacity, period_hours)
    return {
        "total_sites": services.sites.count(),
        "active_sites_24h": fleet.active_sites,
        "total_capacity_kw": total_capacity,
        "total_generation_24h_wh": fleet.wh_generated,
        "overall_efficiency_percent": efficiency or 0.0,
        "period_start": fleet.period_start.isoformat(),
        "period_end": fleet.period_end.isoformat(),
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
