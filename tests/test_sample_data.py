"""Sample data: the seed's fleet (Step 9) ending at the current hour, and the synthetic fleet."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import redis

from redisolar.errors import InvalidInput
from redisolar.models.site import Coordinate, MeterReading, MetricType, Site
from redisolar.sample_data import (
    METROS,
    SEED_SITES,
    check_retention,
    cos_zenith,
    fleet_models,
    load_plan,
    plan_sample_data,
    solar_hour,
)
from redisolar.services import Services, Settings, build_services
from redisolar.timeutil import to_ms, utcnow
from redisolar.timezones import derived_timezone

if TYPE_CHECKING:
    from conftest import BackendServer

NOW = datetime(2026, 6, 21, 17, 42, 13, tzinfo=UTC)  # a fixed "now" (summer solstice, US morning)
WINTER = datetime(2025, 12, 21, 23, 5, tzinfo=UTC)

# The seed's Step 9 sites, as the lesson lists them.
SEED_TABLE = [
    (1, 4.5, 12, "123 Solar Street", "Sunnyville", "CA", "90210", 34.0522, -118.2437),
    (2, 6.0, 20, "456 Energy Avenue", "Power City", "TX", "75001", 32.7767, -96.7970),
    (3, 3.2, 8, "789 Green Way", "Eco Town", "FL", "33101", 25.7617, -80.1918),
    (4, 7.8, 26, "321 Renewable Road", "Solar City", "AZ", "85001", 33.4484, -112.0740),
    (5, 2.1, 6, "654 Clean Lane", "Green Valley", "OR", "97201", 45.5152, -122.6784),
]


def by_site(readings: list[MeterReading]) -> dict[int, list[MeterReading]]:
    grouped: dict[int, list[MeterReading]] = {}
    for reading in readings:
        grouped.setdefault(reading.site_id, []).append(reading)
    return grouped


SEED_ZONES = [
    "America/Los_Angeles",
    "America/Chicago",
    "America/New_York",
    "America/Phoenix",
    "America/Los_Angeles",
]


# -- the seed's sample data ----------------------------------------------------------------------------
def test_the_five_sites_are_the_seeds() -> None:
    expected = [
        Site(i, c, p, a, city, st, pc, Coordinate(lat, lng), zone)
        for (i, c, p, a, city, st, pc, lat, lng), zone in zip(SEED_TABLE, SEED_ZONES, strict=True)
    ]
    assert list(SEED_SITES) == expected
    assert plan_sample_data(now=NOW).sites == expected


def test_the_seed_sites_have_the_zones_of_their_coordinates() -> None:
    assert [derived_timezone(site.coordinate, "Etc/Unknown") for site in SEED_SITES] == SEED_ZONES
    assert [site.timezone for site in SEED_SITES] == SEED_ZONES


def test_synthetic_sites_have_the_zones_of_their_coordinates() -> None:
    models = fleet_models(400, seed=3)
    zones = {model.site.timezone for model in models}
    assert "Pacific/Honolulu" in zones and "America/Phoenix" in zones and "America/Denver" in zones
    for model in models:
        assert model.site.timezone == derived_timezone(model.site.coordinate, "Etc/Unknown")


def test_seven_days_of_hourly_readings_per_site_ending_at_the_current_hour() -> None:
    plan = plan_sample_data(now=NOW, seed=1)
    readings = by_site(list(plan.readings()))
    current_hour = NOW.replace(minute=0, second=0, microsecond=0)
    assert plan.profile == "seed" and plan.interval_minutes == 60
    assert sorted(readings) == [1, 2, 3, 4, 5]
    for site_readings in readings.values():
        times = [r.timestamp for r in site_readings]
        assert len(times) == 7 * 24
        assert times == [current_hour - timedelta(hours=h) for h in range(7 * 24 - 1, -1, -1)]
    assert plan.total_readings == 5 * 7 * 24
    assert plan.end == current_hour and plan.start == current_hour - timedelta(hours=7 * 24 - 1)


def test_by_default_nothing_lies_in_the_future() -> None:
    before = utcnow()
    plan = plan_sample_data()
    after = utcnow()
    newest = max(r.timestamp for r in plan.readings())
    assert newest <= after
    assert newest in {t.replace(minute=0, second=0, microsecond=0) for t in (before, after)}


def test_the_seeds_curve() -> None:
    plan = plan_sample_data(now=NOW, seed=2)
    sites = {site.id: site for site in SEED_SITES}
    for reading in plan.readings():
        site = sites[reading.site_id]
        assert site.coordinate is not None
        factor = max(0.0, 1 - abs(solar_hour(reading.timestamp_millis, site.coordinate.lng) - 12) / 12)
        assert 0.7 * site.capacity * 800 * factor - 1e-6 <= reading.wh_generated
        assert reading.wh_generated <= 1.3 * site.capacity * 800 * factor + 1e-6
        assert 0.8 * site.capacity * 200 - 1e-6 <= reading.wh_used <= 1.2 * site.capacity * 200 + 1e-6
        assert 15 + 15 * factor - 1e-6 <= reading.temp_c <= 25 + 15 * factor + 1e-6


def test_a_seed_makes_the_data_reproducible() -> None:
    first = list(plan_sample_data(now=NOW, seed=5).readings())
    again = list(plan_sample_data(now=NOW, seed=5).readings())
    other = list(plan_sample_data(now=NOW, seed=6).readings())
    assert first == again
    assert first != other


# -- the synthetic fleet ---------------------------------------------------------------------------------
@pytest.mark.parametrize("now", [NOW, WINTER], ids=["june", "december"])
def test_synthetic_fleet_shape(now: datetime) -> None:
    plan = plan_sample_data(300, days=2, interval_minutes=15, seed=11, now=now)
    sites = plan.sites
    assert plan.profile == "clear-sky"
    assert [s.id for s in sites] == list(range(1, 301))
    assert sites[:5] == list(SEED_SITES)
    states = {metro[1] for metro in METROS}
    for site in sites[5:]:
        assert site.coordinate is not None
        assert 18 <= site.coordinate.lat <= 50 and -160 <= site.coordinate.lng <= -65
        assert site.state in states and len(site.postal_code) == 5 and site.postal_code.isdigit()
        assert 2.0 <= site.capacity <= 5000
        assert 250 <= site.capacity * 1000 / site.panels <= 500  # watts per panel
    capacities = sorted(s.capacity for s in sites[5:])
    assert 4 <= capacities[len(capacities) // 2] <= 12  # mostly rooftops
    assert capacities[-1] > 25  # and some larger ones
    assert len({s.city for s in sites}) >= 15

    readings = by_site(list(plan.readings()))
    assert plan.per_site == 2 * 24 * 4
    for site in sites:
        series = readings[site.id]
        assert len(series) == plan.per_site
        assert all(to_ms(r.timestamp) % (15 * 60_000) == 0 for r in series)
        assert series[-1].timestamp == plan.end <= now
        assert site.coordinate is not None
        lat, lng = site.coordinate.lat, site.coordinate.lng
        for reading in series:
            middle = reading.timestamp_millis - 15 * 60_000 // 2
            if cos_zenith(middle, lat, lng) < 0:
                assert reading.wh_generated == 0, "no generation at night"
            assert reading.wh_generated <= site.capacity * 1000 * 0.25 * 1.05  # ≤ capacity over 15 min
            assert reading.wh_used > 0
            assert -25 <= reading.temp_c <= 50
        assert sum(r.wh_generated for r in series) > 0, "the sun rises everywhere in the US"


def test_clear_sky_generation_peaks_around_solar_noon() -> None:
    plan = plan_sample_data(40, days=7, interval_minutes=30, seed=3, now=NOW)
    by_hour = [0.0] * 24
    for model in plan.models:
        assert model.site.coordinate is not None
        for reading in plan.site_readings(model):
            middle = reading.timestamp_millis - 15 * 60_000
            by_hour[int(solar_hour(middle, model.site.coordinate.lng))] += reading.wh_generated
    assert by_hour.index(max(by_hour)) in (11, 12)
    assert by_hour[0] == by_hour[1] == by_hour[23] == 0


def test_june_days_are_longer_than_december_days_in_the_north() -> None:
    def daylight_readings(now: datetime) -> int:
        plan = plan_sample_data(5, days=1, interval_minutes=10, profile="clear-sky", seed=4, now=now)
        portland = plan.models[4]
        return sum(1 for r in plan.site_readings(portland) if r.wh_generated > 0)

    assert daylight_readings(NOW) > 1.5 * daylight_readings(WINTER)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_minutes": 0}, "interval"),
        ({"interval_minutes": 1441}, "interval"),
        ({"days": 0}, "days"),
        ({"days": 1 / 48, "interval_minutes": 60}, "no reading"),
        ({"profile": "cloudy"}, "profile"),
        ({"sites": 0}, "at least one site"),
    ],
)
def test_bad_options_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        plan_sample_data(**kwargs, now=NOW)  # type: ignore[arg-type]


def test_a_span_longer_than_the_retention_is_refused() -> None:
    plan = plan_sample_data(now=NOW)
    check_retention(plan, 7 * 86_400_000)
    check_retention(plan, 0)  # 0 keeps everything
    with pytest.raises(InvalidInput, match="retention"):
        check_retention(plan, 3 * 86_400_000)


# -- loading into Redis, both backends ---------------------------------------------------------------------
@pytest.fixture
def services(backend_server: BackendServer, client: redis.Redis) -> Iterator[Services]:
    config = backend_server.config()
    settings = Settings(redis=config, timeseries_backend=backend_server.name)
    built = build_services(settings)
    yield built
    built.redis.close()


def test_loading_the_seed_sample_data(services: Services) -> None:
    plan = plan_sample_data(seed=8)
    calls: list[int] = []
    report = load_plan(services, plan, batch_size=300, progress=calls.append)

    assert report.sites == 5 and report.readings == 840
    assert calls == [300, 300, 240]
    assert services.sites.find_all() == list(SEED_SITES)
    now = utcnow()
    for site in SEED_SITES:
        points = services.timeseries.get_readings_range(
            site.id, MetricType.WH_GENERATED, plan.start - timedelta(days=30), now + timedelta(days=1)
        )
        assert len(points) == 7 * 24
        assert points[-1].timestamp == plan.end <= now
        latest = services.timeseries.get_latest_readings(site.id)
        assert {m.value for m in latest} >= {"wh_generated", "wh_used", "temp_c"}
    capacity = [entry.site.id for entry in services.leaderboards.get_capacity_leaders(10)]
    assert capacity == [4, 2, 1, 3, 5]
    today = services.leaderboards.get_generation_leaders(10, day=plan.end.date())
    assert sorted(entry.site.id for entry in today) == [1, 2, 3, 4, 5]
    assert services.summary()["total_sites"] == 5


def test_loading_a_synthetic_fleet(services: Services) -> None:
    plan = plan_sample_data(60, days=1, interval_minutes=20, seed=9)
    report = load_plan(services, plan, batch_size=1000)
    assert report.sites == 60 and report.readings == 60 * 72
    assert services.sites.count() == 60
    assert len(services.leaderboards.get_capacity_leaders(100)) == 60
    stored = services.timeseries.get_readings_range(
        42, MetricType.WH_USED, plan.start, plan.end + timedelta(minutes=1)
    )
    expected = list(plan.site_readings(plan.models[41]))
    assert [(p.timestamp, p.value) for p in stored] == [(r.timestamp, r.wh_used) for r in expected]
