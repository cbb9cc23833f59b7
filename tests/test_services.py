"""The use cases (redisolar.services.*), called as the API and the CLI call them: on a Services
container, without Flask."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
import redis

from redisolar.config import Config
from redisolar.errors import ApiKeyNotFound, InvalidQuery, SiteNotFound
from redisolar.models.site import Site
from redisolar.services import (
    Services,
    Settings,
    analytics,
    build_services,
    keys,
    leaderboards,
    sites,
    summary,
)
from redisolar.services.ingest import ingest
from redisolar.settings import DEFAULTS
from redisolar.timeutil import to_ms, utcnow

if TYPE_CHECKING:
    from conftest import BackendServer

SITE = Site(1, 4.0, 10, "1 Main St", "Oakland", "CA", "94601", timezone="UTC")  # no coordinate: the default


@pytest.fixture
def services(backend_server: BackendServer, client: redis.Redis) -> Iterator[Services]:
    config = backend_server.config()
    built = build_services(Settings(redis=config, timeseries_backend=backend_server.name))
    yield built
    built.redis.close()


def test_settings_defaults_come_from_settings_py() -> None:
    settings, config = Settings(), Config()
    assert settings.retention_days == DEFAULTS["RETENTION_DAYS"]
    assert settings.summary_cache_seconds == DEFAULTS["SUMMARY_CACHE_SECONDS"]
    assert config.redis_key_prefix == DEFAULTS["REDIS_KEY_PREFIX"] == "ru102py-app:"
    assert (config.socket_timeout, config.retries) == (
        DEFAULTS["REDIS_SOCKET_TIMEOUT"],
        DEFAULTS["REDIS_RETRIES"],
    )
    assert (
        Config(redis_host="h", redis_port=6380, redis_db=2, redis_key_prefix="p:").describe()
        == "redis://h:6380/2"
    )


def test_site_life_cycle(services: Services) -> None:
    sites.create_site(services, SITE)
    assert sites.get_site(services, 1) == SITE
    when = utcnow() - timedelta(minutes=5)
    assert ingest(services, {1: [(to_ms(when), 100.0, 10.0, 20.0)]}) == 1
    sites.update_site(services, replace(SITE, capacity=8.0))
    assert [e.score for e in leaderboards.board_page(services, "capacity").entries] == [8.0]
    assert set(analytics.latest_readings(services, 1).value) != set()
    sites.delete_site(services, 1)
    with pytest.raises(SiteNotFound):
        sites.get_site(services, 1)
    with pytest.raises(SiteNotFound):
        sites.delete_site(services, 1)
    assert leaderboards.board_page(services, "capacity").entries == []
    assert services.redis.dbsize() <= 2  # (at most the board-days index and the fleet's last-seen set)


def test_update_and_reads_of_an_unknown_site(services: Services) -> None:
    with pytest.raises(SiteNotFound):
        sites.update_site(services, SITE)
    with pytest.raises(SiteNotFound):
        analytics.latest_readings(services, 1)
    with pytest.raises(SiteNotFound):
        analytics.latest_readings(services, 1, known=False)
    sites.create_site(services, SITE)
    assert analytics.latest_readings(services, 1, known=True).value == {}


def test_leaderboard_use_cases(services: Services) -> None:
    with pytest.raises(InvalidQuery, match="Invalid leaderboard type"):
        leaderboards.board_page(services, "speed")
    sites.create_site(services, SITE)
    page = leaderboards.board_page(services, "generation")
    assert page.day == utcnow().date() and page.entries == [] and page.stats["total_sites"] == 0
    assert leaderboards.site_position(services, "generation", 1) is None
    position = leaderboards.site_position(services, "capacity", 1)
    assert position is not None and (position.rank, position.score, position.day) == (1, 4.0, None)
    report = leaderboards.reconcile(services)
    assert report is not None and report.sites == 1


def test_summary_is_cached_per_settings(services: Services) -> None:
    assert summary.cached_fleet_summary(services)["total_sites"] == 0
    cached = replace(services, settings=replace(services.settings, summary_cache_seconds=60))
    assert summary.cached_fleet_summary(cached)["total_sites"] == 0
    sites.create_site(services, SITE)
    assert summary.cached_fleet_summary(cached)["total_sites"] == 0  # the cached answer
    assert summary.cached_fleet_summary(services)["total_sites"] == 1


def test_key_use_cases(services: Services) -> None:
    key, secret = keys.create_api_key(services, "write", sites=[1], name="meter")
    assert secret and keys.get_api_key(services, key.id).name == "meter"
    assert [k.id for k in keys.list_api_keys(services)] == [key.id]
    keys.revoke_api_key(services, key.id)
    with pytest.raises(ApiKeyNotFound):
        keys.revoke_api_key(services, key.id)
    with pytest.raises(ApiKeyNotFound):
        keys.get_api_key(services, key.id)
