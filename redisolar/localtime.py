"""Site-local calendar days: pure functions on :mod:`zoneinfo`, exact to the millisecond.

A site's day is the local calendar date of its time zone (an IANA name). Days are numbered like
Unix days: ``0`` is 1970-01-01 (local), so a day number is ``floor(local wall ms / 86,400,000)``.
Instants are integers of ms since the Unix epoch (UTC), as readings are stored.

Decisions:

- The day of an instant is the date of its wall time there: ``local_day_number``. Wall time is the
  UTC instant plus the zone's offset at that instant (zoneinfo's answer, no ``fold`` needed).
- A day is the half-open range of instants whose wall date is that day, ``[start, end)``:
  ``local_day_bounds``. It lasts 24 h, 23 h or 25 h across DST changes (23.5 h/24.5 h on Lord Howe),
  and its start is the first instant whose wall date is the day, so in a zone whose midnight falls
  in a DST gap (America/Santiago, America/Havana, Asia/Beirut, ...) the day starts at the end of the
  gap (01:00 local), and a day a zone skipped entirely (Pacific/Apia, 2011-12-30) lasts 0 h.
- Wall dates never go back since 2011. Before that, four zones (America/St_Johns, America/Goose_Bay,
  America/Moncton until 2010, Antarctica/Casey in 2010) fell back from just after midnight to the
  previous evening: the repeated minutes after the change keep the wall date of the previous day
  (``local_day_number``), outside that day's ``local_day_bounds``. No current rule does this.
- The UTC-offset history of a zone (``transitions``) is read from zoneinfo itself, by sampling daily
  and bisecting each change to the ms, so the Lua side (``encode_transitions`` + :data:`LOCAL_DAY_LUA`)
  answers what Python answers. Checked once for every zone of tzdata 2026b: for 1970-2037 the result
  equals the explicit transitions of the TZif files (no zone changes its offset twice within a day);
  ``local_day_bounds`` samples hourly around the day it is asked about.
"""

from __future__ import annotations

import functools
import math
import struct
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from redisolar import timeutil

