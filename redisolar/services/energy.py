"""A site's energy per local day, month or year: what PVOutput's outputs and SolarEdge's energy by
time unit answer (``GET /api/analytics/energy/<site_id>``).

Decisions:

- **Local periods.** A day is the site's local calendar day in its ``timezone`` (else
  ``DEFAULT_TIMEZONE``): 23 or 25 hours across DST changes (:func:`redisolar.localtime.local_day_bounds`).
  A month or a year is the run of its local days, so its figures are sums of its days' (the
  history keeps days, not months).
- **Range.** ``[start, end)`` in local dates, end exclusive. A bound inside a period is widened to
  the whole period (``start=2026-03-15`` by month starts at 2026-03-01), so no period is partial,
  and the answer names the widened range. Defaults: the last :data:`DEFAULT_PERIODS` periods up to
  and including the current local one (day: 30 days ending today; month: 12 months ending this
  month; year: 5 years ending this year); one bound given, the other is that many periods away.
  At most :data:`MAX_PERIODS` periods per request (366 days, 120 months, 50 years), else a 400.
- **Every period is answered**, with or without readings (``count`` 0, energies 0, no peak), so a
  chart of 30 days has 30 bars and a missing day shows as missing, not as a gap in the list.
- **Figures.** ``wh_generated``/``wh_used`` are sums (added in time order within a day, then day by
  day), ``wh_net`` their difference; ``peak_wh`` is the largest ``wh_generated`` of one reading
  (the first in time on ties), with its instant in UTC and in local time; ``capacity_factor_percent``
  is ``100 × Wh / (kW × 1000 × hours)`` with the period's real hours (a month holding a DST change
  lasts 743 or 745 h); ``specific_yield_kwh_per_kwp`` is ``Wh / 1000 / kW``.
- **The data.** :func:`day_figures` is the one function that reads them: the history's local-day
  rollups (:mod:`redisolar.dao.history`: written at ingest from the raw readings, exact under
  retries and overwrites, kept ``HISTORY_DAYS``), so any period inside the history is answered,
  beyond the raw window too, a block of days (360) at a time. The rollups' days follow the zone
  the site's hash holds (``tzt``), the one its ``timezone`` names.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, tzinfo
from itertools import islice
from typing import TYPE_CHECKING, Any

from redisolar.dao.history import DAY_BLOCK
from redisolar.errors import InvalidQuery, SiteNotFound
from redisolar.localtime import DAY_MS, HOUR_MS, day_date, day_number, local_day_bounds, transitions, zone
from redisolar.timeutil import from_ms, utcnow

if TYPE_CHECKING:
    from redisolar.services import Services

__all__ = [
    "DEFAULT_PERIODS",
    "GRANULARITIES",
    "MAX_PERIODS",
    "DayFigures",
    "Energy",
    "Period",
    "as_dict",
    "day_figures",
    "period_range",
    "site_energy",
]

GRANULARITIES = ("day", "month", "year")
DEFAULT_PERIODS = {"day": 30, "month": 12, "year": 5}
"""Periods answered when the request gives no range (ending with the current local period)."""
MAX_PERIODS = {"day": 366, "month": 120, "year": 50}
"""The most periods one request may ask for (more is a 400)."""


@dataclass
class DayFigures:
    """One local day of a site: ``[start_ms, end_ms)``, its readings' count, energy sums and the
    largest ``wh_generated`` of one reading (``peak``, the first such at ``peak_ms``; None
    without readings)."""

    day: date
    start_ms: int
    end_ms: int
    count: int = 0
    wh_generated: float = 0.0
    wh_used: float = 0.0
    peak: float | None = None
    peak_ms: int | None = None

    @property
    def hours(self) -> float:
        """The day's length: 24, or 23/25 across DST changes."""
        return (self.end_ms - self.start_ms) / HOUR_MS


@dataclass(frozen=True)
class Period:
    """One local day, month or year of a site, and its figures."""

    label: str  # 2026-03-08, 2026-03 or 2026
    first_day: date
    end_day: date  # exclusive
    start_ms: int
    end_ms: int
    count: int
    wh_generated: float
    wh_used: float
    peak: float | None
    peak_ms: int | None
    capacity_kw: float

    @property
    def hours(self) -> float:
        """The period's real length in hours (its local days' lengths added up)."""
        return (self.end_ms - self.start_ms) / HOUR_MS

    @property
    def wh_net(self) -> float:
        """Generated minus used."""
        return self.wh_generated - self.wh_used

    @property
    def capacity_factor_percent(self) -> float:
        """``100 × Wh / (kW × 1000 × hours)`` (0 for a period of no length)."""
        possible = self.capacity_kw * 1000 * self.hours
        return 100 * self.wh_generated / possible if possible > 0 else 0.0

    @property
    def specific_yield(self) -> float:
        """kWh generated per kW of capacity (kWh/kWp)."""
        return self.wh_generated / 1000 / self.capacity_kw


