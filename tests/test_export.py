"""Exports (``redisolar.services.export``): the API's streamed file and the CLI's resumable fleet export.

Values must come back exactly (floats are written as their ``repr``), local timestamps must follow
the site's zone across DST changes, day buckets are the site's local days, and the stream must not
hold the range in memory.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
import redis
from click.testing import CliRunner, Result
from flask import Flask
from flask.testing import FlaskClient

from redisolar import cli_export
from redisolar.app import get_services
from redisolar.cli import main
from redisolar.models.site import MetricType, Site
from redisolar.services import Services
from redisolar.services.export import RAW_COLUMNS, ExportRequest

if TYPE_CHECKING:
    from conftest import BackendServer

NEW_YORK = ZoneInfo("America/New_York")
HOUR = 3_600_000
Record = tuple[int, float, float, float]


def ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def iso_ms(when_ms: int, tz: Any = UTC) -> str:
    """The export's timestamp format, computed independently of it."""
    return datetime.fromtimestamp(when_ms / 1000, tz).isoformat(timespec="milliseconds")


def awkward_records(start: datetime, count: int, step: timedelta, seed: int = 7) -> list[Record]:
    """Readings whose values need all 17 digits (and a few that are round, tiny or huge)."""
    rng = random.Random(seed)
    special = [0.0, 0.1 + 0.2, 1 / 3, 5e-324, 123456.789, 1e-7, 2.5]
    records = []
    for i in range(count):
        generated = special[i] if i < len(special) else rng.uniform(0, 5000)
        used = rng.uniform(0, 3000) if i % 5 else 1 / 7
        temp = rng.uniform(-40, 60)
        records.append((ms(start + i * step), generated, used, temp))
    return records


@pytest.fixture
def app(app_factory: Callable[..., Flask], backend_server: BackendServer, client: redis.Redis) -> Flask:
    """An app that keeps every reading (RETENTION_DAYS=0), so both 2026 DST changes fit."""
    return app_factory(backend_server.server, TIMESERIES_BACKEND=backend_server.name, RETENTION_DAYS=0)


@pytest.fixture
def services(app: Flask) -> Services:
    return get_services(app)


def add_site(services: Services, site_id: int, tz: str = "America/New_York") -> Site:
    site = Site(site_id, 5.0, 20, f"{site_id} Main St", "Albany", "NY", "12207", timezone=tz)
    return services.create_site(site)


def store(services: Services, site_id: int, records: list[Record]) -> None:
    for i in range(0, len(records), 10_000):
        services.timeseries.add_validated_records({site_id: records[i : i + 10_000]})


def export(http: FlaskClient, site_id: int, **query: str) -> Any:
    return http.get(f"/api/analytics/readings/{site_id}/export", query_string=query)


# -- values round-trip -----------------------------------------------------------------------------
START = datetime(2026, 11, 20, tzinfo=UTC)


def test_csv_parses_back_to_exactly_the_stored_values(services: Services, http: FlaskClient) -> None:
    add_site(services, 1)
    records = awkward_records(START, 300, timedelta(minutes=7))
    store(services, 1, records)
    response = export(http, 1, start=START.isoformat(), end=(START + timedelta(days=3)).isoformat())
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == (
        'attachment; filename="site-1_20261120T000000Z_20261123T000000Z_raw.csv"'
    )
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert tuple(rows[0]) == RAW_COLUMNS
    parsed = [(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]), float(r[6])) for r in rows[1:]]
    expected = [("1", "America/New_York", iso_ms(t), iso_ms(t, NEW_YORK), g, u, c) for t, g, u, c in records]
    assert parsed == expected  # float == float: the exact doubles
    stored = services.timeseries.get_readings_range(1, MetricType.TEMP_C, START, START + timedelta(days=3))
    assert [row[6] for row in parsed] == [p.value for p in stored]


