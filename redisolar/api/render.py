"""JSON bodies of fixed shape, built directly from the models: no per-request schema walk.

Each function gives exactly what the matching marshmallow schema (which documents the shape in the
OpenAPI document) would dump: floats as floats, datetimes and dates as ISO 8601. The tests compare
the two (``tests/test_api_render.py``).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from flask import Response, current_app

from redisolar.models.site import LeaderboardEntry, Site, TimeSeriesData


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as the app's strict JSON (no NaN or Infinity), with ``status``."""
    response = cast(Response, current_app.json.response(body))
    response.status_code = status
    return response


def site(s: Site) -> dict[str, Any]:
    """``SiteSchema``'s dump of a site."""
    c = s.coordinate
    return {
        "id": s.id,
        "capacity": float(s.capacity),
        "panels": s.panels,
        "address": s.address,
        "city": s.city,
        "state": s.state,
        "postal_code": s.postal_code,
        "coordinate": None if c is None else {"lat": float(c.lat), "lng": float(c.lng)},
        "timezone": s.timezone,
    }


def point(p: TimeSeriesData) -> dict[str, Any]:
    """``TimeSeriesDataSchema``'s dump of a point."""
    return {"timestamp": p.timestamp.isoformat(), "value": float(p.value)}


def entry(e: LeaderboardEntry) -> dict[str, Any]:
    """``LeaderboardEntrySchema``'s dump of a leaderboard entry."""
    return {"site": site(e.site), "score": float(e.score), "rank": e.rank}


def board_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """``LeaderboardStatsSchema``'s dump of a board's stats."""
    return {
        "total_sites": int(stats["total_sites"]),
        "highest_score": float(stats["highest_score"]),
        "lowest_score": float(stats["lowest_score"]),
        "average_score": float(stats["average_score"]),
    }


def fleet_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """``FleetSummarySchema``'s dump of a fleet summary."""
    return {
        "total_sites": int(summary["total_sites"]),
        "active_sites_24h": int(summary["active_sites_24h"]),
        "total_capacity_kw": float(summary["total_capacity_kw"]),
        "total_generation_24h_wh": float(summary["total_generation_24h_wh"]),
        "overall_efficiency_percent": float(summary["overall_efficiency_percent"]),
        "period_start": str(summary["period_start"]),
        "period_end": str(summary["period_end"]),
    }


def iso(value: date | datetime | None) -> str | None:
    """A date or datetime as ISO 8601, None as None."""
    return None if value is None else value.isoformat()
