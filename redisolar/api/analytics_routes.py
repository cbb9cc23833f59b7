"""Readings, analytics, leaderboards and the fleet summary (the seed's Step 7): ``/api/analytics/...``.

Paths, methods, success codes and shapes are the seed's. Decisions where it shows none:

- Readings: the body's ``site_id`` may be left out (the path says which site); if given it must equal
  the path's, else 400. Validation comes first (:mod:`redisolar.api.fast_readings`), then one
  all-or-nothing write (:func:`redisolar.services.ingest.ingest`), which refuses a site that does not
  exist (404) and a reading older than the retention window (counted back from the site's newest
  reading: a 400 that says so); nothing of a refused batch is stored.
- A batch is a JSON array of 1 to ``MAX_BATCH_READINGS`` readings (more: 413); ``count`` is the number
  of readings stored (a timestamp repeated within the batch counts once, the last one wins).
- Every response about one site carries the site's IANA ``timezone`` (its own, else
  ``DEFAULT_TIMEZONE``), read with the data in the same round trip; timestamps stay UTC.
- Beyond the raw window (``RETENTION_DAYS`` back from the site's newest reading) aggregations with
  buckets of whole hours and site analytics are answered from the hourly rollups; a raw range or a
  finer bucket reaching there is a 400 naming the window's start.
- Time ranges are ``[start, end)``; ``end`` defaults to now and ``start`` to 24 hours before ``end``
  (each on its own); ``start`` must be before ``end`` (400). ``bucket_size`` applies to aggregations
  and is answered as ``null`` for ``raw``.
- Leaderboards take ``limit`` 1..100 (more is a 400, not clamped), ``offset`` and ``day`` (a UTC day
  for generation/efficiency; ignored by capacity, answered as ``day: null``).
- ``POST /leaderboards/update`` runs the reconciler now and answers 200 with its report; when another
  process holds the reconciler's lock it answers 202 with ``report: null`` (that run does the work).
- ``GET /summary`` may be cached for ``SUMMARY_CACHE_SECONDS`` per process.
- ``GET /energy/<id>`` answers every local period of the range (:mod:`redisolar.services.energy`).
- ``GET /readings/<id>/export`` streams (:mod:`redisolar.services.export`): the request and the site
  are checked before the first byte (400/404 as JSON); a failure after that (Redis gone mid-export)
  can only cut the response short, which the client sees as a truncated transfer.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Response, current_app, stream_with_context

from redisolar.api import render
from redisolar.api.common import Blueprint, json_body, services, time_range
from redisolar.api.errors import NoData
from redisolar.api.fast_readings import read_batch, read_reading
from redisolar.api.schemas import (
    DayArgs,
    EnergyArgs,
    EnergySchema,
    ExportArgs,
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
    SiteAnalyticsResponseSchema,
    SitePositionSchema,
    SummarySchema,
)
from redisolar.auth.checks import known_site_existence
from redisolar.dao.key_manager import LEADERBOARD_TYPES
from redisolar.errors import InvalidQuery
from redisolar.models.site import MetricType
from redisolar.services import analytics, energy, leaderboards
from redisolar.services import summary as fleet
from redisolar.services.export import CONTENT_TYPES, ExportRequest, open_site_export
from redisolar.services.ingest import ingest

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


def _metric(metric: str) -> MetricType:
    try:
        return MetricType(metric)
    except ValueError:
        valid = ", ".join(m.value for m in MetricType)
        raise InvalidQuery(f"Invalid metric: {metric} (use one of {valid})") from None


# -- readings --------------------------------------------------------------------------------------
@analytics_bp.route("/readings/<site_id:site_id>", methods=["POST"])
@analytics_bp.body(ReadingInSchema, description="One reading (`site_id` optional)")
@analytics_bp.response(201, ReadingCreatedSchema)
@analytics_bp.errors(404, 413, 415)
def add_meter_reading(site_id: int) -> Response:
    """Store a meter reading (a re-sent reading replaces the stored one)."""
    reading = read_reading(json_body(), site_id)
    ingest(services(), {site_id: [reading.record]})  # 404 from the write itself: site_id unknown
    _, generated, used, temp = reading.record
    body = {"site_id": site_id, "timestamp": reading.timestamp.isoformat(),
            "wh_generated": generated, "wh_used": used, "temp_c": temp}  # fmt: skip
    return render.json_response({"message": f"Reading added for site {site_id}", "reading": body}, 201)


@analytics_bp.route("/readings/<site_id:site_id>/batch", methods=["POST"])
@analytics_bp.body(
    ReadingBatchItemSchema(many=True), description="An array of 1 to MAX_BATCH_READINGS (10000) readings"
)
@analytics_bp.response(201, ReadingsAddedSchema)
@analytics_bp.errors(404, 413, 415)
def add_meter_readings_batch(site_id: int) -> Response:
    """Store many readings of one site, all or nothing (validation errors are keyed by item index)."""
    records = read_batch(json_body(), site_id, current_app.config["MAX_BATCH_READINGS"])
    count = ingest(services(), {site_id: records})
    body = {"message": f"Added {count} readings for site {site_id}", "count": count}
    return render.json_response(body, 201)


@analytics_bp.route("/readings/<site_id:site_id>/latest", methods=["GET"])
@analytics_bp.response(200, LatestReadingsSchema)
@analytics_bp.errors(404)
def get_latest_readings(site_id: int) -> Response:
    """The newest reading of every metric of a site (one round trip)."""
    latest = analytics.latest_readings(services(), site_id, known=known_site_existence(site_id))
    points = {m.value: render.point(p) for m, p in latest.value.items()}
    return render.json_response({"site_id": site_id, "timezone": latest.timezone, "latest_readings": points})


EXPORT_RESPONSE = {
    "description": "The readings as a file (streamed): CSV with a header row, or NDJSON",
    "content": {
        CONTENT_TYPES["csv"].split(";")[0]: {"schema": {"type": "string"}},
        CONTENT_TYPES["ndjson"]: {"schema": {"type": "string"}},
    },
    "headers": {
        "Content-Disposition": {
            "description": "`attachment; filename=...` (site, range and resolution)",
            "schema": {"type": "string"},
            "required": True,
        }
    },
}


@analytics_bp.route("/readings/<site_id:site_id>/export", methods=["GET"])
@analytics_bp.arguments(ExportArgs, location="query")
@analytics_bp.doc(responses={200: EXPORT_RESPONSE})
@analytics_bp.errors(404)
def export_readings(args: dict[str, Any], site_id: int) -> Response:
    """A site's readings over a time range as a CSV or NDJSON file, raw or per hour / local day.

    UTC and site-local timestamps on every row; streamed, in constant memory whatever the range.
    """
    start, end = time_range(args)
    request = ExportRequest(start, end, args["format"], args["resolution"])
    export = open_site_export(services(), site_id, request)
    response = Response(stream_with_context(export.chunks), content_type=export.content_type)
    response.headers["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


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
    aggregation, bucket = args["aggregation"], args["bucket_size"]
    points = analytics.series(
        services(), site_id, metric_type, start, end, aggregation, bucket, known=known_site_existence(site_id)
    )
    return {
        "site_id": site_id,
        "timezone": points.timezone,
        "metric": metric_type.value,
        "start_time": start,
        "end_time": end,
        "aggregation": aggregation,
        "bucket_size": None if aggregation == "raw" else bucket,
        "count": len(points.value),
        "data": points.value,
    }


# -- analytics -------------------------------------------------------------------------------------
@analytics_bp.route("/analytics/<site_id:site_id>", methods=["GET"])
@analytics_bp.arguments(RangeArgs, location="query")
@analytics_bp.response(200, SiteAnalyticsResponseSchema)
@analytics_bp.errors(404)
def get_site_analytics(args: dict[str, Any], site_id: int) -> dict[str, Any]:
    """Totals, extremes and the capacity factor of a site over a time range, with its `timezone`.

    Beyond the raw window, from the hourly rollups (the same figures; the range's start, and its end
    when before the window, on whole UTC hours there, else 400). 404 with the seed's `message` when
    the range holds no reading.
    """
    start, end = time_range(args)
    about = analytics.site_analytics(services(), site_id, start, end, known=known_site_existence(site_id))
    result = about.value
    if result is None:
        raise NoData(
            f"No data available for site {site_id} in the specified time range",
            {"site_id": site_id, "start": start.isoformat(), "end": end.isoformat()},
        )
    return {**asdict(result), "timezone": about.timezone}


@analytics_bp.route("/energy/<site_id:site_id>", methods=["GET"])
@analytics_bp.arguments(EnergyArgs, location="query")
@analytics_bp.response(200, EnergySchema)
@analytics_bp.errors(404)
def get_site_energy(args: dict[str, Any], site_id: int) -> Response:
    """A site's energy per local day, month or year: generated, used, net, peak reading, count,
    capacity factor (real hours: 23/25 h days) and specific yield.

    Defaults: the last 30 days / 12 months / 5 years up to the current local period; at most 366
    days / 120 months / 50 years (400).
    """
    result = energy.site_energy(services(), site_id, args["granularity"], args.get("start"), args.get("end"))
    return render.json_response(energy.as_dict(result))


# -- leaderboards ----------------------------------------------------------------------------------
@analytics_bp.route(
    "/leaderboards/<other_than(update):leaderboard_type>", methods=["GET"], parameters=[BOARD_PARAMETER]
)
@analytics_bp.arguments(LeaderboardArgs, location="query")
@analytics_bp.response(200, LeaderboardSchema)
@analytics_bp.errors()
def get_leaderboard(args: dict[str, Any], leaderboard_type: str) -> Response:
    """A page of a leaderboard: capacity (kW), or a UTC day's generation (Wh) or efficiency (%)."""
    limit, offset, day = args["limit"], args["offset"], args.get("day")
    page = leaderboards.board_page(services(), leaderboard_type, limit, offset, day)
    return render.json_response(
        {
            "leaderboard_type": page.kind,
            "day": render.iso(page.day),
            "entries": [render.entry(e) for e in page.entries],
            "stats": render.board_stats(page.stats),
        }
    )