def test_ndjson_parses_back_to_exactly_the_stored_values(services: Services, http: FlaskClient) -> None:
    add_site(services, 2, tz="Pacific/Honolulu")
    records = awkward_records(START, 200, timedelta(minutes=11), seed=3)
    store(services, 2, records)
    response = export(http, 2, start="2026-11-20", end="2026-11-23", format="ndjson")
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.headers["Content-Disposition"].endswith('_raw.ndjson"')
    lines = response.get_data(as_text=True).splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "site_id": 2,
            "timezone": "Pacific/Honolulu",
            "timestamp_utc": iso_ms(t),
            "timestamp_local": iso_ms(t, ZoneInfo("Pacific/Honolulu")),
            "wh_generated": g,
            "wh_used": u,
            "temp_c": c,
        }
        for t, g, u, c in records
    ]


def test_the_range_is_half_open_and_empty_ranges_have_only_the_header(
    services: Services, http: FlaskClient
) -> None:
    add_site(services, 3)
    records = awkward_records(START, 10, timedelta(hours=1))
    store(services, 3, records)
    lo, hi = START + timedelta(hours=2), START + timedelta(hours=5)
    body = export(http, 3, start=lo.isoformat(), end=hi.isoformat()).get_data(as_text=True)
    times = [row[2] for row in csv.reader(io.StringIO(body))][1:]
    assert times == [iso_ms(ms(START + timedelta(hours=h))) for h in (2, 3, 4)]
    empty = export(http, 3, start="2020-01-01", end="2020-02-01").get_data(as_text=True)
    assert empty.splitlines() == [",".join(RAW_COLUMNS)]


# -- local time ------------------------------------------------------------------------------------
SPRING = datetime(2026, 3, 8, 7, tzinfo=UTC)  # 02:00 EST -> 03:00 EDT
AUTUMN = datetime(2026, 11, 1, 6, tzinfo=UTC)  # 02:00 EDT -> 01:00 EST


def test_local_timestamps_follow_new_york_across_both_dst_changes(
    services: Services, http: FlaskClient
) -> None:
    add_site(services, 4)
    hours = [SPRING + timedelta(hours=h) for h in (-2, -1, 0, 1)] + [
        AUTUMN + timedelta(hours=h) for h in (-2, -1, 0, 1)
    ]
    store(services, 4, [(ms(t), 1.0, 0.5, 20.0) for t in hours])
    body = export(http, 4, start="2026-03-01", end="2026-11-30", format="ndjson").get_data(as_text=True)
    local = [json.loads(line)["timestamp_local"] for line in body.splitlines()]
    assert local == [
        "2026-03-08T00:00:00.000-05:00",
        "2026-03-08T01:00:00.000-05:00",
        "2026-03-08T03:00:00.000-04:00",  # 02:00 does not exist that night
        "2026-03-08T04:00:00.000-04:00",
        "2026-11-01T00:00:00.000-04:00",
        "2026-11-01T01:00:00.000-04:00",
        "2026-11-01T01:00:00.000-05:00",  # the same wall hour, an hour later
        "2026-11-01T02:00:00.000-05:00",
    ]


