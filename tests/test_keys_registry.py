"""The API-key registry (``apikeys``): the listing's order, and what a process remembers of whether
any key exists (AUTH_MODE=auto)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
import redis
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
