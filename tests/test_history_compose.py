"""History rollups composed at ingest (redisolar/dao/lua/history_set.lua): a local day is composed of
the hour records (and, where the zone's offset is not a whole hour, the raw readings of the partial
hours at its edges). Property-based: any mix of batches, single readings, overwrites and retries
around DST changes, in zones with whole, half-hour and 45-minute offsets, leaves every hour and
local day equal to a plain-Python computation with ``zoneinfo``; a repeated write changes no byte;
a rebuild gives what ingest gave. On every target (both backends, standalone and cluster)."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisolar.dao.history import DAY, HOUR
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.localtime import encode_tzt
from redisolar.timeutil import to_ms
from tests.test_history import Records, as_tuple, expected, expected_day, make_dao

if TYPE_CHECKING:
    from conftest import BackendServer

MINUTE = 60_000
# (zone, a local date next to one of its 2026 offset changes, or any date for a zone without DST)
ZONE_DAYS = [
    ("Asia/Kolkata", date(2026, 6, 10)),  # +5:30
    ("Asia/Kathmandu", date(2026, 6, 10)),  # +5:45
    ("Australia/Adelaide", date(2026, 4, 5)),  # +10:30 -> +9:30: a 25 h day with half-hour edges
    ("Australia/Adelaide", date(2026, 10, 4)),  # +9:30 -> +10:30: 23 h
    ("Pacific/Chatham", date(2026, 4, 5)),  # +13:45 -> +12:45
    ("Pacific/Chatham", date(2026, 9, 27)),  # +12:45 -> +13:45
    ("Australia/Lord_Howe", date(2026, 4, 5)),  # +11 -> +10:30: one edge whole, one half
    ("America/New_York", date(2026, 3, 8)),  # whole hours, 23 h
    ("Europe/London", date(2026, 10, 25)),  # whole hours, 25 h
]
VALUES = st.sampled_from([0.0, 0.1, 0.7, 1.5, 7.25, 1e6 / 3, 123.456, 1e-3])
site_ids = itertools.count(1000)


def local_midnight(day: date, tz: ZoneInfo) -> int:
    return to_ms(datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC))


def write(dao: TimeSeriesDao, site_id: int, batch: Records, times: int) -> None:
    for _ in range(times):
        dao.add_validated_records({site_id: batch})


def check(
    dao: TimeSeriesDao, site_id: int, tz: ZoneInfo, stored: dict[int, tuple[float, float, float]]
) -> None:
    """Every hour and local day of the site equals its plain-Python rollup."""
    history = dao.history
    lo, hi = min(stored), max(stored)
    hours = history.hours(site_id, lo - lo % HOUR, hi + HOUR)
    assert [h.start_ms for h in hours] == sorted({t - t % HOUR for t in stored})
    for h in hours:
        assert as_tuple(h) == expected(stored, h.start_ms, h.start_ms + HOUR)
    local = sorted({datetime.fromtimestamp(t / 1000, tz).date() for t in stored})
    days = history.days(site_id, local[0] - timedelta(days=1), local[-1] + timedelta(days=2))
    assert [d.day for d in days] == local
    for d in days:
        start, end = local_midnight(d.day, tz), local_midnight(d.day + timedelta(days=1), tz)
        assert (d.start_ms, d.end_ms, d.hours) == (start, end, (end - start) / HOUR)
        assert as_tuple(d) == expected_day(stored, start, end), d.day


def blocks(raw: redis.Redis, dao: TimeSeriesDao, site_id: int) -> dict[str, object]:
    """The bytes of the site's history keys: the meta hash and every hour and day block written."""
    keys = dao.keys
    meta = raw.hgetall(keys.history_meta_key(site_id))
    span = {f.decode(): int(v) for f, v in meta.items() if f in (b"lh", b"hh", b"ld", b"hd")}
    # 'hv' is the series data version the day records reflect (a new write bumps it, as it bumps the
    # series' own 'v'): bookkeeping for the reconciler, not rollup bytes
    out: dict[str, object] = {"meta": sorted(item for item in meta.items() if item[0] != b"hv")}
    for b in range(span["lh"], span["hh"] + 1):
        out[keys.history_hours_key(site_id, b)] = raw.get(keys.history_hours_key(site_id, b))
    for b in range(span["ld"], span["hd"] + 1):
        out[keys.history_days_key(site_id, b)] = raw.get(keys.history_days_key(site_id, b))
    return out


