"""The API's own schemas: query arguments, request bodies that differ from the models', and the
envelopes of responses. The models' schemas (:mod:`redisolar.models.schemas`) are used as they are;
the OpenAPI document is generated from both.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from redisolar.dao.key_manager import LEADERBOARD_TYPES
from redisolar.dao.site_dao_redis import GEO_MAX_LAT
from redisolar.dao.sites.pages import DEFAULT_MAP_LIMIT, DEFAULT_PAGE, MAX_MAP_LIMIT, MAX_PAGE, check_bbox
from redisolar.dao.timeseries.base import AGGREGATIONS
from redisolar.errors import InvalidQuery
from redisolar.models.schemas import (
    LeaderboardEntrySchema,
    MeterReadingSchema,
    SiteAnalyticsSchema,
    SiteSchema,
    TimeSeriesDataSchema,
)
from redisolar.models.site import MAX_SITE_ID
from redisolar.services.energy import DEFAULT_PERIODS, GRANULARITIES, MAX_PERIODS
from redisolar.services.export import FORMATS as EXPORT_FORMATS
from redisolar.services.export import RESOLUTIONS as EXPORT_RESOLUTIONS
from redisolar.timeutil import UTC, as_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FIRST_DAY = date(1970, 1, 2)
"""The first board day: a site-local day starts up to 14 hours before its UTC date (UTC+14)."""
LAST_DAY = date(9999, 12, 30)
"""The last board day: a site-local day may end up to 12 hours after its UTC date (UTC-12)."""
MAX_BUCKET_MS = 366 * 86_400_000
MAX_LEADERBOARD_PAGE = 100
MAX_SEARCH_PAGE = 1000
_SPACED_OFFSET = re.compile(r"^(.*T[\d:.]+) (\d{2}(?::?\d{2})?)$")


# -- fields ----------------------------------------------------------------------------------------
class UtcDateTime(fields.DateTime):
    """An ISO 8601 date-time, 1970 or later; naive means UTC; loaded as an aware UTC datetime.

    An offset whose ``+`` arrived as a space (an unencoded ``+`` in a query string) is read as ``+``.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        if isinstance(value, str):
            value = _SPACED_OFFSET.sub(r"\1+\2", value.strip())
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            result = as_utc(parsed)
        except OverflowError:
            raise ValidationError("Date-time out of range.") from None
        if result < EPOCH:
            raise ValidationError("Must not be before 1970-01-01T00:00:00Z.")
        return result


def _page_size(default: int, maximum: int, what: str) -> fields.Integer:
    return fields.Integer(
        load_default=default,
        validate=validate.Range(1, maximum),
        metadata={"description": f"How many {what} (1 to {maximum}, default {default})"},
    )


# -- query arguments -------------------------------------------------------------------------------
class RangeArgs(Schema):
    """A time range ``[start, end)``; by default the 24 hours before now."""

    start = UtcDateTime(metadata={"description": "ISO 8601; naive means UTC. Default: `end` - 24 h"})
    end = UtcDateTime(metadata={"description": "ISO 8601, exclusive; naive means UTC. Default: now"})


class SeriesArgs(RangeArgs):
    """A time range, and how to aggregate it."""

    aggregation = fields.String(
        load_default="raw",
        validate=validate.OneOf(("raw", *AGGREGATIONS)),
        metadata={"description": "`raw` (every reading) or a bucket aggregation"},
    )
    bucket_size = fields.Integer(
        load_default=3_600_000,
        validate=validate.Range(1, MAX_BUCKET_MS),
        metadata={"description": "Bucket width in ms, aligned to the epoch (aggregations only; default 1 h)"},
    )


class ExportArgs(RangeArgs):
    """A time range, the file format and the resolution of an export."""

    format = fields.String(
        load_default="csv",
        validate=validate.OneOf(EXPORT_FORMATS),
        metadata={"description": "`csv` (RFC 4180, a header row) or `ndjson` (one JSON object a line)"},
    )
    resolution = fields.String(
        load_default="raw",
        validate=validate.OneOf(EXPORT_RESOLUTIONS),
        metadata={
            "description": "`raw` (every reading), `hour` (UTC clock hours) or `day` (the site's local "
            "days); buckets are sums, temperature min/max/avg and counts, the range widened to whole buckets"
        },
    )


