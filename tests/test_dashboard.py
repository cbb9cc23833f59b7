"""Browser tests of the dashboard (redisolar.web): headless Chromium driven by Playwright.

A real server: ``create_app`` on a private Redis (the ``core`` backend; the dashboard only talks to the
REST API, whose answers the contract tests already check on both backends), loaded with the sample
data, served by werkzeug in a thread. Chromium is Debian's (``make browser``); Playwright's own
browser download is never used. A missing Chromium is a skip locally and a failure in CI.
Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import redis
import requests
from werkzeug.serving import make_server

from redisolar.app import create_app, get_services
from redisolar.sample_data import load_plan, plan_sample_data
from tests.conftest import BackendServer, in_ci
from tests.test_api_site_pages import FLEET, bulk_write

pytestmark = [pytest.mark.core, pytest.mark.parametrize("backend_server", ["core"], indirect=True)]

CHROMIUM = os.environ.get("REDISOLAR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "artifacts" / "screenshots"
REFRESH_MS = 600
TIMEOUT_MS = 15_000
METRICS = ("wh_generated", "wh_used", "net_generation", "temp_c")
BOARDS = ("capacity", "generation", "efficiency")


# -- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium (skip if missing; fail in CI)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) or shutil.which("chromium") is None:
        reason = f"no Chromium at {CHROMIUM}: run `make browser` (apt-get install chromium)"
        if in_ci():
            pytest.fail(f"{reason} (a missing browser is a failure when CI is set)", pytrace=False)
        pytest.skip(reason)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci():
            pytest.fail("playwright is not installed: pip install -e '.[dev]'", pytrace=False)
        pytest.skip("playwright is not installed: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def base_url(backend_server: BackendServer, client: redis.Redis) -> Iterator[str]:
    """A live server (create_app on the flushed private Redis, sample data loaded); its base URL."""
    yield from _serve(_sample_app(backend_server))


@pytest.fixture
def keyed_server(backend_server: BackendServer, client: redis.Redis) -> Iterator[tuple[str, str]]:
    """A live server with AUTH_MODE=required; its base URL and a read key."""
    app = _sample_app(backend_server, AUTH_MODE="required")
    _, secret = get_services(app).create_api_key("read", name="dashboard")
    for url in _serve(app):
        yield url, secret


def _sample_app(backend_server: BackendServer, **config: Any) -> Any:
    server = backend_server.server
    app = create_app(
        "test",
        {
            "TESTING": True,
            "REDIS_URL": f"redis://{server.host}:{server.port}/0",
            "DASHBOARD_REFRESH_MS": REFRESH_MS,
            **config,
        },
    )
    load_plan(get_services(app), plan_sample_data())
    return app


def _serve(app: Any) -> Iterator[str]:
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, name="dashboard-test-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{http.server_port}"
    http.shutdown()
    thread.join(timeout=10)
    http.server_close()


class Page:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, base_url: str, **context: Any) -> None:
        self.base_url = base_url
        self.context = browser.new_context(**context)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def screenshot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


@pytest.fixture
def open_page(browser: Any, base_url: str) -> Iterator[Any]:
    """``open_page(**context)``: a new :class:`Page` (closed after the test)."""
    pages: list[Page] = []

    def make(**context: Any) -> Page:
        page = Page(browser, base_url, **context)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.context.close()


def api(base_url: str, path: str, **params: Any) -> Any:
    response = requests.get(f"{base_url}/api{path}", params=params, timeout=10)
    response.raise_for_status()
    return response.json()


def wait_for_charts(page: Any) -> None:
    for metric in METRICS:
        page.wait_for_selector(f'.chart[data-metric="{metric}"][data-count] svg', state="attached")


def chart_state(page: Any, metric: str) -> dict[str, Any]:
    """The query a chart was drawn from and its points, read at one instant."""
    result: dict[str, Any] = page.evaluate(
        """metric => {
            const figure = document.querySelector(`.chart[data-metric="${metric}"]`);
            const points = Array.from(figure.querySelectorAll("circle.point"));
            return {query: figure.dataset.query, count: Number(figure.dataset.count),
                    points: points.map(p => [p.dataset.timestamp, Number(p.dataset.value)])};
        }""",
        metric,
    )
    return result


def assert_charts_match_api(page: Any, base_url: str, site_id: int) -> None:
    for metric in METRICS:
        state = chart_state(page, metric)
        expected = api(base_url, f"/analytics/readings/{site_id}/{metric}", **dict(parse_qsl(state["query"])))
        assert state["count"] == expected["count"] == len(state["points"]), metric
        assert [t for t, _ in state["points"]] == [p["timestamp"] for p in expected["data"]], metric
        assert [v for _, v in state["points"]] == pytest.approx([p["value"] for p in expected["data"]]), (
            metric
        )


# -- tests ----------------------------------------------------------------------------------------------
def test_root_serves_json_to_clients_and_the_dashboard_to_browsers(base_url: str) -> None:
    as_json = requests.get(f"{base_url}/", timeout=10)
    assert as_json.headers["Content-Type"].startswith("application/json")
    assert as_json.json()["message"] == "RediSolar API is running!"
    browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    as_html = requests.get(f"{base_url}/", headers={"Accept": browser_accept}, timeout=10)
    assert as_html.headers["Content-Type"].startswith("text/html")
    assert 'data-page="fleet"' in as_html.text
    assert "Accept" in as_html.headers["Vary"]
    assert "script-src 'self'" in as_html.headers["Content-Security-Policy"]
    site_page = requests.get(f"{base_url}/sites/2", timeout=10)
    assert site_page.status_code == 200 and 'data-site-id="2"' in site_page.text


def test_fleet_page_map_tiles_and_leaderboards(open_page: Any, base_url: str) -> None:
    tab = open_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    page.goto(f"{base_url}/")
    sites = api(base_url, "/sites")
    page.wait_for_selector("#map a.marker")
    markers = page.locator("#map a.marker")
    assert markers.count() == len(sites) == 5
    marker_ids = sorted(int(markers.nth(i).get_attribute("data-site-id")) for i in range(markers.count()))
    assert marker_ids == sorted(site["id"] for site in sites)
    for site in sites:
        marker = page.locator(f'#map a.marker[data-site-id="{site["id"]}"]')
        assert f"Site {site['id']} (" in (marker.get_attribute("aria-label") or "")
        assert marker.get_attribute("href") == f"/sites/{site['id']}"
    assert page.locator("#map-note").get_attribute("data-truncated") == "false"
    # the fleet list: one page of them, by id, with their names
    page.wait_for_selector("#site-rows tr[data-site-id]")
    rows = page.eval_on_selector_all("#site-rows tr", "rows => rows.map(r => Number(r.dataset.siteId))")
    assert rows == [site["id"] for site in sites]
    assert sites[3]["address"] in page.locator('#site-rows tr[data-site-id="4"]').inner_text()
    assert page.locator("#list-next").is_disabled()

    page.wait_for_function("() => document.querySelector('[data-key=total_sites]').dataset.value === '5'")
    summary = api(base_url, "/analytics/summary")["summary"]
    capacity_tile = page.locator('[data-key="total_capacity_kw"]').get_attribute("data-value")
    assert float(capacity_tile or "nan") == pytest.approx(summary["total_capacity_kw"])

    for board in (*BOARDS[1:], BOARDS[0]):
        page.get_by_role("tab", name=board.capitalize()).click()
        page.wait_for_selector(f'#board-panel table[data-board="{board}"]')
        assert page.get_by_role("tab", name=board.capitalize()).get_attribute("aria-selected") == "true"
        shown = page.eval_on_selector_all(
            "#board-panel tbody tr",
            "rows => rows.map(r => [Number(r.dataset.siteId), Number(r.dataset.score)])",
        )
        entries = api(base_url, f"/analytics/leaderboards/{board}")["entries"]
        assert [site_id for site_id, _ in shown] == [entry["site"]["id"] for entry in entries], board
        assert [score for _, score in shown] == pytest.approx([entry["score"] for entry in entries]), board
    tab.screenshot("fleet")
    assert tab.errors == []

    # a leaderboard row opens its site
    page.get_by_role("tab", name="Efficiency").click()
    page.wait_for_selector('#board-panel table[data-board="efficiency"]')
    first = api(base_url, "/analytics/leaderboards/efficiency")["entries"][0]["site"]["id"]
    page.locator("#board-panel tbody tr").first.get_by_role("link").click()
    page.wait_for_url(f"{base_url}/sites/{first}")
    wait_for_charts(page)
    assert tab.errors == []


def test_site_page_from_the_map_charts_match_the_api(open_page: Any, base_url: str) -> None:
    tab = open_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    page.goto(f"{base_url}/dashboard")
    page.locator('#map a.marker[data-site-id="4"]').click()
    page.wait_for_url(f"{base_url}/sites/4")
    wait_for_charts(page)
    page.wait_for_function("() => document.querySelector('#site-title').textContent.includes('Solar City')")
    assert_charts_match_api(page, base_url, 4)
    assert chart_state(page, "wh_generated")["count"] > 0

    latest = api(base_url, "/analytics/readings/4/latest")["latest_readings"]
    page.wait_for_selector('#latest .tile[data-metric="temp_c"][data-value]:not([data-value=""])')
    for metric, reading in latest.items():
        value = page.locator(f'#latest .tile[data-metric="{metric}"]').get_attribute("data-value")
        assert float(value or "nan") == pytest.approx(reading["value"]), metric

    page.wait_for_selector('#rank-panel tr[aria-current="true"]')
    rank = api(base_url, "/analytics/leaderboards/capacity/site/4", context=2)
    ids = "rows => rows.map(r => Number(r.dataset.siteId))"
    shown = page.eval_on_selector_all("#rank-panel tbody tr", ids)
    assert shown == [entry["site"]["id"] for entry in rank["surrounding_sites"]]
    assert page.locator('#rank-panel tr[aria-current="true"]').get_attribute("data-site-id") == "4"
    tab.screenshot("site")

    # 7 days, 6-hour averages
    page.get_by_label("Range").select_option("7d")
    page.get_by_label("Aggregation").select_option("avg")
    page.get_by_label("Bucket").select_option("21600000")
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('.chart')).every(f => (f.dataset.query || '')"
        ".includes('aggregation=avg') && f.dataset.query.includes('bucket_size=21600000'))"
    )
    assert_charts_match_api(page, base_url, 4)
    assert 25 <= chart_state(page, "temp_c")["count"] <= 29  # 7 days of 6-hour buckets
    page.get_by_role("tab", name="Generation").click()
    page.wait_for_selector('#rank-panel[data-board="generation"] tr[aria-current="true"]')
    tab.screenshot("site-7d-avg")
    assert tab.errors == []


def test_a_new_reading_appears_without_a_reload(open_page: Any, base_url: str) -> None:
    tab = open_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    page.goto(f"{base_url}/sites/1")
    page.wait_for_selector('#latest .tile[data-metric="wh_generated"][data-value]:not([data-value=""])')
    page.evaluate("window.__sameDocument = true")
    before = chart_state(page, "wh_generated")["count"]
    now = datetime.now(UTC).replace(microsecond=0)
    reading: dict[str, Any] = {
        "timestamp": now.isoformat(),
        "wh_generated": 4321.25,
        "wh_used": 1234.25,
        "temp_c": 31.5,
    }
    posted = requests.post(f"{base_url}/api/analytics/readings/1", json=reading, timeout=10)
    assert posted.status_code == 201, posted.text
    page.wait_for_function(
        "() => document.querySelector('#latest .tile[data-metric=wh_generated]').dataset.value === '4321.25'"
    )
    assert page.locator('#latest .tile[data-metric="net_generation"]').get_attribute("data-value") == "3087"
    assert "4,321" in page.locator('#latest .tile[data-metric="wh_generated"] .value').inner_text()
    count = "() => Number(document.querySelector('.chart[data-metric=wh_generated]').dataset.count)"
    page.wait_for_function(f"{count} > {before}")
    assert page.evaluate("window.__sameDocument") is True  # no reload
    assert tab.errors == []


def test_an_api_outage_shows_an_alert_and_recovers(open_page: Any, base_url: str) -> None:
    tab = open_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    page.goto(f"{base_url}/dashboard")
    page.wait_for_selector("#map a.marker")
    alert = page.get_by_role("alert")
    assert alert.is_hidden()
    page.route(
        "**/api/**",
        lambda route: route.fulfill(
            status=503,
            content_type="application/json",
            headers={"Retry-After": "5"},
            body='{"error": "Redis is unavailable; try again shortly", "details": null}',
        ),
    )
    alert.wait_for(state="visible")
    assert "503" in alert.inner_text() and "Redis is unavailable" in alert.inner_text()
    assert page.locator("#map a.marker").count() == 5  # the last data stays
    tab.screenshot("fleet-api-down")
    page.unroute("**/api/**")
    alert.wait_for(state="hidden")


@pytest.mark.parametrize("path", ["/dashboard", "/sites/2"])
def test_pages_fit_a_phone_screen(open_page: Any, base_url: str, path: str) -> None:
    tab = open_page(
        viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True
    )
    page = tab.page
    page.goto(base_url + path)
    if path == "/dashboard":
        page.wait_for_selector("#board-panel table")
        page.wait_for_selector("#map a.marker")
    else:
        wait_for_charts(page)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    tab.screenshot("phone-" + ("fleet" if path == "/dashboard" else "site"))
    assert tab.errors == []


def test_under_required_keys_the_dashboard_asks_once_and_sends_the_key_as_a_header(
    browser: Any, keyed_server: tuple[str, str]
) -> None:
    base_url, secret = keyed_server
    tab = Page(browser, base_url, viewport={"width": 1280, "height": 900})
    try:
        page = tab.page
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.url, r.headers.get("x-api-key"))))
        page.goto(f"{base_url}/dashboard")
        form = page.locator("#key-form")
        form.wait_for(state="visible")
        assert "needs an API key" in form.inner_text()
        tab.screenshot("fleet-asks-for-a-key")
        page.fill("#key-input", secret)
        page.click("#key-form button[type=submit]")
        page.wait_for_selector("#map a.marker")
        assert page.locator("#map a.marker").count() == 5
        assert form.is_hidden()
        page.goto(f"{base_url}/sites/2")  # the key is remembered: no second question
        wait_for_charts(page)
        assert form.is_hidden()
        keyed = [(url, key) for url, key in sent if "/api/" in url and key is not None]
        assert keyed and all(key == secret for _, key in keyed)
        assert all(secret not in url for url, _ in sent), "the key never goes in a URL"
        assert tab.context.cookies() == [], "nor in a cookie"
        page.evaluate("localStorage.setItem('redisolar.apiKey', 'rsk_000000000000_' + 'x'.repeat(43))")
        page.reload()
        form.wait_for(state="visible")
        assert "refused" in form.inner_text()
    finally:
        tab.context.close()


# -- a large fleet ----------------------------------------------------------------------------------------
@pytest.fixture
def big_fleet_url(backend_server: BackendServer, client: redis.Redis) -> Iterator[str]:
    """A live server on 100,000 sites written in bulk (no readings)."""
    server = backend_server.server
    app = create_app(
        "test",
        {
            "TESTING": True,
            "REDIS_URL": f"redis://{server.host}:{server.port}/0",
            "DASHBOARD_REFRESH_MS": 5000,
        },
    )
    services = get_services(app)
    bulk_write(services.redis, services.keys, FLEET)
    yield from _serve(app)


def test_at_100000_sites_the_fleet_page_asks_for_what_it_draws(browser: Any, big_fleet_url: str) -> None:
    tab = Page(browser, big_fleet_url, viewport={"width": 1280, "height": 900})
    try:
        page = tab.page
        answers: list[tuple[str, int]] = []
        page.on("requestfinished", lambda r: answers.append((r.url, r.sizes()["responseBodySize"])))
        page.goto(f"{big_fleet_url}/dashboard")
        note = page.locator("#map-note")
        page.wait_for_selector('#map-note[data-truncated="true"]')
        markers = page.locator("#map a.marker").count()
        assert markers == int(note.get_attribute("data-count") or 0) == 500
        assert "zoom in" in note.inner_text()
        page.wait_for_selector("#site-rows tr[data-site-id]")
        assert page.locator("#site-rows tr").count() == 10
        page.click("#list-next")
        page.wait_for_selector('#site-rows tr[data-site-id="11"]')
        assert page.locator("#list-first").is_enabled()

        for _ in range(5):  # 1/32 of the US view: about a hundred sites of the 0.15 x 0.1 degree grid
            page.click("#map-in")
        page.wait_for_selector('#map-note[data-truncated="false"]')
        shown = int(note.get_attribute("data-count") or 0)
        assert 0 < shown < 500 and page.locator("#map a.marker").count() == shown
        tab.screenshot("fleet-100000-sites")

        api_answers = [(url, size) for url, size in answers if "/api/" in url]
        assert any("/api/sites/map?" in url for url, _ in api_answers)
        assert all("/api/sites?" not in url or "limit=10" in url for url, _ in api_answers)
        assert max(size for _, size in api_answers) < 60_000, api_answers
        assert tab.errors == []
    finally:
        tab.context.close()


def test_site_page_daily_energy_bars_in_local_days(open_page: Any, base_url: str) -> None:
    """30 bars, one per local day of GET /analytics/energy, each the API's Wh; labelled with the zone,
    and the readings' charts say which zone their times are in."""
    tab = open_page(viewport={"width": 1280, "height": 900})
    page = tab.page
    site = api(base_url, "/sites/4")
    site = site.get("site", site)
    page.goto(f"{base_url}/sites/4")
    page.wait_for_selector("#energy-bars[data-count] svg rect.bar", state="attached")
    figure = page.locator("#energy-bars")
    expected = api(base_url, "/analytics/energy/4", granularity="day")
    bars = page.eval_on_selector_all(
        "#energy-bars rect.bar", "bars => bars.map(b => [b.dataset.period, Number(b.dataset.value)])"
    )
    assert len(bars) == int(figure.get_attribute("data-count") or 0) == expected["count"] == 30
    assert [period for period, _ in bars] == [p["period"] for p in expected["periods"]]
    assert [value for _, value in bars] == pytest.approx([p["wh_generated"] for p in expected["periods"]])
    assert any(value > 0 for _, value in bars)
    assert expected["timezone"] == site["timezone"]
    assert site["timezone"] in page.locator("#energy-tz").inner_text()
    assert figure.get_attribute("data-timezone") == site["timezone"]
    wait_for_charts(page)
    page.wait_for_function("() => document.querySelector('#chart-tz').dataset.timezone !== ''")
    assert f"Times in {site['timezone']}" in page.locator("#chart-tz").inner_text()
    tab.screenshot("site-energy")
    assert tab.errors == []