__all__ = [
    "DAY_MS",
    "HOST_DEPENDENT",
    "LOCAL_DAY_LUA",
    "TZT_END_YEAR",
    "TZT_START_YEAR",
    "Zone",
    "day_date",
    "day_number",
    "decode_transitions",
    "decode_tzt",
    "encode_transitions",
    "encode_tzt",
    "fleet_today",
    "is_timezone",
    "local_date",
    "local_day_bounds",
    "local_day_hours",
    "local_day_number",
    "transitions",
    "zone",
]

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MIN_MS = math.ceil((datetime(1, 1, 2, tzinfo=UTC) - _EPOCH) / timedelta(milliseconds=1))
_MAX_MS = (datetime(9999, 12, 30, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_ENTRY = struct.Struct("<dd")

Zone = tzinfo | str
"""A time zone: an IANA name or a ``tzinfo`` (``ZoneInfo``, ``datetime.UTC``)."""


# -- zones -----------------------------------------------------------------------------------------
HOST_DEPENDENT = frozenset({"localtime"})
"""Names some systems list among their zones (Debian's ``/usr/share/zoneinfo/localtime``) that
mean the host's own zone: not IANA names, and not the same zone on every host."""


@functools.cache
def _names() -> frozenset[str]:
    return frozenset(available_timezones()) - HOST_DEPENDENT


def is_timezone(name: object) -> bool:
    """Whether ``name`` is an IANA time zone name this system knows (a key of
    ``zoneinfo.available_timezones()`` but :data:`HOST_DEPENDENT` ones; cached, as that call reads
    the zone directory)."""
    return isinstance(name, str) and name in _names()


@functools.lru_cache(maxsize=1024)
def _zone_named(name: str) -> ZoneInfo:
    if not is_timezone(name):
        raise ZoneInfoNotFoundError(f"Unknown time zone {name!r}: expected an IANA name like 'Europe/London'")
    return ZoneInfo(name)


def zone(tz: Zone) -> tzinfo:
    """``tz`` as a ``tzinfo``: a name is looked up (``ZoneInfoNotFoundError``, a ``KeyError``, if unknown)."""
    return _zone_named(tz) if isinstance(tz, str) else tz


def _instant(ms: int) -> datetime:
    if not _MIN_MS <= ms <= _MAX_MS:
        raise ValueError(f"Timestamp {ms} ms lies outside years 1..9999")
    return _EPOCH + timedelta(milliseconds=ms)


def _offset_ms(ms: int, tz: tzinfo) -> int:
    offset = _instant(ms).astimezone(tz).utcoffset()
    return 0 if offset is None else offset // timedelta(milliseconds=1)


# -- days ------------------------------------------------------------------------------------------
def local_date(ms: int, tz: Zone) -> date:
    """The local calendar date in ``tz`` of the instant ``ms`` (ms since the Unix epoch)."""
    return _instant(ms).astimezone(zone(tz)).date()


def local_day_number(ms: int, tz: Zone) -> int:
    """Days since 1970-01-01 of the local calendar date in ``tz`` of the instant ``ms``."""
    return local_date(ms, tz).toordinal() - _EPOCH_ORDINAL


def day_number(day: date) -> int:
    """The number of a calendar date (days since 1970-01-01)."""
    return day.toordinal() - _EPOCH_ORDINAL


def day_date(day_number: int) -> date:
    """The calendar date of a day number."""
    return date.fromordinal(day_number + _EPOCH_ORDINAL)


def local_day_bounds(day: int | date, tz: Zone) -> tuple[int, int]:
    """``(start_ms, end_ms)``: the instants whose local date in ``tz`` is ``day`` (a day number or a
    date), ``[start, end)``; ``end`` is the next day's start (equal to ``start`` for a skipped day)."""
    number = day_number(day) if isinstance(day, date) else day
    tzi = zone(tz)
    return _first_instant_of(number, tzi), _first_instant_of(number + 1, tzi)


def local_day_hours(day: int | date, tz: Zone) -> float:
    """How many hours the local ``day`` lasts in ``tz``: 24, or 23/25 (23.5/24.5...) across DST changes."""
    start, end = local_day_bounds(day, tz)
    return (end - start) / HOUR_MS


def _first_instant_of(number: int, tz: tzinfo) -> int:
    """The first instant whose wall time in ``tz`` is on day ``number`` or later.

    Offsets lie within ±26 h, so that instant lies within two days of UTC midnight of the same date;
    over that window the offset is piecewise constant (``_pieces``), and in the first piece whose wall
    time reaches the day the answer is ``max(piece start, midnight - piece offset)``.
    """
    midnight = number * DAY_MS
    pieces = _pieces(tz, midnight - 2 * DAY_MS, midnight + 2 * DAY_MS, HOUR_MS)
    for (start, offset), (end, _) in zip(pieces, [*pieces[1:], (midnight + 2 * DAY_MS, 0)], strict=True):
        if end + offset > midnight:
            return max(start, midnight - offset)
    raise AssertionError(f"no instant of day {number} within 2 days of its UTC midnight")  # pragma: no cover


# -- offset history --------------------------------------------------------------------------------
def _pieces(tz: tzinfo, lo: int, hi: int, step: int) -> list[tuple[int, int]]:
    """``[(from_ms, offset_ms)]`` for ``[lo, hi)``: the first starts at ``lo``, each next one at an
    offset change (the first ms with the new offset), found by sampling every ``step`` ms and bisecting."""
    pieces = [(lo, _offset_ms(lo, tz))]
    t, offset = lo, pieces[0][1]
    while t < hi:
        nxt = min(t + step, hi)
        nxt_offset = _offset_ms(nxt, tz) if nxt < hi else offset
        if nxt_offset != offset:
            pieces.append(_change_in(tz, t, nxt, offset))
            nxt, nxt_offset = pieces[-1]
        t, offset = nxt, nxt_offset
    return pieces


def _change_in(tz: tzinfo, lo: int, hi: int, offset: int) -> tuple[int, int]:
    """The first ms in ``(lo, hi]`` whose offset differs from ``offset`` (at ``lo``), and that offset."""
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset_ms(mid, tz) == offset:
            lo = mid
        else:
            hi = mid
    return hi, _offset_ms(hi, tz)


@functools.lru_cache(maxsize=1024)
def _transitions(tz: tzinfo, start_year: int, end_year: int) -> tuple[tuple[int, int], ...]:
    lo = (datetime(start_year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
    hi = (datetime(end_year, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
    return tuple(_pieces(tz, lo, hi, DAY_MS))


def transitions(tz: Zone, start_year: int = 1970, end_year: int = 2100) -> list[tuple[int, int]]:
    """The UTC-offset history of ``tz`` from 1 January ``start_year`` to 1 January ``end_year`` (UTC):
    ``[(utc_ms, offset_ms)]``, sorted, each the offset from that instant on; the first is the offset at
    the range's start (its ``utc_ms`` is that start), each next one a change of offset. Before the range
    the first offset holds, after it the last (cached per zone and range)."""
    if start_year >= end_year:
        raise ValueError(f"start_year {start_year} must precede end_year {end_year}")
    return list(_transitions(zone(tz), start_year, end_year))


def encode_transitions(tz: Zone, start_year: int = 1970, end_year: int = 2100) -> bytes:
    """``transitions(...)`` packed for Lua: 16 bytes an entry, ``struct.pack('<dd', utc_ms, offset_ms)``
    (doubles hold every ms up to 2**53 exactly). New York 1970-2100: 261 entries, 4,176 bytes."""
    return b"".join(_ENTRY.pack(t, o) for t, o in transitions(tz, start_year, end_year))


def decode_transitions(data: bytes) -> list[tuple[int, int]]:
    """The entries of ``encode_transitions`` back as ``[(utc_ms, offset_ms)]``."""
    return [(int(t), int(o)) for t, o in _ENTRY.iter_unpack(data)]


def fleet_today(tz: Zone = "UTC") -> date:
    """The current date in ``tz`` (the fleet's zone, ``DEFAULT_TIMEZONE``)."""
    return timeutil.utcnow().astimezone(zone(tz)).date()


TZT_START_YEAR = 2000
TZT_END_YEAR = 2100
_TZT_WIDTH = 10
_TZT_OFFSET_BIAS = 2048
_MINUTE_MS = 60_000


@functools.lru_cache(maxsize=1024)
def encode_tzt(tz: str) -> str:
    """The ``tzt`` field of a site hash: the zone's offset history from 2000 to 2100 for the Lua
    library ``redisolar/dao/lua/lib/localday.lua``.

    Decisions: ASCII, so every client (also one that decodes replies as UTF-8, and ``redis-cli``)
    reads the hash: 10 hex digits an entry, 7 for the first UTC minute of the offset (minutes since
    the epoch; 2100 is 0x4134E40, 7 digits last until 2480) and 3 for the offset in minutes plus
    2,048 (offsets lie within ±26 h = ±1,560 min). Every zone of tzdata 2026b changes offset only at
    whole minutes to whole-minute offsets from 2000 on (checked: a ``ValueError`` otherwise). The
    window starts in 2000 because readings are recent (raw retention is days, history years): before
    it the offset of 2000-01-01 holds, after 2100 the last one. America/New_York: 201 entries,
    2,010 bytes (binary '<ih' would be 1,206, the '<dd' of ``encode_transitions`` 3,216); the
    largest, Asia/Hebron, 263 entries, 2,630 bytes; a zone without DST, 10 bytes. Cached per zone."""
    entries = transitions(tz, TZT_START_YEAR, TZT_END_YEAR)
    if any(t % _MINUTE_MS or o % _MINUTE_MS for t, o in entries):
        raise ValueError(f"{tz}: an offset or a change of offset is not a whole minute")
    return "".join(f"{t // _MINUTE_MS:07x}{o // _MINUTE_MS + _TZT_OFFSET_BIAS:03x}" for t, o in entries)


def decode_tzt(data: str | bytes) -> list[tuple[int, int]]:
    """The entries of ``encode_tzt`` back as ``[(utc_ms, offset_ms)]``."""
    text = data.decode("ascii") if isinstance(data, bytes) else data
    entries = (text[i : i + _TZT_WIDTH] for i in range(0, len(text), _TZT_WIDTH))
    return [(int(e[:7], 16) * _MINUTE_MS, (int(e[7:], 16) - _TZT_OFFSET_BIAS) * _MINUTE_MS) for e in entries]


LOCAL_DAY_LUA = """
-- local_day(tbl, t): the local day number (days since 1970-01-01) of the instant t (ms since the
-- Unix epoch, UTC) in the zone whose encode_transitions() table is tbl: binary search for the last
-- entry at or before t (or the first), then floor((t + offset) / 86400000).
local function local_day(tbl, t)
  local lo, hi = 1, #tbl / 16
  while lo < hi do
    local mid = math.floor((lo + hi + 1) / 2)
    if struct.unpack('<d', tbl, mid * 16 - 15) <= t then lo = mid else hi = mid - 1 end
  end
  local _, offset = struct.unpack('<dd', tbl, lo * 16 - 15)
  return math.floor((t + offset) / 86400000)
end
"""
"""The reference Lua of a local day number (Redis ≥ 7 scripts have ``struct``): scripts that need a
site's local day prepend it and pass the site zone's ``encode_transitions`` table as an argument."""
