"""Long history: hourly (UTC hours) and local-daily rollups of a site's readings, kept for
``HISTORY_DAYS`` while raw readings keep ``RETENTION_DAYS``.

Decisions:

- **Written at ingest, absolutely.** ``history_set.lua`` runs right after the site's write script, in
  the same pipeline (:meth:`HistoryDao.set_call`, queued by :meth:`TimeSeriesDao.write_records`),
  recomputes every hour the batch touched from the raw readings now stored, then composes every
  local day those hours touch from the hour records now stored (plus, for a zone whose offset is
  not a whole hour, the raw readings of the partial hours at the day's edges), never from the
  previous rollup: a retried, repeated or overwriting write leaves exactly the rollup of what is
  stored, and a one-reading write costs an hour of readings and a day of hour records, whatever
  the day holds. A day's count, min, max, first, last and peak are its readings'; its sum adds its
  pieces' sums (each in time order) in time order, as a query of day buckets over the hours does
  (it can differ in the last bits from adding the day's readings one by one). The ingest call's
  reply carries the touched hours' and local days' generation sums: the one computation of the
  totals that the day boards and fleet hours are set from (:mod:`redisolar.services.ingest`), and
  the reconciler reads the same day records (:meth:`HistoryDao.day_totals`), so a board's score is
  the energy endpoint's day Wh exactly.
  An hour or day that began before the raw window (newest − retention) cannot be recomputed (its
  older readings are gone) and is left as it was when it was whole.
- **One format on both backends.** A rollup is a fixed-size record of little-endian doubles (hour:
  count, peak time, then sum/min/max/first/last of wh_generated, wh_used and temp_c = 136 bytes;
  day: the same plus the day's start and end = 152 bytes) at slot ``n - B*size`` of a string per
  block: ``hist:{site:ID}:h:B`` holds hours ``B*720 ..`` (30 days, ≤ 98 KB), ``hist:{site:ID}:d:B``
  local days ``B*360 ..`` (≤ 55 KB). Every key is in the site's slot and declared.
  RedisTimeSeries compaction rules were weighed and not used: the module does recompute a bucket an
  upserted or out-of-order sample falls into from the raw samples still there (TS.ADD docs, "when
  adding a sample to a time series for which compaction rules are defined"), so UTC hours would be
  exact; but they are UTC-aligned (no local days across DST), the hours alone would take 16 rules per
  site (a count, and sum/min/max/first/last of 3 metrics), i.e. 16 more series each updated on every
  sample (TS.ADD is O(rules)), and no rule keeps the time of the max (the day's peak). One format on
  both backends also gives the same answers on both. Measured: ``bench/history_memory.py``
  (docs/time-and-history.md).
- **Local days** use the site hash's ``tzt`` (its zone's offsets, ``lua/lib/localday.lua``, the
  Lua twin of :mod:`redisolar.localtime`): 23 h and 25 h days are exact; without ``tzt`` (a site not
  migrated yet, or readings of an unregistered site) the days are UTC days.
- **Retention**: a record that starts before newest − ``HISTORY_DAYS`` is not read; a write deletes
  the two blocks of each kind just behind that horizon (counted from the batch's newest reading), so
  memory stays bounded while a site reports. ``HISTORY_DAYS = 0`` keeps everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.timeseries.base import Point, Record, to_str
from redisolar.errors import InvalidQuery
from redisolar.localtime import day_date, day_number
from redisolar.models.site import MetricType, check_site_id

HOUR = 3_600_000
DAY = 86_400_000
HOUR_BLOCK = 720
"""Hours per hour block key (30 days)."""
DAY_BLOCK = 360
"""Local days per day block key."""
HOUR_FIELDS = 17
DAY_FIELDS = 19
DEFAULT_HISTORY_MS = 3650 * DAY
DAY_SPAN_HOURS = 27
"""Hours either side of a touched hour that the local days it is in can reach (a day lasts ≤ 26 h)."""


@dataclass(frozen=True)
class MetricRollup:
    """One metric over a period: sum (in time order), min, max, first and last value."""

    sum: float
    min: float
    max: float
    first: float
    last: float


@dataclass(frozen=True)
class HourRollup:
    """A UTC hour of a site's readings (``count`` ≥ 1); ``peak_ms``: the first reading with the
    hour's highest ``wh_generated``."""

    start_ms: int
    hours: float
    count: int
    peak_ms: int
    wh_generated: MetricRollup
    wh_used: MetricRollup
    temp_c: MetricRollup

    @property
    def end_ms(self) -> int:
        return self.start_ms + int(self.hours * HOUR)

    def metric(self, metric: MetricType) -> MetricRollup:
        """The rollup of a stored metric (not ``net_generation``)."""
        return {
            MetricType.WH_GENERATED: self.wh_generated,
            MetricType.WH_USED: self.wh_used,
            MetricType.TEMP_C: self.temp_c,
        }[MetricType(metric)]


