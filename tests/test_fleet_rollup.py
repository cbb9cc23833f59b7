"""The fleet's hourly rollup: absolute, versioned, exact under retries, refusals, deletion; rebuilt by
the reconciler. Both backends, real Redis; expected totals computed here from the readings."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest
import redis

from redisolar.dao.fleet_hours import MS_PER_HOUR
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.scripts import run_scripts
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.timeseries_dao import TimeSeriesDao, group_readings
from redisolar.errors import InvalidReading
from redisolar.models.site import MeterReading, Site
from redisolar.tasks.leaderboard_updater import LeaderboardUpdater
from redisolar.timeutil import to_ms, utcnow

RETENTION = 2 * 24 * MS_PER_HOUR


def reading(site_id: int, at: datetime, gen: float) -> MeterReading:
    return MeterReading(site_id=site_id, timestamp=at, wh_generated=gen, wh_used=1.0, temp_c=20.0)


def site(site_id: int) -> Site:
    return Site(
        id=site_id, capacity=5.0, panels=4, address="1 A St", city="Provo", state="UT", postal_code="84601"
    )


@pytest.fixture
def dao(client: redis.Redis, backend_server) -> TimeSeriesDao:  # type: ignore[no-untyped-def]
    return TimeSeriesDao(client, backend=backend_server.name, retention_ms=RETENTION)


@pytest.fixture
def top() -> datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0)


def hour_totals(dao: TimeSeriesDao, hours: range) -> dict[int, float]:
    pipe = dao.redis.pipeline(transaction=False)  # one GET per hour: each hour is its own slot
    for h in hours:
        pipe.get(dao.keys.fleet_hour_total_key(h))
    values = pipe.execute()
    return {h: float(v) for h, v in zip(hours, values, strict=True) if v is not None}


def expected(readings: list[MeterReading], gone: set[int] = frozenset()) -> dict[int, float]:  # type: ignore[assignment]
    latest = {(r.site_id, r.timestamp_millis): r.wh_generated for r in readings if r.site_id not in gone}
    by_hour: dict[int, list[float]] = {}
    for (_, ts), wh in latest.items():
        by_hour.setdefault(ts // MS_PER_HOUR, []).append(wh)
    return {h: math.fsum(v) for h, v in by_hour.items()}


def window(top: datetime) -> range:
    last = to_ms(top) // MS_PER_HOUR
    return range(last - 48, last + 1)


def data(top: datetime, sites: tuple[int, ...] = (1, 2, 3, 101)) -> list[MeterReading]:
    return [reading(s, top - timedelta(minutes=15 * i), float(s + i % 5)) for s in sites for i in range(40)]


def test_retried_fleet_update_changes_nothing(dao: TimeSeriesDao, top: datetime) -> None:
    batch = data(top)
    dao.add_readings_batch(batch)
    before = hour_totals(dao, window(top))
    assert before == pytest.approx(expected(batch), rel=1e-12)
    records = group_readings(batch)  # the same writes again: the scripts return the same absolute totals
    dao.add_validated_records(records)
    dao.add_validated_records(records)
    assert hour_totals(dao, window(top)) == pytest.approx(before, rel=1e-12)


def test_replayed_update_of_an_older_version_does_not_go_backwards(dao: TimeSeriesDao, top: datetime) -> None:
    dao.add_reading(reading(1, top, 10.0))
    hour = to_ms(top) // MS_PER_HOUR
    stale = dao.fleet.calls([(1, hour, 1, 999.0)])  # version 1: older than any real write
    run_scripts(dao.redis, stale)
    run_scripts(dao.redis, stale)  # a retried pipeline
    assert hour_totals(dao, range(hour, hour + 1)) == {hour: 10.0}
    dao.add_reading(reading(1, top, 25.0))  # an overwrite: exact change
    dao.add_reading(reading(2, top + timedelta(minutes=1), 5.0))
    assert hour_totals(dao, range(hour, hour + 1)) == {hour: 30.0}


def test_overwrites_change_the_totals_exactly(dao: TimeSeriesDao, top: datetime) -> None:
    batch = data(top)
    dao.add_readings_batch(batch)
    overwrites = [reading(2, top - timedelta(minutes=30), 999.0), reading(3, top, 0.0), reading(1, top, 7.0)]
    dao.add_readings_batch(overwrites)
    assert hour_totals(dao, window(top)) == pytest.approx(expected(batch + overwrites), rel=1e-12)


def test_refused_site_of_a_batch_leaves_the_others_exact(
    client: redis.Redis, dao: TimeSeriesDao, top: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sites = SiteDaoRedis(client)
    sites.insert_many(site(1), site(2), site(3))
    old = top - timedelta(hours=50)  # retention is 48 hours
    dao.add_reading(reading(2, old, 1.0))
    batch = [reading(1, top, 40.0), reading(2, old + timedelta(minutes=5), 2.0), reading(3, top, 60.0)]
    # site 2's newest reading moves far ahead after the batch passed the DAO's own retention check, so
    # its script refuses its part (as when another writer advances it meanwhile)
    records = group_readings(batch)
    dao._check_retention(records)  # passes now
    dao.add_reading(reading(2, top + timedelta(milliseconds=1), 3.0))  # the other writer
    monkeypatch.setattr(dao, "_check_retention", lambda by_site: None)  # the check ran before it
    with pytest.raises(InvalidReading):
        dao.add_validated_records(records)
    lb = LeaderboardDao(client, sites)
    assert lb.get_site_score(1, "generation", top.date()) == 40.0
    assert lb.get_site_score(3, "generation", top.date()) == 60.0
    hour = to_ms(top) // MS_PER_HOUR
    assert hour_totals(dao, range(hour, hour + 1)) == {hour: 40.0 + 3.0 + 60.0}


def test_deletion_removes_the_site_absolutely(dao: TimeSeriesDao, top: datetime) -> None:
    batch = data(top)
    dao.add_readings_batch(batch)
    dao.delete_site_data(3)
    dao.delete_site_data(101)
    assert hour_totals(dao, window(top)) == pytest.approx(expected(batch, {3, 101}), rel=1e-12)
    fleet = dao.get_fleet_generation(utcnow(), 24)
    assert fleet.active_sites == 2


def test_reconciler_rebuilds_a_corrupted_or_missing_rollup(
    client: redis.Redis, dao: TimeSeriesDao, top: datetime
) -> None:
    sites = SiteDaoRedis(client)
    sites.insert_many(site(1), site(2), site(3), site(101))
    batch = data(top)
    dao.add_readings_batch(batch)
    hours = window(top)
    pipe = client.pipeline(transaction=False)
    for h in list(hours)[-5:]:
        pipe.delete(dao.keys.fleet_hour_bucket_key(h, 0))  # sites 1, 2, 3 lost
        pipe.set(dao.keys.fleet_hour_total_key(h), "1e300")  # and a corrupted total
    pipe.execute()
    client.hset(dao.keys.fleet_hour_bucket_key(hours[-1], 7), "700", b"\x00" * 16)  # a site that is gone
    client.sadd(dao.keys.fleet_hour_index_key(hours[-1]), 7)
    sites.delete(101)  # its readings stay (the sites DAO does not own them): the reconciler drops it
    updater = LeaderboardUpdater(client, timeseries_dao=dao, site_dao=sites)
    assert updater.update_all_leaderboards() is not None
    assert hour_totals(dao, hours) == pytest.approx(expected(batch, {101}), rel=1e-12)
    assert not client.exists(dao.keys.fleet_hour_bucket_key(hours[-1], 7))
    assert client.smembers(dao.keys.fleet_hour_index_key(hours[-1])) == {"0"}


def test_summary_reads_the_rollup_in_one_round_trip(dao: TimeSeriesDao, top: datetime) -> None:
    batch = data(top)
    dao.add_readings_batch(batch)
    now = utcnow()
    fleet = dao.get_fleet_generation(now, 24)
    start = to_ms(fleet.period_start)
    want = math.fsum(wh for h, wh in expected(batch).items() if h * MS_PER_HOUR >= start)
    assert fleet.wh_generated == pytest.approx(want, rel=1e-12)
    assert fleet.active_sites == 4


def test_a_partial_rebuild_repairs_the_recent_hours_only(
    client: redis.Redis, dao: TimeSeriesDao, top: datetime
) -> None:
    sites = SiteDaoRedis(client)
    sites.insert_many(site(1), site(2))
    batch = data(top, (1, 2))  # 40 readings 15 minutes apart: the last 10 hours
    dao.add_readings_batch(batch)
    hours = list(window(top))
    recent, older = hours[-1], hours[-8]
    for h in (recent, older):
        client.set(dao.keys.fleet_hour_total_key(h), "1e300")
    updater = LeaderboardUpdater(client, timeseries_dao=dao, site_dao=sites)
    updater.update_fleet_hours(hours=3)  # what a periodic pass does after its first one
    totals, truth = hour_totals(dao, window(top)), expected(batch)
    assert totals[recent] == pytest.approx(truth[recent], rel=1e-12)
    assert totals[older] == 1e300, "older hours are left to a full rebuild"
    updater.update_fleet_hours()
    assert hour_totals(dao, window(top))[older] == pytest.approx(truth[older], rel=1e-12)
