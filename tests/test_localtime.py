"""redisolar.localtime: local day numbers and bounds against plain zoneinfo, and the Lua reference
implementation of a local day number run inside a real Redis against the Python one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from redisolar import localtime as lt
from redisolar.embedded import RedisServer

ZONES = [
    "America/New_York",
    "Europe/London",
    "America/Phoenix",
    "Pacific/Honolulu",
    "Australia/Lord_Howe",  # a 30-minute DST
    "Asia/Kathmandu",  # +5:45
]
START_2011 = 1_293_840_000_000  # 2011-01-01 UTC: since then no zone's wall date goes back
END_2100 = 4_102_444_800_000  # 2100-01-01 UTC


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: str = "UTC") -> int:
    """The instant of a wall time in ``tz`` (fold 0) as ms since the epoch."""
    return int(datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(tz)).timestamp() * 1000)


def dn(day: date) -> int:
    return lt.day_number(day)


# -- local days ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        ("America/New_York", date(2026, 3, 8), 23),  # spring forward
        ("America/New_York", date(2026, 11, 1), 25),  # fall back
        ("America/New_York", date(2026, 6, 1), 24),
        ("Europe/London", date(2026, 3, 29), 23),  # the EU's dates differ from the US's
        ("Europe/London", date(2026, 10, 25), 25),
        ("America/Phoenix", date(2026, 3, 8), 24),  # no DST
        ("Pacific/Honolulu", date(2026, 11, 1), 24),
        ("Australia/Lord_Howe", date(2026, 4, 5), 24.5),  # DST of 30 minutes
        ("Australia/Lord_Howe", date(2026, 10, 4), 23.5),
        ("Asia/Kathmandu", date(2026, 3, 29), 24),
        ("America/Santiago", date(2026, 9, 6), 23),  # midnight does not exist that day
        ("Pacific/Apia", date(2011, 12, 30), 0),  # skipped when Samoa crossed the date line
        ("UTC", date(2026, 3, 8), 24),
    ],
)
def test_day_lengths(tz: str, day: date, hours: float) -> None:
    assert lt.local_day_hours(day, tz) == hours
    assert lt.local_day_hours(dn(day), tz) == hours


def test_bounds_are_local_midnights() -> None:
    start, end = lt.local_day_bounds(date(2026, 11, 1), "America/New_York")
    assert start == ms(2026, 11, 1, 4)  # 00:00 EDT
    assert end == ms(2026, 11, 2, 5)  # 00:00 EST
    assert lt.local_day_bounds(date(2026, 6, 1), "America/Phoenix") == (ms(2026, 6, 1, 7), ms(2026, 6, 2, 7))
    assert lt.local_day_bounds(date(2026, 6, 1), "Asia/Kathmandu")[0] == ms(2026, 5, 31, 18, 15)


def test_a_day_whose_midnight_falls_in_a_gap_starts_at_the_first_existing_instant() -> None:
    start, _ = lt.local_day_bounds(date(2026, 9, 6), "America/Santiago")  # 00:00 -04 → 01:00 -03
    assert start == ms(2026, 9, 6, 4)  # 01:00 -03, the change itself
    assert lt.local_day_number(start, "America/Santiago") == dn(date(2026, 9, 6))
    assert lt.local_day_number(start - 1, "America/Santiago") == dn(date(2026, 9, 5))


def test_day_numbers() -> None:
    assert lt.local_day_number(0, "UTC") == 0
    assert lt.local_day_number(-1, "UTC") == -1
    # 2026-06-01 00:30 UTC is still May 31 in Phoenix (17:30) and Honolulu (14:30), June 1 in London
    instant = ms(2026, 6, 1, 0, 30)
    assert lt.local_day_number(instant, "America/Phoenix") == dn(date(2026, 5, 31))
    assert lt.local_day_number(instant, "Pacific/Honolulu") == dn(date(2026, 5, 31))
    assert lt.local_day_number(instant, "Europe/London") == dn(date(2026, 6, 1))
    assert lt.local_day_number(instant, ZoneInfo("Asia/Kathmandu")) == dn(date(2026, 6, 1))
    assert lt.day_date(dn(date(2026, 6, 1))) == date(2026, 6, 1)


def test_unknown_zones() -> None:
    assert lt.is_timezone("Europe/London") and lt.is_timezone("UTC")
    for name in ("Mars/Olympus", "europe/london", "", "localtime", None, 3):
        assert not lt.is_timezone(name)
    with pytest.raises(ZoneInfoNotFoundError, match=r"Unknown time zone 'Mars/Olympus'.*IANA name"):
        lt.local_day_number(0, "Mars/Olympus")
    with pytest.raises(ValueError, match="outside years"):
        lt.local_day_number(10**18, "UTC")


timestamps = st.integers(min_value=START_2011, max_value=END_2100 - 1)


@settings(max_examples=300, deadline=None, database=None)
@given(tz=st.sampled_from(ZONES), instant=timestamps)
def test_an_instant_lies_in_the_bounds_of_its_day(tz: str, instant: int) -> None:
    day = lt.local_day_number(instant, tz)
    start, end = lt.local_day_bounds(day, tz)
    assert start <= instant < end
    assert lt.local_day_number(start, tz) == day
    assert lt.local_day_number(start - 1, tz) == day - 1
    assert lt.local_day_number(end, tz) == day + 1
    wall = datetime.fromtimestamp(instant / 1000, ZoneInfo(tz))
    assert lt.local_date(instant, tz) == wall.date()


# -- the offset history ----------------------------------------------------------------------------
def test_transitions() -> None:
    assert lt.transitions("America/Phoenix") == [(0, -7 * 3600_000)]
    kathmandu = [(0, 19_800_000), (ms(1986, 1, 1, tz="Asia/Kathmandu"), 20_700_000)]  # +5:30, then +5:45
    assert lt.transitions("Asia/Kathmandu") == kathmandu
    ny = lt.transitions("America/New_York", 2026, 2027)
    assert ny == [
        (ms(2026, 1, 1), -5 * 3600_000),
        (ms(2026, 3, 8, 7), -4 * 3600_000),  # 02:00 EST
        (ms(2026, 11, 1, 6), -5 * 3600_000),  # 02:00 EDT
    ]
    encoded = lt.encode_transitions("America/New_York")
    assert len(encoded) == 16 * len(lt.transitions("America/New_York"))
    assert lt.decode_transitions(encoded) == lt.transitions("America/New_York")
    with pytest.raises(ValueError, match="must precede"):
        lt.transitions("UTC", 2000, 2000)


@pytest.mark.parametrize("tz", ZONES)
def test_transitions_give_zoneinfo_offsets(tz: str) -> None:
    table = lt.transitions(tz)
    for (start, offset), (end, _) in zip(table, [*table[1:], (END_2100, 0)], strict=True):
        for instant in (start, end - 1):
            wall = datetime.fromtimestamp(instant / 1000, UTC).astimezone(ZoneInfo(tz))
            assert wall.utcoffset() == timedelta(milliseconds=offset), (tz, instant)


# -- the Lua reference, inside Redis ---------------------------------------------------------------
LUA_DAYS = (
    lt.LOCAL_DAY_LUA
    + """
