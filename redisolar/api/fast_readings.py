"""The validator of the readings payloads: one reading (``POST /readings/<id>``) and a batch
(``POST /readings/<id>/batch``), compiled with msgspec.

:class:`ReadingBody` is the one definition of a reading's shape (types, ranges, no unknown fields);
msgspec decodes and checks a body against it in one compiled pass. What a type cannot say is checked
after decoding, in :func:`_value_errors`: the timestamp (ISO 8601 parsed by ``datetime.fromisoformat``;
naive means UTC; 1970 up to now + the clock-skew allowance), the energy bound (``MAX_READING_WH``,
configured at start-up) and that a body's ``site_id``, if given, is the path's.

A body that fails is decoded again, without the compiled type, only to say everything that is wrong:
each field is checked against its own annotated type (still msgspec), so the answer names every bad
field of every bad item: ``{"error": "Validation failed", "details": {field: [messages]}}``, keyed by
item index for a batch. The marshmallow schemas ``ReadingInSchema`` and ``ReadingBatchItemSchema``
document the same shape in the OpenAPI document and never run on a request
(``tests/test_fast_readings.py`` checks that the two agree).
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta
from typing import Annotated, Any, NamedTuple

import msgspec

from redisolar.api.errors import VALIDATION_FAILED, PayloadTooLarge
from redisolar.dao.timeseries.base import Record
from redisolar.errors import InvalidInput
from redisolar.models.site import (
    ABSOLUTE_ZERO_C,
    MAX_SITE_ID,
    MAX_TEMP_C,
    MeterReading,
    check_energy,
    check_reading_time,
)
from redisolar.timeutil import UTC, utcnow

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
INVALID_JSON = "Invalid JSON body"
NOT_AN_OBJECT = "Invalid input type."


class ReadingBody(msgspec.Struct, forbid_unknown_fields=True):
    """One reading as posted: energy in Wh since the previous reading, temperature in °C."""

    timestamp: str  # parsed with datetime.fromisoformat (see _parse)
    wh_generated: Annotated[float, msgspec.Meta(ge=0)]
    wh_used: Annotated[float, msgspec.Meta(ge=0)]
    temp_c: Annotated[float, msgspec.Meta(ge=ABSOLUTE_ZERO_C, le=MAX_TEMP_C)]
    site_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_SITE_ID)] | None = None


_ONE = msgspec.json.Decoder(ReadingBody)
_MANY = msgspec.json.Decoder(list[ReadingBody])
_FIELDS = msgspec.structs.fields(ReadingBody)
_NAMES = frozenset(f.name for f in _FIELDS)
_KINDS = {"timestamp": "datetime", "site_id": "integer"}  # the rest are numbers
_BOUND = re.compile(r"Expected `[^`]*` (>=|<=) (\S+)")
_BOUND_WORDS = {">=": "greater than or equal to", "<=": "less than or equal to"}


class Reading(NamedTuple):
    """A valid reading: its aware UTC timestamp and its storage record ``(ms, gen, used, temp)``."""

    timestamp: datetime
    record: Record


# -- bodies --------------------------------------------------------------------------------------
def read_reading(body: bytes, site_id: int) -> Reading:
    """The reading a body holds for the site of the path; :class:`InvalidInput` (400) saying every
    problem otherwise."""
    try:
        body_reading = _ONE.decode(body)
    except msgspec.ValidationError:
        raise InvalidInput(VALIDATION_FAILED, _item_errors(_loads(body), site_id, _latest())) from None
    except msgspec.DecodeError:
        raise _invalid_json() from None
    reading, errors = _checked(body_reading, site_id, _latest())
    if reading is None:
        raise InvalidInput(VALIDATION_FAILED, errors)
    return reading


def read_batch(body: bytes, site_id: int, max_readings: int) -> list[Record]:
    """The records of a batch body (sorted by time, the last of equal timestamps kept), all or
    nothing: :class:`InvalidInput` (400) with the problems per item index, or
    :class:`PayloadTooLarge` (413) past ``max_readings``."""
    try:
        readings = _MANY.decode(body)
    except msgspec.ValidationError:
        raise _batch_error(_loads(body), site_id, max_readings) from None
    except msgspec.DecodeError:
        raise _invalid_json() from None
    _check_size(len(readings), max_readings)
    latest = _latest()
    by_ts: dict[int, Record] = {}
    errors: dict[str, Any] = {}
    for index, body_reading in enumerate(readings):
        reading, problems = _checked(body_reading, site_id, latest)
        if reading is None:
            errors[str(index)] = problems
        else:
            by_ts[reading.record[0]] = reading.record
    if errors:
        raise InvalidInput(VALIDATION_FAILED, errors)
    return [by_ts[ts] for ts in sorted(by_ts)]


def _check_size(count: int, max_readings: int) -> None:
    if count == 0:
        raise InvalidInput(VALIDATION_FAILED, {"_schema": ["Expected a non-empty array of readings."]})
    if count > max_readings:
        raise PayloadTooLarge(
            f"Too many readings in one batch: {count} (at most {max_readings})",
            {"count": count, "max_batch_readings": max_readings},
        )


def _batch_error(items: Any, site_id: int, max_readings: int) -> InvalidInput:
    if not isinstance(items, list):
        return InvalidInput(VALIDATION_FAILED, {"_schema": [NOT_AN_OBJECT]})
    _check_size(len(items), max_readings)
    latest = _latest()
    errors = {str(i): e for i, item in enumerate(items) if (e := _item_errors(item, site_id, latest))}
    return InvalidInput(VALIDATION_FAILED, errors)


def _loads(body: bytes) -> Any:
    """A body msgspec found well-formed, as Python objects (only to word its errors)."""
    try:
        return json.loads(body)
    except RecursionError:
        message = "The JSON body is nested too deeply."
        raise InvalidInput(message.rstrip("."), [message]) from None
    except ValueError:  # (msgspec and json disagree only on numbers out of range, which json reads)
        raise _invalid_json() from None


def _invalid_json() -> InvalidInput:
    return InvalidInput(INVALID_JSON, [INVALID_JSON + "."])


# -- one reading ---------------------------------------------------------------------------------
def _latest() -> datetime:
    """The latest time a reading may carry: now + the clock-skew allowance."""
    return utcnow() + MeterReading.max_clock_skew


def _checked(r: ReadingBody, site_id: int, latest: datetime) -> tuple[Reading | None, dict[str, Any]]:
    """The reading of a decoded body, or None and what is wrong with it."""
    errors = _value_errors(r, site_id, latest)
    if errors:
        return None, errors
    timestamp = _utc(r.timestamp)
    assert timestamp is not None  # (checked by _value_errors)
    ms = (timestamp - EPOCH) // _ONE_MS
    return Reading(timestamp, (ms, r.wh_generated + 0.0, r.wh_used + 0.0, r.temp_c + 0.0)), {}


def _value_errors(r: ReadingBody, site_id: int, latest: datetime) -> dict[str, list[str]]:
    """What the types of :class:`ReadingBody` cannot check: time, energy bound, the path's site."""
    return _values_errors(msgspec.structs.asdict(r), site_id, latest)


