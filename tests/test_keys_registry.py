"""The API-key registry (``apikeys``): the listing's order, and what a process remembers of whether
any key exists (AUTH_MODE=auto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis
from conftest import ApiCalls
from flask import Flask

from redisolar.app import get_services
from redisolar.dao import keys_dao
from redisolar.timeutil import UTC

if TYPE_CHECKING:
    from conftest import BackendServer


@pytest.fixture
def make_app(
    app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis
) -> Callable[..., Flask]:
    def make(**config: Any) -> Flask:
        return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, **config)

    return make


@pytest.fixture
def ticking_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[datetime]]:
    """``keys_dao.utcnow`` answers one millisecond later at every call, all within one second."""
    start = datetime(2026, 12, 1, 12, 0, 0, 1000, tzinfo=UTC)
    seen: list[datetime] = []

    def now() -> datetime:
        seen.append(start + timedelta(milliseconds=len(seen)))
        return seen[-1]

    monkeypatch.setattr(keys_dao, "utcnow", now)
    yield seen


def test_keys_are_listed_oldest_first_to_the_millisecond(
    make_app: Callable[..., Flask], ticking_clock: list[datetime]
) -> None:
    """Twenty keys made in one second: by id (random) their order would be lost, by ms it is kept."""
    app = make_app(AUTH_MODE="off")
    services = get_services(app)
    made = [services.create_api_key("read", name=f"k{n}")[0].id for n in range(20)]
    assert len(ticking_clock) == 20
    assert [key.id for key in services.api_keys.find_all()] == made
    listed = app.test_client().get("/api/keys").get_json()["keys"]
    assert [key["id"] for key in listed] == made
    assert {key["created"] for key in listed} == {"2026-12-01T12:00:00+00:00"}  # shown to the second


# -- AUTH_MODE=auto: whether any key exists, as a process remembers it -------------------------------
class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def site_body(site_id: int) -> dict[str, Any]:
    return ApiCalls.site_body(site_id)


@pytest.fixture
def auto_app(make_app: Callable[..., Flask]) -> tuple[Flask, Clock]:
    """An AUTH_MODE=auto app (with rate limits: the registry is read in their round trip) on a moved clock."""
    app = make_app(AUTH_MODE="auto", RATE_LIMIT_READS="1000/second", RATE_LIMIT_WRITES="1000/second")
    clock = Clock()
    get_services(app).api_keys.presence.clock = clock
    return app, clock


def test_keys_seen_are_remembered_for_five_seconds(
    auto_app: tuple[Flask, Clock], make_app: Callable[..., Flask]
) -> None:
    """Once this process saw a key, it does not read the registry for 5 s: keys removed by another
    process are still required here until then (the stricter answer for this machine's writes)."""
    app, clock = auto_app
    other = get_services(make_app(AUTH_MODE="auto"))  # another process: its own memory
    key, _ = other.create_api_key("admin")
    http = app.test_client()
    assert http.post("/api/sites/", json=site_body(1)).status_code == 401  # read now: a key exists
    other.revoke_api_key(key.id)
    clock.now += 4.9
    response = http.post("/api/sites/", json=site_body(1))
    assert response.status_code == 401 and "key is required" in response.get_json()["error"]
    clock.now += 0.1
    assert http.post("/api/sites/", json=site_body(1)).status_code == 201  # read again: none left


def test_no_key_is_never_remembered(auto_app: tuple[Flask, Clock], make_app: Callable[..., Flask]) -> None:
    """The first key, created by another process, is required by the very next request here."""
    app, _ = auto_app
    http = app.test_client()
    assert http.post("/api/sites/", json=site_body(1)).status_code == 201
    get_services(make_app(AUTH_MODE="auto")).create_api_key("admin")
    assert http.post("/api/sites/", json=site_body(2)).status_code == 401


def test_a_revocation_here_forgets_at_once(auto_app: tuple[Flask, Clock]) -> None:
    app, _ = auto_app
    services = get_services(app)
    key, _ = services.create_api_key("admin")
    http = app.test_client()
    assert http.post("/api/sites/", json=site_body(1)).status_code == 401
    services.revoke_api_key(key.id)
    assert http.post("/api/sites/", json=site_body(1)).status_code == 201


def test_a_found_key_counts_as_seen(auto_app: tuple[Flask, Clock], make_app: Callable[..., Flask]) -> None:
    """A request with a valid key proves a key exists: the next anonymous write is refused without a
    registry read (the registry is gone here, so a read would have said "no key")."""
    app, _ = auto_app
    _, secret = get_services(make_app(AUTH_MODE="auto")).create_api_key("read")
    http = app.test_client()
    assert http.get("/api/sites/", headers={"X-API-Key": secret}).status_code == 200
    get_services(app).redis.delete(get_services(app).keys.api_keys_key())
    assert http.post("/api/sites/", json=site_body(1)).status_code == 401


@pytest.mark.parametrize("limits", [True, False], ids=["limited", "unlimited"])
def test_the_registry_unreadable_keeps_what_was_seen(
    make_app: Callable[..., Flask], backend_server: BackendServer, limits: bool
) -> None:
    """Redis down when the 5 s are over: a process that had seen keys keeps them (a read that needs
    no Redis, /metrics, is served to this machine; a write without a key is refused, not a 503); one
    that never saw a key answers 503, as before, rather than guess."""
    rates = {"RATE_LIMIT_READS": "1000/second"} if limits else {}
    app, blind = make_app(AUTH_MODE="auto", **rates), make_app(AUTH_MODE="auto", **rates)
    clock = Clock()
    get_services(app).api_keys.presence.clock = clock
    get_services(app).create_api_key("admin")
    http = app.test_client()
    backend_server.server.stop()
    try:
        clock.now += 5
        if limits:  # the budget itself is in Redis: the request fails, but for the store, not the registry
            assert http.get("/metrics").status_code == 503
        else:
            assert http.get("/metrics").status_code == 200
            assert http.post("/api/sites/", json=site_body(1)).status_code == 401
        assert blind.test_client().get("/metrics").status_code == 503
    finally:
        backend_server.server.start()
