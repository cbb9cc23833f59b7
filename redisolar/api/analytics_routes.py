"""Readings, analytics, leaderboards and the fleet summary (the seed's Step 7): ``/api/analytics/...``.

Paths, methods, success codes and shapes are the seed's. Decisions where it shows none:

- Readings: the body's ``site_id`` may be left out (the path says which site); if given it must equal
  the path's, else 400. The site must exist (404). Validation comes first, then the site check, then
  one all-or-nothing write: a reading older than the retention window (counted back from the site's
  newest reading) is a 400 that says so, and nothing of its batch is stored.
- A batch is a JSON array of 1 to ``MAX_BATCH_READINGS`` readings (more: 413); ``count`` is the number
  of readings stored (a timestamp repeated within the batch counts once, the last one wins).
- Time ranges are ``[start, end)``; ``end`` defaults to now and ``start`` to 24 hours before ``end``
  (each on its own); ``start`` must be before ``end`` (400). ``bucket_size`` applies to aggregations
  and is answered as ``null`` for ``raw``.
- Leaderboards take ``limit`` 1..100 (more is a 400, not clamped), ``offset`` and ``day`` (a UTC day
  for generation/efficiency; ignored by capacity, answered as ``day: null``).
- ``POST /leaderboards/update`` runs the reconciler now and answers 200 with its report; when another
  process holds the reconciler's lock it answers 202 with ``report: null`` (that run does the work).
- ``GET /summary`` may be cached for ``SUMMARY_CACHE_SECONDS`` per process.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import date
from typing import Any

from flask import current_app, request

from redisolar.api.common import Blueprint, services, time_range
from redisolar.api.errors import NoData
from redisolar.api.fast_readings import fast_records
from redisolar.api.schemas import (
    DayArgs,
    LatestReadingsSchema,
    LeaderboardArgs,
    LeaderboardSchema,
    LeaderboardUpdateSchema,
    PositionArgs,
    RangeArgs,
    ReadingBatchItemSchema,
    ReadingCreatedSchema,
    ReadingInSchema,
    ReadingsAddedSchema,
    SeriesArgs,
    SeriesSchema,
    SitePositionSchema,
    SummarySchema,
)
from redisolar.auth.checks import known_site_existence
from redisolar.dao.key_manager import LEADERBOARD_TYPES
from redisolar.errors import InvalidInput, InvalidQuery, InvalidReading, SiteNotFound
from redisolar.models.schemas import SiteAnalyticsSchema
from redisolar.models.site import MeterReading, MetricType, SiteAnalytics
from redisolar.timeutil import utcnow

analytics_bp = Blueprint(
    "analytics", __name__, url_prefix="/api/analytics",
    description="Meter readings, analytics, leaderboards and the fleet summary (Lesson 3)",
)  # fmt: skip


def _path_choice(name: str, values: tuple[str, ...], what: str) -> dict[str, Any]:
    """The documentation of a path segment that takes one of ``values`` (any other is a 400)."""
    return {
        "in": "path",
        "name": name,
        "required": True,
        "description": f"{what}: one of {', '.join(values)} (any other value is a 400)",
        "schema": {"type": "string", "enum": list(values)},
    }


METRIC_PARAMETER = _path_choice("metric", tuple(m.value for m in MetricType), "The metric")
BOARD_PARAMETER = _path_choice("leaderboard_type", LEADERBOARD_TYPES, "The leaderboard")


# -- helpers ---------------------------------------------------------------------------------------
def _require_site(site_id: int) -> None:
    exists = known_site_existence(site_id)  # read with the request's key check, if there was one
    if not (services().sites.exists(site_id) if exists is None else exists):
        raise SiteNotFound(site_id)


def _reading(site_id: int, data: dict[str, Any]) -> MeterReading:
    try:
        return MeterReading(**{**data, "site_id": site_id})
    except ValueError as exc:
        raise InvalidReading("Validation failed", {"_schema": [exc.args[0]]}) from None


def _site_id_errors(site_id: int, item: dict[str, Any]) -> dict[str, list[str]]:
    """The validation messages of a body's ``site_id``: it must be absent or the path's."""
    if item.get("site_id") in (None, site_id):
        return {}
    return {"site_id": [f"Must equal the site id of the path ({site_id})."]}


def _check_site_ids(site_id: int, items: list[dict[str, Any]]) -> None:
    """400 unless every batch item's ``site_id`` is absent or the path's (details keyed by index)."""
    wrong = {str(i): errors for i, item in enumerate(items) if (errors := _site_id_errors(site_id, item))}
    if wrong:
        raise InvalidInput("Validation failed", wrong)


def _metric(metric: str) -> MetricType:
    try:
        return MetricType(metric)
    except ValueError:
        valid = ", ".join(m.value for m in MetricType)
        raise InvalidQuery(f"Invalid metric: {metric} (use one of {valid})") from None


def _leaderboard_type(leaderboard_type: str) -> str:
    if leaderboard_type not in LEADERBOARD_TYPES:
        raise InvalidQuery(
            f"Invalid leaderboard type: {leaderboard_type}. Must be one of: {', '.join(LEADERBOARD_TYPES)}"
        )
    return leaderboard_type


def _board_day(leaderboard_type: str, day: date | None) -> date | None:
    """The day a board request is about: None for capacity, else ``day`` or today (UTC)."""
    if leaderboard_type == "capacity":
        return None
    return day or utcnow().date()


# -- readings --------------------------------------------------------------------------------------
@analytics_bp.route("/readings/<site_id:site_id>", methods=["POST"])
@analytics_bp.arguments(ReadingInSchema, description="One reading (`site_id` optional)")
@analytics_bp.response(201, ReadingCreatedSchema)
@analytics_bp.errors(404, 413, 415)
def add_meter_reading(data: dict[str, Any], site_id: int) -> dict[str, Any]:
    """Store a meter reading (a re-sent reading replaces the stored one)."""
    errors = _site_id_errors(site_id, data)
    if errors:
        raise InvalidInput("Validation failed", errors)
    reading = _reading(site_id, data)
    _require_site(site_id)
    services().timeseries.add_reading(reading)
    return {"message": f"Reading added for site {site_id}", "reading": reading}


def fast_batch(view: Callable[..., Any]) -> Callable[..., Any]:
    """Serve a batch whose body passes the compiled fast rules (:mod:`redisolar.api.fast_readings`)
    straight to storage; anything else goes to ``view``, whose schema validates it and words the
    errors. Same answers, a fraction of the cost per reading."""

    @functools.wraps(view)
    def serve(site_id: int) -> Any:
        if request.mimetype == "application/json":
            limit = current_app.config["MAX_BATCH_READINGS"]
            records = fast_records(request.get_data(cache=True), site_id, limit)
            if records is not None:
                _require_site(site_id)
                count = services().timeseries.add_validated_records({site_id: records})
                body = {"message": f"Added {count} readings for site {site_id}", "count": count}
                return current_app.json.response(body), 201
        return view(site_id=site_id)

    return serve


@analytics_bp.route("/readings/<site_id:site_id>/batch", methods=["POST"])
@fast_batch
@analytics_bp.arguments(
    ReadingBatchItemSchema(many=True), description="An array of 1 to MAX_BATCH_READINGS (10000) readings"
)
@analytics_bp.response(201, ReadingsAddedSchema)
@analytics_bp.errors(404, 413, 415)
def add_meter_readings_batch(items: list[dict[str, Any]], site_id: int) -> dict[str, Any]:
    """Store many readings of one site, all or nothing (validation errors are keyed by item index)."""
    _check_site_ids(site_id, items)
    readings = [_reading(site_id, item) for item in items]
    _require_site(site_id)
    count = services().timeseries.add_readings_batch(readings)
    return {"message": f"Added {count} readings for site {site_id}", "count": count}


@analytics_bp.route("/readings/<site_id:site_id>/latest", methods=["GET"])
@analytics_bp.response(200, LatestReadingsSchema)
@analytics_bp.errors(404)
def get_latest_readings(site_id: int) -> dict[str, Any]:
    """The newest reading of every metric of a site (one round trip)."""
    _require_site(site_id)
    latest = services().timeseries.get_latest_readings(site_id)
    return {"site_id": site_id, "latest_readings": {m.value: point for m, point in latest.items()}}


@analytics_bp.route(
    "/readings/<site_id:site_id>/<other_than(batch):metric>", methods=["GET"], parameters=[METRIC_PARAMETER]
)
@analytics_bp.arguments(SeriesArgs, location="query")
@analytics_bp.response(200, SeriesSchema)
@analytics_bp.errors(404)
def get_site_readings(args: dict[str, Any], site_id: int, metric: str) -> dict[str, Any]:
    """One metric of a site over a time range: raw readings, or aggregated in buckets.

    `metric` is one of wh_generated, wh_used, temp_c, net_generation (else 400).
    """
    metric_type = _metric(metric)
    start, end = time_range(args)
    _require_site(site_id)
    aggregation, bucket = args["aggregation"], args["bucket_size"]
    timeseries = services().timeseries
    if aggregation == "raw":
        points = timeseries.get_readings_range(site_id, metric_type, start, end)
    else:
        points = timeseries.get_aggregated_data(site_id, metric_type, start, end, bucket, aggregation)
    return {
        "site_id": site_id,
        "metric": metric_type.value,
        "start_time": start,
        "end_time": end,
        "aggregation": aggregation,
        "bucket_size": None if aggregation == "raw" else bucket,
        "count": len(points),
        "data": points,
    }


# -- analytics -------------------------------------------------------------------------------------
@analytics_bp.route("/analytics/<site_id:site_id>", methods=["GET"])
@analytics_bp.arguments(RangeArgs, location="query")
@analytics_bp.response(200, SiteAnalyticsSchema)
@analytics_bp.errors(404)
def get_site_analytics(args: dict[str, Any], site_id: int) -> SiteAnalytics:
    """Totals, extremes and the capacity factor of a site over a time range.

    404 with the seed's `message` when the range holds no reading.
    """
    start, end = time_range(args)
    _require_site(site_id)
    analytics = services().timeseries.get_site_analytics(site_id, start, end)
    if analytics is None:
        raise NoData(
            f"No data available for site {site_id} in the specified time range",
            {"site_id": site_id, "start": start.isoformat(), "end": end.isoformat()},
        )
    return analytics


# -- leaderboards ----------------------------------------------------------------------------------
@analytics_bp.route(
    "/leaderboards/<other_than(update):leaderboard_type>", methods=["GET"], parameters=[BOARD_PARAMETER]
)
@analytics_bp.arguments(LeaderboardArgs, location="query")
@analytics_bp.response(200, LeaderboardSchema)
@analytics_bp.errors()
def get_leaderboard(args: dict[str, Any], leaderboard_type: str) -> dict[str, Any]:
    """A page of a leaderboard: capacity (kW), or a UTC day's generation (Wh) or efficiency (%)."""
    kind = _leaderboard_type(leaderboard_type)
    day = _board_day(kind, args.get("day"))
    boards = services().leaderboards
    entries = boards.get_leaders(kind, args["limit"], args["offset"], day)
    return {
        "leaderboard_type": kind,
        "day": day,
        "entries": entries,
        "stats": boards.get_leaderboard_stats(kind, day),
    }


