"""Site-local days: the offset history a site hash carries (``tzt``), the Lua library
``lib/localday.lua`` run inside a real Redis against redisolar.localtime (hypothesis), the include
mechanism of the script loader, and the start-up migration that gives existing sites their ``tzt``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from redisolar import localtime as lt
from redisolar.app import get_services
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import with_includes
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.site_timezones import TZT_MIGRATION, give_sites_transitions
from redisolar.models.site import Coordinate, Site
from redisolar.tasks.leaderboard_updater import LOCAL_DAYS_MIGRATION, rebuild_boards_once
from redisolar.timeutil import to_ms, utcnow

if TYPE_CHECKING:
    from conftest import ApiCalls
    from flask import Flask
    from flask.testing import FlaskClient

    from redisolar.embedded import RedisServer

ZONES = [
    "Pacific/Honolulu",
    "America/Phoenix",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # a 30-minute DST
    "Asia/Kathmandu",  # +5:45
    "America/Santiago",  # midnight in the DST gap: days start at 01:00
    "America/St_Johns",  # fell back across midnight until 2011
    "Pacific/Apia",  # skipped 2011-12-30
    "UTC",
]
START_2000 = 946_684_800_000
END_2100 = 4_102_444_800_000

LUA = with_includes(
    """--@include lib/localday.lua
local tzt = ARGV[1]
if ARGV[2] == 'days' then
  local out = {}
  for i = 3, #ARGV do out[#out + 1] = local_day(tonumber(ARGV[i]), tzt) end
  return out