@analytics_bp.route(
    "/leaderboards/<leaderboard_type>/site/<site_id:site_id>", methods=["GET"], parameters=[BOARD_PARAMETER]
)
@analytics_bp.arguments(PositionArgs, location="query")
@analytics_bp.response(200, SitePositionSchema)
@analytics_bp.errors(404)
def get_site_leaderboard_info(args: dict[str, Any], leaderboard_type: str, site_id: int) -> Response:
    """A site's rank and score in a leaderboard, with `context` neighbours on each side.

    404 "Site N not found" for an unknown site; 404 with the seed's `message` when the site is not
    on the board.
    """
    day = args.get("day")
    known = known_site_existence(site_id)
    position = leaderboards.site_position(
        services(), leaderboard_type, site_id, args["context"], day, known=known
    )
    if position is None:
        kind = leaderboards.board_kind(leaderboard_type)
        when = leaderboards.position_day(services(), kind, site_id, day)
        raise NoData(
            f"Site {site_id} not found in {kind} leaderboard",
            {"site_id": site_id, "leaderboard_type": kind, "day": render.iso(when)},
        )
    return render.json_response(
        {
            "site_id": site_id,
            "leaderboard_type": position.kind,
            "day": render.iso(position.day),
            "timezone": position.timezone,
            "rank": position.rank,
            "score": float(position.score),
            "surrounding_sites": [render.entry(e) for e in position.surrounding],
        }
    )


