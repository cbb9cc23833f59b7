"""The migration from the key layout before ``{sites}``: old-layout data written by hand, as the earlier
``sites_upsert.lua`` left it, is re-indexed under ``{sites}`` with running totals; the old keys go; a
second run does nothing."""

from __future__ import annotations

import math

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.migrate import MigrationReport, migrate
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.models.site import Coordinate, Site
from redisolar.services.sites import stats_of

KEYS = KeyManager()
SITES = [
    Site(1, 0.1 + 0.2, 10, "1 Main St", "Oakland", "CA", "94601", Coordinate(37.8, -122.27)),
    Site(2, 7.25, 20, "2 Elm St", "Austin", "TX", "73301"),
    Site(3, 1e-3, 3, "3 Oak Ave", "oakland ", "ca", "94602", Coordinate(37.7, -122.2)),
]


def write_old_layout(client: redis.Redis, sites: list[Site]) -> None:
    """What the earlier version stored: hashes without a version, untagged indexes."""
    p = KEYS.key_prefix
    for site in sites:
        fields = {
            "id": site.id,
            "capacity": repr(site.capacity),
            "panels": site.panels,
            "address": site.address,
            "city": site.city,
            "state": site.state,
            "postal_code": site.postal_code,
        }
        if site.coordinate is not None:
            fields |= {"lat": repr(site.coordinate.lat), "lng": repr(site.coordinate.lng)}
            client.geoadd(f"{p}sites:geo", (site.coordinate.lng, site.coordinate.lat, site.id))
        client.hset(KEYS.site_key(site.id), mapping=fields)
        client.zadd(f"{p}sites:ids", {str(site.id): site.id})
        client.sadd(f"{p}sites:state:{site.state.strip().upper()}", site.id)
        client.sadd(f"{p}sites:city:{site.city.strip().lower()}", site.id)
        client.sadd(f"{p}sites:postal:{site.postal_code.strip().upper()}", site.id)
        client.zadd(f"{p}capacity_leaderboard", {KEYS.member(site.id): site.capacity})
    client.set(f"{p}capacity_leaderboard:sum", repr(math.fsum(s.capacity for s in sites)))


def test_old_layout_is_moved_under_the_sites_tag(client: redis.Redis) -> None:
    write_old_layout(client, SITES)
    client.sadd(f"{KEYS.key_prefix}sites:state:GONE", 99)  # a left-over set: deleted too
    assert migrate(client, KEYS) == MigrationReport(sites=3, deleted_keys=12)
    assert not [k for k in client.scan_iter(match=f"{KEYS.key_prefix}sites:*") if "{sites}" not in k]
    assert not client.exists(f"{KEYS.key_prefix}capacity_leaderboard")
    dao = SiteDaoRedis(client, search="core")
    assert dao.find_all() == SITES
    assert dao.stats() == stats_of(SITES)
    assert dao.get_total_capacity() == math.fsum(s.capacity for s in SITES)
    assert [s.id for s in dao.search(state="CA", city="oakland").sites] == [1, 3]
    assert [s.id for s in dao.search(lat=37.8, lng=-122.27, radius_km=1).sites] == [1]
    board = client.zrange(KEYS.capacity_leaderboard_key(), 0, -1, withscores=True)
    assert board == [(KEYS.member(3), 1e-3), (KEYS.member(1), 0.1 + 0.2), (KEYS.member(2), 7.25)]
    dao.update(Site(2, 1.5, 20, "2 Elm St", "Dallas", "TX", "75001"))  # versionless hashes take writes
    assert dao.search(city="austin").total == 0 and dao.search(city="dallas").total == 1


def test_a_second_run_and_a_new_store_do_nothing(client: redis.Redis, raw_client: redis.Redis) -> None:
    assert migrate(client, KEYS) == MigrationReport(0, 0)
    write_old_layout(client, SITES)
    migrate(client, KEYS)
    before = {k: raw_client.dump(k) for k in raw_client.scan_iter()}
    assert migrate(client, KEYS) == MigrationReport(0, 0)
    assert {k: raw_client.dump(k) for k in raw_client.scan_iter()} == before