class EnergyArgs(Schema):
    """A granularity and a range of the site's local dates, end exclusive."""

    granularity = fields.String(
        load_default="day",
        validate=validate.OneOf(GRANULARITIES),
        metadata={"description": "`day`, `month` or `year`: the site's local calendar periods"},
    )
    start = fields.Date(
        validate=validate.Range(FIRST_DAY, LAST_DAY),
        metadata={
            "description": "First local date (YYYY-MM-DD), widened to the start of its period. Default: "
            + ", ".join(f"{n} {g}s" for g, n in DEFAULT_PERIODS.items())
            + " before `end` (with neither bound: ending with the current local period)"
        },
    )
    end = fields.Date(
        validate=validate.Range(FIRST_DAY, LAST_DAY),
        metadata={
            "description": "Local date after the last one (exclusive), widened to the end of its period. "
            "At most " + ", ".join(f"{n} {g}s" for g, n in MAX_PERIODS.items()) + " per request (400)"
        },
    )


class DayArgs(Schema):
    """A UTC day of the daily leaderboards."""

    day = fields.Date(
        validate=validate.Range(FIRST_DAY, LAST_DAY),
        metadata={
            "description": "Date of the generation/efficiency boards, each site's own local day "
            "(default today: the fleet's for a board, the site's own for a position), "
            f"{FIRST_DAY} to {LAST_DAY}; ignored by `capacity`"
        },
    )


class LeaderboardArgs(DayArgs):
    """A page of a leaderboard."""

    limit = _page_size(10, MAX_LEADERBOARD_PAGE, "entries")
    offset = fields.Integer(
        load_default=0, validate=validate.Range(0, 1_000_000), metadata={"description": "Entries to skip"}
    )


class PositionArgs(DayArgs):
    """How many neighbours to show around a site's rank."""

    context = fields.Integer(
        load_default=2,
        validate=validate.Range(0, 100),
        metadata={"description": "Neighbours on each side (0 to 100, default 2)"},
    )


