"""The seed's Step 11 client flow (``test_api_calls.py``), runnable and checked: ``make test-api``.

    python -m bench.api_calls [BASE_URL] [--site ID]      (default http://localhost:8081, site 1)

Against a running server with the sample data (``make run``): adds a reading timed now, reads the
latest readings, the last 24 hours of ``wh_generated``, the leaderboards, the site's capacity rank,
its analytics and the fleet summary, and checks each answer's status and shape. Prints one line per
step; exits 0 when every check passed, 1 at the first that failed (or when the server cannot be reached).

The step functions are also what the end-to-end test (``tests/test_e2e.py``) runs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

DEFAULT_BASE_URL = "http://localhost:8081"
TIMEOUT = 10.0
GENERATED = 150.5


class ApiCheckError(AssertionError):
    """An answer of the API is not what the seed's contract says."""


def expect(condition: bool, message: str) -> None:
    """Raise :class:`ApiCheckError` with ``message`` unless ``condition``."""
    if not condition:
        raise ApiCheckError(message)


@dataclass
class Client:
    """A base URL and an HTTP session."""

    base_url: str = DEFAULT_BASE_URL
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, expected: int, **kwargs: Any) -> Any:
        """The JSON body of ``method path``, after checking the status is ``expected``."""
        response = self.session.request(method, self.base_url.rstrip("/") + path, timeout=TIMEOUT, **kwargs)
        expect(
            response.status_code == expected,
            f"{method} {path}: status {response.status_code}, expected {expected}: {response.text[:300]}",
        )
        try:
            return response.json()
        except ValueError:
            raise ApiCheckError(f"{method} {path}: the body is not JSON: {response.text[:300]}") from None


def _has(body: Any, *keys: str, where: str) -> None:
    expect(isinstance(body, dict), f"{where}: expected a JSON object, got {body!r:.200}")
    missing = [key for key in keys if key not in body]
    expect(not missing, f"{where}: missing {', '.join(missing)} in {body!r:.300}")


def _parse_time(value: Any, where: str) -> datetime:
    expect(isinstance(value, str), f"{where}: timestamp {value!r} is not a string")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiCheckError(f"{where}: timestamp {value!r} is not ISO 8601") from None
    expect(parsed.tzinfo is not None, f"{where}: timestamp {value!r} has no UTC offset")
    return parsed


def _window(hours: int = 24) -> dict[str, str]:
    end = datetime.now(UTC) + timedelta(seconds=1)
    return {"start": (end - timedelta(hours=hours)).isoformat(), "end": end.isoformat()}


# -- the steps ---------------------------------------------------------------------------------------
def check_health(client: Client, site_id: int = 1) -> str:
    """GET /health answers 200."""
    body = client.call("GET", "/health", 200)
    _has(body, "status", where="/health")
    return f"status {body['status']}"


def check_meter_readings(client: Client, site_id: int = 1) -> str:
    """Add a reading timed now; it is the latest; it is in the last 24 hours' range."""
    now = datetime.now(UTC)
    reading = {"timestamp": now.isoformat(), "wh_generated": GENERATED, "wh_used": 75.2, "temp_c": 25.5}
    path = f"/api/analytics/readings/{site_id}"
    body = client.call("POST", path, 201, json=reading)
    _has(body, "message", "reading", where=f"POST {path}")

    latest = client.call("GET", f"{path}/latest", 200)
    _has(latest, "site_id", "latest_readings", where=f"{path}/latest")
    expect(latest["site_id"] == site_id, f"{path}/latest: site_id {latest['site_id']!r}")
    points = latest["latest_readings"]
    for metric in ("wh_generated", "wh_used", "temp_c"):
        _has(points, metric, where=f"{path}/latest latest_readings")
        _has(points[metric], "timestamp", "value", where=f"{path}/latest {metric}")
    newest = points["wh_generated"]
    expect(
        abs((_parse_time(newest["timestamp"], f"{path}/latest") - now).total_seconds()) < 0.002,
        f"{path}/latest: the newest reading is {newest}, not the one just added at {now.isoformat()}",
    )
    expect(newest["value"] == GENERATED, f"{path}/latest: wh_generated {newest['value']} != {GENERATED}")

    series = client.call("GET", f"{path}/wh_generated", 200, params=_window())
    _has(series, "site_id", "metric", "count", "data", where=f"{path}/wh_generated")
    data = series["data"]
    expect(isinstance(data, list), f"{path}/wh_generated: data is not a list")
    expect(len(data) == series["count"], f"{path}/wh_generated: count {series['count']} != {len(data)}")
    times = [_parse_time(point["timestamp"], f"{path}/wh_generated") for point in data]
    expect(times == sorted(times), f"{path}/wh_generated: points are not in time order")
    expect(
        any(point["value"] == GENERATED for point in data), f"{path}/wh_generated: the new reading is missing"
    )
    return f"reading added; latest ok; {len(data)} points in 24 h"


