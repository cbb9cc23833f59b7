"""Alert rules at ingest (:mod:`redisolar.alerts.at_ingest`): a threshold rule opens and resolves on the
posted values, a fresh reading resolves the site's offline alert, without an evaluator pass; an alert
opens once under concurrent ingests and evaluator passes; the rules are read once per cache period,
not per reading. On every target."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from redisolar.alerts import at_ingest, service
from redisolar.alerts.rules import RuleStore
from redisolar.app import get_services
from redisolar.events.stream import EventKeys, read_range
from redisolar.timeutil import utcnow
from tests.conftest import ApiCalls
from tests.test_alerts import add_rule, alerts


def minutes_ago(minutes: float) -> str:
    return (utcnow().replace(microsecond=0) - timedelta(minutes=minutes)).isoformat()


def alert_events(app: Flask, notify: bool = False) -> list[tuple[str, dict[str, Any]]]:
    services = get_services(app)
    streams = EventKeys.of(services.keys)
    found = read_range(services.redis, streams.notify if notify else streams.stream)
    return [(e.kind, e.data) for e in found if e.kind.startswith("alert.")]


def post(api: ApiCalls, site_id: int, minutes: float, **values: Any) -> None:
    api.post_readings(site_id, [api.reading_body(minutes_ago(minutes), **values)])


def test_a_threshold_opens_once_and_resolves_at_ingest(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(1)
    api.create_site(2)
    rule = add_rule(http, kind="threshold", metric="temp_c", op=">", value=70)
    post(api, 1, 3, temp_c=81.5)
    post(api, 2, 3, temp_c=40.0)
    [opened] = alerts(http, state="open")  # no evaluator pass ran
    assert opened["site_id"] == 1 and opened["rule_id"] == rule["id"] and opened["values"]["value"] == 81.5
    post(api, 1, 2, temp_c=90.0)  # still above: still one
    assert [a["id"] for a in alerts(http, state="open")] == [opened["id"]]
    post(api, 1, 1, temp_c=25.0)
    assert alerts(http, state="open") == []
    [resolved] = alerts(http, state="resolved")
    assert resolved["id"] == opened["id"] and resolved["resolved_values"]["value"] == 25.0
    kinds = [(kind, data["id"]) for kind, data in alert_events(app)]
    assert kinds == [("alert.opened", opened["id"]), ("alert.resolved", opened["id"])]
    assert alert_events(app, notify=True) == alert_events(app)  # the webhooks get them too
    assert [a["id"] for a in service.site_history(get_services(app), 1)] == [opened["id"]]


def test_a_back_filled_reading_decides_no_threshold(app: Flask, http: FlaskClient, api: ApiCalls) -> None:
    api.create_site(1)
    add_rule(http, kind="threshold", metric="temp_c", op=">", value=70)
    post(api, 1, 1, temp_c=20.0)
    post(api, 1, 30, temp_c=95.0)  # older than the site's newest reading: not its latest value
    assert alerts(http, state="open") == []


def test_a_fresh_reading_resolves_the_offline_alert_at_ingest(
    app: Flask, http: FlaskClient, api: ApiCalls
) -> None:
    api.create_site(1)
    add_rule(http, kind="offline", site_id=1, minutes=30)
    post(api, 1, 120)
    service.evaluate(get_services(app))
    [opened] = [a for a in alerts(http, state="open") if a["kind"] == "offline"]
    post(api, 1, 90)  # a late reading, still silent for 90 minutes: stays open
    assert [a["id"] for a in alerts(http, state="open")] == [opened["id"]]
    post(api, 1, 1)
    assert alerts(http, state="open") == []  # no evaluator pass ran
    [resolved] = alerts(http, state="resolved")
    assert resolved["id"] == opened["id"] and resolved["resolution"] == "a reading arrived"
    assert [kind for kind, _ in alert_events(app)] == ["alert.opened", "alert.resolved"]


def test_an_alert_opens_once_under_concurrent_ingests_and_evaluator_passes(
    app: Flask, http: FlaskClient, api: ApiCalls
) -> None:
    api.create_site(1)
    add_rule(http, kind="threshold", metric="temp_c", op=">=", value=50)
    services = get_services(app)
    errors: list[BaseException] = []

    def ingest_hot(offset: int) -> None:
        try:
            for n in range(5):
                client = app.test_client()
                body = [api.reading_body(minutes_ago(0.5 * (10 - n) + offset / 100), temp_c=60.0 + n)]
                response = client.post("/api/analytics/readings/1/batch", json=body)
                assert response.status_code == 201, response.get_data(as_text=True)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    def evaluate() -> None:
        for _ in range(3):
            service.evaluate(services)

    threads = [threading.Thread(target=ingest_hot, args=(i,)) for i in range(4)]
    threads.append(threading.Thread(target=evaluate))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert len(alerts(http, state="open")) == 1
    assert len(service.site_history(services, 1)) == 1
    assert [kind for kind, _ in alert_events(app)] == ["alert.opened"]


def test_the_rules_are_read_once_per_cache_period_and_a_change_is_seen_at_once(
    app: Flask, http: FlaskClient, api: ApiCalls, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.create_site(1)
    post(api, 1, 20)  # (the cache holds no rules now)
    reads: list[int] = []
    original = RuleStore.all

    def counted(self: RuleStore) -> Any:
        reads.append(1)
        return original(self)

    monkeypatch.setattr(RuleStore, "all", counted)
    monkeypatch.setattr(at_ingest, "RULES_TTL_S", 3600.0)
    for minutes in (10, 9, 8, 7):
        post(api, 1, minutes, temp_c=99.0)
    assert reads == []  # no rule, no read: nothing added to those ingests
    rule = add_rule(http, kind="threshold", metric="temp_c", op=">", value=70)  # seen at the next ingest
    post(api, 1, 6, temp_c=99.0)
    post(api, 1, 5, temp_c=99.0)
    assert len(reads) == 1
    assert [a["rule_id"] for a in alerts(http, state="open")] == [rule["id"]]
    assert http.delete(f"/api/alerts/rules/{rule['id']}").status_code == 204
    post(api, 1, 4, temp_c=10.0)  # the rule is gone: nothing decided at ingest
    assert len(alerts(http, state="open")) == 1  # (the evaluator's next pass resolves it)