end
local out = {}
for i = 3, #ARGV do
  local s, e = local_day_bounds(tonumber(ARGV[i]), tzt)
  out[#out + 1] = {s, e}
end
return out
"""
)


@pytest.fixture(scope="module")
def lua_redis(plain_redis: RedisServer) -> Iterator[redis.Redis]:
    """A client on the session's plain server (the library reads and writes no key)."""
    connection = plain_redis.client()
    yield connection
    connection.close()


def lua_days(client: redis.Redis, tz: str, instants: list[int], tzt: str | None = None) -> list[int]:
    table = lt.encode_tzt(tz) if tzt is None else tzt
    return [int(d) for d in client.eval(LUA, 0, table, "days", *(str(t) for t in instants))]


def lua_bounds(
    client: redis.Redis, tz: str, days: list[int], tzt: str | None = None
) -> list[tuple[int, ...]]:
    table = lt.encode_tzt(tz) if tzt is None else tzt
    return [(int(s), int(e)) for s, e in client.eval(LUA, 0, table, "bounds", *(str(d) for d in days))]


# -- the table -------------------------------------------------------------------------------------
def test_the_table_is_compact_and_exact() -> None:
    ny = lt.encode_tzt("America/New_York")
    assert len(ny) == 2_010  # 201 entries of 10 hex digits (2000-2100); ASCII: decoding clients read it
    assert len(lt.encode_tzt("America/Phoenix")) == len(lt.encode_tzt("UTC")) == 10
    assert lt.decode_tzt(ny) == lt.transitions("America/New_York", 2000, 2100)
    assert lt.decode_tzt(lt.encode_tzt("Asia/Kathmandu")) == lt.transitions("Asia/Kathmandu", 2000, 2100)


# -- the library against Python --------------------------------------------------------------------
def near_changes(tz: str) -> st.SearchStrategy[int]:
    changes = [t for t, _ in lt.transitions(tz, 2000, 2100)[1:]]
    if not changes:
        return st.integers(min_value=START_2000, max_value=END_2100 - 1)
    window = 2 * lt.DAY_MS
    return st.builds(lambda t, d: t + d, st.sampled_from(changes), st.integers(-window, window))


@st.composite
def zone_and_instants(draw: st.DrawFn) -> tuple[str, list[int]]:
    tz = draw(st.sampled_from(ZONES))
    anywhere = st.integers(min_value=START_2000, max_value=END_2100 - 1)
    edges = st.sampled_from([t + d for t, _ in lt.transitions(tz, 2000, 2100) for d in (-1, 0, 1)])
    return tz, draw(st.lists(st.one_of(near_changes(tz), anywhere, edges), min_size=1, max_size=40))


@settings(max_examples=150, deadline=None, database=None)
@given(case=zone_and_instants())
def test_local_day_equals_python(lua_redis: redis.Redis, case: tuple[str, list[int]]) -> None:
    tz, instants = case
    assert lua_days(lua_redis, tz, instants) == [lt.local_day_number(t, tz) for t in instants]


@settings(max_examples=150, deadline=None, database=None)
@given(case=zone_and_instants())
def test_local_day_bounds_equal_python(lua_redis: redis.Redis, case: tuple[str, list[int]]) -> None:
    tz, instants = case
    days = sorted({lt.local_day_number(t, tz) for t in instants})
    assert lua_bounds(lua_redis, tz, days) == [lt.local_day_bounds(d, tz) for d in days]


def test_every_day_of_2026(lua_redis: redis.Redis) -> None:
    """Every local day of 2026 in each zone: its bounds, and the days of its first and last ms."""
    first = lt.day_number(date(2026, 1, 1))
    days = list(range(first, first + 365))
    for tz in ZONES:
        bounds = [lt.local_day_bounds(d, tz) for d in days]
        assert lua_bounds(lua_redis, tz, days) == bounds, tz
        instants = [t for s, e in bounds for t in (s, e - 1)]
        assert lua_days(lua_redis, tz, instants) == [lt.local_day_number(t, tz) for t in instants], tz


def test_dst_days_of_2026(lua_redis: redis.Redis) -> None:
    cases = {  # zone: {date: hours}
        "America/New_York": {date(2026, 3, 8): 23, date(2026, 11, 1): 25, date(2026, 6, 1): 24},
        "Europe/London": {date(2026, 3, 29): 23, date(2026, 10, 25): 25},
        "America/Phoenix": {date(2026, 3, 8): 24, date(2026, 11, 1): 24},
        "Pacific/Honolulu": {date(2026, 3, 8): 24},
    }
    for tz, hours in cases.items():
        numbers = [lt.day_number(d) for d in hours]
        lengths = [(e - s) / lt.HOUR_MS for s, e in lua_bounds(lua_redis, tz, numbers)]
        assert lengths == list(hours.values()), tz


def test_without_a_table_utc_days(lua_redis: redis.Redis) -> None:
    instants = [0, lt.DAY_MS - 1, lt.DAY_MS, 1_780_000_000_000]
    assert lua_days(lua_redis, "UTC", instants, tzt="") == [t // lt.DAY_MS for t in instants]
    assert lua_bounds(lua_redis, "UTC", [20_600], tzt="") == [(20_600 * lt.DAY_MS, 20_601 * lt.DAY_MS)]


def test_before_2000_the_first_offset_holds(lua_redis: redis.Redis) -> None:
    t = START_2000 - 200 * lt.DAY_MS  # 1999-06-15: New York was on EDT (-4 h); the table says EST
    assert lua_days(lua_redis, "America/New_York", [t + 4 * lt.HOUR_MS]) == [(t - lt.HOUR_MS) // lt.DAY_MS]


# -- the site hash and the migration ---------------------------------------------------------------
def site(site_id: int, tz: str | None) -> Site:
    return Site(site_id, 5.0, 10, "1 Main St", "Town", "NY", "10001", Coordinate(40.7, -74.0), tz)


def test_site_writes_carry_their_zone_table(client: redis.Redis) -> None:
    keys = KeyManager()
    dao = SiteDaoRedis(client)
    dao.insert(site(1, "America/New_York"))
    assert client.hget(keys.site_key(1), "tzt") == lt.encode_tzt("America/New_York")
    dao.insert(site(1, "Europe/London"))  # a changed zone replaces the table
    assert client.hget(keys.site_key(1), "tzt") == lt.encode_tzt("Europe/London")


def test_the_migration_gives_existing_sites_their_table(client: redis.Redis) -> None:
    keys = KeyManager()
    dao = SiteDaoRedis(client)
    for site_id, tz in ((1, "America/Phoenix"), (2, "Pacific/Honolulu"), (3, "Europe/London")):
        dao.insert(site(site_id, tz))
    client.hdel(keys.site_key(1), "tzt")
    client.hdel(keys.site_key(2), "tzt")
    client.hset(keys.site_key(3), "tzt", "kept")  # has one: not rewritten
    assert give_sites_transitions(client, keys) == 2
    assert client.hget(keys.site_key(1), "tzt") == lt.encode_tzt("America/Phoenix")
    assert client.hget(keys.site_key(2), "tzt") == lt.encode_tzt("Pacific/Honolulu")
    assert client.hget(keys.site_key(3), "tzt") == "kept"
    assert client.hget(keys.migrations_key(), TZT_MIGRATION) is not None
    client.hdel(keys.site_key(1), "tzt")
    assert give_sites_transitions(client, keys) == 0  # marked: one round trip, nothing walked
    assert give_sites_transitions(client, keys, force=True) == 1
    assert give_sites_transitions(client, keys, force=True) == 0


# -- day totals, boards and capacity factors in site-local days, through the API --------------------
SITES = {  # site id: (zone, capacity kW); +4: the same zones over the autumn changes
    1: ("Pacific/Honolulu", 3.0),
    2: ("America/Phoenix", 5.0),
    3: ("America/New_York", 4.0),
    4: ("Europe/London", 6.0),
}
SPRING = (datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))  # US 03-08, EU 03-29
AUTUMN = (datetime(2026, 10, 23, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))  # EU 10-25, US 11-01
STEP = timedelta(minutes=20)


def generated(site_id: int, when: datetime, salt: int = 0) -> float:
    """A reading's Wh: multiples of 1/4 (sums exact in any order), distinct per site."""
    return ((when.hour * 7 + when.minute + site_id * 13 + salt) % 50) / 4 + site_id


def readings(site_id: int, window: tuple[datetime, datetime], salt: int = 0) -> list[tuple[datetime, float]]:
    out, when = [], window[0]
    while when < window[1]:
        out.append((when, generated(site_id, when, salt)))
        when += STEP
    return out


def expected(site_id: int, stored: dict[datetime, float]) -> dict[date, tuple[float, float]]:
    """Plain zoneinfo: each local date's (Wh, capacity factor %) of a site's stored readings."""
    zone_name, capacity = SITES[(site_id - 1) % 4 + 1]
    tz = ZoneInfo(zone_name)
    totals: dict[date, float] = {}
    for when in sorted(stored):
        day = when.astimezone(tz).date()
        totals[day] = totals.get(day, 0.0) + stored[when]
    out = {}
    for day, wh in totals.items():
        start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
        hours = (end - start) / timedelta(hours=1)
        out[day] = (wh, 100.0 * wh / (capacity * 1000.0 * hours))
    return out


def post(api: ApiCalls, site_id: int, batch: list[tuple[datetime, float]]) -> None:
    body = [api.reading_body(when, wh_generated=wh) for when, wh in batch]
    for i in range(0, len(body), 2_000):
        api.post_readings(site_id, body[i : i + 2_000])


def board(http: FlaskClient, kind: str, day: date) -> dict[int, float]:
    body = http.get(f"/api/analytics/leaderboards/{kind}?day={day.isoformat()}&limit=100").get_json()
    scores = [(entry["site"]["id"], entry["score"]) for entry in body["entries"]]
    assert [s for _, s in scores] == sorted((s for _, s in scores), reverse=True)  # ranked by score
    return dict(scores)


def check_boards(http: FlaskClient, stored: dict[int, dict[datetime, float]]) -> None:
    want = {site_id: expected(site_id, points) for site_id, points in stored.items()}
    for day in sorted({day for per_day in want.values() for day in per_day}):
        generation, efficiency = board(http, "generation", day), board(http, "efficiency", day)
        on = {site_id: per_day[day] for site_id, per_day in want.items() if day in per_day}
        assert generation == {site_id: wh for site_id, (wh, _) in on.items()}, day
        assert efficiency == pytest.approx({site_id: cf for site_id, (_, cf) in on.items()}, rel=1e-12), day


def test_boards_count_each_sites_local_days(api: ApiCalls, http: FlaskClient, app: Flask) -> None:
    """Four zones over both 2026 DST changes (US and EU): every board date's generation and
    efficiency scores (a 23/25 h day divides by 23/25) equal plain zoneinfo sums, as written at
    ingest, after overwrites and a retried batch, and as the reconciler rebuilds them."""
    stored: dict[int, dict[datetime, float]] = {}
    for base, (zone_name, capacity) in SITES.items():
        for site_id, window in ((base, SPRING), (base + 4, AUTUMN)):
            api.create_site(site_id, capacity=capacity, timezone=zone_name)
            batch = readings(site_id, window)
            post(api, site_id, batch[: len(batch) // 2])
            post(api, site_id, batch[len(batch) // 2 :])
            stored[site_id] = dict(batch)
    check_boards(http, stored)

    # overwrites around local midnights and DST changes, out of order, then the same batch again
    for site_id, points in stored.items():
        changed = [(when, generated(site_id, when, salt=7)) for when in list(points)[5::9]]
        post(api, site_id, changed[::-1][: len(changed) // 2])
        post(api, site_id, changed)
        post(api, site_id, changed)  # a retry
        points.update(changed)
    check_boards(http, stored)

    # the reconciler's rebuild of a day's boards sums the same local days
    services = get_services(app)
    days = [date(2026, 3, 8), date(2026, 3, 29), date(2026, 10, 25), date(2026, 11, 1), date(2026, 11, 2)]
    services.leaderboards.clear_daily_boards([*days])
    for day in days:
        services.updater.update_generation_leaderboard(day)
    check_boards(http, stored)


def test_write_replies_give_local_days_and_their_lengths(client: redis.Redis, app: Flask) -> None:
    services = get_services(app)
    services.sites.insert(site(3, "America/New_York"))
    start = datetime(2026, 10, 31, 12, tzinfo=UTC)
    records = [(to_ms(start + k * timedelta(hours=3)), 1.0, 0.5, 20.0) for k in range(16)]
    written = services.timeseries.write_records({3: records})
    (outcome,) = written.outcomes
    tz = ZoneInfo("America/New_York")
    days = sorted({(start + k * timedelta(hours=3)).astimezone(tz).date() for k in range(16)})
    assert sorted(outcome.day_sums) == [lt.day_number(d) for d in days]
    assert outcome.day_hours == {lt.day_number(d): lt.local_day_hours(d, tz) for d in days}
    assert outcome.day_hours[lt.day_number(date(2026, 11, 1))] == 25.0


def test_a_new_time_zone_moves_the_sites_day_entries(api: ApiCalls, http: FlaskClient) -> None:
    """PUT with another zone: the site's entries of the former zone's days go, its new local days
    are scored from its readings (the retention window counts back from its newest reading)."""
    window = (datetime(2026, 10, 30, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC))
    api.create_site(3, capacity=4.0, timezone="Europe/London")
    api.create_site(4, capacity=6.0, timezone="Europe/London")  # a neighbour that stays
    batch3, batch4 = readings(3, window), readings(4, window)
    post(api, 3, batch3)
    post(api, 4, batch4)
    london = {3: dict(batch3), 4: dict(batch4)}
    SITES_BACKUP = dict(SITES)
    try:
        SITES[3] = ("Europe/London", 4.0)
        check_boards(http, london)
        response = http.put("/api/sites/3", json=api.site_body(3, capacity=4.0, timezone="America/New_York"))
        assert response.status_code == 200, response.get_data(as_text=True)
        SITES[3] = ("America/New_York", 4.0)
        SITES[4] = ("Europe/London", 6.0)
        check_boards(http, london)  # the same readings, counted in New York's days (11-01: 25 h)
        more = readings(3, (window[1], window[1] + timedelta(hours=6)))
        post(api, 3, more)  # ingest continues in the new zone
        london[3].update(more)
        check_boards(http, london)
    finally:
        SITES.clear()
        SITES.update(SITES_BACKUP)


def test_the_boards_are_rebuilt_once_in_local_days(api: ApiCalls, http: FlaskClient, app: Flask) -> None:
    """A store written before local days held UTC-day scores: the start-up rebuild (marker
    'local-day-boards') replaces them with local-day ones once; a second start-up changes nothing."""
    services = get_services(app)
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    window = (now - timedelta(days=2), now)
    api.create_site(1, capacity=3.0, timezone="Pacific/Honolulu")
    batch = readings(1, window)
    post(api, 1, batch)
    days = sorted(
        {when.date() for when, _ in batch}
        | {when.astimezone(ZoneInfo("Pacific/Honolulu")).date() for when, _ in batch}
    )
    # what an earlier version left: UTC-day scores
    services.leaderboards.clear_daily_boards(days)
    utc: dict[date, float] = {}
    for when, wh in batch:
        utc[when.date()] = utc.get(when.date(), 0.0) + wh
    services.timeseries.boards.apply([(1, lt.day_number(d), 1, wh, 3.0) for d, wh in utc.items()])
    services.redis.hdel(services.keys.migrations_key(), LOCAL_DAYS_MIGRATION)
    assert board(http, "generation", days[-1]) == {1: utc[days[-1]]}
    assert rebuild_boards_once(services.redis, services.keys, services.updater)
    check_boards(http, {1: dict(batch)})
    services.timeseries.boards.apply([(1, lt.day_number(days[-1]), 1, 1.0, 3.0)])  # stale: ignored
    assert not rebuild_boards_once(services.redis, services.keys, services.updater)
    check_boards(http, {1: dict(batch)})
