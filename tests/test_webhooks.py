"""Webhooks: registration (admin API), signed deliveries to a local receiver started by the test, retries
after a 500, no delivery anywhere but the registered URL (no redirects followed, no reading events)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from redisolar.app import get_services
from redisolar.events import signing
from redisolar.events.deliverer import Deliverer
from redisolar.events.stream import publish


class Receiver:
    """An HTTP server in a thread that records every request and answers from a script of statuses
    (then 200); a status 302 redirects to ``location``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.location = ""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                receiver.requests.append({"headers": self.headers, "body": self.rfile.read(length)})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[tuple[Receiver, Receiver]]:
    pair = (Receiver(), Receiver())
    yield pair
    for receiver in pair:
        receiver.close()


@pytest.fixture
def deliverer(app: Flask) -> Deliverer:
    services = get_services(app)
    return Deliverer(services.redis, services.keys, timeout=5.0, base_delay=10.0)


def register(http: FlaskClient, url: str, **extra: Any) -> dict[str, Any]:
    response = http.post("/api/webhooks", json={"url": url, **extra})
    assert response.status_code == 201, response.get_data(as_text=True)
    body: dict[str, Any] = response.get_json()
    return body


def alert(app: Flask, kind: str = "alert.opened", site_id: int = 3) -> str:
    services = get_services(app)
    return publish(services.redis, services.keys, kind, {"site_id": site_id, "rule": "offline"})


def deliveries(http: FlaskClient, webhook_id: str) -> list[dict[str, Any]]:
    response = http.get(f"/api/webhooks/{webhook_id}/deliveries")
    assert response.status_code == 200
    found: list[dict[str, Any]] = response.get_json()["deliveries"]
    return found


def test_a_delivery_is_signed_with_the_secret_shown_once(
    app: Flask, http: FlaskClient, deliverer: Deliverer, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver = receivers[0]
    hook = register(http, receiver.url)
    assert hook["secret"].startswith("whsec_") and hook["kinds"] == ["alert.opened", "alert.resolved"]
    listed = http.get("/api/webhooks").get_json()["webhooks"]
    assert listed == [{key: hook[key] for key in ("id", "url", "kinds", "created")}]  # no secret
    deliverer.ensure_group()
    event_id = alert(app)
    assert deliverer.poll() == 1
    [request] = receiver.requests
    body = request["body"]
    header = request["headers"][signing.HEADER]
    assert signing.verify(hook["secret"], header, body, now=time.time())
    assert not signing.verify("whsec_other", header, body, now=time.time())
    assert not signing.verify(hook["secret"], header, body + b" ", now=time.time())
    sent = json.loads(body)
    assert sent["event_id"] == event_id and sent["kind"] == "alert.opened"
    assert sent["data"] == {"site_id": 3, "rule": "offline"}
    assert request["headers"]["X-RediSolar-Event"] == "alert.opened"
    [logged] = deliveries(http, hook["id"])
    assert logged["state"] == "delivered" and logged["http_status"] == 200 and logged["attempt"] == 1
    assert deliverer.poll() == 0  # acknowledged: never sent twice


def test_a_500_is_retried_with_backoff_until_delivered(
    app: Flask, http: FlaskClient, deliverer: Deliverer, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver = receivers[0]
    receiver.statuses = [500, 503]
    hook = register(http, receiver.url)
    deliverer.ensure_group()
    alert(app, "alert.resolved")
    start = time.time()
    deliverer.poll(now=start)
    assert len(receiver.requests) == 1
    [first] = deliveries(http, hook["id"])
    assert first["state"] == "retrying" and first["http_status"] == 500
    assert first["next_attempt"] == int((start + 10.0) * 1000)  # base_delay x 2^0
    assert deliverer.retry_due(now=start + 5.0) == 0  # not due yet
    assert deliverer.retry_due(now=start + 10.0) == 1  # 503: again, 20 s later
    second = deliveries(http, hook["id"])[0]
    assert second["attempt"] == 2 and second["next_attempt"] == int((start + 30.0) * 1000)
    assert deliverer.retry_due(now=start + 30.0) == 1
    third = deliveries(http, hook["id"])[0]
    assert third["state"] == "delivered" and third["attempt"] == 3
    bodies = {request["body"] for request in receiver.requests}
    assert len(receiver.requests) == 3 and len(bodies) == 1  # the same delivery (same id) each time
    assert deliverer.retry_due(now=start + 1000.0) == 0


def test_nothing_goes_anywhere_but_the_registered_url(
    app: Flask, http: FlaskClient, deliverer: Deliverer, receivers: tuple[Receiver, Receiver]
) -> None:
    registered, elsewhere = receivers
    registered.statuses = [302]
    registered.location = elsewhere.url
    hook = register(http, registered.url)
    deliverer.ensure_group()
    alert(app)
    publish(get_services(app).redis, get_services(app).keys, "reading", {"site_id": 3})
    deliverer.poll()
    assert len(registered.requests) == 1  # the alert only: reading events are never delivered
    assert elsewhere.requests == []  # the redirect was not followed
    [logged] = deliveries(http, hook["id"])
    assert logged["state"] == "failed" and logged["http_status"] == 302
    assert deliverer.retry_due(now=time.time() + 10_000) == 0


def test_a_deleted_webhook_gets_nothing_more(
    app: Flask, http: FlaskClient, deliverer: Deliverer, receivers: tuple[Receiver, Receiver]
) -> None:
    receiver = receivers[0]
    receiver.statuses = [500]
    hook = register(http, receiver.url)
    deliverer.ensure_group()
    alert(app)
    deliverer.poll()
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 204
    assert deliverer.retry_due(now=time.time() + 10_000) == 0
    assert len(receiver.requests) == 1
    assert http.delete(f"/api/webhooks/{hook['id']}").status_code == 404
    assert http.get(f"/api/webhooks/{hook['id']}/deliveries").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x"},
        {"url": "http://user:pw@example.com/x"},
        {"url": "not a url"},
        {"url": "http://example.com/x", "kinds": ["reading"]},
        {"url": "http://example.com/x", "kinds": []},
        {},
    ],
)
def test_a_bad_registration_is_a_400_that_changes_nothing(http: FlaskClient, body: dict[str, Any]) -> None:
    response = http.post("/api/webhooks", json=body)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert set(response.get_json()) >= {"error", "details"}
    assert http.get("/api/webhooks").get_json() == {"webhooks": []}
