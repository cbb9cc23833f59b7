"""Ingest: store meter readings and keep the state derived from them current (one use case, shared
by the REST API and the CLI).

Two round trips whatever the batch, as long as it stays clear of the retention window's edge:

1. the series write (:meth:`TimeSeriesDao.write_records`): one atomic, single-slot script per site,
   which refuses a site that does not exist (``require_sites``) without writing anything and returns
   the site's new data version, followed in the same pipeline by its history rollup
   (``history_set.lua``), whose reply is the one computation of the absolute generation totals of
   every UTC hour the write touched and every local day those hours touch (a day's sum: its hours'
   sums in time order, the energy endpoint's figure);
2. the derived state, from those absolute, versioned totals (a retried or repeated update changes
   nothing), each family through its owner: the day leaderboards (:class:`DailyBoards`), the fleet's
   hourly rollup and last-seen (:class:`FleetHours`). Every call is single-slot and declares its keys;
   with ``FLEET_SHARDS`` > 1 each goes to the written site's part. A third round trip follows only
   when that one asks for it: the first write of a day's board (part) adds the day to the index of
   days (once a day, not per reading); a site moved in a board's top 10 (``rank`` events,
   :mod:`redisolar.dao.daily_boards`); an alert opened or resolved at ingest (its index and events,
   :mod:`redisolar.alerts.at_ingest`).

A site's readings are written before its derived state: a crash in between leaves the derived state
behind the readings, which the reconcilers rebuild (:mod:`redisolar.tasks.leaderboard_updater`,
:meth:`TimeSeriesDao.rebuild_fleet_hours`). When a site's script refuses its part (a missing site, or
another writer advanced its retention window), the other sites' parts are stored with their derived
state, then the first refusal is raised (:class:`SiteNotFound` → 404, :class:`InvalidReading` → 400).
The derived-state round trip also appends one ``reading`` event per written site to the event stream
(:func:`redisolar.events.reading_calls`; ``GET /api/events``, :mod:`redisolar.events`) and runs the
alert rules that the posted readings decide (:func:`redisolar.alerts.at_ingest.ingest_checks`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from redisolar.alerts.at_ingest import IngestChecks, ingest_checks
from redisolar.dao.daily_boards import DayCalls
from redisolar.dao.scripts import ScriptCall, run_scripts
from redisolar.dao.timeseries.base import Record, WriteOutcome
from redisolar.dao.timeseries_dao import TimeSeriesDao, group_readings
from redisolar.events import reading_calls
from redisolar.models.site import MeterReading

if TYPE_CHECKING:
    from redisolar.services import Services


def ingest(services: Services, by_site: dict[int, list[Record]]) -> int:
    """Store readings of registered sites, given per site as ``(ms, wh_generated, wh_used, temp_c)``
    records sorted by time with unique timestamps (validated as :class:`MeterReading` validates
    them), and keep the derived state current. Returns the number of readings stored.

    Raises :class:`~redisolar.errors.InvalidReading` before writing anything when a reading is older
    than its site's retention window; :class:`~redisolar.errors.SiteNotFound` when a site does not
    exist (checked inside that site's write, which writes nothing).
    """
    return ingest_records(services.timeseries, by_site, require_sites=True)


def ingest_readings(services: Services, readings: Iterable[MeterReading]) -> int:
    """As :func:`ingest`, for :class:`MeterReading` objects of any sites (the last of equal
    timestamps of a site kept)."""
    return ingest(services, group_readings(readings))


def ingest_records(
    series: TimeSeriesDao, by_site: dict[int, list[Record]], *, require_sites: bool = True
) -> int:
    """The use case on a time-series DAO (and the derived-state owners built on its client): the
    series write, then the derived state of the sites written, then the first refusal, if any.
    ``require_sites=False`` is the seed's DAO contract (readings of unregistered sites are stored)."""
    written = series.write_records(by_site, require_sites=require_sites)
    if written.outcomes:
        checks = ingest_checks(series, by_site, written.outcomes, require_sites)  # alert rules at ingest
        write_derived(series, written.outcomes, reading_calls(series.keys, by_site, written.outcomes), checks)
    written.raise_first_error()
    return written.stored


def write_derived(
    series: TimeSeriesDao,
    outcomes: list[WriteOutcome],
    events: Sequence[ScriptCall] = (),
    checks: IngestChecks | None = None,
) -> None:
    """Set the written sites' day board scores, fleet hour entries and last-seen from the absolute
    totals their scripts returned, and run ``events`` (the written sites' event calls) and the alert
    ``checks`` (:mod:`redisolar.alerts.at_ingest`), in one round trip; a second one follows only when
    needed: once a day per board part to add a day whose board that round trip created to the index
    of days, when a site's rank moved (``rank`` events), when an alert opened or resolved."""
    boards = board_calls(series, outcomes)
    alerts = checks.calls if checks is not None else []
    replies = run_scripts(series.redis, [*boards.calls, *fleet_calls(series, outcomes), *events, *alerts])
    later = series.boards.follow_up_calls(boards, replies[: len(boards.calls)])
    if checks is not None:
        later += checks.follow_up(replies[len(replies) - len(alerts) :])
    if later:
        run_scripts(series.redis, later)


def fleet_calls(series: TimeSeriesDao, outcomes: list[WriteOutcome]) -> list[ScriptCall]:
    """The calls setting the written sites' fleet hour entries and last-seen (one per hour and part
    touched, one per last-seen part)."""
    fleet = series.fleet.calls(
        (o.site_id, hour, o.version, total) for o in outcomes for hour, total in o.hour_sums.items()
    )
    return [*fleet, *series.fleet.last_seen_calls((o.site_id, o.newest) for o in outcomes)]


def derived_calls(series: TimeSeriesDao, outcomes: list[WriteOutcome]) -> list[ScriptCall]:
    """The per-reading derived calls of :func:`write_derived` (day boards, fleet hours, last-seen),
    without the once-a-day index of days (``bench/capacity.py`` measures them one by one)."""
    return [*board_calls(series, outcomes).calls, *fleet_calls(series, outcomes)]


def board_calls(series: TimeSeriesDao, outcomes: list[WriteOutcome]) -> DayCalls:
    """The calls setting the written sites' day board scores from the day totals their writes
    returned (with each local day's length in hours for the capacity factor)."""
    return series.boards.calls(
        (o.site_id, day, o.version, total, o.capacity, o.day_hours.get(day, 24.0))
        for o in outcomes
        for day, total in o.day_sums.items()
    )
