"""The ``redistimeseries`` backend: Redis Stack, Redis 8, or any server with the timeseries module.

One series per site and measured metric (``ts:{site:ID}:wh_generated``, ``…:wh_used``, ``…:temp_c``),
labelled ``app``, ``site_id``, ``metric`` and ``type``, with ``DUPLICATE_POLICY LAST`` (a re-sent
reading replaces the stored one), the configured retention and 512-byte chunks (the default 4 KiB
chunk is mostly empty at meter rates: measured here, 512 halves the memory of hourly and 5-minute
data). Series are created inside ``ts_write.lua`` with the write that needs them (no TS.INFO round
trip, no check-then-create race). The meta hash ``tsmeta:{site:ID}`` keeps the data version and a
cache valid for that version: the newest timestamp and the generation sums of the newest reading's
day and hour (a write reads them with one HMGET instead of a TS.GET, and an append, the common case,
sums its days and hours in Lua from them instead of reading them back with TS.RANGE; the module sums
in time order too, so the totals are the same doubles). Aggregation is the module's own. Net
generation is derived on read
(generated − used, from the two series; its aggregations are reduced here, in the module's order): a
fourth series would cost a third more ingest work and memory for values that are always the
difference of two stored ones.
"""

from __future__ import annotations

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
    aggregate_points,
    pack_records,
    parse_points,
)
from redisolar.models.site import MetricType

_SERIES = (MetricType.WH_GENERATED, MetricType.WH_USED, MetricType.TEMP_C)
HOUR = 3_600_000
WRITE_KEYS_CACHED = 100_000
"""Sites whose write keys are kept built (about 400 bytes each); the cache starts over beyond."""


def _missing(reply: Any) -> bool:
    """Whether ``reply`` is the module's error for a series that does not exist."""
    return isinstance(reply, ResponseError) and "does not exist" in str(reply)


def _checked(reply: Any) -> Any:
    if isinstance(reply, Exception):
        raise reply
    return reply


