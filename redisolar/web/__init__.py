"""The dashboard: HTML pages for people, served by the same app as the API.

The pages are clients of the public REST API like any other: the server only renders a shell (no
Redis access here); ``static/dashboard.js`` fetches ``/api/...``, draws the map and charts as inline
SVG and polls for fresh data. No CDN, no build step, no inline scripts (the pages send a strict CSP).

- ``GET /`` with ``Accept`` preferring ``text/html`` over ``application/json`` (a browser): the fleet
  page; any other ``GET /`` gets the API's JSON index. The API's index view does the routing: it hands
  browsers to the endpoint ``web.dashboard`` when registered (:data:`DASHBOARD_ENDPOINT`);
- ``GET /dashboard``: the fleet page whatever the ``Accept``;
- ``GET /sites/<id>``: a site's page.

The fleet page never asks for the whole fleet: its map asks ``GET /api/sites/map`` for the sites of
the view it draws (at most 500, on load, on each poll and after each move or zoom), and its list pages
through ``GET /api/sites?limit=10`` following the ``Link`` header. Decision for a view holding more
sites than it may draw: draw the 500 the API spreads over the view and say "Showing 500 sites spread
over this view; it holds more: zoom in to see them all" (clusters with counts would need a count per
area, which no read bounded by the page can give). Markers show their ids only when 40 or fewer.

Config: ``DASHBOARD_REFRESH_MS`` (default 7000), how often an open page polls the API;
``DASHBOARD_API_BASE`` (default ``/api``), where the pages find the API.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, render_template, request

DASHBOARD_ENDPOINT = "web.dashboard"
"""The endpoint the API's ``GET /`` hands browsers to (``redisolar.api.service_routes``)."""

DEFAULT_REFRESH_MS = 7000
MIN_REFRESH_MS = 100
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/ui/static",
)


def _page(template: str, **context: object) -> Response:
    refresh_ms = max(MIN_REFRESH_MS, int(current_app.config.get("DASHBOARD_REFRESH_MS", DEFAULT_REFRESH_MS)))
    api_base = str(current_app.config.get("DASHBOARD_API_BASE", "/api")).rstrip("/")
    html = render_template(template, refresh_ms=refresh_ms, api_base=api_base, **context)
    response = Response(html, mimetype="text/html")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Vary"] = "Accept"
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/dashboard")
def dashboard() -> Response:
    """The fleet page: summary tiles, the map of the sites, the leaderboards."""
    return _page("web/fleet.html", page="fleet", site_id=None)


@bp.get("/sites/<int:site_id>")
def site(site_id: int) -> Response:
    """A site's page: details, latest readings, charts, rank and neighbours."""
    return _page("web/site.html", page="site", site_id=site_id)


def _vary_on_accept(response: Response) -> Response:
    """``after_request`` hook: ``/`` depends on ``Accept`` (HTML for browsers, JSON otherwise)."""
    if request.path == "/":
        response.vary.add("Accept")
    return response


def init_app(app: Flask) -> None:
    """Register the dashboard on ``app``. ``GET /`` (the API's index) then serves it to browsers."""
    app.register_blueprint(bp)
    app.after_request(_vary_on_accept)


__all__ = ["DASHBOARD_ENDPOINT", "bp", "init_app"]
