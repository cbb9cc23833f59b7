"""The energy endpoint (``GET /api/analytics/energy/<id>``, :mod:`redisolar.services.energy`).

Sites in Honolulu, Phoenix, New York and London with readings every 50 minutes (never on the hour,
so local midnights fall between readings) across both 2026 DST changes (US: 8 March and 1 November;
EU: 29 March and 25 October): every day, month and year figure must equal a plain-Python computation
with ``zoneinfo``, on every target.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar import store
from redisolar.app import get_services
from redisolar.localtime import day_number, local_day_bounds
from redisolar.models.site import Site
from redisolar.services import Services
from redisolar.services.energy import day_starts

if TYPE_CHECKING:
    from conftest import ApiCalls, BackendServer

Record = tuple[int, float, float, float]
SITES = {1: "Pacific/Honolulu", 2: "America/Phoenix", 3: "America/New_York", 4: "Europe/London"}
CAPACITY = {1: 3.5, 2: 7.25, 3: 5.0, 4: 4.0}
SPANS = [(datetime(2026, 3, 5, 7, 13, tzinfo=UTC), 28), (datetime(2026, 10, 22, 9, 41, tzinfo=UTC), 13)]
"""(first reading, days of readings): both DST changes of both the US and the EU."""
STEP = timedelta(minutes=50)


@pytest.fixture
def app(app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis) -> Flask:
    """An app that keeps every reading (RETENTION_DAYS=0), so both 2026 DST changes fit."""
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=0)


@pytest.fixture
def services(app: Flask) -> Services:
    return get_services(app)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def fleet_records(seed: int) -> list[Record]:
    rng = random.Random(seed)
    records = []
    for first, days in SPANS:
        t = first
        while t < first + timedelta(days=days):
            records.append((ms(t), rng.uniform(0, 4000), rng.uniform(0, 2500), rng.uniform(-5, 40)))
            t += STEP
    return records


@pytest.fixture
def fleet(services: Services) -> dict[int, list[Record]]:
    """The four sites and their readings."""
    stored = {}
    for site_id, tz in SITES.items():
        site = Site(site_id, CAPACITY[site_id], 12, f"{site_id} Sun St", "Town", "XX", "00000", timezone=tz)
        services.create_site(site)
        stored[site_id] = fleet_records(site_id)
        services.timeseries.add_validated_records({site_id: stored[site_id]})
    return stored


def energy(http: FlaskClient, site_id: int, **query: str) -> Any:
    return http.get(f"/api/analytics/energy/{site_id}", query_string=query)


# -- the plain-Python reference ----------------------------------------------------------------------
def local_midnight_ms(day: date, tz: ZoneInfo) -> int:
    """Midnight exists on every day of these four zones (their changes are at 01:00/02:00)."""
    return ms(datetime.combine(day, time(), tz))


def iso(when_ms: int, tz: Any = UTC) -> str:
    return datetime.fromtimestamp(when_ms / 1000, tz).isoformat(timespec="milliseconds")


def reference(
    records: list[Record], tz_name: str, capacity: float, key: Callable[[date], str]
) -> dict[str, Any]:
    """Per period label: count, sums, peak and its time, from ``zoneinfo`` alone."""
    tz = ZoneInfo(tz_name)
    out: dict[str, dict[str, Any]] = defaultdict(lambda: {"count": 0, "gen": 0.0, "used": 0.0, "peak": None})
    for t, generated, used, _ in records:
        label = key(datetime.fromtimestamp(t / 1000, tz).date())
        p = out[label]
        p["count"] += 1
        p["gen"] += generated
        p["used"] += used
        if p["peak"] is None or generated > p["peak"]:
            p["peak"], p["peak_ms"] = generated, t
    return out


def check_period(
    period: dict[str, Any], ref: dict[str, Any] | None, tz: ZoneInfo, capacity: float, hours: float
) -> None:
    assert period["hours"] == hours, period["period"]
    if ref is None:
        assert period["count"] == 0 and period["wh_generated"] == 0 and period["peak_wh"] is None, period
        assert period["peak_time"] is None and period["peak_time_local"] is None
        return
    assert period["count"] == ref["count"], period["period"]
    assert period["wh_generated"] == pytest.approx(ref["gen"], rel=1e-12)
    assert period["wh_used"] == pytest.approx(ref["used"], rel=1e-12)
    assert period["wh_net"] == pytest.approx(ref["gen"] - ref["used"], rel=1e-9)
    assert period["peak_wh"] == ref["peak"]  # exact: one stored reading
    assert period["peak_time"] == iso(ref["peak_ms"])
    assert period["peak_time_local"] == iso(ref["peak_ms"], tz)
    assert period["capacity_factor_percent"] == pytest.approx(
        100 * ref["gen"] / (capacity * 1000 * hours), rel=1e-12
    )
    assert period["specific_yield_kwh_per_kwp"] == pytest.approx(ref["gen"] / 1000 / capacity, rel=1e-12)


# -- tests -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "end"), [("2026-03-01", "2026-04-05"), ("2026-10-20", "2026-11-06")])
def test_local_days_equal_plain_python(
    http: FlaskClient, fleet: dict[int, list[Record]], start: str, end: str
) -> None:
    for site_id, tz_name in SITES.items():
        tz = ZoneInfo(tz_name)
        body = energy(http, site_id, granularity="day", start=start, end=end).get_json()
        assert body["site_id"] == site_id and body["timezone"] == tz_name and body["granularity"] == "day"
        assert (body["start"], body["end"]) == (start, end)
        days = [date.fromisoformat(start) + timedelta(days=i) for i in range(body["count"])]
        assert [p["period"] for p in body["periods"]] == [d.isoformat() for d in days]
        assert days[-1] + timedelta(days=1) == date.fromisoformat(end)
        ref = reference(fleet[site_id], tz_name, CAPACITY[site_id], date.isoformat)
        for day, period in zip(days, body["periods"], strict=True):
            lo, hi = local_midnight_ms(day, tz), local_midnight_ms(day + timedelta(days=1), tz)
            assert (period["start"], period["start_local"]) == (iso(lo), iso(lo, tz))
            assert (period["end"], period["end_local"]) == (iso(hi), iso(hi, tz))
            check_period(period, ref.get(day.isoformat()), tz, CAPACITY[site_id], (hi - lo) / 3_600_000)
        assert sum(p["count"] for p in body["periods"]) == sum(
            r["count"] for k, r in ref.items() if start <= k < end
        )


def test_dst_days_last_23_and_25_hours(http: FlaskClient, fleet: dict[int, list[Record]]) -> None:
    hours = {
        (3, "2026-03-08"): 23, (3, "2026-11-01"): 25, (4, "2026-03-29"): 23, (4, "2026-10-25"): 25,
        (3, "2026-03-29"): 24, (4, "2026-03-08"): 24, (1, "2026-03-08"): 24, (2, "2026-11-01"): 24,
    }  # fmt: skip
    for (site_id, day), expected in hours.items():
        end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        (period,) = energy(http, site_id, start=day, end=end).get_json()["periods"]
        assert period["hours"] == expected, (site_id, day)


def test_capacity_factor_divides_by_the_real_hours(services: Services, http: FlaskClient) -> None:
    """A 5 kW New York site generating 5 kWh for every hour of its day: 100 % on 23, 24 and 25 h days."""
    services.create_site(Site(9, 5.0, 10, "9 Sun St", "New York", "NY", "10001", timezone="America/New_York"))
    tz = ZoneInfo("America/New_York")
    records = []
    for day, hours in ((date(2026, 3, 8), 23), (date(2026, 3, 9), 24), (date(2026, 11, 1), 25)):
        noon = ms(datetime.combine(day, time(12), tz))
        records += [(noon, 5000.0 * hours - 1000, 0.0, 20.0), (noon + 60_000, 1000.0, 10.0, 20.0)]
    services.timeseries.add_validated_records({9: records})
    body = energy(http, 9, start="2026-03-08", end="2026-03-10").get_json()
    assert [p["capacity_factor_percent"] for p in body["periods"]] == [100.0, 100.0]
    assert [p["specific_yield_kwh_per_kwp"] for p in body["periods"]] == [23.0, 24.0]
    (fall,) = energy(http, 9, start="2026-11-01", end="2026-11-02").get_json()["periods"]
    assert fall["capacity_factor_percent"] == 100.0 and fall["hours"] == 25
    (november,) = energy(http, 9, granularity="month", start="2026-11-01", end="2026-12-01").get_json()[
        "periods"
    ]
    assert november["hours"] == 30 * 24 + 1
    assert november["capacity_factor_percent"] == pytest.approx(100 * 125_000 / (5000 * 721))
    assert november["peak_wh"] == 124_000.0 and november["count"] == 2


def test_months_and_years_equal_plain_python(http: FlaskClient, fleet: dict[int, list[Record]]) -> None:
    for site_id, tz_name in SITES.items():
        tz = ZoneInfo(tz_name)
        body = energy(http, site_id, granularity="month", start="2026-01-01", end="2027-01-01").get_json()
        assert body["count"] == 12
        assert [p["period"] for p in body["periods"]] == [f"2026-{m:02d}" for m in range(1, 13)]
        ref = reference(fleet[site_id], tz_name, CAPACITY[site_id], lambda d: f"{d.year:04d}-{d.month:02d}")
        for month, period in enumerate(body["periods"], start=1):
            first = date(2026, month, 1)
            after = date(2027, 1, 1) if month == 12 else date(2026, month + 1, 1)
            hours = (local_midnight_ms(after, tz) - local_midnight_ms(first, tz)) / 3_600_000
            check_period(period, ref.get(period["period"]), tz, CAPACITY[site_id], hours)
        years = energy(http, site_id, granularity="year", start="2025-06-01", end="2026-02-01").get_json()
        assert (years["start"], years["end"]) == ("2025-01-01", "2027-01-01")  # widened to whole years
        year_ref = reference(fleet[site_id], tz_name, CAPACITY[site_id], lambda d: f"{d.year:04d}")
        y2025, y2026 = years["periods"]
        h2026 = (
            local_midnight_ms(date(2027, 1, 1), tz) - local_midnight_ms(date(2026, 1, 1), tz)
        ) / 3_600_000
        assert h2026 == 365 * 24
        check_period(y2025, None, tz, CAPACITY[site_id], 365 * 24)
        check_period(y2026, year_ref["2026"], tz, CAPACITY[site_id], h2026)


def test_local_midnight_splits_days_where_utc_would_not(services: Services, http: FlaskClient) -> None:
    """Phoenix at 23:30 and 00:30 local are two days; both are 06:30 and 07:30 UTC of one UTC day."""
    services.create_site(Site(7, 2.0, 4, "7 Sun St", "Phoenix", "AZ", "85001", timezone="America/Phoenix"))
    tz = ZoneInfo("America/Phoenix")
    late = ms(datetime(2026, 6, 1, 23, 30, tzinfo=tz))
    services.timeseries.add_validated_records(
        {7: [(late, 100.0, 1.0, 30.0), (late + 3_600_000, 200.0, 2.0, 30.0)]}
    )
    body = energy(http, 7, start="2026-06-01", end="2026-06-03").get_json()
    assert [(p["period"], p["count"], p["wh_generated"]) for p in body["periods"]] == [
        ("2026-06-01", 1, 100.0),
        ("2026-06-02", 1, 200.0),
    ]
    assert body["periods"][1]["peak_time"] == "2026-06-02T07:30:00.000+00:00"
    assert body["periods"][1]["peak_time_local"] == "2026-06-02T00:30:00.000-07:00"


def test_defaults_end_with_the_current_local_period(services: Services, http: FlaskClient) -> None:
    services.create_site(Site(5, 1.0, 2, "5 Sun St", "Honolulu", "HI", "96813", timezone="Pacific/Honolulu"))
    services.timeseries.add_validated_records({5: [(ms(datetime.now(UTC)) - 60_000, 10.0, 1.0, 20.0)]})
    expected = {"day": 30, "month": 12, "year": 5}
    for granularity, count in expected.items():
        today = datetime.now(ZoneInfo("Pacific/Honolulu")).date()
        body = energy(http, 5, **({"granularity": granularity} if granularity != "day" else {})).get_json()
        assert body["granularity"] == granularity and body["count"] == count
        last = body["periods"][-1]
        assert (
            last["period"]
            == {"day": today.isoformat(), "month": today.isoformat()[:7], "year": str(today.year)}[
                granularity
            ]
        )
        assert sum(p["count"] for p in body["periods"]) == 1
    only_start = energy(http, 5, start="2026-01-10").get_json()
    assert (only_start["start"], only_start["end"], only_start["count"]) == ("2026-01-10", "2026-02-09", 30)
    only_end = energy(http, 5, granularity="month", end="2026-01-10").get_json()
    assert (only_end["start"], only_end["end"], only_end["count"]) == ("2025-02-01", "2026-02-01", 12)


@pytest.mark.parametrize(
    ("query", "contains"),
    [
        ({"granularity": "week"}, "validation"),
        ({"start": "2026-03-10", "end": "2026-03-10"}, "after its start"),
        ({"start": "2026-03-10", "end": "2026-03-01"}, "after its start"),
        ({"start": "2025-01-01", "end": "2026-01-03"}, "at most 366"),
        ({"granularity": "month", "start": "2016-01-01", "end": "2026-02-01"}, "at most 120"),
        ({"granularity": "year", "start": "1975-01-01", "end": "2026-01-01"}, "at most 50"),
        ({"granularity": "year", "start": "9990-01-01", "end": "9999-12-30"}, "calendar"),
        ({"start": "9999-12-29", "end": "9999-12-30"}, "calendar"),
        ({"start": "2026-02-30"}, "validation"),
        ({"start": "yesterday"}, "validation"),
        ({"end": "1969-12-31"}, "validation"),
    ],
)
def test_bad_requests_are_400s_that_change_nothing(
    api: ApiCalls,
    http: FlaskClient,
    services: Services,
    raw_client: redis.Redis,
    query: dict[str, str],
    contains: str,
) -> None:
    services.create_site(Site(6, 1.0, 2, "6 Sun St", "London", "LN", "E1 6AN", timezone="Europe/London"))
    before = contents(raw_client)
    api.error(energy(http, 6, **query), 400, contains)
    assert contents(raw_client) == before


def contents(client: redis.Redis) -> dict[bytes, Any]:
    """Every key's value: a hash's fields (HGETALL: the same fields in another internal order are the
    same value, which DUMP would not say), anything else its DUMP."""
    out: dict[bytes, Any] = {}
    for key in sorted(store.scan_keys(client)):
        out[key] = client.hgetall(key) if client.type(key) == b"hash" else client.dump(key)
    return out


def test_the_most_periods_allowed_and_an_unknown_site(
    api: ApiCalls, http: FlaskClient, services: Services
) -> None:
    services.create_site(Site(6, 1.0, 2, "6 Sun St", "London", "LN", "E1 6AN", timezone="Europe/London"))
    for query, count in (
        ({"start": "2025-01-01", "end": "2026-01-02"}, 366),
        ({"granularity": "month", "start": "2016-01-01", "end": "2026-01-01"}, 120),
        ({"granularity": "year", "start": "1976-01-01", "end": "2026-01-01"}, 50),
    ):
        response = energy(http, 6, **query)
        assert response.status_code == 200 and response.get_json()["count"] == count
    api.error(energy(http, 404), 404, "Site 404 not found")


def test_days_beyond_the_raw_window_are_answered_from_the_history(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> None:
    """Readings loaded while inside the 30-day raw window, then pushed out by readings 60 days
    newer: their days and month still answer exactly (the history's day rollups)."""
    app = app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=30)
    services, http = get_services(app), app.test_client()
    tz_name = "America/New_York"
    services.create_site(Site(8, 6.0, 12, "8 Sun St", "New York", "NY", "10001", timezone=tz_name))
    old = [r for r in fleet_records(8) if r[0] < ms(datetime(2026, 4, 1, tzinfo=UTC))]
    services.timeseries.add_validated_records({8: old})
    services.timeseries.add_validated_records({8: [(ms(datetime(2026, 6, 1, tzinfo=UTC)), 1.0, 1.0, 20.0)]})
    raw = services.timeseries.record_pages(
        8, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)
    )
    assert list(raw) == []  # the raw readings are gone
    tz = ZoneInfo(tz_name)
    ref = reference(old, tz_name, 6.0, date.isoformat)
    body = energy(http, 8, start="2026-03-01", end="2026-04-02").get_json()
    for period in body["periods"]:
        day = date.fromisoformat(period["period"])
        lo, hi = local_midnight_ms(day, tz), local_midnight_ms(day + timedelta(days=1), tz)
        check_period(period, ref.get(period["period"]), tz, 6.0, (hi - lo) / 3_600_000)
    (march,) = energy(http, 8, granularity="month", start="2026-03-01", end="2026-04-01").get_json()[
        "periods"
    ]
    month_ref = reference(old, tz_name, 6.0, lambda d: f"{d.year:04d}-{d.month:02d}")["2026-03"]
    check_period(march, month_ref, tz, 6.0, 31 * 24 - 1)


@pytest.mark.parametrize(
    "tz_name",
    ["Europe/London", "America/New_York", "Pacific/Apia", "America/Santiago", "Australia/Lord_Howe", "UTC"],
)
def test_day_starts_equal_local_day_bounds(tz_name: str) -> None:
    """The fast day starts (one offset history) are localtime's, also for a skipped day (Apia,
    2011-12-30), a midnight in a DST gap (Santiago) and half-hour changes (Lord Howe)."""
    tz = ZoneInfo(tz_name)
    first, stop = day_number(date(2010, 6, 1)), day_number(date(2012, 6, 1))
    assert day_starts(tz, first, stop) == [local_day_bounds(n, tz)[0] for n in range(first, stop)]
