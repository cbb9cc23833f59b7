"""The logic the REST API and the CLI share, on top of the DAOs.

:class:`Services` bundles one Redis client and the DAOs built on it; :func:`build_services` makes one
from :class:`~redisolar.settings.Settings` (re-exported here). Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import redis

from redisolar.dao.daily_boards import efficiency_percent
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.keys_dao import ApiKeyDao
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.site_dao_redis import SearchMode, SiteDaoRedis
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.errors import ApiKeyNotFound, InvalidInput, SiteNotFound
from redisolar.models.api_key import ApiKey
from redisolar.models.site import Site
from redisolar.settings import Settings
from redisolar.tasks.leaderboard_updater import LeaderboardUpdater
from redisolar.timeutil import utcnow

MAX_EXPIRES_DAYS = 36_500
__all__ = ["MAX_EXPIRES_DAYS", "Services", "Settings", "build_services"]


@dataclass
class Services:
    """One Redis client and the DAOs that use it."""

    settings: Settings
    redis: redis.Redis
    keys: KeyManager
    sites: SiteDaoRedis
    timeseries: TimeSeriesDao
    leaderboards: LeaderboardDao
    updater: LeaderboardUpdater
    api_keys: ApiKeyDao

    # -- sites, kept consistent with their data and the leaderboards --------------------------------
    def create_site(self, site: Site) -> Site:
        """Register a new site (409 ``SiteAlreadyExists`` if the id is taken); it joins the capacity board."""
        self.sites.create(site)
        return site

    def update_site(self, site: Site) -> Site:
        """Replace a site's details; a capacity change re-scores its efficiency in every day board."""
        old = self.sites.find_by_id(site.id)
        if old is None:
            raise SiteNotFound(site.id)
        self.sites.update(site)
        if old.capacity != site.capacity:
            self.leaderboards.rescore_efficiency(site.id, site.capacity)
        return site

    def delete_site(self, site_id: int) -> None:
        """Delete a site, its readings and its leaderboard entries (404 if unknown)."""
        if not self.sites.exists(site_id):
            raise SiteNotFound(site_id)
        self.timeseries.delete_site_data(site_id)
        self.leaderboards.remove_site_from_leaderboards(site_id)
        self.sites.delete(site_id)

    def delete_all_sites(self) -> int:
        """Delete every site with its data and leaderboard entries. Returns how many were deleted."""
        sites = self.sites.find_all()
        for site in sites:
            self.delete_site(site.id)
        return len(sites)

    # -- API keys ---------------------------------------------------------------------------------------
    def create_api_key(
        self,
        scope: str,
        *,
        sites: Iterable[int] = (),
        all_sites: bool = False,
        name: str = "",
        expires_days: float | None = None,
    ) -> tuple[ApiKey, str]:
        """A new API key and its secret (shown once; only its hash is stored). Raises
        :class:`InvalidInput` for a scope, sites or name that do not fit together."""
        try:
            key = ApiKey("0" * 12, scope, name, tuple(sites), all_sites)
        except ValueError as exc:
            raise InvalidInput(str(exc), {"_schema": [str(exc)]}) from None
        if expires_days is not None and not 0 < expires_days <= MAX_EXPIRES_DAYS:
            raise InvalidInput(f"expires_days must be between 0 and {MAX_EXPIRES_DAYS}")
        return self.api_keys.create(key, expires_days)

    def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key at once, in every process (404 ``ApiKeyNotFound`` if there is none)."""
        if not self.api_keys.revoke(key_id):
            raise ApiKeyNotFound(key_id)

    # -- fleet summary ----------------------------------------------------------------------------------
    def summary(self, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
        """The fleet over the last ``hours`` clock hours (the current one included, so the period
        starts on the hour): sites, capacity, generation, reporting sites, capacity factor.

        Three round trips whatever the fleet size: the generation comes from the hourly fleet
        totals kept at ingest, the capacity from a server-side sum.
        """
        fleet = self.timeseries.get_fleet_generation(now or utcnow(), hours)
        total_capacity = self.sites.get_total_capacity()
        period_hours = (fleet.period_end - fleet.period_start) / timedelta(hours=1)
        efficiency = efficiency_percent(fleet.wh_generated, total_capacity, period_hours)
        return {
            "total_sites": self.sites.count(),
            "active_sites_24h": fleet.active_sites,
            "total_capacity_kw": total_capacity,
            "total_generation_24h_wh": fleet.wh_generated,
            "overall_efficiency_percent": efficiency or 0.0,
            "period_start": fleet.period_start.isoformat(),
            "period_end": fleet.period_end.isoformat(),
        }


def build_services(settings: Settings, client: redis.Redis | None = None) -> Services:
    """Services on ``client`` (default: a new pooled client from ``settings.redis``); connects lazily."""
    client = client if client is not None else settings.redis.client()
    keys = KeyManager(settings.redis.redis_key_prefix)
    sites = SiteDaoRedis(client, keys=keys, search=cast(SearchMode, settings.search_backend))
    timeseries = TimeSeriesDao(
        client, keys=keys, retention_ms=settings.retention_ms, backend=settings.timeseries_backend
    )
    leaderboards = LeaderboardDao(client, sites, keys=keys)
    updater = LeaderboardUpdater(
        client, keys=keys, site_dao=sites, timeseries_dao=timeseries, leaderboard_dao=leaderboards
    )
    return Services(settings, client, keys, sites, timeseries, leaderboards, updater, ApiKeyDao(client, keys))