@analytics_bp.route("/leaderboards/update", methods=["POST"])
@analytics_bp.arguments(DayArgs, location="query")
@analytics_bp.response(200, LeaderboardUpdateSchema)
@analytics_bp.alt_response(202, schema=LeaderboardUpdateSchema, description="Another process is reconciling")
@analytics_bp.errors()
def update_leaderboards(args: dict[str, Any]) -> tuple[dict[str, Any], int] | dict[str, Any]:
    """Reconcile the leaderboards now (capacity, and a day's generation and efficiency; default today).

    200 with the report; 202 with `report: null` when another process holds the reconciler's lock.
    """
    report = leaderboards.reconcile(services(), args.get("day"))
    if report is None:
        message = "A leaderboard update is already running in another process; it will do this work"
        return {"message": message, "report": None}, 202
    return {"message": "Leaderboards updated successfully", "report": asdict(report)}


# -- summary ---------------------------------------------------------------------------------------
@analytics_bp.route("/summary", methods=["GET"])
@analytics_bp.response(200, SummarySchema)
@analytics_bp.errors()
def get_analytics_summary() -> Response:
    """The fleet over the last 24 hours: sites, active sites, capacity, generation, capacity factor.

    Without sites: `{"message": "No sites available", "total_sites": 0}`.
    """
    summary = fleet.cached_fleet_summary(services())
    if summary["total_sites"] == 0:
        return render.json_response({"message": "No sites available", "total_sites": 0})
    return render.json_response({"summary": render.fleet_summary(summary)})