@dataclass(frozen=True)
class Energy:
    """A site's periods over ``[first_day, end_day)`` (local dates, widened to whole periods)."""

    site_id: int
    timezone: str
    tz: tzinfo
    granularity: str
    first_day: date
    end_day: date
    capacity_kw: float
    periods: list[Period]


# -- periods ---------------------------------------------------------------------------------------
def _floor(day: date, granularity: str) -> date:
    if granularity == "month":
        return day.replace(day=1)
    if granularity == "year":
        return day.replace(month=1, day=1)
    return day


def _shift(day: date, granularity: str, n: int) -> date:
    """``day`` (a period's first day) moved by ``n`` periods (OverflowError/ValueError off the calendar)."""
    if granularity == "day":
        return date.fromordinal(day.toordinal() + n)
    if granularity == "month":
        months = day.year * 12 + day.month - 1 + n
        return date(months // 12, months % 12 + 1, 1)
    return date(day.year + n, 1, 1)


def _ceil(day: date, granularity: str) -> date:
    floor = _floor(day, granularity)
    return floor if floor == day else _shift(floor, granularity, 1)


def _label(day: date, granularity: str) -> str:
    if granularity == "month":
        return f"{day.year:04d}-{day.month:02d}"
    if granularity == "year":
        return f"{day.year:04d}"
    return day.isoformat()


def _count(first: date, end: date, granularity: str) -> int:
    if granularity == "day":
        return end.toordinal() - first.toordinal()
    if granularity == "month":
        return (end.year - first.year) * 12 + end.month - first.month
    return end.year - first.year


def period_range(granularity: str, start: date | None, end: date | None, today: date) -> tuple[date, date]:
    """``[first_day, end_day)`` of the request: bounds widened to whole periods, defaults filled in
    (see the module's decisions); InvalidQuery (400) for an unknown granularity, an empty or
    reversed range, or more than :data:`MAX_PERIODS` periods."""
    if granularity not in GRANULARITIES:
        raise InvalidQuery(f"Unknown granularity {granularity!r}: use one of {', '.join(GRANULARITIES)}")
    n, most = DEFAULT_PERIODS[granularity], MAX_PERIODS[granularity]
    asked = {
        "start": None if start is None else start.isoformat(),
        "end": None if end is None else end.isoformat(),
    }
    try:
        if start is None and end is None:
            last = _floor(today, granularity)
            first, stop = _shift(last, granularity, 1 - n), _shift(last, granularity, 1)
        elif start is None:
            stop = _ceil(end, granularity)  # type: ignore[arg-type]
            first = _shift(stop, granularity, -n)
        elif end is None:
            first = _floor(start, granularity)
            stop = _shift(first, granularity, n)
        else:
            first, stop = _floor(start, granularity), _ceil(end, granularity)
    except (OverflowError, ValueError):
        raise InvalidQuery("The range reaches beyond the calendar (years 1 to 9999)", asked) from None
    if (start is not None and end is not None and end <= start) or stop <= first:
        raise InvalidQuery("The end of the range must be after its start", asked)
    if _count(first, stop, granularity) > most:
        raise InvalidQuery(
            f"At most {most} periods of a {granularity} per request",
            {**asked, "granularity": granularity, "periods": _count(first, stop, granularity)},
        )
    return first, stop


# -- use case --------------------------------------------------------------------------------------
def site_energy(
    services: Services,
    site_id: int,
    granularity: str = "day",
    start: date | None = None,
    end: date | None = None,
) -> Energy:
    """A site's energy per local period (SiteNotFound, InvalidQuery: see :func:`period_range`)."""
    if granularity not in GRANULARITIES:
        raise InvalidQuery(f"Unknown granularity {granularity!r}: use one of {', '.join(GRANULARITIES)}")
    site = services.sites.find_by_id(site_id)
    if site is None:
        raise SiteNotFound(site_id)
    tz_name = site.timezone or services.settings.default_timezone
    tz = zone(tz_name)
    today = utcnow().astimezone(tz).date()
    first, stop = period_range(granularity, start, end, today)
    try:  # every day between lies between these two
        local_day_bounds(first, tz), local_day_bounds(stop, tz)
    except ValueError:
        raise InvalidQuery(
            "The range reaches beyond the calendar (years 1 to 9999)",
            {"start": first.isoformat(), "end": stop.isoformat()},
        ) from None
    days = day_figures(services, site_id, tz, first, stop)
    periods = []
    lo = first
    while lo < stop:
        hi = _shift(lo, granularity, 1)
        chunk = list(islice(days, _count(lo, hi, "day")))
        periods.append(_period(_label(lo, granularity), lo, hi, chunk, site.capacity))
        lo = hi
    return Energy(site_id, tz_name, tz, granularity, first, stop, site.capacity, periods)


def _period(label: str, first: date, stop: date, days: list[DayFigures], capacity: float) -> Period:
    """Adds up the local days ``[first, stop)`` of a period (``days``, in order)."""
    peak: DayFigures | None = None
    for day in days:
        if day.peak is not None and (peak is None or peak.peak is None or day.peak > peak.peak):
            peak = day
    return Period(
        label,
        first,
        stop,
        days[0].start_ms,
        days[-1].end_ms,
        sum(d.count for d in days),
        _sum(d.wh_generated for d in days),
        _sum(d.wh_used for d in days),
        None if peak is None else peak.peak,
        None if peak is None else peak.peak_ms,
        capacity,
    )


def _sum(values: Iterable[float]) -> float:
    """Added in order from 0.0 (as the days were: not ``math.fsum``, so a month is its days' sum)."""
    total = 0.0
    for v in values:
        total += v
    return total


# -- the data --------------------------------------------------------------------------------------
def day_figures(
    services: Services, site_id: int, tz: tzinfo, first_day: date, end_day: date
) -> Iterator[DayFigures]:
    """Every local day ``[first_day, end_day)`` of the site in ``tz``, in order, one per day (with
    or without readings): the history's day rollups (:meth:`~redisolar.dao.history.HistoryDao.days`,
    written at ingest, kept ``HISTORY_DAYS``), read :data:`~redisolar.dao.history.DAY_BLOCK` days
    at a time; a day without a rollup has no readings (its bounds from ``tz``)."""
    history = services.timeseries.history
    number, stop = day_number(first_day), day_number(end_day)
    first = number
    starts = day_starts(tz, number, stop + 1)
    while number < stop:
        page_end = min(stop, number + DAY_BLOCK)
        found = {d.day: d for d in history.days(site_id, day_date(number), day_date(page_end))}
        for n in range(number, page_end):
            day = day_date(n)
            rollup = found.get(day)
            if rollup is None:
                yield DayFigures(day, starts[n - first], starts[n - first + 1])
                continue
            gen = rollup.wh_generated
            yield DayFigures(
                day,
                rollup.start_ms,
                rollup.end_ms,
                rollup.count,
                gen.sum,
                rollup.wh_used.sum,
                gen.max,
                rollup.peak_ms,
            )
        number = page_end


def day_starts(tz: tzinfo, first: int, stop: int) -> list[int]:
    """The first instant (ms) of each local day numbered ``first .. stop - 1`` in ``tz``: what
    :func:`~redisolar.localtime.local_day_bounds` answers, from the zone's offset history read once
    (:func:`~redisolar.localtime.transitions`, cached) instead of sampled around every day, so 50
    years of days take milliseconds, not tens of seconds. Off that history's years (1..9999 with a
    year's margin), day by day."""
    lo_year, hi_year = day_date(first).year - 1, day_date(stop).year + 2
    if lo_year < 1 or hi_year > 9999:
        return [local_day_bounds(n, tz)[0] for n in range(first, stop)]
    pieces = transitions(tz, lo_year, hi_year)
    out, i = [], 0
    for n in range(first, stop):
        midnight = n * DAY_MS
        # the first piece whose wall time reaches the day (pieces and answers only move forward)
        while i + 1 < len(pieces) and pieces[i + 1][0] + pieces[i][1] <= midnight:
            i += 1
        start, offset = pieces[i]
        out.append(max(start, midnight - offset) if i else midnight - offset)
    return out


# -- the answer ------------------------------------------------------------------------------------
def as_dict(energy: Energy) -> dict[str, Any]:
    """The API's body of ``energy`` (:class:`redisolar.api.schemas.EnergySchema`)."""
    return {
        "site_id": energy.site_id,
        "timezone": energy.timezone,
        "granularity": energy.granularity,
        "start": energy.first_day.isoformat(),
        "end": energy.end_day.isoformat(),
        "capacity_kw": energy.capacity_kw,
        "count": len(energy.periods),
        "periods": [_period_dict(p, energy.tz) for p in energy.periods],
    }


def _period_dict(p: Period, tz: tzinfo) -> dict[str, Any]:
    peak_at = p.peak_ms
    return {
        "period": p.label,
        "start": _utc_iso(p.start_ms),
        "start_local": _local_iso(p.start_ms, tz),
        "end": _utc_iso(p.end_ms),
        "end_local": _local_iso(p.end_ms, tz),
        "hours": p.hours,
        "count": p.count,
        "wh_generated": p.wh_generated,
        "wh_used": p.wh_used,
        "wh_net": p.wh_net,
        "peak_wh": p.peak,
        "peak_time": None if peak_at is None else _utc_iso(peak_at),
        "peak_time_local": None if peak_at is None else _local_iso(peak_at, tz),
        "capacity_factor_percent": p.capacity_factor_percent,
        "specific_yield_kwh_per_kwp": p.specific_yield,
    }


def _local_iso(ms: int, tz: tzinfo) -> str:
    """``ms`` as ISO 8601 in ``tz`` (with its offset), to the millisecond."""
    return from_ms(ms).astimezone(tz).isoformat(timespec="milliseconds")


def _utc_iso(ms: int) -> str:
    """``ms`` as ISO 8601 in UTC (``+00:00``), to the millisecond."""
    return from_ms(ms).isoformat(timespec="milliseconds")