class SearchArgs(Schema):
    """Site search filters (they AND together) and the page."""

    q = fields.String(metadata={"description": "Words; each must prefix a word of the address or city"})
    state = fields.String(metadata={"description": "Exact state, case-insensitive"})
    city = fields.String(metadata={"description": "Exact city, case-insensitive"})
    postal_code = fields.String(metadata={"description": "Exact postal code, case-insensitive"})
    min_capacity = fields.Float(metadata={"description": "Lowest capacity in kW (inclusive)"})
    max_capacity = fields.Float(metadata={"description": "Highest capacity in kW (inclusive)"})
    lat = fields.Float(
        validate=validate.Range(-GEO_MAX_LAT, GEO_MAX_LAT),
        metadata={"description": "Centre latitude (Redis can index ±85.05112878)"},
    )
    lng = fields.Float(validate=validate.Range(-180, 180), metadata={"description": "Centre longitude"})
    radius_km = fields.Float(
        validate=validate.Range(0, 20_100, min_inclusive=False),
        metadata={"description": "Radius in km; `lat`, `lng` and `radius_km` go together"},
    )
    limit = _page_size(100, MAX_SEARCH_PAGE, "sites")
    offset = fields.Integer(
        load_default=0, validate=validate.Range(0, 999_000), metadata={"description": "Matches to skip"}
    )

    @validates_schema
    def check_combinations(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [name for name in ("lat", "lng", "radius_km") if name in data]
        if given and len(given) < 3:
            raise ValidationError("lat, lng and radius_km must be given together.", "radius_km")
        low, high = data.get("min_capacity"), data.get("max_capacity")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be less than min_capacity.", "max_capacity")


def parse_cursor(value: str) -> int:
    """A page cursor as the id it stands for; :class:`ValidationError` unless it is one.

    Cursors are opaque to clients, who take them from the previous page's ``Link`` header. Today a
    cursor is the id of the last site of that page in decimal (``0`` starts at the first site).
    """
    if not (value.isascii() and value.isdigit() and len(value) <= 16 and int(value) <= MAX_SITE_ID):
        raise ValidationError("Not a valid cursor: give the one of the previous page's Link header.")
    return int(value)


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    """``west,south,east,north`` as four floats; :class:`ValidationError` unless a valid view."""
    try:
        west, south, east, north = (float(part) for part in value.split(","))
        bbox = (west, south, east, north)
        check_bbox(bbox)
    except InvalidQuery as exc:
        raise ValidationError(f"{exc.message}: west,south,east,north in degrees.") from None
    except ValueError:
        raise ValidationError("Must be four numbers: west,south,east,north in degrees.") from None
    return bbox


class SitePageArgs(Schema):
    """A page of sites by id: ``cursor`` and/or ``offset``, and ``limit``."""

    limit = _page_size(DEFAULT_PAGE, MAX_PAGE, "sites")
    cursor = fields.String(
        validate=parse_cursor,
        metadata={
            "description": "Where the page starts: the `cursor` of the previous page's `Link: <...>; "
            'rel="next"` header (opaque; today the last id of that page, so `cursor=ID` starts after '
            "the site ID)"
        },
    )
    offset = fields.Integer(
        load_default=0,
        validate=validate.Range(0, MAX_SITE_ID),
        metadata={"description": "Sites to skip (after `cursor` if given); the cost does not grow with it"},
    )

    @post_load
    def load_cursor(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "cursor" in data:
            data["cursor"] = parse_cursor(data["cursor"])
        return data


class MapArgs(Schema):
    """The view of a map, and how many sites it may show."""

    bbox = fields.String(
        validate=parse_bbox,
        metadata={
            "description": "`west,south,east,north` in degrees, -180 <= west < east <= 180, "
            f"-{GEO_MAX_LAT} <= south < north <= {GEO_MAX_LAT} (default: the whole world; a view across "
            "the antimeridian is two requests)",
            "example": "-125,24,-66,50",
        },
    )
    limit = _page_size(DEFAULT_MAP_LIMIT, MAX_MAP_LIMIT, "sites at most")

    @post_load
    def load_bbox(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if "bbox" in data:
            data["bbox"] = parse_bbox(data["bbox"])
        return data


# -- request bodies --------------------------------------------------------------------------------
_OPTIONAL_SITE_ID = {
    "strict": True,
    "load_default": None,
    "validate": validate.Range(min=1, max=MAX_SITE_ID),
    "metadata": {"description": "Optional; if given, it must equal the site id of the path"},
}


class ReadingInSchema(MeterReadingSchema):
    """A meter reading posted for the site of the path (``site_id`` may be left out).

    The documentation of the body: requests are checked by the compiled validator
    (:mod:`redisolar.api.fast_readings`, one definition of the same rules), never by this schema.
    """

    site_id = fields.Integer(**_OPTIONAL_SITE_ID)  # type: ignore[arg-type]

    @post_load
    def make_reading(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return data  # the view builds the MeterReading with the path's site id


class ReadingBatchItemSchema(ReadingInSchema):
    """One reading of a batch: the body is an array of 1 to ``MAX_BATCH_READINGS`` of them.

    Like :class:`ReadingInSchema`, it documents the shape; the compiled validator
    (:mod:`redisolar.api.fast_readings`) checks requests.
    """


class SiteUpdateSchema(SiteSchema):
    """A site's new details for the site of the path (``id`` may be left out)."""

    id = fields.Integer(**_OPTIONAL_SITE_ID)  # type: ignore[arg-type]

    @post_load
    def make_site(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return data  # the view builds the Site with the path's id


# -- responses: sites ------------------------------------------------------------------------------
class SiteSearchResultSchema(Schema):
    """One page of search results."""

    sites = fields.List(fields.Nested(SiteSchema), required=True)
    total = fields.Integer(required=True, metadata={"description": "All matches, before limit/offset"})
    limit = fields.Integer(required=True)
    offset = fields.Integer(required=True)


class MapSiteSchema(Schema):
    """A map marker."""

    id = fields.Integer(required=True)
    lat = fields.Float(required=True)
    lng = fields.Float(required=True)
    capacity = fields.Float(
        allow_none=True, required=True, metadata={"description": "kW; null while the site is being written"}
    )


class MapViewSchema(Schema):
    """The sites of a map view, by id."""

    sites = fields.List(fields.Nested(MapSiteSchema), required=True)
    truncated = fields.Boolean(
        required=True,
        metadata={
            "description": "The view holds more sites than `limit` (those shown are spread over it): zoom in"
        },
    )
    limit = fields.Integer(required=True)
    bbox = fields.List(fields.Float(), required=True, metadata={"description": "west, south, east, north"})


class StateStatsSchema(Schema):
    """The sites of one state."""

    sites = fields.Integer(required=True)
    capacity_kw = fields.Float(required=True)


class SitesStatsSchema(Schema):
    """Totals over every site."""

    total_sites = fields.Integer(required=True)
    total_capacity_kw = fields.Float(required=True)
    total_panels = fields.Integer(required=True)
    average_capacity_kw = fields.Float(required=True, metadata={"description": "0 without sites"})
    states = fields.Dict(
        keys=fields.String(),
        values=fields.Nested(StateStatsSchema),
        required=True,
        metadata={"description": "Per state, as the sites spell it"},
    )


# -- responses: readings and analytics ---------------------------------------------------------------
def site_timezone() -> fields.String:
    """The ``timezone`` field of a response about one site."""
    return fields.String(
        required=True,
        metadata={
            "description": "The site's IANA time zone (its own, else DEFAULT_TIMEZONE); times stay UTC"
        },
    )


class ReadingCreatedSchema(Schema):
    """A stored reading."""

    message = fields.String(required=True)
    reading = fields.Nested(MeterReadingSchema, required=True)


class ReadingsAddedSchema(Schema):
    """A stored batch."""

    message = fields.String(required=True)
    count = fields.Integer(
        required=True,
        metadata={"description": "Readings stored (a timestamp repeated in the batch counts once)"},
    )


class SeriesSchema(Schema):
    """Points of one metric of one site over ``[start_time, end_time)``."""

    site_id = fields.Integer(required=True)
    timezone = site_timezone()
    metric = fields.String(required=True)
    start_time = fields.DateTime(required=True)
    end_time = fields.DateTime(required=True)
    aggregation = fields.String(required=True)
    bucket_size = fields.Integer(allow_none=True, required=True, metadata={"description": "null for raw"})
    count = fields.Integer(required=True)
    data = fields.List(fields.Nested(TimeSeriesDataSchema), required=True)


class LatestReadingsSchema(Schema):
    """The newest point of each metric (metrics without readings are left out)."""

    site_id = fields.Integer(required=True)
    timezone = site_timezone()
    latest_readings = fields.Dict(
        keys=fields.String(), values=fields.Nested(TimeSeriesDataSchema), required=True
    )


class SiteAnalyticsResponseSchema(SiteAnalyticsSchema):
    """A site's analytics over ``[period_start, period_end)`` (the seed's shape) and its zone."""

    timezone = site_timezone()


class EnergyPeriodSchema(Schema):
    """One local day, month or year of a site (every period of the range, with or without readings)."""

    period = fields.String(required=True, metadata={"description": "2026-03-08, 2026-03 or 2026"})
    start = fields.String(required=True, metadata={"format": "date-time", "description": "UTC"})
    start_local = fields.String(
        required=True, metadata={"format": "date-time", "description": "Local midnight"}
    )
    end = fields.String(required=True, metadata={"format": "date-time", "description": "UTC, exclusive"})
    end_local = fields.String(required=True, metadata={"format": "date-time"})
    hours = fields.Float(required=True, metadata={"description": "Real length (23/25 h days across DST)"})
    count = fields.Integer(required=True, metadata={"description": "Readings"})
    wh_generated = fields.Float(required=True)
    wh_used = fields.Float(required=True)
    wh_net = fields.Float(required=True, metadata={"description": "Generated minus used"})
    peak_wh = fields.Float(
        allow_none=True, required=True, metadata={"description": "Largest wh_generated of one reading"}
    )
    peak_time = fields.String(allow_none=True, required=True, metadata={"format": "date-time"})
    peak_time_local = fields.String(allow_none=True, required=True, metadata={"format": "date-time"})
    capacity_factor_percent = fields.Float(
        required=True, metadata={"description": "100 × Wh / (kW × 1000 × hours)"}
    )
    specific_yield_kwh_per_kwp = fields.Float(required=True)


class EnergySchema(Schema):
    """A site's energy per local period over ``[start, end)`` (local dates, whole periods)."""

    site_id = fields.Integer(required=True)
    timezone = site_timezone()
    granularity = fields.String(required=True, validate=validate.OneOf(GRANULARITIES))
    start = fields.Date(required=True)
    end = fields.Date(required=True, metadata={"description": "Exclusive"})
    capacity_kw = fields.Float(required=True)
    count = fields.Integer(required=True, metadata={"description": "Periods"})
    periods = fields.List(fields.Nested(EnergyPeriodSchema), required=True)


# -- responses: leaderboards -----------------------------------------------------------------------
class LeaderboardStatsSchema(Schema):
    """Over the whole board (0s when it is empty)."""

    total_sites = fields.Integer(required=True)
    highest_score = fields.Float(required=True)
    lowest_score = fields.Float(required=True)
    average_score = fields.Float(required=True)


class LeaderboardSchema(Schema):
    """A page of a leaderboard, best first."""

    leaderboard_type = fields.String(required=True, validate=validate.OneOf(LEADERBOARD_TYPES))
    day = fields.Date(allow_none=True, required=True, metadata={"description": "null for capacity"})
    entries = fields.List(fields.Nested(LeaderboardEntrySchema), required=True)
    stats = fields.Nested(LeaderboardStatsSchema, required=True)


class SitePositionSchema(Schema):
    """A site's rank and score, with its neighbours (itself included)."""

    site_id = fields.Integer(required=True)
    leaderboard_type = fields.String(required=True)
    day = fields.Date(allow_none=True, required=True)
    timezone = site_timezone()
    rank = fields.Integer(required=True)
    score = fields.Float(required=True)
    surrounding_sites = fields.List(fields.Nested(LeaderboardEntrySchema), required=True)


class UpdateReportSchema(Schema):
    """What a reconcile did."""

    day = fields.Date(required=True)
    sites = fields.Integer(required=True)
    capacity_entries = fields.Integer(required=True)
    daily_scores_changed = fields.Integer(required=True)


class LeaderboardUpdateSchema(Schema):
    """The outcome of a reconcile request."""

    message = fields.String(required=True)
    report = fields.Nested(UpdateReportSchema, allow_none=True, required=True)


# -- responses: fleet --------------------------------------------------------------------------------
class FleetSummarySchema(Schema):
    """The fleet over the last 24 hours."""

    total_sites = fields.Integer(required=True)
    active_sites_24h = fields.Integer(required=True)
    total_capacity_kw = fields.Float(required=True)
    total_generation_24h_wh = fields.Float(required=True)
    overall_efficiency_percent = fields.Float(required=True, metadata={"description": "Capacity factor"})
    period_start = fields.String(required=True, metadata={"format": "date-time"})
    period_end = fields.String(required=True, metadata={"format": "date-time"})


class SummarySchema(Schema):
    """``{"summary": {...}}``, or without sites ``{"message": "No sites available", "total_sites": 0}``."""

    summary = fields.Nested(FleetSummarySchema)
    message = fields.String()
    total_sites = fields.Integer()


# -- responses: service ------------------------------------------------------------------------------
class EndpointsSchema(Schema):
    """The routes, by group, as ``"METHOD path - what"``."""

    sites = fields.List(fields.String(), required=True)
    analytics = fields.List(fields.String(), required=True)
    service = fields.List(fields.String(), required=True)


class IndexSchema(Schema):
    """The seed's index."""

    message = fields.String(required=True)
    redis_connected = fields.Boolean(required=True)
    redis_info = fields.String(allow_none=True, required=True, metadata={"description": "Redis version"})
    endpoints = fields.Nested(EndpointsSchema, required=True)


class RedisHealthSchema(Schema):
    """Where Redis is (never a password) and whether it answers."""

    connected = fields.Boolean(required=True)
    url = fields.String(required=True)
    host = fields.String(allow_none=True)
    port = fields.Integer(allow_none=True)
    db = fields.Integer(allow_none=True)
    key_prefix = fields.String(required=True)
    version = fields.String(allow_none=True)
    timeseries_backend = fields.String(allow_none=True, metadata={"description": "null until known"})
    error = fields.String(
        allow_none=True,
        metadata={
            "description": "Why Redis does not answer, or null: 'unreachable: ...', or 'authentication "
            "failed: check REDIS_PASSWORD/REDIS_USERNAME ...' (a configuration error)"
        },
    )


class BackgroundServicesSchema(Schema):
    """Threads of this process."""

    leaderboard_updater = fields.Boolean(required=True)


class ClusterHealthSchema(Schema):
    """A Redis Cluster as its first reachable primary sees it."""

    state = fields.String(
        required=True, metadata={"description": "'ok', or 'fail' while slots are not served"}
    )
    nodes = fields.Integer(required=True, metadata={"description": "Nodes known (masters and replicas)"})
    masters = fields.Integer(required=True, metadata={"description": "Masters serving slots, not failed"})
    slots_covered = fields.Integer(required=True, metadata={"description": "Slots served (of 16384)"})


class HealthSchema(Schema):
    """``healthy`` (200) or ``unhealthy`` (503, with ``error``; with ``Retry-After`` unless Redis
    refused the credentials, which waiting does not fix)."""

    status = fields.String(required=True, validate=validate.OneOf(("healthy", "unhealthy")))
    redis = fields.Nested(
        RedisHealthSchema,
        metadata={"description": "Left out under AUTH_MODE=required for callers without a read key"},
    )
    storage = fields.String(
        allow_none=True,
        validate=validate.OneOf(("ok", "full")),
        metadata={
            "description": "'full': Redis reached maxmemory and refuses writes (they answer 507 until "
            "memory is freed or maxmemory raised); null when unknown"
        },
    )
    background_services = fields.Nested(
        BackgroundServicesSchema,
        metadata={"description": "Left out under AUTH_MODE=required for callers without a read key"},
    )
    error = fields.String(metadata={"description": "Only when unhealthy"})
    details = fields.Raw(allow_none=True, metadata={"description": "Only when unhealthy: null"})
    cluster = fields.Nested(ClusterHealthSchema, metadata={"description": "Only on a Redis Cluster"})
