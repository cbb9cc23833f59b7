"""The core backend declares every day partition its scripts touch (a Redis Cluster requires it):
writes, reads (narrow and wide ranges), the latest reading, deletion, and the reconciler's trim of
partitions a write after a long silence leaves behind. Core targets (standalone and cluster)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import redis

from redisolar.dao.timeseries.core import DAY, DECLARED_DAYS, CoreBackend
from redisolar.dao.timeseries_dao import TimeSeriesDao
from redisolar.models.site import MeterReading, MetricType
from redisolar.timeutil import from_ms, to_ms, utcnow
from tests.conftest import BackendServer

RETENTION = 3 * DAY

pytestmark = pytest.mark.parametrize(
    "backend_server",
    [pytest.param(t, marks=getattr(pytest.mark, t)) for t in ("core", "cluster_core")],
    indirect=True,
)
"""The core backend's day partitions: its standalone and cluster targets only."""


@pytest.fixture
def dao(backend_server: BackendServer, client: redis.Redis) -> TimeSeriesDao:
    return TimeSeriesDao(client, backend="core", retention_ms=RETENTION)


def reading(at: datetime, gen: float) -> MeterReading:
    return MeterReading(site_id=1, timestamp=at, wh_generated=gen, wh_used=1.0, temp_c=20.0)


def partitions(dao: TimeSeriesDao, days: range) -> list[int]:
    return [d for d in days if dao.redis.exists(dao.keys.core_partition_key(1, d))]


def test_a_write_after_a_long_silence_leaves_old_days_for_the_reconcilers_trim(dao: TimeSeriesDao) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    old = now - timedelta(days=10)
    dao.add_readings_batch([reading(old - timedelta(days=d), 1.0 + d) for d in range(3)])
    first = to_ms(old - timedelta(days=2)) // DAY
    assert partitions(dao, range(first, first + 3)) == [first, first + 1, first + 2]
    dao.add_reading(reading(now, 9.0))  # the window jumps 10 days: the two days before it were declared
    assert dao.get_readings_range(
        1, MetricType.WH_GENERATED, old - timedelta(days=5), now + timedelta(1)
    ) == [dao.get_latest_reading(1, MetricType.WH_GENERATED)]  # older days are invisible
    assert partitions(dao, range(first, first + 3))  # but stay until the reconciler's trim
    assert isinstance(dao.backend, CoreBackend)
    sums = dao.backend.hour_sums([(1, to_ms(now) - RETENTION, to_ms(now) + 1)])
    assert sums == [[(to_ms(now), 9.0)]]
    assert partitions(dao, range(first, first + 3)) == []
    assert int(dao.redis.hget(dao.keys.series_meta_key(1), "lo")) > first + 2


def test_the_latest_reading_is_kept_in_the_meta_hash(dao: TimeSeriesDao) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    dao.add_readings_batch([reading(now - timedelta(minutes=m), 10.0 + m) for m in (0, 5, 10)])
    dao.add_reading(reading(now - timedelta(minutes=20), 3.0))  # late: not the newest
    latest = dao.get_latest_readings(1)
    assert latest[MetricType.WH_GENERATED].value == 10.0
    assert latest[MetricType.NET_GENERATION].value == 9.0
    dao.redis.hdel(dao.keys.series_meta_key(1), "last")  # data of earlier versions: read from the partition
    assert dao.get_latest_readings(1) == latest


def test_a_range_wider_than_the_declared_days_reads_the_days_that_hold_data(
    client: redis.Redis, backend_server: BackendServer
) -> None:
    dao = TimeSeriesDao(client, backend="core", retention_ms=0)  # keep everything
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    stamps = [now - timedelta(days=d) for d in (0, 40, 90, 200)]
    dao.add_readings_batch([reading(at, float(i)) for i, at in enumerate(stamps)])
    start = now - timedelta(days=DECLARED_DAYS * 5)
    points = dao.get_readings_range(1, MetricType.WH_GENERATED, start, now + timedelta(hours=1))
    assert [(p.timestamp, p.value) for p in points] == sorted(
        (from_ms(to_ms(at)), float(i)) for i, at in enumerate(stamps)
    )
    analytics = dao.get_site_analytics(1, start, now + timedelta(hours=1))
    assert analytics is not None and analytics.reading_count == 4


def test_deletion_removes_every_partition(dao: TimeSeriesDao) -> None:
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    dao.add_readings_batch([reading(now - timedelta(days=d), 1.0) for d in range(3)])
    days = range(to_ms(now) // DAY - 3, to_ms(now) // DAY + 1)
    assert len(partitions(dao, days)) == 3
    dao.delete_site_data(1)
    assert partitions(dao, days) == [] and not dao.redis.exists(dao.keys.series_meta_key(1))
    assert dao.get_latest_readings(1) == {}
