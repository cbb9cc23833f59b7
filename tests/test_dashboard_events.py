"""The dashboard updates from the event stream: with polling set to once an hour, a reading posted while
a site's page is open shows on it (only ``GET /api/events`` can have told the page)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import redis
import requests

from redisolar.timeutil import utcnow
from tests.conftest import BackendServer
from tests.test_dashboard import Page, _sample_app, _serve, browser  # noqa: F401 (the browser fixture)

pytestmark = [pytest.mark.core, pytest.mark.parametrize("backend_server", ["core"], indirect=True)]


def test_a_site_page_shows_a_new_reading_from_the_event_stream(
    browser: Any,  # noqa: F811
    backend_server: BackendServer,
    client: redis.Redis,
) -> None:
    app = _sample_app(backend_server, DASHBOARD_REFRESH_MS=3_600_000)  # no poll within the test
    for url in _serve(app):
        tab = Page(browser, url, viewport={"width": 1280, "height": 900})
        try:
            page = tab.page
            page.goto(f"{url}/sites/1")
            page.wait_for_selector('body[data-live="true"]')  # the stream is open
            page.wait_for_selector('#latest .tile[data-metric="wh_generated"]:not([data-timestamp=""])')
            at = utcnow().replace(microsecond=0) + timedelta(seconds=60)
            reading = {"timestamp": at.isoformat(), "wh_generated": 4321.0, "wh_used": 12.0, "temp_c": 22.5}
            posted = requests.post(f"{url}/api/analytics/readings/1", json=reading, timeout=10)
            assert posted.status_code == 201, posted.text
            page.wait_for_selector('#latest .tile[data-metric="wh_generated"][data-value="4321"]')
            assert tab.errors == []
        finally:
            tab.context.close()
