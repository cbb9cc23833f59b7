"""Exporting readings: a site's (the API) or a fleet's (the CLI), raw or per hour / local day,
as CSV or NDJSON, streamed in constant memory.

Decisions:

- **Streaming.** Rows come from :meth:`~redisolar.dao.timeseries_dao.TimeSeriesDao.record_pages`
  (pages of at most a day of one site's readings, whatever the range) and leave as text chunks of
  :data:`ROWS_PER_CHUNK` rows; nothing holds the range. Everything that can fail on input (the
  request, the site) is checked by :func:`open_site_export` *before* the first chunk, so the API
  answers a 400 or 404 and not a broken 200.
- **Rows.** Every row names its site and the site's time zone, so a fleet file is self-describing.
  ``timestamp_utc`` is ISO 8601 in UTC, ``timestamp_local`` the same instant in the site's zone
  (its ``timezone``, else ``DEFAULT_TIMEZONE``), both to the millisecond (fixed width). Floats are
  written as Python's ``repr``: the shortest text that reads back as the same double, so a file
  parses back to exactly the stored values. CSV is RFC 4180 (``csv`` module, CRLF) with a header
  row; NDJSON is one JSON object per line, keys as the CSV header.
- **Resolutions.** ``raw``: one row per reading. ``hour`` (UTC clock hours, which are the local hours of
  every zone with a whole-hour offset) and ``day`` (the site's **local** calendar day, 23 or 25 hours
  across DST changes, :func:`redisolar.localtime.local_day_bounds`): one row per bucket holding
  readings, with the sums of ``wh_generated`` and ``wh_used`` (as the history composes them: an hour's
  readings added in time order, a day's pieces, its hours, in time order), min/max/avg ``temp_c``,
  ``count`` and the bucket's length in ``hours``; the timestamps are the bucket's start. The range is
  widened to whole buckets (a day export from ``2026-03-01`` of a New York site starts at its local
  midnight), so no row is a partial bucket. :func:`buckets` is the one place that computes them: from
  the history rollups (:mod:`redisolar.dao.history`, kept ``HISTORY_DAYS``), so hour and day exports
  reach beyond the raw readings' window.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from redisolar.dao.history import DAY_BLOCK, HOUR_BLOCK, HourRollup
from redisolar.errors import InvalidQuery, SiteNotFound
from redisolar.localtime import DAY_MS, HOUR_MS, day_date, local_day_bounds, local_day_number, zone
from redisolar.models.site import Site
from redisolar.timeutil import from_ms, to_ms

if TYPE_CHECKING:
    from redisolar.services import Services

__all__ = [
    "BUCKET_COLUMNS",
    "CONTENT_TYPES",
    "FORMATS",
    "RAW_COLUMNS",
    "RESOLUTIONS",
    "Bucket",
    "ExportRequest",
    "SiteExport",
    "buckets",
    "fleet_sites",
    "header",
    "open_site_export",
    "site_chunks",
]

FORMATS = ("csv", "ndjson")
RESOLUTIONS = ("raw", "hour", "day")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
RAW_COLUMNS = ("site_id", "timezone", "timestamp_utc", "timestamp_local", "wh_generated", "wh_used", "temp_c")
BUCKET_COLUMNS = (
    "site_id", "timezone", "timestamp_utc", "timestamp_local", "hours",
    "wh_generated", "wh_used", "temp_c_min", "temp_c_max", "temp_c_avg", "count",
)  # fmt: skip
ROWS_PER_CHUNK = 1_000
"""Rows per text chunk handed to the writer (the HTTP response or the CLI's file)."""
_WIDEN_MARGIN_MS = 2 * DAY_MS
"""Beyond the stored span by more than a bucket (≤ 25 h), a range holds no reading of any bucket."""

Row = tuple[Any, ...]


@dataclass(frozen=True)
class ExportRequest:
    """What to export: ``[start, end)``, the format and the resolution (checked: InvalidQuery)."""

    start: datetime
    end: datetime
    format: str = "csv"
    resolution: str = "raw"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidQuery(f"Unknown format {self.format!r}: use one of {', '.join(FORMATS)}")
        if self.resolution not in RESOLUTIONS:
            raise InvalidQuery(f"Unknown resolution {self.resolution!r}: use one of {', '.join(RESOLUTIONS)}")
        if to_ms(self.end) <= to_ms(self.start):
            raise InvalidQuery(
                "The end of the range must be after its start",
                {"start": self.start.isoformat(), "end": self.end.isoformat()},
            )

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns (CSV header, NDJSON keys) of this resolution."""
        return RAW_COLUMNS if self.resolution == "raw" else BUCKET_COLUMNS

    def filename(self, site_id: int | None = None) -> str:
        """A file name for the export, ``site-1_20260301T000000Z_20260302T000000Z_raw.csv``."""
        who = f"site-{site_id}" if site_id is not None else "fleet"
        return f"{who}_{_stamp(self.start)}_{_stamp(self.end)}_{self.resolution}.{self.format}"


@dataclass(frozen=True)
class SiteExport:
    """An export ready to stream: its file name, content type and text chunks (lazy)."""

    filename: str
    content_type: str
    chunks: Iterator[str]


@dataclass
class Bucket:
    """The readings of one bucket ``[start, end)`` (ms): energy sums, temperature extremes and sum."""

    start: int
    end: int
    wh_generated: float = 0.0
    wh_used: float = 0.0
    temp_min: float = float("inf")
    temp_max: float = float("-inf")
    temp_sum: float = 0.0
    count: int = 0

    def add(self, generated: float, used: float, temp: float) -> None:
        """Count one reading in."""
        self.wh_generated += generated
        self.wh_used += used
        self.temp_min = min(self.temp_min, temp)
        self.temp_max = max(self.temp_max, temp)
        self.temp_sum += temp
        self.count += 1


# -- use cases -------------------------------------------------------------------------------------
def open_site_export(services: Services, site_id: int, request: ExportRequest) -> SiteExport:
    """A site's export: raises :class:`SiteNotFound` now (one round trip); the chunks are lazy."""
    site = services.sites.find_by_id(site_id)
    if site is None:
        raise SiteNotFound(site_id)
    chunks = site_chunks(services, site, request, with_header=True)
    return SiteExport(request.filename(site_id), CONTENT_TYPES[request.format], chunks)


def site_chunks(
    services: Services, site: Site, request: ExportRequest, *, with_header: bool
) -> Iterator[str]:
    """A site's export as text chunks (the CSV header first with ``with_header``)."""
    if with_header and request.format == "csv":
        yield header(request)
    rows = _rows(services, site, request)
    while chunk := list(islice(rows, ROWS_PER_CHUNK)):
        yield _encode(chunk, request)


def header(request: ExportRequest) -> str:
    """The CSV header line of ``request`` (empty for NDJSON)."""
    return _encode([request.columns], request) if request.format == "csv" else ""


def fleet_sites(services: Services, site_ids: Sequence[int] = ()) -> Iterator[Site]:
    """The sites ``site_ids`` (SiteNotFound for a missing one, before any is given), or every site
    by ascending id, a page of ids at a time (the store's ``iter_ids``, then one read per page)."""
    if site_ids:
        found = services.sites.find_by_ids(site_ids)
        for site_id, site in zip(site_ids, found, strict=True):
            if site is None:
                raise SiteNotFound(site_id)
        yield from (site for site in found if site is not None)
        return
    for ids in services.sites.iter_ids():
        yield from (site for site in services.sites.find_by_ids(ids) if site is not None)


def buckets(services: Services, site_id: int, tz: tzinfo, request: ExportRequest) -> Iterator[Bucket]:
    """The site's buckets of ``request.resolution`` (hour or day) that hold readings, in time order,
    over ``request``'s range widened to whole buckets: the history rollups
    (:class:`~redisolar.dao.history.HistoryDao`, written at ingest from the raw readings, so the
    same sums), read a block at a time (30 days of hours, 360 local days), so they reach back
    ``HISTORY_DAYS`` in constant memory. Local days are the rollups' (the site hash's zone, the one
    ``tz`` names)."""
    bounds = _bucket_bounds(request.resolution, tz)
    widened = _widened(services, site_id, request, bounds)
    if widened is None:
        return
    history = services.timeseries.history
    lo, hi = widened
    if request.resolution == "hour":
        step = HOUR_BLOCK * HOUR_MS
        for page in range(lo, hi, step):
            for r in history.hours(site_id, page, min(hi, page + step)):
                yield _bucket(r, r.start_ms + HOUR_MS)
        return
    first, stop = local_day_number(lo, tz), local_day_number(hi - 1, tz) + 1
    for page in range(first, stop, DAY_BLOCK):
        for d in history.days(site_id, day_date(page), day_date(min(stop, page + DAY_BLOCK))):
            yield _bucket(d, d.end_ms)


def _bucket(r: HourRollup, end: int) -> Bucket:
    temp = r.temp_c
    return Bucket(r.start_ms, end, r.wh_generated.sum, r.wh_used.sum, temp.min, temp.max, temp.sum, r.count)


# -- rows ------------------------------------------------------------------------------------------
def _rows(services: Services, site: Site, request: ExportRequest) -> Iterator[Row]:
    tz_name = site.timezone or services.settings.default_timezone
    tz = zone(tz_name)
    if request.resolution != "raw":
        for b in buckets(services, site.id, tz, request):
            yield _bucket_row(site.id, tz_name, tz, b)
        return
    records = chain.from_iterable(services.timeseries.record_pages(site.id, request.start, request.end))
    for ts, generated, used, temp in records:
        yield (site.id, tz_name, *_timestamps(ts, tz), generated, used, temp)


def _bucket_row(site_id: int, tz_name: str, tz: tzinfo, b: Bucket) -> Row:
    hours = (b.end - b.start) / HOUR_MS
    energy = (b.wh_generated, b.wh_used)
    temps = (b.temp_min, b.temp_max, b.temp_sum / b.count)
    return (site_id, tz_name, *_timestamps(b.start, tz), hours, *energy, *temps, b.count)


def _timestamps(ms: int, tz: tzinfo) -> tuple[str, str]:
    """``ms`` in UTC and in ``tz``, ISO 8601 to the millisecond."""
    utc = from_ms(ms)
    return utc.isoformat(timespec="milliseconds"), utc.astimezone(tz).isoformat(timespec="milliseconds")


def _encode(rows: Iterable[Row], request: ExportRequest) -> str:
    if request.format == "ndjson":
        columns = request.columns
        return "".join(
            json.dumps(dict(zip(columns, row, strict=True)), allow_nan=False, separators=(",", ":")) + "\n"
            for row in rows
        )
    out = io.StringIO()
    csv.writer(out).writerows(tuple(repr(v) if isinstance(v, float) else v for v in row) for row in rows)
    return out.getvalue()


# -- buckets ---------------------------------------------------------------------------------------
Bounds = Callable[[int], tuple[int, int]]


def _bucket_bounds(resolution: str, tz: tzinfo) -> Bounds:
    """``ms -> (start, end)`` of the bucket holding ``ms``: a UTC hour, or the local day in ``tz``."""
    if resolution == "hour":
        return lambda ms: (ms - ms % HOUR_MS, ms - ms % HOUR_MS + HOUR_MS)
    return lambda ms: local_day_bounds(local_day_number(ms, tz), tz)


def _widened(
    services: Services, site_id: int, request: ExportRequest, bounds: Bounds
) -> tuple[int, int] | None:
    """``request``'s range widened to whole buckets, or None when it holds no reading. The range is
    first brought within a margin of the site's stored span, so the widening never leaves the
    calendar (a range may reach year 9999)."""
    span = services.timeseries.stored_span(site_id)
    if span is None:
        return None
    kept = services.timeseries.history.history_ms  # the rollups reach back HISTORY_DAYS, not the raw window
    oldest = max(0, span[1] - 1 - kept) if kept else 0
    lo = max(to_ms(request.start), oldest - _WIDEN_MARGIN_MS)
    hi = min(to_ms(request.end), span[1] + _WIDEN_MARGIN_MS)
    if lo >= hi:
        return None
    return bounds(lo)[0], bounds(hi - 1)[1]


def _stamp(when: datetime) -> str:
    return from_ms(to_ms(when)).strftime("%Y%m%dT%H%M%SZ")