readings = st.lists(
    st.tuples(st.integers(0, 60 * 60 - 1), VALUES, VALUES, st.floats(-20, 45, allow_nan=False)),
    min_size=1,
    max_size=15,
)
batches = st.lists(st.tuples(readings, st.booleans()), min_size=1, max_size=6)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(zone_day=st.sampled_from(ZONE_DAYS), batches=batches)
def test_composed_days_equal_plain_zoneinfo_under_overwrites_and_retries(
    client: redis.Redis,
    backend_server: BackendServer,
    zone_day: tuple[str, date],
    batches: list[tuple[list[tuple[int, float, float, float]], bool]],
) -> None:
    """Readings on any minute of the 60 hours around a local day that a DST change or a
    non-whole-hour offset makes awkward, in batches (single readings among them), some minutes
    written again with other values (overwrites), some batches sent twice (retries)."""
    zone, day = zone_day
    tz = ZoneInfo(zone)
    dao = make_dao(client, backend_server, 0, 0)
    site_id = next(site_ids)
    client.hset(dao.keys.site_key(site_id), "tzt", encode_tzt(zone))
    origin = local_midnight(day, tz) - 18 * HOUR
    stored: dict[int, tuple[float, float, float]] = {}
    for batch, retried in batches:
        by_ts = {origin + minute * MINUTE: (g, u, c) for minute, g, u, c in batch}
        write(dao, site_id, [(t, *by_ts[t]) for t in sorted(by_ts)], 2 if retried else 1)
        stored.update(by_ts)
    check(dao, site_id, tz, stored)


@pytest.mark.parametrize("zone_day", ZONE_DAYS[:6], ids=lambda z: f"{z[0]}-{z[1]}")
def test_a_repeated_write_changes_no_byte_and_a_rebuild_gives_what_ingest_gave(
    client: redis.Redis, raw_client: redis.Redis, backend_server: BackendServer, zone_day: tuple[str, date]
) -> None:
    zone, day = zone_day
    tz = ZoneInfo(zone)
    dao = make_dao(client, backend_server, 0, 0)
    site_id = next(site_ids)
    client.hset(dao.keys.site_key(site_id), "tzt", encode_tzt(zone))
    start = local_midnight(day, tz) - 6 * HOUR
    recs: Records = [
        (start + i * 7 * MINUTE, (i * 7919 % 97) / 7.0, (i * 104729 % 61) / 3.0, 15.0 + i % 5)
        for i in range(450)
    ]
    for i in range(0, len(recs), 40):
        write(dao, site_id, recs[i : i + 40], 1)
    for one in recs[-3:]:  # single readings, as meters send them
        write(dao, site_id, [one], 1)
    stored = {t: (g, u, c) for t, g, u, c in recs}
    check(dao, site_id, tz, stored)
    before = blocks(raw_client, dao, site_id)
    assert len(before) > 2
    write(dao, site_id, recs[100:101], 2)  # a retry of an old reading, and of the newest
    write(dao, site_id, recs[-1:], 1)
    assert blocks(raw_client, dao, site_id) == before
    hours = dao.history.hours(site_id, start - DAY, start + 4 * DAY)
    days = dao.history.days(site_id, day - timedelta(days=2), day + timedelta(days=4))
    dao.history.delete(site_id)
    dao.history.rebuild(dao.backend.name, site_id, start, recs[-1][0] + 1)
    assert dao.history.hours(site_id, start - DAY, start + 4 * DAY) == hours
    assert dao.history.days(site_id, day - timedelta(days=2), day + timedelta(days=4)) == days
