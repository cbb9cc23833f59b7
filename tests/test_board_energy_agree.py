"""A day board's score and the energy endpoint's Wh of the same local day are the same double: both
come from one computation, the history's day record (``history_set.lua``: each hour's readings summed
in time order, then the day's hour sums added in time order), set at ingest and read back by the
reconciler. Readings with random values every 7 minutes (so the order of additions shows in the last
bits), in single-reading writes, batches, overwrites and retries, on a DST day of New York and days
of half-hour zones (Asia/Kolkata, Australia/Adelaide's DST day)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.dao.leaderboard_dao import LeaderboardDao
from redisolar.models.site import Site
from redisolar.services import Services

if TYPE_CHECKING:
    from conftest import BackendServer

CASES = [
    ("America/New_York", date(2026, 11, 1)),  # 25 h
    ("America/New_York", date(2026, 3, 8)),  # 23 h
    ("Asia/Kolkata", date(2026, 6, 1)),  # +5:30: the day's edges fall inside UTC hours
    ("Australia/Adelaide", date(2026, 10, 4)),  # +9:30 -> +10:30, 23 h
]


@pytest.fixture
def app(app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis) -> Flask:
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=0)


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def day_wh(http: FlaskClient, site_id: int, day: date) -> float:
    body = http.get(
        f"/api/analytics/energy/{site_id}",
        query_string={
            "granularity": "day",
            "start": day.isoformat(),
            "end": (day + timedelta(days=1)).isoformat(),
        },
    ).get_json()
    (period,) = body["periods"]
    assert period["count"] > 0
    return float(period["wh_generated"])


def plain_day_sum(stored: dict[int, float], tz: ZoneInfo, day: date) -> float:
    """The readings of the local day added one by one in time order (what the boards held before)."""
    total = 0.0
    for t in sorted(stored):
        if datetime.fromtimestamp(t / 1000, tz).date() == day:
            total += stored[t]
    return total


@pytest.mark.parametrize(("zone", "day"), CASES, ids=lambda v: str(v))
def test_board_score_is_the_energy_endpoints_day_wh_exactly(
    app: Flask, http: FlaskClient, zone: str, day: date
) -> None:
    services: Services = get_services(app)
    tz = ZoneInfo(zone)
    site_id = 41
    services.create_site(Site(site_id, 5.0, 10, "41 Sun St", "Town", "XX", "00000", timezone=zone))
    rng = random.Random(f"{zone}{day}")
    start = ms(datetime.combine(day, time(), tz)) - 2 * 3_600_000
    times = list(range(start, start + 30 * 3_600_000, 7 * 60_000))
    stored: dict[int, float] = {}
    i = 0
    while i < len(times):  # single readings mostly, some batches; some sent twice; some overwritten
        n = rng.choice([1, 1, 1, 5, 17])
        batch = [(t, rng.uniform(0, 4000) / 3, rng.uniform(0, 100), 20.0) for t in times[i : i + n]]
        for _ in range(2 if rng.random() < 0.2 else 1):
            services.timeseries.add_validated_records({site_id: batch})
        stored.update({t: g for t, g, _, _ in batch})
        if rng.random() < 0.1:  # an overwrite of an earlier reading
            t = rng.choice(times[: i + n])
            services.timeseries.add_validated_records({site_id: [(t, 1234.5678901, 1.0, 20.0)]})
            stored[t] = 1234.5678901
        i += n
    lb = LeaderboardDao(services.redis, services.sites)
    score = lb.get_site_score(site_id, "generation", day)
    wh = day_wh(http, site_id, day)
    assert score is not None
    assert score == wh  # the same double, not approximately
    assert wh == pytest.approx(plain_day_sum(stored, tz, day), rel=1e-12)
    # the reconciler rebuilds the board from the same day record: the same double again
    services.leaderboards.clear_daily_boards([day])
    services.updater.update_generation_leaderboard(day)
    assert lb.get_site_score(site_id, "generation", day) == wh