local out = {}
for i = 2, #ARGV do out[#out + 1] = local_day(ARGV[1], tonumber(ARGV[i])) end
return out
"""
)


@pytest.fixture(scope="module")
def lua_redis(plain_redis: RedisServer) -> Iterator[redis.Redis]:
    """A client on the session's plain server (the script reads and writes no key)."""
    connection = plain_redis.client()
    yield connection
    connection.close()


def near_changes(tz: str) -> st.SearchStrategy[int]:
    """Instants within two days of one of ``tz``'s offset changes (or anywhere when it has none)."""
    changes = [t for t, _ in lt.transitions(tz)[1:]]
    if not changes:
        return st.integers(min_value=0, max_value=END_2100 - 1)
    window = 2 * lt.DAY_MS
    return st.builds(lambda t, d: t + d, st.sampled_from(changes), st.integers(-window, window))


@st.composite
def zone_and_instants(draw: st.DrawFn) -> tuple[str, list[int]]:
    tz = draw(st.sampled_from(ZONES))
    near = near_changes(tz)
    anywhere = st.integers(min_value=0, max_value=END_2100 - 1)
    edges = st.sampled_from([t + d for t, _ in lt.transitions(tz) for d in (-1, 0, 1)])
    return tz, draw(st.lists(st.one_of(near, anywhere, edges), min_size=1, max_size=60))


@settings(max_examples=120, deadline=None, database=None)
@given(case=zone_and_instants())
def test_lua_local_day_equals_python(lua_redis: redis.Redis, case: tuple[str, list[int]]) -> None:
    tz, instants = case
    table = lt.encode_transitions(tz)
    days = lua_redis.eval(LUA_DAYS, 0, table, *(str(t) for t in instants))
    assert days == [lt.local_day_number(t, tz) for t in instants]


def test_lua_local_day_on_every_day_of_2026(lua_redis: redis.Redis) -> None:
    """Every local midnight of 2026 and the ms before it, in each zone."""
    for tz in ZONES:
        starts = [lt.local_day_bounds(date(2026, 1, 1) + timedelta(days=i), tz)[0] for i in range(365)]
        instants = [t + d for t in starts for d in (-1, 0)]
        days = lua_redis.eval(LUA_DAYS, 0, lt.encode_transitions(tz), *(str(t) for t in instants))
        assert days == [lt.local_day_number(t, tz) for t in instants], tz
        assert days[1::2] == list(range(dn(date(2026, 1, 1)), dn(date(2026, 1, 1)) + 365))
