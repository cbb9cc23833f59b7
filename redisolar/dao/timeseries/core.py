"""The ``core`` backend: any Redis ≥ 6.2 (or Valkey), no modules.

A site's readings live in one string per UTC day, ``core:{site:ID}:d:DAY``: 28-byte records (ms offset
in the day as uint32, then Wh generated, Wh used and temperature as little-endian doubles), sorted by
time, one per timestamp. That is 28 bytes per reading, about 9.3 bytes per stored sample, plus one key
per site and day. Writes append (in-order data) or merge (late or repeated data) inside
``core_write.lua``; reads and aggregations run in ``core_read.lua`` so only results cross the wire. Net
generation is derived on read (generated − used), so it costs no memory.

Every script declares every partition it touches (one slot, ``{site:ID}``, but declared all the same,
as Redis Cluster requires): a write declares the days of its readings (it computes no totals:
``history_set.lua``, which follows it, declares what it reads) and the two days before the
retention window counted from its newest reading (what the window drops as it moves); a read declares
the days of its range (a range wider than :data:`DECLARED_DAYS` days first reads the meta hash's
``lo``/``hi`` and declares the days that can hold data: one more round trip); the latest reading is
kept in the meta hash (``last``), so reading it touches no partition; a deletion reads ``lo``/``hi``
first. A write after a silence of more than a day leaves older partitions (invisible to reads) that
the reconciler's pass over the sites drops (:meth:`CoreBackend.hour_sums`, ``core_trim.lua``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from redis.exceptions import ResponseError

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.timeseries.base import (
    NO_CARRY,
    SITE_FIELDS,
    PeriodStats,
    Point,
    Record,
    SiteRead,
    SumsFrom,
    pack_records,
    parse_flat_points,
    to_str,
)
from redisolar.models.site import MetricType

HOUR = 3_600_000
DAY = 86_400_000
DECLARED_DAYS = 64
"""The widest range (in days) a read declares without reading the meta hash's ``lo``/``hi`` first."""
DELETE_ATTEMPTS = 5
"""How often a deletion re-reads ``lo``/``hi`` when writes keep moving them."""

_METRIC_INDEX = {
    MetricType.WH_GENERATED: 1,
    MetricType.WH_USED: 2,
    MetricType.TEMP_C: 3,
    MetricType.NET_GENERATION: 4,
}