class RedisTimeSeriesBackend:
    """Readings in RedisTimeSeries series (see the module docstring)."""

    name = "redistimeseries"

    def __init__(self, client: redis.Redis, keys: KeyManager, retention_ms: int) -> None:
        self.client = client
        self.keys = keys
        self.retention_ms = retention_ms
        self._write_keys: dict[int, tuple[str, ...]] = {}

    def _series(self, site_id: int) -> tuple[str, ...]:
        return tuple(self.keys.timeseries_key(site_id, metric) for metric in _SERIES)

    def _run(self, *commands: tuple[Any, ...]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        return [None if _missing(r) else _checked(r) for r in pipe.execute(raise_on_error=False)]

    def newest(self, site_ids: list[int]) -> dict[int, int | None]:
        replies = self._run(
            *(("TS.GET", self.keys.timeseries_key(s, MetricType.WH_GENERATED)) for s in site_ids)
        )
        return {s: int(r[0]) if r else None for s, r in zip(site_ids, replies, strict=True)}

    def write_call(self, site_id: int, records: list[Record], require_site: bool = False) -> ScriptCall:
        keys = self._write_keys.get(site_id)
        if keys is None:  # built once per site: key building is a tenth of a write's client time
            if len(self._write_keys) >= WRITE_KEYS_CACHED:
                self._write_keys.clear()
            keys = (*self._series(site_id), self.keys.series_meta_key(site_id), self.keys.site_key(site_id))
            self._write_keys[site_id] = keys
        args = (
            self.retention_ms,
            site_id,
            self.keys.key_prefix,
            pack_records(records),
            "1" if require_site else "",
        )
        return ScriptCall(script("ts_write"), keys, args)

    def _run_with_site(self, site_id: int, site: SiteRead | None, *commands: tuple[Any, ...]) -> list[Any]:
        """``commands`` and, with ``site``, an HMGET of the site hash that fills it in: one round trip."""
        if site is None:
            return self._run(*commands)
        *replies, fields = self._run(*commands, ("HMGET", self.keys.site_key(site_id), *SITE_FIELDS))
        site.fill(fields)
        return replies

    def points(
        self, site_id: int, metric: MetricType, start: int, end: int, site: SiteRead | None = None
    ) -> list[Point]:
        if metric is MetricType.NET_GENERATION:
            return self._net_points(site_id, start, end, site)
        key = self.keys.timeseries_key(site_id, metric)
        return parse_points(self._run_with_site(site_id, site, ("TS.RANGE", key, start, end - 1))[0])

    def _net_points(self, site_id: int, start: int, end: int, site: SiteRead | None = None) -> list[Point]:
        """Generated − used at each timestamp (both series always hold the same timestamps)."""
        generated, used = (self.keys.timeseries_key(site_id, m) for m in _SERIES[:2])
        replies = self._run_with_site(
            site_id, site, ("TS.RANGE", generated, start, end - 1), ("TS.RANGE", used, start, end - 1)
        )
        used_at = dict(parse_points(replies[1]))
        return [(ts, g - used_at[ts]) for ts, g in parse_points(replies[0]) if ts in used_at]

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
        if metric is MetricType.NET_GENERATION:
            return aggregate_points(self._net_points(site_id, start, end, site), bucket, aggregation)
        key = self.keys.timeseries_key(site_id, metric)
        command = ("TS.RANGE", key, start, end - 1, "AGGREGATION", aggregation, bucket)
        return parse_points(self._run_with_site(site_id, site, command)[0])

    def hour_sums(self, ranges: list[tuple[int, int, int]]) -> list[list[Point]]:
        replies = self._run(
            *(
                ("TS.RANGE", self.keys.timeseries_key(s, MetricType.WH_GENERATED), start, end - 1,
                 "AGGREGATION", "sum", HOUR)
                for s, start, end in ranges
            )
        )  # fmt: skip
        return [parse_points(reply) for reply in replies]

    def latest(self, site_id: int, site: SiteRead | None = None) -> dict[MetricType, Point]:
        replies = self._run_with_site(site_id, site, *(("TS.GET", key) for key in self._series(site_id)))
        latest = {
            metric: (int(reply[0]), float(reply[1]))
            for metric, reply in zip(_SERIES, replies, strict=True)
            if reply
        }
        generated, used = latest.get(MetricType.WH_GENERATED), latest.get(MetricType.WH_USED)
        if generated and used and generated[0] == used[0]:
            latest[MetricType.NET_GENERATION] = (generated[0], generated[1] - used[1])
        return latest

    def stats(
        self, site_id: int, start: int, end: int, carried: SumsFrom = NO_CARRY, site: SiteRead | None = None
    ) -> tuple[PeriodStats | None, float | None]:
        """Count, max and min as one bucket over the range; the sums per UTC hour (the module adds
        a bucket's samples in time order), added here in time order from ``carried``'s."""
        facts = site or SiteRead()
        if end <= start:
            self._run_with_site(site_id, facts)
            return None, facts.capacity
        generated, used, temp = self._series(site_id)

        def one(key: str, aggregation: str, bucket: int) -> tuple[Any, ...]:
            return ("TS.RANGE", key, start, end - 1, "AGGREGATION", aggregation, bucket, "ALIGN", "start")

        width = end - start
        replies = self._run_with_site(
            site_id,
            facts,
            one(generated, "count", width),
            one(generated, "max", width),
            one(generated, "min", width),
            *(("TS.RANGE", k, start, end - 1, "AGGREGATION", "sum", HOUR) for k in (generated, used, temp)),
        )
        if not replies[0]:
            return None, facts.capacity
        count, peak, low = (float(parse_points(r)[0][1]) for r in replies[:3])
        sums = [_total(start_from, parse_points(r)) for start_from, r in zip(
            (carried.generated, carried.used, carried.temp), replies[3:], strict=True)]  # fmt: skip
        return PeriodStats(int(count), sums[0], peak, low, sums[1], sums[2]), facts.capacity

    def day_sums(self, ranges: list[tuple[int, int, int]]) -> dict[int, tuple[int, float, int]]:
        calls = [
            ScriptCall(
                script("ts_daysum"),
                (self.keys.timeseries_key(s, MetricType.WH_GENERATED), self.keys.series_meta_key(s)),
                (start, end),
            )
            for s, start, end in ranges
        ]
        replies = run_scripts(self.client, calls)
        return {s: (int(r[0]), float(r[1]), int(r[2])) for (s, _, _), r in zip(ranges, replies, strict=True)}

    def delete(self, site_id: int) -> None:
        net = self.keys.timeseries_key(site_id, MetricType.NET_GENERATION)  # a series of older versions
        self.client.delete(*self._series(site_id), net, self.keys.series_meta_key(site_id))


def _total(start: float, hours: list[Point]) -> float:
    """``start`` plus each hour's sum, in time order."""
    total = start
    for _, value in hours:
        total += value
    return total
