"""Site analytics beyond the raw window (issue 9): a range that reaches back before the raw readings'
window is answered from the hourly rollups there and from the raw readings after, with exactly the
figures the raw readings gave while they were inside the window; on every target."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import pytest
import redis
from flask import Flask

from redisolar.dao.history import DAY, HOUR
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.errors import InvalidQuery
from redisolar.models.site import MetricType, SiteAnalytics
from redisolar.timeutil import from_ms, to_ms, utcnow
from tests.conftest import ApiCalls

if TYPE_CHECKING:
    from conftest import BackendServer

Records = list[tuple[int, float, float, float]]


def hour_start(days_ago: float) -> int:
    ms = to_ms(utcnow() - timedelta(days=days_ago))
    return ms - ms % HOUR


def records(start: int, count: int, step_ms: int, seed: int = 1) -> Records:
    """Readings whose sums round (sevenths and thirds), so the order of additions shows."""
    return [
        (
            start + i * step_ms,
            ((i * 7919 + seed) % 97) / 7.0,
            ((i * 104729 + seed) % 61) / 3.0,
            15.1 + i % 5 / 3,
        )
        for i in range(count)
    ]


def plain(recs: Records, lo: int, hi: int, capacity_kw: float) -> SiteAnalytics | None:
    """The analytics of ``[lo, hi)`` in plain Python as documented: each UTC hour's readings added in
    time order, then the hours' sums in time order."""
    inside = sorted(r for r in recs if lo <= r[0] < hi)
    if not inside:
        return None
    sums = [0.0, 0.0, 0.0]
    for hour in sorted({t - t % HOUR for t, *_ in inside}):
        for m in range(3):
            part = 0.0
            for r in inside:
                if r[0] - r[0] % HOUR == hour:
                    part += r[m + 1]
            sums[m] += part
    generated = [r[1] for r in inside]
    return SiteAnalytics(
        site_id=1, period_start=from_ms(lo), period_end=from_ms(hi), total_generated=sums[0],
        total_used=sums[1], avg_generation=sums[0] / len(inside), max_generation=max(generated),
        min_generation=min(generated), avg_temperature=sums[2] / len(inside),
        efficiency_percent=100 * sums[0] / (capacity_kw * 1000 * (hi - lo) / HOUR), reading_count=len(inside),
    )  # fmt: skip


def test_analytics_pushed_out_of_the_raw_window_stay_exactly_the_same(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = TimeSeriesDao(client, backend=backend_server.name, retention_ms=2 * DAY)
    client.hset(dao.keys.site_key(1), mapping={"id": "1", "capacity": "4.5"})
    old = hour_start(20)
    early = records(old + 5 * 60_000, 120, 5 * 60_000)  # 10 hours
    later = records(old + DAY, 48, 30 * 60_000, seed=5)  # 24 hours, a day after
    stored = early + later
    dao.add_validated_records({1: stored})
    end = old + 2 * DAY
    ranges = [
        (old, old + 4 * HOUR),  # the first hours only
        (old - HOUR, old + 11 * HOUR),
        (old, end),  # both runs
        (old + 3 * HOUR, old + DAY + 13 * HOUR),  # ends half-way through the later run
        (old + 12 * HOUR, old + 20 * HOUR),  # no reading
    ]

    def answers() -> list[SiteAnalytics | None]:
        return [dao.get_site_analytics(1, from_ms(lo), from_ms(hi)) for lo, hi in ranges]

    inside = answers()
    assert inside == [plain(stored, lo, hi, 4.5) for lo, hi in ranges]  # the documented order of sums
    assert inside[-1] is None and all(a is not None for a in inside[:-1])
    # newer readings push the early run out of the raw window and the window start into the later run
    newest = old + DAY + 12 * HOUR + 30 * 60_000 + 2 * DAY
    dao.add_validated_records({1: [(newest, 1.0, 1.0, 1.0)]})
    window = newest - 2 * DAY
    assert dao.raw_window_start(1, from_ms(old)) == from_ms(window)
    assert (
        dao.get_readings_range(1, MetricType.WH_GENERATED, from_ms(old), from_ms(window)) == []
    )  # raw ones gone
    assert answers() == inside


def test_analytics_beyond_the_window_need_whole_hours(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = TimeSeriesDao(client, backend=backend_server.name, retention_ms=2 * DAY)
    old = hour_start(20)
    dao.add_validated_records({1: records(old, 30, 60_000)})
    dao.add_validated_records({1: [(old + 3 * DAY, 1.0, 1.0, 1.0)]})
    start = from_ms(old + 30 * 60_000)
    with pytest.raises(InvalidQuery, match="whole UTC hour") as refused:
        dao.get_site_analytics(1, start, from_ms(old + 2 * HOUR))
    assert refused.value.details["raw_window_start"] == from_ms(old + DAY).isoformat()
    with pytest.raises(InvalidQuery, match="whole UTC hour"):
        dao.get_site_analytics(1, from_ms(old), from_ms(old + 90 * 60_000))  # ends before the window
    whole = dao.get_site_analytics(1, from_ms(old), from_ms(old + 2 * HOUR))
    assert whole is not None and whole.reading_count == 30


def test_the_api_answers_analytics_beyond_the_window_as_inside_it(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    http = app_factory(
        backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=2
    ).test_client()
    api = ApiCalls(http)
    api.create_site(1, capacity=5.0, timezone="America/Phoenix")
    old = hour_start(20)
    api.post_readings(1, [
        api.reading_body(from_ms(t), wh_generated=g, wh_used=u, temp_c=c)
        for t, g, u, c in records(old, 100, 9 * 60_000)
    ])  # fmt: skip
    query = urlencode({"start": from_ms(old - HOUR).isoformat(), "end": from_ms(old + DAY).isoformat()})
    inside = http.get(f"/api/analytics/analytics/1?{query}").get_json()
    assert inside["reading_count"] == 100 and inside["timezone"] == "America/Phoenix"
    api.post_readings(1, [api.reading_body(from_ms(old + 4 * DAY))])
    beyond = http.get(f"/api/analytics/analytics/1?{query}")
    assert beyond.status_code == 200 and beyond.get_json() == inside
    odd = urlencode({"start": from_ms(old + 60_000).isoformat(), "end": from_ms(old + DAY).isoformat()})
    api.error(http.get(f"/api/analytics/analytics/1?{odd}"), 400, "before the raw readings' window")
