"""``GET /metrics``: Prometheus' text format, parsed with prometheus_client's own parser; the counts
match the requests made, in one process and summed over the worker processes of ``redisolar serve``."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from conftest import ApiCalls
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from test_e2e import Server, alive, answers, children_of, free_port, wait_for

from redisolar.app import get_services
from redisolar.timeutil import utcnow

if TYPE_CHECKING:
    from redisolar.embedded import RedisServer

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
METRICS_DIR_LOG = "metrics of the worker processes in"
SITE_ROUTE = "/api/sites/<site_id:site_id>"
READINGS_ROUTE = "/api/analytics/readings/<site_id:site_id>"


def parse(text: str) -> Samples:
    """Every sample of a scrape, by (name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(http: FlaskClient, **headers: str) -> Samples:
    response = http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return parse(response.get_data(as_text=True))


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def core_app(app_factory: Callable[..., Flask], plain_redis: RedisServer) -> Flask:
    """About the HTTP layer, not storage: the core backend's server is enough."""
    get_services_client = app_factory(plain_redis, TIMESERIES_BACKEND="core")
    get_services(get_services_client).redis.flushdb()
    return get_services_client


def requests_total(samples: Samples, route: str, method: str, status: int) -> float:
    return value(samples, "redisolar_http_requests_total", route=route, method=method, status=str(status))


def test_requests_by_route_and_status_count_what_was_asked(core_app: Flask) -> None:
    http = core_app.test_client()
    before = scrape(http)
    for _ in range(3):
        assert http.get("/api/sites/7").status_code == 404
    for _ in range(2):
        assert http.get("/health").status_code == 200
    assert http.get("/no/such/path").status_code == 404
    assert http.delete("/health").status_code == 405
    after = scrape(http)

    def added(route: str, method: str, status: int) -> float:
        return requests_total(after, route, method, status) - requests_total(before, route, method, status)

    assert added(SITE_ROUTE, "GET", 404) == 3
    assert added("/health", "GET", 200) == 2
    assert added("<unmatched>", "GET", 404) == 1, "the URL rule, never the raw path"
    assert added("<unmatched>", "DELETE", 405) == 1, "no rule matched the method either"
    latency = "redisolar_http_request_duration_seconds_count"
    assert delta(before, after, latency, route=SITE_ROUTE, method="GET") == 3
    assert delta(before, after, latency, route="/health", method="GET") == 2
    assert not any("/no/such" in str(labels) for _, labels in after), "raw paths never become labels"
    assert not any(("route", "/metrics") in labels for _, labels in after), "/metrics does not count itself"


def test_readings_ingested_and_refused_by_reason(core_app: Flask) -> None:
    http = core_app.test_client()
    ApiCalls(http).create_site(1)
    now = utcnow().replace(microsecond=0)
    reading = {"timestamp": now.isoformat(), "wh_generated": 10, "wh_used": 2, "temp_c": 20}
    before = scrape(http)
    assert http.post("/api/analytics/readings/1", json=reading).status_code == 201
    batch = [{**reading, "timestamp": (now - timedelta(minutes=m)).isoformat()} for m in range(1, 4)]
    assert http.post("/api/analytics/readings/1/batch", json=batch).status_code == 201
    assert http.post("/api/analytics/readings/1", json={**reading, "wh_used": -1}).status_code == 400
    assert http.post("/api/analytics/readings/99", json=reading).status_code == 404
    assert http.post("/api/analytics/readings/1", data="x", content_type="text/plain").status_code == 415
    old = {**reading, "timestamp": "2024-01-15T12:00:00Z"}  # outside the 30-day window of the newest
    assert http.post("/api/analytics/readings/1", json=old).status_code == 400
    after = scrape(http)

    assert delta(before, after, "redisolar_readings_ingested_total") == 4
    rejected = "redisolar_readings_rejected_total"
    for reason in ("invalid", "unknown_site", "not_json", "outside_retention"):
        assert delta(before, after, rejected, reason=reason) == 1, reason
    assert requests_total(after, READINGS_ROUTE, "POST", 201) >= 1


def test_rate_limited_requests_by_budget(app_factory: Callable[..., Flask], plain_redis: RedisServer) -> None:
    app = app_factory(plain_redis, TIMESERIES_BACKEND="core", RATE_LIMIT_READS="2/minute")
    get_services(app).redis.flushdb()
    http = app.test_client()
    before = parse(http.get("/metrics").get_data(as_text=True))  # the first read of the budget
    statuses = [http.get("/api/sites/3").status_code for _ in range(3)]
    assert statuses == [404, 429, 429]
    after = scrape_anyway(http)
    assert delta(before, after, "redisolar_rate_limited_requests_total", budget="reads") == 2
    assert (
        delta(before, after, "redisolar_http_requests_total", route=SITE_ROUTE, method="GET", status="429")
        == 2
    )


def scrape_anyway(http: FlaskClient) -> Samples:
    """A scrape whose own budget may be spent: the samples come from the process all the same."""
    from redisolar import metrics

    body, _ = metrics.exposition()
    return parse(body.decode())


def test_redis_round_trips_and_errors(app_factory: Callable[..., Flask], core_app: Flask) -> None:
    http = core_app.test_client()
    before = scrape(http)
    assert http.get("/api/sites/7").status_code == 404
    after = scrape(http)
    trips = sum(
        after[key] - before.get(key, 0.0)
        for key in after
        if key[0] == "redisolar_redis_round_trip_seconds_count"
    )
    assert trips >= 1

    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = app_factory(_Nowhere(port), TIMESERIES_BACKEND="core", REDIS_RETRIES=0)
    down_http = down.test_client()
    before = scrape_anyway(down_http)  # /metrics itself is a 503 now: its key check needs Redis
    assert down_http.get("/api/sites/7").status_code == 503
    after = scrape_anyway(down_http)
    errors = {
        labels: after[(name, labels)] - before.get((name, labels), 0.0)
        for name, labels in after
        if name == "redisolar_redis_errors_total"
    }
    assert any(dict(labels)["error"] == "ConnectionError" and n >= 1 for labels, n in errors.items())


class _Nowhere:
    """Quacks like a RedisServer for ``app_factory``: a URL where no Redis listens."""

    def __init__(self, port: int) -> None:
        self.url = f"redis://127.0.0.1:{port}"


def test_reconciles_are_counted_with_their_duration(core_app: Flask) -> None:
    http = core_app.test_client()
    before = scrape(http)
    assert http.post("/api/analytics/leaderboards/update", json={}).status_code == 200
    after = scrape(http)
    assert delta(before, after, "redisolar_reconcile_runs_total", outcome="done") == 1
    assert delta(before, after, "redisolar_reconcile_duration_seconds_count") == 1


def test_metrics_is_a_protected_read(app_factory: Callable[..., Flask], plain_redis: RedisServer) -> None:
    app = app_factory(plain_redis, TIMESERIES_BACKEND="core", AUTH_MODE="required")
    services = get_services(app)
    services.redis.flushdb()
    http = app.test_client()
    assert http.get("/metrics").status_code == 401
    _, write = services.create_api_key("write", sites=[1])
    assert http.get("/metrics", headers={"X-API-Key": write}).status_code == 403
    _, read = services.create_api_key("read")
    assert "redisolar_http_requests_total" in {name for name, _ in scrape(http, **{"X-API-Key": read})}


# -- across worker processes --------------------------------------------------------------------------
@pytest.fixture
def two_workers(plain_redis: RedisServer, tmp_path: Path) -> Iterator[tuple[Server, str]]:
    import os

    env = {key: value for key, value in os.environ.items() if not key.startswith("REDISOLAR_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        REDISOLAR_REDIS_URL=plain_redis.url,
        REDISOLAR_TIMESERIES="core",
        REDISOLAR_KEY_PREFIX="metrics:",
        REDISOLAR_LEADERBOARD_UPDATE_INTERVAL="0",
        REDISOLAR_RATE_LIMIT_READS="0",
    )
    port = free_port()
    server = Server(["serve", "--port", str(port), "--workers", "2", "--threads", "2"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(answers(f"{base}/health"), 60, "/health", server.process)
        wait_for(lambda: len(children_of(server.process.pid)) >= 2, 30, "two workers", server.process)
        yield server, base
    finally:
        server.close()


def test_two_workers_scrape_the_same_totals(two_workers: tuple[Server, str]) -> None:
    """N requests spread over two workers: any worker's scrape totals N; a killed worker's counts
    stay in the totals; the server's metrics directory is gone once it stops."""
    server, base = two_workers
    n = 60

    def one(_: int) -> int:
        with requests.Session() as session:  # a new connection each: the kernel picks the worker
            return session.get(f"{base}/api/sites/5", timeout=10).status_code

    with ThreadPoolExecutor(6) as pool:
        assert list(pool.map(one, range(n))) == [404] * n
    route = {"route": SITE_ROUTE, "method": "GET", "status": "404"}

    def total() -> float:
        return value(
            parse(requests.get(f"{base}/metrics", timeout=10).text), "redisolar_http_requests_total", **route
        )

    assert [total() for _ in range(4)] == [n] * 4, "every worker's scrape sums every worker"
    metrics_dirs = [
        Path(line.rsplit(" ", 1)[1]) for line in server.output().splitlines() if METRICS_DIR_LOG in line
    ]
    assert len(metrics_dirs) == 1 and metrics_dirs[0].is_dir()
    assert len(_served_by(metrics_dirs[0])) == 2, "both workers served some of the requests"
    victim = children_of(server.process.pid)[0]
    os_kill(victim)
    wait_for(lambda: not alive(victim), 30, "the killed worker to go", server.process)
    wait_for(lambda: _replaced(server, victim), 60, "a replacement worker", server.process)
    wait_for(answers(f"{base}/health"), 60, "/health", server.process)
    assert total() == n, "the dead worker's counts stay in the totals"
    assert server.stop(signal.SIGTERM) == 0
    assert not metrics_dirs[0].exists(), "the server removes its metrics directory when it stops"


def os_kill(pid: int) -> None:
    import os

    os.kill(pid, signal.SIGKILL)


def _replaced(server: Server, victim: int) -> bool:
    workers = children_of(server.process.pid)
    return victim not in workers and len(workers) >= 2


def _served_by(metrics_dir: Path) -> dict[str, float]:
    """Requests counted per process, from each process's own counter file."""
    from prometheus_client.multiprocess import MultiProcessCollector

    served = {}
    for path in metrics_dir.glob("counter_*.db"):
        families = MultiProcessCollector.merge([str(path)], accumulate=False)
        count = sum(
            sample.value
            for family in families
            if family.name == "redisolar_http_requests"
            for sample in family.samples
            if sample.labels.get("route") == SITE_ROUTE
        )
        if count:
            served[path.stem] = count
    return served
