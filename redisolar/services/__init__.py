"""The use cases the REST API and the CLI share, on top of the DAOs.

Design:

- :class:`Services` is a **container**: one Redis client and the DAOs built on it, made once per app
  (or CLI command) by :func:`build_services` from :class:`~redisolar.settings.Settings`, kept in
  ``app.extensions["redisolar"]``. It holds no logic of its own.
- Each **use case** is a plain function in the module of its resource, taking the container first:
  :mod:`~redisolar.services.sites` (create, update, delete, search, stats),
  :mod:`~redisolar.services.analytics` (latest readings, series, site analytics),
  :mod:`~redisolar.services.leaderboards` (a page, a site's position, reconcile),
  :mod:`~redisolar.services.summary` (the fleet summary, cached per process),
  :mod:`~redisolar.services.keys` (API keys) and :mod:`~redisolar.services.ingest` (readings: series,
  boards and rollups). A use case validates what only it can know (a site exists, a board type), calls
  the DAOs, and raises domain errors (:mod:`redisolar.errors`); it knows nothing of Flask.
- A view parses its request, calls **one** use-case function and renders the result; the CLI calls the
  same functions. DAOs own their keys; a use case that touches several aggregates (deleting a site) is
  where they are combined.

The methods :meth:`Services.create_site` … :meth:`Services.summary` are one-line shorthands for the use
cases, kept for scripts and tests written against them. Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.keys_dao import ApiKeyDao
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.site_dao_redis import SearchMode, SiteDaoRedis
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.models.api_key import ApiKey
from redisolar.models.site import Site
from redisolar.services import keys as key_cases
from redisolar.services import sites as site_cases
from redisolar.services import summary as summary_cases
from redisolar.services.keys import MAX_EXPIRES_DAYS
from redisolar.settings import Settings
from redisolar.tasks.leaderboard_updater import LeaderboardUpdater

__all__ = ["MAX_EXPIRES_DAYS", "Services", "Settings", "build_services"]


@dataclass
class Services:
    """One Redis client and the DAOs that use it (the container every use case takes)."""

    settings: Settings
    redis: redis.Redis
    keys: KeyManager
    sites: SiteDaoRedis
    timeseries: TimeSeriesDao
    leaderboards: LeaderboardDao
    updater: LeaderboardUpdater
    api_keys: ApiKeyDao
    summary_cache: dict[str, Any] = field(default_factory=dict)
    """This process's cached fleet summary (:mod:`redisolar.services.summary`)."""
    extensions: dict[str, Any] = field(default_factory=dict)
    """Long-lived helpers of a use case, one per container, created on first use (the alert evaluator,
    which keeps its caches between passes), by name."""

    # -- shorthands for the use cases (see the module docstring) ------------------------------------
    def create_site(self, site: Site) -> Site:
        """:func:`redisolar.services.sites.create_site`."""
        return site_cases.create_site(self, site)

    def update_site(self, site: Site) -> Site:
        """:func:`redisolar.services.sites.update_site`."""
        return site_cases.update_site(self, site)

    def delete_site(self, site_id: int) -> None:
        """:func:`redisolar.services.sites.delete_site`."""
        site_cases.delete_site(self, site_id)

    def delete_all_sites(self) -> int:
        """:func:`redisolar.services.sites.delete_all_sites`."""
        return site_cases.delete_all_sites(self)

    def create_api_key(
        self,
        scope: str,
        *,
        sites: Iterable[int] = (),
        all_sites: bool = False,
        name: str = "",
        expires_days: float | None = None,
    ) -> tuple[ApiKey, str]:
        """:func:`redisolar.services.keys.create_api_key`."""
        return key_cases.create_api_key(
            self, scope, sites=sites, all_sites=all_sites, name=name, expires_days=expires_days
        )

    def revoke_api_key(self, key_id: str) -> None:
        """:func:`redisolar.services.keys.revoke_api_key`."""
        key_cases.revoke_api_key(self, key_id)

    def summary(self, now: datetime | None = None, hours: int = 24) -> dict[str, Any]:
        """:func:`redisolar.services.summary.fleet_summary`."""
        return summary_cases.fleet_summary(self, now, hours)


def build_services(settings: Settings, client: redis.Redis | None = None) -> Services:
    """Services on ``client`` (default: a new pooled client from ``settings.redis``); connects lazily."""
    client = client if client is not None else settings.redis.client()
    keys = KeyManager(settings.redis.redis_key_prefix, fleet_shards=settings.fleet_shards)
    sites = SiteDaoRedis(client, keys=keys, search=cast(SearchMode, settings.search_backend))
    timeseries = TimeSeriesDao(
        client,
        keys=keys,
        retention_ms=settings.retention_ms,
        backend=settings.timeseries_backend,
        history_ms=settings.history_ms,
    )
    leaderboards = LeaderboardDao(client, sites, keys=keys)
    updater = LeaderboardUpdater(
        client,
        keys=keys,
        site_dao=sites,
        timeseries_dao=timeseries,
        leaderboard_dao=leaderboards,
        fleet_timezone=settings.default_timezone,
    )
    return Services(settings, client, keys, sites, timeseries, leaderboards, updater, ApiKeyDao(client, keys))