class CoreBackend:
    """Readings in day partitions of packed records (see the module docstring)."""

    name = "core"

    def __init__(self, client: redis.Redis, keys: KeyManager, retention_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_ms

    def _meta(self, site_ids: list[int], *fields: str) -> list[list[Any]]:
        """HMGET of ``fields`` of each site's meta hash (one round trip)."""
        pipe = self.client.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.hmget(self.keys.series_meta_key(site_id), list(fields))
        return list(pipe.execute())

    def newest(self, site_ids: list[int]) -> dict[int, int | None]:
        return {
            site_id: int(values[0]) if values[0] is not None else None
            for site_id, values in zip(site_ids, self._meta(site_ids, "newest"), strict=True)
        }

    def _partitions(self, site_id: int, days: Iterable[int]) -> tuple[str, ...]:
        return tuple(self.keys.core_partition_key(site_id, day) for day in days)

    def write_call(self, site_id: int, records: list[Record], require_site: bool = False) -> ScriptCall:
        days = sorted({ts // DAY for ts, *_ in records})  # the readings' UTC days (core_write.lua)
        if self.retention_ms:
            last_dead = (records[-1][0] - self.retention_ms) // DAY - 1
            days += [d for d in (last_dead - 1, last_dead) if d >= 0 and d not in days]
        return ScriptCall(
            script("core_write"),
            (
                self.keys.series_meta_key(site_id),
                self.keys.site_key(site_id),
                *self._partitions(site_id, days),
            ),
            (self.retention_ms, ",".join(map(str, days)), pack_records(records), "1" if require_site else ""),
        )

    def _read_call(self, site_id: int, days: range, mode: str, *args: object) -> ScriptCall:
        """The ``core_read.lua`` call of ``mode`` declaring the partitions of ``days``."""
        return ScriptCall(
            script("core_read"),
            (
                self.keys.series_meta_key(site_id),
                self.keys.site_key(site_id),
                *self._partitions(site_id, days),
            ),
            (self.retention_ms, days.start if days else "", mode, *args),
        )

    def _days(self, site_id: int, start: int, end: int) -> range:
        """The days a read of ``[start, end)`` declares: all of them, or, for a range wider than
        :data:`DECLARED_DAYS`, those that can hold visible data (one round trip for ``lo``/``hi``)."""
        days = range(start // DAY, (end - 1) // DAY + 1) if end > start else range(0)
        if len(days) <= DECLARED_DAYS:
            return days
        return _clip(days, self._meta([site_id], "lo", "hi", "newest")[0], self.retention_ms)

    def _read(
        self, site_id: int, mode: str, start: int, end: int, *args: object, site: SiteRead | None = None
    ) -> list[object]:
        """A ``core_read.lua`` read; with ``site``, its ``+site`` form, which fills ``site`` in."""
        days = self._days(site_id, start, end)
        call = self._read_call(site_id, days, mode if site is None else f"{mode}+site", start, end, *args)
        reply = run_scripts(self.client, [call])[0]
        if site is None:
            return list(reply)
        site.fill(reply[0])
        return list(reply[1])

    def points(
        self, site_id: int, metric: MetricType, start: int, end: int, site: SiteRead | None = None
    ) -> list[Point]:
        return parse_flat_points(self._read(site_id, "raw", start, end, _METRIC_INDEX[metric], site=site))

    def aggregate(
        self,
        site_id: int,
        metric: MetricType,
        start: int,
        end: int,
        bucket: int,
        aggregation: str,
        site: SiteRead | None = None,
    ) -> list[Point]:
        reply = self._read(site_id, "agg", start, end, _METRIC_INDEX[metric], aggregation, bucket, site=site)
        return parse_flat_points(reply)

    def hour_sums(self, ranges: list[tuple[int, int, int]]) -> list[list[Point]]:
        """Hourly generation of each range (the reconciler's read of every site): one round trip
        for the sites' ``lo``/``hi``, one for the sums, which also drops the partitions a site's
        writes left behind the retention window (``core_trim.lua``)."""
        site_ids = [site_id for site_id, _, _ in ranges]
        metas = self._meta(site_ids, "lo", "hi", "newest")
        calls = [
            self._read_call(site_id, _clip(_days_of(start, end), meta, self.retention_ms), "agg",
                            start, end, 1, "sum", HOUR)
            for (site_id, start, end), meta in zip(ranges, metas, strict=True)
        ]  # fmt: skip
        trims = [t for site_id, meta in zip(site_ids, metas, strict=True) if (t := self._trim(site_id, meta))]
        replies = run_scripts(self.client, [*calls, *trims])
        return [parse_flat_points(reply) for reply in replies[: len(calls)]]

    def _trim(self, site_id: int, meta: list[Any]) -> ScriptCall | None:
        """The ``core_trim.lua`` call of a site whose partitions reach back before its retention
        window, or None."""
        lo, hi, newest = (int(v) if v is not None else None for v in meta)
        if not self.retention_ms or lo is None or hi is None or newest is None:
            return None
        last_dead = min((newest - self.retention_ms) // DAY - 1, hi)
        if last_dead < lo:
            return None
        keys = (self.keys.series_meta_key(site_id), *self._partitions(site_id, range(lo, last_dead + 1)))
        return ScriptCall(script("core_trim"), keys, (self.retention_ms, lo))

    def latest(self, site_id: int, site: SiteRead | None = None) -> dict[MetricType, Point]:
        """The meta hash's ``last`` (and ``site``'s fields) in one round trip."""
        if site is None:
            last, hi = self._meta([site_id], "last", "hi")[0]
        else:
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(self.keys.series_meta_key(site_id), ["last", "hi"])
            pipe.hmget(self.keys.site_key(site_id), list(SITE_FIELDS))
            (last, hi), fields = pipe.execute()
            site.fill(fields)
        if last is not None:  # the meta hash keeps the newest reading
            ms, *values = to_str(last).split()
            return _latest(int(ms), *(float(v) for v in values))
        if hi is None:
            return {}
        reply = run_scripts(
            self.client, [self._read_call(site_id, range(int(hi), int(hi) + 1), "latest", 0, 0)]
        )[0]
        if not reply:
            return {}
        generated, used, temp = (float(to_str(v)) for v in reply[1:4])
        return _latest(int(to_str(reply[0])), generated, used, temp)

    def stats(
        self, site_id: int, start: int, end: int, carried: SumsFrom = NO_CARRY, site: SiteRead | None = None
    ) -> tuple[PeriodStats | None, float | None]:
        sums = (repr(carried.generated), repr(carried.used), repr(carried.temp))
        count, *values, capacity = self._read(site_id, "stats", start, end, *sums, site=site)
        n = int(to_str(count))
        stats = PeriodStats(n, *(float(to_str(v)) for v in values)) if n else None
        return stats, float(to_str(capacity)) if to_str(capacity) else None

    def day_sums(self, ranges: list[tuple[int, int, int]]) -> dict[int, tuple[int, float, int]]:
        site_ids = [site_id for site_id, _, _ in ranges]
        spans = [_days_of(start, end) for _, start, end in ranges]
        if any(len(days) > DECLARED_DAYS for days in spans):
            metas = self._meta(site_ids, "lo", "hi", "newest")
            spans = [_clip(days, meta, self.retention_ms) for days, meta in zip(spans, metas, strict=True)]
        calls = [
            self._read_call(site_id, span, "daysum", start, end)
            for (site_id, start, end), span in zip(ranges, spans, strict=True)
        ]
        replies = run_scripts(self.client, calls)
        return {
            site_id: (int(reply[0]), float(to_str(reply[1])), int(reply[2]))
            for site_id, reply in zip(site_ids, replies, strict=True)
        }

    def delete(self, site_id: int) -> None:
        """Delete the meta hash and every partition between its ``lo`` and ``hi`` (read first; read
        again if a write moved them meanwhile)."""
        for _ in range(DELETE_ATTEMPTS):
            lo, hi = self._meta([site_id], "lo", "hi")[0]
            days = range(int(lo), int(hi) + 1) if lo is not None and hi is not None else range(0)
            keys = (self.keys.series_meta_key(site_id), *self._partitions(site_id, days))
            call = ScriptCall(script("core_delete"), keys, (days.start if days else "",))
            try:
                run_scripts(self.client, [call])
                return
            except ResponseError as exc:
                if "RANGE" not in str(exc):
                    raise
        raise ResponseError(f"site {site_id}: its partitions kept moving while it was being deleted")


def _days_of(start: int, end: int) -> range:
    """The days of ``[start, end)`` (ms)."""
    return range(start // DAY, (end - 1) // DAY + 1) if end > start else range(0)


def _clip(days: range, meta: list[Any], retention_ms: int) -> range:
    """``days`` within a site's partitions ``lo``..``hi`` and its retention window (``meta``: its
    ``lo``, ``hi``, ``newest``)."""
    lo, hi, newest = meta
    if lo is None or hi is None or newest is None:
        return range(0)
    first = max(days.start, int(lo))
    if retention_ms:
        first = max(first, (int(newest) - retention_ms) // DAY)
    return range(first, max(first, min(days.stop, int(hi) + 1)))


def _latest(ts: int, generated: float, used: float, temp: float, *_: float) -> dict[MetricType, Point]:
    return {
        MetricType.WH_GENERATED: (ts, generated),
        MetricType.WH_USED: (ts, used),
        MetricType.TEMP_C: (ts, temp),
        MetricType.NET_GENERATION: (ts, generated - used),
    }