@analytics_bp.route(
    "/leaderboards/<leaderboard_type>/site/<site_id:site_id>", methods=["GET"], parameters=[BOARD_PARAMETER]
)
@analytics_bp.arguments(PositionArgs, location="query")
@analytics_bp.response(200, SitePositionSchema)
@analytics_bp.errors(404)
def get_site_leaderboard_info(args: dict[str, Any], leaderboard_type: str, site_id: int) -> dict[str, Any]:
    """A site's rank and score in a leaderboard, with `context` neighbours on each side.

    404 "Site N not found" for an unknown site; 404 with the seed's `message` when the site is not
    on the board.
    """
    kind = _leaderboard_type(leaderboard_type)
    day = _board_day(kind, args.get("day"))
    _require_site(site_id)
    boards = services().leaderboards
    surrounding = boards.get_sites_around_rank(site_id, kind, args["context"], day)
    mine = [entry for entry in surrounding if entry.site.id == site_id]
    if not mine:
        raise NoData(
            f"Site {site_id} not found in {kind} leaderboard",
            {"site_id": site_id, "leaderboard_type": kind, "day": day.isoformat() if day else None},
        )
    return {
        "site_id": site_id,
        "leaderboard_type": kind,
        "day": day,
        "rank": mine[0].rank,
        "score": mine[0].score,
        "surrounding_sites": surrounding,
    }


