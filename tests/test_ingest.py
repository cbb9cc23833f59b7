"""The ingest service (redisolar.services.ingest): a missing site is refused inside its write script,
nothing written; two round trips per write; exact derived state for appends and for backlog uploads
(batches older than the site's newest reading). Both backends, real Redis; expected values computed
here from the readings."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError

from redisolar.dao.fleet_hours import MS_PER_HOUR
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.scripts import run_scripts_collect
from redisolar.dao.timeseries.base import NO_SITE
from redisolar.dao.timeseries_dao import group_readings
from redisolar.errors import InvalidReading, SiteNotFound
from redisolar.models.site import MeterReading, MetricType, Site
from redisolar.services import Services, Settings, build_services
from redisolar.services.ingest import ingest, ingest_readings
from redisolar.timeutil import MS_PER_DAY, from_ms, to_ms, utcnow


def reading(site_id: int, at: datetime, gen: float, used: float = 1.0) -> MeterReading:
    return MeterReading(site_id=site_id, timestamp=at, wh_generated=gen, wh_used=used, temp_c=20.0)


def site(site_id: int) -> Site:
    return Site(
        id=site_id, capacity=5.0, panels=4, address="1 A St", city="Provo", state="UT", postal_code="84601"
    )


@pytest.fixture
def services(backend_server, client: redis.Redis) -> Iterator[Services]:  # type: ignore[no-untyped-def]
    settings = Settings(redis=backend_server.config(), timeseries_backend=backend_server.name)
    built = build_services(settings)
    yield built
    built.redis.close()


@pytest.fixture
def top() -> datetime:
    return utcnow().replace(minute=0, second=0, microsecond=0)


def all_keys(client: redis.Redis) -> set[str]:
    return set(client.scan_iter(count=1000))


# -- a missing site ------------------------------------------------------------------------------------
def test_the_write_script_refuses_a_missing_site_and_writes_nothing(
    services: Services, top: datetime
) -> None:
    dao = services.timeseries
    before = all_keys(services.redis)
    records = group_readings([reading(7, top, 5.0)])[7]
    reply = run_scripts_collect(services.redis, [dao.backend.write_call(7, records, require_site=True)])[0]
    assert isinstance(reply, ResponseError)
    assert str(reply) == NO_SITE
    assert all_keys(services.redis) == before


def test_ingest_of_a_missing_site_is_site_not_found_and_writes_nothing(
    services: Services, top: datetime
) -> None:
    before = all_keys(services.redis)
    with pytest.raises(SiteNotFound):
        ingest_readings(services, [reading(7, top, 5.0), reading(7, top - timedelta(hours=1), 3.0)])
    assert all_keys(services.redis) == before
    assert services.timeseries.get_latest_readings(7) == {}


def test_the_other_sites_of_a_batch_are_stored_with_their_derived_state(
    services: Services, top: datetime
) -> None:
    services.sites.insert_many(site(1), site(3))
    with pytest.raises(SiteNotFound):
        ingest_readings(services, [reading(1, top, 40.0), reading(2, top, 50.0), reading(3, top, 60.0)])
    lb = LeaderboardDao(services.redis, services.sites)
    assert lb.get_site_score(1, "generation", top.date()) == 40.0
    assert lb.get_site_score(2, "generation", top.date()) is None
    assert lb.get_site_score(3, "generation", top.date()) == 60.0
    assert services.timeseries.get_latest_readings(2) == {}
    assert services.timeseries.get_fleet_generation(top, 1).wh_generated == 100.0


def test_the_seed_dao_still_stores_readings_of_unregistered_sites(services: Services, top: datetime) -> None:
    assert services.timeseries.add_readings_batch([reading(9, top, 5.0)]) == 1
    assert services.timeseries.get_latest_reading(9, MetricType.WH_GENERATED) is not None


# -- round trips ------------------------------------------------------------------------------------------
class RoundTrips:
    """Counts what goes to Redis: each write to a connection's socket (a command, or a pipeline's
    commands sent at once: one round trip each, however the code sends them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        send = redis.connection.AbstractConnection.send_packed_command

        def counted_send(connection: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return send(connection, *args, **kwargs)

        monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counted_send)