def check_leaderboards(client: Client, site_id: int = 1) -> str:
    """The capacity and generation boards, ranked; the site's capacity rank with its neighbours."""
    counts = []
    for kind in ("capacity", "generation", "efficiency"):
        path = f"/api/analytics/leaderboards/{kind}"
        body = client.call("GET", path, 200)
        _has(body, "leaderboard_type", "entries", "stats", where=path)
        entries = body["entries"]
        expect(isinstance(entries, list), f"{path}: entries is not a list")
        for entry in entries:
            _has(entry, "rank", "score", "site", where=f"{path} entry")
            _has(entry["site"], "id", where=f"{path} entry site")
        ranks = [entry["rank"] for entry in entries]
        expect(ranks == list(range(1, len(entries) + 1)), f"{path}: ranks {ranks}")
        scores = [entry["score"] for entry in entries]
        expect(scores == sorted(scores, reverse=True), f"{path}: scores not in descending order")
        counts.append(f"{kind} {len(entries)}")
    expect(counts[0] != "capacity 0", "the capacity leaderboard is empty")

    path = f"/api/analytics/leaderboards/capacity/site/{site_id}"
    body = client.call("GET", path, 200)
    _has(body, "site_id", "leaderboard_type", "rank", "score", "surrounding_sites", where=path)
    expect(isinstance(body["rank"], int) and body["rank"] >= 1, f"{path}: rank {body['rank']!r}")
    around = [entry["site"]["id"] for entry in body["surrounding_sites"]]
    expect(site_id in around, f"{path}: the site is not among its surrounding sites {around}")
    return f"{', '.join(counts)} entries; site {site_id} ranks {body['rank']} by capacity"


def check_analytics(client: Client, site_id: int = 1) -> str:
    """The site's analytics over the last 24 hours, and the fleet summary."""
    path = f"/api/analytics/analytics/{site_id}"
    body = client.call("GET", path, 200, params=_window())
    _has(
        body,
        "site_id", "period_start", "period_end", "total_generated", "total_used", "avg_generation",
        "max_generation", "min_generation", "avg_temperature", "efficiency_percent", "reading_count",
        where=path,
    )  # fmt: skip
    expect(body["reading_count"] >= 1, f"{path}: reading_count {body['reading_count']}")
    expect(body["total_generated"] >= GENERATED, f"{path}: total_generated {body['total_generated']}")
    expect(0 <= body["efficiency_percent"] <= 100, f"{path}: efficiency_percent {body['efficiency_percent']}")

    summary = client.call("GET", "/api/analytics/summary", 200)
    _has(summary, "summary", where="/api/analytics/summary")
    fleet = summary["summary"]
    _has(
        fleet,
        "total_sites", "active_sites_24h", "total_capacity_kw", "total_generation_24h_wh",
        "overall_efficiency_percent", "period_start", "period_end",
        where="/api/analytics/summary",
    )  # fmt: skip
    expect(fleet["total_sites"] >= 1, f"/api/analytics/summary: total_sites {fleet['total_sites']}")
    expect(fleet["active_sites_24h"] >= 1, "/api/analytics/summary: no active site")
    return (
        f"{body['reading_count']} readings, efficiency {body['efficiency_percent']:.1f} %; "
        f"fleet of {fleet['total_sites']} sites, {fleet['total_capacity_kw']:g} kW"
    )


STEPS: tuple[tuple[str, Callable[[Client, int], str]], ...] = (
    ("health", check_health),
    ("meter readings", check_meter_readings),
    ("leaderboards", check_leaderboards),
    ("analytics", check_analytics),
)


def run_all(base_url: str = DEFAULT_BASE_URL, site_id: int = 1) -> list[tuple[str, str]]:
    """Run every step in order: (step, outcome) pairs; :class:`ApiCheckError` at the first failure."""
    client = Client(base_url)
    return [(name, step(client, site_id)) for name, step in STEPS]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("base_url", nargs="?", default=DEFAULT_BASE_URL)
    parser.add_argument("--site", type=int, default=1, help="the site to exercise (default 1)")
    args = parser.parse_args(argv)
    client = Client(args.base_url)
    print(f"Testing the RediSolar API at {args.base_url} (site {args.site})")
    for name, step in STEPS:
        try:
            outcome = step(client, args.site)
        except ApiCheckError as exc:
            print(f"FAIL {name}: {exc}")
            return 1
        except requests.RequestException as exc:
            print(f"FAIL {name}: cannot reach {args.base_url}: {exc}")
            return 1
        print(f"ok   {name}: {outcome}")
    print("All checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