@analytics_bp.route("/leaderboards/update", methods=["POST"])
@analytics_bp.arguments(DayArgs, location="query")
@analytics_bp.response(200, LeaderboardUpdateSchema)
@analytics_bp.alt_response(202, schema=LeaderboardUpdateSchema, description="Another process is reconciling")
@analytics_bp.errors()
def update_leaderboards(args: dict[str, Any]) -> tuple[dict[str, Any], int] | dict[str, Any]:
    """Reconcile the leaderboards now (capacity, and a day's generation and efficiency; default today).

    200 with the report; 202 with `report: null` when another process holds the reconciler's lock.
    """
    report = services().updater.update_all_leaderboards(args.get("day"))
    if report is None:
        message = "A leaderboard update is already running in another process; it will do this work"
        return {"message": message, "report": None}, 202
    return {"message": "Leaderboards updated successfully", "report": asdict(report)}


# -- summary ---------------------------------------------------------------------------------------
@analytics_bp.route("/summary", methods=["GET"])
@analytics_bp.response(200, SummarySchema)
@analytics_bp.errors()
def get_analytics_summary() -> dict[str, Any]:
    """The fleet over the last 24 hours: sites, active sites, capacity, generation, capacity factor.

    Without sites: `{"message": "No sites available", "total_sites": 0}`.
    """
    summary = _cached_summary()
    if summary["total_sites"] == 0:
        return {"message": "No sites available", "total_sites": 0}
    return {"summary": summary}


def _cached_summary() -> dict[str, Any]:
    """``Services.summary()``, kept for ``SUMMARY_CACHE_SECONDS`` (0: not kept) in this process."""
    ttl = current_app.config["SUMMARY_CACHE_SECONDS"]
    if not ttl:
        return services().summary()
    cache: dict[str, Any] = current_app.extensions["redisolar.summary_cache"]
    now = time.monotonic()
    hit = cache.get("summary")
    if hit is not None and hit[0] > now:
        return hit[1]
    summary = services().summary()
    cache["summary"] = (now + ttl, summary)
    return summary