def plain_day_buckets(records: list[Record], tz: ZoneInfo) -> dict[str, dict[str, Any]]:
    """Per local date: sums as the history composes them (each UTC hour's readings added in time
    order, then the day's hours in time order: ``tz``'s offsets are whole hours, so its days are
    runs of UTC hours), temperatures, count."""
    hours: dict[tuple[str, int], list[float]] = {}
    days: dict[str, dict[str, Any]] = {}
    for t, g, u, c in sorted(records):
        day = datetime.fromtimestamp(t / 1000, tz).date().isoformat()
        d = days.setdefault(day, {"g": 0.0, "u": 0.0, "temps": []})
        hour = hours.setdefault((day, t // HOUR), [0.0, 0.0])
        hour[0] += g
        hour[1] += u
        d["temps"].append(c)
    for (day, _), (g, u) in sorted(hours.items(), key=lambda item: item[0][1]):
        days[day]["g"] += g
        days[day]["u"] += u
    return days


def test_day_resolution_sums_each_local_day(services: Services, http: FlaskClient) -> None:
    add_site(services, 5)
    first = datetime(2026, 3, 6, 3, 7, tzinfo=UTC)
    records = awkward_records(first, 4 * 96, timedelta(minutes=15), seed=11)  # into 2026-03-10
    store(services, 5, records)
    # a range from UTC midnights: widened to New York's local days (Mar 5 19:00 EST is Mar 5 local)
    body = export(http, 5, start="2026-03-06", end="2026-03-10", resolution="day", format="ndjson")
    rows = [json.loads(line) for line in body.get_data(as_text=True).splitlines()]
    expected = plain_day_buckets(records, NEW_YORK)
    assert [row["timestamp_local"][:10] for row in rows] == sorted(expected)
    for row in rows:
        day = expected[row["timestamp_local"][:10]]
        temps = day["temps"]
        assert row["timestamp_local"][10:] == "T00:00:00.000" + row["timestamp_local"][23:]
        assert (row["wh_generated"], row["wh_used"], row["count"]) == (day["g"], day["u"], len(temps))
        assert (row["temp_c_min"], row["temp_c_max"]) == (min(temps), max(temps))
        assert row["temp_c_avg"] == pytest.approx(sum(temps) / len(temps), rel=1e-12)
    assert {r["timestamp_local"][:10]: r["hours"] for r in rows}["2026-03-08"] == 23.0
    assert rows[0]["timestamp_utc"] == "2026-03-05T05:00:00.000+00:00"  # the local day of 03:07Z


def test_hour_resolution_widens_to_whole_utc_hours(services: Services, http: FlaskClient) -> None:
    add_site(services, 6)
    records = [(ms(START) + i * 600_000, float(i), 1.0, float(i)) for i in range(18)]  # 3 hours
    store(services, 6, records)
    start = (START + timedelta(minutes=30)).isoformat()
    end = (START + timedelta(hours=2, minutes=10)).isoformat()
    body = export(http, 6, start=start, end=end, resolution="hour").get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["timestamp_utc"][11:16] for r in rows] == ["00:00", "01:00", "02:00"]
    assert [float(r["wh_generated"]) for r in rows] == [15.0, 51.0, 87.0]
    first = rows[0]
    assert (int(first["count"]), float(first["hours"]), float(first["temp_c_avg"])) == (6, 1.0, 2.5)


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "contains"),
    [
        ({"format": "xlsx"}, ""),
        ({"resolution": "minute"}, ""),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "after its start"),
        ({"start": "2026-11-01", "end": "2026-11-01"}, "after its start"),
        ({"start": "yesterday"}, ""),
    ],
)
def test_bad_requests_are_400s(
    services: Services, http: FlaskClient, query: dict[str, str], contains: str
) -> None:
    add_site(services, 7)
    response = export(http, 7, **query)
    assert response.status_code == 400
    body = response.get_json()
    assert set(body) >= {"error", "details"}
    assert contains in body["error"]


def test_an_unknown_site_is_a_404(services: Services, http: FlaskClient) -> None:
    response = export(http, 999, start="2026-11-01", end="2026-11-02")
    assert response.status_code == 404
    assert "999" in response.get_json()["error"]


def test_the_openapi_document_lists_both_media_types(http: FlaskClient) -> None:
    spec = http.get("/api/openapi.json").get_json()
    ok = spec["paths"]["/api/analytics/readings/{site_id}/export"]["get"]["responses"]["200"]
    assert set(ok["content"]) == {"text/csv", "application/x-ndjson"}
    assert "Content-Disposition" in ok["headers"]


