"""Site-local days: the offset history a site hash carries (``tzt``), the Lua library
``lib/localday.lua`` run inside a real Redis against redisolar.localtime (hypothesis), the include
mechanism of the script loader, and the start-up migration that gives existing sites their ``tzt``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import TYPE_CHECKING

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from redisolar import localtime as lt
from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import with_includes
from redisolar.dao.site_dao_redis import SiteDaoRedis
from redisolar.dao.site_timezones import TZT_MIGRATION, give_sites_transitions
from redisolar.models.site import Coordinate, Site

if TYPE_CHECKING:
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
