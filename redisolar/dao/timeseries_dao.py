"""Meter readings as time series (the seed's Step 3 API) over two interchangeable backends.

``TimeSeriesDao(client)`` picks the backend from the server it talks to: ``redistimeseries`` when the
server knows ``TS.ADD``, ``core`` otherwise (any Redis ≥ 6.2); ``backend=`` forces one. Both give the
same answers for the same data:

- ranges are ``[start, end)``; naive datetimes mean UTC; results carry aware UTC datetimes;
- a re-sent reading (same site and timestamp) replaces the stored one;
- retention counts back from the site's newest reading; a reading older than that is refused with
  :class:`~redisolar.errors.InvalidReading` (nothing of its batch is written).

This DAO owns the readings' keys (the series or day partitions of ``{site:ID}`` and their meta hash
``tsmeta:{site:ID}``) and writes no other aggregate's. :meth:`TimeSeriesDao.write_records` is the
series write alone (one round trip: one script per site, which can also refuse a missing site).
Keeping the derived state current (day leaderboards, owned by :mod:`redisolar.dao.daily_boards`; the
fleet's hourly rollup and last-seen, owned by :mod:`redisolar.dao.fleet_hours`) is the ingest use
case, :mod:`redisolar.services.ingest`; the seed's ``add_reading`` / ``add_readings_batch`` delegate
to it, so they store readings *and* keep the boards current, as the seed's tests expect.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

import redis
from redis.exceptions import ResponseError

from redisolar import store
from redisolar.dao.daily_boards import DailyBoards, efficiency_percent
from redisolar.dao.fleet_hours import FleetHours, HourSums
from redisolar.dao.history import DEFAULT_HISTORY_MS, NET_AGGREGATIONS, HistoryDao
from redisolar.dao.key_manager import KeyManager, key_manager
from redisolar.dao.scripts import run_scripts_collect
from redisolar.dao.timeseries.base import (
    AGGREGATIONS,
    NO_SITE,
    SITE_FIELDS,
    Backend,
    PeriodStats,
    Point,
    Record,
    SiteRead,
    SumsFrom,
    WriteOutcome,
    parse_write_outcome,
)
from redisolar.dao.timeseries.core import CoreBackend
from redisolar.dao.timeseries.redistimeseries import RedisTimeSeriesBackend
from redisolar.errors import InvalidQuery, InvalidReading, SiteNotFound
from redisolar.localtime import local_day_bounds
from redisolar.models.site import MeterReading, MetricType, SiteAnalytics, TimeSeriesData, check_site_id
from redisolar.timeutil import MS_PER_HOUR, as_utc, from_ms, to_ms, utcnow

log = logging.getLogger(__name__)

DEFAULT_RETENTION_MS = 30 * 24 * MS_PER_HOUR
BACKENDS = ("auto", "redistimeseries", "core")
MAX_BUCKETS = 100_000
PAGE_READINGS = 2_000
"""The number of readings :meth:`TimeSeriesDao.record_pages` aims at per page."""
MIN_PAGE_WINDOW_MS = 1_000
MAX_PAGE_WINDOW_MS = 24 * MS_PER_HOUR
"""The widest window one page reads: a page never holds more than a day of one site's readings."""


def server_has_timeseries(client: redis.Redis) -> bool:
    """Whether the server behind ``client`` knows the RedisTimeSeries commands. On a cluster, asked
    of the primary of the probe key's slot through its plain connection (the cluster client refuses
    a command it does not know before sending it); every shard runs the same binary."""
    probe = "redisolar:probe:{none}"
    try:
        store.node_client_for_slot(client, store.slot_of(probe)).execute_command("TS.INFO", probe)
    except ResponseError as exc:
        return "unknown command" not in str(exc).lower()
    return True


