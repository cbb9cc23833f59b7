"""The fast path of batch validation accepts only what the marshmallow schema accepts, and loads it
the same way (so it changes the speed of a batch, never its answer)."""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from redisolar.api.fast_readings import fast_load
from redisolar.api.schemas import ReadingInSchema
from redisolar.timeutil import UTC, as_utc, utcnow

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
