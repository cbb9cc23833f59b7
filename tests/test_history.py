"""Long history (redisolar.dao.history): hourly and local-daily rollups written at ingest, exact under
retries and overwrites, answering ranges beyond the raw window as the raw readings did inside it,
trimmed by HISTORY_DAYS; on every target (both backends, standalone and cluster)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisolar.dao.history import DAY, HOUR, HourRollup
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.errors import InvalidQuery
from redisolar.localtime import encode_tzt
from redisolar.models.site import MetricType
from redisolar.timeutil import from_ms, to_ms, utcnow

if TYPE_CHECKING:
    from conftest import BackendServer

Records = list[tuple[int, float, float, float]]
AGGREGATIONS = ("sum", "avg", "min", "max", "count", "first", "last", "range")


def hour_start(days_ago: float) -> int:
    """The start (ms) of the UTC hour ``days_ago`` days before now."""
    ms = to_ms(utcnow() - timedelta(days=days_ago))
    return ms - ms % HOUR


def make_dao(
    client: redis.Redis, backend_server: BackendServer, retention_days: float, history_days: float
) -> TimeSeriesDao:
    return TimeSeriesDao(
        client,
        backend=backend_server.name,
        retention_ms=int(retention_days * DAY),
        history_ms=int(history_days * DAY),
    )


def expected(stored: dict[int, tuple[float, float, float]], lo: int, hi: int) -> tuple[object, ...] | None:
    """A period's rollup computed in plain Python: (count, peak ms, then per metric sum (in time
    order), min, max, first, last), or None without readings."""
    times = sorted(t for t in stored if lo <= t < hi)
    if not times:
        return None
    out: list[object] = [len(times)]
    peak = max(stored[t][0] for t in times)
    out.append(next(t for t in times if stored[t][0] == peak))
    for m in range(3):
        values = [stored[t][m] for t in times]
        total = 0.0
        for v in values:
            total += v
        out += [total, min(values), max(values), values[0], values[-1]]
    return tuple(out)


def expected_day(
    stored: dict[int, tuple[float, float, float]], lo: int, hi: int
) -> tuple[object, ...] | None:
    """A local day ``[lo, hi)`` composed as the rollups define it: its pieces in time order (the UTC
    hours inside it, and the parts of the hours at its edges where they are not whole), each piece's
    rollup in plain Python; count, min, max, first, last and the peak are the readings' own, the sum
    adds the pieces' sums in time order."""
    a, b = -(-lo // HOUR) * HOUR, hi // HOUR * HOUR
    cuts = sorted({lo, hi} | (set(range(a, b + 1, HOUR)) if a <= b else set()))
    found = (expected(stored, x, y) for x, y in itertools.pairwise(cuts))
    pieces = [[float(v) for v in p] for p in found if p]  # type: ignore[arg-type]
    if not pieces:
        return None
    peak = max(p[4] for p in pieces)
    out: list[object] = [sum(p[0] for p in pieces), next(p[1] for p in pieces if p[4] == peak)]
    for m in range(2, 17, 5):  # each metric: sum, min, max, first, last
        total = 0.0
        for p in pieces:
            total += p[m]
        out += [total, min(p[m + 1] for p in pieces), max(p[m + 2] for p in pieces)]
        out += [pieces[0][m + 3], pieces[-1][m + 4]]
    return tuple(out)


def as_tuple(r: HourRollup) -> tuple[object, ...]:
    out: list[object] = [r.count, r.peak_ms]
    for m in (r.wh_generated, r.wh_used, r.temp_c):
        out += [m.sum, m.min, m.max, m.first, m.last]
    return tuple(out)


def records(start: int, count: int, step_ms: int, seed: int = 1) -> Records:
    """Readings with uneven values (sums that round), temperatures with ties."""
    return [
        (start + i * step_ms, ((i * 7919 + seed) % 97) / 7.0, ((i * 104729 + seed) % 61) / 3.0, 15.0 + i % 5)
        for i in range(count)
    ]


def test_hours_and_utc_days_equal_plain_python(client: redis.Redis, backend_server: BackendServer) -> None:
    dao = make_dao(client, backend_server, 30, 3650)
    start = hour_start(5) - 3 * HOUR
    recs = records(start, 200, 7 * 60_000)
    dao.add_validated_records({7: recs})
    stored = {t: (g, u, c) for t, g, u, c in recs}
    hours = dao.history.hours(7, start - HOUR, start + 30 * HOUR)
    assert [h.start_ms for h in hours] == sorted({t - t % HOUR for t in stored})
    for h in hours:
        assert h.hours == 1.0 and as_tuple(h) == expected(stored, h.start_ms, h.start_ms + HOUR)
    first = from_ms(start).date()
    days = dao.history.days(7, first - timedelta(days=1), first + timedelta(days=3))  # no zone: UTC days
    assert [d.day for d in days] == sorted({from_ms(t).date() for t in stored})
    for d in days:
        assert d.start_ms == to_ms(datetime(d.day.year, d.day.month, d.day.day)) and d.hours == 24.0
        assert as_tuple(d) == expected_day(stored, d.start_ms, d.start_ms + DAY)


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/London", "Pacific/Honolulu"])
def test_local_days_across_both_dst_changes(
    client: redis.Redis, backend_server: BackendServer, zone: str
) -> None:
    dao = make_dao(client, backend_server, 0, 0)
    client.hset(dao.keys.site_key(3), "tzt", encode_tzt(zone))  # as the site store writes it
    tz = ZoneInfo(zone)
    recs: Records = []
    for first in (date(2026, 3, 7), date(2026, 3, 28), date(2026, 10, 24), date(2026, 10, 31)):
        start = to_ms(datetime(first.year, first.month, first.day)) - 12 * HOUR
        recs += records(start, 4 * 24 * 2, 30 * 60_000, seed=first.day)
    recs = sorted(dict((r[0], r) for r in recs).values())
    for i in range(0, len(recs), 150):  # in batches, as a meter would send them
        dao.add_validated_records({3: recs[i : i + 150]})
    stored = {t: (g, u, c) for t, g, u, c in recs}
    local = {t: datetime.fromtimestamp(t / 1000, tz).date() for t in stored}
    days = dao.history.days(3, date(2026, 1, 1), date(2027, 1, 1))
    assert [d.day for d in days] == sorted(set(local.values()))
    lengths = set()
    for d in days:
        begin = datetime(d.day.year, d.day.month, d.day.day, tzinfo=tz)
        end = begin + timedelta(days=1)
        assert d.start_ms == to_ms(begin) and d.end_ms == to_ms(end)
        assert d.hours == (end.timestamp() - begin.timestamp()) / 3600
        lengths.add(d.hours)
        assert as_tuple(d) == expected_day(stored, d.start_ms, d.end_ms)
    assert lengths == ({24.0} if zone == "Pacific/Honolulu" else {23.0, 24.0, 25.0})


def test_aggregations_beyond_the_raw_window_equal_the_raw_answers(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = make_dao(client, backend_server, 2, 3650)
    start = hour_start(20)
    recs = records(start + 5 * 60_000, 80, 5 * 60_000)
    dao.add_validated_records({5: recs})
    begin, end = from_ms(start - HOUR), from_ms(start + 8 * HOUR)
    metrics = (MetricType.WH_GENERATED, MetricType.WH_USED, MetricType.TEMP_C)
    queries = [(m, a, b) for m in metrics for a in AGGREGATIONS for b in (HOUR, 3 * HOUR, DAY)]
    queries += [(MetricType.NET_GENERATION, a, HOUR) for a in ("sum", "count", "first", "last")]

    def answers() -> list[list[tuple[datetime, float]]]:
        return [
            [(p.timestamp, p.value) for p in dao.get_aggregated_data(5, m, begin, end, b, a)]
            for m, a, b in queries
        ]

    inside = answers()
    assert dao.history.hours(5, start, start + 8 * HOUR)  # written at ingest
    dao.add_validated_records({5: records(start + 3 * DAY, 3, 60_000)})  # pushes them out of the window
    assert dao.get_readings_range(5, MetricType.WH_GENERATED, begin, end) == []  # raw readings gone
    beyond = answers()
    for (metric, aggregation, bucket), raw, rolled in zip(queries, inside, beyond, strict=True):
        assert [t for t, _ in rolled] == [t for t, _ in raw], (metric, aggregation, bucket)
        if (bucket == HOUR and metric is not MetricType.NET_GENERATION) or aggregation not in ("avg", "sum"):
            assert rolled == raw, (metric, aggregation, bucket)
        else:  # sums of hour sums (net: generated sums minus used sums): equal to the last bits
            assert [v for _, v in rolled] == pytest.approx([v for _, v in raw], rel=1e-12), (
                metric,
                aggregation,
            )
    with pytest.raises(InvalidQuery, match="whole number of hours"):
        dao.get_aggregated_data(5, MetricType.WH_GENERATED, begin, end, 15 * 60_000, "sum")
    with pytest.raises(InvalidQuery, match="net_generation"):
        dao.get_aggregated_data(5, MetricType.NET_GENERATION, begin, end, HOUR, "max")
    # a range reaching into the raw window: the old buckets from the rollups, the new ones raw
    mixed = dao.get_aggregated_data(
        5, MetricType.WH_GENERATED, begin, from_ms(start + 4 * DAY), HOUR, "count"
    )
    assert sum(v.value for v in mixed) == 83.0


def test_hourly_sums_equal_raw_sums_exactly(client: redis.Redis, backend_server: BackendServer) -> None:
    """An hour's sum adds its readings in time order, as the raw reads do: the same double."""
    dao = make_dao(client, backend_server, 2, 3650)
    start = hour_start(20)
    dao.add_validated_records({6: records(start, 120, 60_000, seed=3)})
    begin, end = from_ms(start), from_ms(start + 2 * HOUR)
    raw = dao.get_aggregated_data(6, MetricType.WH_USED, begin, end, HOUR, "sum")
    dao.add_validated_records({6: records(start + 3 * DAY, 1, 60_000)})
    assert dao.get_aggregated_data(6, MetricType.WH_USED, begin, end, HOUR, "sum") == raw


site_ids = itertools.count(100)

batches = st.lists(
    st.tuples(
        st.lists(
            st.tuples(
                st.integers(0, 47), st.sampled_from([0.0, 0.1, 1.5, 7.25, 1e6 / 3]), st.floats(-20, 45)
            ),
            min_size=1,
            max_size=12,
        ),
        st.booleans(),  # sent twice (a retry)
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=batches)
def test_overwrites_and_retries_keep_rollups_exact(
    client: redis.Redis,
    backend_server: BackendServer,
    batches: list[tuple[list[tuple[int, float, float]], bool]],
) -> None:
    dao = make_dao(client, backend_server, 30, 3650)
    site_id = next(site_ids)
    start = hour_start(3) - 2 * HOUR
    stored: dict[int, tuple[float, float, float]] = {}
    for batch, retried in batches:
        by_ts = {start + slot * 20 * 60_000 + 1: (g, g / 2, temp) for slot, g, temp in batch}
        recs = [(t, *by_ts[t]) for t in sorted(by_ts)]
        for _ in range(2 if retried else 1):
            dao.add_validated_records({site_id: recs})
        stored.update(by_ts)
    hours = dao.history.hours(site_id, start, start + 17 * HOUR)
    assert [h.start_ms for h in hours] == sorted({t - t % HOUR for t in stored})
    for h in hours:
        assert as_tuple(h) == expected(stored, h.start_ms, h.start_ms + HOUR)
    day = from_ms(start).date()
    for d in dao.history.days(site_id, day, day + timedelta(days=2)):
        assert as_tuple(d) == expected_day(stored, d.start_ms, d.end_ms)


def test_history_days_trims(client: redis.Redis, backend_server: BackendServer) -> None:
    kept = make_dao(client, backend_server, 2, 0)  # HISTORY_DAYS = 0: forever
    trimmed = make_dao(client, backend_server, 2, 40)
    old = hour_start(200)
    for site_id, dao in ((1, kept), (2, trimmed)):
        dao.add_validated_records({site_id: records(old, 10, 60_000)})
        assert dao.history.hours(site_id, old, old + HOUR)[0].count == 10
        dao.add_validated_records({site_id: records(old + 100 * DAY, 10, 60_000)})
    day = from_ms(old).date()
    assert kept.history.hours(1, old, old + HOUR)[0].count == 10
    assert kept.history.days(1, day, day + timedelta(days=1))[0].count == 10
    assert trimmed.history.hours(2, old, old + HOUR) == []
    assert trimmed.history.days(2, day, day + timedelta(days=1)) == []
    assert not client.exists(trimmed.keys.history_hours_key(2, old // HOUR // 720))  # memory freed
    assert trimmed.history.hours(2, old + 100 * DAY, old + 101 * DAY)[0].count == 10


def test_deleting_a_site_deletes_its_history(client: redis.Redis, backend_server: BackendServer) -> None:
    dao = make_dao(client, backend_server, 30, 3650)
    start = hour_start(3)
    dao.add_validated_records({9: records(start, 5, 60_000)})
    assert (
        client.exists(dao.keys.history_meta_key(9), dao.keys.history_hours_key(9, start // HOUR // 720)) == 2
    )
    dao.delete_site_data(9)
    assert dao.history.hours(9, start, start + HOUR) == []
    assert not client.exists(
        dao.keys.history_meta_key(9), dao.keys.history_hours_key(9, start // HOUR // 720)
    )


def test_api_answers_hours_beyond_the_window_and_refuses_finer_buckets(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    from tests.conftest import ApiCalls

    http = app_factory(
        backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=2
    ).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0)
    start = hour_start(20)
    body = [api.reading_body(from_ms(start + i * 600_000), wh_generated=float(i)) for i in range(12)]
    api.post_readings(1, body)
    query = f"start={from_ms(start).isoformat()}&end={from_ms(start + 2 * HOUR).isoformat()}&aggregation=sum"
    url = f"/api/analytics/readings/1/wh_generated?{query}&bucket_size={HOUR}"
    inside = http.get(url).get_json()
    api.post_readings(1, [api.reading_body(from_ms(start + 3 * DAY))])
    beyond = http.get(url)
    assert beyond.status_code == 200 and beyond.get_json() == inside
    assert [p["value"] for p in inside["data"]] == [15.0, 51.0]
    finer = http.get(f"/api/analytics/readings/1/wh_generated?{query}&bucket_size=600000")
    api.error(finer, 400, "whole number of hours")


def test_a_backfill_at_the_window_start_gets_the_rollup_of_its_visible_readings(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = make_dao(client, backend_server, 2, 3650)
    newest = hour_start(10) + 30 * 60_000
    dao.add_validated_records({4: [(newest, 1.0, 1.0, 1.0)]})
    edge = newest - 2 * DAY  # the window starts half-way through this hour (and its day)
    late = records(edge + 60_000, 20, 60_000)
    dao.add_validated_records({4: late})
    hour = edge - edge % HOUR
    stored = {t: (g, u, c) for t, g, u, c in late}
    [rollup] = dao.history.hours(4, hour, hour + HOUR)
    assert as_tuple(rollup) == expected(stored, hour, hour + HOUR)
    # answered from the rollup: the range starts before the raw window
    answer = dao.get_aggregated_data(
        4, MetricType.WH_GENERATED, from_ms(hour), from_ms(hour + HOUR), HOUR, "sum"
    )
    assert answer[0].value == rollup.wh_generated.sum


@pytest.mark.parametrize("resolution", ["hour", "day"])
def test_hour_and_day_exports_reach_beyond_the_raw_window(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis, resolution: str
) -> None:
    from tests.conftest import ApiCalls

    http = app_factory(
        backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=2
    ).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0, timezone="America/New_York")
    start = hour_start(20)
    body = [
        api.reading_body(from_ms(t), wh_generated=g, wh_used=u, temp_c=c)
        for t, g, u, c in records(start, 100, 20 * 60_000)
    ]
    api.post_readings(1, body)
    query = f"start={from_ms(start - DAY).isoformat()}&end={from_ms(start + 3 * DAY).isoformat()}"
    url = f"/api/analytics/readings/1/export?{query}&format=ndjson&resolution={resolution}"
    inside = http.get(url).get_data(as_text=True)
    assert len(inside.splitlines()) >= (34 if resolution == "hour" else 2)
    api.post_readings(1, [api.reading_body(from_ms(start + 4 * DAY))])  # pushes them out of the window
    assert http.get(url).get_data(as_text=True) == inside


def test_rebuild_backfills_the_rollups_of_stored_readings(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = make_dao(client, backend_server, 30, 3650)
    client.hset(dao.keys.site_key(11), "tzt", encode_tzt("America/Phoenix"))
    start = hour_start(6)
    dao.add_validated_records({11: records(start, 300, 17 * 60_000)})
    day = from_ms(start).date()
    hours = dao.history.hours(11, start - DAY, start + 6 * DAY)
    days = dao.history.days(11, day - timedelta(days=1), day + timedelta(days=6))
    dao.history.delete(11)  # as if the readings had been stored before the rollups existed
    assert dao.history.hours(11, start - DAY, start + 6 * DAY) == []
    visited = dao.history.rebuild(dao.backend.name, 11, start - DAY, start + 5 * DAY)
    assert visited == 6 * 24
    assert dao.history.hours(11, start - DAY, start + 6 * DAY) == hours
    assert dao.history.days(11, day - timedelta(days=1), day + timedelta(days=6)) == days
    dao.history.rebuild(dao.backend.name, 11, start - DAY, start + 5 * DAY)  # again: nothing changes
    assert dao.history.hours(11, start - DAY, start + 6 * DAY) == hours


def test_the_migrate_command_backfills_the_rollups(
    client: redis.Redis, backend_server: BackendServer, app_factory: Callable[..., Flask]
) -> None:
    from click.testing import CliRunner

    from redisolar.cli import main
    from tests.conftest import ApiCalls

    http = app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0)
    start = hour_start(3)
    api.post_readings(1, [api.reading_body(from_ms(start + i * 600_000)) for i in range(30)])
    dao = make_dao(client, backend_server, 30, 3650)
    before = dao.history.hours(1, start, start + DAY)
    dao.history.delete(1)  # as stored by a version without rollups
    result = CliRunner().invoke(main, ["migrate"], env=backend_server.env(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "History: the raw windows of 1 sites rolled up again" in result.output
    assert dao.history.hours(1, start, start + DAY) == before and sum(h.count for h in before) == 30