@dataclass(frozen=True)
class DayRollup(HourRollup):
    """A local calendar day of a site (``hours``: 23, 24 or 25 across DST changes)."""

    day: date = date(1970, 1, 1)


def _metrics(values: list[float]) -> tuple[MetricRollup, MetricRollup, MetricRollup]:
    g, u, t = (MetricRollup(*values[i : i + 5]) for i in (0, 5, 10))
    return g, u, t


class HistoryDao:
    """The rollups of every site (see the module docstring)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: KeyManager,
        retention_ms: int,
        history_ms: int = DEFAULT_HISTORY_MS,
    ) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_ms
        self.history_ms = history_ms

    # -- writes ------------------------------------------------------------------------------------
    def set_call(
        self, backend: str, site_id: int, records: list[Record], require_site: bool, write: str = ""
    ) -> ScriptCall:
        """The ``history_set.lua`` call that recomputes the hours ``records`` (sorted) touched from the
        raw readings and composes the local days those hours touch from the hour records, to queue
        right after the site's write (``backend``: ``core`` or ``redistimeseries``; ``write``: ``h``
        the hours only, ``d`` the days only, ``""`` both)."""
        hours = sorted({ts // HOUR for ts, *_ in records})
        first_day, last_day = records[0][0] // DAY, records[-1][0] // DAY
        if backend == "core":  # the touched hours' UTC days, and the next ones: a local day's edge hours
            sources = range(max(0, first_day - 1), last_day + 2)
            source_keys = tuple(self.keys.core_partition_key(site_id, d) for d in sources)
        else:
            sources = range(0)
            metrics = (MetricType.WH_GENERATED, MetricType.WH_USED, MetricType.TEMP_C)
            source_keys = tuple(self.keys.timeseries_key(site_id, m) for m in metrics)
        # the hours of every local day a touched hour is in (a local day lasts at most 26 h)
        hour_blocks = range(
            max(0, hours[0] - DAY_SPAN_HOURS) // HOUR_BLOCK, (hours[-1] + DAY_SPAN_HOURS) // HOUR_BLOCK + 1
        )
        day_blocks = range(max(0, first_day - 1) // DAY_BLOCK, (last_day + 1) // DAY_BLOCK + 1)
        dead: list[str] = []
        if self.history_ms:
            horizon = records[-1][0] - self.history_ms
            for block in (horizon // HOUR // HOUR_BLOCK - 2, horizon // HOUR // HOUR_BLOCK - 1):
                if block >= 0 and block not in hour_blocks:
                    dead.append(self.keys.history_hours_key(site_id, block))
            for block in (horizon // DAY // DAY_BLOCK - 2, horizon // DAY // DAY_BLOCK - 1):
                if block >= 0 and block not in day_blocks:
                    dead.append(self.keys.history_days_key(site_id, block))
        keys = (
            self.keys.history_meta_key(site_id),
            self.keys.site_key(site_id),
            self.keys.series_meta_key(site_id),
            *source_keys,
            *(self.keys.history_hours_key(site_id, b) for b in hour_blocks),
            *(self.keys.history_days_key(site_id, b) for b in day_blocks),
            *dead,
        )
        args = (
            "core" if backend == "core" else "ts",
            "1" if require_site else "",
            self.retention_ms,
            self.history_ms,
            ",".join(map(str, hours)),
            len(source_keys),
            sources.start if sources else 0,
            hour_blocks.start,
            len(hour_blocks),
            day_blocks.start,
            len(day_blocks),
            len(dead),
            write,
            records[0][0],
        )
        return ScriptCall(script("history_set"), keys, args)

    def rebuild(self, backend: str, site_id: int, start_ms: int, end_ms: int) -> int:
        """Recompute the site's rollups of every hour in ``[start_ms, end_ms)`` and of the local days
        they touch from its raw readings (for readings stored before the rollups existed: a
        backfill of the raw window): first the hours, with those of the edge days (26 h either
        side: a local day is composed of its hours' records), then the days, a day of hours per
        call, 30 calls per round trip; the same script as at ingest, so exact and safe to repeat or
        to run beside writers. Returns the number of hours in the range."""
        check_site_id(site_id)
        first, stop = max(start_ms, 0) // HOUR, -(-max(end_ms, 0) // HOUR)
        if stop <= first:
            return 0

        def calls(lo: int, hi: int, write: str) -> list[ScriptCall]:
            return [
                self.set_call(
                    backend,
                    site_id,
                    [(h * HOUR, 0.0, 0.0, 0.0) for h in range(d, min(d + 24, hi))],
                    False,
                    write,
                )
                for d in range(lo, hi, 24)
            ]

        todo = calls(max(0, first - DAY_SPAN_HOURS), stop + DAY_SPAN_HOURS, "h") + calls(first, stop, "d")
        for i in range(0, len(todo), 30):
            run_scripts(self.client, todo[i : i + 30])
        return stop - first

    def day_totals(self, sites: list[tuple[int, int]]) -> dict[int, tuple[int, float, int]]:
        """Each ``(site_id, local day number)``'s (data version, Wh generated, readings) as its day
        record holds them (``history_daysum.lua``: the version the records reflect, read with the
        record), i.e. exactly the day total the ingest sets from ``history_set.lua``'s reply. One
        round trip."""
        calls = [
            ScriptCall(
                script("history_daysum"),
                (
                    self.keys.history_meta_key(site_id),
                    self.keys.series_meta_key(site_id),
                    self.keys.history_days_key(site_id, day // DAY_BLOCK),
                ),
                (day % DAY_BLOCK,),
            )
            for site_id, day in sites
        ]
        replies = run_scripts(self.client, calls) if calls else []
        return {
            site_id: (int(to_str(r[0])), float(to_str(r[1])), int(r[2]))
            for (site_id, _), r in zip(sites, replies, strict=True)
        }

    # -- reads -------------------------------------------------------------------------------------
    def _read(self, site_id: int, kind: str, first: int, stop: int) -> list[tuple[int, list[float]]]:
        """The non-empty records numbered ``first .. stop - 1`` (hours or local days)."""
        if stop <= first:
            return []
        size, fields = (HOUR_BLOCK, HOUR_FIELDS) if kind == "h" else (DAY_BLOCK, DAY_FIELDS)
        key = self.keys.history_hours_key if kind == "h" else self.keys.history_days_key
        blocks = range(first // size, (stop - 1) // size + 1)
        call = ScriptCall(
            script("history_get"),
            (self.keys.history_meta_key(site_id), *(key(site_id, b) for b in blocks)),
            (kind, blocks.start, first, stop, self.history_ms),
        )
        reply = run_scripts(self.client, [call])[0] or []
        step = fields + 1
        return [
            (int(reply[i]), [float(to_str(v)) for v in reply[i + 1 : i + step]])
            for i in range(0, len(reply), step)
        ]

    def hours(self, site_id: int, start_ms: int, end_ms: int) -> list[HourRollup]:
        """The site's UTC hours that begin in ``[start_ms, end_ms)`` and hold readings, in order."""
        check_site_id(site_id)
        first, stop = -(-max(start_ms, 0) // HOUR), -(-max(end_ms, 0) // HOUR)
        return [
            HourRollup(n * HOUR, 1.0, int(v[0]), int(v[1]), *_metrics(v[2:]))
            for n, v in self._read(site_id, "h", first, stop)
        ]

    def days(self, site_id: int, first_day: date, end_day: date) -> list[DayRollup]:
        """The site's local days ``first_day`` (inclusive) .. ``end_day`` (exclusive) that hold
        readings, in order."""
        check_site_id(site_id)
        first, stop = max(day_number(first_day), 0), max(day_number(end_day), 0)
        return [
            DayRollup(
                int(v[2]), (v[3] - v[2]) / HOUR, int(v[0]), int(v[1]), *_metrics(v[4:]), day=day_date(n)
            )
            for n, v in self._read(site_id, "d", first, stop)
        ]

    def aggregate(
        self, site_id: int, metric: MetricType, start: int, end: int, bucket: int, aggregation: str
    ) -> list[Point]:
        """Epoch-aligned buckets of ``bucket`` ms (a whole number of hours) over the hours that
        begin in ``[start, end)``, reduced as the raw reads reduce readings (``avg`` = sum / count;
        a bucket's sum adds its hours' sums in time order); empty buckets left out."""
        if bucket % HOUR:
            raise InvalidQuery("Rollups answer buckets of whole hours only")
        metric = MetricType(metric)
        out: list[Point] = []
        group: list[HourRollup] = []
        for rollup in [*self.hours(site_id, start, end), None]:
            if group and (rollup is None or rollup.start_ms // bucket != group[0].start_ms // bucket):
                out.append(
                    (group[0].start_ms - group[0].start_ms % bucket, _reduce(group, metric, aggregation))
                )
                group = []
            if rollup is not None:
                group.append(rollup)
        return out

    # -- deletion ----------------------------------------------------------------------------------
    def delete(self, site_id: int) -> None:
        """Remove every rollup of the site (the blocks between the lowest and highest written)."""
        check_site_id(site_id)
        meta = self.keys.history_meta_key(site_id)
        lh, hh, ld, hd = self.client.hmget(meta, ["lh", "hh", "ld", "hd"])
        keys = [meta, *self._span(site_id, lh, hh, self.keys.history_hours_key)]
        keys += self._span(site_id, ld, hd, self.keys.history_days_key)
        for i in range(0, len(keys), 500):  # one slot: a DEL of many keys is fine on a cluster
            self.client.delete(*keys[i : i + 500])

    @staticmethod
    def _span(site_id: int, lo: object, hi: object, key: object) -> Iterable[str]:
        if lo is None or hi is None:
            return []
        return [key(site_id, b) for b in range(int(to_str(lo)), int(to_str(hi)) + 1)]  # type: ignore[operator]


def _reduce(group: list[HourRollup], metric: MetricType, aggregation: str) -> float:
    """One bucket's value from its hours (``metric`` may be ``net_generation``: sum/avg/count/
    first/last only, refused by the caller otherwise)."""
    count = sum(r.count for r in group)
    if aggregation == "count":
        return float(count)
    if metric is MetricType.NET_GENERATION:
        g = [r.wh_generated for r in group]
        u = [r.wh_used for r in group]
        if aggregation == "first":
            return g[0].first - u[0].first
        if aggregation == "last":
            return g[-1].last - u[-1].last
        total = _sum(x.sum for x in g) - _sum(x.sum for x in u)
        return total if aggregation == "sum" else total / count
    rollups = [r.metric(metric) for r in group]
    if aggregation == "sum":
        return _sum(x.sum for x in rollups)
    if aggregation == "avg":
        return _sum(x.sum for x in rollups) / count
    if aggregation == "min":
        return min(x.min for x in rollups)
    if aggregation == "max":
        return max(x.max for x in rollups)
    if aggregation == "first":
        return rollups[0].first
    if aggregation == "last":
        return rollups[-1].last
    return max(x.max for x in rollups) - min(x.min for x in rollups)  # range


def _sum(values: Iterable[float]) -> float:
    total = 0.0
    for value in values:
        total += value
    return total


NET_AGGREGATIONS = frozenset({"sum", "avg", "count", "first", "last"})
"""The aggregations of ``net_generation`` the rollups can answer (its min/max are not kept)."""

__all__ = ["NET_AGGREGATIONS", "DayRollup", "HistoryDao", "HourRollup", "MetricRollup"]
