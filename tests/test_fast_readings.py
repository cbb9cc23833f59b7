"""The fast path of batch validation accepts only what the marshmallow schema accepts, and loads it
the same way (so it changes the speed of a batch, never its answer)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from redisolar.api.fast_readings import fast_load, fast_records
from redisolar.api.schemas import ReadingInSchema
from redisolar.timeutil import UTC, as_utc, to_ms, utcnow

SCHEMA = ReadingInSchema(many=True)

timestamps = st.one_of(
    st.datetimes(timezones=st.sampled_from([None, UTC, timezone(timedelta(hours=-7, minutes=-30))])).map(
        lambda d: d.isoformat()
    ),
    st.sampled_from(
        [
            "2024-01-20T12:00:00",
            "2024-01-20T12:00:00Z",
            "2024-01-20t12:00:00z",
            "2024-01-20 12:00:00",
            "2024-01-20T12:00:00.123456789+05:30",
            "2024-01-20T12:00:60Z",
            "2024-01-20",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-01:00",
            (utcnow() + timedelta(minutes=4)).isoformat(),
            (utcnow() + timedelta(minutes=6)).isoformat(),
            "",
            "yesterday",
        ]
    ),
    st.integers(),
    st.none(),
)
numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**20), 10**20),
    st.booleans(),
    st.sampled_from(["1.5", "nan", "", None, -273.15, -273.16, 0, -0.0]),
)
items = st.fixed_dictionaries(
    {"timestamp": timestamps, "wh_generated": numbers, "wh_used": numbers, "temp_c": numbers},
    optional={
        "site_id": st.one_of(st.integers(-2, 2**54), st.booleans(), st.just(1.0), st.none()),
        "extra": st.just(1),
    },
)


def schema_load(data: list[Any]) -> list[dict[str, Any]] | None:
    try:
        return SCHEMA.load(data)  # type: ignore[no-any-return]
    except ValidationError:
        return None


@settings(max_examples=400, deadline=None)
@given(st.lists(items, min_size=1, max_size=4))
def test_fast_path_accepts_a_subset_of_the_schema_and_agrees_with_it(data: list[dict[str, Any]]) -> None:
    fast = fast_load(data)
    if fast is not None:
        slow = schema_load(data)
        assert slow is not None, data
        assert fast == [{**item, "timestamp": as_utc(item["timestamp"])} for item in slow]


def test_fast_path_takes_ordinary_batches() -> None:
    now = utcnow().replace(microsecond=0)
    batch = [
        {
            "timestamp": (now - timedelta(minutes=i)).isoformat(),
            "wh_generated": 1.5,
            "wh_used": 0,
            "temp_c": -5,
        }
        for i in range(100)
    ]
    loaded = fast_load(batch)
    slow = schema_load(batch)
    assert loaded is not None and slow is not None
    assert loaded == [{**item, "timestamp": as_utc(item["timestamp"])} for item in slow]
    assert fast_load([{**batch[0], "wh_generated": -1}]) is None
    assert fast_load([{**batch[0], "temp_c": float("inf")}]) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(items, min_size=1, max_size=4))
def test_records_from_a_body_agree_with_the_schema(data: list[dict[str, Any]]) -> None:
    body = json.dumps(data).encode()
    records = fast_records(body, 1, 10)
    if records is not None:
        slow = schema_load(json.loads(body))
        assert slow is not None, data
        assert all(item["site_id"] in (None, 1) for item in slow)
        expected = {
            to_ms(item["timestamp"]): (
                to_ms(item["timestamp"]),
                item["wh_generated"],
                item["wh_used"],
                item["temp_c"],
            )
            for item in slow
        }
        assert records == [expected[ts] for ts in sorted(expected)]


def test_records_refuse_what_they_cannot_vouch_for() -> None:
    good = {"timestamp": "2024-01-20T12:00:00Z", "wh_generated": 1.0, "wh_used": 2.0, "temp_c": 3.0}
    assert fast_records(json.dumps([good]).encode(), 1, 10) == [
        (to_ms(datetime(2024, 1, 20, 12, tzinfo=UTC)), 1.0, 2.0, 3.0)
    ]
    assert fast_records(json.dumps([{**good, "site_id": 2}]).encode(), 1, 10) is None  # another site
    assert fast_records(json.dumps([good] * 11).encode(), 1, 10) is None  # too many: the schema says 413
    assert fast_records(b"[]", 1, 10) is None
    assert fast_records(b"{not json", 1, 10) is None
    assert fast_records(json.dumps([{**good, "temp_c": 1e999}]).encode(), 1, 10) is None
