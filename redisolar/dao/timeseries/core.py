"""The ``core`` backend: any Redis ≥ 6.2 (or Valkey), no modules.

A site's readings live in one string per UTC day, ``core:{site:ID}:d:DAY``: 28-byte records (ms offset
in the day as uint32, then Wh generated, Wh used and temperature as little-endian doubles), sorted by
time, one per timestamp. That is 28 bytes per reading, about 9.3 bytes per stored sample, plus one key
per site and day. Writes append (in-order data) or merge (late or repeated data) inside
``core_write.lua``; reads and aggregations run in ``core_read.lua`` so only results cross the wire. Net
generation is derived on read (generated − used), so it costs no memory.
"""

from __future__ import annotations

import redis

from redisolar.dao.key_manager import KeyManager
from redisolar.dao.scripts import ScriptCall, run_scripts, script
from redisolar.dao.timeseries.base import (
    PeriodStats,
    Point,
    Record,
    pack_records,
    parse_flat_points,
    to_str,
)
from redisolar.models.site import MetricType

HOUR = 3_600_000

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

    def newest(self, site_ids: list[int]) -> dict[int, int | None]:
        pipe = self.client.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.hget(self.keys.series_meta_key(site_id), "newest")
        return {
            site_id: int(value) if value is not None else None
            for site_id, value in zip(site_ids, pipe.execute(), strict=True)
        }

    def write_call(self, site_id: int, records: list[Record], require_site: bool = False) -> ScriptCall:
        return ScriptCall(
            script("core_write"),
            (self.keys.series_meta_key(site_id), self.keys.site_key(site_id)),
            (
                self.retention_ms,
                self.keys.core_partition_prefix(site_id),
                pack_records(records),
                "1" if require_site else "",
            ),
        )

    def _read(self, site_id: int, mode: str, *args: object) -> list[object]:
        call = ScriptCall(
            script("core_read"),
            (self.keys.series_meta_key(site_id),),
            (self.retention_ms, self.keys.core_partition_prefix(site_id), mode, *args),
        )
        return list(run_scripts(self.client, [call])[0])

    def points(self, site_id: int, metric: MetricType, start: int, end: int) -> list[Point]:
        return parse_flat_points(self._read(site_id, "raw", start, end, _METRIC_INDEX[metric]))

    def aggregate(
        self, site_id: int, metric: MetricType, start: int, end: int, bucket: int, aggregation: str
    ) -> list[Point]:
        reply = self._read(site_id, "agg", start, end, _METRIC_INDEX[metric], aggregation, bucket)
        return parse_flat_points(reply)

    def hour_sums(self, ranges: list[tuple[int, int, int]]) -> list[list[Point]]:
        calls = [self._agg_call(site_id, start, end, "sum", HOUR) for site_id, start, end in ranges]
        return [parse_flat_points(reply) for reply in run_scripts(self.client, calls)]

    def _agg_call(self, site_id: int, start: int, end: int, aggregation: str, bucket: int) -> ScriptCall:
        """The ``core_read.lua`` call aggregating a site's generation in epoch-aligned buckets."""
        prefix = self.keys.core_partition_prefix(site_id)
        args = (self.retention_ms, prefix, "agg", start, end, 1, aggregation, bucket)
        return ScriptCall(script("core_read"), (self.keys.series_meta_key(site_id),), args)

    def latest(self, site_id: int) -> dict[MetricType, Point]:
        reply = self._read(site_id, "latest", 0, 0)
        if not reply:
            return {}
        ts = int(to_str(reply[0]))
        generated, used, temp = (float(to_str(v)) for v in reply[1:4])
        return {
            MetricType.WH_GENERATED: (ts, generated),
            MetricType.WH_USED: (ts, used),
            MetricType.TEMP_C: (ts, temp),
            MetricType.NET_GENERATION: (ts, generated - used),
        }

    def stats(self, site_id: int, start: int, end: int) -> tuple[PeriodStats | None, float | None]:
        call = ScriptCall(
            script("core_read"),
            (self.keys.series_meta_key(site_id), self.keys.site_key(site_id)),
            (self.retention_ms, self.keys.core_partition_prefix(site_id), "stats", start, end),
        )
        count, *values, capacity = run_scripts(self.client, [call])[0]
        stats = PeriodStats(int(count), *(float(v) for v in values)) if int(count) else None
        return stats, float(capacity) if to_str(capacity) else None

    def day_sums(self, site_ids: list[int], start: int, end: int) -> dict[int, tuple[int, float, int]]:
        calls = [
            ScriptCall(
                script("core_read"),
                (self.keys.series_meta_key(site_id),),
                (self.retention_ms, self.keys.core_partition_prefix(site_id), "daysum", start, end),
            )
            for site_id in site_ids
        ]
        replies = run_scripts(self.client, calls)
        return {
            site_id: (int(reply[0]), float(to_str(reply[1])), int(reply[2]))
            for site_id, reply in zip(site_ids, replies, strict=True)
        }

    def delete(self, site_id: int) -> None:
        call = ScriptCall(
            script("core_delete"),
            (self.keys.series_meta_key(site_id),),
            (self.keys.core_partition_prefix(site_id),),
        )
        run_scripts(self.client, [call])
