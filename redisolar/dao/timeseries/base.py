"""What both time-series backends share: the contract, its value types and reply parsing.

Timestamps are integer milliseconds since the epoch (UTC); ranges are ``[start, end)``. A reading is
stored once per timestamp (a re-sent reading replaces the stored one). Retention counts back from the
newest reading of a site: older readings are invisible and cannot be written.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from redisolar.dao.scripts import ScriptCall
from redisolar.models.site import MetricType

HOUR_MS = 3_600_000

AGGREGATIONS = ("avg", "sum", "min", "max", "count", "first", "last", "range")

Record = tuple[int, float, float, float]
"""One reading as stored: (ms timestamp, Wh generated, Wh used, temperature °C)."""

Point = tuple[int, float]
"""One point of a series: (ms timestamp, value)."""


@dataclass(frozen=True)
class WriteOutcome:
    """What a site's write returned: its new data version, its capacity (both from the write script),
    the generation total of every UTC clock hour it touched and of every site-local day those hours
    touch (day numbers of the site's zone, UTC days for a site without ``tzt``), as the history
    rollups now hold them (``history_set.lua``: a day's sum adds its hours' sums in time order, as
    the energy endpoint does; absolute, so a retried update with them changes nothing), its newest
    reading, and the length in hours of each of those days (23, 24 or 25 across DST changes)."""

    site_id: int
    version: int
    capacity: float | None
    day_sums: dict[int, float]
    hour_sums: dict[int, float]
    newest: int
    day_hours: dict[int, float] = field(default_factory=dict)


@dataclass(frozen=True)
class PeriodStats:
    """Reductions of a site's readings over a period (``count`` readings, at least one)."""

    count: int
    sum_generated: float
    max_generated: float
    min_generated: float
    sum_used: float
    sum_temp: float


SITE_FIELDS = ("id", "capacity", "timezone")
"""The site hash's fields a read can fetch with its data (:class:`SiteRead`)."""


@dataclass
class SiteRead:
    """The site hash's :data:`SITE_FIELDS`, fetched by a backend read in the same round trip as its
    data when passed as ``site=`` (the hash shares the ``{site:ID}`` slot with the series): whether
    the site exists, its capacity (kW) and its IANA zone, without a round trip of their own."""

    values: list[str | None] | None = None

    def fill(self, reply: Any) -> None:
        """Keep an ``HMGET`` reply of :data:`SITE_FIELDS` (``False`` from Lua means missing)."""
        self.values = [to_str(v) if v not in (None, False) else None for v in reply]

    @property
    def read(self) -> bool:
        return self.values is not None

    @property
    def exists(self) -> bool:
        return self.values is not None and self.values[0] is not None

    @property
    def capacity(self) -> float | None:
        return float(self.values[1]) if self.values and self.values[1] else None

    @property
    def timezone(self) -> str | None:
        return self.values[2] if self.values else None


@dataclass(frozen=True)
class SumsFrom:
    """Sums carried into a range from the hours before it (their rollups), so a period's sums add
    hour sums in time order whichever store answered each hour."""

    generated: float = 0.0
    used: float = 0.0
    temp: float = 0.0


NO_CARRY = SumsFrom()
"""Sums that start from 0 (a range with no hours before it)."""

NO_SITE = "NOSITE"
"""The error a write script returns, having written nothing, when the site it must write to does not exist."""


class RetentionViolation(Exception):
    """A site's write was refused because a reading is older than ``oldest_allowed`` (ms)."""

    def __init__(self, oldest_allowed: int) -> None:
        super().__init__(f"readings must not be older than {oldest_allowed} ms")
        self.oldest_allowed = oldest_allowed


class Backend(Protocol):
    """The storage contract both backends fulfil. Reads cost one round trip each."""

    name: str

    def newest(self, site_ids: list[int]) -> dict[int, int | None]:
        """The newest stored timestamp of each site (None: no readings)."""

    def write_call(self, site_id: int, records: list[Record], require_site: bool = False) -> ScriptCall:
        """The script call that stores ``records`` (sorted, unique timestamps) atomically; with
        ``require_site``, only if the site's hash exists (else it writes nothing and fails with
        :data:`NO_SITE`)."""

    def points(
        self, site_id: int, metric: MetricType, start: int, end: int, site: SiteRead | None = None
    ) -> list[Point]:
        """Raw points in ``[start, end)`` (and ``site`` filled in, when given)."""

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
        """Buckets aligned to the epoch, for the points in ``[start, end)``; empty buckets omitted."""

    def latest(self, site_id: int, site: SiteRead | None = None) -> dict[MetricType, Point]:
        """The newest point of every metric (empty when the site has no readings)."""

    def hour_sums(self, ranges: list[tuple[int, int, int]]) -> list[list[Point]]:
        """Hourly generation sums of each ``(site_id, start, end)``, one round trip."""

    def stats(
        self, site_id: int, start: int, end: int, carried: SumsFrom = NO_CARRY, site: SiteRead | None = None
    ) -> tuple[PeriodStats | None, float | None]:
        """Reductions over ``[start, end)`` and the site's capacity (kW, None if unknown). Each sum
        starts from ``carried``'s and adds the range's UTC hours' sums in time order (each hour's
        readings added in time order): the double the history's hour rollups compose to."""

    def day_sums(self, ranges: list[tuple[int, int, int]]) -> dict[int, tuple[int, float, int]]:
        """Each ``(site_id, start, end)``'s (data version, generation sum, reading count) over
        ``[start, end)`` (each site its own range: its local day), one round trip."""

    def delete(self, site_id: int) -> None:
        """Remove every key holding the site's readings."""


def aggregate_points(points: list[Point], bucket: int, aggregation: str) -> list[Point]:
    """Epoch-aligned buckets of ``points`` (sorted by time), reduced as RedisTimeSeries and
    ``core_read.lua`` reduce them (sums in time order); empty buckets left out."""
    out: list[Point] = []
    start = 0
    while start < len(points):
        key = points[start][0] - points[start][0] % bucket
        end = start
        while end < len(points) and points[end][0] - points[end][0] % bucket == key:
            end += 1
        values = [value for _, value in points[start:end]]
        out.append((key, _reduce(values, aggregation)))
        start = end
    return out


def _reduce(values: list[float], aggregation: str) -> float:
    if aggregation in ("sum", "avg"):
        total = 0.0
        for value in values:
            total += value
        return total if aggregation == "sum" else total / len(values)
    reducers: dict[str, Callable[[list[float]], float]] = {
        "min": min,
        "max": max,
        "count": lambda v: float(len(v)),
        "first": lambda v: v[0],
        "last": lambda v: v[-1],
        "range": lambda v: max(v) - min(v),
    }
    return float(reducers[aggregation](values))


def pack_records(records: list[Record]) -> bytes:
    """Readings as the write scripts take them: 32-byte little-endian records (ts, gen, used, temp),
    timestamps as doubles (exact below 2**53 ms). One argument per site keeps the command small."""
    flat = [value for record in records for value in record]
    return struct.pack(f"<{len(flat)}d", *flat)


def parse_write_outcome(site_id: int, reply: list[Any], totals: list[Any] | None) -> WriteOutcome:
    """A site's outcome from the reply of its write script (``core_write.lua`` / ``ts_write.lua``:
    version, capacity, newest) and of the ``history_set.lua`` call after it (``totals``: the touched
    hours' and local days' generation sums, the one computation of them; None when that call
    failed: no totals, so no derived state is set from this write)."""
    version, capacity, newest = reply
    hours, days = (totals[2], totals[3]) if totals is not None else ([], [])
    return WriteOutcome(
        site_id,
        int(version),
        float(capacity) if to_str(capacity) else None,
        {int(days[i]): float(days[i + 1]) for i in range(0, len(days), 3)},
        {int(hours[i]): float(hours[i + 1]) for i in range(0, len(hours), 2)},
        int(newest),
        {int(days[i]): int(days[i + 2]) / HOUR_MS for i in range(0, len(days), 3)},
    )


def to_str(value: Any) -> str:
    """A reply item as text, whatever the client's ``decode_responses``."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return "" if value is None else str(value)


def parse_points(reply: Any) -> list[Point]:
    """``[[ts, value], ...]`` (TS.RANGE, RESP2 or RESP3) as points."""
    return [(int(ts), float(value)) for ts, value in reply or ()]


def parse_flat_points(reply: Any) -> list[Point]:
    """``[ts, value, ts, value, ...]`` (our scripts) as points."""
    items = list(reply or ())
    return [(int(items[i]), float(items[i + 1])) for i in range(0, len(items), 2)]