def _values_errors(values: dict[str, Any], site_id: int, latest: datetime) -> dict[str, list[str]]:
    """The value problems of the fields in ``values`` (each already of its type)."""
    errors: dict[str, list[str]] = {}
    if "timestamp" in values:
        timestamp = _utc(values["timestamp"])
        if timestamp is None or not EPOCH <= timestamp <= latest:
            errors["timestamp"] = [_time_problem(values["timestamp"])]
    bound = MeterReading.max_reading_wh
    for name, what in (("wh_generated", "Generated energy"), ("wh_used", "Used energy")):
        value = values.get(name, 0.0)
        if not value <= bound:  # (also +inf: msgspec reads 1e999 as out of range, json as inf)
            errors[name] = [_energy_problem(what, value)]
    if not math.isfinite(values.get("temp_c", 0.0)):
        errors["temp_c"] = ["Not a valid number."]
    if values.get("site_id") not in (None, site_id):
        errors["site_id"] = [f"Must equal the site id of the path ({site_id})."]
    return errors


def _parse(text: str) -> datetime | None:
    """``text`` as ISO 8601 (``datetime.fromisoformat``), or None."""
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def _utc(text: str) -> datetime | None:
    """``text`` as an aware UTC datetime (naive means UTC), or None."""
    timestamp = _parse(text)
    if timestamp is None:
        return None
    try:
        return timestamp.replace(tzinfo=UTC) if timestamp.tzinfo is None else timestamp.astimezone(UTC)
    except OverflowError:
        return None


def _time_problem(text: str) -> str:
    timestamp = _parse(text)
    if timestamp is None:
        return "Not a valid datetime."
    try:
        check_reading_time(timestamp)
    except ValueError as exc:
        return str(exc.args[0]) + "."
    return "Not a valid datetime."  # (not reached: _utc and check_reading_time agree)


def _energy_problem(what: str, value: float) -> str:
    try:
        check_energy(what, value)
    except ValueError as exc:
        return str(exc.args[0]) + "."
    return f"{what} is out of range."  # (not reached)


# -- the error path: every problem of one item ---------------------------------------------------------
def _item_errors(item: Any, site_id: int, latest: datetime) -> dict[str, list[str]]:
    """Every problem of one item, each field checked against its own type in :class:`ReadingBody`."""
    if not isinstance(item, dict):
        return {"_schema": [NOT_AN_OBJECT]}
    errors = {name: ["Unknown field."] for name in item if name not in _NAMES}
    typed: dict[str, Any] = {}
    for f in _FIELDS:
        if f.name not in item:
            if f.required:
                errors[f.name] = ["Missing data for required field."]
            continue
        try:
            typed[f.name] = msgspec.convert(item[f.name], f.type)
        except msgspec.ValidationError as exc:
            errors[f.name] = [_wording(f.name, str(exc))]
    return {**errors, **_values_errors(typed, site_id, latest)}


def _wording(name: str, message: str) -> str:
    """msgspec's message about one field, in the API's words."""
    bound = _BOUND.match(message)
    if bound:
        return f"Must be {_BOUND_WORDS[bound.group(1)]} {bound.group(2)}."
    return f"Not a valid {_KINDS.get(name, 'number')}."


# -- the same rules on Python objects (for tests and scripts) --------------------------------------------
def fast_load(items: Any) -> list[dict[str, Any]] | None:
    """``items`` (a list of dicts) loaded as readings (dicts with aware UTC timestamps), or None when
    any item is not a valid reading of any site."""
    try:
        readings = msgspec.convert(items, list[ReadingBody])
    except msgspec.ValidationError:
        return None
    latest = _latest()
    loaded = []
    for r in readings:
        reading, _ = _checked(r, r.site_id or 1, latest)
        if reading is None:
            return None
        _, generated, used, temp = reading.record
        loaded.append(
            {
                "timestamp": reading.timestamp,
                "wh_generated": generated,
                "wh_used": used,
                "temp_c": temp,
                "site_id": r.site_id,
            }
        )
    return loaded


def fast_records(body: bytes, site_id: int, max_readings: int) -> list[Record] | None:
    """:func:`read_batch`, or None when the body is refused."""
    try:
        return read_batch(body, site_id, max_readings)
    except (InvalidInput, PayloadTooLarge):
        return None