# -- memory ----------------------------------------------------------------------------------------
EXPORT_CHILD = """
import json, resource, sys
from redisolar.app import create_app

config, url, held = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3] == "held"
http = create_app("test", config).test_client()

def drain():
    response = http.get(url, buffered=False)
    if held:  # the control: the body kept whole, as a non-streaming export would keep it
        body = response.get_data()
        size = len(body)
    else:
        size = sum(len(chunk) for chunk in response.iter_encoded())
    response.close()
    assert response.status_code == 200, response.status_code
    return size

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

drain()  # warm: every module, script and connection the export uses is loaded once
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # resets VmHWM, the peak resident set size, to the current one
before = status("VmRSS")
size = drain()
print(json.dumps({"bytes": size, "rss_before": before, "peak": status("VmHWM"),
                  "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""


def export_rss(backend_server: BackendServer, url: str, *, held: bool = False) -> dict[str, int]:
    """Run the export at ``url`` in a fresh Python process on the test's Redis, drain its streamed
    body (or, ``held``, keep it whole: the control), and report the bytes and the process's resident
    set: before the export and its peak during it (``VmHWM`` reset through ``/proc/self/clear_refs``
    after a warm-up export, so the peak is the export's own, not the start-up's, which ``ru_maxrss``
    would report: about twice the steady size here)."""
    config = {
        "TESTING": True,
        "REDIS_URL": f"{backend_server.server.url}/0",
        "REDIS_CLUSTER": backend_server.cluster,
        "TIMESERIES_BACKEND": backend_server.name,
        "RETENTION_DAYS": 0,
        "AUTH_MODE": "off",
        "RATE_LIMIT_READS": "0",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("REDISOLAR_")}
    done = subprocess.run(
        [sys.executable, "-c", EXPORT_CHILD, json.dumps(config), url, "held" if held else "streamed"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, int] = json.loads(done.stdout.strip().splitlines()[-1])
    return report


def test_a_large_range_streams_in_constant_memory(services: Services, backend_server: BackendServer) -> None:
    """Measured as the OS sees it: the peak RSS of a process exporting 200,000 readings (about 19 MB
    of CSV) against one exporting 20,000. Holding the range would cost more than its text (Python
    tuples of four numbers take ~150 bytes a reading, 30 MB here); streaming holds a page (at most a
    day of one site's readings, ~2,000 here) and a chunk of 1,000 rows at a time, the same for both
    exports. Bound: the large export's peak grows by less than a tenth of its bytes (and less than
    4 MB) over the small one's; a tenth leaves room for allocator noise while any buffering of the
    range, even as text, would exceed it several times."""
    step = timedelta(seconds=10)
    end = datetime(2026, 11, 30, tzinfo=UTC)
    add_site(services, 8)
    add_site(services, 9)
    store(services, 8, [(ms(end - (i + 1) * step), 1.5, 0.5, 20.25) for i in range(20_000)][::-1])
    store(services, 9, [(ms(end - (i + 1) * step), 1.5, 0.5, 20.25) for i in range(200_000)][::-1])
    query = f"start={(end - timedelta(days=60)).date()}&end={end.date()}&format=csv"
    small = export_rss(backend_server, f"/api/analytics/readings/8/export?{query}")
    large = export_rss(backend_server, f"/api/analytics/readings/9/export?{query}")
    assert large["bytes"] > 9 * small["bytes"] > 9 * 1_500_000  # ten times the data...
    growth_small = small["peak"] - small["rss_before"]
    growth_large = large["peak"] - large["rss_before"]
    bound = min(large["bytes"] // 10, 4 * 2**20)
    assert growth_large - growth_small < bound, (small, large)  # ...not ten times the memory
    assert growth_large < large["bytes"] // 4, (small, large)
    held = export_rss(backend_server, f"/api/analytics/readings/9/export?{query}", held=True)
    assert held["peak"] - held["rss_before"] > large["bytes"] // 2, held  # the measure sees a held body


# -- the CLI ---------------------------------------------------------------------------------------
class Interrupted(Exception):
    """Stands for the process being killed in the middle of a site."""


@pytest.fixture
def cli_env(app: Flask, backend_server: BackendServer) -> dict[str, str]:
    return {**backend_server.env(), "REDISOLAR_RETENTION_DAYS": "0"}


def run(args: list[str], env: dict[str, str]) -> Result:
    return CliRunner().invoke(main, ["export", *args], env=env, catch_exceptions=False)


@pytest.fixture
def fleet(services: Services) -> list[int]:
    """Five sites with readings, one without, in three time zones."""
    zones = ["America/New_York", "Europe/London", "America/Phoenix"]
    for site_id in range(11, 17):
        add_site(services, site_id, zones[site_id % 3])
        if site_id != 13:
            store(
                services, site_id, awkward_records(START, 40 + site_id, timedelta(minutes=30), seed=site_id)
            )
    return list(range(11, 17))


ARGS = ["--start", "2026-11-20", "--end", "2026-11-25"]


def test_cli_exports_the_fleet(cli_env: dict[str, str], fleet: list[int], tmp_path: Path) -> None:
    out = tmp_path / "fleet.csv"
    result = run([*ARGS, "--output", str(out)], cli_env)
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode())))
    assert tuple(rows[0]) == RAW_COLUMNS
    counts = {site_id: sum(1 for r in rows[1:] if r[0] == str(site_id)) for site_id in fleet}
    assert counts == {s: 0 if s == 13 else 40 + s for s in fleet}
    assert not (tmp_path / "fleet.csv.progress").exists()
    assert "Exported 6 sites" in result.output


def test_cli_exports_chosen_sites_as_ndjson_per_day(
    cli_env: dict[str, str], fleet: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "two.ndjson"
    args = [*ARGS, "--site", "14", "--site", "12", "--format", "ndjson", "--resolution", "day"]
    assert run([*args, "--output", str(out)], cli_env).exit_code == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["site_id"] for r in rows] == sorted([14] * 2 + [12] * 2, reverse=True)  # in --site order
    assert sum(r["count"] for r in rows if r["site_id"] == 12) == 52


def test_cli_refuses_an_unknown_site_before_writing(
    cli_env: dict[str, str], fleet: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "x.csv"
    result = run([*ARGS, "--site", "12", "--site", "404", "--output", str(out)], cli_env)
    assert result.exit_code == 1
    assert "404" in result.output
    assert not out.exists()


def test_cli_resumes_after_an_interruption(
    cli_env: dict[str, str], fleet: list[int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = tmp_path / "reference.csv"
    assert run([*ARGS, "--output", str(reference)], cli_env).exit_code == 0

    real_chunks = cli_export.site_chunks
    started: list[int] = []

    def interrupted(services: Services, site: Site, request: ExportRequest, **kw: Any) -> Iterator[str]:
        started.append(site.id)
        for chunk in real_chunks(services, site, request, **kw):
            yield chunk[: len(chunk) // 2]  # half a site on disk...
            if len(started) == 4:
                raise Interrupted  # ...and the process stops there
            yield chunk[len(chunk) // 2 :]

    out = tmp_path / "fleet.csv"
    monkeypatch.setattr(cli_export, "site_chunks", interrupted)
    with pytest.raises(Interrupted):
        run([*ARGS, "--output", str(out)], cli_env)
    progress = (tmp_path / "fleet.csv.progress").read_text().splitlines()
    assert [int(line.split()[0]) for line in progress[1:]] == fleet[:3]
    assert out.stat().st_size > int(progress[-1].split()[1])  # the torn site's rows

    monkeypatch.setattr(cli_export, "site_chunks", real_chunks)
    started.clear()
    result = run([*ARGS, "--output", str(out), "--resume"], cli_env)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == reference.read_bytes()
    assert not (tmp_path / "fleet.csv.progress").exists()


def test_cli_resume_refuses_other_parameters(
    cli_env: dict[str, str], fleet: list[int], tmp_path: Path
) -> None:
    out = tmp_path / "fleet.csv"
    progress = tmp_path / "fleet.csv.progress"
    out.write_text("partial")
    params = {"start": "2026-11-20T00:00:00+00:00", "end": "2026-11-25T00:00:00+00:00", "format": "csv"}
    progress.write_text(json.dumps({**params, "resolution": "hour", "sites": []}) + "\n11 7\n")
    result = run([*ARGS, "--output", str(out), "--resume"], cli_env)
    assert result.exit_code == 1
    assert "another export" in result.output
    assert out.read_text() == "partial"