def _local_bounds(day: date, zone: str | None) -> tuple[int, int]:
    """``[start, end)`` of the local ``day`` in ``zone`` (ms); at the ends of the calendar (days whose
    neighbours zoneinfo cannot reach: 0001-01-01, 9999-12-30), the UTC day, which no reading has."""
    try:
        return local_day_bounds(day, zone or "UTC")
    except (ValueError, OverflowError):
        start = to_ms(datetime(day.year, day.month, day.day, tzinfo=UTC))
        return start, start + 86_400_000


class TimeSeriesDao:
    """Meter readings of every site, stored by the backend chosen for ``client``'s server."""

    def __init__(
        self,
        redis_client: redis.Redis,
        *,
        keys: KeyManager | None = None,
        retention_ms: int = DEFAULT_RETENTION_MS,
        backend: str = "auto",
        history_ms: int = DEFAULT_HISTORY_MS,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"Unknown time-series backend {backend!r}: use one of {', '.join(BACKENDS)}")
        if retention_ms < 0:
            raise ValueError("Retention must not be negative (0 keeps everything)")
        self.redis = redis_client
        self.keys = keys or key_manager
        self.default_retention = retention_ms
        self._backend_name = backend
        self._backend: Backend | None = None
        self.boards = DailyBoards(redis_client, self.keys, retention_ms)
        """The day leaderboards' owner on the same client (the ingest service and the reconciler use it)."""
        self.fleet = FleetHours(redis_client, self.keys, retention_ms)
        """The fleet rollup's owner on the same client (hourly totals, last-seen)."""
        self.history = HistoryDao(redis_client, self.keys, retention_ms, history_ms)
        """The long history's owner (hourly and local-daily rollups, :mod:`redisolar.dao.history`):
        its ``history_set.lua`` follows each site's write in the same round trip."""

    @property
    def backend(self) -> Backend:
        """The backend in use (chosen on first use when ``backend="auto"``)."""
        if self._backend is None:
            name = self._backend_name
            if name == "auto":
                name = "redistimeseries" if server_has_timeseries(self.redis) else "core"
            cls = RedisTimeSeriesBackend if name == "redistimeseries" else CoreBackend
            self._backend = cls(self.redis, self.keys, self.default_retention)
            log.info("time-series backend: %s", name)
        return self._backend

    # -- writes ----------------------------------------------------------------------------------------
    def add_reading(self, reading: MeterReading) -> None:
        """Store one reading (an upsert) and update the site's daily leaderboard scores."""
        self.add_readings_batch([reading])

    def add_readings_batch(self, readings: Iterable[MeterReading]) -> int:
        """Store readings of any sites (the seed's API: a site need not be registered) through the
        ingest use case: all-or-nothing validation, one atomic write per site, then the derived state.

        Returns the number of distinct (site, timestamp) readings stored. Raises
        :class:`InvalidReading` before writing anything if an item is not a reading or a reading is
        older than its site's retention window.
        """
        return self._ingest(group_readings(readings), require_sites=False)

    def add_validated_records(self, by_site: dict[int, list[Record]]) -> int:
        """Store readings already validated as :class:`MeterReading` would validate them, given per
        site as ``(ms, wh_generated, wh_used, temp_c)`` records sorted by time with unique timestamps,
        through the ingest use case, as :meth:`add_readings_batch` does (a site need not be
        registered). Returns the number of readings stored. Kept for callers of the earlier API: new
        code calls :func:`redisolar.services.ingest.ingest`, which also refuses missing sites."""
        return self._ingest(by_site, require_sites=False)

    def _ingest(self, by_site: dict[int, list[Record]], *, require_sites: bool) -> int:
        from redisolar.services.ingest import ingest_records  # the use case sits above the DAOs

        return ingest_records(self, by_site, require_sites=require_sites)

    def write_records(self, by_site: dict[int, list[Record]], *, require_sites: bool = False) -> SeriesWrite:
        """Write each site's records (sorted, unique timestamps) with one atomic script per site, in
        one round trip (a second one only when a batch reaches back near the retention window and
        the sites' newest readings must be read first).

        Raises :class:`InvalidReading` before writing anything when a reading is older than its
        site's retention window. A site whose script refused its part (missing site with
        ``require_sites``, or another writer advanced its window meanwhile) wrote nothing; its error
        is in the result, the other sites' parts are stored.
        """
        if not by_site:
            return SeriesWrite([], {}, 0)
        try:
            self._check_retention(by_site)
        except InvalidReading:
            if require_sites:  # a missing site is a 404 before anything else, as it always was
                self._raise_if_missing(list(by_site))
            raise
        site_ids = list(by_site)
        calls = [self.backend.write_call(s, by_site[s], require_sites) for s in site_ids]
        history = [self.history.set_call(self.backend.name, s, by_site[s], require_sites) for s in site_ids]
        replies = run_scripts_collect(self.redis, [*calls, *history])
        outcomes: list[WriteOutcome] = []
        errors: dict[int, Exception] = {}
        for site_id, reply, totals in zip(
            site_ids, replies[: len(calls)], replies[len(calls) :], strict=True
        ):
            if isinstance(reply, Exception):
                errors[site_id] = self._write_error(site_id, reply)
                continue
            if isinstance(totals, Exception):  # stored; a retry fixes the rollups and derived state
                log.error("history rollups of site %s not written: %s", site_id, totals)
                errors[site_id] = totals
            outcomes.append(
                parse_write_outcome(site_id, reply, None if isinstance(totals, Exception) else totals)
            )
        stored = sum(len(by_site[o.site_id]) for o in outcomes)
        return SeriesWrite(outcomes, errors, stored)

    def _raise_if_missing(self, site_ids: list[int]) -> None:
        """Raise :class:`SiteNotFound` for the first of ``site_ids`` without a site hash (one round
        trip, on the refusal path only)."""
        pipe = self.redis.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.exists(self.keys.site_key(site_id))
        for site_id, exists in zip(site_ids, pipe.execute(), strict=True):
            if not exists:
                raise SiteNotFound(site_id)

    def _write_error(self, site_id: int, error: Exception) -> Exception:
        """The domain error for a site's refused write (the error itself if it is not ours)."""
        if not isinstance(error, ResponseError):
            return error
        message = str(error)
        if message == NO_SITE:
            return SiteNotFound(site_id)
        if message.startswith("RETENTION"):
            oldest_allowed = from_ms(int(message.split()[1])).isoformat()
            return InvalidReading(
                "A reading is older than the retention window (newer readings arrived meanwhile); "
                f"the oldest accepted timestamp is {oldest_allowed}",
                {"oldest_accepted": oldest_allowed},
            )
        return error

    def _check_retention(self, by_site: dict[int, list[Record]]) -> None:
        """Refuse the batch if a reading is older than its site's window. The stored newest reading
        is only looked up when it matters: no stored reading lies beyond now + the clock-skew
        allowance, so a batch that is entirely newer than that minus retention always fits."""
        retention = self.default_retention
        if not retention:
            return
        horizon = to_ms(utcnow() + MeterReading.max_clock_skew) - retention
        if all(records[0][0] >= horizon for records in by_site.values()):
            return
        newest = self.backend.newest(list(by_site))
        for site_id, records in by_site.items():
            latest = max(records[-1][0], newest[site_id] or records[-1][0])
            oldest = records[0][0]
            if oldest < latest - retention:
                raise self._retention_error(site_id, oldest, latest - retention)

    def _retention_error(self, site_id: int, ts: int, oldest_allowed: int) -> InvalidReading:
        days = self.default_retention / (24 * MS_PER_HOUR)
        return InvalidReading(
            f"Reading of site {site_id} at {from_ms(ts).isoformat()} is older than the retention window "
            f"({days:g} days back from the site's newest reading): the oldest accepted timestamp is "
            f"{from_ms(oldest_allowed).isoformat()}",
            {
                "site_id": site_id,
                "timestamp": from_ms(ts).isoformat(),
                "oldest_accepted": from_ms(oldest_allowed).isoformat(),
            },
        )

    # -- reads -------------------------------------------------------------------------------------
    def get_readings_range(
        self,
        site_id: int,
        metric: MetricType,
        start_time: datetime,
        end_time: datetime,
        *,
        site: SiteRead | None = None,
    ) -> list[TimeSeriesData]:
        """Raw readings of one metric in ``[start_time, end_time)`` (those still in the raw window;
        :meth:`raw_window_start` says where it begins). ``site``, when given, is filled in with the
        site hash's fields in the same round trip."""
        start, end = self._range(site_id, start_time, end_time)
        if start == end:
            self._fill_site(site_id, site)
            return []
        return _data(self.backend.points(site_id, MetricType(metric), start, end, site))

    def raw_window_start(self, site_id: int, start_time: datetime) -> datetime | None:
        """The start of the site's raw window (its oldest visible reading's earliest possible time,
        ``RETENTION_DAYS`` back from its newest reading) when ``start_time`` lies before it, else
        None. No round trip when ``start_time`` is recent enough to be inside whatever the data."""
        window = self._beyond_raw_window(check_site_id(site_id), max(0, to_ms(start_time)))
        return None if window is None else from_ms(window)

    def _fill_site(self, site_id: int, site: SiteRead | None) -> None:
        """Read ``site``'s fields when no data read has (a round trip of its own)."""
        if site is not None and not site.read:
            site.fill(self.redis.hmget(self.keys.site_key(site_id), list(SITE_FIELDS)))

    def stored_span(self, site_id: int) -> tuple[int, int] | None:
        """``[first, end)`` in ms that can hold the site's visible readings: from the retention
        window's start (0 without retention) to just after the newest reading; None without
        readings. One round trip."""
        newest = self.backend.newest([check_site_id(site_id)])[site_id]
        if newest is None:
            return None
        return (max(0, newest - self.default_retention) if self.default_retention else 0), newest + 1

    def record_pages(
        self, site_id: int, start_time: datetime, end_time: datetime, page_size: int = PAGE_READINGS
    ) -> Iterator[list[Record]]:
        """Every reading of a site in ``[start_time, end_time)`` as ``(ms, generated, used, temp)``
        records in time order, a page (a non-empty list) at a time, for exports of any length.

        Pages are time windows, sized from the last one to hold about ``page_size`` readings and
        never wider than a day (:data:`MAX_PAGE_WINDOW_MS`), so memory is bounded by a day of one
        site's readings whatever the range; the range is first clipped to :meth:`stored_span`.
        Each page reads the three stored metrics (three round trips) and keeps the timestamps all
        three hold: a reading written between those reads shows up in none or in a later export.
        """
        start, end = self._range(site_id, start_time, end_time)
        span = self.stored_span(site_id)
        if span is None:
            return
        lo, hi = max(start, span[0]), min(end, span[1])
        window = MS_PER_HOUR
        while lo < hi:
            upper = min(hi, lo + window)
            page = self._records(site_id, lo, upper)
            window, lo = _next_window(window, len(page), page_size), upper
            if page:
                yield page
            del page  # not held while the next one is read: one page in memory at a time

    def _records(self, site_id: int, start: int, end: int) -> list[Record]:
        """The site's readings in ``[start, end)`` (ms) as records."""
        generated, used, temp = (self.backend.points(site_id, m, start, end) for m in RECORD_METRICS)
        used_at, temp_at = dict(used), dict(temp)
        return [(ts, g, used_at[ts], temp_at[ts]) for ts, g in generated if ts in used_at and ts in temp_at]

    def get_latest_reading(self, site_id: int, metric: MetricType) -> TimeSeriesData | None:
        """The newest reading of one metric, or None."""
        return self.get_latest_readings(site_id).get(MetricType(metric))

    def get_latest_readings(
        self, site_id: int, *, site: SiteRead | None = None
    ) -> dict[MetricType, TimeSeriesData]:
        """The newest reading of every metric of a site (one round trip, ``site`` filled in with the
        site hash's fields in the same one when given); empty without readings."""
        latest = self.backend.latest(check_site_id(site_id), site)
        return {metric: TimeSeriesData(from_ms(ts), value) for metric, (ts, value) in latest.items()}

    def get_aggregated_data(
        self,
        site_id: int,
        metric: MetricType,
        start_time: datetime,
        end_time: datetime,
        bucket_size_ms: int = MS_PER_HOUR,
        aggregation: str = "avg",
        *,
        site: SiteRead | None = None,
    ) -> list[TimeSeriesData]:
        """Buckets of ``bucket_size_ms`` (aligned to the epoch) over ``[start_time, end_time)``.

        ``aggregation`` is one of avg, sum, min, max, count, first, last, range; empty buckets are
        left out. A range that starts before the raw window is answered from the hourly rollups
        there (:meth:`_with_history`): buckets of whole hours only, else :class:`InvalidQuery`.
        ``site``, when given, is filled in with the site hash's fields (in the raw read's round trip).
        """
        if aggregation not in AGGREGATIONS:
            raise InvalidQuery(f"Unknown aggregation {aggregation!r}: use one of {', '.join(AGGREGATIONS)}")
        if isinstance(bucket_size_ms, bool) or not isinstance(bucket_size_ms, int) or bucket_size_ms < 1:
            raise InvalidQuery("bucket_size must be a positive whole number of milliseconds")
        start, end = self._range(site_id, start_time, end_time)
        if start == end:
            self._fill_site(site_id, site)
            return []
        if (end - start) // bucket_size_ms > MAX_BUCKETS:
            raise InvalidQuery(f"Too many buckets: at most {MAX_BUCKETS} per query, use a larger bucket_size")
        window_start = self._beyond_raw_window(site_id, start)
        if window_start is not None:
            points = self._with_history(site_id, MetricType(metric), start, end, bucket_size_ms,
                                        aggregation, window_start, site)  # fmt: skip
            self._fill_site(site_id, site)
            return _data(points)
        metric = MetricType(metric)
        return _data(self.backend.aggregate(site_id, metric, start, end, bucket_size_ms, aggregation, site))

    def _beyond_raw_window(self, site_id: int, start: int) -> int | None:
        """The start (ms) of the site's raw window when ``start`` lies before it, else None. No
        round trip when ``start`` is newer than now + clock skew − retention (always inside)."""
        if not self.default_retention:
            return None
        if start >= to_ms(utcnow() + MeterReading.max_clock_skew) - self.default_retention:
            return None
        newest = self.backend.newest([site_id])[site_id]
        if newest is None or start >= newest - self.default_retention:
            return None
        return newest - self.default_retention

    def _with_history(
        self,
        site_id: int,
        metric: MetricType,
        start: int,
        end: int,
        bucket: int,
        aggregation: str,
        window: int,
        site: SiteRead | None = None,
    ) -> list[Point]:
        """Buckets of a range that reaches back before the raw window: those before the first bucket
        boundary at or after the window's start from the hourly rollups (their hours that begin in
        the range), the rest from the raw readings, as before."""
        if bucket % MS_PER_HOUR:
            raise beyond_window_error(
                window,
                "older data are kept as hourly and daily rollups only, so bucket_size must be a whole "
                "number of hours there (hourly or daily buckets work beyond it)",
                {"bucket_size": bucket},
            )
        if metric is MetricType.NET_GENERATION and aggregation not in NET_AGGREGATIONS:
            raise InvalidQuery(
                f"{aggregation} of net_generation is not kept before the raw readings' window "
                f"({from_ms(window).isoformat()}): use one of {', '.join(sorted(NET_AGGREGATIONS))}"
            )
        cut = min(end, -(-window // bucket) * bucket)
        points = self.history.aggregate(site_id, metric, start, cut, bucket, aggregation)
        if cut < end:
            points += self.backend.aggregate(site_id, metric, cut, end, bucket, aggregation, site)
        return points

    def get_site_analytics(
        self, site_id: int, start_time: datetime, end_time: datetime, *, site: SiteRead | None = None
    ) -> SiteAnalytics | None:
        """Totals, extremes and the capacity factor of a site over ``[start_time, end_time)``.

        ``efficiency_percent`` = 100 × Wh generated / (kW × 1000 × hours in the period); it is 0 when
        the site's capacity is unknown. None when the period holds no reading. Sums add each UTC
        hour's readings in time order, then the hours in time order, so a range that starts before
        the raw window is answered exactly from the hourly rollups there (:meth:`_history_stats`:
        its start, and its end when before the window, on whole hours, else :class:`InvalidQuery`).
        ``site`` is filled in with the site hash's fields (in the raw read's round trip).
        """
        start, end = self._range(site_id, start_time, end_time)
        if start == end:
            self._fill_site(site_id, site)
            return None
        facts = site if site is not None else SiteRead()
        window = self._beyond_raw_window(site_id, start)
        if window is None:
            stats, _ = self.backend.stats(site_id, start, end, site=facts)
        else:
            stats = self._history_stats(site_id, start, end, window, facts)
        if stats is None:
            return None
        efficiency = efficiency_percent(stats.sum_generated, facts.capacity, (end - start) / MS_PER_HOUR)
        return SiteAnalytics(
            site_id=site_id,
            period_start=from_ms(start),
            period_end=from_ms(end),
            total_generated=stats.sum_generated,
            total_used=stats.sum_used,
            avg_generation=stats.sum_generated / stats.count,
            max_generation=stats.max_generated,
            min_generation=stats.min_generated,
            avg_temperature=stats.sum_temp / stats.count,
            efficiency_percent=efficiency or 0.0,
            reading_count=stats.count,
        )

    def _history_stats(
        self, site_id: int, start: int, end: int, window: int, site: SiteRead
    ) -> PeriodStats | None:
        """A range's reductions when it starts before the raw window (``window``, ms): the hours that
        begin before the first hour boundary at or after the window from the rollups (an hour that
        straddles the window start is kept as it was whole), the rest from the raw readings, their
        sums carried on from the rollups' in time order."""
        cut = min(end, -(-window // MS_PER_HOUR) * MS_PER_HOUR)
        if start % MS_PER_HOUR or cut % MS_PER_HOUR:
            raise beyond_window_error(
                window,
                "older data are kept as hourly and daily rollups only, so the range must start (and, "
                "if it ends before the window, end) on a whole UTC hour",
                {"start": from_ms(start).isoformat(), "end": from_ms(end).isoformat()},
            )
        hours = self.history.hours(site_id, start, cut)
        carried = SumsFrom(
            _sum(h.wh_generated.sum for h in hours), _sum(h.wh_used.sum for h in hours),
            _sum(h.temp_c.sum for h in hours),
        )  # fmt: skip
        raw, _ = self.backend.stats(site_id, cut, max(cut, end), carried, site)
        if not hours:
            return raw
        count = sum(h.count for h in hours) + (raw.count if raw else 0)
        peak = max([h.wh_generated.max for h in hours] + ([raw.max_generated] if raw else []))
        low = min([h.wh_generated.min for h in hours] + ([raw.min_generated] if raw else []))
        if raw is not None:
            carried = SumsFrom(raw.sum_generated, raw.sum_used, raw.sum_temp)
        return PeriodStats(count, carried.generated, peak, low, carried.used, carried.temp)

    def get_generation_totals(
        self, site_ids: Sequence[int], start_time: datetime, end_time: datetime
    ) -> dict[int, tuple[int, float, int]]:
        """Each site's (data version, Wh generated, readings) in ``[start_time, end_time)``.

        One round trip."""
        if not site_ids:
            return {}
        start, end = to_ms(start_time), to_ms(end_time)
        if end <= start:
            raise InvalidQuery("The end of a range must be after its start")
        return self.backend.day_sums([(check_site_id(s), start, end) for s in site_ids])

    def get_local_day_totals(
        self, sites: Sequence[tuple[int, str | None]], day: date
    ) -> dict[int, tuple[int, float, int, float]]:
        """Each ``(site_id, timezone)``'s (data version, Wh generated, readings, hours) over its own
        local ``day`` (:func:`redisolar.localtime.local_day_bounds`; UTC without a zone) as its
        history day record holds them (:meth:`HistoryDao.day_totals`): the same total the ingest
        sets on the day boards (its hours' sums added in time order, as the energy endpoint gives);
        ``hours`` is that day's length (23/24/25). One round trip."""
        number = (day - date(1970, 1, 1)).days
        totals = self.history.day_totals([(check_site_id(s), number) for s, _ in sites])
        out = {}
        for site_id, zone in sites:
            start, end = _local_bounds(day, zone)
            version, total, count = totals[site_id]
            out[site_id] = (version, total, count, (end - start) / 3_600_000)
        return out

    def delete_site_data(self, site_id: int) -> None:
        """Remove every key holding the site's readings and their history rollups (no KEYS scan:
        the keys are known), then have the fleet rollup's owner remove the site's hourly and
        last-seen entries outright."""
        check_site_id(site_id)
        newest = self.backend.newest([site_id])[site_id]
        hourly: list[Point] = []
        if newest is not None:
            start = max(0, newest - self.default_retention) if self.default_retention else 0
            hourly = self.backend.hour_sums([(site_id, start, newest + 1)])[0]
        self.backend.delete(site_id)
        self.history.delete(site_id)
        self.fleet.remove_site(site_id, (ts // MS_PER_HOUR for ts, _ in hourly))

    # -- fleet rollups -------------------------------------------------------------------------------
    def get_fleet_generation(self, now: datetime, hours: int = 24) -> FleetGeneration:
        """The fleet's generation over the ``hours`` clock hours ending with the current one, and how
        many sites reported in that period. One round trip, whatever the fleet size."""
        if not 1 <= hours <= 24 * 400:
            raise InvalidQuery("hours must be between 1 and 9600")
        last = to_ms(now) // MS_PER_HOUR
        start = (last - hours + 1) * MS_PER_HOUR
        generation, active = self.fleet.period(start, range(last - hours + 1, last + 1))
        return FleetGeneration(from_ms(start), as_utc(now), max(generation, 0.0), active)

    def rebuild_fleet_hours(self, site_ids: Sequence[int], now: datetime, hours: int | None = None) -> int:
        """Rebuild the fleet's hourly rollup from the readings of ``site_ids`` (every live site) over
        the ``hours`` clock hours ending with the current one (default: the retention window, or the
        last 30 days when retention is 0), dropping the entries of other sites. Returns how many
        hours have entries."""
        last = to_ms(now) // MS_PER_HOUR
        window = self.default_retention or DEFAULT_RETENTION_MS
        span = window // MS_PER_HOUR if hours is None else min(hours, window // MS_PER_HOUR)
        self.redis.delete(self.keys.legacy_fleet_hourly_key())  # written by earlier versions
        return self.fleet.rebuild(list(site_ids), range(last - span, last + 1), self.hour_sums)

    def hour_sums(self, site_ids: list[int], start: int, end: int) -> HourSums:
        """Each site's data version, generation per clock hour in ``[start, end)`` (ms) and newest
        reading (ms), for the sites with readings: three round trips (versions first, so a version is
        never newer than the data read with it)."""
        pipe = self.redis.pipeline(transaction=False)
        for site_id in site_ids:
            pipe.hget(self.keys.series_meta_key(site_id), "v")
        versions = dict(zip(site_ids, pipe.execute(), strict=True))
        newest = self.backend.newest(site_ids)
        ranges = [
            (s, max(start, newest_ms - self.default_retention) if self.default_retention else start, end)
            for s, newest_ms in newest.items()
            if newest_ms is not None and versions[s] is not None
        ]
        sums = self.backend.hour_sums(ranges)
        return {
            s: (int(versions[s]), {ts // MS_PER_HOUR: wh for ts, wh in points}, int(newest[s] or 0))
            for (s, _, _), points in zip(ranges, sums, strict=True)
        }

    @staticmethod
    def _range(site_id: int, start_time: datetime, end_time: datetime) -> tuple[int, int]:
        check_site_id(site_id)
        if not isinstance(start_time, datetime) or not isinstance(end_time, datetime):
            raise InvalidQuery("start and end must be datetimes")
        start, end = to_ms(start_time), to_ms(end_time)
        if end < start:
            raise InvalidQuery("The end of a range must not be before its start")
        return max(start, 0), max(end, 0)


@dataclass(frozen=True)
class SeriesWrite:
    """What :meth:`TimeSeriesDao.write_records` did: the outcome of every site whose part was stored,
    the error of every site whose script refused its part (it wrote nothing), readings stored."""

    outcomes: list[WriteOutcome]
    errors: dict[int, Exception]
    stored: int

    def raise_first_error(self) -> None:
        """Raise the first refused site's error, if any."""
        for error in self.errors.values():
            raise error


def group_readings(readings: Iterable[MeterReading]) -> dict[int, list[Record]]:
    """Readings by site as records sorted by time, the last of equal timestamps kept. Raises
    :class:`InvalidReading` if an item is not a :class:`MeterReading`."""
    by_site: dict[int, dict[int, Record]] = {}
    for index, reading in enumerate(readings):
        if not isinstance(reading, MeterReading):
            raise InvalidReading(f"Item {index} is not a meter reading")
        ts = reading.timestamp_millis
        by_site.setdefault(reading.site_id, {})[ts] = (
            ts,
            reading.wh_generated,
            reading.wh_used,
            reading.temp_c,
        )
    return {site: [r[ts] for ts in sorted(r)] for site, r in by_site.items()}


@dataclass(frozen=True)
class FleetGeneration:
    """The fleet's generation in ``[period_start, period_end)`` and how many sites reported in it."""

    period_start: datetime
    period_end: datetime
    wh_generated: float
    active_sites: int


RECORD_METRICS = (MetricType.WH_GENERATED, MetricType.WH_USED, MetricType.TEMP_C)
"""The stored metrics, in the order of a :data:`Record`'s values."""


def _next_window(window: int, count: int, page_size: int) -> int:
    """The next page's window (ms): scaled so it would have held about ``page_size`` of the last
    page's ``count`` readings, at most doubled, within the window bounds."""
    if count > page_size:
        window = window * page_size // count
    elif count < page_size // 2:
        window *= 2
    return max(MIN_PAGE_WINDOW_MS, min(MAX_PAGE_WINDOW_MS, window))


def beyond_window_error(window: int, why: str, details: dict[str, object]) -> InvalidQuery:
    """The 400 of a query that the raw readings cannot answer because it reaches back before the
    site's raw window (which starts at ``window``, ms), saying ``why`` and what works instead."""
    oldest = from_ms(window).isoformat()
    return InvalidQuery(
        f"The range starts before the raw readings' window, which begins at {oldest} (RETENTION_DAYS "
        f"back from the site's newest reading): {why}",
        {"raw_window_start": oldest, **details},
    )


def _sum(values: Iterable[float]) -> float:
    """``values`` added in order, from 0."""
    total = 0.0
    for value in values:
        total += value
    return total


def _data(points: list[Point]) -> list[TimeSeriesData]:
    return [TimeSeriesData(from_ms(ts), value) for ts, value in points]


__all__ = ["DEFAULT_RETENTION_MS", "SeriesWrite", "TimeSeriesDao", "group_readings", "server_has_timeseries"]
