"""The append fast path of redisolar/dao/lua/history_set.lua: a write whose readings all follow the
newest one rolled up, right after the one write since the last rollup, extends the hour record by
the new readings only. Property: whatever mix of appends (single readings at high frequency among
them), overwrites, backfills and retries, the history keys hold the same bytes as a rebuild of the
same range from the raw readings; and the fast path is taken exactly for appends. On every target."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from redisolar.dao.history import HOUR
from redisolar.dao.scripts import run_scripts_collect
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.localtime import encode_tzt
from tests.test_history import Records, make_dao
from tests.test_history_compose import blocks

if TYPE_CHECKING:
    from conftest import BackendServer

SECOND = 1000
ORIGIN = 1_780_000_000_000 - 1_780_000_000_000 % HOUR + 50 * 60 * SECOND  # 10 min before an hour
VALUES = st.sampled_from([0.0, 0.1, 0.7, 1.5, 7.25, 1e6 / 3, 123.456, 1e-3, 2.0, 2.0])
site_ids = itertools.count(7000)


def send(dao: TimeSeriesDao, site_id: int, batch: Records) -> int:
    """Write ``batch`` as ingest does (the site's write, then its history call); the number of hour
    records the history call extended (the fast path)."""
    calls = [
        dao.backend.write_call(site_id, batch, False),
        dao.history.set_call(dao.backend.name, site_id, batch, False),
    ]
    replies = run_scripts_collect(dao.redis, calls)
    assert not isinstance(replies[1], Exception), replies[1]
    return int(replies[1][4])


ops = st.lists(
    st.one_of(
        st.tuples(st.just("burst"), st.integers(1, 150), st.integers(1, 30), VALUES),  # singles, every s
        st.tuples(st.just("batch"), st.integers(2, 40), st.integers(1, 90), VALUES),
        st.tuples(st.just("overwrite"), st.integers(0, 10_000), st.just(0), VALUES),
        st.tuples(st.just("backfill"), st.integers(1, 40), st.integers(1, 600), VALUES),
        st.tuples(st.just("retry"), st.just(0), st.just(0), VALUES),
    ),
    min_size=1,
    max_size=7,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=ops, zone=st.sampled_from(["", "Asia/Kolkata"]))
def test_appends_overwrites_backfills_and_retries_leave_the_bytes_of_a_rebuild(
    client: redis.Redis,
    raw_client: redis.Redis,
    backend_server: BackendServer,
    ops: list[tuple[str, int, int, float]],
    zone: str,
) -> None:
    dao = make_dao(client, backend_server, 0, 0)
    site_id = next(site_ids)
    if zone:
        client.hset(dao.keys.site_key(site_id), "tzt", encode_tzt(zone))
    stored: dict[int, tuple[float, float, float]] = {}
    newest = ORIGIN
    last: Records = [(ORIGIN, 1.0, 2.0, 3.0)]
    send(dao, site_id, last)
    stored[ORIGIN] = (1.0, 2.0, 3.0)
    for i, (kind, n, step, value) in enumerate(ops):
        if kind == "burst":
            for j in range(n):
                same_hour = (newest + step * SECOND) // HOUR == newest // HOUR
                newest += step * SECOND
                last = [(newest, value + j % 7, value * (j % 3), 20.0 - j % 11)]
                # extended, never recomputed (the first reading of an hour: a new record)
                assert send(dao, site_id, last) == (1 if same_hour else 0)
                stored[newest] = last[0][1:]
        elif kind in ("batch", "backfill"):
            first = newest + step * SECOND if kind == "batch" else newest - step * 10 * SECOND
            times = [first + j * step * SECOND for j in range(n)]
            last = [(t, value + j % 5, value + i, 10.0 + j % 4) for j, t in enumerate(times)]
            send(dao, site_id, last)
            stored.update({r[0]: r[1:] for r in last})
            newest = max(newest, times[-1])
        elif kind == "overwrite":
            t = sorted(stored)[n % len(stored)]
            last = [(t, value, value + 1.0, -5.0)]
            assert send(dao, site_id, last) == 0
            stored[t] = last[0][1:]
        else:  # a retry of the last batch: recomputed (not newer than the newest rolled up)
            assert send(dao, site_id, last) == 0
    ingested = blocks(raw_client, dao, site_id)
    dao.history.delete(site_id)
    dao.history.rebuild(dao.backend.name, site_id, min(stored), max(stored) + 1)
    assert blocks(raw_client, dao, site_id) == ingested
    hours = dao.history.hours(site_id, min(stored) - min(stored) % HOUR, max(stored) + HOUR)
    assert sum(h.count for h in hours) == len(stored)


def test_only_an_append_right_after_the_last_rollup_takes_the_fast_path(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = make_dao(client, backend_server, 0, 0)
    site_id = next(site_ids)
    t = ORIGIN
    assert send(dao, site_id, [(t, 1.0, 1.0, 1.0)]) == 0  # the first: no hour record yet
    assert send(dao, site_id, [(t + SECOND, 2.0, 1.0, 1.0)]) == 1  # an append to its hour
    assert send(dao, site_id, [(t + SECOND, 3.0, 1.0, 1.0)]) == 0  # an overwrite of the newest
    assert send(dao, site_id, [(t + 2 * SECOND, 3.0, 1.0, 1.0)]) == 1
    # a write without its history call (lost): the next append recomputes its hour
    run_scripts_collect(
        dao.redis, [dao.backend.write_call(site_id, [(t + 3 * SECOND, 4.0, 1.0, 1.0)], False)]
    )
    assert send(dao, site_id, [(t + 4 * SECOND, 5.0, 1.0, 1.0)]) == 0
    assert send(dao, site_id, [(t + 5 * SECOND, 5.0, 1.0, 1.0)]) == 1
    assert send(dao, site_id, [(t + 10 * 60 * SECOND, 5.0, 1.0, 1.0)]) == 0  # a new hour: read whole
    hours = dao.history.hours(site_id, t - t % HOUR, t + 2 * HOUR)
    assert [h.count for h in hours] == [6, 1]


def test_a_meter_every_second_for_an_hour_leaves_the_bytes_of_a_rebuild(
    client: redis.Redis, raw_client: redis.Redis, backend_server: BackendServer
) -> None:
    """900 single readings a second apart (values whose sums depend on their order, equal maxima):
    every one but the first of each hour extended, the same bytes as a rebuild."""
    dao = make_dao(client, backend_server, 0, 0)
    site_id = next(site_ids)
    values = [0.1, 1e6 / 3, 1e-3, 7.25, 123.456, 0.7, 1e6 / 3]
    extended = 0
    for i in range(900):
        t = ORIGIN + i * SECOND
        extended += send(dao, site_id, [(t, values[i % 7], values[(i * 3) % 7], -3.5 + i % 13)])
    assert extended == 900 - 2  # the first reading, and the first of the next hour (10 min later)
    ingested = blocks(raw_client, dao, site_id)
    dao.history.delete(site_id)
    dao.history.rebuild(dao.backend.name, site_id, ORIGIN, ORIGIN + 900 * SECOND)
    assert blocks(raw_client, dao, site_id) == ingested
