"""Marshmallow schemas (the seed's Step 6): the documented JSON contract of the API.

Loading validates everything the models validate and turns model errors into ``ValidationError``s,
so a bad request is always a 400 that names the field. Datetimes dump as ISO 8601 with an offset;
naive datetimes in input mean UTC.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates

from redisolar.models.site import (
    ABSOLUTE_ZERO_C,
    MAX_SITE_ID,
    MAX_TEMP_C,
    Coordinate,
    MeterReading,
    Site,
    TimeSeriesData,
    check_reading_time,
    check_timezone,
)

_NO_CONTROL = validate.Regexp(r"^[^\x00-\x1f\x7f-\x9f]*$", error="Must not contain control characters.")
_NOT_BLANK = validate.Regexp(r"\S", flags=re.UNICODE, error="Must not be blank.")


def _text(min_length: int, max_length: int) -> fields.String:
    return fields.String(
        required=True,
        validate=[validate.Length(min=min_length, max=max_length), _NOT_BLANK, _NO_CONTROL],
    )


class EnergyBound(validate.Validator):
    """At most ``MeterReading.max_reading_wh`` (``MAX_READING_WH``), read when validating (the app
    configures it at start-up)."""

    def __call__(self, value: float) -> float:
        bound = MeterReading.max_reading_wh
        if value > bound:
            raise ValidationError(f"Must be at most {bound:g} Wh (MAX_READING_WH).")
        return value


def _energy(what: str) -> fields.Float:
    return fields.Float(
        required=True,
        validate=[validate.Range(min=0), EnergyBound()],
        metadata={"description": f"Wh {what} since the previous reading, 0 to MAX_READING_WH (1e11)"},
    )


def _build(cls: type, data: dict[str, Any]) -> Any:
    try:
        return cls(**data)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class CoordinateSchema(Schema):
    """A coordinate: ``lat`` in [-90, 90], ``lng`` in [-180, 180]."""

    lat = fields.Float(required=True, validate=validate.Range(-90, 90))
    lng = fields.Float(required=True, validate=validate.Range(-180, 180))

    @post_load
    def make_coordinate(self, data: dict[str, Any], **kwargs: Any) -> Coordinate:
        return _build(Coordinate, data)


class TimezoneName(validate.Validator):
    """An IANA time zone name this system knows (``zoneinfo.available_timezones()``)."""

    def __call__(self, value: str) -> str:
        try:
            return check_timezone(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


class SiteSchema(Schema):
    """A site. ``capacity`` in kW; ``timezone`` an IANA name, derived from the coordinate when left out
    (see :mod:`redisolar.timezones`)."""

    id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_SITE_ID))
    capacity = fields.Float(required=True, validate=validate.Range(min=0.1, max=1e7))
    panels = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=10**7))
    address = _text(1, 200)
    city = _text(1, 100)
    state = _text(2, 50)
    postal_code = _text(3, 20)
    coordinate = fields.Nested(CoordinateSchema, allow_none=True, load_default=None)
    timezone = fields.String(
        allow_none=True,
        load_default=None,
        validate=TimezoneName(),
        metadata={
            "description": "IANA time zone (e.g. `America/Phoenix`), which the site's local days follow; "
            "left out or null: the zone of `coordinate`, else `DEFAULT_TIMEZONE` (UTC)",
            "example": "America/Phoenix",
        },
    )

    @post_load
    def make_site(self, data: dict[str, Any], **kwargs: Any) -> Site:
        return _build(Site, data)


class MeterReadingSchema(Schema):
    """A meter reading: energy in Wh since the previous reading, temperature in °C."""

    site_id = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_SITE_ID))
    timestamp = fields.DateTime(required=True)
    wh_generated = _energy("generated")
    wh_used = _energy("used")
    temp_c = fields.Float(required=True, validate=validate.Range(min=ABSOLUTE_ZERO_C, max=MAX_TEMP_C))

    @validates("timestamp")
    def validate_timestamp(self, value: datetime, **kwargs: Any) -> None:
        try:
            check_reading_time(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @post_load
    def make_reading(self, data: dict[str, Any], **kwargs: Any) -> MeterReading:
        return _build(MeterReading, data)


class TimeSeriesDataSchema(Schema):
    """One point of a series."""

    timestamp = fields.DateTime(required=True)
    value = fields.Float(required=True)

    @post_load
    def make_data(self, data: dict[str, Any], **kwargs: Any) -> TimeSeriesData:
        return _build(TimeSeriesData, data)


class SiteAnalyticsSchema(Schema):
    """A site's analytics over ``[period_start, period_end)``."""

    site_id = fields.Integer(required=True)
    period_start = fields.DateTime(required=True)
    period_end = fields.DateTime(required=True)
    total_generated = fields.Float(required=True)
    total_used = fields.Float(required=True)
    avg_generation = fields.Float(required=True)
    max_generation = fields.Float(required=True)
    min_generation = fields.Float(required=True)
    avg_temperature = fields.Float(required=True)
    efficiency_percent = fields.Float(required=True)
    reading_count = fields.Integer(required=True)


class LeaderboardEntrySchema(Schema):
    """A leaderboard entry: the site, its score and 1-based rank."""

    site = fields.Nested(SiteSchema, required=True)
    score = fields.Float(required=True)
    rank = fields.Integer(required=True)


site_schema = SiteSchema()
meter_reading_schema = MeterReadingSchema()
timeseries_data_schema = TimeSeriesDataSchema()
site_analytics_schema = SiteAnalyticsSchema()
leaderboard_entry_schema = LeaderboardEntrySchema()
coordinate_schema = CoordinateSchema()
