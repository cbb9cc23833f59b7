"""The storage contract, run on both time-series backends and checked against plain Python.

Each test runs once per backend (``core`` on plain Redis, ``redistimeseries`` on Redis Stack); the
expected answers are computed here from the same data, so both backends must agree with each other.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisolar import store
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.errors import InvalidQuery, InvalidReading
from redisolar.models.site import MeterReading, MetricType, Site
from redisolar.timeutil import UTC, from_ms, to_ms, utcnow

HOUR = timedelta(hours=1)
BASE = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)


def reading(site_id: int, at: datetime, gen: float, used: float = 1.0, temp: float = 20.0) -> MeterReading:
    return MeterReading(site_id=site_id, timestamp=at, wh_generated=gen, wh_used=used, temp_c=temp)


@pytest.fixture
def dao(client: redis.Redis, backend_server) -> TimeSeriesDao:  # type: ignore[no-untyped-def]
    return TimeSeriesDao(client, backend=backend_server.name)


def values(dao: TimeSeriesDao, site_id: int, metric: MetricType, start: datetime, end: datetime) -> list:
    return [(p.timestamp, p.value) for p in dao.get_readings_range(site_id, metric, start, end)]


# -- duplicates and order -------------------------------------------------------------------------
def test_backend_matches_the_server(dao: TimeSeriesDao, backend_server) -> None:  # type: ignore[no-untyped-def]
    auto = TimeSeriesDao(dao.redis)
    assert auto.backend.name == backend_server.name


def test_resent_reading_replaces_the_stored_one(dao: TimeSeriesDao) -> None:
    dao.add_reading(reading(1, BASE, 10.0, 4.0))
    dao.add_reading(reading(1, BASE, 10.0, 4.0))
    dao.add_reading(reading(1, BASE, 25.0, 5.0))
    end = BASE + HOUR
    assert values(dao, 1, MetricType.WH_GENERATED, BASE, end) == [(BASE, 25.0)]
    assert values(dao, 1, MetricType.NET_GENERATION, BASE, end) == [(BASE, 20.0)]
    assert dao.get_site_analytics(1, BASE, end).reading_count == 1  # type: ignore[union-attr]


def test_last_duplicate_in_a_batch_wins(dao: TimeSeriesDao) -> None:
    stored = dao.add_readings_batch(
        [reading(1, BASE, 1.0), reading(1, BASE + HOUR, 2.0), reading(1, BASE, 3.0)]
    )
    assert stored == 2
    assert values(dao, 1, MetricType.WH_GENERATED, BASE, BASE + 2 * HOUR) == [(BASE, 3.0), (BASE + HOUR, 2.0)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=st.permutations(list(range(30))), chunk=st.integers(1, 30))
def test_out_of_order_arrival_reads_back_in_order(dao: TimeSeriesDao, order: list[int], chunk: int) -> None:
    dao.redis.flushall()
    batch = [reading(1, BASE + i * timedelta(minutes=37), float(i)) for i in order]
    for start in range(0, len(batch), chunk):
        dao.add_readings_batch(batch[start : start + chunk])
    got = values(dao, 1, MetricType.WH_GENERATED, BASE, BASE + timedelta(days=2))
    assert got == [(BASE + i * timedelta(minutes=37), float(i)) for i in range(30)]


# -- range ends and empty ranges ------------------------------------------------------------------
def test_range_includes_its_start_and_excludes_its_end(dao: TimeSeriesDao) -> None:
    dao.add_readings_batch([reading(1, BASE + i * HOUR, float(i)) for i in range(5)])
    got = values(dao, 1, MetricType.WH_GENERATED, BASE + HOUR, BASE + 3 * HOUR)
    assert got == [(BASE + HOUR, 1.0), (BASE + 2 * HOUR, 2.0)]
    one_ms = timedelta(milliseconds=1)
    assert values(dao, 1, MetricType.WH_GENERATED, BASE + 3 * HOUR - one_ms, BASE + 3 * HOUR) == []
    assert values(dao, 1, MetricType.WH_GENERATED, BASE + 3 * HOUR, BASE + 3 * HOUR + one_ms) == [
        (BASE + 3 * HOUR, 3.0)
    ]


def test_naive_datetimes_mean_utc(dao: TimeSeriesDao) -> None:
    dao.add_reading(reading(1, datetime(2024, 1, 15, 12), 7.0))
    got = dao.get_readings_range(
        1, MetricType.WH_GENERATED, datetime(2024, 1, 15, 12), datetime(2024, 1, 15, 13)
    )
    assert [(p.timestamp, p.value) for p in got] == [(datetime(2024, 1, 15, 12, tzinfo=UTC), 7.0)]


def test_empty_ranges_and_unknown_sites(dao: TimeSeriesDao) -> None:
    dao.add_readings_batch([reading(1, BASE + i * HOUR, 1.0) for i in range(3)])
    assert values(dao, 1, MetricType.WH_GENERATED, BASE, BASE) == []
    assert values(dao, 1, MetricType.WH_GENERATED, BASE + 5 * HOUR, BASE + 9 * HOUR) == []
    assert values(dao, 2, MetricType.WH_GENERATED, BASE, BASE + 9 * HOUR) == []
    assert dao.get_aggregated_data(2, MetricType.WH_USED, BASE, BASE + 9 * HOUR, 3600000, "sum") == []
    assert dao.get_site_analytics(2, BASE, BASE + 9 * HOUR) is None
    assert dao.get_site_analytics(1, BASE + 5 * HOUR, BASE + 9 * HOUR) is None
    assert dao.get_latest_reading(2, MetricType.TEMP_C) is None
    assert dao.get_latest_readings(2) == {}
    assert dao.add_readings_batch([]) == 0


def test_reversed_range_and_bad_aggregation_are_refused(dao: TimeSeriesDao) -> None:
    with pytest.raises(InvalidQuery):
        dao.get_readings_range(1, MetricType.WH_GENERATED, BASE + HOUR, BASE)
    with pytest.raises(InvalidQuery):
        dao.get_aggregated_data(1, MetricType.WH_GENERATED, BASE, BASE + HOUR, 1000, "median")
    with pytest.raises(InvalidQuery):
        dao.get_aggregated_data(1, MetricType.WH_GENERATED, BASE, BASE + HOUR, 0, "avg")


def test_latest_readings_of_every_metric(dao: TimeSeriesDao) -> None:
    dao.add_readings_batch([reading(3, BASE + 2 * HOUR, 9.0, 4.0, -5.5), reading(3, BASE, 1.0, 1.0, 1.0)])
    latest = dao.get_latest_readings(3)
    assert {m: (p.timestamp, p.value) for m, p in latest.items()} == {
        MetricType.WH_GENERATED: (BASE + 2 * HOUR, 9.0),
        MetricType.WH_USED: (BASE + 2 * HOUR, 4.0),
        MetricType.TEMP_C: (BASE + 2 * HOUR, -5.5),
        MetricType.NET_GENERATION: (BASE + 2 * HOUR, 5.0),
    }


# -- retention --------------------------------------------------------------------------------------
def test_retention_edge(client: redis.Redis, backend_server) -> None:  # type: ignore[no-untyped-def]
    dao = TimeSeriesDao(client, backend=backend_server.name, retention_ms=3 * 3600_000)
    dao.add_reading(reading(1, BASE + 10 * HOUR, 10.0))
    dao.add_reading(reading(1, BASE + 7 * HOUR, 7.0))  # exactly at the edge: accepted
    with pytest.raises(InvalidReading, match="retention"):
        dao.add_reading(reading(1, BASE + 7 * HOUR - timedelta(milliseconds=1), 6.0))
    # a batch with one reading too old writes nothing, for any of its sites
    with pytest.raises(InvalidReading):
        dao.add_readings_batch(
            [reading(2, BASE, 1.0), reading(1, BASE + 8 * HOUR, 8.0), reading(1, BASE, 0.5)]
        )
    assert values(dao, 1, MetricType.WH_GENERATED, BASE, BASE + 11 * HOUR) == [
        (BASE + 7 * HOUR, 7.0),
        (BASE + 10 * HOUR, 10.0),
    ]
    assert values(dao, 2, MetricType.WH_GENERATED, BASE, BASE + 11 * HOUR) == []
    # a newer reading moves the window: what falls out of it is no longer visible
    dao.add_reading(reading(1, BASE + 12 * HOUR, 12.0))
    assert values(dao, 1, MetricType.WH_GENERATED, BASE, BASE + 13 * HOUR) == [
        (BASE + 10 * HOUR, 10.0),
        (BASE + 12 * HOUR, 12.0),
    ]
    # analytics of a range reaching before the window: that part from the hourly rollups (issue 9)
    analytics = dao.get_site_analytics(1, BASE, BASE + 13 * HOUR)
    assert analytics is not None and analytics.reading_count == 3 and analytics.min_generation == 7.0
    inside = dao.get_site_analytics(1, BASE + 9 * HOUR, BASE + 13 * HOUR)
    assert inside is not None and inside.reading_count == 2


def test_retention_counts_from_the_newest_reading_not_the_clock(dao: TimeSeriesDao) -> None:
    old = datetime(2020, 6, 1, tzinfo=UTC)
    dao.add_readings_batch([reading(1, old + i * HOUR, 1.0) for i in range(48)])
    assert len(values(dao, 1, MetricType.WH_GENERATED, old, old + timedelta(days=3))) == 48


def test_a_new_batch_spanning_more_than_the_window_is_refused(dao: TimeSeriesDao) -> None:
    with pytest.raises(InvalidReading):
        dao.add_readings_batch([reading(1, BASE, 1.0), reading(1, BASE + timedelta(days=31), 1.0)])
    assert dao.get_latest_readings(1) == {}


# -- aggregations against plain Python --------------------------------------------------------------
def python_aggregate(
    points: list[tuple[int, float]], bucket: int, aggregation: str
) -> list[tuple[int, float]]:
    buckets: dict[int, list[float]] = defaultdict(list)
    for ts, value in points:
        buckets[ts - ts % bucket].append(value)
    reduce = {
        "avg": lambda v: math.fsum(v) / len(v),
        "sum": math.fsum,
        "min": min,
        "max": max,
        "count": len,
        "first": lambda v: v[0],
        "last": lambda v: v[-1],
        "range": lambda v: max(v) - min(v),
    }[aggregation]
    return [(b, float(reduce(v))) for b, v in sorted(buckets.items())]


samples = st.lists(
    st.tuples(
        st.integers(0, 3 * 24 * 60),  # minute offset within three days
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
        st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
        st.floats(-50, 60, allow_nan=False, allow_infinity=False),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=samples,
    metric=st.sampled_from(list(MetricType)),
    aggregation=st.sampled_from(["avg", "sum", "min", "max", "count", "first", "last", "range"]),
    bucket_minutes=st.sampled_from([1, 7, 60, 360, 1440]),
    window=st.tuples(st.integers(0, 4 * 24 * 60), st.integers(0, 4 * 24 * 60)),
)
def test_aggregations_match_python(  # type: ignore[no-untyped-def]
    dao: TimeSeriesDao, data, metric, aggregation, bucket_minutes, window
) -> None:
    dao.redis.flushall()
    stored: dict[int, tuple[float, float, float]] = {}
    for minute, gen, used, temp in data:
        stored[to_ms(BASE) + minute * 60_000] = (gen, used, temp)
    dao.add_readings_batch([reading(1, from_ms(ts), g, u, t) for ts, (g, u, t) in stored.items()])
    start, end = to_ms(BASE) + min(window) * 60_000, to_ms(BASE) + max(window) * 60_000
    pick = {
        MetricType.WH_GENERATED: lambda g, u, t: g,
        MetricType.WH_USED: lambda g, u, t: u,
        MetricType.TEMP_C: lambda g, u, t: t,
        MetricType.NET_GENERATION: lambda g, u, t: g - u,
    }[metric]
    points = [(ts, pick(*stored[ts])) for ts in sorted(stored) if start <= ts < end]
    expected = python_aggregate(points, bucket_minutes * 60_000, aggregation)
    got = dao.get_aggregated_data(
        1, metric, from_ms(start), from_ms(end), bucket_minutes * 60_000, aggregation
    )
    assert [to_ms(p.timestamp) for p in got] == [b for b, _ in expected]
    for point, (_, value) in zip(got, expected, strict=True):
        assert point.value == pytest.approx(value, rel=1e-9, abs=1e-6)
    raw = dao.get_readings_range(1, metric, from_ms(start), from_ms(end))
    assert [(to_ms(p.timestamp), p.value) for p in raw] == points


def test_site_analytics_match_python_and_report_the_capacity_factor(
    client: redis.Redis, dao: TimeSeriesDao
) -> None:
    SiteDaoRedis(client).insert(
        Site(
            id=1, capacity=5.0, panels=10, address="1 Sun St", city="Fresno", state="CA", postal_code="93650"
        )
    )
    gens = [0.0, 100.0, 2500.5, 3000.25, 150.0, 0.0]
    batch = [reading(1, BASE + i * HOUR, g, 10.0 * i, 15.0 + i) for i, g in enumerate(gens)]
    dao.add_readings_batch(batch)
    analytics = dao.get_site_analytics(1, BASE, BASE + 6 * HOUR)
    assert analytics is not None
    assert analytics.reading_count == 6
    assert analytics.total_generated == pytest.approx(sum(gens))
    assert analytics.total_used == pytest.approx(sum(10.0 * i for i in range(6)))
    assert analytics.max_generation == 3000.25 and analytics.min_generation == 0.0
    assert analytics.avg_generation == pytest.approx(sum(gens) / 6)
    assert analytics.avg_temperature == pytest.approx(sum(15.0 + i for i in range(6)) / 6)
    # capacity factor: 100 x Wh / (kW x 1000 x hours)
    assert analytics.efficiency_percent == pytest.approx(100 * sum(gens) / (5.0 * 1000 * 6))
    assert analytics.period_start == BASE and analytics.period_end == BASE + 6 * HOUR


# -- protocols and decoding -----------------------------------------------------------------------
@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("decode", [True, False])
def test_any_client_protocol_and_decoding(backend_server, protocol: int, decode: bool) -> None:  # type: ignore[no-untyped-def]
    client = backend_server.client(protocol=protocol, decode_responses=decode)
    store.flush_all(client)
    try:
        dao = TimeSeriesDao(client)
        assert dao.backend.name == backend_server.name
        dao.add_readings_batch([reading(1, BASE + i * HOUR, 1.5 * i, 0.25, 20.0) for i in range(4)])
        assert values(dao, 1, MetricType.NET_GENERATION, BASE, BASE + 4 * HOUR) == [
            (BASE + i * HOUR, 1.5 * i - 0.25) for i in range(4)
        ]
        agg = dao.get_aggregated_data(1, MetricType.WH_GENERATED, BASE, BASE + 4 * HOUR, 7200_000, "sum")
        assert [(p.timestamp, p.value) for p in agg] == [(BASE, 1.5), (BASE + 2 * HOUR, 7.5)]
        assert dao.get_latest_reading(1, MetricType.TEMP_C).value == 20.0  # type: ignore[union-attr]
        assert dao.get_site_analytics(1, BASE, BASE + 4 * HOUR).reading_count == 4  # type: ignore[union-attr]
        lb = LeaderboardDao(client)
        assert lb.get_site_score(1, "generation", BASE.date()) == 9.0
    finally:
        client.close()


# -- deletion ---------------------------------------------------------------------------------------
def site_keys(client: redis.Redis, site_id: int) -> list[str]:
    return [k for k in client.scan_iter(count=1000) if f"{{site:{site_id}}}" in k]


def test_deleting_a_site_leaves_no_key_behind(client: redis.Redis, dao: TimeSeriesDao) -> None:
    sites = SiteDaoRedis(client)
    for site_id in (1, 2):
        sites.insert(
            Site(
                id=site_id,
                capacity=3.0,
                panels=9,
                address=f"{site_id} Ray Rd",
                city="Tucson",
                state="AZ",
                postal_code="85701",
            )
        )
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    for site_id in (1, 2):
        dao.add_readings_batch([reading(site_id, now - i * HOUR, 5.0) for i in range(72)])
    lb = LeaderboardDao(client, sites)
    assert site_keys(client, 1)
    dao.delete_site_data(1)
    lb.remove_site_from_leaderboards(1)
    sites.delete(1)
    assert site_keys(client, 1) == []
    for key in client.scan_iter(count=1000):
        if client.type(key) == "zset":
            assert client.zscore(key, "site:1") is None, key
        if client.type(key) == "hash":
            assert client.hget(key, "site:1") is None, key
    assert site_keys(client, 2)  # the other site is untouched
    assert len(values(dao, 2, MetricType.WH_GENERATED, now - 3 * 24 * HOUR, now + HOUR)) == 72


# -- leaderboards kept at ingest ------------------------------------------------------------------------
def day_totals(batch: list[MeterReading]) -> dict[tuple[int, date], float]:
    latest: dict[tuple[int, datetime], float] = {}
    for r in batch:
        latest[(r.site_id, r.timestamp)] = r.wh_generated
    totals: dict[tuple[int, date], float] = defaultdict(float)
    for (site_id, ts), gen in latest.items():
        totals[(site_id, ts.date())] += gen
    return totals


def test_leaderboards_are_exact_after_retries_and_overwrites(client: redis.Redis, dao: TimeSeriesDao) -> None:
    sites = SiteDaoRedis(client)
    capacities = {1: 2.0, 2: 4.0, 3: 8.0}
    for site_id, kw in capacities.items():
        sites.insert(
            Site(
                id=site_id,
                capacity=kw,
                panels=4,
                address="9 Sun Way",
                city="Reno",
                state="NV",
                postal_code="89501",
            )
        )
    lb = LeaderboardDao(client, sites)
    day = date(2024, 3, 1)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    batch = [reading(s, start + h * HOUR, float(100 * s + h)) for s in capacities for h in range(24)]
    dao.add_readings_batch(batch)
    dao.add_readings_batch(batch)  # a retry
    dao.add_readings_batch(batch[:10])  # a partial retry
    overwrite = [reading(2, start + 5 * HOUR, 9999.0), reading(3, start + 30 * HOUR, 50.0)]
    dao.add_readings_batch(overwrite)
    totals = day_totals(batch + overwrite)
    for site_id, kw in capacities.items():
        expected = totals[(site_id, day)]
        assert lb.get_site_score(site_id, "generation", day) == pytest.approx(expected)
        assert lb.get_site_score(site_id, "efficiency", day) == pytest.approx(100 * expected / (kw * 24_000))
    assert lb.get_site_score(3, "generation", date(2024, 3, 2)) == pytest.approx(50.0)
    order = [e.site.id for e in lb.get_generation_leaders(10, day=day)]
    assert order == sorted(capacities, key=lambda s: -totals[(s, day)])


def test_an_older_score_never_overwrites_a_newer_one(client: redis.Redis, dao: TimeSeriesDao) -> None:
    start = datetime(2024, 3, 1, tzinfo=UTC)
    dao.add_reading(reading(1, start, 10.0))
    day_number = to_ms(start) // 86_400_000
    lb = LeaderboardDao(client)
    version = int(client.hget(KeyManager().series_meta_key(1), "v"))
    assert dao.boards.apply([(1, day_number, version - 1, 1.0, None)]) == 0  # a late, stale update
    assert lb.get_site_score(1, "generation", start.date()) == 10.0
    assert dao.boards.apply([(1, day_number, version + 1, 11.0, None)]) == 1
    assert lb.get_site_score(1, "generation", start.date()) == 11.0


def test_reconciler_restores_lost_scores(client: redis.Redis, dao: TimeSeriesDao) -> None:
    from redisolar.tasks.leaderboard_updater import LeaderboardUpdater

    sites = SiteDaoRedis(client)
    sites.insert(
        Site(id=7, capacity=3.0, panels=4, address="1 A St", city="Provo", state="UT", postal_code="84601")
    )
    today = utcnow().replace(minute=0, second=0, microsecond=0)
    dao.add_reading(reading(7, today, 300.0))
    lb = LeaderboardDao(client, sites)
    client.delete(
        KeyManager().daily_leaderboard_key("generation", today.date()),
        KeyManager().daily_versions_key(today.date()),
    )
    assert lb.get_site_score(7, "generation") is None
    report = LeaderboardUpdater(client, timeseries_dao=dao).update_all_leaderboards()
    assert report is not None and report.daily_scores_changed == 1
    assert lb.get_site_score(7, "generation") == 300.0
    assert lb.get_site_score(7, "efficiency") == pytest.approx(100 * 300.0 / (3.0 * 24_000))
    assert lb.get_site_score(7, "capacity") == 3.0


# -- fleet rollups ------------------------------------------------------------------------------------
def test_fleet_hourly_totals_stay_exact_under_retries_overwrites_and_deletion(dao: TimeSeriesDao) -> None:
    now = utcnow()
    top = now.replace(minute=0, second=0, microsecond=0)
    batch = [
        reading(site_id, top - timedelta(minutes=20 * i), float(site_id * 10 + i % 7))
        for site_id in (1, 2, 3)
        for i in range(90)  # 30 hours, so part of it lies before the 24-hour window
    ]
    batch.reverse()  # newest first: out of order
    dao.add_readings_batch(batch)
    dao.add_readings_batch(batch[:50])  # a partial retry
    overwrites = [reading(2, top - timedelta(minutes=40), 999.0), reading(3, top, 0.0)]
    dao.add_readings_batch(overwrites)
    site_three_gone = [r for r in batch + overwrites if r.site_id != 3]

    def expected(readings: list[MeterReading], start: datetime) -> float:
        latest = {(r.site_id, r.timestamp): r.wh_generated for r in readings}
        return math.fsum(v for (_, ts), v in latest.items() if start <= ts <= now)

    fleet = dao.get_fleet_generation(now, 24)
    assert fleet.period_start == top - timedelta(hours=23)
    assert fleet.active_sites == 3
    assert fleet.wh_generated == pytest.approx(expected(batch + overwrites, fleet.period_start), rel=1e-12)
    dao.delete_site_data(3)
    fleet = dao.get_fleet_generation(now, 24)
    assert fleet.active_sites == 2
    assert fleet.wh_generated == pytest.approx(expected(site_three_gone, fleet.period_start), rel=1e-12)


# -- leaderboard statistics without reading every member -----------------------------------------------
def test_board_statistics_follow_every_kind_of_write(client: redis.Redis, dao: TimeSeriesDao) -> None:
    sites = SiteDaoRedis(client)
    lb = LeaderboardDao(client, sites)
    capacities = {i: 1.0 + i * 0.7 for i in range(1, 13)}
    sites.insert_many(
        *(
            Site(
                id=i,
                capacity=kw,
                panels=5,
                address=f"{i} Elm St",
                city="Boise",
                state="ID",
                postal_code="83701",
            )
            for i, kw in capacities.items()
        )
    )
    sites.update(
        Site(id=3, capacity=40.0, panels=5, address="3 Elm St", city="Boise", state="ID", postal_code="83701")
    )
    capacities[3] = 40.0
    sites.delete(5)
    del capacities[5]
    lb.update_capacity_leaderboard(7, 0.5)
    capacities[7] = 0.5
    day = datetime(2024, 3, 1, tzinfo=UTC)
    dao.add_readings_batch([reading(s, day + h * HOUR, float(s * h)) for s in capacities for h in range(6)])
    dao.add_readings_batch([reading(2, day + 2 * HOUR, 500.0)])
    lb.remove_site_from_leaderboards(4)
    del capacities[4]
    totals = {s: sum(float(s * h) for h in range(6)) for s in capacities}
    totals[2] += 500.0 - 4.0

    def check(kind: str, scores: dict[int, float], on: date | None = None) -> None:
        stats = lb.get_leaderboard_stats(kind, on)
        assert stats["total_sites"] == len(scores)
        assert stats["highest_score"] == max(scores.values())
        assert stats["lowest_score"] == min(scores.values())
        assert stats["average_score"] == pytest.approx(math.fsum(scores.values()) / len(scores), rel=1e-12)

    check("capacity", capacities)
    check("generation", totals, day.date())
    check(
        "efficiency",
        {
            s: 100 * t / (capacities_kw * 24_000)
            for s, t in totals.items()
            for capacities_kw in [40.0 if s == 3 else 1.0 + s * 0.7]
        },
        day.date(),
    )
    assert sites.get_total_capacity() == pytest.approx(math.fsum(capacities.values()), rel=1e-12)
    # a running sum that is missing (data from before sums existed) is recomputed when needed
    client.delete(KeyManager().board_sum_key(KeyManager().capacity_leaderboard_key()))
    check("capacity", capacities)
    assert sites.get_total_capacity() == pytest.approx(math.fsum(capacities.values()), rel=1e-12)