@pytest.mark.standalone_only  # counts socket writes; a cluster sends each node's share on its own
def test_a_reading_costs_two_round_trips(
    services: Services, top: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.sites.insert(site(1))
    # scripts loaded, backend known, today's board created (its first write adds the day to the index
    # of days: a third round trip once a day)
    ingest_readings(services, [reading(1, top, 1.0)])
    trips = RoundTrips(monkeypatch)
    ingest(services, {1: [(to_ms(top), 5.0, 1.0, 20.0)]})
    assert trips.count == 2
    trips.count = 0
    with pytest.raises(SiteNotFound):
        ingest(services, {2: [(to_ms(top), 5.0, 1.0, 20.0)]})
    assert trips.count == 1  # nothing written: no derived state to write


# -- exactness: appends and backlog uploads --------------------------------------------------------------
def expected_days(readings: list[MeterReading]) -> dict[tuple[int, int], float]:
    """(site, UTC day) -> generation as the history defines a day's sum: each hour's readings summed
    in time order, then the day's hour sums added in time order."""
    latest = {(r.site_id, r.timestamp_millis): r.wh_generated for r in readings}
    hours: dict[tuple[int, int], float] = {}
    for (site_id, ts), wh in sorted(latest.items()):
        hours[(site_id, ts // MS_PER_HOUR)] = hours.get((site_id, ts // MS_PER_HOUR), 0.0) + wh
    sums: dict[tuple[int, int], float] = {}
    for (site_id, hour), wh in sorted(hours.items()):
        key = (site_id, hour * MS_PER_HOUR // MS_PER_DAY)
        sums[key] = sums.get(key, 0.0) + wh
    return sums


def expected_hours(readings: list[MeterReading]) -> dict[int, float]:
    latest = {(r.site_id, r.timestamp_millis): r.wh_generated for r in readings}
    by_hour: dict[int, list[float]] = {}
    for (_, ts), wh in latest.items():
        by_hour.setdefault(ts // MS_PER_HOUR, []).append(wh)
    return {h: math.fsum(v) for h, v in by_hour.items()}


def check_exact(services: Services, readings: list[MeterReading], top: datetime) -> None:
    dao = services.timeseries
    lb = LeaderboardDao(services.redis, services.sites)
    for (site_id, day), total in expected_days(readings).items():
        assert lb.get_site_score(site_id, "generation", from_ms(day * MS_PER_DAY).date()) == total
    hours = expected_hours(readings)
    pipe = services.redis.pipeline(transaction=False)  # one GET per hour: each hour is its own slot
    for h in hours:
        pipe.get(dao.keys.fleet_hour_total_key(h))
    stored = pipe.execute()
    assert [None if v is None else float(v) for v in stored] == pytest.approx(list(hours.values()), rel=1e-12)
    latest = {(r.site_id, r.timestamp_millis): r for r in readings}
    for site_id in {r.site_id for r in readings}:
        points = dao.get_readings_range(
            site_id, MetricType.WH_GENERATED, top - timedelta(days=5), top + timedelta(hours=1)
        )
        want = sorted((ts, r.wh_generated) for (s, ts), r in latest.items() if s == site_id)
        assert [(to_ms(p.timestamp), p.value) for p in points] == want


def hourly(sites: range, top: datetime, hours: int) -> list[MeterReading]:
    return [reading(s, top - timedelta(hours=h), float(s * 100 + h) / 7) for h in range(hours) for s in sites]


def test_time_ordered_multi_site_batches_are_exact(services: Services, top: datetime) -> None:
    services.sites.insert_many(*(site(s) for s in range(1, 6)))
    readings = sorted(hourly(range(1, 6), top, 60), key=lambda r: r.timestamp)
    for i in range(0, len(readings), 37):
        assert ingest_readings(services, readings[i : i + 37]) == len(readings[i : i + 37])
    check_exact(services, readings, top)


def test_backlog_uploads_older_than_the_newest_reading_are_exact(services: Services, top: datetime) -> None:
    """A logger online hourly uploads the 5-minute readings it kept (and re-sends some hourly ones),
    per site in time-ordered batches, all older than the site's newest reading."""
    services.sites.insert_many(*(site(s) for s in range(1, 4)))
    live = hourly(range(1, 4), top, 72)
    ingest_readings(services, sorted(live, key=lambda r: r.timestamp))
    backlog = [
        reading(s, top - timedelta(days=2) + timedelta(minutes=5 * k), (s + k % 11) * 1.25 + 0.1)
        for s in range(1, 4)
        for k in range(2 * 24 * 12)  # k % 12 == 0: a re-sent hourly reading with a new value
    ]
    for s in range(1, 4):
        mine = [r for r in backlog if r.site_id == s]
        for i in range(0, len(mine), 250):
            ingest_readings(services, mine[i : i + 250])
    check_exact(services, live + backlog, top)
    assert services.timeseries.backend.newest([1])[1] == to_ms(top)


def test_a_missing_site_is_not_found_before_its_batch_is_too_long(services: Services, top: datetime) -> None:
    window = timedelta(milliseconds=services.timeseries.default_retention)
    batch = [reading(7, top - window - timedelta(hours=1), 1.0), reading(7, top, 2.0)]
    with pytest.raises(SiteNotFound):
        ingest_readings(services, batch)
    services.sites.insert(site(7))
    with pytest.raises(InvalidReading):
        ingest_readings(services, batch)


def test_appends_one_reading_at_a_time_are_exact_even_after_a_writer_that_skips_the_cache(
    services: Services, top: datetime
) -> None:
    """Appends add to the cached sums of the newest reading's day and hour (RedisTimeSeries); a
    writer that changes the data without keeping that cache (an earlier version of the script: it
    writes the series and sets ``v`` only) invalidates it."""
    services.sites.insert(site(1))
    start = top - timedelta(hours=4)  # the 40 readings end before this hour (never in the future)
    readings = [reading(1, start + timedelta(minutes=5 * k), 0.1 * k + 1 / 3) for k in range(40)]
    dao = services.timeseries
    earlier: list[MeterReading] = []
    for k, r in enumerate(readings):
        ingest_readings(services, [r])
        if k == 20 and dao.backend.name == "redistimeseries":
            extra = reading(1, r.timestamp + timedelta(minutes=1), 7.25)  # the earlier version's write
            for metric, value in (
                (MetricType.WH_GENERATED, 7.25),
                (MetricType.WH_USED, 1.0),
                (MetricType.TEMP_C, 20.0),
            ):
                services.redis.execute_command(
                    "TS.ADD", dao.keys.timeseries_key(1, metric), extra.timestamp_millis, value
                )
            services.redis.hincrby(dao.keys.series_meta_key(1), "v", 1)
            earlier.append(extra)
    check_exact(services, readings + earlier, top)


def test_one_batch_of_thousands_of_sites_sets_every_derived_entry(services: Services, top: datetime) -> None:
    """The DAO's multi-site batch (no size limit: the CLI's loads, backfills) with one reading of each
    of 9,000 sites: every site gets its board score and its share of the fleet hour, however many
    members one day's board call or one hour's call then carries (a script's ``unpack`` stops near
    8,000 values)."""
    count = 9_000
    services.sites.insert_many(*(site(s) for s in range(1, count + 1)))
    at = top - timedelta(minutes=30)
    readings = [reading(s, at, float(s % 97) + 0.5) for s in range(1, count + 1)]
    assert ingest_readings(services, readings) == count
    day = at.date()
    lb = LeaderboardDao(services.redis, services.sites)
    for s in (1, 4_321, count):
        assert lb.get_site_score(s, "generation", day) == float(s % 97) + 0.5
    assert services.redis.zcard(services.keys.daily_leaderboard_key("generation", day)) == count
    hour = to_ms(at) // MS_PER_HOUR
    total = float(services.redis.get(services.timeseries.keys.fleet_hour_total_key(hour)) or 0)
    assert total == pytest.approx(math.fsum(float(s % 97) + 0.5 for s in range(1, count + 1)), rel=1e-12)
